"""Measurements of a factorization run: balance defect (conserved by GF) and effective rank."""

import numpy as np


def balance_defect(layers):
    """max_j ||W_{j+1}^T W_{j+1} - W_j W_j^T||_max (0 for a balanced factorization; conserved by GF)."""
    layers = [np.asarray(W) for W in layers]
    return max([float(np.abs(layers[j + 1].T @ layers[j + 1] - layers[j] @ layers[j].T).max())
                for j in range(len(layers) - 1)], default=0.0)


def effective_rank(W):
    """(sum sigma)^2 / sum sigma^2 (in [1, rank W])."""
    s = np.linalg.svd(np.asarray(W), compute_uv=False)
    return float(s.sum() ** 2 / (s**2).sum())
