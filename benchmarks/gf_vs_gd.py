"""Gradients to reach the Soudry et al. limit: GD against log-time gradient flow.

Residual r = ||w - w_hat log t - w_tilde|| (docs/implicit-bias.md section 2, check S2), with
w_hat, w_tilde from `dynamics.max_margin` and `dynamics.separable_asymptotics` (sum loss,
physical time t; GD iterate k sits at t = k lr). Targets are those of S2:

  GD: K = gradients (= steps) until r <= 1e-4, lr = 0.9 x the theorem's step bound (the cheapest
      admissible GD), saves at 10 log-spaced k per decade up to 1e7; K is interpolated linearly
      in (log k, log r) between the two saves around the first crossing. If r > 1e-4 at 1e7, K is
      reported as "> 1e7" with an extrapolation by the predicted asymptotic rate r ~ t^-kappa,
      K ~ 1e7 (r(1e7) / 1e-4)^(1/kappa) (the fitted last-decade slope is printed next to -kappa).
  GF: simulate(GradientFlow(loss), log_time=True) with Tsit5 and Dopri8, rtol 1e-12, atol 1e-14
      (theory 1.3); tau* = first log time with r <= 1e-8 (interpolated in (tau, log r) on a grid
      of 400 intervals), then a second run to tau* on a same-shaped grid (JIT cache hit) gives the
      step counts and wall time. One field evaluation = one gradient. Evaluations are estimated as
      (stages - 1) x (accepted + rejected steps) + 3: FSAL tableaus (Tsit5: 7 stages, Dopri8: 14)
      re-use the last stage, a rejected step keeps the first one, and the start costs 3 (f(y0) and
      the two evaluations of diffrax's initial step-size guess, dt0=None). On the first problem the
      estimate is checked against an exact count (a host callback in the field, separate untimed run).

The ratio K / evaluations is how many times more gradients GD needs for a 1e4 times looser
residual.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.measure import fit_line
from dynamics.predictions import gd_step_bound, require_step_below

from .common import separable_gaussian, si, table, time_calls, timed_call

#: theory section 2, reference case 1 (z_n = c_n e_n, c = (1, 2)) plus two non-support points; y = +1.
AXIS = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [3.0, -0.5]])
GD_TARGET = 1e-4
GF_TARGET = 1e-8
GD_MAX_STEPS = 10**7
GD_SAVES_PER_DECADE = 10
LR_FRACTION = 0.9
RTOL, ATOL = 1e-12, 1e-14
GF_GRID = 401
SOLVERS = {"Tsit5": diffrax.Tsit5(), "Dopri8": diffrax.Dopri8()}


def problems():
    """(name, X, y, loss name): the axis data (logistic, exp) and a Gaussian set n=100, d=10."""
    X, y = separable_gaussian(0, 100, 10)
    return [("axis 4x2 logistic", AXIS, np.ones(4), "logistic"),
            ("axis 4x2 exp", AXIS, np.ones(4), "exp"),
            ("gauss 100x10 logistic", X, y, "logistic")]


def first_crossing(x, residual, target):
    """First x where residual <= target, interpolating log residual linearly in x; None if never."""
    below = np.flatnonzero(residual <= target)
    if below.size == 0:
        return None
    i = below[0]
    if i == 0:
        return float(x[0])
    lo, hi = np.log(residual[i - 1]), np.log(residual[i])
    return float(x[i - 1] + (np.log(target) - lo) / (hi - lo) * (x[i] - x[i - 1]))


def gd_to_target(loss, w0, asy):
    """GD at LR_FRACTION x bound: K (or None), K extrapolated by t^-kappa, last-decade slope, s/step."""
    bound = gd_step_bound(np.asarray(loss.data), loss.tail, loss_at_start=float(loss(w0)))
    lr = LR_FRACTION * bound
    require_step_below(lr, bound, "GD in the GF-vs-GD benchmark")
    gd = dyn.GradientDescent(loss, lr)
    decades = int(np.log10(GD_MAX_STEPS))
    ks = np.unique(np.rint(np.logspace(0, decades, decades * GD_SAVES_PER_DECADE + 1)))
    timed_call(lambda: dyn.simulate(gd, w0, np.r_[0.0, np.arange(1, ks.size + 1) * lr]).ys)  # compile
    seconds, compiles, _, traj = timed_call(lambda: dyn.simulate(gd, w0, np.r_[0.0, ks * lr]))
    residual = np.linalg.norm(np.asarray(traj.ys)[1:] - asy.predict(ks * lr), axis=1)
    crossing = first_crossing(np.log(ks), residual, GD_TARGET)
    last_decade = ks >= ks[-1] / 10
    slope = fit_line(np.log(ks[last_decade]), np.log(residual[last_decade])).slope
    extrapolated = ks[-1] * (residual[-1] / GD_TARGET) ** (1.0 / asy.kappa)
    return {"lr": lr, "bound": bound, "K": None if crossing is None else float(np.exp(crossing)),
            "residual_end": float(residual[-1]), "slope": slope, "K_extrapolated": float(extrapolated),
            "s_per_step": seconds / ks[-1], "warm_compiles": compiles}


class _CountedFlow(dyn.GradientFlow):
    """GradientFlow whose log-time field increments a host counter per evaluation (untimed runs)."""

    def log_time_field(self, tau, theta):
        jax.debug.callback(_count_evaluation)
        return dyn.GradientFlow.log_time_field(self, tau, theta)


_EVALUATIONS = [0]


def _count_evaluation():
    _EVALUATIONS[0] += 1


def gf_to_target(loss, w0, asy, solver, count=False):
    """Log-time GF: tau*, step counts and wall time to tau*, estimated (and if ``count``, counted) evaluations."""
    tau_max = 20.0 + 1.5 * np.log(1.0 / GF_TARGET) / asy.kappa  # horizon only: residual ~ e^{-kappa tau}
    run = lambda process, taus: dyn.simulate(process, w0, np.expm1(taus), log_time=True, rtol=RTOL, atol=ATOL,
                                             solver=solver, max_steps=200_000)
    taus = np.linspace(0.0, tau_max, GF_GRID)
    first, _, compile_s, traj = timed_call(lambda: run(dyn.GradientFlow(loss), taus))
    residual = np.linalg.norm(np.asarray(traj.ys)[1:] - asy.predict(np.expm1(taus[1:])), axis=1)
    tau_star = first_crossing(taus[1:], residual, GF_TARGET)
    if tau_star is None:
        return {"tau_star": None, "residual_end": float(residual[-1]), "tau_max": tau_max}
    to_star = np.linspace(0.0, tau_star, GF_GRID)
    timings, results = time_calls({"gf": lambda: run(dyn.GradientFlow(loss), to_star)}, repeats=3)
    traj = results["gf"]
    _EVALUATIONS[0] = 0
    if count:
        jax.block_until_ready(run(_CountedFlow(loss), to_star).ys)
    stages = solver.tableau.num_stages
    steps = traj.stats["num_steps"]
    end_residual = np.linalg.norm(np.asarray(traj.ys)[-1] - asy.predict(np.expm1(tau_star)))
    return {"tau_star": tau_star, "accepted": traj.stats["num_accepted_steps"],
            "rejected": traj.stats["num_rejected_steps"], "stages": stages,
            "counted": _EVALUATIONS[0] if count else None, "evaluations": (stages - 1) * steps + 3,
            "wall_s": timings["gf"].median_s, "first_s": first, "compile_s": compile_s,
            "warm_compiles": timings["gf"].compiles + timings["gf"].warm_compiles,
            "residual_at_star": float(end_residual)}


def report():
    """Print the GD and GF tables and the gradient ratios; returns the measurements."""
    gd_rows, gf_rows, checks, out = [], [], [], {}
    for index, (name, X, y, loss_name) in enumerate(problems()):
        solution = dyn.max_margin(X, y)
        if solution.degenerate:
            print(f"{name}: skipped, degenerate support (w_tilde undefined)")
            continue
        asy = dyn.separable_asymptotics(solution, y[:, None] * X)
        loss = dyn.linear_classifier(X, y, loss_name)
        w0 = jnp.zeros(X.shape[1])
        gd = gd_to_target(loss, w0, asy)
        reached = gd["K"] is not None
        K = gd["K"] if reached else gd["K_extrapolated"]
        K_text = f"{K:.3g}" if reached else f"> {GD_MAX_STEPS:.0e} (extrap. {K:.1e})"
        gd_rows.append([name, f"{asy.kappa:.3g}", f"{gd['lr']:.4g}", K_text, f"{gd['residual_end']:.2e}",
                        f"{gd['slope']:.3f}", f"{1e9 * gd['s_per_step']:.0f}",
                        f"{K * gd['s_per_step']:.2g}" + ("" if reached else " (extrap.)"), gd["warm_compiles"]])
        out[name] = {"gd": gd}
        for solver_name, solver in SOLVERS.items():
            gf = gf_to_target(loss, w0, asy, solver, count=index == 0)
            out[name][solver_name] = gf
            if gf["tau_star"] is None:
                gf_rows.append([name, solver_name, f"not reached by tau={gf['tau_max']:.0f}",
                                f"{gf['residual_end']:.1e}"] + [""] * 6)
                continue
            evals = gf["evaluations"]
            ratio = si(K / evals) if reached else f"> {si(GD_MAX_STEPS / evals)} (extrap. {K / evals:.1e})"
            gf_rows.append([name, solver_name, f"{gf['tau_star']:.2f}", f"{gf['residual_at_star']:.1e}",
                            f"{gf['accepted']} ({gf['rejected']})", evals, f"{1e3 * gf['wall_s']:.3g}",
                            f"{gf['first_s']:.2f} / {gf['compile_s']:.2f}", gf["warm_compiles"], ratio])
            if gf["counted"] is not None:
                checks.append(f"{name}, {solver_name}: counted {gf['counted']} field evaluations, "
                              f"estimated {evals} = {gf['stages'] - 1} x {gf['accepted'] + gf['rejected']} + 3")
    print(f"\nGD to ||w_k - w_hat log t - w_tilde|| <= {GD_TARGET:.0e} (t = k lr, lr = {LR_FRACTION} x step bound, "
          "w0 = 0, float64, sum loss)")
    print(table(["problem", "kappa", "lr", "K = gradients", f"r at k={GD_MAX_STEPS:.0e}",
                 "dlog r/dlog k, last decade", "ns/step", "wall to K, s", "warm compiles"], gd_rows))
    print(f"\nlog-time GF to r <= {GF_TARGET:.0e} (rtol {RTOL:.0e}, atol {ATOL:.0e}); "
          "evals = (stages - 1) x steps + 3; ratio = GD gradients / GF evaluations")
    print(table(["problem", "solver", "tau*", "r(tau*)", "steps acc (rej)", "evals", "wall ms",
                 "first call (to tau_max) / compile s", "warm compiles", "ratio"], gf_rows))
    for line in checks:
        print("evaluation count check: " + line)
    return out


if __name__ == "__main__":
    report()
