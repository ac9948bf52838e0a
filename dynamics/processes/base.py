"""The process contract: what `simulate` knows how to run.

A *discrete* process maps a state to the next (`AbstractDiscrete.step`, abstract); ``init`` builds the state
from the parameters and ``params`` reads them back. A *flow* is a vector field dtheta/dt = F(t, theta)
(`AbstractFlow.field`, abstract), integrated by diffrax; in log time tau = log(1 + t) the field is
dtheta/dtau = e^tau F, which a flow may provide in an overflow-free form (``log_time_field``).

Time, stated once (`TimeUnit`): iterate k of a discrete process sits at

- PHYSICAL time t_k = sum_{j<k} h_j with h_j = ``step_size(j)`` (t = k lr for a constant learning rate;
  the partial sums of a schedule otherwise), the clock of gradient flow and the modified flows;
- STEP time t = k (``step_size`` = 1), for optax transformations and the edge-of-stability flows whose
  step size is not one number.

Cost (`StepCost`): what one step (discrete) or one field evaluation (flow) spends in gradients, Hessian-vector
products and third-derivative products, so that ``traj.stats`` reports true counts for every process. A process
whose cost varies from step to step (an eigensolver run to a residual) carries its counters in its state and
reports them through ``counts``.

Subclasses declare their own fields in the order of their constructor (the bases declare none), so positional
and keyword construction both work.
"""

import abc
import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError, StepSizeError
from ..trajectory import TimeUnit


class StepCost(NamedTuple):
    """Derivative evaluations per step (discrete) or per field evaluation (flow).

    gradients: full-objective gradients (a minibatch gradient of B of N examples counts B / N);
    hvps: Hessian-vector products; third: third-derivative products T[u, v] (one Hessian-vector product's JVP).
    """

    gradients: float = 1.0
    hvps: float = 0.0
    third: float = 0.0

    def times(self, n):
        """Totals for n steps (or field evaluations) as a dict of floats (ints where exact)."""
        return {name: _count(value * n) for name, value in zip(("gradients", "hvps", "third"), self)}


def _count(x):
    return int(round(x)) if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)) else float(x)


def positive_lr(lr, what="learning rate"):
    """Check a step size is a real finite positive scalar; return it as a weakly typed array (a new value reuses the
    compiled code). Traced values (under vmap/jit) cannot be checked here and pass through."""
    if isinstance(lr, jax.core.Tracer):
        return lr
    if lr is None or isinstance(lr, (bool, np.bool_, str, list, tuple, dict)) or np.ndim(lr) != 0:
        raise StepSizeError(f"the {what} must be a positive real scalar, got {lr!r}")
    if np.iscomplexobj(lr):
        raise StepSizeError(f"the {what} must be real, got {lr!r}")
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise StepSizeError(f"the {what} must be a positive real scalar, got {lr!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise StepSizeError(f"the {what} must be finite and > 0, got {lr!r}")
    return jnp.asarray(value)  # weakly typed: a float32 state stays float32


def real_parameter(value, name, lower=-math.inf, upper=math.inf, closed_upper=False):
    """A real scalar hyper-parameter (momentum, a scale, a power) in [lower, upper) (or [lower, upper]) as a weakly typed
    array, so that a new value reuses the compiled code; traced values pass through."""
    if isinstance(value, jax.core.Tracer):
        return value
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a real scalar, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real scalar, got {value!r}") from None
    if np.ndim(value) != 0 or np.iscomplexobj(value) or not math.isfinite(x):
        raise InputError(f"{name} must be a finite real scalar, got {value!r}")
    if not (lower <= x and (x <= upper if closed_upper else x < upper)):
        raise InputError(f"{name} must lie in [{lower:g}, {upper:g}{']' if closed_upper else ')'}, got {x:g}")
    return jnp.asarray(x)  # weakly typed: a float32 state stays float32


class AbstractProcess(eqx.Module):
    """Anything `simulate` runs. ``time_unit`` and ``cost`` are class-level metadata."""

    time_unit: ClassVar[TimeUnit] = TimeUnit.PHYSICAL
    cost: ClassVar[StepCost | None] = StepCost()  # None: not stated (simulate then reports no derivative counts)

    def step_cost(self, theta):
        """``cost`` for parameters like ``theta`` (host-side); override when it depends on the model's size."""
        return self.cost

    @property
    def complex_state(self):
        """Whether the process runs on complex states. False by default, and `simulate` then refuses a complex y0: the
        derivative of a real-valued loss of w = x + i y is not what ``jax.grad`` returns (it returns the conjugate,
        grad_x L - i grad_y L), and a complex-valued loss has no descent direction. A process whose derivatives are
        holomorphic (``dynamics.derivatives.gradient``) and that checks its loss is holomorphic overrides this
        (the complex principal flow)."""
        return False

    def promote(self, y0):
        """The initial state this process runs on, given the user's y0 (called by `simulate` and `simulate_sweep`
        before any check): y0 unchanged by default; the complex principal flow promotes real leaves to complex."""
        return y0

    def bind_static(self, static):
        """This process with its objective evaluated at ``eqx.combine(params, static)``: how `simulate` runs a
        model whose pytree mixes arrays and non-arrays (an Equinox module). The default rebinds the ``loss`` field
        (anything with a ``bind_static`` method, e.g. `Objective`, `MarginLoss`, `PerExample`)."""
        loss = getattr(self, "loss", None)
        if not hasattr(loss, "bind_static"):
            raise InputError(
                f"{type(self).__name__} cannot run on a parameter pytree with non-array leaves (an Equinox module): "
                "pass the arrays, e.g. params, static = eqx.partition(model, eqx.is_inexact_array), and a loss of "
                "params that calls eqx.combine(params, static)")
        return eqx.tree_at(lambda p: p.loss, self, loss.bind_static(static))


class AbstractDiscrete(AbstractProcess):
    """theta_{k+1} = step(state_k, k); iterate k sits at t_k = sum_{j<k} step_size(j) (see `TimeUnit`).

    The step may depend on k (schedules, minibatch order) and on auxiliary state (momentum, an optimizer
    state, a permutation), which ``init`` creates and ``params`` strips.
    """

    @abc.abstractmethod
    def step(self, state, k):
        """The state at iterate k + 1 from the state at iterate k (traced; k is an integer array)."""

    def init(self, theta0, k0=0):
        """The state at iterate k0 from the parameters theta0."""
        return theta0

    def params(self, state):
        """The parameters held in a state."""
        return state

    def step_size(self, k):
        """Time between iterates k and k + 1 (host-side; k an integer NumPy array). Physical-time processes
        return their learning rate; step-time processes 1."""
        if self.time_unit == TimeUnit.STEP:
            return np.ones(np.shape(k))
        lr = getattr(self, "lr", None)
        if lr is None:
            raise NotImplementedError(f"{type(self).__name__} must define lr or override step_size")
        return np.full(np.shape(k), float(lr))

    @property
    def constant_step(self):
        """True when every step has the same length (t_k = k h): saves are then a rounding of ts."""
        return True

    def counts(self, state):
        """Counters carried in the state (a `StepCost` of totals), or None when ``cost`` per step is exact."""
        return None


class AbstractFlow(AbstractProcess):
    """dtheta/dt = field(t, theta); ``cost`` is per field evaluation."""

    @abc.abstractmethod
    def field(self, t, theta):
        """dtheta/dt at (t, theta)."""

    def log_time_field(self, tau, theta):
        """dtheta/dtau = e^tau field(e^tau - 1, theta); override to fold e^tau into exponents."""
        raise InputError(f"{type(self).__name__} has no log-time field: run it with log_time=False")
