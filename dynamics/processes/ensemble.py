"""Seed ensembles: copies of a keyed discrete process stepped together by jax.vmap in one compiled loop."""

import equinox as eqx
import jax

from .base import AbstractDiscrete, StepCost


class SeedEnsemble(AbstractDiscrete):
    """Copies of a keyed process (e.g. `SGD`) that differ only in ``key``; the state and the saved values
    carry a leading seed axis (``theta0`` must have it too). Iterate k of every copy sits at t = k lr."""

    process: AbstractDiscrete
    keys: jax.Array

    def __init__(self, process, keys):
        self.process, self.keys = process, keys

    @property
    def lr(self):
        return self.process.lr

    @property
    def time_unit(self):
        return self.process.time_unit

    @property
    def cost(self):
        """The copies' cost added up: seeds x the process's cost per step."""
        return StepCost(*(len(self.keys) * c for c in self.process.cost))

    def step_size(self, k):
        return self.process.step_size(k)

    def _copy(self, key):
        return eqx.tree_at(lambda p: p.key, self.process, key)

    def init(self, theta0, k0=0):
        return jax.vmap(lambda key, th: self._copy(key).init(th, k0))(self.keys, theta0)

    def params(self, state):
        return jax.vmap(lambda key, s: self._copy(key).params(s))(self.keys, state)

    def step(self, state, k):
        return jax.vmap(lambda key, s: self._copy(key).step(s, k))(self.keys, state)
