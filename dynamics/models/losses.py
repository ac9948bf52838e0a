"""Margin losses l(u) and the objectives built from them, computed in log space where they underflow.

A *tail* is a scalar loss l(u) of a margin u = y f(x). A `MarginLoss` sums (or averages) a tail over
the margins q_n(theta) of a model:

    L(theta) = sum_n l(q_n(theta))          (reduction="sum", the papers' convention)
    L(theta) = (1/N) sum_n l(q_n(theta))     (reduction="mean": GF time is rescaled, t_mean = N t_sum)

Every objective has ``bind_static(static)``: the same objective evaluated at eqx.combine(params, static),
so a process can run on the inexact-array part ``params`` of a model that mixes arrays and non-arrays (an
Equinox module split by eqx.partition(model, eqx.is_inexact_array); params has None at the other leaves).

A margin loss's descent direction -e^s grad L = sum_n exp(s + log(-l'(q_n))) grad q_n is formed with the
scale s inside the exponent, so log-time flows (s = tau) and normalized GD (s = -log L) never
multiply an overflowing factor by an underflowing gradient.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from ..derivatives import scalar_loss
from ..errors import InputError

REDUCTIONS = ("sum", "mean")


def check_reduction(reduction):
    """``reduction`` if it is one of REDUCTIONS, else `InputError`."""
    if reduction not in REDUCTIONS:
        raise InputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


class AbstractTail(eqx.Module):
    """A margin loss l(u). Subclasses give l, log l and log(-l') stably.

    ``smoothness``: beta with |l''| <= beta everywhere (None where l is not globally smooth).
    ``exponential_tail``: -l'(u) ~ e^{-u} as u -> inf (Soudry et al.'s tight exponential tail).
    ``positive_slope``: -l'(u) > 0 for all u, so log(-l') exists and log-space weights apply.
    """

    smoothness = None
    exponential_tail = False
    positive_slope = True

    def value(self, u):
        return jnp.exp(self.log_value(u))

    def log_value(self, u):
        raise NotImplementedError

    def neg_derivative(self, u):
        """-l'(u)."""
        return jnp.exp(self.log_neg_derivative(u))

    def log_neg_derivative(self, u):
        raise NotImplementedError


class Exponential(AbstractTail):
    """l(u) = exp(-u); not globally smooth (l'' = l)."""

    exponential_tail = True

    def value(self, u):
        return jnp.exp(-u)

    def log_value(self, u):
        return -u

    def log_neg_derivative(self, u):
        return -u

    def neg_derivative(self, u):
        return jnp.exp(-u)


def _log_softplus(x):
    """log(softplus(x)) = log log(1 + e^x), accurate for x -> -inf (where it is x - e^x/2 + ...)."""
    small = x < -20.0
    x_safe = jnp.where(small, 0.0, x)
    return jnp.where(small, x - 0.5 * jnp.exp(x), jnp.log(jax.nn.softplus(x_safe)))


class Logistic(AbstractTail):
    """l(u) = log(1 + e^{-u}) = softplus(-u); beta-smooth with beta = 1/4."""

    smoothness = 0.25
    exponential_tail = True

    def value(self, u):
        return jax.nn.softplus(-u)

    def log_value(self, u):
        return _log_softplus(-u)

    def log_neg_derivative(self, u):
        return -jax.nn.softplus(u)

    def neg_derivative(self, u):
        return jax.nn.sigmoid(-u)


class Squared(AbstractTail):
    """l(u) = (1 - u)^2 / 2: the squared loss (y f - 1)^2/2 = (f - y)^2/2 for y in {-1, +1}."""

    smoothness = 1.0
    positive_slope = False

    def value(self, u):
        return 0.5 * (1.0 - u) ** 2

    def log_value(self, u):
        return 2.0 * jnp.log(jnp.abs(1.0 - u)) - jnp.log(2.0)

    def neg_derivative(self, u):
        return 1.0 - u


class PolyExponential(AbstractTail):
    """Tail ~ exp(-u^nu), defined through its derivative (Nacson et al. 2019):

        -l'(u) = 1 / (1 + exp(phi(u))),   phi(u) = u (1 + u^2)^((nu - 1)/2).

    -l' is smooth, tends to 1 as u -> -inf and to about exp(-u^nu) as u -> inf; nu = 1 is the
    logistic loss. Gradient methods need only -l', which is all this tail provides: the value
    l(u) = int_u^inf -l'(s) ds has no closed form, and asking for it raises NotImplementedError.
    """

    nu: float = eqx.field(static=True)

    def __init__(self, nu):
        if not nu > 0:
            raise InputError(f"the poly-exponential tail needs nu > 0, got nu = {nu}")
        self.nu = float(nu)

    @property
    def exponential_tail(self):
        return self.nu == 1.0

    def phi(self, u):
        return u * (1.0 + u**2) ** ((self.nu - 1.0) / 2.0)

    def log_value(self, u):
        raise NotImplementedError(
            "PolyExponential is defined through -l'(u) only; its value has no closed form. "
            "Gradient methods and flows use log_neg_derivative; measure directions, not loss values.")

    def log_neg_derivative(self, u):
        return -jax.nn.softplus(self.phi(u))


class WithStatic(eqx.Module):
    """fn(eqx.combine(params, static), *args): ``fn`` with the non-array part ``static`` of its first argument
    fixed. A Module (not a closure), so equal bindings compare equal and jit caches hit."""

    fn: callable
    static: object

    def __call__(self, params, *args):
        return self.fn(eqx.combine(params, self.static), *args)


def negative_gradient(fn, theta, log_scale=None):
    """-exp(log_scale) grad fn(theta) (-grad fn for log_scale=None); theta may hold None leaves."""
    grad = jax.grad(scalar_loss(fn))(theta)
    scale = 1.0 if log_scale is None else jnp.exp(log_scale)
    return jax.tree_util.tree_map(lambda g: -scale * g, grad)


class MarginLoss(eqx.Module):
    """L(theta) = reduce_n l(q_n(theta)) with margins q = margin_fn(theta, data).

    ``data``: pytree of arrays with a leading example axis N (for a linear model, Z = y x).
    ``margin_fn(theta, data) -> (N,)``. ``reduction``: "sum" or "mean" (over the examples present,
    so a minibatch of a "mean" loss averages over the batch).
    """

    margin_fn: callable  # a function or a network Module (arrays inside are traced, not hashed)
    data: object
    tail: AbstractTail
    reduction: str = eqx.field(static=True, default="sum")

    def __check_init__(self):
        check_reduction(self.reduction)

    @property
    def num_examples(self):
        return jax.tree_util.tree_leaves(self.data)[0].shape[0]

    def margins(self, theta):
        return self.margin_fn(theta, self.data)

    def _log_count(self):
        return jnp.log(self.num_examples) if self.reduction == "mean" else 0.0

    def __call__(self, theta):
        per_example = self.tail.value(self.margins(theta))
        return jnp.mean(per_example) if self.reduction == "mean" else jnp.sum(per_example)

    def log_value(self, theta):
        """log L(theta) = logsumexp_n log l(q_n) (- log N), finite long after L underflows."""
        return logsumexp(self.tail.log_value(self.margins(theta))) - self._log_count()

    def descent_direction(self, theta, log_scale=None):
        """-exp(log_scale) grad L(theta), with log_scale folded into each example's weight
        exp(log_scale + log(-l'(q_n))); log_scale=None gives -grad L by the plain weights -l'(q_n)."""
        q, pullback = jax.vjp(lambda th: self.margin_fn(th, self.data), theta)
        if log_scale is None:
            weights = self.tail.neg_derivative(q) / (self.num_examples if self.reduction == "mean" else 1)
        elif self.tail.positive_slope:
            weights = jnp.exp(log_scale + self.tail.log_neg_derivative(q) - self._log_count())
        else:
            weights = jnp.exp(log_scale - self._log_count()) * self.tail.neg_derivative(q)
        (direction,) = pullback(weights.astype(q.dtype))
        return direction

    def dual_weights(self, theta):
        """p_n = -l'(q_n) / sum_m -l'(q_m): the run's own dual weights (softmax(-q) for exp)."""
        return jax.nn.softmax(self.tail.log_neg_derivative(self.margins(theta)))

    def subset(self, index):
        """The same loss on the examples ``index`` (reduction applied over the subset)."""
        data = jax.tree_util.tree_map(lambda leaf: leaf[index], self.data)
        return MarginLoss(self.margin_fn, data, self.tail, self.reduction)

    def bind_static(self, static):
        """The same loss with margins margin_fn(eqx.combine(params, static), data)."""
        return MarginLoss(WithStatic(self.margin_fn, static), self.data, self.tail, self.reduction)


class Objective(eqx.Module):
    """Adapter giving any scalar JAX function the interface processes use."""

    fn: callable  # a function or a Module holding data (traced, not hashed)

    def __call__(self, theta):
        return self.fn(theta)

    def log_value(self, theta):
        return jnp.log(self.fn(theta))

    def descent_direction(self, theta, log_scale=None):
        return negative_gradient(self.fn, theta, log_scale)

    def bind_static(self, static):
        """theta -> fn(eqx.combine(theta, static))."""
        return Objective(WithStatic(self.fn, static))


def as_objective(loss):
    """Wrap a plain callable; pass `MarginLoss`/`Objective` (anything with descent_direction) through."""
    if hasattr(loss, "descent_direction") and hasattr(loss, "log_value"):
        return loss
    if not callable(loss):
        raise InputError(f"loss must be a callable of the parameters, got {type(loss).__name__}")
    return Objective(loss)
