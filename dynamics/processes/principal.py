"""The principal flow (Rosca, Wu, Qin, Dherin, TMLR 2023): theta' = phi_h(H) g,  phi_h(z) = log(1 - h z) / (h z).

With (lambda_i, u_i) the Hessian's eigenpairs, theta' = sum_i phi_h(lambda_i) (g.u_i) u_i. On every quadratic
its (complex) solution at t = k h equals GD iterate k exactly, for any real h lambda != 1: convergence
(h lambda in (0, 1)), period-2 oscillation ((1, 2)), divergence (> 2) and saddles (lambda < 0). Principal
branch: log(1 - z) = ln|1 - z| + i pi for z > 1. phi_h(0) = -1 recovers gradient flow; the series
-(1 + z/2 + z^2/3 + ...) recovers IGR and all principal BEA terms.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, hessian, holomorphy_defect, hvp, third
from ..errors import InputError, StepSizeError, error_if
from ..linalg import hessian_eigenpairs
from .arguments import flag, integer_parameter
from .base import AbstractFlow, StepCost, positive_lr

#: |h lambda - 1| below this is treated as the singular point of phi_h.
SINGULAR_TOL = 1e-12
VARIANTS = ("complex", "real")
METHODS = ("dense", "topk")


def principal_coefficient(z, variant="complex"):
    """phi(z) = log(1 - z)/z for real z = h lambda, evaluated without cancellation.

    |z| < 1e-4: series -(1 + z/2 + z^2/3 + z^3/4 + z^4/5); z < 1: log1p(-z)/z; z > 1: (ln(z - 1) + i pi)/z.
    variant="real" drops the i pi/z (the Re-PF of the paper: the envelope of oscillating components).
    z = 1 is singular (phi -> -inf): GD lands on the minimizer along that eigenvector in one step.
    """
    small = jnp.abs(z) < 1e-4
    safe = jnp.where(small | (jnp.abs(z - 1.0) < SINGULAR_TOL), 0.5, z)
    above = safe > 1.0
    log_abs = jnp.where(above, jnp.log(jnp.where(above, safe - 1.0, 1.0)), jnp.log1p(-jnp.where(above, 0.0, safe)))
    series = -(1.0 + z / 2.0 + z**2 / 3.0 + z**3 / 4.0 + z**4 / 5.0)
    real = jnp.where(small, series, log_abs / safe)
    if variant == "real":
        return real
    return real + 1j * jnp.where(above & ~small, jnp.pi / safe, 0.0)


class PrincipalFlow(AbstractFlow):
    """Principal flow theta' = phi_h(H(theta)) g(theta) of GD with learning rate h (physical time t = k h).

    variant="complex": the state is complex (pass a complex y0); exact on quadratics at t = k h in every
    regime, with the real part physical. Its matrix function uses `eigh` (any device, no `eig`), which
    needs the Hessian to be real along the path: true for quadratics, and checked at run time (an
    error names the remedy) because holomorphic non-quadratic losses at complex states give
    complex-symmetric Hessians. variant="real": real state, phi replaced by Re phi = ln|1 - h lambda|/(h lambda)
    (the envelope of oscillating directions); for any smooth real loss.
    correction=True adds the non-principal BEA term -(h^2/12) T[g, g], raising the local order from 3 to 4.
    method="dense": full Hessian (n HVPs) + eigh, O(n^3): up to a few thousand parameters.
    method="topk": Lanczos (``lanczos_steps`` HVPs from the gradient) for the top-k eigenpairs, phi on
    them and IGR -(I + (h/2) H) g_perp on the complement; valid while h |lambda_{k+1}| << 1, which
    ``diagnostics`` reports. Real state only.
    Reaching h lambda = 1 exactly raises `StepSizeError` (phi_h is singular there); a non-holomorphic loss or a
    complex Hessian on the complex variant raises `InputError` (checked inside the compiled run).
    """

    loss: object
    lr: object
    variant: str = eqx.field(static=True)
    correction: bool = eqx.field(static=True)
    method: str = eqx.field(static=True)
    k: int = eqx.field(static=True)
    lanczos_steps: int = eqx.field(static=True)

    def __init__(self, loss, lr, variant="complex", correction=False, method="dense", k=4, lanczos_steps=None):
        if not callable(loss):
            raise InputError(f"loss must be a callable of the parameters, got {type(loss).__name__}")
        if variant not in VARIANTS:
            raise InputError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        if method == "topk" and variant == "complex":
            raise InputError("the top-k principal flow runs on a real state: use variant='real'")
        self.loss = loss
        self.lr = positive_lr(lr)
        self.variant = variant
        self.correction = flag(correction, "correction")
        self.method = method
        self.k = integer_parameter(k, "k")
        self.lanczos_steps = (max(3 * self.k, 30) if lanczos_steps is None else
                              integer_parameter(lanczos_steps, f"lanczos_steps (at least k = {self.k} Ritz pairs)",
                                                self.k if method == "topk" else 1))

    def step_cost(self, theta):
        """Per evaluation: 1 gradient + the Hessian (dense: n HVPs; top-k: ``lanczos_steps`` HVPs + 1 HVP for the
        IGR term on the complement) + 1 third-derivative product with ``correction``."""
        n = sum(jnp.size(leaf) for leaf in jax.tree_util.tree_leaves(theta))
        hvps = n if self.method == "dense" else self.lanczos_steps + 1
        return StepCost(1.0, float(hvps), 1.0 if self.correction else 0.0)

    @property
    def complex_state(self):
        """variant="complex" runs on complex states (its loss is checked holomorphic at run time)."""
        return self.variant == "complex"

    def _check_holomorphic(self, E, flat, g, out):
        return error_if(out, holomorphy_defect(E, flat, g) > 1e-8,
                        "principal flow (complex state): the loss is not holomorphic (its derivative violates "
                        "the Cauchy-Riemann equations, e.g. conj or abs inside); use variant='real'.")

    def _check_state(self, flat):
        if self.variant == "complex" and not jnp.iscomplexobj(flat):
            raise InputError("PrincipalFlow(variant='complex') needs a complex state: pass y0.astype(complex)")
        if self.variant == "real" and jnp.iscomplexobj(flat):
            raise InputError("PrincipalFlow(variant='real') needs a real state")

    def _not_singular(self, z, out):
        return error_if(out, jnp.any(jnp.abs(z - 1.0) < SINGULAR_TOL),
                        "principal flow: h * lambda = 1 for a Hessian eigenvalue, where phi_h = log(1 - h lambda) / "
                        "(h lambda) is singular (GD lands on the minimizer along that direction in one step); "
                        "change the learning rate h slightly", StepSizeError)

    def _dense(self, E, flat, g):
        H = hessian(E)(flat)
        if jnp.iscomplexobj(H):
            H = error_if(H, jnp.max(jnp.abs(H.imag)) > 1e-9 * (jnp.max(jnp.abs(H.real)) + 1e-300),
                         "principal flow (complex state): the Hessian is not real at this complex state "
                         "(a non-quadratic loss); eigh cannot form phi_h(H) there. Use variant='real'.")
            H = H.real
        lam, U = jnp.linalg.eigh(H)
        z = self.lr * lam
        coeff = principal_coefficient(z, self.variant)
        return self._not_singular(z, U @ (coeff * (U.T @ g)))

    def _top(self, E, flat, g, k):
        """Lanczos Ritz pairs started from the gradient (slightly tilted so it is never an exact eigenvector)."""
        start = g + 1e-3 * jnp.linalg.norm(g) * jnp.ones_like(g)
        return hessian_eigenpairs(E, flat, k, "lanczos", self.lanczos_steps, start)

    def _topk(self, E, flat, g):
        lam, U = self._top(E, flat, g, self.k)
        z = self.lr * lam
        along = U.T @ g
        g_perp = g - U @ along
        igr = -(g_perp + 0.5 * self.lr * hvp(E)(flat, g_perp))
        return self._not_singular(z, U @ (principal_coefficient(z, "real") * along) + igr)

    def field(self, t, theta):
        flat, unravel = ravel_pytree(theta)
        self._check_state(flat)
        E = lambda v: self.loss(unravel(v))
        g = gradient(E)(flat)
        out = self._dense(E, flat, g) if self.method == "dense" else self._topk(E, flat, g)
        if self.correction:
            out = out - self.lr**2 / 12.0 * third(E)(flat, g, g)
        if self.variant == "complex":
            out = self._check_holomorphic(E, flat, g, out)
        return unravel(out)

    def log_time_field(self, tau, theta):
        return jax.tree_util.tree_map(lambda v: jnp.exp(tau) * v, self.field(jnp.expm1(tau), theta))

    def diagnostics(self, theta):
        """h lambda for the k tracked and the next eigenvalue (top-k) or the whole spectrum (dense)."""
        flat, unravel = ravel_pytree(theta)
        E = lambda v: self.loss(unravel(v))
        if self.method == "dense":
            return {"h_lambda": self.lr * jnp.linalg.eigvalsh(jnp.real(hessian(E)(flat)))[::-1]}
        lam, _ = self._top(E, flat, gradient(E)(flat), self.k + 1)
        return {"h_lambda": self.lr * lam[: self.k], "h_lambda_next": self.lr * lam[self.k]}
