"""Rod flow and edge flow: step-time models of GD at the edge of stability that keep the period-2 oscillation.

GD w_{k+1} = w_k - eta g(w_k) (g = grad L) is read as a "rod" joining consecutive iterates: center
x_k = (w_k + w_{k+1})/2 and sign-corrected half-extent d_k = (-1)^k (w_k - w_{k+1})/2, so that the iterates are
x_k +- d_k and a period-2 oscillation is a smooth, slowly varying d. Exactly [derived, restated here]:

    x_{k+1} - x_k = -(eta/2) [g(x_k + d_k) + g(x_k - d_k)]
    d_{k+1} - d_k =  (eta/2) [g(x_k + d_k) - g(x_k - d_k)] - 2 d_k     (on GD rods, where d_k = (-1)^k (eta/2) g(w_k))

The rod flow (`RodFlow`) is the ODE whose forward-Euler step with dtau = 1 is this map; the edge flow (`EdgeFlow`)
restricts the rod to one direction, d = rho u with ||u|| = 1. `rod_field` writes the rod flow of any one-step map
z -> z + D(z) (GD: D = -eta g; momentum and Adam on (params, optimizer state): `dynamics.processes.rod_methods`).

Sources. Rod flow: Regis & Chewi, arXiv 2602.01480 (2026); edge flow: Marion, arXiv 2606.18080 (2026). The stored
copies reachable from this project hold the abstracts and introductions of both papers, not their equation sections,
so the equations below are the reconstructions of docs/flows.md sections 11-12, checked against everything those
parts state (a rod of consecutive iterates; a center doing a modified gradient flow on the symmetrized loss
(1/2)[L(x + d) + L(x - d)]; a direction following Rayleigh-quotient dynamics towards a top Hessian eigenvector; a
magnitude growing or decaying exponentially as the sharpness is above or below 2/eta; 2 gradients + 1 HVP per edge
step; the 2/eta threshold). Possible O(eta^2) terms, the papers' exact magnitude law and initial conditions are
unconfirmed. States are pytrees like the parameters (flattened internally with `ravel_pytree`).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, hvp
from ..errors import InputError
from ..linalg import flat_loss, hessian_eigenpairs
from .arguments import integer_parameter, like, same_structure, state_tuple
from .base import StepCost
from .eos import _StepTimeFlow

#: | ||u|| - 1 | allowed for a user-supplied edge-flow direction
UNIT_TOL = 1e-8
#: EdgeFlow magnitude rules: "roundoff" (default) holds rho at no less than GD's round-off floor while eta lambda < 2;
#: "none" is the bare law rho' = rho (eta lambda_sec - 2), under which rho can underflow to the fixed point 0
ONSETS = ("roundoff", "none")
#: unit round-off of float64, 2^-53: fl(a - b) = (a - b)(1 + delta), |delta| <= U_ROUND
U_ROUND = 2.0 ** -53
#: rho / ||x|| below which the edge flow takes the Rayleigh quotient for the secant curvature: sqrt(float64 eps)
SECANT_MIN = 2.0 ** -26


def roundoff_floor(x, u):
    """GD's round-off injection along the unit direction u in one step at w ~ x (flat): U_ROUND ||x * u|| / sqrt(3).

    fl(w - eta g) rounds coordinate i by w_i delta_i, |delta_i| <= U_ROUND; modelled as independent and uniform
    (variance U_ROUND^2 w_i^2 / 3), its component along u has standard deviation U_ROUND sqrt(sum_i w_i^2 u_i^2 / 3).
    Derived from the state alone (no GD trajectory); docs/flows.md section 12."""
    return U_ROUND * jnp.linalg.norm(x * u) / math.sqrt(3.0)


#: RodFlow centre fields: 1, the reconstruction (centre = the average of the two ends' displacements); 2, with the
#: second-order (backward-error) term -(1/8)(J_+ + J_-)(D_+ + D_-) (for GD: -(eta^2/8)(H_+ + H_-)(g_+ + g_-))
ORDERS = (1, 2)


def centre_order(order):
    """``order`` if it is one of `ORDERS` (1 or 2), else `InputError`."""
    if isinstance(order, (bool, np.bool_)) or order not in ORDERS:
        raise InputError(f"the rod's centre order must be 1 (the reconstruction) or 2 (with the second-order term "
                         f"-(1/8)(J_+ + J_-)(D_+ + D_-)), got {order!r}")
    return int(order)


def rod_field(displacement, fx, fd, order=1, smooth=None):
    """The rod flow of a one-step map z -> z + D(z) at centre x and sign-corrected half-extent d (flat vectors),
    D_+- = D(x +- d), J_+- their Jacobians:

        dx/dtau = (1/2)(D_+ + D_-)   [order 2: - (1/8)(J_+ + J_-)(D_+ + D_-)]
        dd/dtau = -(1/2)(D_+ - D_-) - 2 d

    (x_k, d_k) = ((z_k + z_{k+1})/2, (-1)^k (z_k - z_{k+1})/2) for iterates z_{k+1} = z_k + D(z_k); one Euler step
    dtau = 1 of the order-1 field maps rod k to rod k + 1 exactly (docs/flows.md section 11). Order 2 is the first
    backward-error correction of that centre map with d frozen: the flow of x' = a(x) - (1/2) a'(x) a(x),
    a = (1/2)(D_+ + D_-), matches the map x + a(x) to O(a^3) per step (at d = 0 for GD: IGR in step time).
    ``smooth``: a boolean mask of coordinates kept off the rod (their dd/dtau is 0; d = 0 there keeps them on the
    centre). Cost: 2 evaluations of D, plus 2 Jacobian-vector products at order 2. Returns (dx/dtau, dd/dtau)."""
    if order == 2:
        (plus, jplus), (minus, jminus) = (jax.linearize(displacement, fx + fd), jax.linearize(displacement, fx - fd))
        both = plus + minus
        centre = 0.5 * both - 0.125 * (jplus(both) + jminus(both))
    else:
        plus, minus = displacement(fx + fd), displacement(fx - fd)
        centre = 0.5 * (plus + minus)
    half = -0.5 * (plus - minus) - 2.0 * fd
    return centre, half if smooth is None else jnp.where(smooth, 0.0, half)


ROD_HINT = ("start from rod.initial_state(w0) (the GD rod at k = 0), or rod_from_gd(w_k, w_next, k) for the rod of "
            "two consecutive GD iterates")
EDGE_HINT = "start from edge.initial_state(w0) (optionally with u and rho)"


def _rod(state):
    """(x, d) from a rod-flow state, checked at trace time (a raw parameter vector is not a rod)."""
    x, d = state_tuple(state, ("x", "d"), "RodFlow", ROD_HINT)
    same_structure("the rod's center x", x, "its half-extent d", d)
    return x, d


def _edge(state):
    """(x, u, rho) from an edge-flow state, checked at trace time."""
    x, u, rho = state_tuple(state, ("x", "u", "rho"), "EdgeFlow", EDGE_HINT)
    same_structure("the edge flow's center x", x, "its direction u", u)
    if jnp.ndim(rho) != 0:
        raise InputError(f"the edge-flow magnitude rho must be a scalar, got shape {jnp.shape(rho)}; {EDGE_HINT}")
    return x, u, rho


@eqx.filter_jit
def _first_step(flow, w0):
    """(w0, w1) flattened, w1 = w0 - eta g(w0) GD's next iterate. One gradient; compiled once per loss (eta traced)."""
    E, f0, _ = flat_loss(flow.loss, w0)
    return f0, f0 - flow.lr * gradient(E)(f0)


@eqx.filter_jit
def _top_eigenvector(flow, w):
    """The top Hessian eigenvector of the flow's loss at w, flattened (the default, convergence-checked solver)."""
    E, flat, _ = flat_loss(flow.loss, w)
    return hessian_eigenpairs(E, flat, 1, None)[1][:, 0]


def rod_from_gd(w_k, w_next, k=0):
    """The GD rod at step k from the iterates w_k, w_{k+1}: x = (w_k + w_{k+1})/2, d = (-1)^k (w_k - w_{k+1})/2.

    Pytrees allowed (same structure); k a nonnegative integer. Returns (x, d), the `RodFlow` state at tau = k."""
    same_structure("w_k", w_k, "w_next", w_next)
    sign = -1.0 if integer_parameter(k, "the step index k", 0) % 2 else 1.0
    x = jax.tree_util.tree_map(lambda a, b: 0.5 * (a + b), w_k, w_next)
    d = jax.tree_util.tree_map(lambda a, b: 0.5 * sign * (a - b), w_k, w_next)
    return x, d


class RodFlow(_StepTimeFlow):
    """Rod flow of GD with learning rate eta, in step time (GD rod k <-> tau = k), state (x, d):

        dx/dtau = -(eta/2) [g(x + d) + g(x - d)]           (gradient flow on (1/2)[L(x + d) + L(x - d)], in step time)
        dd/dtau =  (eta/2) [g(x + d) - g(x - d)] - 2 d

    Implemented: the reconstruction of docs/flows.md section 11 (Regis & Chewi 2026, arXiv 2602.01480; only the
    paper's abstract and introduction could be read, which this matches: see the module docstring). Properties
    [derived, tested]: one forward-Euler step with dtau = 1 from a GD rod (`rod_from_gd`) is the next GD rod, exactly;
    at d = 0 the d-equation linearizes to dd/dtau = (eta H(x) - 2) d, so the rod opens iff eta lambda > 2; the center
    moves by dx/dtau = -eta [g(x) + (1/2) T[d, d] + O(|d|^4)] (T = third derivative: the self-stabilization term).
    Cost: 2 gradients per field evaluation.
    ``order=2`` adds the second-order centre term -(eta^2/8)(H_+ + H_-)(g_+ + g_-) (H_+-, g_+- at x +- d; 2 gradients
    + 2 HVPs): the backward-error correction of the centre map with d frozen (`rod_field`), which reduces to IGR,
    dx/dtau = -eta g - (eta^2/2) H g, at d = 0. A third-party restatement attributes this term to the paper; its
    equation section could not be read here, so both are offered and compared (docs/flows.md section 11.1); the
    Euler-step identity holds for order 1 only.
    Start from `initial_state(w0)` (the GD rod at k = 0) or `rod_from_gd`; a state that is not a pair (x, d) of equal
    structure (e.g. the raw parameters) raises `InputError`, and an order other than 1 or 2 too."""

    cost = StepCost(2.0)
    order: int = eqx.field(static=True)

    def __init__(self, loss, lr, order=1):
        super().__init__(loss, lr)
        self.order = centre_order(order)

    def step_cost(self, theta):
        return StepCost(2.0, 2.0) if self.order == 2 else self.cost

    def field(self, tau, state):
        x, d = _rod(state)
        E, fx, unravel = flat_loss(self.loss, x)
        grad = gradient(E)
        dx, dd = rod_field(lambda z: -self.lr * grad(z), fx, ravel_pytree(d)[0], self.order)
        return like(state, (unravel(dx), unravel(dd)))

    def initial_state(self, w0):
        """The GD rod at k = 0: rod_from_gd(w0, w0 - eta g(w0)). One gradient."""
        unravel = ravel_pytree(w0)[1]
        return rod_from_gd(w0, unravel(_first_step(self, w0)[1]))


class EdgeFlow(_StepTimeFlow):
    """Edge flow of GD with learning rate eta, in step time (tau = k), state (x, u, rho): the rod with d = rho u,
    ||u|| = 1:

        dx/dtau   = -(eta/2) [g(x + rho u) + g(x - rho u)]
        du/dtau   =  eta (I - u u^T) H(x) u                           (Rayleigh-quotient ascent on the unit sphere)
        drho/dtau =  rho (eta lambda_sec - 2),  lambda_sec = u^T [g(x + rho u) - g(x - rho u)] / (2 rho)

    lambda_sec is the secant curvature along u (the Rayleigh quotient u^T H(x) u for rho <= sqrt(eps) ||x||, where
    the secant's round-off would exceed its O(rho^2) difference from it), so rho = 0 is invariant and then the edge
    flow is the stable flow plus the direction dynamics. The rho- and x-equations are the rod flow's projected on
    d = rho u; the u-equation is its transverse part to first order in rho (secant -> Hessian).

    Onset (``onset="roundoff"``, the default; a rule of this project, not the paper's). While eta lambda < 2 the bare
    law decays rho like exp(-int (2 - eta lambda)); through a long progressive sharpening (the MLP of docs/flows.md
    section 8: ~400 steps) it underflows to the fixed point 0, or, integrated in log rho, sits hundreds of e-folds
    down and regrows only as long after the onset (delayed loss of stability). GD's own oscillation along u cannot
    fall below the round-off each step's update fl(w - eta g) injects along u, so the rule holds rho at no less than
    that injection: drho/dtau = 0 while rho <= `roundoff_floor(x, u)` = 2^-53 ||x * u|| / sqrt(3) and eta lambda_sec
    < 2 (derived from the state alone, not fit to GD). Above the floor, or once eta lambda_sec >= 2, the law is the bare
    one, so the rule changes nothing where rho stays above ~1e-16 ||x|| (the scalar net of `regis2026_rod_edge`).
    ``onset="none"``: the bare law (0 reachable by underflow).
    Implemented: the reconstruction of docs/flows.md section 12 (Marion 2026, arXiv 2606.18080; only the abstract
    and introduction could be read, which this matches; the u-rate eta and the magnitude law are unconfirmed).
    The field is tangent to the sphere, so ||u|| = 1 holds up to the solver's error. A state u off the unit sphere is
    read as the direction u/||u|| (d = rho u/||u||, lambda_sec and the Rayleigh quotient u.Hu/u.u taken along it, and
    du/dtau = eta (H u - (u.Hu/u.u) u), which keeps ||u|| and moves the direction as for the unit vector), so solver
    drift in ||u|| does not change the model. Cost: 2 gradients + 1 HVP per field evaluation. Start from
    `initial_state(w0)`; a state that is not (x, u, rho) with u shaped like x and a scalar rho raises `InputError`."""

    cost = StepCost(2.0, 1.0)
    onset: str = eqx.field(static=True)

    def __init__(self, loss, lr, onset="roundoff"):
        super().__init__(loss, lr)
        if onset not in ONSETS:
            raise InputError(f"EdgeFlow onset must be one of {ONSETS}, got {onset!r}")
        self.onset = onset

    def field(self, tau, state):
        x, u, rho = _edge(state)
        E, fx, unravel = flat_loss(self.loss, x)
        fu = ravel_pytree(u)[0]
        squared = fu @ fu
        n = fu / jnp.sqrt(squared)   # = u on the unit sphere
        grad = gradient(E)
        plus, minus = grad(fx + rho * n), grad(fx - rho * n)
        Hu = hvp(E)(fx, fu)
        rayleigh = (fu @ Hu) / squared
        # below sqrt(eps) ||x|| the secant's round-off (~eps ||g|| / rho) exceeds its difference from the Rayleigh
        # quotient (O(rho^2)), which then equals it to the round-off of lambda itself; rho = 0 always takes it
        small = rho <= SECANT_MIN * jnp.linalg.norm(fx)
        secant = jnp.where(small, rayleigh, n @ (plus - minus) / (2.0 * jnp.where(small, 1.0, rho)))
        rate = self.lr * secant - 2.0
        if self.onset == "roundoff":   # GD's own round-off keeps its oscillation at >= one step's injection
            rate = jnp.where((rho <= roundoff_floor(fx, n)) & (rate < 0), 0.0, rate)
        return like(state, (unravel(-0.5 * self.lr * (plus + minus)), unravel(self.lr * (Hu - rayleigh * fu)),
                            rho * rate))

    def initial_state(self, w0, u=None, rho=None):
        """(x0, u0, rho0) from GD's first step w1 = w0 - eta g(w0): x0 = (w0 + w1)/2; u0 = ``u`` or the top Hessian
        eigenvector at x0 (the default solver of `dynamics.eigenpairs`: dense eigh for tiny models, else LOBPCG to its
        residual tolerance), signed so that
        u0.(w0 - w1) >= 0; rho0 = ``rho`` or u0.(w0 - w1)/2, the half-step projected on u0.

        Raises `InputError` for a u that is not a unit vector (to `UNIT_TOL`) or of the wrong shape, and for
        rho0 <= 0 or non-finite (rho = 0 is invariant: the run would be the stable flow)."""
        unravel = ravel_pytree(w0)[1]
        f0, f1 = _first_step(self, w0)
        fx = 0.5 * (f0 + f1)
        if u is None:
            fu = _top_eigenvector(self, unravel(fx))
        else:
            same_structure("u", u, "w0", w0)
            fu = ravel_pytree(u)[0]
            norm = float(jnp.linalg.norm(fu))
            if not abs(norm - 1.0) <= UNIT_TOL:
                raise InputError(f"the edge-flow direction u must be a unit vector, got ||u|| = {norm!r}")
        fu = jnp.where(fu @ (f0 - f1) < 0, -fu, fu)
        if rho is None:
            rho = 0.5 * float(fu @ (f0 - f1))
        elif jnp.ndim(rho) != 0:
            raise InputError(f"the edge-flow magnitude rho0 must be a scalar, got shape {jnp.shape(rho)}")
        rho = float(rho)
        if not (rho > 0 and math.isfinite(rho)):
            raise InputError(f"the edge-flow magnitude rho0 must be finite and > 0, got {rho!r} (rho = 0 is "
                             "invariant: with no oscillation along u the edge flow is the stable flow)")
        return unravel(fx), unravel(fu), jnp.asarray(rho, fx.dtype)
