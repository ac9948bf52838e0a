"""Linear networks: (a) a 64-lane alpha sweep as one vmapped `simulate_sweep` vs a Python loop of `simulate`;
(b) log-time GF vs GD to the same predictor-KKT residual on a depth-3 diagonal classification problem.

(a) D = 2 diagonal net, regression (N = 5, d = 12, seed 15), GF of L / max(alpha, 1)^2 (same path), Dopri8,
    rtol 1e-10, atol 1e-14, rescaled time T = 600. The loop passes alpha as a traced array, so it compiles once.
(b) DiagonalNetwork(3, "product"), exp loss, N = 6, d = 8 (seed 0), init 0.1 N(0, 1); r_stat from
    `predictor_kkt` with the run's own dual weights; targets r_stat <= 1e-1 ... 1e-2 (first crossing on the save
    grid). GF: Tsit5 in log time, evaluations = 6 x steps + 3. GD: lr = 0.01, at most 1e6 steps; GD's iterate k sits
    at t = k lr, so where GD does not reach a target the path-time estimate K ~ expm1(tau*) / lr is printed instead.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.models.networks import DiagonalNetwork, classification_loss, regression_loss
from dynamics.measure import predictor_kkt
from dynamics.sweeps import simulate_sweep

from .common import si, table, time_calls

ALPHAS = np.geomspace(1e-4, 1e1, 64)
T = 600.0
TARGETS, LR, GD_MAX = (1e-1, 5e-2, 2e-2, 1e-2), 0.01, 10**6


class _Scaled(eqx.Module):
    loss: object
    scale: jax.Array

    def __call__(self, params):
        return self.scale * self.loss(params)


def sweep_vs_loop():
    rng = np.random.default_rng(15)
    X, y = rng.normal(size=(5, 12)), rng.normal(size=5)
    net = DiagonalNetwork(2, "pm")
    loss = regression_loss(net, X, y)
    ts = np.array([0.0, T])
    opts = dict(observe=lambda t, p: net.predictor(p), rtol=1e-10, atol=1e-14, solver=diffrax.Dopri8(),
                max_steps=100_000)

    def make(alpha):
        return dyn.GradientFlow(_Scaled(loss, 1.0 / jnp.maximum(alpha, 1.0) ** 2)), net.init(alpha, d=12)

    sweep = lambda: simulate_sweep(make, jnp.asarray(ALPHAS), ts, **opts).ys
    loop = lambda: jnp.stack([dyn.simulate(*make(jnp.asarray(a)), ts, **opts).ys for a in ALPHAS], axis=1)
    timings, results = time_calls({"vmapped sweep": sweep, "python loop": loop}, repeats=2)
    gap = float(np.abs(np.asarray(results["vmapped sweep"]) - np.asarray(results["python loop"])).max())
    rows = [[name, f"{t.median_s:.2f}", f"{t.first_s:.2f}", f"{t.compile_s:.2f} ({t.compiles})", t.warm_compiles]
            for name, t in timings.items()]
    print(f"\n(a) {len(ALPHAS)}-lane alpha sweep, D = 2 diagonal net, Dopri8 rtol 1e-10, T = {T:g}")
    print(table(["method", "warm s", "first call s", "XLA compile s (n)", "warm compiles"], rows))
    ratio = timings["python loop"].median_s / timings["vmapped sweep"].median_s
    print(f"loop / sweep (warm) = {ratio:.2f}; max |beta_sweep - beta_loop| = {gap:.1e}")
    return ratio


def _first_crossing(r, marks, target):
    hit = np.flatnonzero(r <= target)
    return None if hit.size == 0 else marks[hit[0]]


def gf_vs_gd():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 8)), rng.choice([-1.0, 1.0], size=6)
    p0 = tuple(jnp.asarray(w) for w in 0.1 * rng.normal(size=(3, 8)))
    dyn.max_margin(X, y)  # separability
    Z = y[:, None] * X
    net = DiagonalNetwork(3, "product")
    loss = classification_loss(net, X, y, "exp")
    observe = lambda t, p: (net.predictor(p), loss.dual_weights(p))
    r_of = lambda ys: np.array([predictor_kkt(b, Z, w, 3)[0] for b, w in zip(*(np.asarray(a)[1:] for a in ys))])

    taus = np.linspace(0.5, 200.0, 400)
    gf = lambda tau_grid: dyn.simulate(dyn.GradientFlow(loss), p0, np.expm1(np.r_[0.0, tau_grid]), log_time=True,
                                       rtol=1e-10, atol=1e-12, solver=diffrax.Tsit5(), observe=observe,
                                       max_steps=400_000)
    r_gf = r_of(gf(taus).ys)
    ks = np.unique(np.geomspace(1, GD_MAX, 200).astype(np.int64))
    r_gd = r_of(dyn.simulate(dyn.GradientDescent(loss, LR), p0, np.r_[0, ks] * LR, observe=observe).ys)
    rows, ratios = [], {}
    for target in TARGETS:
        tau_star = _first_crossing(r_gf, taus, target)
        evals = 6 * gf(np.array([tau_star])).stats["num_steps"] + 3
        K = _first_crossing(r_gd, ks, target)
        ratio = (K if K is not None else np.expm1(tau_star) / LR) / evals
        ratios[target] = ratio
        K_text = f"{K}" if K is not None else f"> {GD_MAX:.0e} (path time ~{np.expm1(tau_star) / LR:.1e})"
        rows.append([f"{target:g}", f"{tau_star:.1f}", evals, K_text,
                     (si(ratio) if ratio < 1e12 else f"{ratio:.1e}") + ("" if K is not None else " (estimate)")])
    print(f"\n(b) depth-3 diagonal net, exp loss, first crossing of r_stat <= target; GD lr = {LR}; "
          f"GD's smallest r_stat in {GD_MAX:.0e} steps: {r_gd.min():.2e}")
    print(table(["target", "GF tau*", "GF evaluations", "GD steps", "GD gradients / GF evaluations"], rows))
    return ratios


def report():
    return {"sweep_ratio": sweep_vs_loop(), "gd_gf_ratio": gf_vs_gd()}


if __name__ == "__main__":
    report()
