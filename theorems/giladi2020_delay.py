"""Giladi, Shpigel Nacson, Hoffer, Soudry (2020), At Stability's Edge (arXiv:1909.12340): delayed gradient descent
(docs/stability-sam-geometry.md section 4).

Delayed GD, w_{k+1} = w_k - lr grad L(w_{k-tau}) (`dynamics.DelayedGD`, optional heavy ball beta), is stable on a
quadratic iff every root of z^{tau+1} - (1 + beta) z^tau + beta z^{tau-1} + lr lambda lies in the unit disc; without
momentum iff lr lambda < 2 sin(pi / (2 (2 tau + 1))) (closed form derived in the docs), so for large delay the
largest stable learning rate falls like 1 / tau: the paper's rule "keep lr proportional to 1 / delay".

Checks (one small quadratic per delay, its two Hessian eigenvalues at 0.98 and 1.02 times the threshold along a
rotated basis; the horizon set from the companion matrix's spectral radius so that theory predicts a change of
E_FOLDS e-folds; `DelayedGD` run through `dynamics.simulate`):
(a) without momentum, tau = 0..16: the component below the closed-form threshold decays, the one above grows;
(b) the closed form against the threshold found by bisection on the companion matrix's spectral radius (numpy
eigenvalues of the recursion written from the update rule; two independent computations);
(c) with heavy ball beta in {0.5, 0.9}, tau in {1, 4, 16}: the companion threshold checked by runs the same way, and
against the two exact closed forms available (tau = 0: 2 (1 + beta), tau = 1: 1 - beta, by Jury's criterion);
(d) the 1 / delay rule: the least-squares slope of log a*(tau) on log(2 tau + 1) over tau in SLOPE_DELAYS, with a*
from the companion matrix, is -1 up to the curvature of sin.
Not checked here: the paper's shifted momentum (its update rule could not be read) and the MLP claims of issue 14.
The experiment is exact and small; both budgets run the same thing.
"""

import math

import numpy as np

from dynamics import DelayedGD, simulate
from dynamics.models.toys import Quadratic
from dynamics.predictions import delayed_gd_threshold, delayed_threshold_companion
from dynamics.predictions.delay import delayed_spectral_radius

from .common import claims, figures
from .harness import Theorem

LR = 0.1
DELAYS = np.arange(17)
MOMENTA = (0.5, 0.9)
MOMENTUM_DELAYS = (1, 4, 16)
FACTORS = (0.98, 1.02)
#: predicted change of each component over the run, in e-folds (|log rho^K|): the horizon K is set from this.
E_FOLDS = 10.0
SLOPE_DELAYS = np.array([16, 24, 32, 48, 64])
ANGLE = 0.6                                  # rotation of the Hessian's eigenbasis
#: |closed form - companion| / closed form. Bisection stops at 1e-13 relative width; numpy's eigenvalues of the
#: (tau+1) x (tau+1) companion matrix carry a backward error ~ (tau+1) eps ||C|| whose effect on a* is ~1e-14.
COMPANION_TOL = 1e-10


def quadratic(lam_lo, lam_hi):
    """Hessian Q diag(lam_lo, lam_hi) Q^T with Q a rotation by ANGLE (the loss is not axis-aligned)."""
    c, s = math.cos(ANGLE), math.sin(ANGLE)
    Q = np.array([[c, -s], [s, c]])
    return Quadratic(Q @ np.diag([lam_lo, lam_hi]) @ Q.T), Q


def envelope_run(tau, beta, a_star):
    """Run DelayedGD at curvatures FACTORS * a_star / LR from w_0 = Q (1, 1); return (K, start envelope, end
    envelope) per component: max |Q^T w_j| over the first and the last W = 2 (2 tau + 1) + 2 iterates (one period of
    the crossing roots at least), K = the horizon at which theory predicts E_FOLDS e-folds for the slower mode."""
    rates = [abs(math.log(delayed_spectral_radius(f * a_star, tau, beta))) for f in FACTORS]
    K = int(math.ceil(E_FOLDS / min(rates)))
    W = 2 * (2 * tau + 1) + 2
    loss, Q = quadratic(*(f * a_star / LR for f in FACTORS))
    steps = np.r_[np.arange(W + 1), np.arange(K - W, K + 1)]
    traj = simulate(DelayedGD(loss, LR, tau, momentum=beta), Q @ np.ones(2), steps * LR)
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
        runs = [envelope_run(int(t), 0.0, a) for t, a in zip(DELAYS, closed)]
        ev = {"delays": DELAYS, "closed": closed, "companion": companion,
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
        return ev

    def check(self, ev):
        run_why = (f"the horizon is set so that the companion matrix predicts {E_FOLDS:g} e-folds of decay/growth "
                   "(factor 2e4); asking only for the sign leaves all of it for the transient coefficient and the "
                   "phase of the oscillating root pair")
        ratio = ev["end"] / ev["start"]
        out = [
            claims.bound("no momentum, tau = 0..16: max end/start envelope at 0.98 x threshold (decays)",
                         float(ratio[:, 0].max()), 1.0, run_why,
                         note=f"worst tau {int(ev['delays'][ratio[:, 0].argmax()])}; horizons "
                              f"{int(ev['horizon'].min())}..{int(ev['horizon'].max())} steps"),
            claims.bound("no momentum, tau = 0..16: min end/start envelope at 1.02 x threshold (grows)",
                         float(ratio[:, 1].min()), 1.0, run_why, upper=False,
                         note=f"worst tau {int(ev['delays'][ratio[:, 1].argmin()])}"),
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
        ax.semilogy(ev["delays"], ratio[:, 0], "o-", color="C0", label=r"$0.98\,\lambda^*$")
        ax.semilogy(ev["delays"], ratio[:, 1], "o-", color="C3", label=r"$1.02\,\lambda^*$")
        figures.reference_line(ax, y=1.0)
        figures.axes_style(ax, r"delay $\tau$", "envelope at the end / at the start",
                           title=f"runs of DelayedGD ({E_FOLDS:g} predicted e-folds)")
        ax.legend(fontsize=7)
        return fig
