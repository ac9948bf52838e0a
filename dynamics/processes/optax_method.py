"""Any optax optimizer as a discrete process of `simulate`."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..errors import InputError
from ..models.losses import as_objective
from .base import AbstractDiscrete, TimeUnit


def _transformation(tx):
    """tx itself when it has callable ``init`` and ``update`` (an optax GradientTransformation, with or without
    extra args); `InputError` otherwise, naming an uncalled optimizer factory such as ``optax.adam``."""
    if callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None)):
        return tx
    if callable(tx):
        name = getattr(tx, "__name__", type(tx).__name__)
        raise InputError(
            f"tx must be an optax GradientTransformation, got the callable {name!r} itself: an optimizer factory "
            f"must be called to build the transformation, e.g. optax.adam(1e-3) rather than optax.adam")
    raise InputError(f"tx must be an optax GradientTransformation (an object with init and update), got {tx!r} "
                     f"of type {type(tx).__name__}; e.g. optax.adam(1e-3) or optax.sgd(0.1, momentum=0.9)")


class OptaxState(NamedTuple):
    """State of `OptaxMethod`: the parameters and the transformation's own state."""

    params: object
    opt_state: object


class OptaxMethod(AbstractDiscrete):
    """An optax transformation ``tx`` run on L in one compiled loop:

        (u_k, s_{k+1}) = tx.update(grad L(theta_k), s_k, theta_k),   theta_{k+1} = theta_k + u_k,   s_0 = tx.init(theta_0)

    (``optax.apply_updates``, which keeps each leaf's dtype). Iterate k sits at step time t = k
    (``traj.time_unit == "step"``): the step length of a transformation is not one number (adaptive methods, a
    schedule inside tx), so ``ts`` counts steps. The optimizer state starts afresh from the parameters at ts[0]
    (a schedule inside tx counts from there). One gradient per step; transformations that need more than the
    gradient (extra arguments such as value or value_fn: optax.lbfgs, optax.polyak_sgd) are not supported.
    """

    time_unit = TimeUnit.STEP
    loss: object
    tx: object

    def __init__(self, loss, tx):
        self.loss = as_objective(loss)
        self.tx = _transformation(tx)

    def init(self, theta0, k0=0):
        return OptaxState(theta0, self.tx.init(theta0))

    def params(self, state):
        return state.params

    def step(self, state, k):
        theta, opt_state = state
        gradient = jax.tree_util.tree_map(jnp.negative, self.loss.descent_direction(theta))
        try:
            updates, opt_state = self.tx.update(gradient, opt_state, theta)
        except TypeError as error:  # traced once: an update that needs value / value_fn (optax.lbfgs, polyak_sgd)
            if "required keyword-only argument" not in str(error):
                raise
            raise InputError(f"tx.update needs more than (gradient, state, params): {error}. OptaxMethod supplies "
                             "only the gradient; transformations that take the loss value or value_fn (optax.lbfgs, "
                             "optax.polyak_sgd) are not supported") from None
        return OptaxState(optax.apply_updates(theta, updates), opt_state)
