"""Cohen, Kaur, Li, Kolter, Talwalkar (ICLR 2021): gradient descent at the edge of stability (docs/flows.md
section 8).

CPU setup (central_flows_jax examples/mlp.ipynb; dataset "eos_mlp"): x ~ N(0, 1) in R^{128 x 8}, y ~ N(0, 1), MLP
8-16-16-1 with swish (433 flat parameters), L = mean (f - y)^2 (no 1/2), GD w_{k+1} = w_k - eta grad L(w_k) with
eta = 0.1 and 0.05 from one init. Sharpness S = lambda_max(H) at the midpoints (w_k + w_{k+1})/2 (removes the
period-2 oscillation), every SHARP_EVERY steps, by Lanczos with a fixed number of HVPs (`sharpness_along`), checked
against dense eigh; GF is the step-time flow dw/dtau = -eta grad L (`StableFlow`), which should keep sharpening past
2/eta while GD hovers at eta S ~ 2.

Horizons and windows (fixed by the budget, docs/flows.md section 8, corrected): the onset (~ step 400 on this draw) is
followed by a damped saw-tooth (eta S up to 2.7, loss spikes) that settles by step ~1500 for eta and ~3000 for eta/2,
so the runs are 3000 / 6000 steps (quick) or 6000 / 12000 (full) and the late window is the last third of each run.

The edge-of-stability claim is the paper's: after progressive sharpening the sharpness "hovers right at, or just
above, 2/eta" (abstract; Figure 1 caption), with S measured at the iterates every eig_freq steps (locuslab
edge-of-stability, src/gd.py). Its threshold is 2/eta itself: the claim is eta S >= 2 at the iterates over the late
window (sampled every SHARP_EVERY steps, i.e. on the same parity of the period-2 oscillation, as the paper's sampling
every 50-100 steps is), for eta and eta/2. "Just above" is not quantified in the paper, so no upper margin is claimed;
that S stops rising is claimed as an ordering against gradient flow, which keeps sharpening. The former band
[1.95, 2.10] on midpoints and the cap 2.6 on the late maximum came from an earlier spec, not from the paper (which
reports that S can exceed 2/eta, e.g. at the onset); the midpoint values and the overshoot are reported in the notes.
"""

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from dynamics import GradientDescent, StableFlow, sharpness, simulate
from dynamics.measure.eos import loss_oscillation, midpoints, sharpness_along
from dynamics.models.mlp import mlp_loss

from .common import by_budget, claims, datasets, figures
from .harness import Theorem, expected_failure

ETA = 0.1
STEPS = {"quick": 3000, "full": 6000}        # GD steps of the eta run; the eta/2 run takes twice as many
LANCZOS_STEPS = 20                           # HVPs per sharpness; checked against dense eigh in a claim
CHECKS = 10                                  # midpoints where Lanczos is compared with dense eigh
EIG_TOL = 1e-8                               # dynamics' float64 eigen-residual tolerance (linalg.default_tol)
LATE_FRACTION = 1 / 3                        # late window = last third of a run
EOS_THRESHOLD = 2.0                          # the paper: eta S hovers right at, or just above, 2 (at the iterates)
AVERAGE = 100                                # moving-average length (steps), check (c)
HALF_BELOW = expected_failure(
    "the paper's 'right at, or just above' read with its threshold 2 and no margin: on the eta/2 run the oscillation "
    "is small (iterates and midpoints agree to 1e-4) and GD's eta S sits right at 2 but below it, median 1.99961 at "
    "the iterates (1.9997 at midpoints; quick budget, steps 4000-6000); the eta run sits above (2.013)")


def cpu_mlp(seed=0):
    """(E(flat w), w0): the central-flows CPU MLP on Gaussian data (dataset "eos_mlp", docs/flows.md section 8)."""
    data = datasets.dataset("eos_mlp", seed=seed)
    w0, unravel = ravel_pytree(jax.tree_util.tree_map(jax.numpy.asarray, data["params"]))
    loss = mlp_loss(jax.numpy.asarray(data["X"]), jax.numpy.asarray(data["y"]), "swish")
    return (lambda w: loss(unravel(w))), w0


def gd_run(E, w0, eta, steps, every, iterates=False):
    """GD iterates 0..steps, their losses, and eta S at the midpoints (and iterates) k = 0, every, 2 every, ..."""
    W = simulate(GradientDescent(E, eta), w0, eta * np.arange(steps + 1.0)).ys
    k = np.arange(0, steps, every)
    run = {"W": W, "loss": np.asarray(jax.vmap(E)(W)), "k": k,
           "eta_s": eta * sharpness_along(E, midpoints(W)[k], "lanczos", LANCZOS_STEPS)}
    if iterates:
        run["eta_s_iterates"] = eta * sharpness_along(E, W[k], "lanczos", LANCZOS_STEPS)
    return run


def gf_run(E, w0, eta, steps, every):
    """Step-time gradient flow at tau = k + 1/2 for the saved k, with its loss and eta S."""
    ts = np.arange(0, steps, every) + 0.5
    tr = simulate(StableFlow(E, eta), w0, ts, observe=lambda t, w: (w, E(w), sharpness(E, w, "lanczos")),
                  rtol=1e-9, atol=1e-12)
    return {"t": ts, "W": tr.ys[0], "loss": np.asarray(tr.ys[1]), "eta_s": eta * np.asarray(tr.ys[2])}


def late(k, steps):
    return k >= steps * (1 - LATE_FRACTION)


class Cohen2021(Theorem):
    id = "cohen2021_eos"
    reference = ("Cohen, Kaur, Li, Kolter, Talwalkar: Gradient descent on neural networks typically occurs at the "
                 "edge of stability, ICLR 2021")
    statement = ("Full-batch GD with step eta on a neural network first sharpens progressively (the top Hessian "
                 "eigenvalue S rises, as it does along gradient flow), until S reaches the stability threshold 2/eta; "
                 "then S hovers at about 2/eta (edge of stability) while the loss keeps decreasing over long times "
                 "but non-monotonically over short ones. Gradient flow instead keeps sharpening past 2/eta.")
    hypotheses = ("full-batch GD, float64, sharpness of the full training loss at midpoints (w_k + w_{k+1})/2",
                  "eta S(w_0) < 2 (training starts stable; checked)")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp(self.seed)
        steps, every = by_budget(budget, STEPS["quick"], STEPS["full"]), by_budget(budget, 10, 5)
        s0 = ETA * float(sharpness(E, w0, "dense"))
        if s0 >= 2.0:
            raise ValueError(f"eta S(w0) = {s0:.3g} >= 2: GD starts unstable")
        gd = gd_run(E, w0, ETA, steps, every, iterates=True)
        half = gd_run(E, w0, ETA / 2, 2 * steps, 2 * every, iterates=True)   # same points per unit of physical time
        gf = gf_run(E, w0, ETA, steps, every)
        gd["gf_distance"] = np.linalg.norm(np.asarray(midpoints(gd["W"])[gd["k"]] - gf["W"]), axis=1)
        pick = np.linspace(0, gd["k"].size - 1, CHECKS).astype(int)
        gd["dense_check"] = ETA * sharpness_along(E, midpoints(gd["W"])[gd["k"][pick]], "dense"), pick
        for run in (gd, half, gf):
            run.pop("W")
        return {"steps": steps, "gd": gd, "half": half, "gf": gf}

    def check(self, ev):
        gd, half, gf, steps = ev["gd"], ev["half"], ev["gf"], ev["steps"]
        k, eta_s = gd["k"], gd["eta_s"]
        window = late(k, steps)
        onset = int(k[np.argmax(eta_s >= 2.0)])
        g = gf["eta_s"][late(gf["t"], steps)]
        increases, average_ratio = loss_oscillation(gd["loss"][onset:], AVERAGE)
        reached = np.any(half["eta_s"] >= 2.0)
        onset2 = int(half["k"][np.argmax(half["eta_s"] >= 2.0)]) if reached else 2 * steps
        window2 = late(half["k"], 2 * steps)
        lo = int(steps * (1 - LATE_FRACTION))
        dense, pick = gd["dense_check"]
        eos_why = ("the paper: S 'hovers right at, or just above, 2/eta' (abstract; Figure 1 caption), measured at the "
                   "iterates as its gd.py does; the threshold itself, no margin ('just above' is not quantified)")
        it, it2 = gd["eta_s_iterates"][window], half["eta_s_iterates"][window2] if reached else np.array([np.nan])
        return [
            claims.bound(f"Lanczos ({LANCZOS_STEPS} HVPs) vs dense eigh, eta S at {CHECKS} midpoints: max relative "
                         "gap", float(np.max(np.abs(eta_s[pick] / dense - 1))), EIG_TOL, role="consistency",
                         why="dense eigh is exact to ~1e-15 on 433 parameters, so the gap is Lanczos's error; 1e-8 is "
                             "dynamics' float64 eigen-residual tolerance",
                         note="independent check of the sharpness measurement"),
            claims.monotone("GF sharpening: eta S_GF over the late window (sampled every "
                            f"{int(gf['t'][1] - gf['t'][0])} steps)", g, increasing=True,
                            why="the paper: GF sharpens progressively; slack 0: Lanczos's error (~1e-15, checked "
                                "above) is far below any sampled increment",
                            note=f"docs/flows.md section 8 (a); eta S_GF from {g[0]:.3f} to {g[-1]:.3f}"),
            claims.bound("GF sharpening: eta S_GF at the end", float(g[-1]), 2.0, upper=False,
                         why="the paper: GF keeps sharpening past 2/eta; the threshold itself, no margin",
                         note="docs/flows.md section 8 (a)"),
            claims.bound(f"median eta S at GD iterates (every {int(k[1] - k[0])} steps), late window",
                         float(np.median(it)), EOS_THRESHOLD, upper=False, why=eos_why,
                         note=(f"docs/flows.md section 8 (b), steps {lo}-{steps}; iterates: min {it.min():.4f}, max "
                               f"{it.max():.4f}; midpoints: median {np.median(eta_s[window]):.4f}, range "
                               f"[{eta_s[window].min():.4f}, {eta_s[window].max():.4f}]; onset at step {onset}, "
                               f"overshoot after onset up to {np.max(eta_s):.3f} (midpoints), "
                               f"{np.max(gd['eta_s_iterates']):.3f} (iterates)")),
            claims.bound("max eta S at GD iterates, late window, vs eta S_GF at the window's start", float(np.max(it)),
                         float(g[0]),
                         why="the paper: at the EoS the sharpness stops rising while GF keeps sharpening (progressive "
                             "sharpening); an ordering of two independent runs, no tolerance",
                         note=(f"docs/flows.md section 8 (a)-(b); eta S_GF {g[0]:.3f} -> {g[-1]:.3f} over "
                               "the window")),
            claims.bound("loss increases after onset (count)", increases, 1, upper=False,
                         why="the paper: the loss is non-monotone over short times; one increase shows it",
                         note=f"docs/flows.md section 8 (c); onset = first midpoint with eta S >= 2 (step {onset})"),
            claims.bound(f"{AVERAGE}-step moving-average loss after onset: last / first", average_ratio, 1.0,
                         why="the paper: the loss decreases over long times; ratio 1 = no decrease",
                         note="docs/flows.md section 8 (c)"),
            claims.bound("eta/2 run: median eta S at GD iterates, late window",
                         float(np.median(it2)) if reached else float("nan"), EOS_THRESHOLD, upper=False,
                         why=eos_why + "; the plateau tracks 2/eta", xfail=HALF_BELOW,
                         note=(f"docs/flows.md section 8 (d); onset at step {onset2}, window {2 * lo}-{2 * steps}; "
                               f"midpoints: median {np.median(half['eta_s'][window2]):.4f}"
                               if reached else "docs/flows.md section 8 (d): the eta/2 run did not reach eta S = 2 "
                                               "within the horizon")),
        ]

    def figure(self, ev):
        gd, half, gf = ev["gd"], ev["half"], ev["gf"]
        fig, ax = figures.panels(self, 3, width=5.2, height=4.0)
        ax[0].plot(gd["k"], gd["eta_s_iterates"], color="0.75", lw=0.6, label=r"GD iterates, $\eta = 0.1$")
        ax[0].plot(gd["k"], gd["eta_s"], label=r"GD midpoints, $\eta = 0.1$")
        ax[0].plot(half["k"] / 2, half["eta_s"], label=r"GD midpoints, $\eta = 0.05$ ($k/2$)")
        ax[0].plot(gf["t"], gf["eta_s"], "k--", label="GF (step time)")
        figures.reference_line(ax[0], y=2.0, color="r", label="2 (prediction)")
        figures.axes_style(ax[0], r"step $k$ ($\eta = 0.1$)", r"$\eta\,S$", title="sharpness")
        ax[0].set_ylim(0, 6)
        ax[0].legend(fontsize=7)
        ax[1].plot(gd["loss"], lw=0.7, label=r"GD $\eta = 0.1$")
        ax[1].plot(np.arange(half["loss"].size) / 2, half["loss"], lw=0.7, label=r"GD $\eta = 0.05$ ($k/2$)")
        ax[1].plot(gf["t"], gf["loss"], "k--", label="GF")
        figures.axes_style(ax[1], r"step $k$ ($\eta = 0.1$)", "loss", logy=True, title="loss")
        ax[1].legend(fontsize=7)
        ax[2].plot(gd["k"] + 0.5, gd["gf_distance"])
        figures.axes_style(ax[2], "k", r"$\|w_{GD,mid} - w_{GF}\|$", logy=True,
                           title="GD leaves GF after the onset")
        return fig
