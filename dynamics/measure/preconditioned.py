"""Preconditioned sharpness and the diagonal preconditioners of running optax Adam / RMSProp states.

An update theta_{k+1} = theta_k - lr P^{-1} m_k with a diagonal (or scalar) P > 0 is, in the coordinates
u = P^{1/2} theta, the same method on the loss u -> L(P^{-1/2} u), whose Hessian is P^{-1/2} H P^{-1/2}: the
quantity that sets its stability is the *preconditioned sharpness*

    S_P(theta) = lambda_max(P^{-1/2} H P^{-1/2}) = lambda_max(P^{-1} H)   (similar matrices; H u = lambda P u).

Cohen, Ghorbani, Krishnan et al. 2022 (Adaptive gradient methods at the edge of stability, arXiv:2207.14484)
measure lambda_1(P_t^{-1} H_t) with Adam's P_t = diag(sqrt(nu_hat_t) + eps) and find it equilibrating at the
frozen-preconditioner threshold (2 + 2 beta1) / ((1 - beta1) lr) (38 / lr at beta1 = 0.9);
`dynamics.predictions.stability` gives the thresholds, docs/stability-sam-geometry.md section 2 derives them.

`preconditioned_sharpness` runs `sharpness`'s eigensolvers (`dynamics.linalg`: dense up to DENSE_LIMIT parameters,
LOBPCG with its residual check above) on that change of variables, so it has the same accuracy, the same
compile-once behaviour (the rescaled loss is a module whose scale is an array: a new P or new parameters do not
recompile) and the same errors.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from ..linalg import solve_eigenpairs
from ..processes.optax_method import OptaxState
from ..validation import partition_parameters

__all__ = ["adam_preconditioner", "preconditioned_sharpness", "rmsprop_preconditioner"]


class _Rescaled(eqx.Module):
    """u -> loss(theta(u)), theta = s * u on the inexact-array leaves (s = P^{-1/2}): Hessian diag(s) H diag(s).
    ``scale`` is a pytree like the parameter partition (array leaves: traced, so a new P reuses the compiled
    solve)."""

    loss: object
    scale: object

    def __call__(self, u):
        dynamic, static = eqx.partition(u, eqx.is_inexact_array)
        return self.loss(eqx.combine(jax.tree_util.tree_map(jnp.multiply, self.scale, dynamic), static))


def _traced(tree):
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _check_positive(leaves, what):
    """`InputError` unless every entry of the concrete ``leaves`` is finite and > 0 (host-side)."""
    if _traced(leaves):
        return
    for leaf in leaves:
        values = np.asarray(leaf)
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            raise InputError(f"{what} must be real, got dtype {values.dtype}")
        bad = ~(np.isfinite(values) & (values > 0))
        if np.any(bad):
            index = tuple(int(i) for i in np.argwhere(bad)[0]) if values.ndim else ()
            value = values[index] if values.ndim else values
            raise InputError(f"{what} must be finite and > 0 (a positive-definite diagonal preconditioner), got "
                             f"{float(value)!r} at index {index}")


def _inverse_sqrt(P, dynamic):
    """P^{-1/2} as a pytree like ``dynamic`` (the parameters' inexact-array leaves, `partition_parameters`).

    P: a positive scalar; a pytree whose inexact-array leaves match ``dynamic`` in structure and shapes (an optax
    second moment or `adam_preconditioner`'s output); or a flat vector over those leaves in `ravel_pytree` order."""
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)
    n = sum(leaf.size for leaf in leaves)
    if isinstance(P, (bool, np.bool_, str)) or P is None:
        raise InputError(f"the preconditioner P must be a positive scalar, a pytree like params or a vector of "
                         f"{n} entries, got {P!r}")
    if isinstance(P, (int, float, np.number)) or (hasattr(P, "shape") and np.ndim(P) == 0):
        _check_positive([P], "the preconditioner P")
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(P, leaf.dtype) ** -0.5, dynamic)
    if isinstance(P, (np.ndarray, jax.Array)) and P.ndim == 1:  # flat, over the leaves in ravel_pytree order
        if P.shape != (n,):
            raise InputError(f"a flat preconditioner must have shape ({n},) (one entry per parameter), got "
                             f"{P.shape}")
        _check_positive([P], "the preconditioner P")
        flat, unravel = ravel_pytree(dynamic)
        P = unravel(jnp.asarray(P, flat.dtype))
    P_dynamic = eqx.filter(P, eqx.is_inexact_array)
    P_leaves, P_treedef = jax.tree_util.tree_flatten(P_dynamic)
    if P_treedef != treedef or any(np.shape(p) != np.shape(x) for p, x in zip(P_leaves, leaves)):
        got = [np.shape(p) for p in jax.tree_util.tree_leaves(P)]
        raise InputError(
            f"the preconditioner P must match params: a pytree of the same structure with floating-point leaves of "
            f"shapes {[leaf.shape for leaf in leaves]}, or a flat vector ({n},), or a scalar; got {type(P).__name__} "
            f"with leaf shapes {got}")
    _check_positive(P_leaves, "the preconditioner P")
    return jax.tree_util.tree_map(lambda p, x: jnp.asarray(p, x.dtype) ** -0.5, P_dynamic, dynamic)


def preconditioned_sharpness(loss, params, P, method=None, steps=None, *, tol=None, strict=None):
    """S_P = lambda_max(P^{-1/2} H P^{-1/2}) = lambda_max(P^{-1} H) of ``loss`` at ``params`` (H its Hessian).

    P: a positive scalar c (S_P = S / c); a diagonal given as a pytree matching params (same structure, leaves of
    the same shapes: e.g. `adam_preconditioner` of the optimizer state), or as a flat vector over the
    inexact-array leaves in `ravel_pytree` order. Entries must be finite and > 0, checked outside jit
    (`InputError`). Computed as `sharpness` of u -> loss(P^{-1/2} u) at u = P^{1/2} params, whose Hessian is
    P^{-1/2} H P^{-1/2}: the same solvers, defaults, accuracy statement and errors as `sharpness` (method, steps,
    tol, strict), the residual measured on the rescaled operator. Compiled once per (loss object, parameter
    shapes, method); new parameters and new P reuse the code. Units: a GD-type method theta -= lr P^{-1} g is
    stable on a quadratic iff lr S_P < 2 (`dynamics.predictions.stability` for momentum and Adam).
    """
    dynamic, static = partition_parameters(params, "params")
    scale = _inverse_sqrt(P, dynamic)
    u = eqx.combine(jax.tree_util.tree_map(jnp.divide, dynamic, scale), static)
    steps = 40 if steps is None and method == "lanczos" else steps
    return solve_eigenpairs(_Rescaled(loss, scale), u, 1, method, steps=steps, tol=tol, strict=strict).values[0]


# ----------------------------------------------------------------------------- preconditioners of optax states


def _coefficient(value, name, lower, upper, closed_lower=True):
    """A real scalar in [lower, upper) (or (lower, upper) when not closed_lower), as a float; `InputError`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real scalar, got {value!r}") from None
    if np.ndim(value) != 0 or not math.isfinite(x) or not ((lower <= x) if closed_lower else (lower < x)) or x >= upper:
        raise InputError(f"{name} must lie in {'[' if closed_lower else '('}{lower:g}, {upper:g}), got {value!r}")
    return x


def _state_types(*names):
    """The optax state classes of these names (public ones first, then optax._src.transform)."""
    from optax._src import transform
    found = (getattr(optax, name, None) or getattr(transform, name, None) for name in names)
    return tuple(kind for kind in found if kind is not None)


def _find_state(opt_state, kinds, what):
    """The single node of type ``kinds`` in the (nested) optax state, an `OptaxState` accepted; `InputError`."""
    if isinstance(opt_state, OptaxState):
        opt_state = opt_state.opt_state
    nodes = jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, kinds))
    found = [node for node in nodes if isinstance(node, kinds)]
    if len(found) != 1:
        raise InputError(f"expected exactly one {what} in the optimizer state, found {len(found)} (state of type "
                         f"{type(opt_state).__name__}); pass tx.init(params) or a later state of that optimizer, "
                         "or the sub-state you mean")
    return found[0]


def _debiased(moment, decay, count, what):
    """moment / (1 - decay^count), optax's bias correction (dtype kept); `InputError` at count 0 (no gradient yet)."""
    if not _traced(count) and int(count) < 1:
        raise InputError(f"the {what} state has count 0: no gradient has been seen yet, so its second moment is "
                         "empty (bias correction divides by 1 - decay^0 = 0); take at least one step first")
    correction = 1 - jnp.asarray(decay) ** count
    return jax.tree_util.tree_map(lambda t: t / correction.astype(t.dtype), moment)


def adam_preconditioner(opt_state, *, b2=0.999, eps=1e-8, eps_root=0.0):
    """Adam's diagonal preconditioner P_t = sqrt(nu_hat_t + eps_root) + eps, nu_hat_t = nu_t / (1 - b2^t), as a
    pytree like nu (like the parameters): optax's update at step t is exactly

        u_t = -lr m_hat_t / P_t,   m_hat_t = m_t / (1 - b1^t),   m_t = b1 m_{t-1} + (1 - b1) g_t,
        nu_t = b2 nu_{t-1} + (1 - b2) g_t^2,   m_0 = nu_0 = 0,

    with t = ``count`` and (m_t, nu_t) the state *after* that update (Kingma & Ba 2015; ``optax.scale_by_adam``,
    eps outside the root, eps_root inside). This is Cohen, Ghorbani, Krishnan et al.'s (2022) P = diag(sqrt(nu_hat)
    + eps) (their eps_root = 0). ``opt_state``: the state of optax.adam / adamw / nadam / scale_by_adam (a chain
    included) or an `OptaxState`; it holds no hyper-parameters, so pass the optimizer's own b2, eps, eps_root
    (defaults: optax.adam's). `InputError`: b2 outside [0, 1), eps <= 0, eps_root < 0, no or several Adam states,
    count 0.
    """
    b2 = _coefficient(b2, "b2", 0.0, 1.0)
    eps = _coefficient(eps, "eps", 0.0, math.inf, closed_lower=False)
    eps_root = _coefficient(eps_root, "eps_root", 0.0, math.inf)
    state = _find_state(opt_state, (optax.ScaleByAdamState,), "Adam state (optax.ScaleByAdamState)")
    nu_hat = _debiased(state.nu, b2, state.count, "Adam")
    return jax.tree_util.tree_map(lambda n: jnp.sqrt(n + eps_root) + eps, nu_hat)


_RMS = _state_types("ScaleByRmsState", "ScaleByRmsWithCountState", "ScaleByRStdDevState",
                    "ScaleByRStdDevWithCountState")


def rmsprop_preconditioner(opt_state, *, eps=1e-8, eps_in_sqrt=True, decay=0.9):
    """RMSProp's diagonal preconditioner P_t as a pytree like nu, in ``optax.rmsprop``'s conventions:

        nu_t = decay nu_{t-1} + (1 - decay) g_t^2,   nu_0 = initial_scale (default 0),   u_t = -lr g_t / P_t,
        P_t = sqrt(nu_t + eps) (eps_in_sqrt=True, optax's default)   or   sqrt(nu_t) + eps (False, PyTorch's),

    (nu_t the state after the update of step t). With ``bias_correction=True`` (the state then carries a count)
    nu_t is replaced by nu_t / (1 - decay^t), which needs ``decay``; centered RMSProp (centered=True) replaces
    nu_t by nu_t - m_t^2, m_t the EMA of g. With ``momentum``, optax applies its trace (v = momentum v + u) after
    this scaling; P is unchanged. ``opt_state``: the state of optax.rmsprop / scale_by_rms / scale_by_stddev (a
    chain included) or an `OptaxState`; pass the optimizer's own eps and eps_in_sqrt (defaults: optax.rmsprop's).
    Cohen, Ghorbani, Krishnan et al. (2022) use PyTorch's convention, P = diag(sqrt(nu) + eps).
    `InputError`: decay outside [0, 1), eps <= 0, no or several RMSProp states.
    """
    eps = _coefficient(eps, "eps", 0.0, math.inf, closed_lower=False)
    decay = _coefficient(decay, "decay", 0.0, 1.0)
    state = _find_state(opt_state, _RMS, "RMSProp state (optax.ScaleByRmsState or ScaleByRStdDevState)")
    nu, mu = state.nu, getattr(state, "mu", None)
    if "count" in state._fields:  # bias_correction=True
        nu = _debiased(nu, decay, state.count, "RMSProp")
        mu = None if mu is None else _debiased(mu, decay, state.count, "RMSProp")
    if mu is not None:
        nu = jax.tree_util.tree_map(lambda n, m: n - jnp.abs(m) ** 2, nu, mu)
    root = (lambda n: jnp.sqrt(n + eps)) if eps_in_sqrt else (lambda n: jnp.sqrt(n) + eps)
    return jax.tree_util.tree_map(root, nu)
