"""Implicit norm of a fully connected two-layer linear network with one hidden neuron (Azulay, Moroshko, Nacson,
Woodworth, Srebro, Globerson, Soudry, ICML 2021, Theorem 6.1), computed without running the flow.

Model f(x) = a w^T x, w in R^d, a scalar, predictor beta = a w; squared loss (1/2)||X beta - y||^2, gradient flow.
delta = a^2 - ||w||^2 is conserved; the theorem takes delta >= 0 (then a never changes sign). Its Q (as in the
authors' code): with rho = ||beta||, r = sqrt(rho^2 + delta^2/4),
    Q(beta) = rho^-1 (rho^2 - (delta/2)(delta/2 + r)) sqrt(r - delta/2) - (3/2) sign(a0) w0^T beta,
strictly convex, and the interpolating GF limit is argmin Q s.t. X beta = y.

[derived] route used here (not the paper's): w(t) = w0 - X^T int a r dt stays in w0 + range(X^T), and with
delta conserved a^2 = delta + ||w||^2, so beta = sign(a0) sqrt(delta + ||w||^2) w = grad Phi(sign(a0) w),
Phi(u) = (delta + ||u||^2)^(3/2) / 3. The limit is beta = grad Phi(u0 + X^T nu), u0 = sign(a0) w0, for the nu that
minimizes the strictly convex dual Phi(u0 + X^T nu) - y^T nu (damped Newton). The certificate is the paper's KKT
condition, from beta alone: grad Q(beta) = (3/2)(beta / sqrt(A(rho)) - u0) in range(X^T), A = delta/2 + r = a^2.
"""

import dataclasses

import numpy as np

from ..errors import DynamicsError, InputError
from ..validation import finite_array
from .implicit_norms import certificate_inputs, certificate_residuals, require_interpolant


@dataclasses.dataclass(frozen=True)
class FCNeuronSolution:
    """argmin Q: beta = a w, the network's limit (w, a), dual nu (w = sign(a0) (u0 + X^T nu) - see module), residual."""

    beta: np.ndarray
    w: np.ndarray
    a: float
    nu: np.ndarray
    delta: float
    residual: float
    iterations: int


def _neuron_init(w0, a0, d=None):
    w0, a0 = finite_array("w0", w0, ndim=1), finite_array("a0", a0, ndim=0)
    if np.iscomplexobj(w0) or np.iscomplexobj(a0):
        raise InputError("w0 and a0 must be real")
    w0, a0 = w0.astype(float), a0.astype(float)
    if d is not None and w0.shape != (d,):
        raise InputError(f"w0 must have shape ({d},) (one weight per input column of X), got {w0.shape}")
    a0 = float(a0)
    if a0 == 0:
        raise InputError("a0 = 0: Theorem 6.1 needs a nonzero output weight (its sign fixes the limit's branch)")
    delta = a0**2 - float(w0 @ w0)
    if delta < 0 and -delta <= 16 * np.finfo(float).eps * (a0**2 + float(w0 @ w0)):
        delta = 0.0  # balanced up to rounding (e.g. a0 = ||w0|| computed through square roots)
    if delta < 0:
        raise InputError(f"delta = a0^2 - ||w0||^2 = {delta:.6g} < 0: Theorem 6.1 (Azulay et al. 2021) covers "
                         "delta >= 0 only (for delta < 0 the output weight can cross zero)")
    return w0, a0, delta


def fc_neuron_delta(w0, a0):
    """The conserved delta = a0^2 - ||w0||^2 (checked >= 0, a0 != 0)."""
    return _neuron_init(w0, a0)[2]


def fc_neuron_q(beta, w0, a0):
    """The paper's Q(beta) (closed form of Theorem 6.1, as in the authors' code); Q is +inf nowhere, finite on R^d."""
    w0, a0, delta = _neuron_init(w0, a0)
    beta = finite_array("beta", beta, ndim=1).astype(float)
    if beta.shape != w0.shape:
        raise InputError(f"beta must have the shape of w0 {w0.shape}, got {beta.shape}")
    rho = float(np.linalg.norm(beta))
    h = delta / 2
    r = np.hypot(rho, h)
    radial = 0.0 if rho == 0 else (rho**2 - h * (h + r)) * np.sqrt(max(r - h, 0.0)) / rho
    return float(radial - 1.5 * np.sign(a0) * (w0 @ beta))


def _q_gradient(beta, u0, delta):
    """grad Q = (3/2)(beta / |a(beta)| - u0), |a|^2 = A(rho) = delta/2 + sqrt(rho^2 + delta^2/4) (0/0 := 0 at 0)."""
    rho = np.linalg.norm(beta)
    A = delta / 2 + np.hypot(rho, delta / 2)
    scaled = np.zeros_like(beta) if rho == 0 else beta / np.sqrt(A)
    return 1.5 * (scaled - u0)


def fc_neuron_certificate(X, y, beta, w0, a0):
    """(feasibility ||X beta - y|| / ||y||, ||(I - P_range X^T) grad Q(beta)|| / ||grad Q(beta)||) for Theorem 6.1's Q;
    each ratio is the absolute residual when its denominator is 0."""
    X, y, beta = certificate_inputs(X, y, beta)
    w0, a0, delta = _neuron_init(w0, a0, X.shape[1])
    return certificate_residuals(X, y, beta, _q_gradient(beta.astype(float), np.sign(a0) * w0, delta))


def fc_neuron_minimizer(X, y, w0, a0, tol=1e-13, max_iter=100, nu0=None):
    """argmin Q(beta) s.t. X beta = y for f(x) = a w^T x from (w0, a0) (Azulay et al. 2021, Theorem 6.1).

    Damped Newton on the strictly convex, coercive dual D(nu) = Phi(u0 + X^T nu) - y^T nu (module docstring);
    Armijo backtracking on D. Stops when ||X beta - y|| <= tol ||y||. Cost per iteration: one N x N solve.
    """
    X, y = require_interpolant(X, y)
    w0, a0, delta = _neuron_init(w0, a0, X.shape[1])
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[0]:
        raise InputError(f"the rows of X are linearly dependent (rank {rank} < {X.shape[0]} equations): the dual nu "
                         "is not unique; drop the dependent equations (the minimizer is the same)")
    s0 = np.sign(a0)
    u0 = s0 * w0
    if nu0 is None:
        nu = np.zeros(X.shape[0])
    else:
        nu = finite_array("nu0", nu0, ndim=1).astype(float)
        if nu.shape != (X.shape[0],):
            raise InputError(f"nu0 must have shape ({X.shape[0]},), got {nu.shape}")
    scale = max(np.linalg.norm(y), 1e-300)

    def state(nu):
        u = u0 + X.T @ nu
        c = delta + u @ u
        return u, c, np.sqrt(c) * u, c**1.5 / 3 - y @ nu

    u, c, beta, dual = state(nu)
    for it in range(max_iter):
        F = X @ beta - y
        if np.linalg.norm(F) <= tol * scale:
            return FCNeuronSolution(beta, s0 * u, float(s0 * np.sqrt(c)), nu, delta,
                                    float(np.linalg.norm(F) / scale), it)
        if c == 0:
            raise DynamicsError("fc_neuron_minimizer: the dual iterate reached u = 0 with delta = 0 (Phi is not twice "
                                "differentiable there); start from another nu0")
        Xu = X @ u
        H = np.sqrt(c) * (X @ X.T) + np.outer(Xu, Xu) / np.sqrt(c)
        step = np.linalg.solve(H, F)
        slope = F @ step
        t = 1.0
        while t > 1e-12:
            trial = state(nu - t * step)
            decrease = trial[3] <= dual - 1e-4 * t * slope  # Armijo on the dual; near the optimum, on the residual
            if decrease or np.linalg.norm(X @ trial[2] - y) < (1 - 1e-4 * t) * np.linalg.norm(F):
                break
            t /= 2
        if t <= 1e-12:
            raise DynamicsError(f"fc_neuron_minimizer: no Newton step decreases the dual (residual "
                                f"{np.linalg.norm(F) / scale:.3g} after {it} iterations)")
        nu = nu - t * step
        u, c, beta, dual = trial
    raise DynamicsError(f"fc_neuron_minimizer: Newton did not reach {tol:g} in {max_iter} iterations (last residual "
                        f"{np.linalg.norm(X @ beta - y) / scale:.3g})")
