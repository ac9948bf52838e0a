"""Measurements of a factorization run: balance defect (conserved by GF) and effective rank."""

import numpy as np

from ..errors import InputError
from ..validation import finite_array


def balance_defect(layers):
    """max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_max (0 for a balanced factorization; conserved by GF).
    W_{j+1} must have as many columns as W_j has rows (the product W_L ... W_1)."""
    layers = [finite_array(f"layer {j}", W, ndim=2) for j, W in enumerate(layers)]
    for j in range(len(layers) - 1):
        if layers[j + 1].shape[1] != layers[j].shape[0]:
            raise InputError(f"layer {j + 1} has shape {layers[j + 1].shape} but layer {j} has shape "
                             f"{layers[j].shape}: W_{{j+1}} W_j needs {layers[j].shape[0]} columns")
    return max([float(np.abs(layers[j + 1].T @ layers[j + 1] - layers[j] @ layers[j].T).max())
                for j in range(len(layers) - 1)], default=0.0)


def effective_rank(W):
    """(sum sigma)^2 / sum sigma^2 (in [1, rank W]; W finite, 2-D and nonzero)."""
    W = finite_array("W", W, ndim=2)
    s = np.linalg.svd(W, compute_uv=False)
    if not np.any(s > 0):
        raise InputError("W is zero: its effective rank (sum sigma)^2 / sum sigma^2 is 0/0")
    return float(s.sum() ** 2 / (s**2).sum())
