"""Data for the self-distillation theorem. Registered with `register`; names start with `distillation_` (the area).

Every generator draws only from ``np.random.default_rng(seed)``, in the order its docstring states.
"""

import numpy as np

from . import register


@register("distillation_rbf_regression")
def rbf_regression(seed=0, n=16, bandwidth=0.08, noise=0.3):
    """(x, y, K): a noisy sinusoid on 1-D points and its RBF Gram matrix, the kind of toy problem Mobahi, Farajtabar &
    Bartlett (NeurIPS 2020) illustrate self-distillation with. x_i = (i + u_i) / n with u_i ~ U(-0.3, 0.3) (a jittered
    grid: spacing >= 0.4 / n keeps K well conditioned), then y_i = sin(2 pi x_i) + noise N(0, 1);
    K_ij = exp(-(x_i - x_j)^2 / (2 bandwidth^2)). Drawn in the order u, then the noise."""
    rng = np.random.default_rng(seed)
    x = (np.arange(n) + 0.5 + rng.uniform(-0.3, 0.3, size=n)) / n
    y = np.sin(2 * np.pi * x) + noise * rng.normal(size=n)
    K = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * bandwidth**2))
    return x, y, K
