"""Interactive latency: what a call from plain Python costs the first time (trace + compile + run) and after, and
the default Hessian eigensolver against dense eigh.

Table 1 (`spectrum_rows`), latency of `dynamics.sharpness` / `eigenpairs` on a tanh MLP 64 -> 16 -> 16 -> 1 (p =
1,329, MSE on N = 256 Gaussian samples, float64; default solver LOBPCG), each row a sequence of calls from Python:
call 0 is timed cold, calls 1..REPEATS warm. Columns: first call s, second call ms, median warm ms, first / second,
XLA compilations in the first call and in the warm calls, and loss traces during the warm calls (counted by the
loss itself: it runs only while being traced). Rows share one loss object, so only the first row compiles; the
Equinox row (eqx.nn.MLP of the same shape, its functions held static) compiles its own.

Table 2, the default solver (LOBPCG, residual <= 1e-8 rho) vs dense at p = 1,033 (benchmarks.sharpness's 16 -> 24
-> 24 -> 1 MLP, N = 512): HVPs, first call, median warm wall (LOBPCG: REPEATS calls; dense: 2), dense / this, and
the relative error against numpy eigvalsh of the jax.hessian matrix. "dense (eigh)" is ``method="dense"`` (vectors
and residuals too); "dense (eigvalsh)" is the cheapest dense form, jit(eigvalsh(jax.hessian)), the old default.

Table 3, the default's threshold `DENSE_LIMIT`: dense vs LOBPCG on tanh MLPs d -> h -> 1 (N = 256) at p = 17 to
289: first call s and median warm ms of ``sharpness(method=...)``.

Table 4 (`benchmarks.latency.first_call_rows`): the first `simulate` call of GD, GF and the principal flow on a
2-parameter loss in a fresh Python process, without and with a warm persistent compilation cache.

First calls are XLA compilations unless the persistent compilation cache (`dynamics.cache`, $DYNAMICS_CACHE_DIR)
already holds them; the header says whether it is on. To add a section, write a function returning `latency` rows
and print it in `report` with `LATENCY_HEADERS`.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import statistics  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import dynamics as dyn  # noqa: E402
from dynamics.linalg import DENSE_LIMIT  # noqa: E402
from dynamics.models.mlp import mlp_init, mlp_loss  # noqa: E402

from . import latency, sharpness  # noqa: E402
from .common import table, time_calls, timed_call  # noqa: E402

#: warm calls per latency row (and per LOBPCG timing).
REPEATS = 5
#: table 3: (d_in, width) of the tanh MLPs d -> h -> 1, p = 17, 37, 61, 121, 289.
THRESHOLD_SIZES = ((2, 4), (4, 6), (8, 6), (8, 12), (16, 16))
LATENCY_HEADERS = ["call", "first s", "second ms", "warm ms", "first / second", "compiles first", "compiles warm",
                   "traces warm"]


def counting(loss):
    """(loss, counter): the loss increments counter[0] each time it runs, i.e. each time it is traced."""
    counter = [0]

    def counted(params):
        counter[0] += 1
        return loss(params)

    return counted, counter


def latency(name, call, counter, repeats=REPEATS):
    """A row of LATENCY_HEADERS: call(0) cold, then call(1..repeats) warm; ``counter`` counts loss traces."""
    first_s, first_compiles, _, _ = timed_call(lambda: call(0))
    traces = counter[0]
    warm = [timed_call(lambda i=i: call(i)) for i in range(1, repeats + 1)]
    seconds = [w[0] for w in warm]
    return [name, f"{first_s:.2f}", f"{1e3 * seconds[0]:.3g}", f"{1e3 * statistics.median(seconds):.3g}",
            f"{first_s / seconds[0]:,.0f}", first_compiles, sum(w[1] for w in warm), counter[0] - traces]


def spectrum_rows():
    """Table 1: latency rows of sharpness / eigenpairs at p = 1,329 (plain pytree and eqx.nn.MLP)."""
    rng = np.random.default_rng(0)
    X, y = jnp.asarray(rng.normal(size=(256, 64))), jnp.asarray(rng.normal(size=256))
    loss, counter = counting(mlp_loss(X, y))
    params = mlp_init(jax.random.PRNGKey(0), (64, 16, 16, 1))
    moved = lambda i: jax.tree_util.tree_map(lambda a: (1 + 0.01 * i) * a, params)
    chain = {}

    def warm_started(i):  # each call starts from the previous call's eigenvector
        chain["result"] = dyn.eigenpairs(loss, moved(i), start=chain["result"].vectors if i else None)
        return chain["result"]

    model = eqx.nn.MLP(64, 1, 16, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    model = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)
    module_loss, module_counter = counting(lambda m: jnp.mean((jax.vmap(m)(X)[:, 0] - y) ** 2))
    movers = [moved(i) for i in range(REPEATS + 1)]
    return [
        latency("sharpness(loss, params), same params", lambda i: dyn.sharpness(loss, params), counter),
        latency("sharpness, new params and tol each call",
                lambda i: dyn.sharpness(loss, movers[i], tol=10.0 ** -(8 + i % 3)), counter),
        latency("eigenpairs, warm start from the previous call", warm_started, counter),
        latency("sharpness(loss, eqx.nn.MLP 64-16-16-1)", lambda i: dyn.sharpness(module_loss, model), module_counter),
    ]


def solver_rows():
    """Table 2: default (LOBPCG) vs dense at p = 1,033, errors against numpy eigvalsh of jax.hessian."""
    loss, params, p = sharpness.problem(24)
    flat, unravel = ravel_pytree(params)
    hessian = np.asarray(jax.jit(jax.hessian(lambda v: loss(unravel(v))))(flat))
    exact = np.linalg.eigvalsh(0.5 * (hessian + hessian.T))[-1]
    eigvalsh = jax.jit(lambda v: jnp.linalg.eigvalsh(jax.hessian(lambda u: loss(unravel(u)))(v))[-1])
    fns = {"default (LOBPCG)": lambda: dyn.eigenpairs(loss, params),
           "dense (eigh)": lambda: dyn.eigenpairs(loss, params, method="dense"),
           "dense (eigvalsh)": lambda: eigvalsh(flat)}
    timings, results = time_calls(fns, {"default (LOBPCG)": REPEATS, "dense (eigh)": 2, "dense (eigvalsh)": 2})
    dense_s = timings["dense (eigh)"].median_s
    rows = []
    for name, timing in timings.items():
        result = results[name]
        value = float(result.values[0]) if hasattr(result, "values") else float(result)
        rows.append([name, int(result.hvps) if hasattr(result, "hvps") else p, f"{timing.first_s:.2f}",
                     f"{1e3 * timing.median_s:.4g}", f"{dense_s / timing.median_s:.3g}", f"{value:.12f}",
                     f"{abs(value - exact) / abs(exact):.1e}",
                     f"{float(result.residuals[0]):.1e}" if hasattr(result, "residuals") else ""])
    return p, rows


def threshold_rows():
    """Table 3: dense vs LOBPCG sharpness on small MLPs around DENSE_LIMIT."""
    rng = np.random.default_rng(1)
    rows = []
    for d, h in THRESHOLD_SIZES:
        loss = mlp_loss(rng.normal(size=(256, d)), rng.normal(size=256))
        params = mlp_init(jax.random.PRNGKey(1), (d, h, 1))
        fns = {m: (lambda m=m: dyn.sharpness(loss, params, m)) for m in ("dense", "lobpcg")}
        timings, results = time_calls(fns, REPEATS)
        dense, lobpcg = timings["dense"], timings["lobpcg"]
        error = abs(float(results["lobpcg"]) - float(results["dense"])) / abs(float(results["dense"]))
        rows.append([ravel_pytree(params)[0].size, f"{dense.first_s:.2f}", f"{lobpcg.first_s:.2f}",
                     f"{1e3 * dense.median_s:.3g}", f"{1e3 * lobpcg.median_s:.3g}",
                     f"{dense.median_s / lobpcg.median_s:.2f}", f"{error:.0e}"])
    return rows


def report():
    cache = jax.config.jax_compilation_cache_dir
    print("\nInteractive latency of dynamics.sharpness / eigenpairs from Python (tanh MLP, p = 1,329, N = 256; "
          f"call 0 cold, calls 1..{REPEATS} warm; persistent compilation cache: {cache or 'off'})")
    print(table(LATENCY_HEADERS, spectrum_rows()))
    p, rows = solver_rows()
    print(f"\nDefault solver vs dense at p = {p:,} (tanh MLP 16-24-24-1, N = 512): wall = median of warm calls; "
          "error relative to numpy eigvalsh of jax.hessian")
    print(table(["method", "HVPs", "first s", "warm ms", "dense eigh / this", "lambda_max", "rel err", "residual"],
                rows))
    print(f"\nDense vs LOBPCG around DENSE_LIMIT = {DENSE_LIMIT} (tanh MLPs d-h-1, N = 256): sharpness(method=...)")
    print(table(["p", "dense first s", "LOBPCG first s", "dense warm ms", "LOBPCG warm ms", "dense / LOBPCG warm",
                 "rel diff"], threshold_rows()))
    print("\nFirst simulate call in a fresh process (2-parameter loss): without / with a warm persistent cache")
    print(table(["process", "no cache s", "warm cache s", "no cache / warm"], latency.first_call_rows()))


if __name__ == "__main__":
    report()
