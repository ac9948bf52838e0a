"""Shared data for the unit tests of `dynamics` (float64 is enabled by importing dynamics)."""

import gc
import os

import jax
import numpy as np
import pytest

# The persistent compilation cache (dynamics.cache) stays off in the tests unless DYNAMICS_CACHE_DIR is set: in one
# long pytest process (hundreds of compiled programs) JAX's cache crashed the interpreter twice while serializing or
# reading an executable (compilation_cache.put_executable_and_time / get_executable_and_time, cohen2022_adaptive_eos),
# also from an empty cache directory. The command line keeps its cache (.cache/jax).
os.environ.setdefault("DYNAMICS_CACHE_DIR", "")
os.environ.setdefault("MPLBACKEND", "Agg")  # headless: figures are written, not shown

import dynamics  # noqa: E402,F401  (enables jax_enable_x64 before any test builds an array)



def _release_compiled_programs():
    """Drop JAX's in-memory compiled programs. One pytest process compiles thousands of programs; kept alive to the
    end they reached 7 GB of resident memory, and the XLA CPU compiler then crashed the interpreter (segmentation
    fault, reproducibly at the same compile late in the run, in a fresh clone as in CI)."""
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True, scope="module")
def release_after_module():
    """After each test module (no test relies on a compilation surviving from another module)."""
    yield
    _release_compiled_programs()


@pytest.fixture
def release_after_test():
    """After one heavy test (a theorem at its budget compiles its own programs)."""
    yield
    _release_compiled_programs()


#: c_n of the axis-aligned reference data z_n = c_n e_n (docs/implicit-bias.md section 2, case 1).
AXIS_C = np.array([1.0, 2.0])


@pytest.fixture
def axis_data():
    """X = diag(c), y = +1: z_n = c_n e_n with c = (1, 2)."""
    return np.diag(AXIS_C), np.ones(len(AXIS_C)), AXIS_C


def separable_data(seed, n, d, margin=0.0):
    """Gaussian X (n, d) labelled by a random w*: y = sign(X w*); z_n.w*/||w*|| >= margin after a shift."""
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=d)
    X = rng.normal(size=(n, d))
    y = np.where(X @ w_star >= 0, 1.0, -1.0)
    X = X + margin * y[:, None] * w_star / np.linalg.norm(w_star)
    return X, y, w_star


@pytest.fixture
def make_separable():
    """Factory separable_data(seed, n, d, margin) -> (X, y, w_star)."""
    return separable_data
