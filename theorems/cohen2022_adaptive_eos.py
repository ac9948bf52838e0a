"""Cohen, Ghorbani, Krishnan et al. (2022), Adaptive gradient methods at the edge of stability (arXiv:2207.14484):
momentum part (docs/stability-sam-geometry.md section 2).

Each method trains at the edge of stability of its own linear-stability threshold: the sharpness S = lambda_max(H)
rises (progressive sharpening) until it reaches the threshold of the method on a quadratic and then hovers there.
For heavy ball (optax.sgd(lr, momentum=beta)) the threshold is 2 (1 + beta) / lr, for Nesterov
(2 + 2 beta) / ((1 + 2 beta) lr) (`dynamics.predictions.stability`, exact and tested by runs on quadratics).

Setup: the central-flows CPU MLP of `cohen2021_eos` (dataset "eos_mlp", 433 parameters, swish, mean squared error),
full batch, float64, beta = 0.5 and lr chosen so that both thresholds equal 10 (= 1.94 S(w_0)): heavy ball lr = 0.3,
Nesterov lr = 0.15. With beta = 0.9 and threshold 20 both methods interpolate the 128 points before reaching it
(measured: S stops at 0.81 and 0.76 of the threshold), so the experiment needs a threshold within reach of
progressive sharpening. S is measured at the iterates every SHARP_EVERY steps (as the paper's code samples it) by
Lanczos with a fixed number of HVPs, checked against dense eigh.

Claims: (a) the late-window median of S / threshold lies within PLATEAU_BAND of 1 (the paper: the sharpness
"equilibrates" at the threshold; measured 1.0005 / 0.9997 for heavy ball, 0.994 / 0.999 for Nesterov on the
quick / full budget);
(b) the plateau is the method's threshold and not GD's 2/lr: lr S / 2 is 1 + beta = 1.5 times (heavy ball) and
(1 + beta) / (1 + 2 beta) = 0.75 times (Nesterov) GD's value, and the claims put the measured median on the right
side of the midpoint between the two candidates. The Adam/RMSProp part (preconditioned sharpness at
(2 + 2 beta1) / ((1 - beta1) lr)) is not checked here yet.
"""

import numpy as np

from dynamics import HeavyBall, Nesterov, sharpness, simulate
from dynamics.measure.eos import sharpness_along
from dynamics.predictions import heavy_ball_threshold, nesterov_threshold

from .cohen2021_eos import cpu_mlp
from .common import by_budget, claims, figures
from .harness import Theorem

BETA = 0.5
LR = {"heavy_ball": 0.3, "nesterov": 0.15}   # both thresholds = 10
STEPS = {"quick": 3000, "full": 6000}
SHARP_EVERY = {"quick": 20, "full": 10}
LANCZOS_STEPS = 20
CHECKS = 5                                   # iterates where Lanczos is compared with dense eigh
EIG_TOL = 1e-8                               # dynamics' float64 eigen-residual tolerance (linalg.default_tol)
LATE_FRACTION = 1 / 3
#: |median S / threshold - 1| allowed over the late window. The paper reports the sharpness equilibrating "at" the
#: threshold without a quantified band; its figures show it within a few percent of the line [recalled]. 3% is
#: that reading, and it is 1/16 of the gap between the candidate plateaus (claims (b)), so it cannot confuse them.
PLATEAU_BAND = 0.03


class Cohen2022Momentum(Theorem):
    id = "cohen2022_momentum_eos"
    reference = ("Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl, Gilmer: Adaptive "
                 "gradient methods at the edge of stability, arXiv:2207.14484 (2022)")
    statement = ("Full-batch heavy-ball and Nesterov momentum on a neural network sharpen progressively until the "
                 "sharpness S reaches the method's linear-stability threshold, 2(1 + beta)/lr for heavy ball and "
                 "(2 + 2 beta)/((1 + 2 beta) lr) for Nesterov, and then hover there (edge of stability).")
    hypotheses = ("full-batch momentum in optax's convention, float64, S at the iterates",
                  "S(w_0) below the threshold (training starts stable; checked)")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp(self.seed)
        steps, every = by_budget(budget, STEPS["quick"], STEPS["full"]), by_budget(budget, *SHARP_EVERY.values())
        s0 = float(sharpness(E, w0, "dense"))
        out = {"steps": steps, "s0": s0}
        for name, process, threshold in (("heavy_ball", HeavyBall, heavy_ball_threshold),
                                         ("nesterov", Nesterov, nesterov_threshold)):
            lr = LR[name]
            limit = float(threshold(lr, BETA))
            if s0 >= limit:
                raise ValueError(f"{name}: S(w0) = {s0:.3g} >= threshold {limit:.3g}: training starts unstable")
            W = simulate(process(E, lr, momentum=BETA), w0, lr * np.arange(steps + 1.0)).ys
            k = np.arange(0, steps + 1, every)
            S = sharpness_along(E, W[k], "lanczos", LANCZOS_STEPS)
            pick = np.linspace(0, k.size - 1, CHECKS).astype(int)
            out[name] = {"lr": lr, "threshold": limit, "k": k, "S": S, "pick": pick,
                         "dense": sharpness_along(E, W[k[pick]], "dense"),
                         "loss": np.asarray([float(E(W[i])) for i in (0, steps // 2, steps)])}
        return out

    def check(self, ev):
        steps = ev["steps"]
        result = []
        candidates = {"heavy_ball": 1 + BETA, "nesterov": (1 + BETA) / (1 + 2 * BETA)}  # plateau lr S / 2
        for name, run in ((n, ev[n]) for n in ("heavy_ball", "nesterov")):
            k, S, limit, lr = run["k"], run["S"], run["threshold"], run["lr"]
            window = k >= steps * (1 - LATE_FRACTION)
            ratio = S[window] / limit
            median = float(np.median(ratio))
            gd_units = float(np.median(lr * S[window] / 2))
            midpoint = 0.5 * (1 + candidates[name])
            label = "heavy ball" if name == "heavy_ball" else "Nesterov"
            result += [
                claims.bound(f"{label}: Lanczos ({LANCZOS_STEPS} HVPs) vs dense eigh at {CHECKS} iterates, max "
                             "relative gap", float(np.max(np.abs(S[run["pick"]] / run["dense"] - 1))), EIG_TOL,
                             role="consistency",
                             why="dense eigh is exact to ~1e-15 on 433 parameters; 1e-8 is dynamics' float64 "
                                 "eigen-residual tolerance"),
                claims.within(f"{label}: late-window median of S / threshold", median, 1 - PLATEAU_BAND,
                              1 + PLATEAU_BAND,
                              why="the paper: the sharpness equilibrates at the method's stability threshold; band "
                                  "3% (PLATEAU_BAND: its figures, recalled; 1/16 of the gap to the GD plateau)",
                              note=(f"threshold {limit:.4g} (lr {lr}, beta {BETA}); late window steps "
                                    f"{int(steps * (1 - LATE_FRACTION))}-{steps}: min {ratio.min():.4f}, max "
                                    f"{ratio.max():.4f}; peak over the run {np.max(S) / limit:.3f}; S(w0) / "
                                    f"threshold {ev['s0'] / limit:.3f}; loss {run['loss'][0]:.3g} -> "
                                    f"{run['loss'][-1]:.3g}")),
                claims.bound(f"{label}: late-window median of lr S / 2 (GD's plateau would be 1, this method's "
                             f"{candidates[name]:g})", gd_units, midpoint, upper=name == "nesterov",
                             why="which threshold the plateau follows: the midpoint between the two candidate "
                                 "plateaus separates them, no tolerance"),
            ]
        return result

    def figure(self, ev):
        fig, ax = figures.panels(self, 1, width=5.6, height=4.0)
        ax = ax[0]
        for name, color in (("heavy_ball", "C0"), ("nesterov", "C1")):
            run = ev[name]
            ax.plot(run["k"], run["S"] / run["threshold"], color=color, label=f"{name} (lr {run['lr']})")
        figures.reference_line(ax, y=1.0, color="r", label="threshold (prediction)")
        figures.axes_style(ax, "step k", "S / threshold", title=f"momentum at the edge of stability, beta {BETA}")
        ax.legend(fontsize=7)
        return fig
