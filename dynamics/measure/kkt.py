"""KKT residuals of max-margin problems, computed from a run's own dual weights p = softmax(-q)
(docs/implicit-bias.md section 1.5), never from a thresholded active set; margins of homogeneous models.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp

from ..errors import InputError
from ..validation import finite_array


def _separating(margins, what):
    """The minimum margin, refusing predictors with min_n q_n <= 0: rescaling to q_min = 1 (the KKT point's
    normalization) is impossible, so such a predictor is no KKT point of the margin problem."""
    q_min = float(np.min(margins))
    if not q_min > 0:
        raise InputError(f"{what} does not separate the data: min_n q_n = {q_min:.6g} <= 0 (point "
                         f"{int(np.argmin(margins))}), so it cannot be rescaled to the feasible set q >= 1 and is no "
                         "KKT point; the residuals are defined only for separating predictors")
    return q_min


def _dual_weights(p, n):
    p = finite_array("p", p, ndim=1)
    if p.shape != (n,) or np.any(p < 0):
        raise InputError(f"p must be nonnegative dual weights of shape ({n},) (one per example), got shape "
                         f"{p.shape}" + (f" with min {p.min():.3g}" if p.size and p.min() < 0 else ""))
    return p


def _norm(params, what):
    norm = float(np.linalg.norm(np.asarray(ravel_pytree(params)[0])))
    if not norm > 0:
        raise InputError(f"{what}: the parameters are all zero (||theta|| = {norm}), the normalized margin "
                         "q / ||theta||^L is undefined there")
    return norm


def _min_scaled_residual(a, b):
    """min_c ||a - c b|| / ||a|| over real c (closed form c = Re<b, a>/||b||^2)."""
    c = np.real(np.vdot(b, a)) / max(np.real(np.vdot(b, b)), 1e-300)
    return float(np.linalg.norm(a - c * b) / max(np.linalg.norm(a), 1e-300))


def predictor_kkt(beta, Z, p, depth, fourier=False):
    """(r_stat, r_cs) of min ||beta||_{2/L} s.t. Z beta >= 1 (Fourier: ||F beta||_{2/L}, F the unitary DFT).

    beta_bar = beta / min_n z_n.beta; g = Z^T p;
    r_stat = min_c || |b|^{2/L} - c conj(b) * g_hat || / || |b|^{2/L} || with b = beta_bar (or F beta_bar),
    g_hat = g (or F g); r_cs = sum_n p_n (z_n.beta_bar - 1). Both -> 0 at a first-order stationary point.
    A beta with min_n z_n.beta <= 0 does not separate and is no KKT point: `InputError`.
    """
    Z = finite_array("Z", Z, ndim=2)
    beta = finite_array("beta", beta, ndim=1)
    if beta.shape != (Z.shape[1],):
        raise InputError(f"beta must have shape ({Z.shape[1]},) (one entry per column of Z), got {beta.shape}")
    p = _dual_weights(p, Z.shape[0])
    if not depth > 0:
        raise InputError(f"depth must be > 0, got {depth}")
    margins = Z @ beta
    beta_bar = beta / _separating(margins, "beta")
    g = Z.T @ p
    if fourier:
        b, g_hat = np.fft.fft(beta_bar, norm="ortho"), np.fft.fft(g, norm="ortho")
    else:
        b, g_hat = beta_bar, g
    r_stat = _min_scaled_residual(np.abs(b) ** (2.0 / depth), np.conj(b) * g_hat)
    r_cs = float(p @ (margins / margins.min() - 1.0))
    return r_stat, r_cs


def predictor_kkt_path(betas, Z, ps, depth, fourier=False):
    """`predictor_kkt` along a run: (T, 2) array of (r_stat, r_cs) at betas[t] with dual weights ps[t]; rows where
    beta does not separate the data yet (min_n z_n.beta <= 0, no KKT point) are NaN."""
    Z = finite_array("Z", Z, ndim=2)
    betas = finite_array("betas", betas, ndim=2)
    ps = finite_array("ps", ps, ndim=2)
    if len(betas) != len(ps):
        raise InputError(f"betas and ps must have one row per saved time, got {len(betas)} and {len(ps)} rows")
    return np.array([predictor_kkt(b, Z, p, depth, fourier) if np.min(Z @ b) > 0 else (np.nan, np.nan)
                     for b, p in zip(betas, ps)]).reshape(len(betas), 2)


def parameter_kkt(margin_fn, params, data, p, homogeneity):
    """(r_stat, r_cs) of Lyu & Li's (P): min ||theta||^2/2 s.t. q_n(theta) >= 1, for an L-homogeneous q.

    theta_bar = theta / q_min^(1/L); r_stat = min_c ||theta_bar - c sum_n p_n grad q_n(theta_bar)|| / ||theta_bar||;
    r_cs = sum_n p_n (q_n(theta_bar) - 1). Parameters with min_n q_n <= 0 do not separate: `InputError`."""
    flat, unravel = ravel_pytree(params)
    q_fn = lambda v: margin_fn(unravel(v), data)
    q = q_fn(flat)
    p = _dual_weights(p, np.size(q))
    bar = flat / _separating(np.asarray(q), "params") ** (1.0 / homogeneity)
    q_bar, pullback = jax.vjp(q_fn, bar)
    (direction,) = pullback(jnp.asarray(p))
    return _min_scaled_residual(np.asarray(bar), np.asarray(direction)), float(np.asarray(p) @ (np.asarray(q_bar) - 1.0))


def normalized_margin_homogeneous(q, params, homogeneity):
    """gamma(theta) = min_n q_n / ||theta||^L (theta != 0)."""
    norm = _norm(params, "normalized_margin_homogeneous")
    return float(np.min(q)) / norm**homogeneity


def smoothed_margin(q, params, homogeneity):
    """Lyu & Li's gamma_tilde = -logsumexp(-q) / ||theta||^L = log(1/L_exp) / ||theta||^L (exp loss; theta != 0)."""
    norm = _norm(params, "smoothed_margin")
    return float(-logsumexp(-jnp.asarray(q))) / norm**homogeneity


def layer_alignment(layers):
    """Deep linear nets (Ji & Telgarsky 2019): for W_1..W_{L-1}, w_L returns
    (rank-1 defects 1 - sigma_1(W_l)/||W_l||_F, adjacency |v_l^T u_{l+1}| between consecutive layers),
    both -> (0, 1) under directional convergence (u_l, v_l: top left/right singular vectors)."""
    mats = [np.atleast_2d(np.asarray(W)) if np.ndim(W) == 2 else np.asarray(W)[:, None] for W in layers]
    if not mats:
        raise InputError("layer_alignment needs at least one layer")
    defects, tops = [], []
    for l, W in enumerate(mats):
        W = finite_array(f"layer {l}", W)
        if not np.any(W):
            raise InputError(f"layer {l} is zero: it has no singular direction (1 - sigma_1/||W||_F is 0/0)")
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        defects.append(float(1.0 - s[0] / np.linalg.norm(W)))
        tops.append((U[:, 0], Vt[0]))
    adjacency = [float(abs(tops[l][1] @ tops[l + 1][0])) for l in range(len(mats) - 1)]
    return defects, adjacency
