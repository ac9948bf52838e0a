"""Seeded datasets shared by theorem modules: one registry, each generator named, documented and reproducible.

One file per area registers its generators: `separable` (classification data for the implicit-bias theorems),
`flows` (problems of the continuous-model theorems), `networks` (linear and homogeneous networks), `eos`
(edge-of-stability problems), `sam` (sharpness-aware minimization).

``dataset(name, seed=0, **options)`` returns what the generator returns (arrays as NumPy float64). Generators
register with `@register("name")`; `names()` lists them. A generator draws only from ``np.random.default_rng(seed)``
(or a JAX key made from ``seed``), so the same (name, seed, options) gives the same data everywhere.
"""

_REGISTRY = {}


def register(name):
    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def names():
    return sorted(_REGISTRY)


def dataset(name, seed=0, **options):
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known: {names()}")
    return _REGISTRY[name](seed=seed, **options)


from . import distillation  # noqa: E402,F401  (registers the self-distillation data)
from . import eos, flows, geometry, networks, sam, separable  # noqa: E402,F401  (register their generators)
from . import stability  # noqa: E402,F401  (minima stability: issue 14)
from . import multiclass  # noqa: E402,F401  (registers the K-class data)
from . import outliers  # noqa: E402,F401  (Hessian outliers: issue 15)
