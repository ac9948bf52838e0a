"""Objectives of any model that is a sum or mean of per-example losses.

    L(params) = (1/N) sum_n fn(params, data_n)    (reduction="mean", the default)
    L(params) = sum_n fn(params, data_n)          (reduction="sum")

``data`` is a pytree of arrays sharing a leading example axis N and data_n its n-th slice. The reduction
sets the time scale: gradient flow on the mean at time t equals gradient flow on the sum at time t / N, and
GD on the mean with rate lr equals GD on the sum with rate lr / N.
"""

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from .losses import WithStatic, check_reduction, negative_gradient


class PerExample(eqx.Module):
    """L(params) = reduce_n fn(params, data_n), each fn evaluated by jax.vmap over the examples.

    Build it with `per_example`, which validates the inputs. ``subset(index)`` is the same loss on the
    examples ``index`` (a "mean" loss averages over the subset, so a minibatch estimates L itself).
    """

    fn: callable  # a function or a Module (arrays inside are traced, not hashed)
    data: object
    reduction: str = eqx.field(static=True, default="mean")

    @property
    def num_examples(self):
        return jax.tree_util.tree_leaves(self.data)[0].shape[0]

    def example_losses(self, params):
        """The (N,) vector fn(params, data_n); a non-scalar fn output raises `InputError` at trace time."""
        losses = jax.vmap(self.fn, in_axes=(None, 0))(params, self.data)
        if not isinstance(losses, jax.Array) or losses.ndim != 1:
            got = f"shape {losses.shape[1:]}" if isinstance(losses, jax.Array) else f"a {type(losses).__name__}"
            raise InputError(f"fn(params, example) must return a scalar, got {got}; reduce the example's "
                             "loss to one number (e.g. jnp.sum over its outputs)")
        return losses

    def check(self, params):
        """Host-side check that fn(params, example) runs on ``params`` and returns a scalar (traces fn once)."""
        jax.eval_shape(self.example_losses, params)

    def __call__(self, params):
        losses = self.example_losses(params)
        return jnp.mean(losses) if self.reduction == "mean" else jnp.sum(losses)

    def log_value(self, params):
        """log L(params): defined only where L > 0 (NaN otherwise); used by log-space methods (NormalizedGD)."""
        return jnp.log(self(params))

    def descent_direction(self, theta, log_scale=None):
        """-exp(log_scale) grad L(theta) (-grad L for log_scale=None)."""
        return negative_gradient(self, theta, log_scale)

    def subset(self, index):
        """The same loss on the examples ``index``, reduced over the subset."""
        data = jax.tree_util.tree_map(lambda leaf: leaf[index], self.data)
        return PerExample(self.fn, data, self.reduction)

    def bind_static(self, static):
        """The same loss of fn(eqx.combine(params, static), data_n)."""
        return PerExample(WithStatic(self.fn, static), self.data, self.reduction)


def _accepts_two_positional(fn):
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no introspectable signature (some builtins): trust the caller
        return True
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


def per_example(fn, data, reduction="mean"):
    """The objective L(params) = reduce_n fn(params, data_n) of any model (see the module docstring).

    ``fn(params, example) -> scalar``: the loss of one example, where ``example`` has the structure of
    ``data`` without the leading axis. ``data``: pytree of NumPy/JAX arrays, all with the same leading size
    N >= 1 (stored as JAX arrays). ``reduction``: "mean" (default) or "sum".
    """
    if not callable(fn):
        raise InputError(f"fn must be a callable fn(params, example) -> scalar, got {type(fn).__name__}")
    if not _accepts_two_positional(fn):
        raise InputError(f"fn must accept two positional arguments (params, example); its signature is "
                         f"{inspect.signature(fn)}")
    check_reduction(reduction)
    leaves, _ = jax.tree_util.tree_flatten_with_path(data)
    if not leaves:
        raise InputError("data has no array leaves; pass arrays with a leading example axis, e.g. (X, y)")
    sizes = {}
    for path, leaf in leaves:
        name = "data" + jax.tree_util.keystr(path)
        if not isinstance(leaf, (np.ndarray, jax.Array)):
            raise InputError(f"{name} is a {type(leaf).__name__}; every data leaf must be a NumPy or JAX array "
                             "with a leading example axis (wrap constants into fn instead)")
        if leaf.ndim == 0:
            raise InputError(f"{name} is a scalar; every data leaf needs a leading example axis")
        sizes[name] = leaf.shape[0]
    if len(set(sizes.values())) > 1:
        raise InputError(f"data leaves have different leading sizes {sizes}; every leaf needs the same number "
                         "of examples N along axis 0")
    if next(iter(sizes.values())) == 0:
        raise InputError("data has N = 0 examples; the loss of an empty data set is undefined")
    return PerExample(fn, jax.tree_util.tree_map(jnp.asarray, data), reduction)
