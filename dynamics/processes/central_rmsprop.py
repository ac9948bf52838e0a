"""Central and stable flows of RMSProp (scalar and per-coordinate), in step time tau = k (docs/flows.md section 17).

RMSProp with learning rate eta, EMA factor beta2 and eps (PyTorch's convention; optax.rmsprop(eta, decay=beta2,
eps=eps, eps_in_sqrt=False); no bias correction, no momentum), nu_0 = 0:

    nu_k = beta2 nu_{k-1} + (1 - beta2) g_k^2,   w_{k+1} = w_k - P_k^{-1} g_k,   P_k = (sqrt(nu_k) + eps) / eta,

g_k = grad L(w_k); per-coordinate RMSProp squares elementwise and P_k is diagonal; scalar RMSProp keeps one nu
(g^2 -> ||g||^2) and P_k = (sqrt(nu_k) + eps) / eta times the identity (`scalar_rmsprop`).

Cohen, Damian, Talwalkar, Kolter, Lee, "Understanding optimization in deep learning with central flows", ICLR 2025
(arXiv:2410.24206), the paper's equations (their section on RMSProp and the companion site's parts II-III):

    stable flow   dw/dt = -P(nu)^{-1} grad L,   dnu/dt = ((1 - beta2)/beta2) (grad L^2 - nu),
    central flow  dw/dt = -P(nu)^{-1} [grad L + (1/2) grad <Sigma, H>],
                  dnu/dt = ((1 - beta2)/beta2) (E[g^2] - nu),   E[g^2] = grad L^2 + diag(H Sigma H)

(scalar: ||grad L||^2 + tr(H Sigma H) = ||grad L||^2 + sigma^2 S^2 for one critical direction; per-coordinate:
grad L^2 + 4 P^2 diag Sigma = grad L^2 + (4 (sqrt(nu) + eps)^2 / eta^2) diag Sigma when the critical eigenvalues
equal 2), with Sigma = U X U^T supported on the
critical generalized eigenvectors H u = lambda P u (U^T P U = I, lambda = eigenvalues of P^{-1} H, critical when
lambda > ``threshold``), X >= 0 chosen so that the stability condition 2P - H >= 0 is maintained. The 1/beta2 in the
rate is the paper's (the code cites a footnote of the paper for it; taken as given here).

Discretization (a reconstruction following the authors' PyTorch code, stated here): ``substeps`` Euler substeps of
dt = 1/substeps per RMSProp step; at each, with D_ij = grad_w(u_i^T H u_j) (third-derivative products), the drift is
affine in X, (w', nu') = (w'_0, nu'_0) + sum_kl X_kl (w'_kl, nu'_kl); the stability matrix in the U basis,
U^T (2P - H) U = diag(2 - lambda), is linearized one substep ahead,

    A + B[X] = diag(2 - lambda) + dt (2 U^T P'(nu) diag(nu') U - [D_ij . w'])_ij,

and X solves the semidefinite complementarity problem 0 <= X _|_ A + B[X] >= 0 (`solve_sdcp`). B's nu part is
not symmetric when the critical lambda differ (the code's H U = P U diag(lambda)); as in the code, the SDCP uses its
symmetric part (the authors' cvxpy QP symmetrizes B). The drift itself uses E[g^2] = g^2 + diag(H Sigma H) with
H U = P U diag(lambda) exactly (the code's choice; the paper's per-coordinate formula substitutes lambda = 2).
The state starts at (w_0, nu_1 = beta2 nu_0 + (1 - beta2) g_0^2), RMSProp's EMA after its first gradient (the
code's init, nu_0 = 0 there; here nu_0 may be given), so the flow at tau = k pairs with RMSProp's w_k and the nu of
the update leaving w_k.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..derivatives import gradient, third
from ..errors import InputError, PrecisionError
from ..linalg import solve_eigenpairs
from .arguments import integer_parameter
from .base import AbstractDiscrete, StepCost, TimeUnit, positive_lr, real_parameter
from .eos import _advice, _default_eigensolver, _flat_objective, _warn_once, solve_sdcp

__all__ = ["RMSPropCentralFlow", "RMSPropFlowState", "RMSPropStableFlow", "scalar_rmsprop"]


def _hyper(lr, beta2, eps):
    """(eta, beta2, eps) checked: eta > 0 (`StepSizeError`), beta2 in (0, 1), eps > 0 (`InputError`)."""
    lr = positive_lr(lr)
    beta2 = real_parameter(beta2, "beta2 (the EMA factor of the squared gradient)", 0.0, 1.0)
    if not isinstance(beta2, jax.core.Tracer) and float(beta2) == 0.0:
        raise InputError("beta2 must lie in (0, 1): at beta2 = 0 RMSProp keeps no average (nu = g^2) and the flow's "
                         "rate (1 - beta2)/beta2 is infinite; use e.g. beta2 = 0.99")
    eps = real_parameter(eps, "eps (added to sqrt(nu))")
    if not isinstance(eps, jax.core.Tracer) and float(eps) <= 0.0:
        raise InputError(f"eps must be > 0 (it keeps P = (sqrt(nu) + eps)/lr positive where nu = 0), got "
                         f"{float(eps):g}; use e.g. eps = 1e-8")
    return lr, beta2, eps


def scalar_rmsprop(learning_rate, decay=0.99, eps=1e-8):
    """Scalar RMSProp as an optax transformation: one EMA of the squared gradient *norm* (over all leaves),
    nu_k = decay nu_{k-1} + (1 - decay) ||g_k||^2, update -learning_rate g_k / (sqrt(nu_k) + eps), nu_0 = 0
    (Cohen et al. 2025's Scalar RMSProp). `InputError` for decay outside (0, 1) or eps <= 0."""
    lr, decay, eps = _hyper(learning_rate, decay, eps)

    def init(params):
        leaves = jax.tree_util.tree_leaves(params)
        return optax.ScaleByRmsState(nu=jnp.zeros((), jnp.result_type(*leaves)))

    def update(updates, state, params=None):
        square = sum(jnp.sum(jnp.abs(g) ** 2) for g in jax.tree_util.tree_leaves(updates))
        nu = decay * state.nu + (1 - decay) * square
        scale = -lr / (jnp.sqrt(nu) + eps)
        return jax.tree_util.tree_map(lambda g: (scale * g).astype(g.dtype), updates), optax.ScaleByRmsState(nu=nu)

    return optax.GradientTransformation(init, update)


class RMSPropFlowState(NamedTuple):
    """(w, nu) of an RMSProp flow, plus (central flow) the eigensolver's warm-start block and HVP count."""

    params: object
    nu: jax.Array
    block: jax.Array = None
    hvps: jax.Array = None
    unconverged: jax.Array = None   # central flow: substeps whose eigensolver missed its tolerance
    crowded: jax.Array = None       # central flow: substeps with every tracked eigenvalue critical (raise k)


class _RMSPropFlow(eqx.Module):
    """Shared configuration: eta, beta2, eps, scalar; P(nu) and the first EMA."""

    loss: callable
    lr: object
    beta2: object
    eps: object
    scalar: bool = eqx.field(static=True)

    def _setup(self, loss, lr, beta2, eps, scalar):
        if not isinstance(scalar, bool):
            raise InputError(f"scalar must be True (one nu: scalar RMSProp) or False (per-coordinate), got {scalar!r}")
        self.loss, self.scalar = loss, scalar
        self.lr, self.beta2, self.eps = _hyper(lr, beta2, eps)

    def _check_substeps(self):
        """The Euler substep of nu, nu + (rate/substeps)(target - nu), stays >= 0 only while rate/substeps <= 1."""
        if isinstance(self.beta2, jax.core.Tracer):
            return
        ratio = float(self.rate) / self.substeps
        if ratio > 1.0:
            raise InputError(f"beta2 = {float(self.beta2):g} relaxes nu at rate (1 - beta2)/beta2 = {float(self.rate):.4g} "
                             f"per step, {ratio:.4g} per Euler substep with substeps = {self.substeps}: above 1 the "
                             "substep overshoots and nu turns negative (sqrt(nu) = NaN). Use substeps >= "
                             f"{int(np.ceil(float(self.rate)))} or a larger beta2")

    def _flat(self, w):
        return _flat_objective(self.loss, w)

    @property
    def rate(self):
        """(1 - beta2)/beta2: the nu relaxation rate per unit of step time (the paper's)."""
        return (1 - self.beta2) / self.beta2

    def preconditioner(self, nu):
        """P = (sqrt(nu) + eps)/eta (a scalar for scalar RMSProp, else a vector like nu)."""
        return (jnp.sqrt(nu) + self.eps) / self.lr

    def _square(self, g):
        return jnp.sum(g * g) if self.scalar else g * g

    def start(self, y0):
        """(w_0, nu_1): ``y0`` is parameters w_0 (then nu_0 = 0, RMSProp's default) or an `RMSPropFlowState`
        (w_0, nu_0) with nu_0 the EMA *before* the first step (an optax state's nu: a flat vector over the
        parameters, or a scalar for scalar RMSProp); nu_1 = beta2 nu_0 + (1 - beta2) g_0^2 is the EMA of the update
        leaving w_0, the flow's nu at tau = 0."""
        w0, nu0 = (y0.params, y0.nu) if isinstance(y0, RMSPropFlowState) else (y0, 0.0)
        flat, _, E = self._flat(w0)
        square = self._square(gradient(E)(flat))
        nu0 = jnp.asarray(nu0, flat.dtype)
        if not isinstance(nu0, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(nu0) & (nu0 >= 0))):
            raise InputError("nu_0 must be finite and >= 0 (an EMA of squared gradients); got "
                             f"min {float(jnp.min(nu0)):.4g}{' with NaN/Inf' if not bool(jnp.all(jnp.isfinite(nu0))) else ''}")
        if nu0.shape not in ((), square.shape) or (self.scalar and nu0.shape != ()):
            shape = "a scalar" if self.scalar else f"a scalar or a vector of shape {square.shape}"
            raise InputError(f"nu_0 must be {shape} (the EMA of the squared gradient before the first step), got "
                             f"shape {nu0.shape}")
        return w0, self.beta2 * nu0 + (1 - self.beta2) * square


class RMSPropStableFlow(_RMSPropFlow, AbstractDiscrete):
    """Stable flow of RMSProp in step time (the paper's): dw/dtau = -P(nu)^{-1} grad L, dnu/dtau = ((1 - beta2)/beta2)
    (grad L^2 - nu) (||grad L||^2 for ``scalar``), P = (sqrt(nu) + eps)/eta; discretized as the authors do, by
    Euler substeps of dt = 1/``substeps`` per RMSProp step (one gradient each), so that before the edge of
    stability it coincides with `RMSPropCentralFlow` run with the same substeps. Euler is stable while the
    effective sharpness S_eff = lambda_max(P^{-1} H) < 2 substeps; the authors take substeps >= 2 S_eff for
    accuracy (S_eff keeps growing along the stable flow past the edge of stability: check it on long runs).

    State: `RMSPropFlowState` (params, nu) from parameters or (w_0, nu_0) (`start`); RMSProp's w_k at tau = k."""

    substeps: int = eqx.field(static=True)
    time_unit = TimeUnit.STEP

    def __init__(self, loss, lr, beta2=0.99, eps=1e-8, scalar=False, substeps=4):
        self._setup(loss, lr, beta2, eps, scalar)
        self.substeps = integer_parameter(substeps, "substeps")
        self._check_substeps()

    def init(self, w0, k0=0):
        """`RMSPropFlowState` (w_0, nu_1) at tau = 0 (`start`)."""
        return RMSPropFlowState(*self.start(w0))

    def field(self, w, nu):
        """(dw/dtau, dnu/dtau) at (w, nu)."""
        flat, unravel, E = self._flat(w)
        g = gradient(E)(flat)
        return unravel(-g / self.preconditioner(nu)), self.rate * (self._square(g) - nu)

    def step(self, state, k):
        def substep(i, carry):
            w, nu = carry
            dw, dnu = self.field(w, nu)
            return jax.tree_util.tree_map(lambda a, b: a + b / self.substeps, w, dw), nu + dnu / self.substeps

        return RMSPropFlowState(*jax.lax.fori_loop(0, self.substeps, substep, (state.params, state.nu)))

    def params(self, state):
        return state.params

    @property
    def cost(self):
        """Per step: ``substeps`` gradients."""
        return StepCost(self.substeps, 0.0, 0.0)


class Drift(NamedTuple):
    """One substep's analysis at (w, nu) (flat vectors): generalized eigenpairs (lam, U with U^T P U = I), the
    critical mask, g, D (k, k, n), the SDCP data (A, B as a k^2 x k^2 matrix, symmetrized) and solution X, and the
    drift (dw/dtau, dnu/dtau)."""

    X: jax.Array
    U: jax.Array
    lam: jax.Array
    critical: jax.Array
    g: jax.Array
    D: jax.Array
    A: jax.Array
    B: jax.Array
    dw: jax.Array
    dnu: jax.Array
    sq_grad: jax.Array


class RMSPropCentralFlow(_RMSPropFlow, AbstractDiscrete):
    """Central flow of RMSProp (per-coordinate, or ``scalar``) in step time, ``substeps`` Euler substeps per step
    (module docstring: the paper's flow and the discretization of the authors' code).

    Per substep: top-k eigenpairs of P^{-1/2} H P^{-1/2} (the generalized problem H u = lambda P u; ``method`` as in
    `CentralFlow`: "dense", "lanczos" warm-started from the last top vector, "lobpcg" warm-started from the last
    block; None: `solve_eigenpairs`' default by size), critical set lambda > ``threshold`` (1.95, the authors'),
    k(k+1)/2 third-derivative products, the k x k SDCP, one gradient. State: `RMSPropFlowState` (params, nu, block,
    HVPs of the eigensolver). RMSProp's w_k sits at tau = k. ``lr``, ``beta2``, ``eps``, ``threshold``, ``tol`` are
    arrays (new values reuse the compiled code); ``k``, ``substeps``, ``method``, ``lanczos_steps``,
    ``max_iterations``, ``scalar`` are static. When nu = 0 at a coordinate its P'(nu) is taken as 0 (there
    P = eps/eta and nu' = rate g^2 >= 0).
    """

    k: int = eqx.field(static=True)
    threshold: object
    substeps: int = eqx.field(static=True)
    method: object = eqx.field(static=True)
    lanczos_steps: int = eqx.field(static=True)
    tol: object
    max_iterations: int = eqx.field(static=True)
    time_unit = TimeUnit.STEP

    def __init__(self, loss, lr, beta2=0.99, eps=1e-8, scalar=False, k=3, threshold=1.95, substeps=4, method=None,
                 lanczos_steps=30, tol=1e-9, max_iterations=50):
        self._setup(loss, lr, beta2, eps, scalar)
        if method not in (None, "dense", "lanczos", "lobpcg"):
            raise InputError(f"method must be None, 'dense', 'lanczos' or 'lobpcg', got {method!r}")
        self.k, self.substeps = integer_parameter(k, "k"), integer_parameter(substeps, "substeps")
        self.threshold = real_parameter(threshold, "threshold (on the eigenvalues of P^-1 H)", 0.0, 2.0)
        self.method = method
        self.lanczos_steps = integer_parameter(lanczos_steps, f"lanczos_steps (at least k = {self.k} Ritz pairs)",
                                               self.k if method == "lanczos" else 1)
        self.tol = real_parameter(tol, "tol", 0.0)
        self.max_iterations = integer_parameter(max_iterations, "max_iterations")
        self._check_substeps()

    def _method(self, n):
        return _default_eigensolver(self.method, n)

    def drift(self, w, nu, start=None):
        """`Drift` at (w, nu) for one substep dt = 1/substeps (compiled); ``start`` warm-starts the eigensolver."""
        return _compiled_drift(self, w, nu, start)

    def _drift(self, w, nu, start, method=None):
        flat, _, E = self._flat(w)
        n, k, dt, rate = flat.size, self.k, 1.0 / self.substeps, self.rate
        P = jnp.broadcast_to(self.preconditioner(nu), flat.shape)
        s = P ** -0.5
        method = method or self._method(n)
        steps = {"dense": None, "lanczos": self.lanczos_steps, "lobpcg": self.max_iterations}[method]
        start = start[:, 0] if method == "lanczos" and start is not None else start
        result = solve_eigenpairs(lambda u: E(s * u), flat / s, k, method, start, steps, self.tol)
        lam, U = result.values, s[:, None] * result.vectors               # U^T P U = I, H U = P U diag(lam)
        block = result.block if method == "lobpcg" else result.vectors
        critical = lam > self.threshold
        g = gradient(E)(flat)
        rows, cols = jnp.triu_indices(k)
        upper = jax.vmap(lambda a, b: third(E)(flat, a, b))(U.T[rows], U.T[cols])
        D = jnp.zeros((k, k, n), flat.dtype).at[rows, cols].set(upper).at[cols, rows].set(upper)
        pairs = U.T[:, None, :] * U.T[None, :, :]                          # (k, k, n): u_i * u_j
        HU = (P[:, None] * U * lam[None, :]).T                              # (k, n)
        sq = HU[:, None, :] * HU[None, :, :]                                # (k, k, n): (H u_k) * (H u_l)
        dnu0 = rate * (self._square(g) - nu)
        dnuX = rate * (jnp.sum(sq, axis=-1) if self.scalar else sq)        # (k, k) or (k, k, n)
        slope = jnp.where(nu > 0, 1.0 / (2 * self.lr * jnp.sqrt(jnp.where(nu > 0, nu, 1.0))), 0.0)   # P'(nu)
        dP0 = jnp.broadcast_to(slope * dnu0, (n,))
        dPX = jnp.broadcast_to((slope * dnuX)[..., None] if self.scalar else slope * dnuX, (k, k, n))
        dw0, dwX = -g / P, -0.5 * D / P
        A = jnp.diag(2.0 - lam) + dt * (2 * pairs @ dP0 - D @ dw0)
        B = dt * (2 * jnp.einsum("ijn,kln->ijkl", pairs, dPX) - jnp.einsum("ijn,kln->ijkl", D, dwX))
        B = B.reshape(k * k, k * k)
        B = 0.5 * (B + B.T)
        X = solve_sdcp(A, B, critical)
        dw = dw0 + jnp.einsum("kl,kln->n", X, dwX)
        dnu = dnu0 + jnp.einsum("kl,kl...->...", X, dnuX)
        sq_grad = self._square(g) + jnp.einsum("kl,kl...->...", X, sq if not self.scalar else jnp.sum(sq, -1))
        return Drift(X, U, lam, critical, g, D, A, B, dw, dnu, sq_grad), block, result.hvps, result

    def init(self, w0, k0=0):
        """`RMSPropFlowState` at tau = 0 from parameters or (w_0, nu_0) (`start`)."""
        flat, _, _ = self._flat(w0.params if isinstance(w0, RMSPropFlowState) else w0)
        if jnp.finfo(flat.dtype).bits < 32:
            raise PrecisionError(f"RMSPropCentralFlow needs float32 or float64 parameters, got {flat.dtype} (the "
                                 "eigensolvers have no half-precision kernels); start from y0 cast to float64")
        columns = self.k + (2 if self._method(flat.size) == "lobpcg" else 0)
        block = jax.random.normal(jax.random.PRNGKey(0), (flat.size, columns), flat.dtype)
        w0, nu = self.start(w0)
        zero = jnp.zeros((), jnp.int64)
        return RMSPropFlowState(w0, nu, block, zero, zero, zero)

    def step(self, state, k):
        """``substeps`` Euler substeps. As `CentralFlow`: a substep whose eigensolver missed its tolerance, or whose
        k tracked eigenvalues are all critical (more may lie outside the block), is counted in the state
        (``unconverged``, ``crowded``) and warned about once per run (RuntimeWarning, through jax.debug.callback)."""
        method = self._method(sum(jnp.size(a) for a in jax.tree_util.tree_leaves(state.params)))
        advice = _advice(method, self.lanczos_steps, self.max_iterations)

        def substep(i, carry):
            w, nu, block, hvps, unconverged, crowded = carry
            flat, unravel, _ = self._flat(w)
            d, block, used, result = self._drift(w, nu, block)
            missed = ~(result.converged & jnp.all(jnp.isfinite(d.lam)))
            full = d.lam[-1] > self.threshold
            _warn_once((("unconverged", missed, unconverged), ("critical", full, crowded)), k, d.lam, result,
                       self.threshold, k=self.k, advice=advice, flow="RMSPropCentralFlow",
                       level_name="threshold (on P^-1 H)")
            return (unravel(flat + d.dw / self.substeps), nu + d.dnu / self.substeps, block, hvps + used,
                    unconverged + missed, crowded + full)

        return RMSPropFlowState(*jax.lax.fori_loop(0, self.substeps, substep, tuple(state)))

    def params(self, state):
        return state.params

    @property
    def cost(self):
        """Per step: ``substeps`` x (1 gradient + k(k+1)/2 third-derivative products); eigensolver HVPs in the state."""
        return StepCost(self.substeps, 0.0, self.substeps * self.k * (self.k + 1) / 2)

    def counts(self, state):
        return StepCost(0.0, state.hvps, 0.0)

    def predictions(self, w, nu):
        """The paper's time-average predictions at a flow state (w, nu): loss L + (1/2)<Sigma, H> = L + (1/2) sum_i
        X_ii lambda_i; squared gradient norm ||g||^2 + tr(H Sigma H); the expected squared gradient
        E[g^2] (the nu target, ``sq_grad``); Sigma = U X U^T; X; the preconditioned eigenvalues lambda (P^{-1} H);
        P. Eigenpairs from a cold solve: dense when the flow's method is, else LOBPCG to ``tol`` (as `CentralFlow`).
        X is the substep's SDCP solution (the flow's own Sigma at that state)."""
        return _compiled_predictions(self, w, nu)

    def _predictions(self, w, nu):
        flat, _, E = self._flat(w)
        d = self._drift(w, nu, None, "dense" if self._method(flat.size) == "dense" else "lobpcg")[0]
        sq = (self.preconditioner(nu) * jnp.ones_like(flat))[:, None] * d.U * d.lam[None, :]
        return {"predicted_loss": E(flat) + 0.5 * jnp.sum(jnp.diag(d.X) * d.lam),
                "predicted_grad_norm2": d.g @ d.g + jnp.sum(d.X * (sq.T @ sq)), "sq_grad": d.sq_grad,
                "X": d.X, "Sigma": d.U @ d.X @ d.U.T, "lam": d.lam, "P": self.preconditioner(nu)}


_compiled_drift = eqx.filter_jit(lambda flow, w, nu, start: flow._drift(w, nu, start)[0])
_compiled_predictions = eqx.filter_jit(lambda flow, w, nu: flow._predictions(w, nu))
