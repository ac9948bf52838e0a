"""Cohen, Damian, Talwalkar, Kolter, Lee (ICLR 2025): central flows (docs/flows.md section 10).

On the CPU MLP of docs/flows.md section 8 (see `cohen2021_eos`) with eta = 0.1, the central flow (CF, step time, Euler
substeps of 1/4 as in the authors' code, `dynamics.CentralFlow`)

    dw/dtau = -eta [grad L + (1/2) grad <Sigma, H>],  Sigma = V X V^T,  X from the SDCP keeping eta lambda <= 2,

should track the time-averaged GD trajectory: ||GD_mid - CF|| << ||GD_mid - GF|| (GD_mid = (w_k + w_{k+1})/2 at
tau = k + 1/2, compared with CF/GF at tau = k), the GD loss smoothed over ~50 steps should equal the predicted loss
L(w_CF) + (1/2)<Sigma, H>, GD's oscillation variance should equal tr Sigma, and eta lambda_1(w_CF) stays <= 2. For one
critical eigenvalue the SDCP has a closed form: sigma^2 = 2 <-grad L, grad S> / ||grad S||^2 with grad S = T[u, u]
(docs/flows.md sections 9-10); the Euler-substep scheme adds (lambda - 2/eta)/B with B = dt (eta/2) ||grad S||^2.

Horizon and windows as in `cohen2021_eos` (3000 steps quick, 6000 full; late window = last third, fixed by the
budget): on this draw GD's onset oscillation (loss spikes, eta S up to 2.7) lasts until step ~1500, and the central
flow, which holds S at 2/eta, does not model it (the paper says so; docs/flows.md section 10). The loss prediction is
claimed on the settled late window and over the whole post-onset period; in the latter the loss spikes make GD's time
average itself uncertain (doubling the smoothing width moves it by ~19% on this draw), and the tolerance says so.

Tolerances (the paper gives no number: the central flow "accurately" predicts the time-averaged loss and the
oscillation variance, and the GD-CF distance "remains small" while GD-GF "grows large"): the distance ratio is
bounded by 0.1, "<<" read as an order of magnitude (formerly 0.3, a spec reading); the loss and oscillation
predictions are compared with GD's time averages to twice the measured resolution of those averages, i.e. the largest
relative change of the average over the same window when its width is doubled (Gaussian sigma 50 -> 100 steps for
the loss, window +-25 -> +-50 steps for the oscillation) -- an error of the reference, computed from GD alone
(formerly a fixed 5%, a spec value).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.ndimage import gaussian_filter1d

from dynamics import CentralFlow, GradientDescent, StableFlow, gradient, simulate, third
from dynamics.derivatives import hessian
from dynamics.measure.eos import distance_to_gd, sharpness_along
from dynamics.processes.eos import central_flow_scalar, solve_sdcp

from .cohen2021_eos import ETA, LANCZOS_STEPS, LATE_FRACTION, STEPS, cpu_mlp
from .common import by_budget, claims, figures
from .harness import Theorem, expected_failure

K = {"quick": 3, "full": 5}
LANCZOS_STEPS_CF = 15    # warm-started from the previous top eigenvector; checked against dense eigh in a claim
SAVE_EVERY = 10          # predictions and sharpness every this many steps
RATIO_MAX = 0.1          # the paper: GD-CF distance stays small while GD-GF grows; "<<" = an order of magnitude
SMOOTH = 50.0            # Gaussian sigma (steps) for the time-averaged GD loss
ETA_LAMBDA_MAX = 2.01
SCALAR_TOL = 1e-8
CHECKS = 6               # CF states where the eigensolver is checked against dense eigh
EIG_TOL = 1e-8           # dynamics' float64 eigen-residual tolerance (linalg.default_tol)
OSC_WINDOW = 25          # half-width (steps) of the oscillation-variance windows
RESOLUTION_FACTOR = 2.0  # tolerance = twice the measured resolution of GD's time average (sigma or window doubled)
VALIDATE_STEPS = 500     # CF steps re-run with a residual-driven eigensolver
OSCILLATION_GAP = expected_failure(
    "modelling limit: the central flow is a leading-order (cubic Taylor) model of the oscillation; on this run its "
    "tr Sigma differs from GD's windowed squared half-step by 2.1% (quick budget, late window), beyond twice the "
    "0.70% resolution of the window average; Cohen et al. 2025 show agreement in figures without a number")


class Cohen2025(Theorem):
    id = "cohen2025_central_flow"
    reference = ("Cohen, Damian, Talwalkar, Kolter, Lee: Understanding optimization in deep learning with central "
                 "flows, ICLR 2025")
    statement = ("At the edge of stability, the time-averaged trajectory of GD with step eta follows the central flow "
                 "dw/dtau = -eta [grad L + (1/2) grad <Sigma, H>], where the oscillation covariance Sigma >= 0 on the "
                 "critical eigenspace solves a complementarity problem that keeps eta lambda_max(H) <= 2; the "
                 "time-averaged GD loss equals L(w) + (1/2)<Sigma, H>. With one critical eigenvalue Sigma = sigma^2 u "
                 "u^T, sigma^2 = max(0, 2<-grad L, grad S>/||grad S||^2): projected gradient flow on {S <= 2/eta}.")
    hypotheses = ("full-batch GD, float64, eta S(w_0) < 2", "critical eigenvalues tracked: top k Hessian eigenpairs")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp()
        steps, k = by_budget(budget, STEPS["quick"], STEPS["full"]), by_budget(budget, K["quick"], K["full"])
        taus = np.arange(0, steps + 1.0)
        W = simulate(GradientDescent(E, ETA), w0, ETA * taus).ys
        loss = np.asarray(jax.vmap(E)(W))
        W_gf = simulate(StableFlow(E, ETA), w0, taus[:-1] + 0.5, rtol=1e-10, atol=1e-12).ys
        start = time.perf_counter()
        cf = CentralFlow(E, ETA, k=k, method="lanczos", lanczos_steps=LANCZOS_STEPS_CF)
        W_cf = simulate(cf, w0, taus).ys   # step time: CF iterate k sits at tau = k
        cf_seconds = time.perf_counter() - start
        reference = CentralFlow(E, ETA, k=k, method="lobpcg", tol=1e-9)   # residual-driven, block tracked
        check = taus[:VALIDATE_STEPS + 1:SAVE_EVERY]
        W_ref = simulate(reference, w0, check).ys
        solver_gap = float(jnp.max(jnp.abs(W_ref - W_cf[check.astype(int)])))
        saved = np.arange(0, steps + 1, SAVE_EVERY)
        pred = jax.jit(jax.vmap(lambda w: (lambda p: (p["predicted_loss"], p["eta_lambda"], jnp.trace(p["X"])))(
            cf.predictions(w))))
        predicted, eta_lam, trace_sigma = (np.asarray(a) for a in pred(W_cf[saved]))
        pick = saved[np.linspace(0, saved.size - 1, CHECKS).astype(int)]
        dense = ETA * np.stack([np.linalg.eigvalsh(np.asarray(hessian(E)(W_cf[i])))[::-1][:k] for i in pick])
        # k = 1 closed form at the last CF state (an EoS state)
        w = W_cf[-1]
        cf1 = CentralFlow(E, ETA, k=1, method="dense")
        X, V, lam, critical, D, g = cf1.analyse(w)
        u = V[:, 0]
        grad_s = third(E)(w, u, u)
        sigma2 = max(0.0, float(2 * (-gradient(E)(w)) @ grad_s / (grad_s @ grad_s)))
        B = float((1.0 / cf1.substeps) * (ETA / 2) * grad_s @ grad_s)
        A = float(2.0 / ETA - lam[0] - (1.0 / cf1.substeps) * (D[0, 0] @ (-ETA * g)))
        sdcp = float(solve_sdcp(jnp.array([[A]]), jnp.array([[B]]), jnp.array([True]))[0, 0])
        return {"steps": steps, "k": k, "loss": loss, "saved": saved, "d_cf": distance_to_gd(W, W_cf),
                "d_gf": distance_to_gd(W, W_gf), "predicted": predicted, "eta_lambda": eta_lam,
                "trace_sigma": trace_sigma,
                "half_step2": np.asarray(0.25 * jnp.sum((W[1:] - W[:-1]) ** 2, axis=1)),
                "delta2": np.asarray(jnp.sum((W - W_cf) ** 2, axis=1)),
                "cf_seconds": cf_seconds, "solver_gap": solver_gap, "dense_check": dense, "pick": pick,
                "eta_s_gf": ETA * sharpness_along(E, W_gf[saved[:-1]], "lanczos", LANCZOS_STEPS),
                "X1": float(X[0, 0]), "sigma2": sigma2, "lam1": float(lam[0]), "B": B, "A": A, "sdcp": sdcp,
                "scalar": float(central_flow_scalar(A, B))}

    def check(self, ev):
        steps, t = ev["steps"], ev["saved"]
        k = np.arange(steps)
        late = k >= steps * (1 - LATE_FRACTION)
        ratio = float(np.max(ev["d_cf"][late] / ev["d_gf"][late]))
        smooth = gaussian_filter1d(ev["loss"], SMOOTH, mode="nearest")[t]
        rel = np.abs(ev["predicted"] / smooth - 1)
        onset = t[np.argmax(ev["eta_lambda"][:, 0] >= 1.95)]
        after = (t >= onset + 2 * SMOOTH) & (t <= t[-1] - 2 * SMOOTH)
        settled = (t >= steps * (1 - LATE_FRACTION)) & (t <= t[-1] - 2 * SMOOTH)
        worst = int(t[after][np.argmax(rel[after])])
        inner = settled & (t >= 2 * OSC_WINDOW) & (t <= steps - 2 * OSC_WINDOW)
        window_mean = lambda x, h=OSC_WINDOW: np.array([x[i - h:i + h].mean() for i in t[inner]])
        oscillation = window_mean(ev["half_step2"])
        osc_err = float(np.max(np.abs(oscillation / ev["trace_sigma"][inner] - 1)))
        osc_res = float(np.max(np.abs(oscillation / window_mean(ev["half_step2"], 2 * OSC_WINDOW) - 1)))
        wide = gaussian_filter1d(ev["loss"], 2 * SMOOTH, mode="nearest")[t]
        loss_res = {name: float(np.max(np.abs(smooth / wide - 1)[mask])) for name, mask in
                    (("settled", settled), ("after", after))}
        delta2 = window_mean(ev["delta2"])
        predicted_x = ev["sigma2"] + (ev["lam1"] - 2 / ETA) / ev["B"]
        lo = int(steps * (1 - LATE_FRACTION))
        lanczos = ev["eta_lambda"][np.searchsorted(t, ev["pick"])]
        average_why = ("the paper's time-average prediction (no number given); tolerance = twice the measured "
                       "resolution of GD's Gaussian-smoothed loss: its largest relative change on this window when "
                       f"sigma is doubled ({SMOOTH:g} -> {2 * SMOOTH:g} steps), an error of the reference computed "
                       "from GD alone")
        return [
            claims.bound(f"CF predictions' eigenvalues (warm Lanczos) vs dense eigh, eta lambda_1..{ev['k']} at "
                         f"{CHECKS} CF states, max abs gap", float(np.max(np.abs(lanczos - ev["dense_check"]))),
                         EIG_TOL, role="consistency",
                         why="dense eigh is exact to ~1e-15 on 433 parameters, so the gap is the cheap solver's error; "
                             "1e-8 is dynamics' float64 eigen-residual tolerance"),
            claims.bound(f"CF with warm {LANCZOS_STEPS_CF}-step Lanczos vs CF with LOBPCG to residual 1e-9, max |w| "
                         "gap",
                         ev["solver_gap"], EIG_TOL, role="consistency",
                         why="two eigensolvers driving the same flow; LOBPCG's residual 1e-9 bounds its own error, so "
                             "a gap above 1e-8 would be the cheap solver's",
                         note=f"steps 0-{VALIDATE_STEPS} (through the onset); validates the main run's eigensolver"),
            claims.bound("late-window max ||GD_mid - CF|| / ||GD_mid - GF||", ratio, RATIO_MAX,
                         why="the paper: the GD-CF distance stays small while the GD-GF distance grows large once at "
                             "the EoS (section 3 figures; companion site, part I); '<<' read as an order of "
                             "magnitude, a convention fixed independently of this run",
                         note=(f"docs/flows.md section 10, steps {lo}-{steps}, all steps, flows at tau = k + 1/2; "
                               f"CF k = {ev['k']}, Lanczos, {ev['cf_seconds']:.0f} s")),
            claims.bound("predicted loss vs Gaussian-smoothed GD loss (sigma 50 steps), max rel error, late window",
                         float(np.max(rel[settled])), RESOLUTION_FACTOR * loss_res["settled"], why=average_why,
                         note=f"docs/flows.md section 10 prediction 2, steps {lo}-{steps - 2 * SMOOTH:.0f} (edges of "
                              "2 sigma cut)"),
            claims.bound("predicted loss vs smoothed GD loss, max rel error from onset on", float(np.max(rel[after])),
                         RESOLUTION_FACTOR * loss_res["after"], why=average_why,
                         note=(f"docs/flows.md section 10; onset tau = {onset:.0f}; worst at step {worst}; resolution of "
                               f"the smoothed loss here {loss_res['after']:.3f} (onset spikes) vs "
                               f"{loss_res['settled']:.4f} late")),
            claims.bound("oscillation: windowed mean ||w_k - (w_k + w_k+1)/2||^2 vs tr Sigma(CF), max rel error, late "
                         "window", osc_err, RESOLUTION_FACTOR * osc_res, xfail=OSCILLATION_GAP,
                         why="the paper's oscillation-variance prediction (no number given); tolerance = twice the "
                             "measured resolution of GD's window average: its largest relative change when the window "
                             f"is doubled (+-{OSC_WINDOW} -> +-{2 * OSC_WINDOW} steps), computed from GD alone",
                         note=(f"docs/flows.md section 10 prediction 4, +-{OSC_WINDOW}-step windows; the oscillation "
                               "is measured about GD's own midpoints: E||w_GD(k) - w_CF(k)||^2 also holds the offset "
                               f"the onset left between GD and CF ({np.sqrt(delta2.mean()):.3f} rms vs oscillation "
                               f"{np.sqrt(oscillation.mean()):.3f})")),
            claims.bound("max eta lambda_1(CF)", float(np.max(ev["eta_lambda"][:, 0])), ETA_LAMBDA_MAX,
                         why="prediction 3: the CF holds eta lambda <= 2; 0.5% allows the Euler substeps' (dt = 1/4) "
                             "overshoot within a substep",
                         note="docs/flows.md section 10 prediction 3"),
            claims.identity("k = 1: CF's X vs sigma^2 + (lambda - 2/eta)/B (closed form, grad S = T[u,u])", ev["X1"],
                            predicted_x, SCALAR_TOL, relative=True, role="consistency",
                            why="the JAX SDCP solver agrees with a host QP to 4.5e-10 "
                                "(benchmarks/central_flow_sdcp.py); 1e-8 relative covers it",
                            note=(f"at the last CF state; sigma^2 = {ev['sigma2']:.6g}, eta lambda = "
                                  f"{ETA * ev['lam1']:.6g}; solve_sdcp {ev['sdcp']:.10g} vs max(0, -A/B) "
                                  f"{ev['scalar']:.10g}")),
        ]

    def figure(self, ev):
        t, k = ev["saved"], np.arange(ev["steps"]) + 0.5
        fig, ax = figures.panels(self, 3, width=5.0, height=4.0)
        ax[0].plot(k, ev["d_cf"], label=r"$\|GD_{mid} - CF\|$")
        ax[0].plot(k, ev["d_gf"], label=r"$\|GD_{mid} - GF\|$")
        figures.axes_style(ax[0], "k", "distance", logy=True, title="distances to GD midpoints")
        ax[0].legend()
        ax[1].plot(t, ev["eta_lambda"][:, 0], label="CF")
        ax[1].plot(t[:-1] + 0.5, ev["eta_s_gf"], "k--", label="GF")
        figures.reference_line(ax[1], y=2.0, color="r", label="2")
        figures.axes_style(ax[1], "k", "eta_lambda", title="sharpness")
        ax[1].set_ylim(0, 6)
        ax[1].legend()
        ax[2].plot(ev["loss"], lw=0.5, label="GD loss")
        ax[2].plot(gaussian_filter1d(ev["loss"], SMOOTH, mode="nearest"), label="GD smoothed (50)")
        ax[2].plot(t, ev["predicted"], "--", label="CF predicted")
        figures.axes_style(ax[2], "k", "loss", logy=True, title="loss")
        ax[2].legend()
        return fig
