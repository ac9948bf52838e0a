"""Data for the sharpness-aware-minimization theorems. Registered with `register`; names start with `sam_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states.
"""

import numpy as np

from . import register


@register("sam_sparse_regression")
def sparse_regression(seed=0, n=20, d=30, sparsity=3):
    """(X, y, beta_star): the sparse-regression problem of Andriushchenko & Flammarion (ICML 2022, section 3; their
    code tml-epfl/understanding-sam, diagonal_linear_nets): X (n, d) standard Gaussian, then the first ``sparsity``
    entries of beta_star |N(0, 1)| (the rest 0), normalized to ||beta_star|| = 1, and noiseless labels y = X beta_star.
    Drawn in the order X, beta_star. n < d: X beta = y has a (d - n)-dimensional affine set of interpolants."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta_star = np.zeros(d)
    beta_star[:sparsity] = np.abs(rng.normal(size=sparsity))
    beta_star /= np.linalg.norm(beta_star)
    return X, X @ beta_star, beta_star
