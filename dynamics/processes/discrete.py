"""Discrete methods compiled by `simulate` with `lax` loops; iterate k sits at t = k * lr."""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..errors import InputError
from ..losses import MarginLoss, as_objective
from .base import AbstractDiscrete, positive_lr

_tree_add = lambda a, b: jax.tree_util.tree_map(jnp.add, a, b)
_scaled = lambda c, tree: jax.tree_util.tree_map(lambda leaf: c * leaf, tree)


class GradientDescent(AbstractDiscrete):
    """theta_{k+1} = theta_k - lr grad L(theta_k). One gradient per step."""

    loss: object
    lr: object

    def __init__(self, loss, lr):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)

    def step(self, theta, k):
        return _tree_add(theta, _scaled(self.lr, self.loss.descent_direction(theta)))


class NormalizedGD(AbstractDiscrete):
    """Normalized GD (Nacson et al. 2019): eta_k = lr / (L(theta_k) sqrt(k + 1)).

    The step -eta_k grad L = -(lr/sqrt(k+1)) grad log L is formed as one log-space scale
    log(lr) - log(k+1)/2 - log L inside the per-example weights (softmax(-q) for the exp loss),
    never as 1/L times a vanishing gradient. ``lr`` is eta-bar; iterate k sits at t = k * lr.
    """

    loss: object
    lr: object

    def __init__(self, loss, lr):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)

    def step(self, theta, k):
        log_scale = jnp.log(self.lr) - 0.5 * jnp.log1p(k) - self.loss.log_value(theta)
        return _tree_add(theta, self.loss.descent_direction(theta, log_scale))


class HeavyBall(AbstractDiscrete):
    """Polyak momentum: theta_{k+1} = theta_k - lr grad L(theta_k) + momentum (theta_k - theta_{k-1}).

    Starts at rest (theta_{-1} = theta_0). State (theta, velocity); ``params`` returns theta.
    """

    loss: object
    lr: object
    momentum: float

    def __init__(self, loss, lr, momentum=0.9):
        if not 0.0 <= momentum < 1.0:
            raise InputError(f"momentum must lie in [0, 1), got {momentum}")
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)
        self.momentum = momentum

    def init(self, theta0, k0=0):
        return theta0, jax.tree_util.tree_map(jnp.zeros_like, theta0)

    def step(self, state, k):
        theta, velocity = state
        velocity = jax.tree_util.tree_map(
            lambda v, d: self.momentum * v + self.lr * d, velocity, self.loss.descent_direction(theta))
        return _tree_add(theta, velocity), velocity

    def params(self, state):
        return state[0]


class SGD(AbstractDiscrete):
    """Minibatch SGD on a `MarginLoss`: theta_{k+1} = theta_k - lr grad L_{B_k}(theta_k).

    L_{B_k} is the loss restricted to the batch with the loss's own reduction: a "sum" loss gives
    the batch-sum update of Nacson, Srebro, Soudry (2019), a "mean" loss the batch average.
    sampling="reshuffle": each epoch draws a fresh permutation and visits floor(N/B) disjoint
    batches (the N mod B left-over examples of that permutation are skipped that epoch).
    sampling="replacement": each batch is B indices drawn uniformly with replacement.
    Randomness comes only from ``key`` (folded with the epoch or step index), so a run is
    reproducible and replayable from any iterate.
    """

    loss: MarginLoss
    lr: object
    batch_size: int = eqx.field(static=True)
    key: jax.Array
    sampling: str = eqx.field(static=True)

    def __init__(self, loss, lr, batch_size, key, sampling="reshuffle"):
        if not isinstance(loss, MarginLoss):
            raise InputError("SGD needs a per-example loss (a MarginLoss, e.g. linear_classifier(...))")
        if sampling not in ("reshuffle", "replacement"):
            raise InputError(f"sampling must be 'reshuffle' or 'replacement', got {sampling!r}")
        n = loss.num_examples
        if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
            raise InputError(f"batch_size must be an integer in [1, N={n}], got {batch_size!r}")
        self.loss = loss
        self.lr = positive_lr(lr)
        self.batch_size = batch_size
        self.key = key
        self.sampling = sampling

    @property
    def batches_per_epoch(self):
        return self.loss.num_examples // self.batch_size

    def _permutation(self, epoch):
        return jax.random.permutation(jax.random.fold_in(self.key, epoch), self.loss.num_examples)

    def init(self, theta0, k0=0):
        if self.sampling == "replacement":
            return theta0
        return theta0, self._permutation(k0 // self.batches_per_epoch)  # reshuffling carries the epoch's order

    def params(self, state):
        return state if self.sampling == "replacement" else state[0]

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
        theta = _tree_add(theta, _scaled(self.lr, self.loss.subset(batch).descent_direction(theta)))
        return theta if self.sampling == "replacement" else (theta, order)
