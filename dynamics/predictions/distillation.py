"""Self-distillation in a reproducing-kernel Hilbert space, every round in closed form (docs/stability-sam-geometry.md
section 8; Mobahi, Farajtabar & Bartlett, NeurIPS 2020, arXiv:2002.05715).

Round t fits the targets y_t (y_0 = the labels) by the smallest-norm function meeting (1/N) sum_i (f(x_i) - y_{t,i})^2
<= epsilon, then takes its predictions at the training points as the next targets. With the Gram matrix
K = V diag(d) V^T and z_t = V^T y_t, the Lagrangian form gives

    f_t(x) = k_x^T (K + c_t I)^{-1} y_t,      y_{t+1} = V diag(d / (c_t + d)) z_t,

where c_t > 0 is the root of  sum_k (c z_{t,k} / (c + d_k))^2 = N epsilon  (the constraint is active), as long as
||y_t||^2 > N epsilon; once ||y_t||^2 <= N epsilon the zero function is feasible and is the solution: the fit collapses.
"""

import dataclasses

import numpy as np
from scipy.optimize import brentq

from ..errors import InputError, SolverBudgetError
from ..validation import finite_array

#: eigenvalues of K within this many N eps_machine max|d| of 0 are rounding noise: a more negative one is refused,
#: a smaller positive one is treated as exactly 0 (a null direction of K).
NULL_FACTOR = 10.0


@dataclasses.dataclass(frozen=True)
class SelfDistillation:
    """Rounds t = 0..T-1 of self-distillation (see the module docstring), all at the N training points.

    eigenvalues (N,): d_k of K, ascending (rounding-level ones set to 0); eigenvectors (N, N): V, columns.
    targets (T+1, N): y_0..y_T (y_{t+1} = the predictions of round t). predictions (T, N): K (K + c_t I)^{-1} y_t.
    multipliers (T,): c_t (inf where the round has collapsed). coefficients (T+1, N): z_t = V^T y_t.
    dual_coefficients (T, N): alpha_t = (K + c_t I)^{-1} y_t, so f_t(x) = sum_i k(x, x_i) alpha_{t,i}.
    collapse_round: the first t with ||y_t||^2 <= N epsilon (f_t = 0 from then on), None if not reached.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    targets: np.ndarray
    predictions: np.ndarray
    multipliers: np.ndarray
    coefficients: np.ndarray
    dual_coefficients: np.ndarray
    collapse_round: object
    epsilon: float


def _spectrum(K):
    K = finite_array("K", K, ndim=2)
    n = K.shape[0]
    if K.shape != (n, n) or n == 0:
        raise InputError(f"K must be a square Gram matrix (N, N), got shape {K.shape}")
    scale = float(np.max(np.abs(K)))
    asym = float(np.max(np.abs(K - K.T)))
    if asym > 1e-12 * scale:
        raise InputError(f"K must be symmetric: max |K - K^T| = {asym:.3g} (max |K| = {scale:.3g}); pass the Gram "
                         "matrix k(x_i, x_j) of a kernel, e.g. (K + K.T) / 2")
    d, V = np.linalg.eigh(0.5 * (K + K.T))
    tol = NULL_FACTOR * n * np.finfo(float).eps * max(scale, float(np.max(np.abs(d))))
    if d[0] < -tol:
        raise InputError(f"K must be positive semidefinite: its most negative eigenvalue is {d[0]:.6g} (rounding "
                         f"level {tol:.3g}); a Gram matrix of a positive-definite kernel has none, check the kernel")
    return np.where(d > tol, d, 0.0), V


def _multiplier(z, d, n_eps):
    """The root c > 0 of sum_k (c z_k / (c + d_k))^2 = n_eps (brentq; strictly increasing in c).

    Bracket [derived]: with m = n_eps - ||z_null||^2 and rho = sqrt(m) / ||z_range||, c lies in
    [d_min+ rho / (1 - rho), d_max rho / (1 - rho)] (d_min+ the smallest positive eigenvalue)."""
    null = d == 0.0
    m = n_eps - float(np.sum(z[null] ** 2))
    zr, dr = z[~null], d[~null]
    rho = np.sqrt(m) / np.linalg.norm(zr)
    lo, hi = dr.min() * rho / (1.0 - rho), dr.max() * rho / (1.0 - rho)

    def excess(c):
        return float(np.sum((c * zr / (c + dr)) ** 2)) - m

    if excess(lo) >= 0.0:
        return lo
    if excess(hi) <= 0.0:
        return hi
    return brentq(excess, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)


def self_distillation(K, y, epsilon, rounds=None, *, max_rounds=10_000):
    """Self-distillation rounds in closed form from the eigendecomposition of the Gram matrix K.

    K: (N, N) symmetric positive semidefinite; y: (N,) labels; epsilon > 0: the mean-squared-error budget of every
    round. rounds: how many rounds t = 0..rounds-1 to compute (collapsed rounds give 0); None: up to and including
    the collapse round (at most ``max_rounds``, else `SolverBudgetError`; K positive definite guarantees collapse
    within kappa (||y_0|| / sqrt(N epsilon) - 1) rounds, docs section 8). Returns `SelfDistillation`.
    Cost: one O(N^3) eigendecomposition, then O(N^2) plus a 1-D root solve (O(N) per evaluation) per round.
    Raises `InputError` for a K that is not square, symmetric or positive semidefinite (naming its most negative
    eigenvalue), a y of the wrong shape, epsilon <= 0, or targets whose part in K's null space already exceeds the
    budget (no function of the RKHS meets the constraint).
    """
    d, V = _spectrum(K)
    n = d.size
    y = finite_array("y", y, ndim=1)
    if y.shape != (n,):
        raise InputError(f"y must have shape ({n},) to match K {(n, n)}, got {y.shape}")
    epsilon = float(finite_array("epsilon", epsilon, ndim=0))
    if not epsilon > 0:
        raise InputError(f"epsilon must be > 0 (the mean-squared-error budget of each round), got {epsilon}")
    if rounds is not None and (int(rounds) != rounds or rounds < 1):
        raise InputError(f"rounds must be a positive integer or None (until collapse), got {rounds!r}")
    n_eps = n * epsilon
    z = V.T @ y
    null_part = float(np.sum(z[d == 0.0] ** 2))
    if z @ z > n_eps and null_part >= n_eps:
        raise InputError(f"the part of y in the null space of K has squared norm {null_part:.6g} >= N epsilon = "
                         f"{n_eps:.6g}: no function of the RKHS meets the constraint; increase epsilon")

    limit = max_rounds if rounds is None else int(rounds)
    zs, cs, collapse = [z], [], None
    for t in range(limit):
        zt = zs[-1]
        if collapse is None and zt @ zt <= n_eps:
            collapse = t
        if collapse is not None:
            cs.append(np.inf)
            zs.append(np.zeros(n))
            if rounds is None:
                break
            continue
        c = _multiplier(zt, d, n_eps)
        cs.append(c)
        zs.append(d / (c + d) * zt)
    else:
        if rounds is None:
            raise SolverBudgetError(f"no collapse within max_rounds = {max_rounds} rounds: ||y_t||^2 = "
                                    f"{float(zs[-1] @ zs[-1]):.6g} > N epsilon = {n_eps:.6g}; raise max_rounds")
    coefficients = np.array(zs)
    multipliers = np.array(cs)
    targets = coefficients @ V.T
    live = np.isfinite(multipliers)
    dual = np.zeros((len(cs), n))
    dual[live] = (coefficients[:-1][live] / (multipliers[live, None] + d)) @ V.T
    return SelfDistillation(eigenvalues=d, eigenvectors=V, targets=targets, predictions=targets[1:],
                            multipliers=multipliers, coefficients=coefficients, dual_coefficients=dual,
                            collapse_round=collapse, epsilon=epsilon)
