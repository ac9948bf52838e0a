"""Data for the geometry-of-learned-functions theorems (geometric complexity). Registered with `register`; names
start with `geometry_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states.
"""

import numpy as np

from . import register


@register("geometry_regression_1d")
def regression_1d(seed=0, n=10, noise=0.3):
    """(X, y): a 1-D regression set, X (n, 1) sorted uniform on [-1, 1], y = sin(pi x) + noise * N(0, 1) (drawn in
    the order x, then the noise). With noise > 0 an interpolant must bend between the points, so the geometric
    complexity of what a network learns depends on how it was trained (Dherin et al. 2022)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1.0, 1.0, n))
    y = np.sin(np.pi * x) + noise * rng.normal(size=n)
    return x[:, None], y


@register("geometry_xor_2d")
def xor_2d(seed=0, n=64):
    """(X, y): two-class XOR data, X (n, 2) uniform on [-1, 1]^2, y = 1 where x_1 x_2 > 0 and 0 elsewhere (integer
    labels). A classifier must bend its boundary through the origin; under cross-entropy an unregularized network
    keeps growing its logits after it separates the data, so its geometric complexity keeps rising and what limits
    it is visible (Dherin et al. 2022's experiments are classification)."""
    X = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)
