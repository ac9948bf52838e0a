"""Modified flows of gradient descent from backward error analysis (Hairer, Lubich, Wanner, GNI IX.1).

Explicit Euler y' = y + h f(y) (GD: f = -grad E) is, as a formal series, the exact time-h flow of

    y' = f_1 + h f_2 + h^2 f_3 + ...,   f_1 = f,
    f_j = - sum_{i=2..j} (1/i!) sum_{k_1+...+k_i = j, k_m >= 1} D_{k_1} ... D_{k_{i-1}} f_{k_i},

with the Lie derivative (D_k G)(y) = G'(y) f_k(y), computed here as a Jacobian-vector product (nested
jvps: Hessian-vector and higher derivative products, never a Hessian). f_2 = -f'f/2 (IGR),
f_3 = f''(f, f)/12 + f'f'f/3; on a quadratic f_{p+1} = -H^p g / (p + 1) exactly.
"""

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..models.losses import as_objective
from .arguments import integer_parameter
from .base import AbstractFlow, StepCost, positive_lr

MAX_ORDER = 5


def compositions(total, parts):
    """All tuples of ``parts`` positive integers summing to ``total``."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        bounds = (0,) + cuts + (total,)
        yield tuple(b - a for a, b in zip(bounds, bounds[1:]))


def _lie(G, F):
    """theta -> G'(theta) F(theta)."""
    return lambda theta: jax.jvp(G, (theta,), (F(theta),))[1]


def _scaled_sum(terms):
    """theta -> sum_c c * T(theta) over (c, T) pairs (pytrees)."""

    def total(theta):
        values = [jax.tree_util.tree_map(lambda leaf, c=c: c * leaf, T(theta)) for c, T in terms]
        return jax.tree_util.tree_map(lambda *leaves: sum(leaves), *values)

    return total


def bea_coefficients(field, order):
    """[f_1, ..., f_order] for explicit Euler on ``field`` (theta -> pytree like theta)."""
    order = integer_parameter(order, "modified-flow order", 1, MAX_ORDER)
    fields = [field]
    for j in range(2, order + 1):
        terms = []
        for i in range(2, j + 1):
            for ks in compositions(j, i):
                term = fields[ks[-1] - 1]
                for k in reversed(ks[:-1]):
                    term = _lie(term, fields[k - 1])
                terms.append((-1.0 / math.factorial(i), term))
        fields.append(_scaled_sum(terms))
    return fields


class ModifiedFlow(AbstractFlow):
    """BEA modified flow of GD with learning rate h truncated at ``order``:

        theta' = f_1 + h f_2 + ... + h^(order-1) f_order,   f_1 = -grad E.

    order 1 is gradient flow, order 2 implicit gradient regularization -g - (h/2) H g. Its solution
    at t = k h matches GD step k with global error O(h^order) (local O(h^(order+1))) while the
    series converges (h |lambda| < 1 on quadratics). Cost per evaluation: 1 gradient (order 1),
    1 gradient + 1 HVP (order 2), and combinatorially more nested jvps beyond (order <= 5).
    """

    loss: object
    lr: object
    order: int = eqx.field(static=True)  # the number of BEA terms: it shapes the traced program

    def __init__(self, loss, lr, order):
        self.loss = as_objective(loss)
        self.lr = positive_lr(lr)
        self.order = integer_parameter(order, "modified-flow order", 1, MAX_ORDER)

    @property
    def cost(self):
        """Per evaluation: 1 gradient (order 1), 1 gradient + 1 HVP (order 2); higher orders nest jvps whose count
        is not stated (None)."""
        return {1: StepCost(), 2: StepCost(1.0, 1.0)}.get(self.order)

    @functools.cached_property
    def _coefficients(self):
        return bea_coefficients(lambda theta: self.loss.descent_direction(theta), self.order)

    def field(self, t, theta):
        terms = [(self.lr ** (j - 1), f_j) for j, f_j in enumerate(self._coefficients, start=1)]
        return _scaled_sum(terms)(theta)

    def log_time_field(self, tau, theta):
        return jax.tree_util.tree_map(lambda v: jnp.exp(tau) * v, self.field(jnp.expm1(tau), theta))
