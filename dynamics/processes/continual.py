"""Continual (sequential) learning on two tasks and its modified flow (Dherin 2023).

GD takes n steps on L_1, then n on L_2, and repeats; iterate k sits at t = k h. Over cycles the iterate
follows, to O(h^3) per cycle (O(h^2) over a fixed time),

    theta. = -grad[ (L_1 + L_2)/2 + (h/8)(||g_1||^2 + ||g_2||^2) ] - (n h / 4)(H_1 g_2 - H_2 g_1),

whose last term is the Lie bracket [g_1, g_2] (not a gradient: the conflict term of continual learning,
growing with the phase length n, changing sign when the task order is reversed).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..derivatives import scalar_loss
from .arguments import callable_argument, integer_parameter
from .modified_losses import igr_loss
from .base import AbstractDiscrete, AbstractFlow, positive_lr


class _TwoTasks(eqx.Module):
    first: callable = eqx.field(static=True)
    second: callable = eqx.field(static=True)
    lr: object
    phase: object  # an int64 array: it enters only arithmetic (k // n, n h), so a new n reuses the compiled code

    def __init__(self, first, second, lr, phase=1):
        what = "a loss: a function of the parameters returning a scalar"
        self.first, self.second = callable_argument(first, "first", what), callable_argument(second, "second", what)
        self.lr = positive_lr(lr)
        self.phase = jnp.asarray(integer_parameter(phase, "phase (steps per task)"), jnp.int64)


class SequentialGD(_TwoTasks, AbstractDiscrete):
    """theta_{k+1} = theta_k - h grad L_{task(k)}, task(k) = 1 for (k // n) even, else 2."""

    def step(self, theta, k):
        on_first = (k // self.phase) % 2 == 0
        grad = jax.lax.cond(on_first, jax.grad(scalar_loss(self.first)), jax.grad(scalar_loss(self.second)), theta)
        return theta - self.lr * grad


class ContinualModifiedFlow(_TwoTasks, AbstractFlow):
    """The modified flow above (one cycle of 2n steps spans t = 2 n h)."""

    def field(self, t, theta):
        mean_igr = lambda th: 0.5 * (igr_loss(self.first, self.lr)(th) + igr_loss(self.second, self.lr)(th))
        g1, g2 = jax.grad(self.first), jax.grad(self.second)
        h1_g2 = jax.jvp(g1, (theta,), (g2(theta),))[1]
        h2_g1 = jax.jvp(g2, (theta,), (g1(theta),))[1]
        return -jax.grad(mean_igr)(theta) - self.phase * self.lr / 4.0 * (h1_g2 - h2_g1)


def lie_bracket(first, second, theta):
    """[g_1, g_2](theta) = H_2 g_1 - H_1 g_2 (the bracket of the two gradient fields)."""
    g1, g2 = jax.grad(first), jax.grad(second)
    return jax.jvp(g2, (theta,), (g1(theta),))[1] - jax.jvp(g1, (theta,), (g2(theta),))[1]


