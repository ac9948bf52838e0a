"""Small MLPs and scalar networks for edge-of-stability experiments.

Loss conventions differ between papers and change the sharpness scale, so each loss states its own:
mse: mean_n ||f(x_n) - y_n||^2 (times 1/2 with half=True, Cohen et al.'s convention);
cross_entropy: mean_n -log softmax(f(x_n))[y_n]. Parameters are a list of (W, b) pairs. The scalar-network GFS
closed forms live in `dynamics.predictions.gfs`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError

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
    or integer labels; the first ``n`` examples of the first ``classes`` classes. scikit-learn is a dependency,
    imported here because importing sklearn.datasets costs ~1 s, which `import dynamics` should not pay."""
    from sklearn.datasets import load_digits

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
