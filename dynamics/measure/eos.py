"""Measurements along a GD run at the edge of stability (docs/flows.md 8, 10).

GD iterates w_0..w_T sit at step time tau = k. At the edge of stability GD oscillates with period 2 along the top
eigenvector, so quantities are measured at the midpoints m_k = (w_k + w_{k+1})/2 (tau = k + 1/2), which removes the
oscillation to first order; continuous models are compared with GD there.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..validation import finite_array
from .spectrum import eigenpairs, require_converged


def midpoints(W):
    """(w_k + w_{k+1})/2 for the rows of W (T + 1, n): shape (T, n), row k at tau = k + 1/2."""
    W = jnp.asarray(W)
    if W.ndim != 2 or W.shape[0] < 2:
        raise InputError(f"W must be a (T + 1, n) array of iterates with T >= 1, got shape {W.shape}")
    return 0.5 * (W[:-1] + W[1:])


def sharpness_along(loss, W, method=None, steps=None):
    """lambda_max(Hessian of ``loss``) at every row of W (T, n) (flat parameter vectors), as one vmapped compiled
    call. The default method is `sharpness`'s (dense up to DENSE_LIMIT parameters, else LOBPCG checked to its
    tolerance: an unconverged row raises instead of returning an inaccurate value). method="lanczos" runs
    ``steps`` HVPs (default 40) per row unchecked: on a spectrum without a gap at the top it can be off (4.6e-4
    relative at n = 2,500 with 40 steps), so compare it with "dense" where that matters. Rows with NaN/Inf raise
    `InputError`. Cost: rows x ``steps`` HVPs (Lanczos), rows x n HVPs + eigh (dense)."""
    W = jnp.asarray(W)
    if W.ndim != 2:
        raise InputError(f"W must be a (T, n) array of flat parameter vectors (one row per point), got shape {W.shape}")
    bad = ~np.all(np.isfinite(np.asarray(W)), axis=1)
    if bad.any():
        raise InputError(f"W contains NaN or Inf (first in row {int(np.argmax(bad))}): the Hessian spectrum is "
                         "undefined there")
    steps = 40 if steps is None and method == "lanczos" else steps
    result = _sharpness_rows(loss, W, method, steps)
    if method != "lanczos" and not np.all(result.converged):
        row = int(np.argmin(np.asarray(result.converged)))
        require_converged(jax.tree_util.tree_map(lambda leaf: leaf[row], result),
                          f"sharpness_along (row {row} of {W.shape[0]}, n = {W.shape[1]})")
    return np.asarray(result.values[:, 0])


@partial(jax.jit, static_argnums=(0, 2, 3))
def _sharpness_rows(loss, W, method, steps):  # compiled once per (loss, shape, method, steps)
    return jax.vmap(lambda w: eigenpairs(loss, w, 1, method, steps=steps, strict=False))(W)


def distance_to_gd(W_gd, W_flow):
    """||m_k - flow(k + 1/2)|| with GD midpoints m_k and the flow's states at the same step times.

    ``W_flow`` holds the flow at tau = k + 1/2 (shape (T, n)), or at the integer times tau = 0..T (shape (T + 1, n)),
    in which case the midpoint rule (f_k + f_{k+1})/2 (second order in the flow's local time step) is used."""
    mids = midpoints(W_gd)
    W_flow = jnp.asarray(W_flow)
    if W_flow.shape[0] == mids.shape[0] + 1:
        W_flow = midpoints(W_flow)
    if W_flow.shape != mids.shape:
        raise InputError(f"flow states {W_flow.shape} do not match the GD midpoints {mids.shape}")
    return np.asarray(jnp.linalg.norm(mids - W_flow, axis=1))


def loss_oscillation(losses, window=100):
    """(number of increases L_{k+1} > L_k, last / first value of the ``window``-step moving average): the edge of
    stability shows short-term increases (> 0) but long-term decrease (ratio < 1)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InputError(f"window must be an integer >= 1, got {window!r}")
    losses = finite_array("losses", losses, ndim=1).astype(float)
    if losses.size <= window:
        raise InputError(f"need a 1-D loss history longer than the window {window}, got shape {losses.shape}")
    average = np.convolve(losses, np.ones(window) / window, mode="valid")
    return int(np.sum(np.diff(losses) > 0)), float(average[-1] / average[0])
