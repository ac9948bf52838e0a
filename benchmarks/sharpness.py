"""Top Hessian eigenvalue S = lambda_max(H) of a tanh MLP: `dynamics.sharpness` (Lanczos, dense) vs ARPACK.

Model (perf-baselines.md section 4): f = MLP 16 -> h -> h -> 1 (tanh, LeCun-normal init, zero biases, key 0),
E(theta) = mean_i (f(x_i) - y_i)^2 over N = 512 inputs x_i ~ N(0, I_16), y_i ~ N(0, 1), float64, at init;
p = h^2 + 19 h + 1 parameters: 1,033 / 9,811 / 100,083 at h = 24 / 90 / 307.

Methods: `dynamics.sharpness(E, params, method="lanczos", steps=m)` for m = 20, 40 (m HVPs, full
reorthogonalization) and method="dense" (jacfwd Hessian, p HVPs batched, + eigvalsh) at p <= DENSE_MAX only:
the dense Hessian is 8 p^2 bytes (8.5 MB, 0.77 GB, 80 GB at the three sizes) and eigh is O(p^3)
(perf-baselines: 108 s at p ~ 1e4, ~30 h est. at 1e5). Each is jitted with the params as the argument.
Reference: scipy.sparse.linalg.eigsh(which="LA", tol=0: machine precision) on a LinearOperator whose
matvec is the jitted HVP `dynamics.hvp(E)`, independent of `dynamics.spectrum`; its matvecs are counted.
Wall = median of REPEATS warm calls (interleaved), compile excluded.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import dynamics as dyn  # noqa: E402
from dynamics.mlp import mlp_init, mlp_loss  # noqa: E402

from .common import table, time_calls  # noqa: E402

D_IN, N_SAMPLES = 16, 512
WIDTHS = (24, 90, 307)
LANCZOS_STEPS = (20, 40)
#: dense eigh only up to this many parameters (= dynamics.spectrum.DENSE_LIMIT).
DENSE_MAX = 2000
REPEATS = 3
#: perf-baselines.md section 4, Lanczos m = 20 (warm wall seconds) at the three widths.
BASELINE_M20_S = {24: 6.5e-3, 90: 60e-3, 307: 0.67}


def problem(h, seed=0):
    """(loss of the MLP params pytree, params at init, p)."""
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(N_SAMPLES, D_IN)), rng.normal(size=N_SAMPLES)
    params = mlp_init(jax.random.PRNGKey(seed), (D_IN, h, h, 1))
    return mlp_loss(X, y, "tanh", "mse"), params, ravel_pytree(params)[0].size


def arpack_reference(loss, params):
    """(call() -> (lambda_max, matvecs)) by ARPACK eigsh(which="LA") on the jitted HVP (fixed start v0 = 1)."""
    flat, unravel = ravel_pytree(params)
    E = lambda v: loss(unravel(v))
    matvec = jax.jit(dyn.hvp(E))
    flat = jax.device_put(flat)

    def call():
        count = [0]

        def mv(v):
            count[0] += 1
            return np.asarray(matvec(flat, jnp.asarray(v.ravel())))

        op = sla.LinearOperator((flat.size, flat.size), matvec=mv, dtype=np.float64)
        value = sla.eigsh(op, k=1, which="LA", tol=0, v0=np.ones(flat.size), return_eigenvectors=False)[0]
        return np.float64(value), count[0]

    return call


def measure(h):
    loss, params, p = problem(h)
    fns = {}
    for m in LANCZOS_STEPS:
        jitted = jax.jit(lambda w, m=m: dyn.sharpness(loss, w, method="lanczos", steps=m))
        fns[f"lanczos m={m}"] = lambda f=jitted: f(params)
    if p <= DENSE_MAX:
        jitted = jax.jit(lambda w: dyn.sharpness(loss, w, method="dense"))
        fns["dense eigh"] = lambda f=jitted: f(params)
    fns["eigsh (ARPACK, LA)"] = arpack_reference(loss, params)
    timings, results = time_calls(fns, REPEATS)
    reference, arpack_mv = results.pop("eigsh (ARPACK, LA)")
    results = {name: float(value) for name, value in results.items()}
    hvps = {f"lanczos m={m}": m for m in LANCZOS_STEPS} | {"dense eigh": p, "eigsh (ARPACK, LA)": arpack_mv}
    return dict(h=h, p=p, reference=float(reference), results=results, timings=timings, hvps=hvps)


def report():
    runs = [measure(h) for h in WIDTHS]
    rows, notes = [], []
    for run in runs:
        for name, timing in run["timings"].items():
            value = run["results"].get(name, run["reference"])
            error = abs(value - run["reference"]) / abs(run["reference"])
            baseline = (f"{BASELINE_M20_S[run['h']] * 1e3:.3g}" if name == "lanczos m=20" else "")
            rows.append([f"p = {run['p']:,} (h = {run['h']})" if name.startswith("lanczos m=20") else "", name,
                         run["hvps"][name], f"{1e3 * timing.median_s:.4g}", f"{timing.compile_s:.2f}",
                         timing.warm_compiles, f"{value:.10f}", "reference" if "eigsh" in name else f"{error:.1e}",
                         baseline])
        if "dense eigh" in run["timings"]:
            for m in LANCZOS_STEPS:
                ratio = run["timings"]["dense eigh"].median_s / run["timings"][f"lanczos m={m}"].median_s
                notes.append(f"ratio at p = {run['p']:,}: dense / Lanczos m={m} = {ratio:.1f}x wall time")
        else:
            notes.append(f"dense skipped at p = {run['p']:,} (> {DENSE_MAX}): the Hessian alone is "
                         f"{8 * run['p'] ** 2 / 1e9:.2g} GB and eigh is O(p^3)")
        notes.append(f"ratio at p = {run['p']:,}: eigsh / Lanczos m=20 = "
                     f"{run['timings']['eigsh (ARPACK, LA)'].median_s / run['timings']['lanczos m=20'].median_s:.1f}x")
    print(f"\nSharpness lambda_max(H) of a tanh MLP {D_IN}->h->h->1, N = {N_SAMPLES}, MSE, float64, at init: "
          f"dynamics.sharpness vs ARPACK eigsh on the jitted HVP (wall = median of {REPEATS} warm calls)")
    print(table(["size", "method", "HVPs", "wall ms", "compile s", "warm compiles", "lambda_max",
                 "rel err vs eigsh", "baseline ms"], rows))
    for line in notes:
        print(line)


if __name__ == "__main__":
    report()
