"""Margins and directions of linear predictors (NumPy or JAX arrays; batched over leading axes).

Inputs are checked on the host: finite, real, the last axis of w matching the data's d, and no zero vector where a
direction is taken (w / ||w|| is undefined at w = 0): `InputError` instead of NaN or a silent broadcast. In a batch
of vectors (a trajectory, which may start at w = 0) the zero rows give NaN and the others their values.
"""

import numpy as np

from ..errors import InputError
from ..validation import finite_array


def _vectors(name, w, d=None):
    """``w`` as a finite float array with last axis d (any leading batch axes)."""
    w = finite_array(name, w)
    if w.ndim == 0 or (d is not None and w.shape[-1] != d):
        raise InputError(f"{name} must have shape (..., {d if d is not None else 'd'}), got shape {w.shape}")
    return w


def _norms(name, w):
    """||w|| over the last axis. A single zero vector raises `InputError` (no direction); in a batch (a trajectory
    that starts at w = 0) zero rows get norm NaN, so their results are NaN, row by row."""
    norms = np.linalg.norm(w, axis=-1)
    if w.ndim == 1 and norms == 0:
        raise InputError(f"{name} is the zero vector: a zero predictor has no direction or normalized margin")
    return np.where(norms == 0, np.nan, norms)


def _data(Z):
    Z = finite_array("Z", Z, ndim=2)
    if Z.shape[0] == 0:
        raise InputError("Z has no rows (no examples)")
    return Z


def margins(w, Z):
    """z_n.w for every example: (..., N)."""
    Z = _data(Z)
    return _vectors("w", w, Z.shape[1]) @ Z.T


def normalized_margin(w, Z):
    """gamma(w) = min_n z_n.w / ||w|| (w != 0)."""
    Z = _data(Z)
    w = _vectors("w", w, Z.shape[1])
    return (w @ Z.T).min(axis=-1) / _norms("w", w)


def _pair(w, w_ref):
    w_ref = _vectors("w_ref", w_ref)
    if w_ref.ndim != 1:
        raise InputError(f"w_ref must be one vector (d,), got shape {w_ref.shape}")
    w = _vectors("w", w, w_ref.shape[0])
    return w, _norms("w", w), w_ref, float(_norms("w_ref", w_ref))


def direction_error(w, w_ref):
    """|| w/||w|| - w_ref/||w_ref|| || (batched over the leading axes of w; w, w_ref != 0)."""
    w, norm, w_ref, norm_ref = _pair(w, w_ref)
    return np.linalg.norm(w / norm[..., None] - w_ref / norm_ref, axis=-1)


def angle(w, w_ref):
    """Angle in radians between w and w_ref (batched; w, w_ref != 0)."""
    w, norm, w_ref, norm_ref = _pair(w, w_ref)
    return np.arccos(np.clip((w @ w_ref) / (norm * norm_ref), -1.0, 1.0))
