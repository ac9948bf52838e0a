"""Delayed (asynchronous) gradient descent with a fixed delay (Giladi, Shpigel Nacson, Hoffer, Soudry 2020, "At
Stability's Edge: How to Adjust Hyperparameters to Preserve Minima Selection in Asynchronous Training of Neural
Networks?", ICLR 2020, arXiv:1909.12340; docs/stability-sam-geometry.md section 4).

With delay tau >= 0 and heavy-ball momentum beta in [0, 1) (optax's trace convention, as `HeavyBall`):

    v_{k+1} = beta v_k - grad L(w_{k - tau}),   w_{k+1} = w_k + lr v_{k+1},   v_0 = 0,   w_j = w_0 for j < 0,

i.e. w_{k+1} = w_k - lr grad L(w_{k-tau}) + beta (w_k - w_{k-1}) started at rest, the gradient read at the iterate
tau steps old (for the first tau steps at w_0: the workers start from the initial weights). tau = 0 is
`GradientDescent` (beta = 0) and `HeavyBall` (beta > 0), bit for bit. Started at iterate k0 (``init(w, k0)``), the
convention reads w_j = w_{k0} for j < k0.

Shifted momentum (``shifted=True``): the velocity is read as stale as the gradient,

    v_{k+1} = beta v_{k - tau} - grad L(w_{k - tau}),   w_{k+1} = w_k + lr v_{k+1},   v_j = 0 for j <= 0,

what the paper's code does with one momentum buffer per worker (its parameter server "msgd": a worker's buffer is
saved with the weights it pulls and loaded again when it pushes its gradient, tau + 1 steps later; read from the
authors' repository, docs/stability-sam-geometry.md section 4). tau = 0 is heavy ball again.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..models.losses import as_objective
from .arguments import flag, integer_parameter
from .base import AbstractDiscrete, positive_lr, real_parameter


class DelayedState(NamedTuple):
    """State of `DelayedGD`: the iterate w_k, a ring buffer of the last tau + 1 iterates (each leaf of ``params``
    with a leading axis tau + 1; slot j mod (tau + 1) holds w_j) and the velocity v_k (zeros without momentum; with
    shifted momentum a ring buffer like ``history``, slot j mod (tau + 1) holding v_j)."""

    params: object
    history: object
    velocity: object


class DelayedGD(AbstractDiscrete):
    """Gradient descent whose gradient is ``delay`` steps stale, with optional heavy-ball momentum (module docstring):

        w_{k+1} = w_k + lr v_{k+1},   v_{k+1} = momentum v_k - grad L(w_{k - delay}),   w_j = w_0 (j < 0), v_0 = 0,

    or, with ``shifted=True``, v_{k+1} = momentum v_{k - delay} - grad L(w_{k - delay}) (v_j = 0 for j <= 0).

    On a quadratic with curvature lambda the iterate is stable iff every root of
    z^{tau+1} - (1 + beta) z^tau + beta z^{tau-1} + lr lambda (times z for tau = 0) lies in the unit disc (shifted:
    of (z - 1)(z^{tau+1} - beta) + lr lambda z); without momentum iff lr lambda < 2 sin(pi / (2 (2 tau + 1)))
    (`dynamics.predictions.delayed_gd_threshold`, `delayed_threshold_companion` for any momentum).

    ``lr``: a positive scalar (iterate k sits at t = k lr); ``delay``: an integer tau >= 0 (static: it sets the
    buffer's shape, so a new delay compiles anew, a new lr or momentum does not); ``momentum`` in [0, 1);
    ``shifted`` (static): read the velocity tau steps stale too. State `DelayedState` (memory (tau + 2) copies of the
    parameters plus the velocity, tau + 1 velocities when shifted); one gradient per step.
    """

    loss: object
    lr: object
    delay: int = eqx.field(static=True)
    momentum: object
    shifted: bool = eqx.field(static=True)

    def __init__(self, loss, lr, delay, momentum=0.0, shifted=False):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)
        self.delay = integer_parameter(delay, "delay", 0)
        self.momentum = real_parameter(momentum, "momentum", 0.0, 1.0)
        self.shifted = flag(shifted, "shifted")

    def init(self, theta0, k0=0):
        ring = lambda tree: jax.tree_util.tree_map(  # noqa: E731
            lambda x: jnp.broadcast_to(x, (self.delay + 1, *jnp.shape(x))), tree)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, theta0)
        return DelayedState(theta0, ring(theta0), ring(zeros) if self.shifted else zeros)

    def step(self, state, k):
        theta, history, velocity = state
        slot = jnp.mod(k + 1, self.delay + 1)                     # holds w_{k - tau} (w_0 while k < tau)
        read = lambda ring: jax.tree_util.tree_map(lambda h: h[slot], ring)  # noqa: E731
        write = lambda ring, new: jax.tree_util.tree_map(lambda h, x: h.at[slot].set(x), ring, new)  # noqa: E731
        descent = self.loss.descent_direction(read(history))
        previous = read(velocity) if self.shifted else velocity   # v_{k - tau} (shifted) or v_k
        new_velocity = jax.tree_util.tree_map(lambda d, v: d + self.momentum * v, descent, previous)
        theta = jax.tree_util.tree_map(lambda w, v: w + jnp.asarray(self.lr, v.dtype) * v, theta, new_velocity)
        history = write(history, theta)                           # w_{k+1}, same slot
        velocity = write(velocity, new_velocity) if self.shifted else new_velocity
        return DelayedState(theta, history, velocity)

    def params(self, state):
        return state.params
