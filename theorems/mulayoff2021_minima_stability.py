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

The 2-D case (Nacson, Mulayoff, Ongie, Michaeli & Soudry, ICLR 2023): f(x) = sum_k v_k relu(w_k . x + b_k) + c on
x in R^2 (dataset "stability_relu_regression_2d", n = 10), trained at the step sizes LRS_2D in the same sweep (the
1-D lanes run as 2-D nets on the inputs (x, 0) with w_k2 = 0 at init: that column's gradient is exactly 0, so they
are the univariate runs; their 6 data rows are padded to 10 with rows of weight 0). The Laplacian
of f is a sum of line measures, Laplacian f = sum_L m_L delta_L, and Q_2 = sum_L |m_L| g(L) =
`relu_laplacian_norm` with the line weight g(L) = min(g~(u, t), g~(-u, -t)), g~(u, t) = P(u . X > t)^2
E[u . X - t | u . X > t] sqrt(1 + ||E[X | u . X > t]||^2); the same derivation gives lambda_max >= 1 + 2 Q_2 - ||R||_2.
The hand-built minimum adds the hat along a direction u inside a gap of the projections u . x_i.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.flatten_util import ravel_pytree

import dynamics as dyn
from dynamics.measure import (radon_stability_weight, relu_curvature_norm, relu_hyperplanes, relu_laplacian_norm,
                              relu_net, sharpness, stability_weight)
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
#: the 2-D case's step sizes (its lanes run in the same sweep as the 1-D ones, same width and steps).
LRS_2D = np.array([0.15, 0.3, 0.45])
HAT_ANGLE = 0.7                                              # direction (cos, sin) of the hand-built 2-D hat


class PaddedLoss(eqx.Module):
    """(1/2m) sum_i present_i (f(x_i) - y_i)^2, m = sum_i present_i: the training loss of the rows with present = 1.
    A module, so its arrays are arguments: one compilation of the dense Hessians serves every data set of one padded
    shape (the 1-D data embedded as (x, 0) and the 2-D data)."""

    X: jax.Array
    y: jax.Array
    present: jax.Array

    def __call__(self, p):
        return 0.5 * jnp.sum(self.present * (relu_net(p, self.X) - self.y) ** 2) / jnp.sum(self.present)


def loss_of(X, y, n=None):
    """The `PaddedLoss` of (X, y), padded with zero rows to ``n`` rows (default: none)."""
    extra = (len(y) if n is None else n) - len(y)
    rows = lambda a: jnp.asarray(np.concatenate([a, np.zeros((extra, *np.shape(a)[1:]))]))  # noqa: E731
    return PaddedLoss(rows(np.asarray(X, np.float64)), rows(np.asarray(y, np.float64)), rows(np.ones(len(y))))


def initial(key, width=WIDTH, scale=INIT_SCALE, mask=None):
    """w ~ scale N(0, 1), knots -b/w ~ U[-1, 1], v ~ scale N(0, 1/K), c = 0 (float64). With ``mask`` (d,): a net on
    R^d, w ~ scale N(0, I_d) * mask, its lines w . x + b = 0 through anchors ~ U[-1, 1]^d * mask."""
    k1, k2, k3 = jax.random.split(key, 3)
    shape = (width,) if mask is None else (width, len(mask))
    w = scale * jax.random.normal(k1, shape, jnp.float64) * (1.0 if mask is None else mask)
    pre = w * jax.random.uniform(k2, shape, jnp.float64, -1.0, 1.0)
    b = -(pre if mask is None else jnp.sum(pre, axis=1))
    v = scale * jax.random.normal(k3, (width,), jnp.float64) / np.sqrt(width)
    return {"w": w, "b": b, "v": v, "c": jnp.zeros((), jnp.float64)}


def _make(lane):
    """(GD with step 1 on lr L, init) for lane = (lr, key, X, y, present, mask): the same iterates as GD with step lr
    on L, the mean over the rows with present = 1 (rows with present = 0 pad a smaller data set to the lanes' n)."""
    lr, key, X, y, present, mask = lane
    loss = lambda p: lr * 0.5 * jnp.sum(present * (relu_net(p, X) - y) ** 2) / jnp.sum(present)  # noqa: E731
    return dyn.GradientDescent(loss, 1.0), initial(key, mask=mask)


def _lanes(lrs, seeds, key, X, y, mask, n):
    """Lanes lr-major: (lr, key, X, y, present, mask) for ``seeds`` keys split from ``key`` per lr, the data padded
    with zero rows (present = 0) to ``n`` rows."""
    B, extra = len(lrs) * seeds, n - len(y)
    rows = lambda a: jnp.broadcast_to(jnp.asarray(np.concatenate([a, np.zeros((extra, *a.shape[1:]))])),  # noqa: E731
                                      (B, n, *a.shape[1:]))
    return (jnp.repeat(jnp.asarray(lrs), seeds), jnp.tile(jax.random.split(key, seeds), (len(lrs), 1)), rows(X),
            rows(y), rows(np.ones(len(y))), jnp.broadcast_to(jnp.asarray(mask, jnp.float64), (B, len(mask))))


def pad(params, extra=3):
    """``params`` plus ``extra`` dead neurons (w = 0, b = -1, v = 0): f and its derivatives are unchanged and the
    Hessian gains zero rows and columns, so lambda_max and ||R||_2 are those of the net; it shares the shape of a net
    with a hat (one compilation of the dense Hessians for both)."""
    w = np.asarray(params["w"])
    dead = {"w": np.zeros((extra, *w.shape[1:])), "b": -np.ones(extra), "v": np.zeros(extra)}
    return {k: np.concatenate([np.asarray(v), dead[k]]) if k in dead else np.asarray(v) for k, v in params.items()}


@jax.jit
def _residual_hessian(params, X, weights):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: jnp.sum(weights * relu_net(unravel(f), X)))(flat)


def residual_norm(loss_fn, params):
    """||R||_2 for R = (1/m) sum_i r_i Hess_theta f(x_i) over the present rows of the `PaddedLoss` ``loss_fn`` at
    params (dense, eigvalsh; compiled once per shape)."""
    r = loss_fn.present * (relu_net(params, loss_fn.X) - loss_fn.y) / jnp.sum(loss_fn.present)
    return float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(_residual_hessian(params, loss_fn.X, r))))))


def hat_minimum(params, X, target, direction=None):
    """The trained net plus a hat s [relu(z - a) - 2 relu(z - m) + relu(z - c)], z = x (1-D) or u . x (2-D, u =
    ``direction``), strictly inside the widest gap of the (projected) data near the middle (a, c at 1/4 and 3/4 of the
    gap): f is unchanged at every training input, so the training loss is the same, and s is chosen so that the hat
    alone adds ``target`` to Q (to Q_2 in 2-D). Neuron scale sqrt(s) (balanced)."""
    z = X if direction is None else X @ direction
    Xs = np.sort(z)
    mid = np.argsort(np.abs(Xs[:-1] + Xs[1:]))[:3]               # the three gaps nearest the centre
    i = mid[np.argmax(np.diff(Xs)[mid])]
    lo, hi = Xs[i], Xs[i + 1]
    knots = lo + (hi - lo) * np.array([0.25, 0.5, 0.75])
    g = (stability_weight(X, knots) if direction is None else
         radon_stability_weight(X, np.tile(direction, (3, 1)), knots))
    s = target / float(np.sum(np.array([1.0, 2.0, 1.0]) * g))
    alpha = np.sqrt(s)
    w = alpha * (np.ones(3) if direction is None else np.tile(direction, (3, 1)))
    v = np.array([1.0, -2.0, 1.0]) * s / alpha
    hat = {"w": w, "b": -alpha * knots, "v": v}
    return {key: (np.concatenate([np.asarray(params[key]), hat[key]]) if key in hat else np.asarray(params[key]))
            for key in params}


def measure(loss_fn, X, params, lr, univariate=False):
    """loss, lambda_max (dense), Q, ||R||_2, lr and the smallest distance from a training input to a knot / neuron
    line (the Hessian exists where it is > 0), for the `PaddedLoss` ``loss_fn`` of the training inputs ``X``. Q: `relu_curvature_norm` for a univariate net (w: (K,), X: (n,)) or,
    with ``univariate``, for one embedded in 2-D (X = (x, 0), w[:, 1] = 0: Q of the first column); else
    `relu_laplacian_norm`."""
    p = {k: jnp.asarray(v) for k, v in params.items()}
    host, x = {k: np.asarray(v) for k, v in params.items()}, X
    if univariate and host["w"].ndim == 2:
        if np.any(host["w"][:, 1] != 0) or np.any(X[:, 1] != 0):
            raise ValueError("univariate=True needs a net embedded in 2-D: X[:, 1] = 0 and w[:, 1] = 0")
        host, x = {**host, "w": host["w"][:, 0]}, X[:, 0]
    if host["w"].ndim == 1:
        live = host["w"] != 0
        Q, gap = relu_curvature_norm(host, x), float(np.min(np.abs(-host["b"][live] / host["w"][live] - x[:, None])))
    else:
        normals, offsets, _ = relu_hyperplanes(host)
        Q, gap = relu_laplacian_norm(host, X), float(np.min(np.abs(normals @ X.T - offsets[:, None])))
    return {"loss": float(loss_fn(p)), "sharpness": float(sharpness(loss_fn, p, method="dense")), "Q": Q,
            "R": residual_norm(loss_fn, p), "lr": lr, "gap": gap}


def _measure_all(ends, X, y, lrs, seeds, direction, univariate, n):
    """runs: `measure` at every end point (padded, `pad`); hats: at each lr's first seed plus a hat along
    ``direction`` adding 2 (1/lr - 1/2) to Q; the loss padded to ``n`` rows."""
    loss_fn = loss_of(X, y, n)
    table = lambda rs: {key: np.array([r[key] for r in rs]) for key in rs[0]}  # noqa: E731
    rows = [measure(loss_fn, X, pad({k: v[j] for k, v in ends.items()}), float(lrs[j // seeds]), univariate)
            for j in range(len(lrs) * seeds)]
    hats = [measure(loss_fn, X, hat_minimum({k: v[i * seeds] for k, v in ends.items()}, X, 2.0 * (1.0 / lr - 0.5),
                                            direction), float(lr), univariate)
            for i, lr in enumerate(lrs)]
    return {"runs": table(rows), "hats": table(hats),
            "base_loss": np.array([rows[i * seeds]["loss"] for i in range(len(lrs))])}


class Mulayoff2021(Theorem):
    id = "mulayoff2021_minima_stability"
    reference = ("Mulayoff, Michaeli, Soudry: The Implicit Bias of Minima Stability: A View from Function Space, "
                 "NeurIPS 2021")
    statement = (
        "For a one-hidden-layer univariate ReLU net trained with the loss (1/2n) sum (f(x_i) - y_i)^2, every "
        "interpolating minimum that GD with step lr can be stable at (lambda_max <= 2/lr) satisfies int |f''(x)| g(x) "
        "dx <= 1/lr - 1/2, g(x) = min(g_-(x), g_+(x)), g_+(x) = P(X > x)^2 E[X - x | X > x] sqrt(1 + E[X | X > x]^2) "
        "(g_- mirrored); the bound shrinks as lr grows. Conversely a minimum with a larger quantity has lambda_max > "
        "2/lr. In 2-D (Nacson, Mulayoff, Ongie, Michaeli, Soudry, ICLR 2023) the same holds for the Laplacian: sum "
        "over the neuron lines L of |m_L| g(L) <= 1/lr - 1/2, Laplacian f = sum_L m_L delta_L, g(L) the line weight.")
    hypotheses = (
        "Full-batch GD, squared loss with the 1/(2n) normalization, output bias c trained (the '1' in 1 + 2Q).",
        f"Minimum reached: training loss <= {LOSS_REACHED:g}; the residual Hessian term ||R||_2 is measured and enters "
        "the bound as (1/2)||R||_2.",
        "Knots (neuron lines in 2-D) off the training inputs, where the loss is twice differentiable; checked per run: "
        "a run ending with a training input exactly on a knot or line (pre-activation 0 in float64) is not a minimum "
        "the theorem speaks about (in 2-D with n = 6 GD ended so in most runs: see the docs).",
    )
    seed = DATA_SEED

    def run(self, budget="quick"):
        steps, seeds, seeds_2d = budgets.by_budget(budget, (20_000, 4, 2), (100_000, 8, 4))
        X, y = datasets.dataset("stability_relu_regression", seed=DATA_SEED)
        X2, y2 = datasets.dataset("stability_relu_regression_2d", seed=DATA_SEED)
        Xe = np.c_[X, np.zeros_like(X)]                          # the 1-D data embedded as (x, 0)
        n = max(len(y), len(y2))
        one = _lanes(LRS, seeds, jax.random.PRNGKey(DATA_SEED + 1), Xe, y, (1.0, 0.0), n)
        two = _lanes(LRS_2D, seeds_2d, jax.random.PRNGKey(DATA_SEED + 2), X2, y2, (1.0, 1.0), n)
        traj = simulate_sweep(_make, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), one, two),
                              np.array([0.0, float(steps)]))
        ends = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[-1], traj.ys)
        B = len(LRS) * seeds
        first, second = ({k: v[:B] for k, v in ends.items()}, {k: v[B:] for k, v in ends.items()})
        return {"X": X, "y": y, "seeds": seeds, "steps": steps,
                **_measure_all(first, Xe, y, LRS, seeds, np.array([1.0, 0.0]), True, n),
                "example": _column(first, (len(LRS) - 1) * seeds), "example_small": _column(first, 0),
                "2d": {"X": X2, "y": y2, "seeds": seeds_2d,
                       **_measure_all(second, X2, y2, LRS_2D, seeds_2d,
                                      np.array([np.cos(HAT_ANGLE), np.sin(HAT_ANGLE)]), False, n)}}

    def check(self, ev):
        out = _stability_claims(ev, LRS, "", "Q", "knots")
        runs = ev["runs"]
        reached = (runs["loss"] <= LOSS_REACHED) & (runs["gap"] > 0)
        lr, Q = runs["lr"][reached], runs["Q"][reached]
        tau = scipy.stats.kendalltau(lr, Q, alternative="less")
        means = [float(np.mean(Q[lr == v])) for v in LRS]
        out.append(claims.bound(
            f"one-sided Kendall tau test that Q decreases with lr: p-value (level {LEVEL})", float(tau.pvalue), LEVEL,
            "a rank test over all (seed, lr) runs at a level fixed before the run",
            note=f"tau {tau.statistic:.3f}; seed means of Q per lr {np.round(means, 4).tolist()}; bounds "
                 f"{np.round(1 / LRS - 0.5, 3).tolist()}",
            xfail=_flat_q()))
        return out + _stability_claims(ev["2d"], LRS_2D, "2-D (Nacson et al. 2023): ", "Q_2", "neuron lines")

    def figure(self, ev):
        runs = ev["runs"]
        fig, axes = figures.panels(self, 3, width=5.0, height=4.2, title="minima stability in function space")
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
        ax, two = axes[2], ev["2d"]
        ax.plot(two["runs"]["lr"], two["runs"]["Q"], "o", color="C0", label="GD minima")
        ax.plot(two["hats"]["lr"], two["hats"]["Q"], "x", color="C3", label="hand-built hat minima (unstable)")
        ax.plot(LRS_2D, 1 / LRS_2D - 0.5, "k--", label=r"$1/\eta - 1/2$")
        figures.axes_style(ax, r"learning rate $\eta$", r"$\sum_L |m_L|\, g(L)$", logx=True, logy=True,
                           title="2-D: Laplacian on the neuron lines")
        ax.legend(fontsize=7)
        return fig


def _column(ends, j):
    """Lane j of the embedded 1-D runs as a univariate net (w: its first column)."""
    return {k: (v[j][:, 0] if k == "w" else v[j]) for k, v in ends.items()}


def _stability_claims(part, lrs, prefix, q, where):
    """The claims shared by the 1-D and the 2-D case on ``part`` (runs, hats, base_loss): minima reached, linear
    stability, the bound with its tightness, the derived sharpness lower bound, and the hand-built unstable minima."""
    runs, hats = part["runs"], part["hats"]
    reached = (runs["loss"] <= LOSS_REACHED) & (runs["gap"] > 0)
    gap = float(np.min(runs["gap"]))
    out = [claims.bound(f"{prefix}fraction of runs that reach a minimum (loss <= {LOSS_REACHED:g}, {where} off the "
                        "data)", float(np.mean(reached)), 0.75, upper=False,
                        why="the claims below are about minima: they are evaluated on the runs that reached one, "
                            "and at least 3/4 of the runs must (else the check is vacuous)",
                        role="consistency", note=f"losses max {runs['loss'].max():.2e}, median "
                                                 f"{np.median(runs['loss']):.2e}; min {where}-data distance {gap:.2e}")]
    lr, S, Q, R = (runs[k][reached] for k in ("lr", "sharpness", "Q", "R"))
    bound = 1.0 / lr - 0.5
    per_lr = [float(np.max((Q / bound)[lr == v])) if np.any(lr == v) else np.nan for v in lrs]
    out += [
        claims.bound(f"{prefix}max over minima of lr lambda_max / 2 (linear stability at the end)",
                     float(np.max(lr * S / 2)), 1.0 + EDGE_BAND,
                     "GD cannot stay where lr lambda_max > 2; runs ending at the edge of stability oscillate "
                     "about lr lambda_max = 2 with a self-stabilizing overshoot, allowed up to 1%",
                     role="consistency"),
        claims.bound(f"{prefix}max over minima of {q} - (1/lr - 1/2) - ||R||/2 - 0.01/lr  (the stability bound)",
                     float(np.max(Q - bound - R / 2 - EDGE_BAND / lr)), 0.0,
                     f"[derived] lambda_max >= 1 + 2{q} - ||R|| with lambda_max <= (2 + 2 EDGE_BAND)/lr; no slack",
                     note=f"tightness {q} / (1/lr - 1/2): max {np.max(Q / bound):.3f}, per lr "
                          f"{np.round(per_lr, 3).tolist()} (lr {np.round(lrs, 3).tolist()}); max ||R|| {R.max():.1e}; "
                          f"{int(reached.sum())} of {reached.size} runs"),
        claims.bound(f"{prefix}max over minima of 1 + 2{q} - ||R|| - lambda_max  (the derived sharpness lower bound)",
                     float(np.max(1 + 2 * Q - R - S)), 0.0,
                     "[derived] Jensen on the mean parameter gradient plus 2ab <= a^2 + b^2; exact, no slack",
                     note=f"ratio (1 + 2{q}) / lambda_max: max {np.max((1 + 2 * Q) / S):.3f}"),
    ]
    edge = 2.0 / hats["lr"]
    return out + [
        claims.bound(f"{prefix}hand-built hat minima: max |training loss - the trained net's| (same training loss)",
                     float(np.max(np.abs(hats["loss"] - part["base_loss"]))), 1e-12,
                     "the hat vanishes at every training input, so only float64 rounding of O(1) sums differs",
                     role="consistency"),
        claims.bound(f"{prefix}hand-built hat minima: min over lr of lr lambda_max / 2 ({q} = {q}_trained + "
                     "2(1/lr - 1/2))", float(np.min(hats["sharpness"] / edge)), 1.0, upper=False,
                     why=f"[derived] {q} above 1/lr - 1/2 forces lambda_max >= 1 + 2{q} - ||R|| > 2/lr: GD at lr "
                         "cannot stay there (strict; measured ratio must be >= 1)",
                     note=f"{q} / (1/lr - 1/2) {np.round(hats['Q'] / (1 / hats['lr'] - 0.5), 3).tolist()}, "
                          f"lr lambda_max / 2 {np.round(hats['sharpness'] / edge, 3).tolist()}"),
        claims.bound(f"{prefix}hand-built hat minima: max of 1 + 2{q} - ||R|| - lambda_max", float(np.max(
            1 + 2 * hats["Q"] - hats["R"] - hats["sharpness"])), 0.0,
            "[derived] the same exact lower bound, on minima GD did not produce"),
    ]


def _flat_q():
    from .harness import expected_failure

    return expected_failure(
        "on this data GD reaches a near-minimal-Q interpolant at every lr of the grid (the bound 1/lr - 1/2 >= 1.6 "
        "stays above the smallest Q an interpolant needs), so stability does not force Q down here; a regime where "
        "the bound binds (rough initializations, larger lr without divergence) is not built yet")
