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
