"""Giladi, Shpigel Nacson, Hoffer, Soudry (2020), At Stability's Edge (arXiv:1909.12340): delayed gradient descent
(docs/stability-sam-geometry.md section 4).

Delayed GD, w_{k+1} = w_k - lr grad L(w_{k-tau}) (`dynamics.DelayedGD`, optional heavy ball beta), is stable on a
quadratic iff every root of z^{tau+1} - (1 + beta) z^tau + beta z^{tau-1} + lr lambda lies in the unit disc; without
momentum iff lr lambda < 2 sin(pi / (2 (2 tau + 1))) (closed form derived in the docs), so for large delay the
largest stable learning rate falls like 1 / tau: the paper's rule "keep lr proportional to 1 / delay".

Checks (one small quadratic per delay, its two Hessian eigenvalues at 0.98 and 1.02 times the threshold along a
rotated basis; the horizon set from the companion matrix's spectral radius so that theory predicts a change of
E_FOLDS e-folds; `DelayedGD` run through `dynamics.simulate`):
(a) without momentum, tau = 0..16 (quick: QUICK_RUN_DELAYS): the component below the closed-form threshold decays, the
one above grows;
(b) the closed form against the threshold found by bisection on the companion matrix's spectral radius (numpy
eigenvalues of the recursion written from the update rule; two independent computations);
(c) with heavy ball beta in {0.5, 0.9}, tau in {1, 4, 16}: the companion threshold checked by runs the same way, and
against the two exact closed forms available (tau = 0: 2 (1 + beta), tau = 1: 1 - beta, by Jury's criterion);
(d) the 1 / delay rule: the least-squares slope of log a*(tau) on log(2 tau + 1) over tau in SLOPE_DELAYS, with a*
from the companion matrix, is -1 up to the curvature of sin.
(e) shifted momentum (`DelayedGD(..., shifted=True)`: v_{k+1} = beta v_{k-tau} - grad L(w_{k-tau}), the update of the
authors' code, one momentum buffer per worker), beta in {0.5, 0.9}: the companion threshold checked by runs the same
way (tau in {1, 4}), and for tau in {1, 4, 16} against the roots of the characteristic polynomial
(z - 1)(z^{tau+1} - beta) + a z derived by hand (numpy roots, bisection);
(f) on the MLP of `cohen2021_eos` (`cpu_mlp`), delayed GD with tau = 1 run at the rescaled rate lr a*(1)/2 = lr/2
(the paper's rule: the delayed threshold a*(tau)/lr_tau equals GD's 2/lr, so the accessible minima are the same)
settles at the same sharpness as undelayed GD at lr = 0.1 (medians over the late third, at the iterates); the
plateau of delayed GD at the unscaled lr (tau = 1), relative to a*(1)/lr, is reported (the paper predates the edge
of stability and does not state it). The full budget adds tau = 2.
The quadratic experiment is exact and small; the full budget runs every delay 0..16 and the MLP at tau = 2 too.
"""

import math

import numpy as np

from dynamics import DelayedGD, simulate
from dynamics.measure import sharpness_along
from dynamics.models.toys import Quadratic
from dynamics.predictions import delayed_gd_threshold, delayed_threshold_companion
from dynamics.predictions.delay import delayed_spectral_radius

from .cohen2021_eos import cpu_mlp
from .common import budgets, claims, figures
from .harness import Theorem

LR = 0.1
DELAYS = np.arange(17)
#: the quick budget runs DelayedGD at these delays (one compilation each; the full budget at every tau = 0..16); the
#: closed form and the companion matrix are compared at all of DELAYS in both.
QUICK_RUN_DELAYS = (0, 1, 2, 4, 8, 16)
MOMENTA = (0.5, 0.9)
MOMENTUM_DELAYS = (1, 4, 16)
SHIFTED_RUN_DELAYS = (1, 4)                  # shifted momentum: runs here (thresholds at all MOMENTUM_DELAYS)
FACTORS = (0.98, 1.02)
#: predicted change of each component over the run, in e-folds (|log rho^K|): the horizon K is set from this.
E_FOLDS = 10.0
SLOPE_DELAYS = np.array([16, 24, 32, 48, 64])
ANGLE = 0.6                                  # rotation of the Hessian's eigenbasis
#: |update-rule companion threshold - polynomial-roots threshold| / threshold (shifted momentum): numpy's roots of the
#: degree-(tau+2) polynomial are eigenvalues of its own companion matrix, backward stable, error ~1e-13 on a*.
ROOTS_TOL = 1e-9
#: the MLP runs: GD's step, the physical horizon (GD steps at ETA, as cohen2021_eos's quick run), late-window samples.
ETA, HORIZON, LATE_POINTS = 0.1, 300.0, 10
#: |median late sharpness of delayed GD at the rescaled rate / that of GD - 1|: each plateau sits in the 1% band of
#: its threshold (the edge-of-stability overshoot allowed by mulayoff2021_minima_stability, cohen2021_eos measures
#: 0.7% for this MLP), so two plateaus at the same threshold agree to 2%.
PLATEAU_TOL = 0.02
#: |closed form - companion| / closed form. Bisection stops at 1e-13 relative width; numpy's eigenvalues of the
#: (tau+1) x (tau+1) companion matrix carry a backward error ~ (tau+1) eps ||C|| whose effect on a* is ~1e-14.
COMPANION_TOL = 1e-10


def quadratic(lam_lo, lam_hi):
    """Hessian Q diag(lam_lo, lam_hi) Q^T with Q a rotation by ANGLE (the loss is not axis-aligned)."""
    c, s = math.cos(ANGLE), math.sin(ANGLE)
    Q = np.array([[c, -s], [s, c]])
    return Quadratic(Q @ np.diag([lam_lo, lam_hi]) @ Q.T), Q


def poly_threshold(tau, beta, rtol=1e-13):
    """The shifted-momentum threshold a* from the roots of (z - 1)(z^{tau+1} - beta) + a z (numpy roots), by a
    geometric scan and bisection: independent of `delayed_companion` (written from the update rule)."""
    def stable(a):
        coeffs = np.zeros(tau + 3)
        np.add.at(coeffs, [0, 1, -2, -1], [1.0, -1.0, a - beta, beta])   # -2 and 1 coincide when tau = 0
        return np.max(np.abs(np.roots(coeffs))) < 1.0
    lo = 1e-6
    hi = lo * 1.25
    while stable(hi):
        lo, hi = hi, hi * 1.25
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return 0.5 * (lo + hi)


def mlp_plateau(E, w0, tau, lr):
    """lr S / a*(tau) at LATE_POINTS iterates over the last third of a DelayedGD run to t = HORIZON (Lanczos)."""
    steps = int(round(HORIZON / lr))
    ks = np.r_[0, np.linspace(steps * 2 / 3, steps, LATE_POINTS).round()]
    W = simulate(DelayedGD(E, lr, tau), w0, lr * ks).ys
    return lr * np.asarray(sharpness_along(E, W[1:], "lanczos", 20)) / delayed_gd_threshold(1.0, tau)


def envelope_run(tau, beta, a_star, shifted=False):
    """Run DelayedGD at curvatures FACTORS * a_star / LR from w_0 = Q (1, 1); return (K, start envelope, end
    envelope) per component: max |Q^T w_j| over the first and the last W = 2 (2 tau + 1) + 2 iterates (one period of
    the crossing roots at least), K = the horizon at which theory predicts E_FOLDS e-folds for the slower mode."""
    rates = [abs(math.log(delayed_spectral_radius(f * a_star, tau, beta, shifted))) for f in FACTORS]
    K = int(math.ceil(E_FOLDS / min(rates)))
    W = 2 * (2 * tau + 1) + 2
    loss, Q = quadratic(*(f * a_star / LR for f in FACTORS))
    steps = np.r_[np.arange(W + 1), np.arange(K - W, K + 1)]
    traj = simulate(DelayedGD(loss, LR, tau, momentum=beta, shifted=shifted), Q @ np.ones(2), steps * LR)
    saved = np.rint(np.asarray(traj.ts) / LR).astype(int)
    comps = np.abs(np.asarray(traj.ys) @ Q)                  # |Q^T w_j|, rows = iterates
    start = comps[saved <= W].max(axis=0)
    end = comps[saved >= K - W].max(axis=0)
    return K, start, end, np.array(rates)


class Giladi2020(Theorem):
    id = "giladi2020_delay"
    reference = ("Giladi, Shpigel Nacson, Hoffer, Soudry: At Stability's Edge: How to Adjust Hyperparameters to "
                 "Preserve Minima Selection in Asynchronous Training of Neural Networks?, ICLR 2020, arXiv:1909.12340")
    statement = ("Gradient descent with a gradient delayed by tau steps is linearly stable at a minimum with "
                 "curvature lambda iff lr lambda < 2 sin(pi / (2 (2 tau + 1))) (with heavy-ball momentum, iff the "
                 "delay recursion's companion matrix has spectral radius < 1), so the set of accessible minima is "
                 "preserved for large delays by keeping lr proportional to 1 / tau.")
    hypotheses = ("a quadratic loss (the linearization at a minimum), exact constant delay tau, full-batch gradients",
                  "w_j = w_0 for j < 0 (the first tau gradients are read at w_0), momentum in optax's trace convention")
    seed = 0

    def run(self, budget="quick"):
        closed = np.array([delayed_gd_threshold(1.0, int(t)) for t in DELAYS])
        companion = np.array([delayed_threshold_companion(1.0, int(t)) for t in DELAYS])
        run_delays = budgets.by_budget(budget, QUICK_RUN_DELAYS, DELAYS)
        runs = [envelope_run(int(t), 0.0, closed[t]) for t in run_delays]
        ev = {"delays": DELAYS, "run_delays": np.asarray(run_delays), "closed": closed, "companion": companion,
              "horizon": np.array([r[0] for r in runs]), "start": np.array([r[1] for r in runs]),
              "end": np.array([r[2] for r in runs]), "rates": np.array([r[3] for r in runs])}
        momentum_a = np.array([[delayed_threshold_companion(1.0, t, b) for t in (0, *MOMENTUM_DELAYS)]
                               for b in MOMENTA])                               # (beta, [0, *delays])
        mruns = [[envelope_run(t, b, a) for t, a in zip(MOMENTUM_DELAYS, row[1:])] for b, row in zip(MOMENTA,
                                                                                                       momentum_a)]
        ev.update({"momenta": np.array(MOMENTA), "momentum_delays": np.array(MOMENTUM_DELAYS),
                   "momentum_companion": momentum_a,
                   "momentum_horizon": np.array([[r[0] for r in row] for row in mruns]),
                   "momentum_start": np.array([[r[1] for r in row] for row in mruns]),
                   "momentum_end": np.array([[r[2] for r in row] for row in mruns])})
        ev["slope_delays"] = SLOPE_DELAYS
        ev["slope_thresholds"] = np.array([delayed_threshold_companion(1.0, int(t)) for t in SLOPE_DELAYS])
        shifted = np.array([[delayed_threshold_companion(1.0, t, b, True) for t in MOMENTUM_DELAYS] for b in MOMENTA])
        sruns = [[envelope_run(t, b, a, True) for t, a in zip(MOMENTUM_DELAYS, row) if t in SHIFTED_RUN_DELAYS]
                 for b, row in zip(MOMENTA, shifted)]
        ev.update({"shifted_companion": shifted,
                   "shifted_roots": np.array([[poly_threshold(t, b) for t in MOMENTUM_DELAYS] for b in MOMENTA]),
                   "shifted_start": np.array([[r[1] for r in row] for row in sruns]),
                   "shifted_end": np.array([[r[2] for r in row] for row in sruns])})
        E, w0 = cpu_mlp(self.seed)
        taus = budgets.by_budget(budget, (1,), (1, 2))
        ev["mlp_delays"] = np.array(taus)
        ev["mlp_gd"] = mlp_plateau(E, w0, 0, ETA)
        ev["mlp_rescaled"] = np.array([mlp_plateau(E, w0, t, ETA * delayed_gd_threshold(1.0, t) / 2) for t in taus])
        ev["mlp_unscaled"] = mlp_plateau(E, w0, 1, ETA)
        return ev

    def check(self, ev):
        run_why = (f"the horizon is set so that the companion matrix predicts {E_FOLDS:g} e-folds of decay/growth "
                   "(factor 2e4); asking only for the sign leaves all of it for the transient coefficient and the "
                   "phase of the oscillating root pair")
        ratio = ev["end"] / ev["start"]
        out = [
            claims.bound(f"no momentum, tau in {tuple(int(t) for t in ev['run_delays'])}: max end/start envelope at "
                         "0.98 x threshold (decays)", float(ratio[:, 0].max()), 1.0, run_why,
                         note=f"worst tau {int(ev['run_delays'][ratio[:, 0].argmax()])}; horizons "
                              f"{int(ev['horizon'].min())}..{int(ev['horizon'].max())} steps"),
            claims.bound(f"no momentum, tau in {tuple(int(t) for t in ev['run_delays'])}: min end/start envelope at "
                         "1.02 x threshold (grows)", float(ratio[:, 1].min()), 1.0, run_why, upper=False,
                         note=f"worst tau {int(ev['run_delays'][ratio[:, 1].argmin()])}"),
            claims.bound("closed form 2 sin(pi/(2(2 tau+1))) vs companion-matrix bisection, tau = 0..16 (max rel. diff)",
                         float(np.max(np.abs(ev["closed"] - ev["companion"]) / ev["closed"])), COMPANION_TOL,
                         "bisection to 1e-13 relative width; numpy eigenvalues of the (tau+1)-square companion matrix "
                         "move a* by ~1e-14", role="consistency"),
        ]
        mratio = ev["momentum_end"] / ev["momentum_start"]
        for i, beta in enumerate(ev["momenta"]):
            out += [
                claims.bound(f"heavy ball beta = {beta:g}, tau in {tuple(int(t) for t in ev['momentum_delays'])}: "
                             "max end/start envelope at 0.98 x companion threshold (decays)",
                             float(mratio[i, :, 0].max()), 1.0, run_why,
                             note="thresholds lr lambda = " + ", ".join(f"{a:.5g}" for a in
                                                                       ev["momentum_companion"][i, 1:])),
                claims.bound(f"heavy ball beta = {beta:g}: min end/start envelope at 1.02 x companion threshold (grows)",
                             float(mratio[i, :, 1].min()), 1.0, run_why, upper=False),
            ]
        exact = np.array([[2 * (1 + b), 1 - b] for b in ev["momenta"]])
        measured = ev["momentum_companion"][:, :2]
        out.append(claims.bound(
            "companion threshold with momentum vs the exact forms 2(1+beta) (tau = 0) and 1-beta (tau = 1), max rel.",
            float(np.max(np.abs(measured - exact) / exact)), COMPANION_TOL,
            "Jury's criterion on the 2-term recursions gives these exactly; the bisection's error is ~1e-14",
            role="consistency"))
        sratio = ev["shifted_end"] / ev["shifted_start"]
        delays = tuple(int(t) for t in ev["momentum_delays"])
        for i, beta in enumerate(ev["momenta"]):
            out += [
                claims.bound(f"shifted momentum beta = {beta:g}, tau in {SHIFTED_RUN_DELAYS}: max end/start envelope "
                             "at 0.98 x companion threshold (decays)", float(sratio[i, :, 0].max()), 1.0, run_why,
                             note="thresholds lr lambda = " + ", ".join(f"{a:.5g}" for a in ev["shifted_companion"][i])
                                  + "; times 1/(1 - beta): " + ", ".join(f"{a / (1 - beta):.4g}" for a in
                                                                         ev["shifted_companion"][i])
                                  + " (heavy ball: " + ", ".join(f"{a / (1 - beta):.4g}" for a in
                                                                 ev["momentum_companion"][i, 1:]) + ")"),
                claims.bound(f"shifted momentum beta = {beta:g}: min end/start envelope at 1.02 x companion threshold "
                             "(grows)", float(sratio[i, :, 1].min()), 1.0, run_why, upper=False),
            ]
        out.append(claims.bound(
            "shifted momentum: companion threshold (update rule) vs roots of (z-1)(z^{tau+1}-beta) + a z, max rel.",
            float(np.max(np.abs(ev["shifted_companion"] - ev["shifted_roots"]) / ev["shifted_roots"])), ROOTS_TOL,
            "two bisections to 1e-13 on two independent eigenvalue problems (the update rule's 2(tau+1)-square "
            "matrix, numpy roots of the hand-derived polynomial); both backward stable, ~1e-13 on a*",
            role="consistency"))
        gd = float(np.median(ev["mlp_gd"]))
        rescaled = np.median(ev["mlp_rescaled"], axis=1)
        out.append(claims.bound(
            f"MLP: delayed GD at lr a*(tau)/2 (tau = {', '.join(str(int(t)) for t in ev['mlp_delays'])}) vs GD at lr = "
            f"{ETA:g}: max |median late sharpness ratio - 1|", float(np.max(np.abs(rescaled / gd - 1))), PLATEAU_TOL,
            "the paper's rule preserves the accessible minima (threshold a*(tau)/lr_tau = 2/lr), so both settle at "
            "the same sharpness; each edge-of-stability plateau sits within 1% of its threshold (mulayoff2021's band; "
            "cohen2021_eos measures 0.7% here), hence 2% between the two",
            note=(f"median lr S/a* late: GD {gd:.4f}; rescaled " + ", ".join(f"tau {int(t)}: {r:.4f}" for t, r in
                                                                            zip(ev["mlp_delays"], rescaled))
                  + f"; delayed GD tau = 1 at the unscaled lr {ETA:g}: median lr S/a*(1) "
                    f"{np.median(ev['mlp_unscaled']):.4f} (range {ev['mlp_unscaled'].min():.3f}-"
                    f"{ev['mlp_unscaled'].max():.3f}): its plateau sits at a*(1)/lr = {1 / ETA:g}, half of GD's "
                    f"{2 / ETA:g} (reported, not claimed)")))
        x = math.pi / (2 * (2 * ev["slope_delays"].min() + 1))
        out.append(claims.slope(
            "1/delay rule: slope of log a*(tau) vs log(2 tau + 1), large tau (a* from the companion matrix)",
            2 * ev["slope_delays"] + 1, ev["slope_thresholds"], -1.0, 1e-3,
            f"the local slope is -x cot x = -1 + x^2/3 + O(x^4), x = pi/(2(2 tau + 1)) <= {x:.3f}, so |slope + 1| <= "
            f"{x * x / 3:.1e} over the window; 1e-3 covers it and excludes lr ~ delay^-1/2 or delay^-2"))
        return out

    def figure(self, ev):
        fig, axes = figures.panels(self, 2, width=5.4, height=4.2, title="delayed gradient descent on quadratics")
        ax = axes[0]
        m = 2 * ev["delays"] + 1
        ax.plot(m, ev["closed"], "-", color="k", lw=1, label=r"$2\sin(\pi/(2(2\tau+1)))$")
        ax.plot(m, ev["companion"], "o", color="C0", ms=4, label="companion, no momentum")
        for i, beta in enumerate(ev["momenta"]):
            ax.plot(2 * np.r_[0, ev["momentum_delays"]] + 1, ev["momentum_companion"][i], "s--", color=f"C{i + 1}",
                    ms=4, label=rf"companion, $\beta={beta:g}$")
        ax.plot(2 * ev["slope_delays"] + 1, ev["slope_thresholds"], "^", color="C0", ms=4)
        ax.plot(m, np.pi / m, ":", color="0.5", label=r"$\pi/(2\tau+1)$")
        figures.axes_style(ax, r"$2\tau + 1$", r"threshold $\eta\lambda^*$", logx=True, logy=True,
                           title=r"stable iff $\eta\lambda < \eta\lambda^*$")
        ax.legend(fontsize=7)
        ax = axes[1]
        ratio = ev["end"] / ev["start"]
        ax.semilogy(ev["run_delays"], ratio[:, 0], "o-", color="C0", label=r"$0.98\,\lambda^*$")
        ax.semilogy(ev["run_delays"], ratio[:, 1], "o-", color="C3", label=r"$1.02\,\lambda^*$")
        figures.reference_line(ax, y=1.0)
        figures.axes_style(ax, r"delay $\tau$", "envelope at the end / at the start",
                           title=f"runs of DelayedGD ({E_FOLDS:g} predicted e-folds)")
        ax.legend(fontsize=7)
        return fig
