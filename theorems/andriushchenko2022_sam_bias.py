"""Andriushchenko & Flammarion (ICML 2022), "Towards understanding sharpness-aware minimization", section 3: the
implicit bias of SAM on diagonal linear networks (docs/stability-sam-geometry.md section 1).

Setup (theirs; code tml-epfl/understanding-sam, diagonal_linear_nets/diag_nets.py): beta = u * v, L = (1/2n) ||X beta -
y||^2 = mean_i l_i with l_i = (x_i . beta - y_i)^2 / 2, n = 20, d = 30, 3-sparse nonnegative unit-norm target, Gaussian X
(dataset "sam_sparse_regression"), unnormalized SAM (their theory and code: the ascent step is rho grad, no 1/||g||):
n-SAM = `SAM(L, lr, rho, normalized=False)`, 1-SAM = the same with ``group_size=1`` (each example perturbed by its own
gradient rho grad l_i; their code writes 2 rho r_i x_i, i.e. their rho is our rho / 2). Initialization u = alpha 1,
v = 0 (beta(0) = 0; the u*v model's conserved-under-GF scale u^2 - v^2 = alpha^2), the same for GD, n-SAM and 1-SAM.

[derived] Per coordinate, each of GD / n-SAM / 1-SAM multiplies u + v by (1 - a_k) and u - v by (1 + b_k) with
(a_k + b_k)/2 = lr (X^T r~/n)_j in the range of X^T (r~ the perturbed residuals), (a_k - b_k)/2 = lr rho (X^T r~/n)_j
(X^T r/n)_j (n-SAM) or lr rho mean_i r~_i r_i x_ij^2 (1-SAM; 0 for GD). Hence beta = (delta/2) sinh(m) with delta = u^2 -
v^2 and m in range(X^T) up to a drift O(lr^3 sum g^3 + lr^2 rho sum g^3): the limit is argmin Q_delta s.t. X beta = y
at the per-coordinate effective scale delta_inf = u_inf^2 - v_inf^2 (the W4 machinery of woodworth2020_kernel_rich),
and SAM shrinks delta by exp(-2 sum (a_k - b_k)/2) on top of GD's O(lr^2) shrinkage -- 1-SAM more than n-SAM since
mean_i r_i^2 x_ij^2 >= (mean_i r_i x_ij)^2 -- so SAM's limits sit at a smaller effective scale, nearer the rich
(min-l1) end: the paper's ordering of the l1 norms 1-SAM <= n-SAM <= GD.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

import dynamics as dyn
from dynamics.predictions import biased_uv_map, implicit_norm_minimizer, min_l1_interpolant, require_usam_stable
from dynamics.sweeps import simulate_sweep

from .common import by_budget, claims, datasets, figures
from .harness import Theorem, expected_failure

# u(0) = ALPHA 1, v(0) = 0; one lr and rho for all methods. lr was 0.2 in the first design: there the 1-SAM limit's
# distance to argmin Q_delta was 0.37 of the GD-vs-1-SAM gap (the claim below allows 0.25); halving lr at the same
# physical time cut it to 0.15 (GD 0.11 -> 0.027, n-SAM 0.21 -> 0.073) while the gap stayed at 0.011: the mismatch is
# the discretization drift O(lr^2) of the mirror-flow description, not the prediction, so the design uses lr = 0.1.
ALPHA, LR, RHO = 0.3, 0.1, 0.05
SEEDS = {"quick": 12, "full": 24}
STEPS = {"quick": 80_000, "full": 160_000}   # physical time lr * steps = 8000 (quick), 16000 (full)
METHODS = ("GD", "n-SAM", "1-SAM")
SIGN_LEVEL = 0.05
MATCH_FRACTION = 0.25  # the implicit-norm prediction must resolve the GD-vs-1-SAM difference it explains (4x)


def example_loss(params, example):
    """l_i = (x_i . (u * v) - y_i)^2 / 2 for params (u, v) and example (x_i, y_i)."""
    x, y = example
    return 0.5 * (x @ (params[0] * params[1]) - y) ** 2


def make_process(method, X, y, lr=LR, rho=RHO, alpha=ALPHA):
    """(process, (u0, v0)) for ``method`` in `METHODS` on the mean of `example_loss` over (X, y)."""
    loss = dyn.per_example(example_loss, (X, y))
    d = X.shape[-1]
    params = (alpha * jnp.ones(d, X.dtype), jnp.zeros(d, X.dtype))
    if method == "GD":
        return dyn.GradientDescent(loss, lr), params
    if method == "n-SAM":
        return dyn.SAM(loss, lr, rho, normalized=False), params
    if method == "1-SAM":
        return dyn.SAM(loss, lr, rho, normalized=False, group_size=1), params
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


_MAKERS = {m: (lambda b, m=m: make_process(m, *b)) for m in METHODS}  # stable objects: the compiled sweep is reused


def limits(method, Xs, ys, steps, lr=LR):
    """One vmapped run per seed: (u, v) at steps/2 and steps, each (2, seeds, d)."""
    traj = simulate_sweep(_MAKERS[method], (jnp.asarray(Xs), jnp.asarray(ys)),
                          lr * np.array([0, steps // 2, steps]))  # the run starts at ts[0] = 0
    return tuple(np.asarray(leaf)[1:] for leaf in traj.ys)


def effective_scale_minimizer(X, y, delta):
    """argmin Q_delta s.t. X beta = y for the u*v model from beta(0) = 0 with per-coordinate scale delta = u^2 - v^2
    (the biased u*v map of Azulay et al. 2021 at u0 = sqrt(delta), v0 = 0: beta = (delta/2) sinh(m))."""
    delta = np.broadcast_to(np.asarray(delta, float), (X.shape[1],))
    return implicit_norm_minimizer(X, y, biased_uv_map(np.sqrt(delta), np.zeros(X.shape[1])), tol=1e-12).beta


def fitted_scale(X, y, beta, upper):
    """The scalar effective scale s (delta = s in every coordinate) minimizing ||beta - argmin Q_s|| over
    log s in [log(upper) - 8, log(upper) + 1] (bounded Brent); returns (s, relative misfit)."""
    def misfit(log_s):
        return np.linalg.norm(beta - effective_scale_minimizer(X, y, np.exp(log_s))) / np.linalg.norm(beta)

    res = scipy.optimize.minimize_scalar(misfit, bounds=(np.log(upper) - 8, np.log(upper) + 1), method="bounded",
                                         options={"xatol": 1e-8})
    return float(np.exp(res.x)), float(res.fun)


def excess_l1(beta, beta_l1):
    """||beta||_1 - ||beta_l1||_1 >= 0 for any interpolant (the paper's measure: the l1 norm of the solution)."""
    return float(np.abs(beta).sum() - np.abs(beta_l1).sum())


class Andriushchenko2022(Theorem):
    id = "andriushchenko2022_sam_bias"
    reference = ("Andriushchenko, Flammarion: Towards understanding sharpness-aware minimization, ICML 2022 "
                 "(arXiv:2206.06232), section 3; Woodworth et al., COLT 2020 and Azulay et al., ICML 2021 for the "
                 "implicit norms")
    statement = (
        "On sparse regression with the diagonal network beta = u * v from u = alpha 1, v = 0, unnormalized SAM ends "
        "at a sparser interpolant than GD at the same alpha and step, per-example 1-SAM more so: the l1 norm of the "
        "limit orders 1-SAM <= n-SAM <= GD, each limit being the implicit-norm minimizer argmin Q_delta s.t. X beta "
        "= y at an effective scale delta smaller than alpha^2 (smallest for 1-SAM).")
    hypotheses = ("n = 20 < d = 30, X Gaussian with full row rank, y = X beta*, beta* 3-sparse",
                  "USAM linearly stable at the limit: lr lambda (1 + rho lambda) < 2 (checked, StepSizeError otherwise)",
                  "every run converged: residual and late change below 1e-8 (claimed)")
    seed = 0

    def run(self, budget="quick"):
        n_seeds, steps = by_budget(budget, SEEDS["quick"], SEEDS["full"]), by_budget(budget, *STEPS.values())
        critical = claims.sign_test_critical(n_seeds, SIGN_LEVEL)  # fixed before any run
        data = [datasets.dataset("sam_sparse_regression", seed=self.seed + s) for s in range(n_seeds)]
        Xs, ys = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
        ev = {"seeds": n_seeds, "steps": steps, "critical": critical, "alpha": ALPHA, "lr": LR, "rho": RHO,
              "l1_norm": np.array([np.abs(min_l1_interpolant(X, y)).sum() for X, y in zip(Xs, ys)])}
        beta_l1 = [min_l1_interpolant(X, y) for X, y in zip(Xs, ys)]
        for method in METHODS:
            u, v = limits(method, Xs, ys, steps)
            beta = u[-1] * v[-1]
            delta = u[-1] ** 2 - v[-1] ** 2
            d = Xs.shape[2]
            hess = jax.vmap(jax.hessian(lambda p, X, y: jnp.mean(0.5 * (X @ (p[:d] * p[d:]) - y) ** 2)))(
                jnp.concatenate([u[-1], v[-1]], axis=1), jnp.asarray(Xs), jnp.asarray(ys))
            sharp = float(np.max(np.linalg.eigvalsh(np.asarray(hess))))
            if method != "GD":
                require_usam_stable(LR, RHO, sharp, what=f"{self.id} {method} at its limit")
            predicted = np.array([effective_scale_minimizer(X, y, dl) for X, y, dl in zip(Xs, ys, delta)])
            at_alpha = np.array([effective_scale_minimizer(X, y, ALPHA**2) for X, y in zip(Xs, ys)])
            fits = np.array([fitted_scale(X, y, b, ALPHA**2) for X, y, b in zip(Xs, ys, beta)])
            ev[method] = {
                "beta": beta, "delta": delta, "sharpness": sharp,
                "change": np.abs(beta - u[0] * v[0]).max(axis=1),
                "residual": np.linalg.norm(np.einsum("snd,sd->sn", Xs, beta) - ys, axis=1) / np.linalg.norm(ys, axis=1),
                "excess_l1": np.array([excess_l1(b, b1) for b, b1 in zip(beta, beta_l1)]),
                "dist_l1": np.array([np.linalg.norm(b - b1) / np.linalg.norm(b1) for b, b1 in zip(beta, beta_l1)]),
                "match_error": np.linalg.norm(beta - predicted, axis=1) / np.linalg.norm(beta, axis=1),
                "alpha_error": np.linalg.norm(beta - at_alpha, axis=1) / np.linalg.norm(beta, axis=1),
                "fitted_scale": fits[:, 0], "fit_misfit": fits[:, 1]}
        ev["gap_gd_1sam"] = (np.linalg.norm(ev["GD"]["beta"] - ev["1-SAM"]["beta"], axis=1)
                             / np.linalg.norm(ev["GD"]["beta"], axis=1))
        return ev

    def check(self, ev):
        g, n, one = ev["GD"], ev["n-SAM"], ev["1-SAM"]
        seeds, critical = int(ev["seeds"]), int(ev["critical"])
        ordered = (one["excess_l1"] <= n["excess_l1"]) & (n["excess_l1"] <= g["excess_l1"])
        scales = (one["fitted_scale"] < n["fitted_scale"]) & (n["fitted_scale"] < g["fitted_scale"])
        sign_why = (f"one-sided sign test at level {SIGN_LEVEL}: under a fair coin P(Binomial({seeds}, 1/2) >= "
                    f"{critical}) <= {SIGN_LEVEL} (scipy.stats.binom, fixed from the seed count before the runs)")
        nsam_reason = expected_failure(
            "measured at the first run (12/12 seeds) and as in the authors' own notebook (tml-epfl/understanding-sam, "
            "diag_nets_sam.ipynb: n-SAM's test loss above GD's, growing with rho): n-SAM's extra shrinkage lr rho "
            "g~_j g_j is concentrated on the large-gradient (support) coordinates, which makes large |beta_j| there "
            "costlier under Q_delta, so n-SAM ends slightly LESS sparse than GD; 1-SAM's lr rho mean_i r_i^2 x_ij^2 "
            "is nearly uniform across coordinates")
        one_gd = one["excess_l1"] <= g["excess_l1"]
        one_n = one["excess_l1"] <= n["excess_l1"]
        medians = "excess l1 over min-l1, median: GD {:.4g}, n-SAM {:.4g}, 1-SAM {:.4g}".format(
            *(np.median(ev[m]["excess_l1"]) for m in METHODS))
        out = [
            claims.bound(f"sign test: seeds with ||beta||_1 ordered 1-SAM <= n-SAM <= GD (of {seeds})",
                         int(ordered.sum()), critical, sign_why, upper=False, note=medians, xfail=nsam_reason),
            claims.bound(f"sign test: seeds with fitted scalar effective scale 1-SAM < n-SAM < GD (of {seeds})",
                         int(scales.sum()), critical, sign_why, upper=False, xfail=nsam_reason,
                         note="fitted scale / alpha^2, median: GD {:.4f}, n-SAM {:.4f}, 1-SAM {:.4f}".format(
                             *(np.median(ev[m]["fitted_scale"]) / ev["alpha"] ** 2 for m in METHODS))),
            claims.bound(f"sign test: seeds with ||beta||_1 of 1-SAM <= GD's (of {seeds})", int(one_gd.sum()),
                         critical, sign_why, upper=False,
                         note="post hoc: added after the first run showed the n-SAM leg reversed; " + medians),
            claims.bound(f"sign test: seeds with ||beta||_1 of 1-SAM <= n-SAM's (of {seeds})", int(one_n.sum()),
                         critical, sign_why, upper=False,
                         note="post hoc: added after the first run showed the n-SAM leg reversed"),
        ]
        for m in METHODS:
            e = ev[m]
            out += [
                claims.bound(
                    f"{m}: limit vs argmin Q at the per-coordinate effective scale u^2 - v^2 (max over seeds of "
                    "error / ||beta_GD - beta_1SAM||)", float(np.max(e["match_error"] / ev["gap_gd_1sam"])),
                    MATCH_FRACTION,
                    "[derived] the mirror-descent drift is O(lr^3 + lr^2 rho) per unit time; the prediction must "
                    "resolve the GD-vs-1-SAM difference it explains, with a 4x margin (fixed before the runs)",
                    note=f"errors: max {e['match_error'].max():.2g} (vs {e['alpha_error'].max():.2g} at scale "
                         f"alpha^2); gaps GD-1SAM min {ev['gap_gd_1sam'].min():.3g}; scalar-fit misfit max "
                         f"{e['fit_misfit'].max():.2g}"),
                claims.bound(
                    f"{m}: converged (max of relative residual and late change |beta(T) - beta(T/2)|)",
                    float(max(e["residual"].max(), e["change"].max())), 1e-8,
                    "the limit is read at T: its error must be negligible against the 1e-3-scale differences "
                    "compared above", role="consistency", note=f"sharpness at the limit {e['sharpness']:.3g}"),
            ]
        return out

    def figure(self, ev):
        fig, axes = figures.panels(self, 3, title="SAM's implicit bias on a diagonal linear network "
                                                   "(Andriushchenko & Flammarion 2022)")
        seeds = np.arange(int(ev["seeds"]))
        colors = {"GD": "C0", "n-SAM": "C1", "1-SAM": "C3"}
        ax = axes[0]
        for m in METHODS:
            ax.plot(seeds, ev[m]["excess_l1"], "o-", color=colors[m], mfc="none", label=m)
        figures.axes_style(ax, "seed", r"$\|\beta\|_1 - \|\beta_{\ell_1}\|_1$", logy=True,
                           title=rf"$\alpha$ = {ev['alpha']:g}, lr = {ev['lr']:g}, $\rho$ = {ev['rho']:g}")
        ax.legend(fontsize=7)
        ax = axes[1]
        for m in METHODS:
            ax.plot(seeds, ev[m]["fitted_scale"] / ev["alpha"] ** 2, "s-", color=colors[m], mfc="none", label=m)
        figures.reference_line(ax, y=1.0, label=r"$\alpha^2$")
        figures.axes_style(ax, "seed", r"fitted scale / $\alpha^2$", title="effective initialization scale")
        ax.legend(fontsize=7)
        ax = axes[2]
        for m in METHODS:
            ax.plot(seeds, ev[m]["match_error"], "o", color=colors[m], mfc="none", label=f"{m}: per-coord. scale")
            ax.plot(seeds, ev[m]["alpha_error"], "x", color=colors[m], label=rf"{m}: at $\alpha^2$")
        ax.plot(seeds, ev["gap_gd_1sam"], "k-", label="GD vs 1-SAM gap")
        figures.axes_style(ax, "seed", r"relative error to $\arg\min Q$", logy=True, title="implicit-norm match")
        ax.legend(fontsize=6)
        return fig
