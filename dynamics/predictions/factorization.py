"""Predictions for matrix factorization (Gunasekar et al. 2017; Arora et al. 2019): the entropic (commuting-case)
implicit-norm minimizer, the min-trace PSD solution, and the balanced singular-value velocity. Models in
`dynamics.models.factorization`.
"""

import numpy as np

from ..errors import InputError
from ..validation import finite_array
from .implicit_norms import MirrorMap, implicit_norm_minimizer


def entropic_map(alpha, n, shift=0.0):
    """Mirror map of the commuting case on eigenvalues x: x = alpha^2 exp(m + shift), m0 = 0. With shift = 0,
    grad F_alpha(x) = log(x / alpha^2) = m, so argmin F_alpha is `implicit_norm_minimizer` with this map; a
    shift a^T nu_0 in range(a^T) describes the same problem with Newton started at nu_0 (a warm start)."""
    if not np.all(np.asarray(alpha) > 0):
        raise InputError(f"the initialization scale alpha must be > 0, got {alpha}")
    a2 = float(alpha) ** 2
    shift = np.broadcast_to(np.asarray(shift, float), (n,))
    return MirrorMap(f"entropic alpha={alpha:g}", lambda m: a2 * np.exp(m + shift), lambda m: a2 * np.exp(m + shift),
                     lambda x: np.log(x / a2) - shift, np.zeros(n))


def entropic_sensing_limit(a, y, alpha):
    """argmin F_alpha(X) s.t. <diag(a_i), X> = y, X PSD, for diagonal A_i = diag(a_i) (a: m x n).

    The minimizer is diagonal, X = diag(alpha^2 exp(-a^T nu)) (sign of nu absorbed): a vector problem solved by
    damped Newton on nu. Newton from nu = 0 stalls when alpha^2 << y (x(0) = alpha^2 is far from feasible), so
    alpha is reached by continuation from 1 in factors of <= 10, each solve warm-started at the previous nu."""
    a = finite_array("a", a, ndim=2)
    if not float(alpha) > 0:
        raise InputError(f"the initialization scale alpha must be > 0, got {alpha}")
    n = a.shape[1]
    path = np.geomspace(1.0, alpha, max(int(np.ceil(abs(np.log10(alpha)))) + 1, 2))
    nu = np.zeros(a.shape[0])
    for scale in path:
        nu = nu + implicit_norm_minimizer(a, y, entropic_map(scale, n, a.T @ nu)).nu
    return np.diag(alpha**2 * np.exp(a.T @ nu))


def min_trace_diagonal(a, y):
    """argmin tr X = sum x s.t. a x = y, x >= 0 (the PSD min-nuclear-norm solution for diagonal A_i; HiGHS LP)."""
    import scipy.optimize

    a = finite_array("a", a, ndim=2)
    y = finite_array("y", y, ndim=1)
    if y.shape != (a.shape[0],):
        raise InputError(f"a has {a.shape[0]} rows (measurements) but y has shape {y.shape}")
    res = scipy.optimize.linprog(np.ones(a.shape[1]), A_eq=a, b_eq=y, bounds=[(0, None)] * a.shape[1],
                                 method="highs")
    if res.status != 0:
        raise InputError(f"min_trace_diagonal: no PSD diagonal solution ({res.message})")
    return np.diag(res.x)


def singular_value_velocity(W, grad, depth):
    """Arora et al. 2019: sigma_r' = -N (sigma_r^2)^(1 - 1/N) u_r^T grad l(W) v_r (balanced init), with the
    singular values of W in decreasing order (W, grad finite of one 2-D shape; depth N >= 1)."""
    W, grad = finite_array("W", W, ndim=2), finite_array("grad", grad, ndim=2)
    if W.shape != grad.shape:
        raise InputError(f"grad must have the shape of W {W.shape}, got {grad.shape}")
    if isinstance(depth, bool) or not depth >= 1:
        raise InputError(f"depth must be >= 1 (the number of factors N), got {depth!r}")
    U, s, Vt = np.linalg.svd(W)
    return s, -depth * (s**2) ** (1 - 1 / depth) * np.einsum("ir,ij,rj->r", U, np.asarray(grad), Vt)
