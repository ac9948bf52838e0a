"""Margins and directions of linear predictors (NumPy or JAX arrays; batched over leading axes)."""

import numpy as np


def margins(w, Z):
    """z_n.w for every example: (..., N)."""
    return np.asarray(w) @ np.asarray(Z).T


def normalized_margin(w, Z):
    """gamma(w) = min_n z_n.w / ||w||."""
    w = np.asarray(w)
    return margins(w, Z).min(axis=-1) / np.linalg.norm(w, axis=-1)


def direction_error(w, w_ref):
    """|| w/||w|| - w_ref/||w_ref|| || (batched over the leading axes of w)."""
    w = np.asarray(w)
    w_ref = np.asarray(w_ref)
    return np.linalg.norm(w / np.linalg.norm(w, axis=-1, keepdims=True) - w_ref / np.linalg.norm(w_ref), axis=-1)


def angle(w, w_ref):
    """Angle in radians between w and w_ref (batched)."""
    w = np.asarray(w)
    cos = (w @ w_ref) / (np.linalg.norm(w, axis=-1) * np.linalg.norm(w_ref))
    return np.arccos(np.clip(cos, -1.0, 1.0))
