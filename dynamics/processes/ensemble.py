"""Seed ensembles: copies of a keyed discrete process stepped together by jax.vmap in one compiled loop."""

import equinox as eqx
import jax

from ..errors import InputError
from .arguments import prng_keys
from .base import AbstractDiscrete, StepCost


class SeedEnsemble(AbstractDiscrete):
    """Copies of a keyed process (e.g. `SGD`) that differ only in ``key``; the state and the saved values
    carry a leading seed axis (``theta0`` must have it too). Iterate k of every copy sits at t = k lr.

    ``process``: a discrete process with a ``key`` field; ``keys``: S PRNG keys (jax.random.split(key, S));
    every leaf of ``theta0`` has shape (S, ...), e.g. jnp.broadcast_to(w0, (S,) + w0.shape) for one start.
    `InputError` names a keyless process, malformed keys or a missing/mismatched seed axis."""

    process: AbstractDiscrete
    keys: jax.Array

    def __init__(self, process, keys):
        if not isinstance(process, AbstractDiscrete) or not hasattr(process, "key"):
            raise InputError(f"SeedEnsemble runs copies of a discrete process with a PRNG key (e.g. dynamics.SGD), got "
                             f"{type(process).__name__}, which has no key: run it once, or vmap over its inputs")
        prng_keys(keys)
        self.process, self.keys = process, keys

    @property
    def seeds(self):
        """S, the number of copies."""
        return prng_keys(self.keys)

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
        shapes = [leaf.shape for leaf in jax.tree_util.tree_leaves(theta0)]
        if any(len(shape) == 0 or shape[0] != self.seeds for shape in shapes):
            raise InputError(f"SeedEnsemble of {self.seeds} seeds needs a leading seed axis of size {self.seeds} on "
                             f"every leaf of theta0, got leaf shapes {shapes}; for one start w0 pass "
                             f"jnp.broadcast_to(w0, ({self.seeds},) + w0.shape)")
        return jax.vmap(lambda key, th: self._copy(key).init(th, k0))(self.keys, theta0)

    def params(self, state):
        return jax.vmap(lambda key, s: self._copy(key).params(s))(self.keys, state)

    def step(self, state, k):
        return jax.vmap(lambda key, s: self._copy(key).step(s, k))(self.keys, state)
