"""Input checks shared by models, predictions and `simulate` (host-side)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError


def partition_parameters(tree, name):
    """(parameters, static) = ``eqx.partition(tree, eqx.is_inexact_array)``: the floating/complex array leaves
    that are differentiated and integrated, and the rest (functions, integers, buffers), which stays fixed.

    The single home of that split (``simulate``'s y0 and the spectrum functions' params). Raises `InputError`
    naming the leaves found when there is no floating-point array leaf."""
    parameters, static = eqx.partition(tree, eqx.is_inexact_array)
    if not jax.tree_util.tree_leaves(parameters):
        kinds = sorted({f"{leaf.dtype} array" if hasattr(leaf, "dtype") else type(leaf).__name__
                        for leaf in jax.tree_util.tree_leaves(tree)})
        raise InputError(f"{name} has no floating-point array leaves (got {type(tree).__name__} with leaves: "
                         f"{kinds or 'none'}): pass float or complex arrays, e.g. jnp.asarray(x, float), or a "
                         "pytree or Equinox module holding them")
    return parameters, static


def finite_array(name, value, ndim=None):
    """Return ``value`` as a NumPy array, raising `InputError` on a non-numeric dtype, NaN/Inf or a wrong rank
    (every float dtype JAX has counts as numeric, bfloat16 included)."""
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.number) or jnp.issubdtype(arr.dtype, jnp.inexact)):
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def labelled_data(X, y):
    """Check a binary classification set and return (X, y, Z) with z_n = y_n x_n.

    X: (N, d) finite; y: (N,) with entries exactly in {-1, +1}.
    """
    X = finite_array("X", X, ndim=2)
    y = finite_array("y", y, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise InputError("the data set is empty")
    bad = ~np.isin(y, (-1.0, 1.0))
    if bad.any():
        raise InputError(
            f"labels must be -1 or +1; y[{int(np.argmax(bad))}] = {float(y[bad][0])} "
            f"({int(bad.sum())} labels outside {{-1, +1}})")
    X = X.astype(np.float64)
    y = y.astype(np.float64)
    return X, y, y[:, None] * X
