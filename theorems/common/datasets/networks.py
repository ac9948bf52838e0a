"""Data for the linear-network, homogeneous-network and factorization theorems. Registered with `register`; names
start with `net_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states; where a theorem
also needs a random initialization drawn from the same stream (so that data and initialization are one seeded
draw), the generator returns it as well.
"""

import numpy as np

from . import register


@register("net_gaussian_random_signs")
def gaussian_random_signs(seed=0, n=6, d=8, layers=3, init_scale=0.1):
    """(X, y, init): X (n, d) standard Gaussian, y (n,) independent random signs, init (layers, d) = init_scale
    N(0, 1) (the layers of a diagonal or convolutional net), drawn in that order. Separable through the origin
    with probability 1 when n <= d."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.choice([-1.0, 1.0], size=n)
    return X, y, init_scale * rng.normal(size=(layers, d))


@register("net_gaussian_hyperplane")
def gaussian_hyperplane(seed=1, n=20, d=3, layers=3, init_scale=0.1):
    """(X, y, init): X (n, d) standard Gaussian labelled y = sign(X u) by a Gaussian normal u (linearly separable),
    then init (layers, d) = init_scale N(0, 1); drawn in the order X, u, init."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sign(X @ rng.normal(size=d))
    return X, y, init_scale * rng.normal(size=(layers, d))


@register("net_quadratic_labels")
def quadratic_labels(seed=2, n=12, d=3, width=8, init_scale=0.3):
    """(X, y, (W, a)): X (n, d) standard Gaussian labelled y = sign(x_1 x_2 + 0.3) (not linearly separable,
    separable by a two-layer x^2 net), then the net's init W (width, d) and a (width,), both init_scale N(0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sign(X[:, 0] * X[:, 1] + 0.3)
    return X, y, (init_scale * rng.normal(size=(width, d)), init_scale * rng.normal(size=width))


@register("net_underdetermined_regression")
def underdetermined_regression(seed=15, n=5, d=12):
    """(X, y): X (n, d) and y (n,) standard Gaussian (n < d: X beta = y has a (d - n)-dimensional affine set of
    interpolants, full row rank with probability 1)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


@register("net_commuting_sensing")
def commuting_sensing(seed=0):
    """(a, y) for PSD sensing with diagonal (commuting) A_i = diag(a_i): a = R [I | B] (3 x 6), y = R (1, 2, 1.5),
    with B uniform(0, 1/3) (3 x 3) and R = I + uniform(0, 0.5) (3 x 3), drawn in that order. Column sums of B are
    < 1, so the unique min-trace PSD solution is diag(1, 2, 1.5, 0, 0, 0) with LP reduced costs 1 - colsum(B)."""
    rng = np.random.default_rng(seed)
    B = rng.uniform(0, 1, size=(3, 3)) / 3
    R = np.eye(3) + rng.uniform(0, 0.5, size=(3, 3))
    return R @ np.hstack([np.eye(3), B]), R @ np.array([1.0, 2.0, 1.5])


@register("net_rank_one_completion")
def rank_one_completion(seed=2, d=6, p=0.45):
    """(M, mask): a rank-1 d x d matrix M = u v^T (u, v standard Gaussian) and a mask of entries observed
    independently with probability p, drawn in the order u, v, mask."""
    rng = np.random.default_rng(seed)
    M = np.outer(rng.normal(size=d), rng.normal(size=d))
    mask = (rng.uniform(size=(d, d)) < p).astype(float)
    return M, mask
