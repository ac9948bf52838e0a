"""Delayed (asynchronous) gradient descent with a fixed delay (Giladi, Shpigel Nacson, Hoffer, Soudry 2020, "At
Stability's Edge: How to Adjust Hyperparameters to Preserve Minima Selection in Asynchronous Training of Neural
Networks?", ICLR 2020, arXiv:1909.12340; docs/stability-sam-geometry.md section 4).

With delay tau >= 0 and heavy-ball momentum beta in [0, 1) (optax's trace convention, as `HeavyBall`):

    v_{k+1} = beta v_k - grad L(w_{k - tau}),   w_{k+1} = w_k + lr v_{k+1},   v_0 = 0,   w_j = w_0 for j < 0,

i.e. w_{k+1} = w_k - lr grad L(w_{k-tau}) + beta (w_k - w_{k-1}) started at rest, the gradient read at the iterate
tau steps old (for the first tau steps at w_0: the workers start from the initial weights). tau = 0 is
`GradientDescent` (beta = 0) and `HeavyBall` (beta > 0), bit for bit. Started at iterate k0 (``init(w, k0)``), the
convention reads w_j = w_{k0} for j < k0.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..models.losses import as_objective
from .arguments import integer_parameter
from .base import AbstractDiscrete, positive_lr, real_parameter


class DelayedState(NamedTuple):
    """State of `DelayedGD`: the iterate w_k, a ring buffer of the last tau + 1 iterates (each leaf of ``params``
    with a leading axis tau + 1; slot j mod (tau + 1) holds w_j) and the velocity v_k (zeros without momentum)."""

    params: object
    history: object
    velocity: object


class DelayedGD(AbstractDiscrete):
    """Gradient descent whose gradient is ``delay`` steps stale, with optional heavy-ball momentum (module docstring):

        w_{k+1} = w_k + lr v_{k+1},   v_{k+1} = momentum v_k - grad L(w_{k - delay}),   w_j = w_0 (j < 0), v_0 = 0.

    On a quadratic with curvature lambda the iterate is stable iff every root of
    z^{tau+1} - (1 + beta) z^tau + beta z^{tau-1} + lr lambda (times z for tau = 0) lies in the unit disc; without
    momentum iff lr lambda < 2 sin(pi / (2 (2 tau + 1))) (`dynamics.predictions.delayed_gd_threshold`).

    ``lr``: a positive scalar (iterate k sits at t = k lr); ``delay``: an integer tau >= 0 (static: it sets the
    buffer's shape, so a new delay compiles anew, a new lr or momentum does not); ``momentum`` in [0, 1).
    State `DelayedState` (memory (tau + 2) copies of the parameters plus the velocity); one gradient per step.
    """

    loss: object
    lr: object
    delay: int = eqx.field(static=True)
    momentum: object

    def __init__(self, loss, lr, delay, momentum=0.0):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)
        self.delay = integer_parameter(delay, "delay", 0)
        self.momentum = real_parameter(momentum, "momentum", 0.0, 1.0)

    def init(self, theta0, k0=0):
        slots = self.delay + 1
        history = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (slots, *jnp.shape(x))), theta0)
        return DelayedState(theta0, history, jax.tree_util.tree_map(jnp.zeros_like, theta0))

    def step(self, state, k):
        theta, history, velocity = state
        slot = jnp.mod(k + 1, self.delay + 1)                     # holds w_{k - tau} (w_0 while k < tau)
        stale = jax.tree_util.tree_map(lambda h: h[slot], history)
        descent = self.loss.descent_direction(stale)
        velocity = jax.tree_util.tree_map(lambda d, v: d + self.momentum * v, descent, velocity)
        theta = jax.tree_util.tree_map(lambda w, v: w + jnp.asarray(self.lr, v.dtype) * v, theta, velocity)
        history = jax.tree_util.tree_map(lambda h, w: h.at[slot].set(w), history, theta)   # w_{k+1}, same slot
        return DelayedState(theta, history, velocity)

    def params(self, state):
        return state.params
