"""An optional persistent compilation cache: compiled XLA programs stored on disk and reused by later processes.

`import dynamics` calls `enable_compilation_cache` when the environment variable ``DYNAMICS_CACHE_DIR`` is set; the
CLI (``python -m theorems``) and the test suite default to ``.cache/jax`` under the repository root. Tracing still
happens in every process (it is Python); what the cache saves is XLA's compile time, most of a first call's
latency for the small programs of this library (benchmarks/latency.py measures it).
"""

import os

import jax

#: the environment variable naming the cache directory read by `import dynamics`.
ENV_VAR = "DYNAMICS_CACHE_DIR"


def enable_compilation_cache(path):
    """Store compiled programs under ``path`` (created if missing) and reuse them in later processes.

    Sets ``jax_compilation_cache_dir`` and caches every program, however small or quick to compile
    (``jax_persistent_cache_min_compile_time_secs = 0``, ``jax_persistent_cache_min_entry_size_bytes = -1``: JAX's
    defaults skip programs compiled in under a second, which are most of this library's). Call it before the first
    compilation; a later call with another path resets JAX's cache so that the new path takes effect. Returns the
    absolute path. Entries are keyed by the program, the JAX/XLA versions and the device, so a stale entry is never
    used; delete the directory to reclaim the space."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    os.makedirs(path, exist_ok=True)
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if previous and previous != path:
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    return path


def enable_from_environment(default=None):
    """`enable_compilation_cache` at ``$DYNAMICS_CACHE_DIR``, else at ``default`` (None: leave the cache off).
    Returns the path used, or None."""
    path = os.environ.get(ENV_VAR) or default
    return enable_compilation_cache(path) if path else None
