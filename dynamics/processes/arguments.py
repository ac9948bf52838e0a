"""Host-side checks of process-specific arguments (integers, flags, callables, PRNG keys, state containers).

Each raises `InputError` naming the argument and the fix. They read only Python values, shapes and dtypes, so they
also accept traced arrays (a process built under jit or vmap) and never change a pytree's structure.
(Real-valued hyper-parameters: `base.real_parameter`; step sizes: `base.positive_lr`.)
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError

KEY_HINT = "make one with jax.random.PRNGKey(0) (or jax.random.key(0))"


def _describe(value):
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    return f"{value!r} ({type(value).__name__})"


def integer_parameter(value, name, lower=1, upper=None, upper_name=None):
    """``value`` as a Python int in [lower, upper]; floats (even 2.0), bools and strings are refused. The message
    writes the upper bound as ``upper_name=upper`` when named (e.g. N=4)."""
    top = upper if upper_name is None else f"{upper_name}={upper}"
    bounds = f">= {lower}" if upper is None else f"in [{lower}, {top}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer {bounds}, got {_describe(value)}")
    if value < lower or (upper is not None and value > upper):
        raise InputError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def flag(value, name):
    """``value`` as a bool; only True/False are accepted (a string such as "no" would read as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def callable_argument(fn, name, what):
    """``fn`` if callable; else `InputError` describing ``what`` it must be."""
    if not callable(fn):
        raise InputError(f"{name} must be {what}, got {_describe(fn)}")
    return fn


def _key_shape(key, name):
    """The batch shape of a key array: () for one key. A new-style key (jax.random.key) has a key dtype and the batch
    shape; a raw PRNGKey is uint32 with a trailing axis of 2."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return tuple(key.shape)
    if dtype == jnp.uint32 and len(getattr(key, "shape", ())) >= 1 and key.shape[-1] == 2:
        return tuple(key.shape[:-1])
    got = f"shape {tuple(key.shape)}, dtype {dtype}" if dtype is not None else f"{key!r} ({type(key).__name__})"
    raise InputError(f"{name} must be a JAX PRNG key, got {got}: {KEY_HINT}")


def prng_key(key, name="key"):
    """One PRNG key (a uint32 (2,) array or a typed key of shape ()); `InputError` with how to make one otherwise."""
    shape = _key_shape(key, name)
    if shape != ():
        raise InputError(f"{name} must be one PRNG key, got a batch of keys of shape {shape}: pass one key "
                         f"({KEY_HINT}), or run copies over several keys with dynamics.SeedEnsemble(process, keys)")
    return key


def prng_keys(keys, name="keys"):
    """A 1-D batch of PRNG keys (e.g. jax.random.split(key, S)); returns S."""
    shape = _key_shape(keys, name)
    if len(shape) != 1 or shape[0] < 1:
        raise InputError(f"{name} must be a 1-D batch of S >= 1 PRNG keys, got batch shape {shape}: e.g. "
                         "jax.random.split(jax.random.PRNGKey(0), S)")
    return shape[0]


def state_tuple(state, names, owner, hint):
    """``state`` unpacked as the tuple (or list) of len(names) parts a process carries, e.g. (x, d) for a rod;
    `InputError` naming the expected parts and ``hint`` (how to build the state) otherwise. Trace-time: reads only the
    container. `like` rebuilds the container of a field's output."""
    if type(state) not in (tuple, list) or len(state) != len(names):
        if type(state) in (tuple, list):
            got = f"a {type(state).__name__} of {len(state)} parts"
        elif hasattr(state, "shape"):
            got = f"an array of shape {tuple(state.shape)}"
        else:
            got = f"a {type(state).__name__}"
        raise InputError(f"{owner} runs on a state ({', '.join(names)}), got {got}; {hint}")
    return tuple(state)


def like(state, parts):
    """``parts`` in the container type (tuple or list) of ``state``: a field's output has the state's structure."""
    return list(parts) if isinstance(state, list) else tuple(parts)


def same_structure(name_a, a, name_b, b):
    """`InputError` unless the pytrees a and b have the same structure and leaf shapes."""
    sa, sb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    shapes_a = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(a)]
    shapes_b = [jnp.shape(leaf) for leaf in jax.tree_util.tree_leaves(b)]
    if sa != sb or shapes_a != shapes_b:
        raise InputError(f"{name_a} and {name_b} must have the same structure and shapes, got {shapes_a} "
                         f"({sa}) and {shapes_b} ({sb})")
