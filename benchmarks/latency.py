"""First-call latency with and without the persistent compilation cache (`dynamics.cache`).

Each measurement is a fresh Python process (subprocess): import dynamics, build the process on a 2-parameter loss,
then time its FIRST `dynamics.simulate` call (trace + compile + run, blocked on the result; the import is timed
apart). Three runs per process:

  without cache   DYNAMICS_CACHE_DIR empty: everything is compiled
  (filling)       DYNAMICS_CACHE_DIR = a fresh temporary directory: compiled and written to disk (not reported)
  warm cache      the same directory again: the compiled programs are read back (tracing still happens)

Processes: GD (100 steps), GF (Tsit5 to t = 10, 101 saves) and the real principal flow (dense, t = 10) on
L(w) = (w_0^2 + 4 w_1^2)/2 + w_0^2 w_1^2 / 10. ``repeats`` > 1 takes the best (least) of that many processes per
setting. ``first_call_rows()`` returns (name, seconds without cache, seconds with a warm cache, ratio) rows;
``main()`` prints them (``python -m benchmarks.latency``) with the number of programs the warm run still compiled.

What the cache cannot hold: JAX does not persist a program with host callbacks, and every `eqx.error_if` is one
(Equinox raises runtime errors from a Python callback). diffrax checks ``SaveAt(ts=...)`` with `eqx.error_if` when
the save times are traced, as they are in ``kernel.run_flow``, so the flows' solve is compiled again in every
process, and so is anything with a runtime check of its own (`PrincipalFlow`'s singular/holomorphy checks): for
them the warm cache saves only the small helper programs. Discrete methods (GD) are cached whole. Measured with
EQX_ON_ERROR=off (no callbacks, not a setting to use: it drops the checks), GF's and the principal flow's warm first
call drops by a further ~2.5x, to about the tracing time.
"""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES = ("GD", "GF", "PrincipalFlow")

#: what each fresh process runs: argv[1] = process name; prints one JSON line.
CHILD = r"""
import json, sys, time
start = time.perf_counter()
import jax, jax.numpy as jnp, numpy as np
import dynamics as dyn
imported = time.perf_counter() - start
events = []
jax.monitoring.register_event_listener(lambda event, **kw: events.append(event.rsplit("/", 1)[-1]))

def loss(w):
    return 0.5 * (w[0] ** 2 + 4.0 * w[1] ** 2) + 0.1 * w[0] ** 2 * w[1] ** 2

w0 = jnp.array([1.0, 0.5])
build = {"GD": lambda: (dyn.GradientDescent(loss, 0.1), 0.1 * np.arange(101)),
         "GF": lambda: (dyn.GradientFlow(loss), np.linspace(0.0, 10.0, 101)),
         "PrincipalFlow": lambda: (dyn.PrincipalFlow(loss, 0.1, variant="real"), np.linspace(0.0, 10.0, 101))}
process, ts = build[sys.argv[1]]()
start = time.perf_counter()
jax.block_until_ready(dyn.simulate(process, w0, ts).ys)
print(json.dumps({"first_call_s": time.perf_counter() - start, "import_s": imported,
                  "cache_hits": events.count("cache_hits"),
                  "not_cached": events.count("compile_requests_use_cache") - events.count("cache_hits"),
                  "cache_dir": jax.config.jax_compilation_cache_dir}))
"""


def _child(name, cache_dir):
    """One fresh process: its JSON record. cache_dir "" turns the cache off."""
    env = dict(os.environ, DYNAMICS_CACHE_DIR=cache_dir, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS",
                                                                                               "1"))
    out = subprocess.run([sys.executable, "-c", CHILD, name], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    if out.returncode:
        raise RuntimeError(f"latency child {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(processes, repeats):
    """[(name, seconds without cache, seconds with a warm cache, ratio, programs the warm run still compiled)]."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="dynamics-latency-") as cache_dir:
        for name in processes:
            cold = min(_child(name, "")["first_call_s"] for _ in range(repeats))
            _child(name, cache_dir)  # fills the cache
            warm_runs = [_child(name, cache_dir) for _ in range(repeats)]
            if not all(run["cache_hits"] > 0 for run in warm_runs):
                raise RuntimeError(f"{name}: the warm run read nothing from the persistent cache at {cache_dir}")
            warm = min(run["first_call_s"] for run in warm_runs)
            rows.append((name, cold, warm, cold / warm, max(run["not_cached"] for run in warm_runs)))
    return rows


def first_call_rows(processes=PROCESSES, repeats=1):
    """[(name, seconds without cache, seconds with a warm cache, ratio without / with)] for each process: the first
    `simulate` call of a fresh Python process (the best of ``repeats`` processes per setting). Raises if a warm run
    read nothing from the cache. About 10 fresh processes (30-90 s on 2 shared cores)."""
    return [row[:4] for row in _measure(processes, repeats)]


def main():
    print("first simulate call in a fresh process (2-parameter loss), seconds; 'compiled' = programs the warm run")
    print("still compiled (host callbacks: not persisted by JAX, see the module docstring)")
    print(f"{'process':<15} {'no cache':>9} {'warm cache':>11} {'ratio':>6} {'compiled':>9}")
    for name, cold, warm, ratio, compiled in _measure(PROCESSES, 1):
        print(f"{name:<15} {cold:>9.2f} {warm:>11.2f} {ratio:>6.1f} {compiled:>9d}")


if __name__ == "__main__":
    main()
