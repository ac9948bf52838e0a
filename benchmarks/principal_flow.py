"""Principal flow against GD, and the cost of one vector-field evaluation of every continuous model.

Table 1 (docs/flows.md section 2.5, the released-code problem [code: deepmind/discretisation_drift
PF_exact_GD_*.ipynb]): E = x^T A x, A = diag(1, 0.01) (Hessian diag(2, 0.02)), theta0 = (-0.35, -0.2),
h = 0.9 (h lambda_1 = 1.8: period-2 oscillation, 200 GD steps, t = 180) and h = 1.05 (h lambda_1 = 2.1:
divergence, 5 steps). The complex PF solution equals GD at t = k h exactly, so a solver's error is
err = max_k max_i |Re PF_i(k h) - GD_i,k| (absolute; GD by `simulate(GradientDescent)`), and
max |Im PF(k h)| is a second error. Methods:

  adaptive  simulate(PrincipalFlow(E, h), theta0 + 0j, ts) with Tsit5, atol = rtol, at the loosest rtol
            of 1e-6, 3e-7, ..., 3e-12 with err <= 1e-8. Field evaluations are counted exactly (a host
            callback in the field, a separate untimed run) and checked against (stages - 1) x steps + 3.
  Euler     forward Euler theta <- theta + dt PF(theta), dt = 1e-5 (the notebooks' method), on the same
            complex field (`PrincipalFlow.field`), as one compiled lax loop: t / dt evaluations.

Euler to t = 180 is 1.8e7 evaluations (~1-1.5 min on 2 shared cores), so by default both methods run the
first SHORT_STEPS GD steps of the h = 0.9 problem; the full horizon is run by the adaptive solver only,
with Euler's evaluation count t / dt (exact by construction) and its wall time extrapolated linearly
from the measured time per Euler step (``python -m benchmarks.principal_flow --full-euler`` runs it).

Table 2: the cost of one field evaluation of each flow on a tanh MLP
E(theta) = (1/2m) sum_i (v . tanh(W x_i) - y_i)^2, theta = (W, v), n = width (d_in + 1) parameters,
m = EXAMPLES, counted three ways: the analytic count read off the code (g = gradient, Hv = Hessian-vector
product, T = third-derivative product T[u, v], D4 = fourth); the derivative products the code traces
(the loss is instrumented: each trace of E is tagged by the reverse/forward differentiation levels around
it, read from JAX's tracer types (private `jax._src.interpreters` classes); a trace in a loop body counts
once, a vmapped one is marked n-batched); and the measured time of one compiled evaluation over that of
one compiled gradient of the same model (a compiled loop x <- x + 1e-12 F(x), each evaluation depending
on the last, ~LOOP_SECONDS per call, median of interleaved repeats). XLA merges repeated subcomputations,
so measured ratios can sit far below the traced counts.

OpenBLAS (jaxlib's LAPACK, hence eigh) runs single-threaded unless OPENBLAS_NUM_THREADS is set: on 2
cores shared with other jobs its threads made eigh of a 100 x 100 matrix ~230 ms instead of ~4 ms.
"""

import collections
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.extend  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.interpreters import ad, batching  # noqa: E402

import dynamics as dyn  # noqa: E402

from .common import si, table, time_calls, timed_call  # noqa: E402

# ----------------------------------------------------------------------------- table 1: PF vs Euler

RELEASED_A = np.diag([1.0, 0.01])
RELEASED_Y0 = np.array([-0.35, -0.2])
LAMBDA_MAX = 2.0 * RELEASED_A.max()  # largest Hessian eigenvalue of E
#: (name, h, GD steps of the full problem).
PF_PROBLEMS = (("oscillating", 0.9, 200), ("divergent", 1.05, 5))
SHORT_STEPS = 5
EULER_DT = 1e-5
TARGET = 1e-8
RTOLS = 10.0 ** -np.arange(6.0, 11.6, 0.5)
#: every adaptive run saves at this many equally spaced times (k h among them): one compilation.
SAVES = 201
#: warm calls timed (every call is warm: compiled beforehand); Euler runs take seconds each.
REPEATS_ADAPTIVE, REPEATS_EULER = 5, 1


def released_loss(theta):
    """E = x^T A x, A = diag(1, 0.01); holomorphic (complex states allowed)."""
    return theta @ (jnp.asarray(RELEASED_A) @ theta)


class _CountedPF(dyn.PrincipalFlow):
    """PrincipalFlow whose field increments a host counter per evaluation (untimed runs only)."""

    def field(self, t, theta):
        jax.debug.callback(_count_evaluation)
        return dyn.PrincipalFlow.field(self, t, theta)


_EVALUATIONS = [0]


def _count_evaluation():
    _EVALUATIONS[0] += 1


@eqx.filter_jit
def _euler(flow, y0, dt, steps_per_save, saves):
    """Forward Euler on flow.field: the states after each of ``saves`` blocks of ``steps_per_save`` steps."""

    def block(y, _):
        y = jax.lax.fori_loop(0, steps_per_save, lambda i, y: y + dt * flow.field(0.0, y), y)
        return y, y

    return jax.lax.scan(block, y0, None, length=saves)[1]


def _adaptive(flow, h, steps, rtol):
    """simulate at SAVES times spanning ``steps`` GD steps (k h is every (SAVES - 1)/steps-th save)."""
    ts = h * steps * np.arange(SAVES) / (SAVES - 1)
    return dyn.simulate(flow, RELEASED_Y0.astype(complex), ts, rtol=rtol, atol=rtol, solver=diffrax.Tsit5(),
                        max_steps=200_000)


def _errors(states, gd):
    """(max |Re - GD|, max |Im|) over the integer times."""
    states = np.asarray(states)
    return float(np.max(np.abs(states.real - gd))), float(np.max(np.abs(states.imag)))


def pf_problem(name, h, steps, run_euler):
    """Adaptive PF to err <= TARGET over ``steps`` GD steps; forward Euler too if ``run_euler``."""
    flow = dyn.PrincipalFlow(released_loss, h)
    gd = np.asarray(dyn.simulate(dyn.GradientDescent(released_loss, h), RELEASED_Y0, h * np.arange(steps + 1)).ys)
    per = (SAVES - 1) // steps
    if per * steps != SAVES - 1:
        raise ValueError(f"{steps} GD steps must divide {SAVES - 1} saves")
    sweep, compile_s = [], None
    for rtol in RTOLS:
        seconds, _, _, traj = timed_call(lambda: _adaptive(flow, h, steps, rtol))
        compile_s = seconds if compile_s is None else compile_s
        sweep.append((rtol, *_errors(traj.ys[::per], gd)))
        if sweep[-1][1] <= TARGET:
            break
    rtol, error, imag = sweep[-1]
    if error > TARGET:
        raise RuntimeError(f"{name}: no rtol in {RTOLS} reaches err <= {TARGET} (err = {error:.2e} at {rtol:.0e})")
    _EVALUATIONS[0] = 0
    counted = _CountedPF(released_loss, h)
    stats = jax.block_until_ready(_adaptive(counted, h, steps, rtol)).stats
    estimate = (diffrax.Tsit5().tableau.num_stages - 1) * stats["num_steps"] + 3
    methods = {"adaptive": lambda: _adaptive(flow, h, steps, rtol).ys}
    repeats = {"adaptive": REPEATS_ADAPTIVE}
    euler_steps = int(round(h / EULER_DT))
    y0 = jnp.asarray(RELEASED_Y0.astype(complex))
    if run_euler:
        jax.block_until_ready(_euler(flow, y0, EULER_DT, jnp.asarray(1), steps))  # compile (1 step per block)
        methods["euler"] = lambda: _euler(flow, y0, EULER_DT, jnp.asarray(euler_steps), steps)
        repeats["euler"] = REPEATS_EULER
    timings, results = time_calls(methods, repeats)
    seconds = {method: float(np.median((t.first_s,) + t.runs_s)) for method, t in timings.items()}  # all warm
    out = {"name": name, "h": h, "steps": steps, "sweep": sweep, "rtol": rtol, "error": error, "imag": imag,
           "counted": _EVALUATIONS[0], "estimate": estimate, "accepted": stats["num_accepted_steps"],
           "rejected": stats["num_rejected_steps"], "adaptive_s": seconds["adaptive"], "compile_s": compile_s,
           "warm_compiles": sum(t.compiles + t.warm_compiles for t in timings.values()),
           "euler_evaluations": steps * euler_steps}
    if run_euler:
        out["euler_error"], out["euler_imag"] = _errors(results["euler"], gd[1:])
        out["euler_s"] = seconds["euler"]
    return out


def pf_versus_euler(full_euler=False):
    """Table 1 rows: both methods on the short horizons, the adaptive solver alone on the full one."""
    runs = [pf_problem(name, h, min(steps, SHORT_STEPS), True) for name, h, steps in PF_PROBLEMS]
    per_evaluation = min(run["euler_s"] / run["euler_evaluations"] for run in runs)
    for name, h, steps in PF_PROBLEMS:
        if steps > SHORT_STEPS:
            run = pf_problem(name, h, steps, full_euler)
            if not full_euler:
                run["euler_s_extrapolated"] = per_evaluation * run["euler_evaluations"]
            runs.append(run)
    return runs


def report_pf(full_euler=False):
    runs = pf_versus_euler(full_euler)
    rows, ratios = [], []
    for run in runs:
        horizon = f"{run['steps']} (t = {run['steps'] * run['h']:.4g})"
        label = f"{run['name']}, h = {run['h']} (h lambda = {LAMBDA_MAX * run['h']:.2f})"
        rows.append([label, horizon, f"Tsit5 rtol=atol={run['rtol']:.0e}", run["counted"],
                     f"{run['accepted']} ({run['rejected']})", f"{run['error']:.1e}", f"{run['imag']:.1e}",
                     f"{1e3 * run['adaptive_s']:.3g}"])
        if "euler_s" in run:
            euler_s, measured = run["euler_s"], ""
            rows.append(["", horizon, f"Euler dt={EULER_DT:.0e}", si(run["euler_evaluations"]),
                         si(run["euler_evaluations"]), f"{run['euler_error']:.1e}", f"{run['euler_imag']:.1e}",
                         f"{1e3 * euler_s:.4g}"])
        else:
            euler_s, measured = run["euler_s_extrapolated"], " (Euler not run: count t/dt, wall extrapolated)"
            rows.append(["", horizon, f"Euler dt={EULER_DT:.0e}", si(run["euler_evaluations"]),
                         si(run["euler_evaluations"]), "not run", "not run", f"~{1e3 * euler_s:.4g} (extrap.)"])
        ratios.append(f"{label}, {run['steps']} GD steps: Euler / adaptive = "
                      f"{run['euler_evaluations'] / run['counted']:.0f}x field evaluations, "
                      f"{euler_s / run['adaptive_s']:.0f}x wall time{measured}")
    print(f"\nPrincipal flow vs GD on E = x^T diag(1, 0.01) x from theta0 = {RELEASED_Y0.tolist()} (complex state, "
          f"float64): adaptive at the loosest rtol with err <= {TARGET:.0e} vs forward Euler at dt = {EULER_DT:.0e}; "
          "wall = median of warm calls, compile excluded")
    print(table(["problem", "GD steps (t)", "method", "field evals", "steps acc (rej)", "err max|Re-GD|",
                 "max|Im|", "wall ms (median)"], rows))
    for line in ratios:
        print("ratio: " + line)
    for run in runs:
        sweep = ", ".join(f"{rtol:.0e}: {error:.1e}" for rtol, error, _ in run["sweep"])
        print(f"rtol sweep {run['name']}, {run['steps']} steps (err): {sweep}; evaluations counted "
              f"{run['counted']}, estimated (stages - 1) x steps + 3 = {run['estimate']}; "
              f"first call {run['compile_s']:.2f} s; warm compiles {run['warm_compiles']}")
    return runs


# ----------------------------------------------------------------------------- table 2: cost per evaluation

EXAMPLES = 256
LR = 0.1
EPS = 1e-12
#: each timed call runs >= PROBE evaluations and about LOOP_SECONDS; REPEATS_COST interleaved warm rounds.
LOOP_SECONDS = 0.05
PROBE = 1
REPEATS_COST = 7
#: (d_in, width): n = width (d_in + 1) = 10, 100, 500.
SIZES = {10: (4, 2), 100: (9, 10), 500: (9, 50)}
PRODUCT_NAMES = {1: "g", 2: "Hv", 3: "T", 4: "D4", 5: "D5"}


class MLP:
    """Tanh MLP regression: ``loss`` on all m examples, ``first``/``second`` on the two halves (continual
    tasks), ``example_loss(theta, i)``; each closure is passed through ``wrap`` (instrumentation)."""

    def __init__(self, n, wrap=lambda f: f, seed=0):
        d_in, width = SIZES[n]
        rng = np.random.default_rng(seed)
        X, y = jnp.asarray(rng.normal(size=(EXAMPLES, d_in))), jnp.asarray(rng.normal(size=EXAMPLES))
        self.split = width * d_in
        self.theta0 = jnp.asarray(np.concatenate([rng.normal(size=width * d_in) / np.sqrt(d_in),
                                                  rng.normal(size=width) / np.sqrt(width)]))

        def residuals(theta, rows):
            W, v = theta[: self.split].reshape(width, d_in), theta[self.split:]
            return jnp.tanh(X[rows] @ W.T) @ v - y[rows]

        half = EXAMPLES // 2
        mean_square = lambda rows: wrap(lambda theta: 0.5 * jnp.mean(residuals(theta, rows) ** 2))
        self.loss = mean_square(slice(None))
        self.first, self.second = mean_square(slice(0, half)), mean_square(slice(half, None))
        self.example_loss = lambda theta, i: 0.5 * residuals(theta, jnp.array([i]))[0] ** 2


def _game(model, alternating):
    """Zero-sum game on the MLP: phi = W minimizes E, theta = v maximizes it (L_2 = -L_1)."""
    joint = lambda phi, theta: model.loss(jnp.concatenate([phi, theta]))
    f, g = dyn.game_fields(joint, lambda phi, theta: -joint(phi, theta))
    flow = dyn.GameModifiedFlow(f, g, LR, alternating=alternating)
    x0 = (model.theta0[: model.split], model.theta0[model.split:])
    return lambda z: flow.field(0.0, z), x0


def _sme(model, order):
    noise = dyn.minibatch_noise_factor(model.example_loss, EXAMPLES, 8)
    sme = dyn.StochasticModifiedEquation(model.loss, LR, noise, jax.random.PRNGKey(0), order=order)
    return lambda x: sme.drift(0.0, x), model.theta0


def _field(flow, complex_state=False):
    def make(model):
        process = flow(model)
        x0 = model.theta0.astype(complex) if complex_state else model.theta0
        return lambda x: process.field(0.0, x), x0

    return make


def _plain(fn):
    return lambda model: (fn(model), model.theta0)


#: (row, n, analytic cost per evaluation read off the code, builder model -> (fn, x0)).
COST_ROWS = (
    ("gradient (reference)", 10, "1 g", _plain(lambda m: jax.grad(m.loss))),
    ("gradient (reference)", 100, "1 g", _plain(lambda m: jax.grad(m.loss))),
    ("gradient (reference)", 500, "1 g", _plain(lambda m: jax.grad(m.loss))),
    ("Hv (reference)", 100, "1 Hv = jvp of g", _plain(lambda m: lambda x: dyn.hvp(m.loss)(x, x))),
    ("T[u, v] (reference)", 100, "1 T = jvp of Hv", _plain(lambda m: lambda x: dyn.third(m.loss)(x, x, x))),
    ("GradientFlow", 100, "1 g", _field(lambda m: dyn.GradientFlow(m.loss))),
    ("ModifiedFlow order 2 (IGR)", 100, "1 g + 1 Hv", _field(lambda m: dyn.ModifiedFlow(m.loss, LR, 2))),
    ("ModifiedFlow order 3", 100, "min. 1 g + 2 Hv + 1 T", _field(lambda m: dyn.ModifiedFlow(m.loss, LR, 3))),
    ("ModifiedFlow order 4", 100, "min. 1 g + 4 Hv + 2 T + 1 D4",
     _field(lambda m: dyn.ModifiedFlow(m.loss, LR, 4))),
    ("PrincipalFlow dense, real", 10, "1 g + n Hv (jacfwd) + eigh O(n^3)",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR, variant="real"))),
    ("PrincipalFlow dense, real", 100, "1 g + n Hv (jacfwd) + eigh O(n^3)",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR, variant="real"))),
    ("PrincipalFlow dense, real", 500, "1 g + n Hv (jacfwd) + eigh O(n^3)",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR, variant="real"))),
    ("PrincipalFlow dense, complex", 100, "as real in complex arithmetic + holomorphy check (2 jvp E + 1 g)",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR), complex_state=True)),
    ("PrincipalFlow dense + correction", 100, "dense + 1 T",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR, variant="real", correction=True))),
    ("PrincipalFlow topk k=4", 500, "1 g + 30 Hv (Lanczos, sequential) + 1 Hv + O(n 30^2)",
     _field(lambda m: dyn.PrincipalFlow(m.loss, LR, variant="real", method="topk", k=4))),
    ("GameModifiedFlow simultaneous", 100, "2 g + 2 Hv (each player: full backward)",
     lambda m: _game(m, False)),
    ("GameModifiedFlow alternating", 100, "3 g + 3 Hv", lambda m: _game(m, True)),
    ("ContinualModifiedFlow", 100, "per half-data task: 2 g + 2 Hv (~2 g + 2 Hv in full-data units)",
     _field(lambda m: dyn.ContinualModifiedFlow(m.first, m.second, LR))),
    ("SME drift order 2", 100, "1 g + 1 Hv (grad of IGR loss)", lambda m: _sme(m, 2)),
)


def _levels(x):
    """(reverse, forward, batched) differentiation levels around a traced loss input, from tracer types."""
    reverse = forward = 0
    batched = False
    while True:
        if isinstance(x, ad.LinearizeTracer):
            reverse, x = reverse + 1, x.primal
        elif isinstance(x, ad.JVPTracer):
            batched = batched or isinstance(x.tangent, batching.BatchTracer)
            forward, x = forward + 1, x.primal
        elif isinstance(x, batching.BatchTracer):
            x = x.val
        else:
            return reverse, forward, batched


def _recorder(seen):
    """wrap(loss) for `MLP`: each trace of the loss adds its derivative product's name to ``seen``."""

    def wrap(loss):
        def recorded(theta):
            reverse, forward, batched = _levels(theta)
            if reverse:
                seen[(reverse + forward, PRODUCT_NAMES[reverse + forward] + (" (n-batched)" if batched else ""))] += 1
            elif forward:
                seen[(0, "jvp E")] += 1
            return loss(theta)

        return recorded

    return wrap


def _products(seen):
    """'2 g + 1 Hv ...' in increasing order."""
    return " + ".join(f"{count} {name}" for (_, name), count in sorted(seen.items()))


def _equation_count(jaxpr):
    """Equations of a jaxpr including those of its sub-jaxprs (loops, conds, pjit, custom rules)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += _equation_count(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += _equation_count(sub)
    return total


@eqx.filter_jit
def _repeat(fn, x, count):
    """``count`` evaluations x <- x + EPS fn(x) in one compiled loop (each depends on the last)."""
    step = lambda i, x: jax.tree_util.tree_map(lambda a, b: a + EPS * b, x, fn(x))
    return jax.lax.fori_loop(0, count, step, x)


def _calibrate(fn, x0):
    """Evaluations per timed call: x4 until a call takes LOOP_SECONDS / 4, then scaled to LOOP_SECONDS
    (so the per-call dispatch overhead, ~0.1 ms, is negligible)."""
    count = PROBE
    while (seconds := min(timed_call(lambda: _repeat(fn, x0, jnp.asarray(count)))[0] for _ in range(3))) \
            < LOOP_SECONDS / 4:  # min of 3: a loaded machine deschedules single calls for milliseconds
        count *= 4
    return jnp.asarray(max(PROBE, int(count * LOOP_SECONDS / seconds)))


def cost_table():
    """Per row: analytic count, traced products and jaxpr size (one trace), seconds per evaluation."""
    rows, calls = [], {}
    for name, n, analytic, build in COST_ROWS:
        seen = collections.Counter()
        fn, x0 = build(MLP(n, _recorder(seen)))  # instrumentation acts at trace time only
        equations = _equation_count(jax.make_jaxpr(fn)(x0).jaxpr)
        traced = _products(seen)
        first_s = timed_call(lambda: _repeat(fn, x0, jnp.asarray(1)))[0]
        count = _calibrate(fn, x0)
        key = f"{name} n={n}"
        calls[key] = lambda fn=fn, x0=x0, count=count: _repeat(fn, x0, count)
        rows.append({"name": name, "n": n, "analytic": analytic, "key": key, "count": int(count), "traced": traced,
                     "equations": equations, "first_s": first_s})
    timings, _ = time_calls(calls, REPEATS_COST)
    for row in rows:
        row["seconds"] = timings[row["key"]].median_s / row["count"]
        row["warm_compiles"] = timings[row["key"]].compiles + timings[row["key"]].warm_compiles
    return rows


def report_costs():
    rows = cost_table()
    gradient = {row["n"]: row for row in rows if row["name"].startswith("gradient")}
    lines = []
    for row in rows:
        base = gradient[row["n"]]
        lines.append([row["name"], row["n"], row["analytic"], row["traced"],
                      f"{row['equations'] / base['equations']:.1f}", f"{1e6 * row['seconds']:.3g}",
                      f"{row['seconds'] / base['seconds']:.2f}", f"{row['first_s']:.2f}", row["warm_compiles"]])
    print(f"\nCost of one vector-field evaluation, tanh MLP regression (m = {EXAMPLES}, n parameters, h = {LR}); "
          "g = gradient, Hv = Hessian-vector product, T/D4 = third/fourth-derivative products")
    print(table(["flow", "n", "analytic cost (from the code)", "traced products of E", "jaxpr eqns / g",
                 "us / eval", "time / gradient", "first call s", "warm compiles"], lines))
    return rows


def report(full_euler=False):
    """Print both tables; returns (PF-vs-Euler runs, cost rows)."""
    return report_pf(full_euler), report_costs()


if __name__ == "__main__":
    report(full_euler="--full-euler" in sys.argv[1:])
