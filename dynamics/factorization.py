"""Matrix factorization models (theory/implicit-bias.md section 9).

PSD matrix sensing (Gunasekar et al. 2017): X = U U^T, U (n x n), measurements y_i = <A_i, X*> with symmetric
A_i (m x n x n), loss (1/2) sum_i (<A_i, U U^T> - y_i)^2 (sum convention). When the A_i commute and U(0) = alpha I,
GF keeps X(t) = alpha^2 exp(-4 sum_i (int_0^t r_i) A_i) (r_i the residuals), so an interpolating limit minimizes
F_alpha(X) = tr(X log X) - (1 + log alpha^2) tr X s.t. A(X) = y, X PSD, and F_alpha / log(1/alpha^2) -> tr X.

Deep matrix factorization (Arora et al. 2019): W = W_N ... W_1 (W_j square d x d), balanced initialization
W_{j+1}^T W_{j+1} = W_j W_j^T; then the end-to-end singular values obey
sigma_r' = -N (sigma_r^2)^(1 - 1/N) <grad l(W), u_r v_r^T>.
"""

import jax.numpy as jnp
import numpy as np

from .errors import InputError
from .predictions.implicit_norms import MirrorMap, implicit_norm_minimizer
from .validation import finite_array


def sensing_measurements(A, X):
    """A(X)_i = <A_i, X> = sum_jk A_ijk X_jk."""
    return jnp.tensordot(A, X, axes=((1, 2), (0, 1)))


def sensing_loss(A, y):
    """U -> (1/2) sum_i (<A_i, U U^T> - y_i)^2 for symmetric A_i (A: m x n x n, y: m)."""
    A = jnp.asarray(finite_array("A", A, ndim=3), float)
    y = jnp.asarray(finite_array("y", y, ndim=1), float)
    if A.shape[0] != y.shape[0] or A.shape[1] != A.shape[2]:
        raise InputError(f"A must be m x n x n with m = len(y); got A {A.shape}, y {y.shape}")
    if not np.allclose(np.asarray(A), np.swapaxes(np.asarray(A), 1, 2)):
        raise InputError("the sensing matrices A_i must be symmetric")
    return lambda U: 0.5 * jnp.sum((sensing_measurements(A, U @ U.T) - y) ** 2)


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

    res = scipy.optimize.linprog(np.ones(a.shape[1]), A_eq=a, b_eq=y, bounds=[(0, None)] * a.shape[1],
                                 method="highs")
    if res.status != 0:
        raise InputError(f"min_trace_diagonal: no PSD diagonal solution ({res.message})")
    return np.diag(res.x)


def end_to_end(layers):
    """W = W_N ... W_1 for layers = [W_1, ..., W_N]."""
    W = layers[0]
    for Wj in layers[1:]:
        W = Wj @ W
    return W


def factorization_loss(loss_of_W):
    """[W_1..W_N] -> l(W_N ... W_1)."""
    return lambda layers: loss_of_W(end_to_end(layers))


def completion_loss(mask, target):
    """l(W) = (1/2) sum_{observed ij} (W_ij - M_ij)^2 (mask: 0/1 array)."""
    mask, target = jnp.asarray(mask, float), jnp.asarray(target, float)
    return lambda W: 0.5 * jnp.sum(mask * (W - target) ** 2)


def balanced_init(rng, d, depth, sigmas):
    """Balanced layers W_j = V_{j+1} diag(sigmas)^(1/N) V_j^T (V_j random orthogonal): W_{j+1}^T W_{j+1} =
    W_j W_j^T = V_{j+1} diag(sigmas)^(2/N) V_{j+1}^T, and W = V_{N+1} diag(sigmas) V_1^T."""
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise InputError(f"depth must be an integer >= 1, got {depth!r}")
    sigmas = np.asarray(sigmas, float)
    if sigmas.shape != (d,) or not np.all(sigmas > 0):
        raise InputError(f"sigmas must be {d} positive values, got {sigmas}")
    V = [np.linalg.qr(rng.normal(size=(d, d)))[0] for _ in range(depth + 1)]
    root = np.diag(sigmas ** (1.0 / depth))
    return [jnp.asarray(V[j + 1] @ root @ V[j].T) for j in range(depth)]


def balance_defect(layers):
    """max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_max (0 for a balanced factorization; conserved by GF)."""
    layers = [np.asarray(W) for W in layers]
    return max([float(np.abs(layers[j + 1].T @ layers[j + 1] - layers[j] @ layers[j].T).max())
                for j in range(len(layers) - 1)], default=0.0)


def singular_value_velocity(W, grad, depth):
    """Arora et al. 2019: sigma_r' = -N (sigma_r^2)^(1 - 1/N) u_r^T grad l(W) v_r (balanced init), with the
    singular values of W in decreasing order."""
    U, s, Vt = np.linalg.svd(np.asarray(W))
    return s, -depth * (s**2) ** (1 - 1 / depth) * np.einsum("ir,ij,rj->r", U, np.asarray(grad), Vt)


def effective_rank(W):
    """(sum sigma)^2 / sum sigma^2 (in [1, rank W])."""
    s = np.linalg.svd(np.asarray(W), compute_uv=False)
    return float(s.sum() ** 2 / (s**2).sum())
