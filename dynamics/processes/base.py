"""Abstract processes: what `simulate` knows how to run.

A *discrete* process maps an iterate to the next (``init``, ``step``, ``params``); iterate k sits
at physical time t = k * lr. A *flow* is a vector field dtheta/dt = F(t, theta), integrated by
diffrax; in log time tau = log(1 + t) the field is dtheta/dtau = e^tau F, which each flow may
provide in an overflow-free form (``log_time_field``).
"""

import math

import equinox as eqx
import jax.numpy as jnp

from ..errors import StepSizeError


def positive_lr(lr):
    """Check a learning rate is a finite positive number (concrete values only); return it as an array."""
    try:
        value = float(lr)
    except TypeError:  # traced under vmap/jit: cannot check here
        return lr
    if not (value > 0 and math.isfinite(value)):
        raise StepSizeError(f"the learning rate must be finite and > 0, got lr = {lr!r}")
    return jnp.asarray(value)  # an array, not a Python float: new values reuse the compiled code


class AbstractProcess(eqx.Module):
    """Anything `simulate` runs."""

    time_unit = "physical"


class AbstractDiscrete(AbstractProcess):
    """theta_{k+1} = step(theta_k); iterate k sits at t = k * lr.

    The step may depend on k (schedules, minibatch order) and on auxiliary state (momentum,
    permutation), which ``init`` creates and ``params`` strips.
    """

    lr: object

    @property
    def step_time(self):
        """Time between iterates: lr in physical time, 1 in step time (``time_unit = "step"``)."""
        return 1.0 if self.time_unit == "step" else self.lr

    def init(self, theta0, k0=0):
        """The state at iterate k0 from the parameters theta0."""
        return theta0

    def step(self, state, k):
        raise NotImplementedError

    def params(self, state):
        return state


class AbstractFlow(AbstractProcess):
    """dtheta/dt = field(t, theta)."""

    def field(self, t, theta):
        raise NotImplementedError

    def log_time_field(self, tau, theta):
        """dtheta/dtau = e^tau field(e^tau - 1, theta); override to fold e^tau into exponents."""
        raise NotImplementedError
