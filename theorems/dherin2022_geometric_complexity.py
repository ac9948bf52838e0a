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
(a') the same direction in the setting of the paper's experiments, classification: a tanh MLP 2-64-2 on 2-D XOR
     data (dataset "geometry_xor_2d", N = 64) under mean cross-entropy, GD at h = 0.1 and h = 1 to the same physical
     time, GC of the logits (Frobenius norm of the 2x2 input Jacobian); the same sign test;
(d) the other regularizers the paper lists lower GC in that classification setting: explicit weight decay
    (mu/2)||theta||^2, a spectral-norm penalty (mu/2) sum_l ||W_l||_2^2, a smaller initialization scale, and label
    noise (each label replaced, with probability p at every step, by a uniformly drawn class), each alone from the
    same initializations as (a')'s h = 0.1 run, to the same time; one sign test per regularizer.

The 1-D regression was the first setting for (d) too: there the four regularizers did not lower GC at the strengths
fixed before the runs (docs section 7.1 keeps those numbers); (a) stays an expected failure with its reason.
"""

import diffrax
import matplotlib.ticker
import jax
import jax.numpy as jnp
import numpy as np

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
#: (a'), (d): the classification setting of the paper's experiments (cross-entropy), on 2-D XOR data with a tanh MLP
#: 2-64-2, every lane run to the same physical time. The design (data, width, time, rates, strengths, the sign
#: test) was fixed on development seeds (PRNGKeys 1000, 2000, 3000), then run once on the theorem's seeds. Lanes:
#: name, learning rate, weight decay, spectral penalty, init scale, label-noise probability; the first is the base.
CLASS_WIDTH = 64
CLASS_LANES = (("plain GD h = 0.1", 0.1, 0.0, 0.0, 1.0, 0.0),
               ("learning rate h = 1", 1.0, 0.0, 0.0, 1.0, 0.0),
               ("weight decay mu = 1e-3", 0.1, 1e-3, 0.0, 1.0, 0.0),
               ("spectral-norm penalty mu = 1e-3", 0.1, 0.0, 1e-3, 1.0, 0.0),
               ("initialization scale 0.5", 0.1, 0.0, 0.0, 0.5, 0.0),
               ("label noise p = 0.2", 0.1, 0.0, 0.0, 1.0, 0.2))
HELDOUT = 400


#: measured at the quick budget (first run, criterion fixed before it): 10 of 16 seeds, median GC 4.85 (h = 0.05)
#: vs 4.72 (h = 0.2): the direction holds in the median but is not significant; see docs section 7.
SIGN_XFAIL = expected_failure(
    "on this noisy 1-D regression h = 0.2 ends at a much flatter point (median sharpness 8.4 vs 14.5, under its "
    "2/h = 10: the stability constraint binds) yet its GC at the data is only 3% lower in the median, within the "
    "seed-to-seed spread: flatness in theta does not order GC at the data points here (development runs at matched "
    "training loss gave 14/16 at loss 5e-3 and 0/16 at 2e-3: no robust order). In the classification setting of "
    "the paper's experiments the same direction holds: claim (a')")


def model(params, x):
    """f(params, x) for one input x of shape (d,): the MLP's output, shape (k,)."""
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
    """sum_l ||W_l||_2^2 over the weight matrices (biases excluded): ||W||_2^2 is the largest eigenvalue of the
    smaller Gram matrix (W^T W or W W^T; 2 x 2 for the XOR network, far cheaper per step than an SVD). Its gradient
    2 W v v^T (or 2 u u^T W) needs a simple top eigenvalue, which holds almost surely."""
    def top(W):
        gram = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
        return jnp.linalg.eigvalsh(gram)[-1]

    return sum(top(W) for W, _ in params)


def classification_runs(keys, X, y, X_heldout, horizon):
    """Each lane of `CLASS_LANES` from the initializations ``keys`` (scaled by the lane's init scale), full-batch GD
    on the mean cross-entropy plus the lane's penalties, round(horizon / lr) steps: one compiled, vmapped lax loop
    over (lane, seed). Label noise replaces each label, independently with the lane's probability at every step, by
    a uniformly drawn class (key folded with the step). Returns (lanes, seeds) arrays: GC on the training inputs,
    GC on ``X_heldout``, final clean cross-entropy, final training accuracy."""
    Xj, yj, Xh = jnp.asarray(X), jnp.asarray(y), jnp.asarray(X_heldout)
    classes = int(np.max(y)) + 1

    def cross_entropy(p, labels):
        return mlp_loss(Xj, labels, loss="cross_entropy")(p)

    def one(c, key):
        lr, decay, spectral, scale, noise = c
        params = mlp_init(key, (X.shape[1], CLASS_WIDTH, classes), scale)

        def step(k, p):
            flip, draw = jax.random.split(jax.random.fold_in(key, k))
            labels = jnp.where(jax.random.uniform(flip, yj.shape) < noise,
                               jax.random.randint(draw, yj.shape, 0, classes), yj)
            objective = lambda q: (cross_entropy(q, labels) + 0.5 * decay * sum(
                jnp.sum(a**2) for a in jax.tree_util.tree_leaves(q)) + 0.5 * spectral * spectral_penalty(q))
            return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, jax.grad(objective)(p))

        final = jax.lax.fori_loop(0, jnp.round(horizon / lr).astype(int), step, params)
        accuracy = jnp.mean(jnp.argmax(mlp_apply(final, Xj), axis=1) == yj)
        return (dyn.geometric_complexity(model, final, Xj), dyn.geometric_complexity(model, final, Xh),
                cross_entropy(final, yj), accuracy)

    coeffs = jnp.asarray([lane[1:] for lane in CLASS_LANES])
    lanes = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))
    return tuple(np.asarray(a) for a in jax.jit(lanes)(coeffs, keys))


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
        "(a'), (d) cross-entropy on XOR data, every lane to the same physical time (plain GD separates the data: "
        "training accuracy reported); each regularizer alone, strengths fixed on development seeds (CLASS_LANES).",
    )
    seed = INIT_SEED

    def run(self, budget="quick"):
        X, y, loss = problem()
        seeds, horizon = budgets.by_budget(budget, (16, 1000.0), (32, 4000.0))
        critical = claims.sign_test_critical(seeds, SIGN_ALPHA)            # fixed before any run
        keys = jax.random.split(jax.random.PRNGKey(INIT_SEED), seeds)
        init0 = mlp_init(keys[0], (1, WIDTH, 1))
        sharpness = float(dyn.sharpness(loss, init0))

        def make(b):
            return dyn.GradientDescent(loss, b["lr"]), mlp_init(b["key"], (1, WIDTH, 1))

        def observe(t, p):
            return {"terms": bound_terms(p, X, y), "params": p}

        saves = np.linspace(0.0, horizon, 21)
        terms, final_sharpness = [], []                                     # sharpness: reported for (a)
        sharpness_of = jax.jit(jax.vmap(lambda p: dyn.sharpness(loss, p)))
        for lr in LR_PAIR:
            grid = np.rint(saves / lr) * lr
            traj = simulate_sweep(make, {"key": keys, "lr": jnp.full(seeds, lr)}, grid, observe=observe)
            terms.append(np.asarray(traj.ys["terms"]))                      # (saves, seeds, 6)
            finals = jax.tree_util.tree_map(lambda a: a[-1], traj.ys["params"])
            final_sharpness.append(np.asarray(sharpness_of(finals)))

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
        Xc, yc = datasets.dataset("geometry_xor_2d", seed=DATA_SEED)
        heldout = datasets.dataset("geometry_xor_2d", seed=DATA_SEED + 1, n=HELDOUT)[0]
        class_time = budgets.by_budget(budget, 200.0, 1000.0)
        class_gc, class_heldout, class_loss, class_acc = classification_runs(keys, Xc, yc, heldout, class_time)
        return {"class_gc": class_gc, "class_heldout_gc": class_heldout, "class_loss": class_loss,
                "class_accuracy": class_acc, "class_time": class_time,
                "lrs": np.array(LR_PAIR), "times": saves, "terms": np.stack(terms),
                "final_sharpness": np.stack(final_sharpness), "critical": critical,
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
                     f"(h = {lrs[1]:g}); median final sharpness {np.median(ev['final_sharpness'][0]):.2f} vs "
                     f"{np.median(ev['final_sharpness'][1]):.2f} (2/h = {2 / lrs[1]:g}); largest final loss "
                     f"{final[:, :, 0].max():.2e}, median initial loss {np.median(terms[0, 0, :, 0]):.2e}",
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
        gc, heldout = ev["class_gc"], ev["class_heldout_gc"]
        for i, (name, *_) in enumerate(CLASS_LANES[1:], start=1):
            label = "(a')" if i == 1 else "(d)"
            out.append(claims.bound(
                f"{label} {name}: seeds whose GC at t = {ev['class_time']:g} is lower than plain GD's at h = 0.1 "
                f"(cross-entropy, XOR)", int(np.sum(gc[i] < gc[0])), int(ev["critical"]),
                f"the same one-sided sign test as (a), alpha = {ev['alpha']:g}, critical count fixed before the runs",
                upper=False,
                note=f"median GC {np.median(gc[i]):.2f} vs {np.median(gc[0]):.2f} (held-out inputs: {np.median(heldout[i]):.2f}"
                     f" vs {np.median(heldout[0]):.2f}, {int(np.sum(heldout[i] < heldout[0]))} of {seeds} lower); "
                     f"median cross-entropy {np.median(ev['class_loss'][i]):.3f} vs {np.median(ev['class_loss'][0]):.3f}"
                     f", training accuracy {np.median(ev['class_accuracy'][i]):.2f} vs "
                     f"{np.median(ev['class_accuracy'][0]):.2f}"))
        return out

    def figure(self, ev):
        terms, lrs = ev["terms"], ev["lrs"]
        fig, axes = figures.panels(self, 4, width=4.6, height=3.8, title="geometric complexity: 1-D regression (a)-(c), XOR classification (a'), (d)")
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
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
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
        gc = ev["class_gc"]
        for i in range(1, gc.shape[0]):
            jitter = np.linspace(-0.2, 0.2, gc.shape[1])
            ax.plot(i + jitter, gc[i] / gc[0], "o", ms=3, color=f"C{i - 1}")
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(range(1, gc.shape[0]), ["h = 1", "weight\ndecay", "spectral\npenalty", "init\nscale 0.5",
                                              "label\nnoise"], fontsize=7)
        figures.axes_style(ax, "", "GC / plain GD's GC (per seed)", logy=True,
                           title="(a'), (d) XOR, cross-entropy: < 1 = lower")
        return fig
