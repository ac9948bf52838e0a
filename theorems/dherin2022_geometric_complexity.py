"""Dherin, Munn, Rosca, Barrett (NeurIPS 2022) and Dherin, Munn, Barrett (2021): geometric complexity
(docs/stability-sam-geometry.md section 7).

GC(f_theta, D) = (1/N) sum_i ||d f_theta(x_i)/dx||^2. Setup: 1-D regression (dataset "geometry_regression_1d",
N = 10 noisy samples of sin(pi x)), a tanh MLP 1-64-1 (dense first layer (W1, b1), linear last layer), loss
L = (1/(2N)) sum_i (f(x_i) - y_i)^2, LeCun-normal initializations from 16 seeds. Claims:

(a) GD's GC at near-interpolation decreases as the learning rate grows (both rates run to the same physical time
    T): a one-sided sign test over the seeds, the binomial critical value fixed before the runs;
(b) the IGR modified flow (order 2) reproduces GD's GC at a fixed time to O(h^2), gradient flow only to O(h):
    log-log slopes of |GC_flow(T) - GC_GD(T)| over a ladder of h;
(c) [derived; the paper's own statement could not be read here] for any network with a dense first layer,
    ||d f/dx||^2 <= ||W1||_2^2 ||d f/d b1||^2 at every input, hence GC <= ||W1||_2^2 (1/N) sum_i ||grad_theta
    f(x_i)||^2 and (1/N) sum_i r_i^2 ||d f(x_i)/dx||^2 <= ||W1||_2^2 (1/N) sum_i ||grad_theta l_i||^2 (r_i the
    residual, l_i = r_i^2 / 2: the per-example IGR penalty of SGD); checked at every saved iterate of the GD runs;
(d) the other regularizers the paper lists lower GC: explicit weight decay (mu/2)||theta||^2, a spectral-norm penalty
    (mu/2) sum_l ||W_l||_2^2, a smaller initialization scale, and label noise (fresh N(0, sigma^2) noise on the
    targets at every step), each run from the same 16 initializations at h = 0.05 to t = 1000 and compared with
    claim (a)'s plain GD run at h = 0.05: one sign test per regularizer, with (a)'s pre-registered critical count.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import dynamics as dyn
from dynamics.models.mlp import mlp_apply, mlp_init, mlp_loss
from dynamics.sweeps import simulate_sweep

from .common import budgets, claims, datasets, figures
from .harness import Theorem, expected_failure

DATA_SEED, INIT_SEED, WIDTH = 0, 1, 64
#: (a): two learning rates, run to the same physical time; h lambda_max(init) = 0.73 and 2.9 (lambda_max(init) =
#: 14.5: the larger rate starts above 2 / lambda_max and self-stabilizes; neither run diverges).
LR_PAIR = (0.05, 0.2)
SIGN_ALPHA = 0.01
#: (b): the ladder of learning rates and the physical time of the comparison.
LADDER = np.array([0.02, 0.01, 0.005, 0.0025])
FLOW_TIME = 1.0
FLOW_TOL = {"rtol": 1e-12, "atol": 1e-14}
#: (c): relative slack of the inequalities (float64 rounding of sums of O(10) terms of size O(1-100)).
BOUND_RTOL = 1e-12
#: (d): strengths fixed before the runs. mu = 1e-3 makes each penalty (~0.03 at init, ||theta||^2 ~ 65) small against
#: the initial loss (0.46) and dominant near interpolation (loss ~5e-3); init scale 0.5 vs LeCun's 1; the label noise
#: has the data's own noise level 0.3. The lanes: name, weight decay, spectral penalty, init scale, label noise.
REGULARIZERS = (("weight decay mu = 1e-3", 1e-3, 0.0, 1.0, 0.0),
                ("spectral-norm penalty mu = 1e-3", 0.0, 1e-3, 1.0, 0.0),
                ("initialization scale 0.5", 0.0, 0.0, 0.5, 0.0),
                ("label noise sigma = 0.3", 0.0, 0.0, 1.0, 0.3))


#: measured at the quick budget (first run, criterion fixed before it): 10 of 16 seeds, median GC 4.85 (h = 0.05)
#: vs 4.72 (h = 0.2): the direction holds in the median but is not significant; see docs section 7.
SIGN_XFAIL = expected_failure(
    "at equal physical time t = 1000 the GC gap between h = 0.05 and h = 0.2 (median 3%) is smaller than its "
    "seed-to-seed spread: the IGR penalty (h/4)||grad L||^2 fades as the loss nears interpolation, so the bias "
    "accumulated by h = 0.2 (which starts above the stability edge, h lambda_max(init) = 2.9, and self-stabilizes) "
    "is too small to order every seed")


def sign_test_critical(n, alpha=SIGN_ALPHA):
    """Smallest k with P(Binomial(n, 1/2) >= k) <= alpha: the one-sided sign test's critical count."""
    return int(next(k for k in range(n + 1) if stats.binom.sf(k - 1, n, 0.5) <= alpha))


def model(params, x):
    """f(params, x) for one input x of shape (1,): output shape (1,)."""
    return mlp_apply(params, x[None, :])[0]


def problem():
    X, y = datasets.dataset("geometry_regression_1d", seed=DATA_SEED)
    return X, y, mlp_loss(X, y, "tanh", "mse", half=True)


def bound_terms(params, X, y):
    """[L, GC, ||W1||_2^2 mean ||df/db1||^2, ||W1||_2^2 mean ||grad_theta f||^2, mean r^2 ||df/dx||^2,
    ||W1||_2^2 mean ||grad_theta l_i||^2]: the two sides of the claims (c), input derivatives by
    `geometric_complexity` (forward mode in x), parameter derivatives by reverse mode."""
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    W1 = params[0][0]
    w1 = jnp.linalg.norm(W1, 2) ** 2

    def one(x, target):
        grads = jax.grad(lambda p: model(p, x)[0])(params)
        r = model(params, x)[0] - target
        slope = jax.grad(lambda x_: model(params, x_)[0])(x)
        theta2 = sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(grads))
        return jnp.stack([jnp.sum(grads[0][1] ** 2), theta2, r**2 * jnp.sum(slope**2), r**2 * theta2])

    per = jax.vmap(one)(Xj, yj)
    loss = 0.5 * jnp.mean((jax.vmap(lambda x: model(params, x)[0])(Xj) - yj) ** 2)
    gc = dyn.geometric_complexity(model, params, Xj)
    return jnp.stack([loss, gc, w1 * jnp.mean(per[:, 0]), w1 * jnp.mean(per[:, 1]), jnp.mean(per[:, 2]),
                      w1 * jnp.mean(per[:, 3])])


def spectral_penalty(params):
    """sum_l ||W_l||_2^2 over the weight matrices (biases excluded). For the 1-64-1 network every W_l is a row or a
    column, so its spectral norm is its Euclidean norm (computed as such: an SVD per step would dominate the run)."""
    if any(min(W.shape) != 1 for W, _ in params):
        raise ValueError("spectral_penalty is written for rank-one weight matrices (a 1-h-1 network)")
    return sum(jnp.sum(W**2) for W, _ in params)


def regularized_runs(keys, X, y, lr, steps):
    """GC at step ``steps`` of GD with each of `REGULARIZERS`, from the initializations ``keys`` (scaled by the
    lane's init scale): one compiled, vmapped lax loop over (regularizer, seed) lanes. Label noise draws fresh
    targets y + sigma xi_k at every step (key folded with the step). Returns (len(REGULARIZERS), seeds) GC values
    and the final data losses."""
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    coeffs = jnp.asarray([r[1:] for r in REGULARIZERS])

    def data_loss(p, targets):
        return 0.5 * jnp.mean((mlp_apply(p, Xj)[:, 0] - targets) ** 2)

    def one(c, key):
        decay, spectral, scale, noise = c
        params = mlp_init(key, (1, WIDTH, 1), scale)

        def step(k, p):
            targets = yj + noise * jax.random.normal(jax.random.fold_in(key, k), yj.shape)
            objective = lambda q: (data_loss(q, targets) + 0.5 * decay * sum(jnp.sum(a**2) for a in jax.tree_util.
                                   tree_leaves(q)) + 0.5 * spectral * spectral_penalty(q))
            return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, jax.grad(objective)(p))

        final = jax.lax.fori_loop(0, steps, step, params)
        return dyn.geometric_complexity(model, final, Xj), data_loss(final, yj)

    lanes = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))
    gc, losses = jax.jit(lanes)(coeffs, keys)
    return np.asarray(gc), np.asarray(losses)


#: (d): measured at the quick budget (first run, strengths and criterion fixed before it). A post-hoc sweep at other
#: strengths (same seeds, t = 1000; not a claim) is quoted to locate the cause; see docs section 7.
REGULARIZER_XFAIL = {
    "weight decay mu = 1e-3": expected_failure(
        "0 of 16 seeds lower: median GC 5.36 vs 4.85 with the data loss still near interpolation (6e-3 vs 4e-3); "
        "GC is not monotone in mu here: the sweep gave 4.75 at mu = 3e-3 (6 of 16) and 2.27 at 1e-2 (16 of 16), "
        "where the data loss is 10x plain GD's: the penalty lowers GC only once it stops the interpolation"),
    "spectral-norm penalty mu = 1e-3": expected_failure(
        "0 of 16 seeds lower: median GC 5.52 vs 4.85 at a data loss of 6e-3; as for weight decay, the sweep "
        "gave 16 of 16 lower (median 2.33) only at mu = 1e-2, where the data loss is 0.039 (no interpolation)"),
    "initialization scale 0.5": expected_failure(
        "1 of 16 seeds lower: median GC 5.12 vs 4.85, although the scale-0.5 nets start 170x lower (GC 0.004 vs "
        "0.68 at init); the sweep gave 6 of 16 at scale 0.25 and the OPPOSITE order at scale 2 (16 of 16 lower "
        "than scale 1, median 3.37): at equal training time on this near-interpolated regression the final GC is "
        "not ordered by the initial one; the cause is not established"),
    "label noise sigma = 0.3": expected_failure(
        "13 of 16 seeds lower (median GC 4.59 vs 4.85), one short of the critical 14: the direction holds in the "
        "median but the implicit penalty of label noise (O(h sigma^2) per unit time) moves GC by ~5%, within the "
        "seed-to-seed spread at t = 1000 (sigma = 0.1: 11 of 16)"),
}


class Dherin2022(Theorem):
    id = "dherin2022_geometric_complexity"
    reference = ("Dherin, Munn, Rosca, Barrett: Why neural networks find simple solutions: the many regularizers of "
                 "geometric complexity, NeurIPS 2022 (arXiv:2209.13083); Dherin, Munn, Barrett: The geometric "
                 "Occam's razor implicit in deep learning, 2021 (arXiv:2111.15090)")
    statement = (
        "Gradient descent's implicit gradient regularization puts pressure on the geometric complexity GC = (1/N) "
        "sum_i ||grad_x f(x_i)||^2 of the learned function, more so the larger the learning rate: GD's GC near "
        "interpolation decreases as the learning rate grows; GD follows the IGR modified flow, so the flow tracks "
        "GD's GC to O(h^2) while gradient flow misses it at O(h); for a network with a dense first layer the "
        "model gradient (and the per-example loss gradient, the IGR penalty) bounds GC; and the other regularizers "
        "the paper lists (weight decay, spectral norm, a smaller initialization, label noise) lower GC.")
    hypotheses = (
        "A tanh MLP 1-64-1 with a dense first layer and a linear last layer, squared loss, full-batch GD that "
        f"does not diverge (largest h = {LR_PAIR[1]}, h lambda_max(init) = 2.9: it self-stabilizes).",
        "(a) compares the two rates at the same physical time, long enough that both nearly interpolate "
        "(losses reported); the sign test's critical count is computed from n and alpha before the runs.",
        f"(b) BEA regime: h lambda_max <= {LADDER[0]} * lambda_max(init) on the ladder; flows to rtol 1e-12.",
        "(d) each regularizer alone, strengths fixed before the runs (REGULARIZERS), same initializations, rate and "
        "time as (a)'s h = 0.05 run; the same sign test.",
    )
    seed = INIT_SEED

    def run(self, budget="quick"):
        X, y, loss = problem()
        seeds, horizon = budgets.by_budget(budget, (16, 1000.0), (32, 4000.0))
        critical = sign_test_critical(seeds)                               # fixed before any run
        keys = jax.random.split(jax.random.PRNGKey(INIT_SEED), seeds)
        init0 = mlp_init(keys[0], (1, WIDTH, 1))
        sharpness = float(dyn.sharpness(loss, init0))

        def make(b):
            return dyn.GradientDescent(loss, b["lr"]), mlp_init(b["key"], (1, WIDTH, 1))

        def observe(t, p):
            return bound_terms(p, X, y)

        saves = np.linspace(0.0, horizon, 21)
        terms = []
        for lr in LR_PAIR:
            grid = np.rint(saves / lr) * lr
            traj = simulate_sweep(make, {"key": keys, "lr": jnp.full(seeds, lr)}, grid, observe=observe)
            terms.append(np.asarray(traj.ys))                               # (saves, seeds, 6)

        # (b): one seed, GD on the ladder vs the IGR flow (one compilation for all h) and gradient flow
        gd_gc, igr_gc = [], []
        for h in LADDER:
            steps = int(round(FLOW_TIME / h))
            gd = dyn.simulate(dyn.GradientDescent(loss, h), init0, np.array([0.0, steps * h]))
            gd_gc.append(float(dyn.geometric_complexity(model, jax.tree_util.tree_map(lambda a: a[-1], gd.ys), X)))
            igr = dyn.simulate(dyn.ModifiedFlow(loss, h, 2), init0, np.array([0.0, FLOW_TIME]),
                               solver=diffrax.Dopri8(), **FLOW_TOL)
            igr_gc.append(float(dyn.geometric_complexity(model, jax.tree_util.tree_map(lambda a: a[-1], igr.ys), X)))
        gf = dyn.simulate(dyn.GradientFlow(loss), init0, np.array([0.0, FLOW_TIME]), solver=diffrax.Dopri8(),
                          **FLOW_TOL)
        gf_gc = float(dyn.geometric_complexity(model, jax.tree_util.tree_map(lambda a: a[-1], gf.ys), X))
        reg_gc, reg_loss = regularized_runs(keys, X, y, LR_PAIR[0], int(round(horizon / LR_PAIR[0])))
        return {"reg_gc": reg_gc, "reg_loss": reg_loss,
                "lrs": np.array(LR_PAIR), "times": saves, "terms": np.stack(terms), "critical": critical,
                "alpha": SIGN_ALPHA, "sharpness": sharpness, "ladder": LADDER, "flow_time": FLOW_TIME,
                "gd_gc": np.array(gd_gc), "igr_gc": np.array(igr_gc), "gf_gc": gf_gc, "X": X, "y": y}

    def check(self, ev):
        terms, lrs = ev["terms"], ev["lrs"]
        seeds = terms.shape[2]
        final = terms[:, -1]                                                # (lr, seeds, 6)
        wins = int(np.sum(final[1, :, 1] < final[0, :, 1]))
        out = [
            claims.bound(
                f"(a) seeds whose GC at t = {ev['times'][-1]:g} is lower at h = {lrs[1]:g} than at h = {lrs[0]:g}",
                wins, int(ev["critical"]),
                f"one-sided sign test at alpha = {ev['alpha']:g}: under 'the learning rate does not lower GC' "
                f"(each sign a fair coin) P(>= {int(ev['critical'])} of {seeds}) <= {ev['alpha']:g}", upper=False,
                note=f"median GC {np.median(final[0, :, 1]):.3f} (h = {lrs[0]:g}) vs {np.median(final[1, :, 1]):.3f} "
                     f"(h = {lrs[1]:g}); largest final loss {final[:, :, 0].max():.2e}, median initial loss "
                     f"{np.median(terms[0, 0, :, 0]):.2e}",
                xfail=SIGN_XFAIL),
        ]
        h = ev["ladder"]
        scale = float(h.max() * ev["sharpness"])
        for name, order, values in (("IGR modified flow", 2, ev["igr_gc"]), ("gradient flow", 1, ev["gf_gc"])):
            gaps = np.abs(np.asarray(values) - ev["gd_gc"])
            out.append(claims.slope(
                f"(b) {name}: slope of log |GC_flow(T) - GC_GD(T)| vs log h, T = {ev['flow_time']:g}", h, gaps,
                float(order), 0.15, claims.slope_why(order, h, scale, "h lambda_max(init)"),
                note=f"gaps {gaps[0]:.2e} -> {gaps[-1]:.2e}"))
        lhs_rhs = ((1, 2, "GC <= ||W1||_2^2 mean_i ||df/db1||^2"),
                   (2, 3, "||W1||_2^2 mean_i ||df/db1||^2 <= ||W1||_2^2 mean_i ||grad_theta f||^2"),
                   (4, 5, "mean_i r_i^2 ||df/dx||^2 <= ||W1||_2^2 mean_i ||grad_theta l_i||^2"))
        for lo, hi, text in lhs_rhs:
            excess = np.max((terms[..., lo] - terms[..., hi]) / terms[..., hi])
            ratio = np.median(terms[..., lo] / terms[..., hi])
            out.append(claims.bound(
                f"(c) {text} at all {terms.shape[1]} saves x {seeds} seeds x {len(lrs)} rates (max relative excess)",
                float(excess), BOUND_RTOL,
                "an inequality at every theta [derived: df/dx = W1^T df/db1 for a dense first layer]; the two sides "
                "are computed by different derivatives (forward in x, reverse in theta): float64 rounding ~1e-15",
                note=f"median ratio lhs / rhs {ratio:.3f}"))
        base = final[0, :, 1]                                                # plain GD at h = LR_PAIR[0]
        for (name, *_), gc, loss in zip(REGULARIZERS, ev["reg_gc"], ev["reg_loss"]):
            out.append(claims.bound(
                f"(d) {name}: seeds whose GC at t = {ev['times'][-1]:g} (h = {lrs[0]:g}) is lower than plain GD's",
                int(np.sum(gc < base)), int(ev["critical"]),
                f"the same one-sided sign test as (a), alpha = {ev['alpha']:g}, critical count fixed before the runs",
                upper=False, note=f"median GC {np.median(gc):.3f} vs {np.median(base):.3f}; median final data loss "
                                  f"{np.median(loss):.2e} vs {np.median(final[0, :, 0]):.2e}",
                xfail=REGULARIZER_XFAIL.get(name)))
        return out

    def figure(self, ev):
        terms, lrs = ev["terms"], ev["lrs"]
        fig, axes = figures.panels(self, 4, width=4.6, height=3.8, title="geometric complexity of a 1-D MLP")
        ax = axes[0]
        for i, lr in enumerate(lrs):
            ax.plot(ev["times"], np.median(terms[i, :, :, 1], axis=1), "o-", color=f"C{i}", label=f"GD h = {lr:g}")
        figures.axes_style(ax, "physical time t", "GC (median over seeds)", title="(a) GC along training")
        ax.legend(fontsize=7)
        ax = axes[1]
        h = ev["ladder"]
        for name, values, order, c in (("IGR flow", ev["igr_gc"], 2, "C2"), ("GF", ev["gf_gc"], 1, "C3")):
            gaps = np.abs(np.asarray(values) - ev["gd_gc"])
            ax.plot(h, gaps, "o-", color=c, label=name)
            ax.plot(h, gaps[-1] * (h / h[-1]) ** order, "--", lw=1, color=c, label=rf"$\propto h^{order}$")
        figures.axes_style(ax, "learning rate h", r"$|GC_{flow}(T) - GC_{GD}(T)|$", logx=True, logy=True,
                           title="(b) flows vs GD")
        ax.legend(fontsize=7)
        ax = axes[2]
        gc = terms[..., 1].ravel()
        ax.plot(gc, terms[..., 3].ravel(), ".", ms=3, label=r"$\|W_1\|^2$ mean $\|\nabla_\theta f\|^2$")
        ax.plot(gc, terms[..., 2].ravel(), ".", ms=3, label=r"$\|W_1\|^2$ mean $\|\partial_{b_1} f\|^2$")
        top = terms[..., 1].max()
        ax.plot([0, top], [0, top], "k--", lw=1, label="GC")
        figures.axes_style(ax, "GC", "bound", title="(c) bounds at every save")
        ax.legend(fontsize=7)
        ax = axes[3]
        base = terms[0, -1, :, 1]
        for i, ((name, *_), gc) in enumerate(zip(REGULARIZERS, ev["reg_gc"])):
            ax.plot(base, gc, "o", ms=4, color=f"C{i}", label=name)
        lo, hi = min(base.min(), ev["reg_gc"].min()), max(base.max(), ev["reg_gc"].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        figures.axes_style(ax, f"GC, plain GD (h = {lrs[0]:g})", "GC, regularized", title="(d) below the diagonal: lower")
        ax.legend(fontsize=6)
        return fig
