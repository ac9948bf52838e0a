"""Stationary preconditioner of the RMSProp central flow (Cohen, Damian, Talwalkar, Kolter, Lee, ICLR 2025,
arXiv:2410.24206; docs/flows.md section 17, "Predictions").

With w frozen, the central flow's nu relaxes to the nu_bar(w) where dnu/dtau = 0:

    nu = g^2 + diag(H Sigma H),   Sigma >= 0,   2P - H >= 0,   <Sigma, 2P - H> = 0,   P = diag(sqrt(nu) + eps)/eta

(g = grad L(w), H its Hessian; scalar RMSProp: ||g||^2 + tr(H Sigma H), P = p I). Complementarity gives
H Sigma H = 4 P Sigma P, and these are the KKT conditions of the convex program in s = sqrt(nu) >= 0

    min  sum_i phi_i(s_i)   s.t.   2 diag(s + eps)/eta >= H,
    phi_i(s) = s - 2 eps log(s + eps) + (g_i^2 - eps^2)/(s + eps),   phi_i'(s) = (s^2 - g_i^2)/(s + eps)^2,

with multiplier 2 Sigma/eta (phi' is increasing on s >= 0: phi'' = 2(s eps + g^2)/(s + eps)^3). At eps = 0 it is
the paper's  min tr P + eta^-2 ||g||^2_{P^-1}  s.t.  H <= 2P  (P = s/eta), multiplier 2 Sigma/eta^2. Scalar
RMSProp is one-dimensional: s = max(||g||, eta lambda_max(H)/2 - eps, 0). Per-coordinate: a primal log-barrier
(Newton) method on dense H, Sigma = eta^2 W^-1/(4t) read off the central path.
"""

import warnings
from typing import NamedTuple

import jax
import numpy as np
import scipy.linalg
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, hessian
from ..errors import InputError, SolverBudgetError
from ..processes.base import positive_lr, real_parameter

__all__ = ["RMSPropStationary", "rmsprop_stationary_preconditioner", "rmsprop_stationary_from_derivatives"]

#: a KKT residual above this (relative to max nu) warns that Sigma is inaccurate (measured: <= 5e-8 when every
#: |g_i| >= 1e-3; up to 0.19 with an exactly zero g_i on a coupled H)
KKT_WARN = 1e-6


class RMSPropStationary(NamedTuple):
    """The stationary preconditioner at w and its certificate.

    P: P_bar = (sqrt(nu_bar) + eps)/eta (a vector; a float for scalar RMSProp); nu: nu_bar; Sigma: the central flow's
    oscillation covariance there (n x n); multiplier: 2 Sigma/eta^2, the multiplier of H <= 2P in the paper's
    program; g, H: gradient and Hessian used. Certificate: feasibility = lambda_min(2P - H) (>= 0 up to round-off),
    complementarity = <Sigma, 2P - H> max(P)/max(nu) (dimensionless, -> 0), kkt_residual = max |nu - g^2 -
    diag(H Sigma H)| / max(nu) (the residual of dnu/dtau = 0; traced for scalar RMSProp)."""

    P: object
    nu: object
    Sigma: np.ndarray
    multiplier: np.ndarray
    g: np.ndarray
    H: np.ndarray
    feasibility: float
    complementarity: float
    kkt_residual: float


def rmsprop_stationary_preconditioner(loss, w, lr, scalar=False, eps=1e-8):
    """`RMSPropStationary` at parameters ``w`` (a pytree) of ``loss``: the nu_bar that the RMSProp central flow's
    nu reaches with w frozen (module docstring). Dense Hessian (n HVPs, n^2 memory): small and moderate n."""
    flat, unravel = ravel_pytree(w)
    flat = flat.astype(np.float64)       # the certificate is measured against these derivatives: float64 always
    E = lambda v: loss(unravel(v))
    return rmsprop_stationary_from_derivatives(np.asarray(jax.jit(gradient(E))(flat)),
                                               np.asarray(jax.jit(hessian(E))(flat)), lr, scalar, eps)


def rmsprop_stationary_from_derivatives(g, H, lr, scalar=False, eps=1e-8):
    """`RMSPropStationary` from a gradient ``g`` (n,) and a symmetric Hessian ``H`` (n, n). `StepSizeError` for
    lr <= 0; `InputError` for eps < 0, wrong shapes, non-finite or non-symmetric H."""
    lr = float(positive_lr(lr))
    eps = float(real_parameter(eps, "eps (added to sqrt(nu))", 0.0))
    if not isinstance(scalar, bool):
        raise InputError(f"scalar must be True (scalar RMSProp) or False (per-coordinate), got {scalar!r}")
    g, H = np.asarray(g, dtype=float), np.asarray(H, dtype=float)
    if g.ndim != 1 or g.size == 0 or H.shape != (g.size, g.size):
        raise InputError(f"g must be a vector (n,) and H a matrix (n, n), got shapes {g.shape} and {H.shape}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        raise InputError("g and H must be finite (NaN/Inf found): evaluate the loss at a point where it is defined")
    scale = max(np.abs(H).max(), np.finfo(float).tiny)
    if np.abs(H - H.T).max() > 1e-8 * scale:
        raise InputError(f"H must be symmetric, max |H - H^T| = {np.abs(H - H.T).max():.3g} (relative "
                         f"{np.abs(H - H.T).max() / scale:.3g} > 1e-8): pass a Hessian")
    H = 0.5 * (H + H.T)
    if scalar:
        s, Sigma = _scalar(g, H, lr, eps)
        nu, P, sq = s * s, (s + eps) / lr, g @ g + np.trace(H @ Sigma @ H)
        Pd = np.full(g.size, P)
    else:
        s, Sigma = _barrier(g * g, H, lr, eps)
        nu = s * s
        P = Pd = (s + eps) / lr
        sq = g * g + np.einsum("ij,jk,ki->i", H, Sigma, H)
    Z = 2 * np.diag(Pd) - H
    top = max(np.max(nu), np.finfo(float).tiny)
    kkt = float(np.max(np.abs(nu - sq)) / top)
    if kkt > KKT_WARN:
        warnings.warn(f"rmsprop_stationary: the KKT residual max|nu - g^2 - diag(H Sigma H)|/max(nu) is {kkt:.3g} "
                      f"(> {KKT_WARN:g}): Sigma (and the multiplier) are not accurate; nu itself usually is. Known "
                      "cause: coordinates with g_i ~ 0 coupled through H, where the barrier's central path leaves a "
                      "bias the final polish does not remove", RuntimeWarning, stacklevel=2)
    return RMSPropStationary(P, nu, Sigma, 2 * Sigma / lr ** 2, g, H, float(np.linalg.eigvalsh(Z)[0]),
                             float(np.sum(Sigma * Z) * np.max(Pd) / top), kkt)


def _scalar(g, H, lr, eps):
    """Scalar RMSProp: s = max(||g||, eta S/2 - eps, 0), Sigma = c V V^T/m on the top eigenspace (m-fold), with
    tr(H Sigma H) = nu - ||g||^2."""
    values, vectors = np.linalg.eigh(H)
    norm = np.linalg.norm(g)
    s = max(norm, lr * values[-1] / 2 - eps, 0.0)
    V = vectors[:, values >= values[-1] - 1e-12 * max(abs(values[-1]), np.finfo(float).tiny)]
    excess = s * s - norm * norm
    if excess <= 0 or values[-1] <= 0:
        return s, np.zeros_like(H)
    return s, (excess / (values[-1] ** 2 * V.shape[1])) * (V @ V.T)


def _barrier(g2, H, lr, eps, t_final=1e10, max_newton=100):
    """Per-coordinate program by a primal log-barrier method in units sigma = max(|g|, eta lambda_max/2, eps):
    x = s/sigma, e = eps/sigma, c = g^2/sigma^2, K = eta H/(2 sigma); minimize t sum phi(x) - log det(diag(x + e) - K)
    - sum log x (W = diag(x + e) - K) by Newton for t = 1, 10, ..., ``t_final`` (O(1/t) bias in x); Sigma = eta^2
    V X V^T/4 on the active space V of W, X = V^T W^-1 V/t polished so that phi'(x) = diag(V X V^T) exactly."""
    n = g2.size
    sigma = max(np.sqrt(g2.max()), lr * max(np.linalg.eigvalsh(H)[-1], 0.0) / 2, eps)
    if sigma == 0.0:                                     # g = 0, H <= 0, eps = 0: nu_bar = 0
        return np.zeros(n), np.zeros((n, n))
    e, c, K = eps / sigma, g2 / sigma ** 2, lr * H / (2 * sigma)
    x = np.maximum(np.sqrt(c), max(np.linalg.eigvalsh(K)[-1], 0.0)) + 1.0

    def merit(x, t):
        if np.any(x <= 0):
            return np.inf, None
        try:
            L = np.linalg.cholesky(np.diag(x + e) - K)
        except np.linalg.LinAlgError:
            return np.inf, None
        phi = x - 2 * e * np.log(x + e) + (c - e * e) / (x + e)
        return t * phi.sum() - 2 * np.log(np.diag(L)).sum() - np.log(x).sum(), L

    t = 1.0
    while True:
        previous = np.inf
        for _ in range(max_newton):
            value, L = merit(x, t)
            Linv = scipy.linalg.solve_triangular(L, np.eye(n), lower=True)
            Winv = Linv.T @ Linv
            d1 = (x * x - c) / (x + e) ** 2
            d2 = 2 * (x * e + c) / (x + e) ** 3
            grad = t * d1 - np.diag(Winv) - 1 / x
            hess = np.diag(t * d2 + 1 / x ** 2) + Winv * Winv
            step = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(hess), grad)
            decrement = -grad @ step
            if decrement < 1e-12 or (decrement < 1e-6 and decrement > 0.1 * previous):   # converged / round-off floor
                break
            previous, a = decrement, 1.0
            if decrement < 0.25:                         # quadratic region: full steps, kept feasible
                while not np.isfinite(merit(x + a * step, t)[0]):
                    a *= 0.5
            else:                                        # damped phase: backtracking on the barrier merit
                while merit(x + a * step, t)[0] > value - 0.25 * a * decrement and a > 1e-12:
                    a *= 0.5
            x = x + a * step
        else:
            raise SolverBudgetError(f"the barrier method's Newton steps did not converge at t = {t:.3g} in "
                                    f"{max_newton} iterations: the Hessian may be badly scaled")
        if t >= t_final:
            break
        t *= 10.0
    values, vectors = np.linalg.eigh(np.diag(x + e) - K)
    active = values < 1e6 / t                           # u^T Lambda u = 1/(t w) > 1e-6
    V, X = vectors[:, active], np.diag(1 / (t * values[active]))   # Lambda = W^-1/t on the active space
    rows, cols = np.triu_indices(V.shape[1])
    A = V[:, rows] * V[:, cols] * np.where(rows == cols, 1.0, 2.0)    # diag(V X V^T) in the upper entries of X
    target = (x * x - c) / (x + e) ** 2 - np.einsum("ij,jk,ik->i", V, X, V)
    X[rows, cols] += np.linalg.lstsq(A, target, rcond=None)[0]   # polish: phi'(x) = diag(Lambda) exactly
    X[cols, rows] = X[rows, cols]
    Sigma = lr ** 2 * V @ X @ V.T / 4
    return sigma * x, 0.5 * (Sigma + Sigma.T)
