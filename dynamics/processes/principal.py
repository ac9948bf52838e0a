"""The principal flow (Rosca, Wu, Qin, Dherin, TMLR 2023): theta' = phi_h(H) g,  phi_h(z) = log(1 - h z) / (h z).

With (lambda_i, u_i) the Hessian's eigenpairs, theta' = sum_i phi_h(lambda_i) (g.u_i) u_i. On every quadratic
its (complex) solution at t = k h equals GD iterate k exactly, for any real h lambda != 1: convergence
(h lambda in (0, 1)), period-2 oscillation ((1, 2)), divergence (> 2) and saddles (lambda < 0). Branch: for real
z, log(1 - z) = ln|1 - z| + i pi for z > 1 (principal value); for the complex eigenvalues of complex-symmetric
Hessians (non-quadratic holomorphic losses at complex states) the cut lies on the negative imaginary axis of 1 - z,
so the field is continuous where 1 - h lambda crosses the negative real axis (`logm_cut`). phi_h(0) = -1 recovers
gradient flow; the series -(1 + z/2 + z^2/3 + ...) recovers IGR and all principal BEA terms.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, hessian, holomorphy_defect, hvp, third
from ..errors import InputError, StepSizeError, error_if
from ..linalg import hessian_eigenpairs
from .arguments import flag, integer_parameter
from .base import AbstractFlow, StepCost, positive_lr

#: the regularization of phi_h's singular point h lambda = 1: |1 - h lambda| is floored at this value, so along such
#: an eigenvector the flow contracts by SINGULAR_FLOOR per GD step where GD lands exactly (a relative difference of
#: 1e-12 per step; the field stays finite and continuous in lambda).
SINGULAR_FLOOR = 1e-12
#: matrix logarithm (complex Hessian): square roots until ||X - I||_1 <= LOG_SCALED_NORM, then the atanh series
#: 2 sum_j W^(2j+1)/(2j+1), W = (X - I)(X + I)^-1, ||W|| <~ 0.13, LOG_SERIES_TERMS terms: 0.13^25 / 25 < 1e-23.
LOG_SCALED_NORM = 0.25
LOG_SERIES_TERMS = 12
#: Denman-Beavers square-root iterations (quadratic convergence: ~log2 of the spectral spread plus 6) and square roots
#: (each halves the argument of the eigenvalues' logarithms) at most; exceeding either raises StepSizeError.
SQRT_ITERATIONS = 100
#: a square root counts as converged when its last relative change is below this (quadratic convergence: the error
#: is then at the round-off floor; near the cut or at h lambda = 1 the changes stay O(1) or blow up).
SQRT_CONVERGED = 1e-10
MAX_SQUARE_ROOTS = 64
VARIANTS = ("complex", "real")
METHODS = ("dense", "topk")


def principal_coefficient(z, variant="complex"):
    """phi(z) = log(1 - z)/z for real z = h lambda, evaluated without cancellation.

    |z| < 1e-4: series -(1 + z/2 + z^2/3 + z^3/4 + z^4/5); z < 1: log1p(-z)/z; z > 1: (ln(z - 1) + i pi)/z.
    variant="real" drops the i pi/z (the Re-PF of the paper: the envelope of oscillating components).
    z = 1 is singular (phi -> -inf logarithmically: GD lands on the minimizer along that eigenvector in one step);
    regularized: |1 - z| is floored at SINGULAR_FLOOR, so phi(1) = ln(SINGULAR_FLOOR) = -27.6 and the flow contracts
    that component by 1e-12 per step instead of zeroing it (continuous in z, never an error).
    """
    small = jnp.abs(z) < 1e-4
    near = jnp.abs(z - 1.0) < SINGULAR_FLOOR
    safe = jnp.where(small, 0.5, z)
    above = safe > 1.0
    log_abs = jnp.where(above, jnp.log(jnp.where(above, safe - 1.0, 1.0)), jnp.log1p(-jnp.where(above, 0.0, safe)))
    log_abs = jnp.where(near, jnp.log(SINGULAR_FLOOR), log_abs)
    series = -(1.0 + z / 2.0 + z**2 / 3.0 + z**3 / 4.0 + z**4 / 5.0)
    real = jnp.where(small, series, log_abs / safe)
    if variant == "real":
        return real
    return real + 1j * jnp.where(above & ~small, jnp.pi / safe, 0.0)


def _sqrtm(A):
    """Principal square root by the Denman-Beavers iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2 (Y -> A^(1/2),
    Z -> A^(-1/2); matrix products and inverses only, so it runs on CPU and GPU). Returns (root, converged)."""
    eye = jnp.eye(A.shape[0], dtype=A.dtype)

    def body(carry):
        Y, Z, k, change, _ = carry
        Y_next, Z_next = (Y + jnp.linalg.inv(Z)) / 2, (Z + jnp.linalg.inv(Y)) / 2
        return Y_next, Z_next, k + 1, jnp.max(jnp.abs(Y_next - Y)) / jnp.max(jnp.abs(Y_next)), change

    def cond(carry):
        _, _, k, change, previous = carry
        # stop at 1e-15, or once the change no longer halves below 1e-8 (the round-off floor ~ eps cond)
        stalled = (change < 1e-8) & (change > 0.5 * previous)
        return (k < SQRT_ITERATIONS) & (change > 1e-15) & ~stalled

    inf = jnp.asarray(jnp.inf, A.real.dtype)
    Y, _, _, change, _ = lax.while_loop(cond, body, (A, eye, 0, inf, inf))
    return Y, jnp.isfinite(change) & (change <= SQRT_CONVERGED)


def logm_cut(M):
    """log(M) with the branch cut of every eigenvalue's logarithm on the NEGATIVE IMAGINARY axis:
    log(M) = Log(-i M) + i pi/2 I (Log the principal matrix logarithm), so that for an eigenvalue w,
    log w = ln|w| + i arg w with arg w in (-pi/2, 3 pi/2): the negative real axis (1 - h lambda for a real
    h lambda > 1) is inside the domain, with log(-r) = ln r + i pi as on the principal branch.
    Log by inverse scaling and squaring (Higham, Functions of Matrices, 2008, section 11.5): s Denman-Beavers
    square roots until ||X - I||_1 <= 1/4, then Log X = 2 atanh((X - I)(X + I)^-1) by its series, times 2^s.
    Products, inverses and solves only: runs on CPU and GPU (no `eig`). Returns (log, ok); ok is False when a
    square root did not converge (an eigenvalue on or at the cut, or M singular: h lambda = 1)."""
    eye = jnp.eye(M.shape[0], dtype=M.dtype)

    def body(carry):
        X, s, ok = carry
        root, converged = _sqrtm(X)
        return root, s + 1, ok & converged

    def cond(carry):
        X, s, ok = carry
        return ok & (s < MAX_SQUARE_ROOTS) & (jnp.max(jnp.sum(jnp.abs(X - eye), axis=0)) > LOG_SCALED_NORM)

    X, s, ok = lax.while_loop(cond, body, (-1j * M, 0, jnp.asarray(True)))
    W = jnp.linalg.solve((X + eye).T, (X - eye).T).T
    W2, term, total = W @ W, W, W
    for j in range(1, LOG_SERIES_TERMS):
        term = term @ W2
        total = total + term / (2 * j + 1)
    log = 2.0 ** s * 2.0 * total + 0.5j * jnp.pi * eye
    return log, ok & (s < MAX_SQUARE_ROOTS) & jnp.all(jnp.isfinite(log))


def principal_matrix_apply(z_matrix, v):
    """phi(Z) v, phi(z) = log(1 - z)/z, for a complex (e.g. complex-symmetric) matrix Z = h H without its
    eigendecomposition: phi is minus the divided difference of log at (1 - z, 1), so phi(Z) = -[log B]_{12} with
    B = [[I - Z, I], [0, I]] [derived: log B commutes with B, so its (1, 2) block F solves (X - I) F = log X - log 1
    with X = I - Z, i.e. F = -Z^-1 log(I - Z), extended by continuity to singular Z]; log with its cut on the
    negative imaginary axis (`logm_cut`), continuous across the negative real axis where 1 - h lambda sits in the
    oscillating regime.
    Z = 0 needs no special case (the divided difference is log'(1) = 1). Returns (phi(Z) v, ok)."""
    n = z_matrix.shape[0]
    eye, zero = jnp.eye(n, dtype=z_matrix.dtype), jnp.zeros((n, n), z_matrix.dtype)
    log, ok = logm_cut(jnp.block([[eye - z_matrix, eye], [zero, eye]]))
    return -(log[:n, n:] @ v), ok


class PrincipalFlow(AbstractFlow):
    """Principal flow theta' = phi_h(H(theta)) g(theta) of GD with learning rate h (physical time t = k h).

    variant="complex": the state is complex; ``promote(y0)`` turns a real y0 into the complex state on the real
    point (the real part of the solution is what GD is compared with). Exact on quadratics at t = k h in every
    regime. Its matrix function: where the Hessian is real (quadratics, real states), `eigh` and
    `principal_coefficient`; where it is complex (a holomorphic non-quadratic loss at a complex state: H is complex-
    symmetric, not Hermitian), phi_h(H) g by an inverse-scaling-and-squaring matrix logarithm
    (`principal_matrix_apply`): matrix products, inverses and solves, so both run on CPU and GPU (no `eig`). Branch
    of log(1 - h lambda): the cut is on the negative imaginary axis of 1 - h lambda (h lambda = 1 + i s, s > 0), so
    the negative real axis, where 1 - h lambda sits in the oscillating regime, is crossed continuously and real h
    lambda > 1 gets the principal value ln(h lambda - 1) + i pi. A fixed cut (not one chosen from the previous step)
    keeps the field a function of the state, as an ODE needs. An eigenvalue exactly on the cut gets the limit from
    one side, or `StepSizeError` where the logarithm does not converge.
    variant="real": real state, phi replaced by Re phi = ln|1 - h lambda|/(h lambda) (the envelope of oscillating
    directions); for any smooth real loss.
    correction=True adds the non-principal BEA term -(h^2/12) T[g, g], raising the local order from 3 to 4.
    method="dense": full Hessian (n HVPs) + eigh (or the 2n x 2n matrix logarithm), O(n^3): up to a few
    thousand parameters.
    method="topk": Lanczos (``lanczos_steps`` HVPs from the gradient) for the top-k eigenpairs, phi on
    them and IGR -(I + (h/2) H) g_perp on the complement; valid while h |lambda_{k+1}| << 1, which
    ``diagnostics`` reports. Real state only.
    h lambda = 1 is not a removable point: phi_h(lambda) = log(1 - h lambda)/(h lambda) -> -infinity
    (logarithmically) there, and the component along that eigenvector, (1 - h lambda)^(t/h) z(0), jumps from
    z(0) to 0 at t = 0+, which no finite field produces (GD lands on the minimizer along it in one step). It is
    regularized, not refused: |1 - h lambda| is floored at SINGULAR_FLOOR = 1e-12, so the flow contracts that
    component by 1e-12 per step (GD: to 0) and stays finite and continuous in lambda; the stiffness this adds
    (rate 27.6/h) is what an adaptive solver sees. Only a complex Hessian with 1 - h lambda on the branch cut
    raises `StepSizeError`. A non-holomorphic loss on the complex variant raises `InputError` (checked inside the
    compiled run).
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

    def promote(self, y0):
        """The initial state this flow runs on: for variant="complex", y0 with real leaves promoted to complex
        (imaginary part 0; float64 -> complex128), so a real y0 starts the complex PF on the real point, and the
        real part of the solution is what GD is compared with; for variant="real", y0 unchanged."""
        if self.variant == "real":
            return y0
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.result_type(leaf, jnp.complex64)), y0)

    def _check_state(self, flat):
        if self.variant == "complex" and not jnp.iscomplexobj(flat):
            raise InputError("PrincipalFlow(variant='complex') integrates a complex state (the PF leaves the real "
                             "line in the oscillating regime): start from flow.promote(y0) (real leaves -> complex)")
        if self.variant == "real" and jnp.iscomplexobj(flat):
            raise InputError("PrincipalFlow(variant='real') needs a real state")

    def _eigh(self, H, g):
        lam, U = jnp.linalg.eigh(H)
        z = self.lr * lam
        return U @ (principal_coefficient(z, self.variant) * (U.T @ g))

    def _dense(self, E, flat, g):
        H = hessian(E)(flat)
        if not jnp.iscomplexobj(H):
            return self._eigh(H, g)

        def complex_hessian(H, g):
            Z = self.lr * H
            out, ok = principal_matrix_apply(Z, g)
            # h lambda = 1 makes I - Z singular: the same regularization as `principal_coefficient`, |1 - h lambda|
            # -> SINGULAR_FLOOR, by the shift Z - SINGULAR_FLOOR I (it moves the other eigenvalues by 1e-12; the
            # shifted logarithm is accurate to ~4e-6 relative at that conditioning, measured against eig)
            out, ok = lax.cond(ok, lambda: (out, ok),
                               lambda: principal_matrix_apply(Z - SINGULAR_FLOOR * jnp.eye(Z.shape[0], dtype=Z.dtype),
                                                              g))
            return error_if(out, ~ok,
                            "principal flow (complex state): the matrix logarithm of I - h H did not converge (a "
                            "non-finite Hessian, or 1 - h lambda at the branch cut, the negative imaginary axis, for "
                            "an eigenvalue lambda of the complex Hessian); change the learning rate h slightly",
                            StepSizeError)

        # A real Hessian (quadratics, real states) keeps the eigh route: exact h lambda, exact singular check.
        return lax.cond(jnp.all(H.imag == 0), lambda H, g: self._eigh(H.real, g).astype(g.dtype), complex_hessian,
                        H, g)

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
        return U @ (principal_coefficient(z, "real") * along) + igr

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
            # h lambda of the real part of the Hessian (exact for real Hessians; complex ones: use
            # principal_matrix_apply, the spectrum itself needs `eig`, which is CPU-only)
            return {"h_lambda": self.lr * jnp.linalg.eigvalsh(jnp.real(hessian(E)(flat)))[::-1]}
        lam, _ = self._top(E, flat, gradient(E)(flat), self.k + 1)
        return {"h_lambda": self.lr * lam[: self.k], "h_lambda_next": self.lr * lam[self.k]}
