"""Small MLPs and scalar networks for edge-of-stability experiments.

Loss conventions differ between papers and change the sharpness scale, so each loss states its own:
mse: mean_n ||f(x_n) - y_n||^2 (times 1/2 with half=True, Cohen et al.'s convention);
cross_entropy: mean_n -log softmax(f(x_n))[y_n]. Parameters are a list of (W, b) pairs.
"""

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError, StepSizeError

ACTIVATIONS = {"tanh": jnp.tanh, "swish": jax.nn.swish, "relu": jax.nn.relu}


def mlp_init(key, sizes, scale=1.0):
    """LeCun-normal layers for widths ``sizes`` = (d_in, h_1, ..., d_out); biases zero."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise InputError(f"sizes must list at least an input and an output width >= 1, got {sizes}")
    keys = jax.random.split(key, len(sizes) - 1)
    return [(scale * jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b))
            for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def mlp_apply(params, X, activation="tanh"):
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    act = ACTIVATIONS[activation]
    h = X
    for W, b in params[:-1]:
        h = act(h @ W + b)
    W, b = params[-1]
    return h @ W + b


def mlp_loss(X, y, activation="tanh", loss="mse", half=False):
    """theta -> loss of an MLP on (X, y); see the module docstring for the conventions."""
    X = jnp.asarray(X, float)
    if loss == "mse":
        Y = jnp.asarray(y, float).reshape(X.shape[0], -1)
        scale = 0.5 if half else 1.0
        return lambda params: scale * jnp.mean(jnp.sum((mlp_apply(params, X, activation) - Y) ** 2, axis=-1))
    if loss == "cross_entropy":
        labels = jnp.asarray(y, int)
        return lambda params: -jnp.mean(
            jnp.take_along_axis(jax.nn.log_softmax(mlp_apply(params, X, activation)), labels[:, None], axis=1))
    raise InputError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")


def digits_dataset(n=None, classes=10, one_hot=True):
    """scikit-learn's bundled 8x8 digits (1797 images, no download): X scaled to [0, 1], y one-hot (MSE)
    or integer labels; the first ``n`` examples of the first ``classes`` classes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # optional dependency
        raise ImportError("digits_dataset needs scikit-learn: pip install scikit-learn") from err
    data = load_digits()
    keep = data.target < classes
    X, y = data.data[keep] / 16.0, data.target[keep]
    if n is not None:
        X, y = X[:n], y[:n]
    return X, (np.eye(classes)[y] if one_hot else y)


# ----------------------------------------------------------------------------- scalar networks


def scalar_network_loss(y=1.0):
    """L(w) = (prod_i w_i - y)^2 / 2 for the depth-D scalar network pi(w) = prod_i w_i."""
    return lambda w: 0.5 * (jnp.prod(w) - y) ** 2


def gfs_point_scalar(w, y=1.0):
    """S_GF(w): the gradient-flow limit from w. GF conserves w_i^2 - w_j^2 and signs, so
    S_GF(w)_i = sign(w_i) sqrt(w_i^2 + c) with c > -min_i w_i^2 the root of sum_i log(w_i^2 + c) = log y^2."""
    import scipy.optimize

    w = np.asarray(w, float)
    if np.sign(np.prod(w)) != np.sign(y) or np.any(w == 0):
        raise InputError("gradient flow from w ends at pi = 0, not at a minimizer: sign(prod w) must equal sign(y)")
    f = lambda c: np.sum(np.log(w**2 + c)) - np.log(y**2)  # increasing; -> -inf as c -> -min w^2
    lo = -np.min(w**2) * (1.0 - 1e-14)
    hi = max(1.0, -lo)
    while f(hi) < 0:
        hi *= 2
    c = scipy.optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return np.sign(w) * np.sqrt(w**2 + c)


def gfs_sharpness_scalar(w, y=1.0):
    """phi(w) = lambda_max of the Hessian at S_GF(w) = y^2 sum_i 1/(w_i^2 + c) (Kreisler et al. 2023)."""
    limit = gfs_point_scalar(w, y)
    return float(y**2 * np.sum(1.0 / limit**2))


def balanced_sharpness(depth, y=1.0):
    """Smallest sharpness over all minimizers of the depth-D scalar net: D |y|^(2 - 2/D) (balanced point)."""
    return depth * abs(y) ** (2.0 - 2.0 / depth)


def require_stable_minimizer(lr, depth, y=1.0):
    """Raise StepSizeError when 2/lr is below every minimizer's sharpness (GD cannot converge to any minimizer)."""
    floor = balanced_sharpness(depth, y)
    if 2.0 / lr < floor:
        raise StepSizeError(f"no minimizer of the depth-{depth} scalar network is stable at lr = {lr:.6g}: "
                            f"2/lr = {2.0 / lr:.6g} < {floor:.6g} = D |y|^(2-2/D), the smallest sharpness of any "
                            "minimizer; GD cannot converge (it ends on a cycle or diverges)")
