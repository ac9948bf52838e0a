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
from .spectrum import sharpness


def midpoints(W):
    """(w_k + w_{k+1})/2 for the rows of W (T + 1, n): shape (T, n), row k at tau = k + 1/2."""
    W = jnp.asarray(W)
    if W.ndim != 2 or W.shape[0] < 2:
        raise InputError(f"W must be a (T + 1, n) array of iterates with T >= 1, got shape {W.shape}")
    return 0.5 * (W[:-1] + W[1:])


def sharpness_along(loss, W, method="lanczos", steps=40):
    """lambda_max(Hessian of ``loss``) at every row of W (flat parameter vectors), as one vmapped compiled call.
    Cost: rows x ``steps`` HVPs (Lanczos) or rows x n HVPs + eigh (dense)."""
    return np.asarray(_sharpness_rows(loss, jnp.asarray(W), method, steps))


@partial(jax.jit, static_argnums=(0, 2, 3))
def _sharpness_rows(loss, W, method, steps):  # compiled once per (loss, shape, method, steps)
    return jax.vmap(lambda w: sharpness(loss, w, method, steps))(W)


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
    losses = np.asarray(losses, float)
    if losses.ndim != 1 or losses.size <= window:
        raise InputError(f"need a 1-D loss history longer than the window {window}, got shape {losses.shape}")
    average = np.convolve(losses, np.ones(window) / window, mode="valid")
    return int(np.sum(np.diff(losses) > 0)), float(average[-1] / average[0])
