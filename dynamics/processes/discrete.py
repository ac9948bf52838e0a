"""Discrete methods compiled by `simulate` with `lax` loops.

Learning rates: a positive scalar lr puts iterate k at t = k lr. `GradientDescent`, `HeavyBall` and `Nesterov`
also take a schedule k -> lr_k (any optax schedule, e.g. ``optax.exponential_decay(0.1, 1000, 0.5)``, or a
JAX-traceable function of the integer step k): iterate k then sits at t_k = sum_{j<k} lr_j, `simulate` saves the
first iterate at or after each requested time and ``traj.ts`` holds the t_k of the iterates saved. Reuse one
schedule object across runs to reuse the compiled code.
"""

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError, StepSizeError, error_if
from ..models.losses import as_objective
from .arguments import integer_parameter, prng_key
from .base import AbstractDiscrete, StepCost, positive_lr, real_parameter

class MomentumState(NamedTuple):
    """State of `HeavyBall` / `Nesterov`: the parameters and the velocity v_k."""

    params: object
    velocity: object


class ShuffleState(NamedTuple):
    """State of reshuffling `SGD`: the parameters and the current epoch's example order."""

    params: object
    order: jax.Array


_all_finite = lambda tree: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))
_tree_add = lambda a, b: jax.tree_util.tree_map(jnp.add, a, b)
_plus_momentum = lambda d, b, m: jax.tree_util.tree_map(lambda x, y: x + b * y, d, m)  # d + b m


def _scaled(c, tree):
    """c * tree with c in each leaf's dtype (a float32 state stays float32 under a float64 schedule)."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(c, leaf.dtype) * leaf, tree)


def learning_rate(lr):
    """A positive real scalar (as a float64 array), or a schedule k -> lr_k checked (by tracing it once at an
    integer k) to be JAX-traceable and to return a real scalar. Its values are checked where they are used:
    `simulate` names the first step whose lr_k is not finite and > 0."""
    if not callable(lr):
        try:
            return positive_lr(lr)
        except StepSizeError as error:
            raise StepSizeError(f"{error} (or a schedule k -> lr_k such as optax.exponential_decay(0.1, 1000, "
                                "0.5))") from None
    try:
        out = jax.eval_shape(lr, jax.ShapeDtypeStruct((), jnp.int64))
    except Exception as error:
        raise StepSizeError(
            f"the learning-rate schedule {lr!r} failed on a traced integer step k ({type(error).__name__}: "
            f"{error}); a schedule is a JAX-traceable function k -> lr_k (jnp.where or jax.lax.cond instead of "
            "Python if), e.g. optax.exponential_decay(0.1, 1000, 0.5) (called, not the factory itself)") from error
    if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()
            and (jnp.issubdtype(out.dtype, jnp.floating) or jnp.issubdtype(out.dtype, jnp.integer))):
        raise StepSizeError(f"the learning-rate schedule {lr!r} must return a real scalar lr_k, got {out}")
    return lr


def schedule_values(schedule, k):
    """lr_k at the integer NumPy array k (host-side), as float64: the schedule vectorized by jax.vmap, i.e. the
    same traced function the compiled step evaluates (also for jax.lax.cond on k; a constant is broadcast)."""
    return np.asarray(jax.vmap(schedule)(jnp.asarray(k)), dtype=np.float64)


class _Descent(AbstractDiscrete):
    """Shared by the methods whose step is theta_{k+1} = theta_k + lr_k direction_k (``lr`` a scalar or a
    schedule, see the module docstring)."""

    @property
    def constant_step(self):
        return not callable(self.lr)

    def step_size(self, k):
        return super().step_size(k) if self.constant_step else schedule_values(self.lr, k)

    def descend(self, theta, direction, k):
        """theta + lr_k direction."""
        return _tree_add(theta, _scaled(self.lr if self.constant_step else self.lr(k), direction))


class GradientDescent(_Descent):
    """theta_{k+1} = theta_k - lr_k grad L(theta_k), lr_k = lr or a schedule's value at step k (the update of
    ``optax.sgd(lr)``). Iterate k sits at t_k = sum_{j<k} lr_j (k lr for a constant rate). One gradient per step."""

    loss: object
    lr: object

    def __init__(self, loss, lr):
        self.loss = as_objective(loss)
        self.lr = learning_rate(lr)

    def step(self, theta, k):
        return self.descend(theta, self.loss.descent_direction(theta), k)


class NormalizedGD(AbstractDiscrete):
    """Normalized GD (Nacson et al. 2019): eta_k = lr / (L(theta_k) sqrt(k + 1)).

    The step -eta_k grad L = -(lr/sqrt(k+1)) grad log L is formed as one log-space scale
    log(lr) - log(k+1)/2 - log L inside the per-example weights (softmax(-q) for the exp loss),
    never as 1/L times a vanishing gradient. ``lr`` is eta-bar; iterate k sits at t = k * lr.

    The loss must be positive. At L(theta_k) = 0 (a global minimum of a nonnegative loss) the step is defined as 0:
    the iterate stays put. L(theta_k) = +inf (overflow) makes iterate k + 1 non-finite, so `simulate` raises
    `DivergenceError` naming that step (the step lr / L would be 0 and the run would freeze silently). L < 0 or NaN
    at a finite iterate raises an error naming the positivity requirement.
    """

    loss: object
    lr: object

    def __init__(self, loss, lr):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)

    def step(self, theta, k):
        log_loss = self.loss.log_value(theta)
        log_loss = error_if(log_loss, jnp.isnan(log_loss) & _all_finite(theta),
                            "NormalizedGD needs a positive loss: L(theta_k) < 0 or NaN at a finite iterate (its step "
                            "lr grad log L / sqrt(k + 1) takes log L); shift or square the loss so that L > 0")
        log_scale = jnp.log(self.lr) - 0.5 * jnp.log1p(k) - log_loss
        # L = 0: scale 0 (stay put, 0 * grad 0); L = inf: NaN (a non-finite iterate that simulate names)
        log_scale = jnp.where(log_loss == -jnp.inf, -jnp.inf, jnp.where(log_loss == jnp.inf, jnp.nan, log_scale))
        return _tree_add(theta, self.loss.descent_direction(theta, log_scale))


class _Momentum(_Descent):
    """v_{k+1} = b v_k - grad L(theta_k) (v_0 = 0), then a `_Descent` step along v_{k+1} (heavy ball) or
    b v_{k+1} - grad L(theta_k) (Nesterov). State `MomentumState`. One gradient per step."""

    nesterov: ClassVar[bool]
    loss: object
    lr: object
    momentum: object

    def __init__(self, loss, lr, momentum=0.9):
        self.loss = as_objective(loss)
        self.lr = learning_rate(lr)
        self.momentum = real_parameter(momentum, "momentum", 0.0, 1.0)

    def init(self, theta0, k0=0):
        return MomentumState(theta0, jax.tree_util.tree_map(jnp.zeros_like, theta0))

    def step(self, state, k):
        theta, velocity = state
        descent = self.loss.descent_direction(theta)
        velocity = _plus_momentum(descent, self.momentum, velocity)
        direction = _plus_momentum(descent, self.momentum, velocity) if self.nesterov else velocity
        return MomentumState(self.descend(theta, direction, k), velocity)

    def params(self, state):
        return state.params


class HeavyBall(_Momentum):
    """Polyak momentum in optax's convention (``optax.sgd(lr, momentum=b)``, also PyTorch's):

        v_{k+1} = b v_k - grad L(theta_k),   theta_{k+1} = theta_k + lr_k v_{k+1},   v_0 = 0.

    For a constant lr this is theta_{k+1} = theta_k - lr grad L(theta_k) + b (theta_k - theta_{k-1}) started at
    rest (theta_{-1} = theta_0). ``lr`` a scalar or a schedule; iterate k sits at t_k = sum_{j<k} lr_j (k lr).
    State (theta, v); one gradient per step.
    """

    nesterov = False


class Nesterov(_Momentum):
    """Nesterov momentum in optax's convention (``optax.sgd(lr, momentum=b, nesterov=True)``, also PyTorch's):

        v_{k+1} = b v_k - grad L(theta_k),   theta_{k+1} = theta_k + lr_k (b v_{k+1} - grad L(theta_k)),   v_0 = 0.

    With a constant lr this is Sutskever et al.'s (2013) accelerated gradient u_{k+1} = b u_k - lr grad L(x_k +
    b u_k), x_{k+1} = x_k + u_{k+1}, written in its look-ahead point theta_k = x_k + b u_k (u = lr v), so the
    gradient is taken at the iterate itself. ``lr`` a scalar or a schedule; iterate k sits at
    t_k = sum_{j<k} lr_j (k lr). State (theta, v); one gradient per step.
    """

    nesterov = True


class SGD(_Descent):
    """Minibatch SGD on a per-example objective: theta_{k+1} = theta_k - lr grad L_{B_k}(theta_k).

    ``loss``: anything with ``num_examples`` and ``subset(index)`` (a `MarginLoss`, or any model's
    ``dynamics.per_example(fn, data)``). L_{B_k} is the loss restricted to the batch with the loss's own reduction:
    a "sum" loss gives the batch-sum update of Nacson, Srebro, Soudry (2019), a "mean" loss the batch average.
    sampling="reshuffle": each epoch draws a fresh permutation and visits floor(N/B) disjoint
    batches (the N mod B left-over examples of that permutation are skipped that epoch); B = N is GD up to the
    order of summation. sampling="replacement": each batch is B indices drawn uniformly with replacement.
    Randomness comes only from ``key`` (folded with the epoch or step index), so a run is
    reproducible and replayable from any iterate. A constant ``lr``; iterate k sits at t = k lr. B / N gradients
    per step. ``key``: one PRNG key (jax.random.PRNGKey(0) or jax.random.key(0); `InputError` otherwise).
    """

    loss: object
    lr: object
    batch_size: int = eqx.field(static=True)
    key: jax.Array
    sampling: str = eqx.field(static=True)

    def __init__(self, loss, lr, batch_size, key, sampling="reshuffle"):
        if not (hasattr(loss, "num_examples") and hasattr(loss, "subset")):
            raise InputError(
                f"SGD needs a per-example loss (with num_examples and subset), got {type(loss).__name__}: wrap "
                "the model with dynamics.per_example(fn, data), fn(params, example) -> the loss of one example, or "
                "use a MarginLoss such as linear_classifier(...)")
        if sampling not in ("reshuffle", "replacement"):
            raise InputError(f"sampling must be 'reshuffle' or 'replacement', got {sampling!r}")
        self.loss = loss
        self.lr = positive_lr(lr)
        self.batch_size = integer_parameter(batch_size, "batch_size", 1, loss.num_examples, "N")
        self.key = prng_key(key)
        self.sampling = sampling

    @property
    def batches_per_epoch(self):
        return self.loss.num_examples // self.batch_size

    @property
    def cost(self):
        """A minibatch gradient: B / N of a full gradient per step."""
        return StepCost(self.batch_size / self.loss.num_examples)

    def _permutation(self, epoch):
        return jax.random.permutation(jax.random.fold_in(self.key, epoch), self.loss.num_examples)

    def init(self, theta0, k0=0):
        if self.sampling == "replacement":
            return theta0
        return ShuffleState(theta0, self._permutation(k0 // self.batches_per_epoch))  # the epoch's order

    def params(self, state):
        return state if self.sampling == "replacement" else state.params

    def step(self, state, k):
        n, b = self.loss.num_examples, self.batch_size
        if self.sampling == "replacement":
            theta, batch = state, jax.random.randint(jax.random.fold_in(self.key, k), (b,), 0, n)
        else:
            theta, order = state
            epoch, position = jnp.divmod(k, self.batches_per_epoch)
            # the predicate depends on k only, so under vmap over seeds it stays a branch, not a select
            order = jax.lax.cond(position == 0, lambda: self._permutation(epoch), lambda: order)
            batch = jax.lax.dynamic_slice(order, (position * b,), (b,))
        theta = self.descend(theta, self.loss.subset(batch).descent_direction(theta), k)
        return theta if self.sampling == "replacement" else ShuffleState(theta, order)
