"""Mulayoff, Michaeli & Soudry (2021): linearly stable minima of univariate shallow ReLU nets are smooth in function
space (docs/stability-sam-geometry.md section 3).

Setup: f(x) = sum_k v_k relu(w_k x + b_k) + c, K neurons, loss L = (1/2n) sum_i (f(x_i) - y_i)^2 on the dataset
"stability_relu_regression" (n = 6 points of sin(pi x) + noise). Full-batch GD with step lr from random inits (knots
uniform in [-1, 1]) for lr on a geometric grid and several seeds, all lanes in one vmapped `simulate_sweep` (GD with
step lr on L is run as GD with step 1 on lr L, so every lane shares the step grid). At the end:

- lambda_max = `dyn.sharpness` (dense eigh of the Hessian, exact to rounding);
- Q = int |f''| g = `relu_curvature_norm` (exact knot sum, g from the training inputs);
- ||R||_2, R = (1/n) sum_i r_i Hess_theta f(x_i): the residual part of the Hessian (dense, exact), which the bound's
  derivation drops at an interpolating minimum; at a small nonzero loss it enters the bound as a stated error term.

[derived] lambda_max(G) >= 1 + 2 sum_k |v_k w_k| g(x_k) >= 1 + 2 Q for the Gauss-Newton part G, hence
lambda_max >= 1 + 2 Q - ||R||_2, and a minimum with lambda_max <= 2/lr has Q <= 1/lr - 1/2 + ||R||_2 / 2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.flatten_util import ravel_pytree

import dynamics as dyn
from dynamics.measure import relu_curvature_norm, relu_net, sharpness, stability_weight
from dynamics.sweeps import simulate_sweep

from .common import budgets, claims, datasets, figures
from .harness import Theorem

DATA_SEED, WIDTH, INIT_SCALE = 0, 32, 0.5
LRS = np.geomspace(0.1, 0.476, 4)
#: a run counts as a minimum reached when its training loss is below this (interpolation up to the R term).
LOSS_REACHED = 1e-4
#: overshoot of lr lambda_max / 2 over 1 allowed at the end of a run that sits at the edge of stability.
EDGE_BAND = 0.01
#: one-sided Kendall tau test of "Q decreases with lr" over all (seed, lr) runs, at this level, fixed in advance.
LEVEL = 0.01


def loss_of(X, y):
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    return lambda p: 0.5 * jnp.mean((relu_net(p, Xj) - yj) ** 2)


def initial(key, width=WIDTH, scale=INIT_SCALE):
    """w ~ scale N(0, 1), knots -b/w ~ U[-1, 1], v ~ scale N(0, 1/K), c = 0 (float64)."""
    k1, k2, k3 = jax.random.split(key, 3)
    w = scale * jax.random.normal(k1, (width,), jnp.float64)
    b = -w * jax.random.uniform(k2, (width,), jnp.float64, -1.0, 1.0)
    v = scale * jax.random.normal(k3, (width,), jnp.float64) / np.sqrt(width)
    return {"w": w, "b": b, "v": v, "c": jnp.zeros((), jnp.float64)}


def _make(lane):
    """(GD with step 1 on lr L, init) for lane = (lr, key, X, y): the same iterates as GD with step lr on L."""
    lr, key, X, y = lane
    loss = lambda p: lr * 0.5 * jnp.mean((relu_net(p, X) - y) ** 2)  # noqa: E731
    return dyn.GradientDescent(loss, 1.0), initial(key)


@jax.jit
def _residual_hessian(params, X, r):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: jnp.mean(r * relu_net(unravel(f), X)))(flat)


def residual_norm(X, y, params):
    """||R||_2 for R = (1/n) sum_i r_i Hess_theta f(x_i) at params (dense, eigvalsh; compiled once per shape)."""
    r = jnp.asarray(np.asarray(relu_net(params, jnp.asarray(X))) - y)
    return float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(_residual_hessian(params, jnp.asarray(X), r))))))


def hat_minimum(params, X, target):
    """The trained net plus a hat s [relu(x - a) - 2 relu(x - m) + relu(x - c)] strictly inside the widest gap of the
    data near the middle (a, c at 1/4 and 3/4 of the gap): f is unchanged at every training input, so the training
    loss is the same, and s is chosen so that the hat alone adds ``target`` to Q. Neuron scale sqrt(s) (balanced)."""
    Xs = np.sort(X)
    mid = np.argsort(np.abs(Xs[:-1] + Xs[1:]))[:3]               # the three gaps nearest the centre
    i = mid[np.argmax(np.diff(Xs)[mid])]
    lo, hi = Xs[i], Xs[i + 1]
    knots = lo + (hi - lo) * np.array([0.25, 0.5, 0.75])
    s = target / float(np.sum(np.array([1.0, 2.0, 1.0]) * stability_weight(X, knots)))
    alpha = np.sqrt(s)
    w = alpha * np.ones(3)
    v = np.array([1.0, -2.0, 1.0]) * s / alpha
    hat = {"w": w, "b": -w * knots, "v": v}
    return {key: (np.concatenate([np.asarray(params[key]), hat[key]]) if key in hat else np.asarray(params[key]))
            for key in params}


def measure(loss_fn, X, y, params, lr):
    p = {k: jnp.asarray(v) for k, v in params.items()}
    return {"loss": float(loss_fn(p)), "sharpness": float(sharpness(loss_fn, p, method="dense")),
            "Q": relu_curvature_norm({k: np.asarray(v) for k, v in params.items()}, X),
            "R": residual_norm(X, y, p), "lr": lr}


class Mulayoff2021(Theorem):
    id = "mulayoff2021_minima_stability"
    reference = ("Mulayoff, Michaeli, Soudry: The Implicit Bias of Minima Stability: A View from Function Space, "
                 "NeurIPS 2021")
    statement = (
        "For a one-hidden-layer univariate ReLU net trained with the loss (1/2n) sum (f(x_i) - y_i)^2, every "
        "interpolating minimum that GD with step lr can be stable at (lambda_max <= 2/lr) satisfies int |f''(x)| g(x) "
        "dx <= 1/lr - 1/2, g(x) = min(g_-(x), g_+(x)), g_+(x) = P(X > x)^2 E[X - x | X > x] sqrt(1 + E[X | X > x]^2) "
        "(g_- mirrored); the bound shrinks as lr grows. Conversely a minimum with a larger quantity has lambda_max > 2/lr.")
    hypotheses = (
        "Full-batch GD, squared loss with the 1/(2n) normalization, output bias c trained (the '1' in 1 + 2Q).",
        f"Minimum reached: training loss <= {LOSS_REACHED:g}; the residual Hessian term ||R||_2 is measured and enters "
        "the bound as (1/2)||R||_2.",
        "Knots away from the training inputs (the Hessian exists); checked: no knot within 1e-9 of a data point.",
    )
    seed = DATA_SEED

    def run(self, budget="quick"):
        steps, seeds = budgets.by_budget(budget, (20_000, 4), (100_000, 8))
        X, y = datasets.dataset("stability_relu_regression", seed=DATA_SEED)
        loss_fn = loss_of(X, y)
        keys = jax.random.split(jax.random.PRNGKey(DATA_SEED + 1), seeds)
        lanes = (jnp.repeat(jnp.asarray(LRS), seeds), jnp.tile(keys, (len(LRS), 1)),
                 jnp.broadcast_to(jnp.asarray(X), (len(LRS) * seeds, X.size)),
                 jnp.broadcast_to(jnp.asarray(y), (len(LRS) * seeds, y.size)))
        traj = simulate_sweep(_make, lanes, np.array([0.0, float(steps)]))
        ends = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[-1], traj.ys)
        rows, knot_gap = [], np.inf
        for j in range(len(LRS) * seeds):
            p = {k: v[j] for k, v in ends.items()}
            rows.append(measure(loss_fn, X, y, p, float(LRS[j // seeds])))
            live = p["w"] != 0
            knot_gap = min(knot_gap, float(np.min(np.abs(-p["b"][live] / p["w"][live] - X[:, None]))))
        hats = [measure(loss_fn, X, y, hat_minimum({k: v[i * seeds] for k, v in ends.items()}, X,
                                                   2.0 * (1.0 / lr - 0.5)), float(lr))
                for i, lr in enumerate(LRS)]
        table = lambda rs: {key: np.array([r[key] for r in rs]) for key in rs[0]}  # noqa: E731
        return {"X": X, "y": y, "seeds": seeds, "steps": steps, "runs": table(rows), "hats": table(hats),
                "base_loss": np.array([rows[i * seeds]["loss"] for i in range(len(LRS))]), "knot_gap": knot_gap,
                "example": {k: v[(len(LRS) - 1) * seeds] for k, v in ends.items()},
                "example_small": {k: v[0] for k, v in ends.items()}}

    def check(self, ev):
        runs, hats = ev["runs"], ev["hats"]
        lr, S, Q, R = runs["lr"], runs["sharpness"], runs["Q"], runs["R"]
        reached = runs["loss"] <= LOSS_REACHED
        out = [claims.bound(f"fraction of runs that reach a minimum (loss <= {LOSS_REACHED:g}, knots off the data)",
                            float(np.mean(reached)) if ev["knot_gap"] > 1e-9 else 0.0, 0.75, upper=False,
                            why="the claims below are about minima: they are evaluated on the runs that reached one, "
                                "and at least 3/4 of the runs must (else the check is vacuous)",
                            role="consistency", note=f"losses max {runs['loss'].max():.2e}, median "
                                                     f"{np.median(runs['loss']):.2e}; min knot-data distance "
                                                     f"{ev['knot_gap']:.2e}")]
        lr, S, Q, R = (runs[k][reached] for k in ("lr", "sharpness", "Q", "R"))
        bound = 1.0 / lr - 0.5
        out += [
            claims.bound("max over minima of lr lambda_max / 2 (linear stability at the end)", float(np.max(lr * S / 2)),
                         1.0 + EDGE_BAND,
                         "GD cannot stay where lr lambda_max > 2; runs ending at the edge of stability oscillate "
                         "about lr lambda_max = 2 with a self-stabilizing overshoot, allowed up to 1%",
                         role="consistency"),
            claims.bound("max over minima of Q - (1/lr - 1/2) - ||R||/2 - 0.01/lr  (the stability bound)",
                         float(np.max(Q - bound - R / 2 - EDGE_BAND / lr)), 0.0,
                         "[derived] lambda_max >= 1 + 2Q - ||R|| with lambda_max <= (2 + 2 EDGE_BAND)/lr; no slack",
                         note=f"tightness Q / (1/lr - 1/2): max {np.max(Q / bound):.3f}, per lr "
                              f"{np.round([float(np.max((Q / bound)[lr == v])) if np.any(lr == v) else np.nan for v in LRS], 3).tolist()}; "
                              f"max ||R|| {R.max():.1e}; {int(reached.sum())} of {reached.size} runs"),
            claims.bound("max over minima of 1 + 2Q - ||R|| - lambda_max  (the derived sharpness lower bound)",
                         float(np.max(1 + 2 * Q - R - S)), 0.0,
                         "[derived] Jensen on the mean parameter gradient plus 2ab <= a^2 + b^2; exact, no slack",
                         note=f"ratio (1 + 2Q) / lambda_max: max {np.max((1 + 2 * Q) / S):.3f}"),
        ]
        tau = scipy.stats.kendalltau(lr, Q, alternative="less")
        means = [float(np.mean(Q[lr == v])) for v in LRS]
        out.append(claims.bound(
            f"one-sided Kendall tau test that Q decreases with lr: p-value (level {LEVEL})", float(tau.pvalue), LEVEL,
            "a rank test over all (seed, lr) runs at a level fixed before the run",
            note=f"tau {tau.statistic:.3f}; seed means of Q per lr {np.round(means, 4).tolist()}; bounds "
                 f"{np.round(1 / LRS - 0.5, 3).tolist()}",
            xfail=_flat_q()))
        gap = 2.0 / hats["lr"]
        out += [
            claims.bound("hand-built hat minima: max |training loss - the trained net's| (same training loss)",
                         float(np.max(np.abs(hats["loss"] - ev["base_loss"]))), 1e-12,
                         "the hat vanishes at every training input, so only float64 rounding of O(1) sums differs",
                         role="consistency"),
            claims.bound("hand-built hat minima: min over lr of lr lambda_max / 2 (Q = Q_trained + 2(1/lr - 1/2))",
                         float(np.min(hats["sharpness"] / gap)), 1.0, upper=False,
                         why="[derived] Q above 1/lr - 1/2 forces lambda_max >= 1 + 2Q - ||R|| > 2/lr: GD at lr "
                             "cannot stay there (strict; measured ratio must be >= 1)",
                         note=f"Q / (1/lr - 1/2) {np.round(hats['Q'] / (1 / hats['lr'] - 0.5), 3).tolist()}, "
                              f"lr lambda_max / 2 {np.round(hats['sharpness'] / gap, 3).tolist()}"),
            claims.bound("hand-built hat minima: max of 1 + 2Q - ||R|| - lambda_max", float(np.max(
                1 + 2 * hats["Q"] - hats["R"] - hats["sharpness"])), 0.0,
                "[derived] the same exact lower bound, on minima GD did not produce", ),
        ]
        return out

    def figure(self, ev):
        runs = ev["runs"]
        fig, axes = figures.panels(self, 2, width=5.6, height=4.2, title="minima stability in function space")
        ax = axes[0]
        grid = np.linspace(-1.2, 1.2, 600)
        for key, label, color in (("example_small", f"lr = {LRS[0]:.3g}", "C0"),
                                  ("example", f"lr = {LRS[-1]:.3g}", "C1")):
            p = {k: jnp.asarray(v) for k, v in ev[key].items()}
            ax.plot(grid, np.asarray(relu_net(p, jnp.asarray(grid))), color=color, label=label)
        ax.plot(ev["X"], ev["y"], "ko", label="data")
        figures.axes_style(ax, "x", "f(x)", title="trained nets (seed 0)")
        ax.legend(fontsize=7)
        ax = axes[1]
        ax.plot(runs["lr"], runs["Q"], "o", color="C0", label=r"$\int|f''|g$ at GD minima")
        ax.plot(ev["hats"]["lr"], ev["hats"]["Q"], "x", color="C3", label="hand-built hat minima (unstable)")
        ax.plot(LRS, 1 / LRS - 0.5, "k--", label=r"$1/\eta - 1/2$")
        figures.axes_style(ax, r"learning rate $\eta$", r"$\int|f''(x)|g(x)dx$", logx=True, logy=True,
                           title="stability bound")
        ax.legend(fontsize=7)
        return fig


def _flat_q():
    from .harness import expected_failure

    return expected_failure(
        "on this data GD reaches a near-minimal-Q interpolant at every lr of the grid (the bound 1/lr - 1/2 >= 1.6 "
        "stays above the smallest Q an interpolant needs), so stability does not force Q down here; a regime where "
        "the bound binds (rough initializations, larger lr without divergence) is not built yet")
