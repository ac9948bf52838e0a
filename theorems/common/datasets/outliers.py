"""K-class data for the Hessian-outlier theorem (docs/stability-sam-geometry.md section 9). Registered with `register`.
Generators return ``(X, y)``: X (N, d) float64 and integer labels y in 0..K-1."""

import numpy as np

from . import register


@register("outliers_noisy_clusters")
def noisy_clusters(seed=0, classes=4, per_class=60, radius=3.0, spread=0.05, flip=0.2):
    """``classes`` tight Gaussian clusters in R^K around radius e_c (orthogonal, equal-norm means), with balanced
    label noise: in every cluster exactly round(flip per_class / (K - 1)) points carry each other label, so the label
    frequencies of cluster c are exactly q on c and s = (1 - q) / (K - 1) elsewhere (no class is absent from any
    cluster). With rng = default_rng(seed): X = radius e_{c_i} + spread * rng.normal(size=(N, K)); the relabelled
    points are the last ones of each cluster (the noise is isotropic, so their choice carries no information)."""
    flips = int(round(flip * per_class / (classes - 1)))
    if classes < 3 or flips < 1 or flips * (classes - 1) >= per_class:
        raise ValueError(f"need K >= 3 and 1 <= flip * per_class / (K - 1) < per_class / (K - 1), got K = {classes}, "
                         f"per_class = {per_class}, flip = {flip}")
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(classes), per_class)
    X = radius * np.eye(classes)[cluster] + spread * rng.normal(size=(classes * per_class, classes))
    y = cluster.copy()
    for c in range(classes):
        start = (c + 1) * per_class - flips * (classes - 1)
        others = [k for k in range(classes) if k != c]
        y[start:(c + 1) * per_class] = np.repeat(others, flips)
    return X, y
