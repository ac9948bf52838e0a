"""Data for the minima-stability theorems. Registered with `register`; names start with `stability_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states.
"""

import numpy as np

from . import register


@register("stability_relu_regression")
def relu_regression(seed=0, n=6, noise=0.3):
    """(X, y): 1-D regression data for a one-hidden-layer ReLU net (Mulayoff, Michaeli & Soudry 2021): X (n,) uniform
    on [-1, 1], sorted; y = sin(pi X) + noise N(0, 1). Drawn in the order X, noise."""
    rng = np.random.default_rng(seed)
    X = np.sort(rng.uniform(-1.0, 1.0, n))
    return X, np.sin(np.pi * X) + noise * rng.normal(size=n)


@register("stability_relu_regression_2d")
def relu_regression_2d(seed=0, n=10, noise=0.3):
    """(X, y): 2-D regression data for a one-hidden-layer ReLU net (Nacson, Mulayoff, Ongie, Michaeli & Soudry 2023):
    X (n, 2) uniform on [-1, 1]^2; y = sin(pi x_1) cos(pi x_2 / 2) + noise N(0, 1). Drawn in the order X, noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    return X, np.sin(np.pi * X[:, 0]) * np.cos(0.5 * np.pi * X[:, 1]) + noise * rng.normal(size=n)
