"""Problems of the continuous-model theorems (backward error analysis, principal flow, SGD flows). Registered with
`register`; names start with `flows_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states, and returns NumPy
float64 arrays.
"""

import numpy as np

from . import register


@register("flows_indefinite_quadratic")
def indefinite_quadratic(seed=3, n=6):
    """(A, b, theta) for E(theta) = theta^T A theta / 2 - b^T theta: A = (M + M^T) / (2 sqrt(n)) with M (n, n)
    standard normal (symmetric, indefinite with probability 1, eigenvalues O(1)), then b (n,) and a point theta (n,),
    both standard normal; drawn in the order M, b, theta."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    return (M + M.T) / (2.0 * np.sqrt(n)), rng.normal(size=n), rng.normal(size=n)


@register("flows_quadratic_spectrum")
def quadratic_spectrum(seed=0, spectrum=(1.0,)):
    """(H, b, theta0) for E = theta^T H theta / 2 - b^T theta with the prescribed eigenvalues: H = Q diag(spectrum)
    Q^T with Q the orthogonal factor of the QR decomposition of an (n, n) standard normal matrix (n = len(spectrum)),
    then b (n,) and theta0 (n,) standard normal; drawn in the order Q, b, theta0."""
    rng, n = np.random.default_rng(seed), len(spectrum)
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    return Q @ np.diag(np.asarray(spectrum, float)) @ Q.T, rng.normal(size=n), rng.normal(size=n)


@register("flows_normal_points")
def normal_points(seed=0, shape=(1,), centre=0.0, scale=1.0):
    """centre + scale * Z, Z standard normal of the given shape: points at which fields and losses are compared."""
    return np.asarray(centre, float) + scale * np.random.default_rng(seed).normal(size=shape)


@register("flows_reshuffling_regression")
def reshuffling_regression(seed=0, n=6, n_max=8, dim=3, scale=0.7, noise=0.5):
    """(X, y): the first n rows of a fixed n_max-example linear regression set in R^dim, X = scale Z and
    y = X beta + noise e, with Z (n_max, dim), beta (dim,) and e (n_max,) standard normal drawn in that order. The
    same seed and n_max give nested sets (n = 6 is a prefix of n = 8), so partition identities at several N share
    their examples."""
    rng = np.random.default_rng(seed)
    X = scale * rng.normal(size=(n_max, dim))
    y = X @ rng.normal(size=dim) + noise * rng.normal(size=n_max)
    return X[:n], y[:n]
