"""K-class data for the multi-class max-margin theorem (docs/stability-sam-geometry.md section 5). Registered with
`register`. Generators return ``(X, y)``: X (N, d) float64 and integer labels y in 0..K-1, every class present."""

import numpy as np

from . import register


@register("multiclass_blobs")
def multiclass_blobs(seed=0, per_class=4, radius=2.0, noise=0.6, classes=3):
    """``classes`` Gaussian blobs in R^2 around radius (cos, sin)(2 pi k / K), no bias needed: with
    rng = default_rng(seed), y = repeat(arange(K), per_class), X = centres[y] + noise * rng.normal(size=(N, 2)).
    Not separable for every seed; seed 9 (the theorem's) is, with a non-degenerate support (4 constraints spanning the
    rank-4 lifted data)."""
    rng = np.random.default_rng(seed)
    angles = 2.0 * np.pi * np.arange(classes) / classes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + noise * rng.normal(size=(classes * per_class, 2)), y
