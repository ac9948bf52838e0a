"""Top Hessian eigenvalue S = lambda_max(H) of a tanh MLP: Lanczos, LOBPCG (cold and warm-started along a GD
trajectory) and dense eigh from `dynamics.linalg`, against ARPACK.

Model (the project's pre-existing sharpness baseline, quoted in benchmarks/README.md section 6): f = MLP 16 -> h -> h -> 1 (tanh, LeCun-normal init, zero biases, key 0),
E(theta) = mean_i (f(x_i) - y_i)^2 over N = 512 inputs x_i ~ N(0, I_16), y_i ~ N(0, 1), float64;
p = h^2 + 19 h + 1 parameters: 1,033 / 1,981 / 9,811 / 100,083 at h = 24 / 36 / 90 / 307.

Table 1, at init. `dynamics.sharpness(E, params, method="lanczos", steps=m)` for m = 20, 40 (m HVPs, full
reorthogonalization); `dynamics.linalg.eigenpairs(E, params, 1, "lobpcg", start=X0)` from a fixed Gaussian vector
(cold; stops at residual ||H v - lambda v|| <= 1e-8 rho, its HVP count is read from the result); method="dense"
(jacfwd Hessian, p HVPs batched, + eigvalsh) at p <= DENSE_MAX only: the dense Hessian is 8 p^2 bytes (0.77 GB and
80 GB at the two largest sizes) and eigh is O(p^3) (108 s at p ~ 1e4 in the baseline measurements). Each is jitted with the
params as the argument. Reference: scipy.sparse.linalg.eigsh(which="LA", tol=0: machine precision) on a
LinearOperator whose matvec is the jitted HVP `dynamics.hvp(E)`, independent of `dynamics.linalg`; its matvecs
are counted. Wall = median of REPEATS warm calls (interleaved; dense: 1 call, it is 1e2-1e3x slower), compile
excluded.

Table 2, along GD (lr = 0.5 / S(w_0), TRAJECTORY iterates from `dynamics.simulate(GradientDescent)`): at each
iterate w_t, LOBPCG cold (the same fixed start) and warm (start = the eigenvector found at w_{t-1}); HVPs and wall
per solve (one call each, compile excluded) averaged over t >= 1, and the largest |S_warm - S_cold| / S_cold.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import statistics  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import dynamics as dyn  # noqa: E402
from dynamics.models.mlp import mlp_init, mlp_loss  # noqa: E402
from dynamics.measure import eigenpairs  # noqa: E402

from .common import table, time_calls, timed_call  # noqa: E402

D_IN, N_SAMPLES = 16, 512
WIDTHS = (24, 36, 90, 307)
LANCZOS_STEPS = (20, 40)
#: dense eigh only up to this many parameters in this benchmark (its O(n^3) cost).
DENSE_MAX = 2000
REPEATS = 3
#: GD iterates w_0 .. w_{TRAJECTORY-1} for the warm-start comparison.
TRAJECTORY = 5
#: the baseline measurements (benchmarks/README.md), Lanczos m = 20 (warm wall seconds) at the widths it measured.
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


def trajectory(loss, params, lobpcg, cold_start, lr):
    """Cold vs warm LOBPCG at the GD iterates: per-solve HVPs and wall (t >= 1) and the largest disagreement."""
    flat, unravel = ravel_pytree(params)
    E = lambda v: loss(unravel(v))
    ws = dyn.simulate(dyn.GradientDescent(E, lr), flat, lr * np.arange(TRAJECTORY)).ys
    start, rows = cold_start, []
    for t, w in enumerate(ws):
        params_t = unravel(w)
        cold_s, _, _, cold = timed_call(lambda: lobpcg(params_t, cold_start))
        warm_s, _, _, warm = timed_call(lambda: lobpcg(params_t, start))
        start = warm.vectors
        if t > 0:
            rows.append((int(cold.hvps), int(warm.hvps), cold_s, warm_s,
                         abs(float(warm.values[0] - cold.values[0])) / abs(float(cold.values[0])),
                         bool(cold.converged and warm.converged)))
    cold_hvps, warm_hvps, cold_s, warm_s, gap, converged = zip(*rows)
    return dict(cold_hvps=statistics.mean(cold_hvps), warm_hvps=statistics.mean(warm_hvps),
                cold_s=statistics.median(cold_s), warm_s=statistics.median(warm_s), gap=max(gap),
                converged=all(converged))


def measure(h):
    loss, params, p = problem(h)
    fns = {}
    for m in LANCZOS_STEPS:
        jitted = jax.jit(lambda w, m=m: dyn.sharpness(loss, w, method="lanczos", steps=m))
        fns[f"lanczos m={m}"] = lambda f=jitted: f(params)
    lobpcg = jax.jit(lambda w, X0: eigenpairs(loss, w, 1, "lobpcg", start=X0))
    cold_start = jax.random.normal(jax.random.PRNGKey(0), (p, 1))
    fns["lobpcg cold"] = lambda: lobpcg(params, cold_start)
    if p <= DENSE_MAX:
        jitted = jax.jit(lambda w: dyn.sharpness(loss, w, method="dense"))
        fns["dense eigh"] = lambda f=jitted: f(params)
    fns["eigsh (ARPACK, LA)"] = arpack_reference(loss, params)
    timings, results = time_calls(fns, {name: 1 if name == "dense eigh" else REPEATS for name in fns})
    reference, arpack_mv = results.pop("eigsh (ARPACK, LA)")
    solved = results.pop("lobpcg cold")
    results = {name: float(value) for name, value in results.items()} | {"lobpcg cold": float(solved.values[0])}
    hvps = ({f"lanczos m={m}": m for m in LANCZOS_STEPS}
            | {"lobpcg cold": int(solved.hvps), "dense eigh": p, "eigsh (ARPACK, LA)": arpack_mv})
    track = trajectory(loss, params, lobpcg, cold_start, 0.5 / reference)
    return dict(h=h, p=p, reference=float(reference), results=results, timings=timings, hvps=hvps,
                residual=float(solved.residuals[0]), track=track)


def report():
    runs = [measure(h) for h in WIDTHS]
    rows, notes = [], []
    for run in runs:
        dense = run["timings"].get("dense eigh")
        for name, timing in run["timings"].items():
            value = run["results"].get(name, run["reference"])
            error = abs(value - run["reference"]) / abs(run["reference"])
            baseline = f"{BASELINE_M20_S[run['h']] * 1e3:.3g}" if name == "lanczos m=20" and run["h"] in \
                BASELINE_M20_S else ""
            rows.append([f"p = {run['p']:,} (h = {run['h']})" if name == "lanczos m=20" else "", name,
                         run["hvps"][name], f"{run['hvps'][name] / run['p']:.3g}", f"{1e3 * timing.median_s:.4g}",
                         f"{dense.median_s / timing.median_s:.3g}" if dense else "", f"{timing.compile_s:.2f}",
                         timing.warm_compiles, f"{value:.10f}", "reference" if "eigsh" in name else f"{error:.1e}",
                         baseline])
        if not dense:
            notes.append(f"dense skipped at p = {run['p']:,} (> {DENSE_MAX}): the Hessian alone is "
                         f"{8 * run['p'] ** 2 / 1e9:.2g} GB and eigh is O(p^3)")
        wall = {name: timing.median_s for name, timing in run["timings"].items()}
        notes.append(f"p = {run['p']:,}: LOBPCG cold residual ||Hv - lambda v|| = {run['residual']:.2g}; wall ratios "
                     f"eigsh / LOBPCG cold = {wall['eigsh (ARPACK, LA)'] / wall['lobpcg cold']:.2f}x, "
                     f"eigsh / Lanczos m=20 = {wall['eigsh (ARPACK, LA)'] / wall['lanczos m=20']:.2f}x")
    print(f"\nSharpness lambda_max(H) of a tanh MLP {D_IN}->h->h->1, N = {N_SAMPLES}, MSE, float64, at init: "
          f"dynamics.linalg vs ARPACK eigsh on the jitted HVP (wall = median of {REPEATS} warm calls, dense: 1)")
    print(table(["size", "method", "HVPs", "HVPs/p", "wall ms", "dense/this wall", "compile s", "warm compiles",
                 "lambda_max", "rel err vs eigsh", "baseline ms"], rows))
    for line in notes:
        print(line)
    rows = []
    for run in runs:
        t = run["track"]
        rows.append([f"{run['p']:,}", f"{t['cold_hvps']:.1f}", f"{t['warm_hvps']:.1f}",
                     f"{t['warm_hvps'] / t['cold_hvps']:.2f}", f"{1e3 * t['cold_s']:.4g}", f"{1e3 * t['warm_s']:.4g}",
                     f"{t['warm_s'] / t['cold_s']:.2f}", f"{t['gap']:.1e}", t["converged"]])
    print(f"\nLOBPCG along GD (lr = 0.5 / S(w_0), iterates 1..{TRAJECTORY - 1}): cold start vs warm start from the "
          "previous iterate's eigenvector (per solve: mean HVPs, median wall)")
    print(table(["p", "cold HVPs", "warm HVPs", "warm/cold", "cold ms", "warm ms", "warm/cold wall",
                 "max |S_warm - S_cold|/S", "all converged"], rows))


if __name__ == "__main__":
    report()
