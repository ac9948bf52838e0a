"""Mobahi, Farajtabar & Bartlett (2020): self-distillation amplifies regularization in a Hilbert space
(docs/stability-sam-geometry.md section 8).

Round t fits the targets y_t by the minimum-RKHS-norm function with (1/N) sum_i (f(x_i) - y_{t,i})^2 <= epsilon and
passes its training predictions on as y_{t+1} (y_0 = the labels). In the Gram eigenbasis K = V diag(d) V^T,
y_{t+1} = V diag(d / (c_t + d)) V^T y_t with the multiplier c_t fixed by the active constraint. Claims: c_t increases
strictly every round; the energy of the targets on the small-eigenvalue half of the basis shrinks relative to the
large-eigenvalue half every round (sparsification); the fit collapses to 0 after finitely many rounds, at a round T
with r_0 - 1 <= T <= kappa (r_0 - 1), r_0 = ||y_0|| / sqrt(N epsilon), kappa = d_max / d_min [derived, section 8].

Instrument: `dynamics.predictions.self_distillation` (eigenbasis, brentq) is compared with an independent chain that
solves each round in the original basis (np.linalg.solve of (K + c I) alpha = y_t, bisection on c); every theorem
claim is measured on the independent chain (eigen-projections from scipy.linalg.eigh, a different LAPACK driver).
"""

import numpy as np
import scipy.linalg

from dynamics.predictions import self_distillation

from .common import budgets, claims, datasets, figures
from .harness import Theorem

DATA_SEED = 0
#: bisection stops when its bracket on c is this narrow relative to c.
BISECTION_RTOL = 1e-14
#: agreement required between the closed form and the independent chain (predictions relative to ||y_0||, and c_t).
AGREEMENT = 1e-10
#: a sparsification step is judged only while the small-eigenvalue part of y_{t+1} is at least this fraction of
#: ||y_0||: 1e4 times AGREEMENT, so the judged ratios are accurate to ~1e-4 relative.
FLOOR = 1e-6
#: a strict increase of c_t must be resolved above the relative accuracy of c (AGREEMENT) by this factor.
RESOLVE = 10.0


def bisection_round(K, y, epsilon):
    """One round solved in the original basis: (c, predictions, n_solves). c solves (1/N)||y - K alpha(c)||^2 =
    epsilon with alpha(c) = np.linalg.solve(K + c I, y) (so y - K alpha = c alpha), by bracketing (doubling/halving
    from c = 1) and bisection to a relative width BISECTION_RTOL; the constraint residual grows with c. Collapsed
    (mean(y^2) <= epsilon): (inf, 0, 0)."""
    n = y.size
    if np.mean(y**2) <= epsilon:
        return np.inf, np.zeros(n), 0
    eye = np.eye(n)
    solves = 0

    def excess(c):
        nonlocal solves
        solves += 1
        return np.mean((c * np.linalg.solve(K + c * eye, y)) ** 2) - epsilon

    hi = 1.0
    while excess(hi) <= 0:
        hi *= 2.0
    lo = hi / 2.0
    while excess(lo) > 0:
        lo, hi = lo / 2.0, lo
    while hi - lo > BISECTION_RTOL * hi:
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0:
            hi = mid
        else:
            lo = mid
    c = 0.5 * (lo + hi)
    return c, K @ np.linalg.solve(K + c * eye, y), solves


def independent_chain(K, y, epsilon, max_rounds):
    """Rounds by `bisection_round` until the first collapsed round T (included): (multipliers, targets y_0..y_{T+1},
    T or None)."""
    targets, cs = [y], []
    for t in range(max_rounds):
        c, pred, _ = bisection_round(K, targets[-1], epsilon)
        cs.append(c)
        targets.append(pred)
        if not np.isfinite(c):
            return np.array(cs), np.array(targets), t
    return np.array(cs), np.array(targets), None


def run_case(seed, epsilon):
    x, y, K = datasets.dataset("distillation_rbf_regression", seed=seed)
    n = y.size
    d, V = scipy.linalg.eigh(K, driver="evr")
    kappa = d[-1] / d[0]
    r0 = np.linalg.norm(y) / np.sqrt(n * epsilon)
    upper = int(np.ceil(kappa * (r0 - 1.0)))
    closed = self_distillation(K, y, epsilon)
    cs, targets, collapse = independent_chain(K, y, epsilon, upper + 1)
    small = V[:, : n // 2]                                  # eigenvectors of the n/2 smallest eigenvalues
    large = V[:, n // 2:]
    live = np.isfinite(cs)
    t_common = min(len(cs), len(closed.multipliers))
    pred_gap = np.linalg.norm(closed.predictions[:t_common] - targets[1: t_common + 1], axis=1) / np.linalg.norm(y)
    both = live[:t_common] & np.isfinite(closed.multipliers[:t_common])
    c_gap = np.abs(closed.multipliers[:t_common][both] - cs[:t_common][both]) / cs[:t_common][both]
    cond = (d[-1] + cs[live][0]) / (d[0] + cs[live][0]) if live.any() else 1.0
    return {
        "x": x, "y": y, "eigenvalues": d, "kappa": kappa, "r0": r0, "epsilon": epsilon,
        "multipliers": cs, "target_norms": np.linalg.norm(targets, axis=1),
        "small_norms": np.linalg.norm(targets @ small, axis=1), "large_norms": np.linalg.norm(targets @ large, axis=1),
        "collapse": -1 if collapse is None else int(collapse), "closed_collapse": int(closed.collapse_round),
        "prediction_gap": float(np.max(pred_gap)), "multiplier_gap": float(np.max(c_gap)) if c_gap.size else 0.0,
        "condition": cond, "closed_multipliers": closed.multipliers,
    }


class Mobahi2020(Theorem):
    id = "mobahi2020_self_distillation"
    reference = ("Mobahi, Farajtabar, Bartlett: Self-Distillation Amplifies Regularization in Hilbert Space, "
                 "NeurIPS 2020 (arXiv:2002.05715)")
    statement = (
        "Self-distillation of norm-constrained kernel regression (each round fits the previous round's training "
        "predictions with the smallest RKHS norm under (1/N) sum (f(x_i) - y_i)^2 <= epsilon) amplifies the "
        "regularization: the multiplier c_t grows every round, the components on small-eigenvalue basis functions "
        "shrink faster than those on large ones (sparsification), and the fit collapses to zero after finitely many "
        "rounds, once ||y_t||^2 <= N epsilon, at a round between r_0 - 1 and kappa (r_0 - 1), "
        "r_0 = ||y_0|| / sqrt(N epsilon), kappa = d_max / d_min of the Gram matrix.")
    hypotheses = (
        "A positive-definite Gram matrix (RBF kernel on distinct 1-D points; kappa finite and checked).",
        "||y_0||^2 > N epsilon: the first round does not collapse (r_0 > 1).",
        "The same epsilon every round; the targets of round t + 1 are the training predictions of round t only.",
    )
    seed = DATA_SEED

    def run(self, budget="quick"):
        seeds = budgets.by_budget(budget, (DATA_SEED,), tuple(range(5)))
        eps = budgets.by_budget(budget, (0.005,), (0.002, 0.005, 0.01))
        cases = [run_case(s, e) for s in seeds for e in eps]
        for case in cases:
            if not (case["r0"] > 1 and np.isfinite(case["kappa"]) and case["eigenvalues"][0] > 0):
                raise ValueError(f"hypothesis violated: r0 = {case['r0']}, kappa = {case['kappa']}")
        return {"cases": cases, "seeds": list(seeds), "eps": list(eps)}

    def check(self, ev):
        cases = ev["cases"]
        pred_gap = max(c["prediction_gap"] for c in cases)
        c_gap = max(c["multiplier_gap"] for c in cases)
        cond = max(c["condition"] for c in cases)
        min_c_step, worst_ratio_step, judged, placed, collapsed = np.inf, -np.inf, 0, True, True
        rounds, lows, highs = [], [], []
        for c in cases:
            cs = c["multipliers"][np.isfinite(c["multipliers"])]
            min_c_step = min(min_c_step, float(np.min(np.diff(cs) / cs[:-1])) if cs.size > 1 else -np.inf)
            small, large = c["small_norms"], c["large_norms"]
            ratio = np.divide(small, large, out=np.zeros_like(small), where=large > 0)
            for t in range(len(ratio) - 1):
                if small[t + 1] >= FLOOR * c["target_norms"][0]:
                    worst_ratio_step = max(worst_ratio_step, float(ratio[t + 1] / ratio[t]))
                    judged += 1
            low, high = int(np.ceil(c["r0"] - 1.0)), int(np.ceil(c["kappa"] * (c["r0"] - 1.0)))
            collapsed &= c["collapse"] >= 0 and c["collapse"] == c["closed_collapse"]
            placed &= low <= c["collapse"] <= high
            rounds.append(int(c["collapse"]))
            lows.append(low)
            highs.append(high)
        where = f"{len(cases)} case(s): seeds {ev['seeds']} x epsilon {ev['eps']}"
        return [
            claims.bound(
                "closed form vs independent solve: max_t ||pred_t - pred_t(bisection)|| / ||y_0||", pred_gap,
                AGREEMENT,
                "bisection stops at relative width 1e-14 in c, which moves predictions by <= 1e-14 ||y_t||; the solves "
                f"round at cond(K + c I) eps_mach <= {cond:.3g} x 2.2e-16 per round; 1e-10 covers both with margin",
                role="consistency", note=f"{where}; chains run independently (errors may accumulate over rounds)"),
            claims.bound(
                "closed form vs independent solve: max_t |c_t - c_t(bisection)| / c_t", c_gap, AGREEMENT,
                "bisection to relative width 1e-14 on a constraint evaluated through a solve with rounding "
                f"<= cond(K + c I) eps_mach ({cond:.3g} x 2.2e-16) and brentq to 4 eps_mach; 1e-10 covers both",
                role="consistency", note=where),
            claims.bound(
                "c_t increases strictly every round: min_t (c_{t+1} - c_t) / c_t", min_c_step, RESOLVE * AGREEMENT,
                "a strict increase must be resolved above the relative accuracy of c (1e-10, the consistency claim) "
                "by a factor 10", upper=False, note=f"{where}; measured on the bisection chain"),
            claims.bound(
                "sparsification: max_t [small/large energy ratio]_{t+1} / [ratio]_t", worst_ratio_step, 1.0,
                "the ratio ||P_small y_t|| / ||P_large y_t|| (n/2 smallest vs largest eigenvalues) must fall every "
                "round; judged while ||P_small y_{t+1}|| >= 1e-6 ||y_0||, where the 1e-10 agreement keeps it accurate "
                "to ~1e-4", note=f"{where}; {judged} round(s) judged on the bisection chain (scipy eigh, driver evr)"),
            claims.holds(
                "the fit collapses to 0 after finitely many rounds (both chains, same round)", collapsed,
                "a yes/no statement of the paper: ||y_T||^2 <= N epsilon is reached within kappa (r_0 - 1) rounds",
                note=f"collapse rounds {rounds}"),
            claims.holds(
                "collapse round within [ceil(r_0 - 1), ceil(kappa (r_0 - 1))]", placed,
                "the round-count bounds (section 8): each round removes exactly sqrt(N eps) of residual, which "
                "shrinks ||y_t|| by between sqrt(N eps) / kappa and sqrt(N eps)",
                note=f"collapse rounds {rounds}, lower bounds {lows}, upper bounds {highs}"),
        ]

    def figure(self, ev):
        case = ev["cases"][0]
        fig, axes = figures.panels(
            self, 3, width=4.4, height=3.6,
            title="self-distillation rounds: regularization grows, basis sparsifies, fit collapses")
        cs = case["multipliers"][np.isfinite(case["multipliers"])]
        ax = axes[0]
        ax.plot(np.arange(cs.size), cs, "o-")
        figures.axes_style(ax, "round $t$", "multiplier $c_t$", logy=True,
                           title=f"seed {ev['seeds'][0]}, $\\epsilon$ = {case['epsilon']:g}")
        ax = axes[1]
        t = np.arange(case["target_norms"].size)
        nz = case["small_norms"] > 0
        ax.plot(t[nz], case["small_norms"][nz] / case["large_norms"][nz], "o-", color="C1")
        figures.axes_style(ax, "round $t$", "small / large ratio", logy=True,
                           title="small- vs large-eigenvalue half of the basis")
        ax = axes[2]
        ax.plot(t, case["target_norms"], "o-", color="C2", label=r"$\|y_t\|$")
        ax.axhline(np.sqrt(case["y"].size * case["epsilon"]), color="k", ls="--", lw=1, label=r"$\sqrt{N\epsilon}$")
        ax.axvline(np.ceil(case["r0"] - 1), color="C3", ls=":", lw=1, label="lower bound on $T$")
        ax.axvline(case["collapse"], color="C2", ls=":", lw=1, label=f"collapse $T$ = {case['collapse']}")
        figures.axes_style(ax, "round $t$", "norm of the targets",
                           title=f"upper bound $\\kappa(r_0-1)$ = {np.ceil(case['kappa'] * (case['r0'] - 1)):.3g}")
        ax.legend(fontsize=7)
        return fig
