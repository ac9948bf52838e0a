"""Matrix factorization models (docs/implicit-bias.md section 9).

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

from ..errors import InputError
from ..validation import finite_array


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
