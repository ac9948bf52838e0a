"""Cohen, Damian, Talwalkar, Kolter, Lee (ICLR 2025): central flows (flows.md 10).

On the CPU MLP of flows.md 8 (see `cohen2021_eos`) with eta = 0.1, the central flow (CF, step time, Euler substeps of
1/4 as in the authors' code, `dynamics.CentralFlow`)

    dw/dtau = -eta [grad L + (1/2) grad <Sigma, H>],  Sigma = V X V^T,  X from the SDCP keeping eta lambda <= 2,

should track the time-averaged GD trajectory: ||GD_mid - CF|| << ||GD_mid - GF|| (GD_mid = (w_k + w_{k+1})/2 at
tau = k + 1/2, compared with CF/GF at tau = k), the GD loss smoothed over ~50 steps should equal the predicted loss
L(w_CF) + (1/2)<Sigma, H>, and eta lambda_1(w_CF) stays <= 2. For one critical eigenvalue the SDCP is solved in
closed form: sigma^2 = 2 <-grad L, grad S> / ||grad S||^2 with grad S = T[u, u] [derived, flows.md 9-10]; the
Euler-substep scheme adds (lambda - 2/eta)/B with B = dt (eta/2) ||grad S||^2.

Horizon and windows as in `cohen2021_eos` (3000 steps; late window = last third): on this draw GD's onset
oscillation (loss spikes, eta S up to 2.7) lasts until step ~1500, and the central flow, which holds S at 2/eta,
does not model it (the paper says so; flows.md 10). The loss prediction is therefore checked on the settled late
window, and over the whole post-onset period as a known failure with its number.
"""

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter1d

from dynamics import CentralFlow, GradientDescent, StableFlow, gradient, simulate, third
from dynamics.derivatives import hessian
from dynamics.eos_metrics import distance_to_gd, sharpness_along
from dynamics.processes.eos import central_flow_scalar, solve_sdcp

from .cohen2021_eos import ETA, LANCZOS_STEPS, LATE_FRACTION, STEPS, cpu_mlp
from .harness import Claim, Theorem

K = {"quick": 3, "full": 5}
LANCZOS_STEPS_CF = 15    # warm-started from the previous top eigenvector; checked against dense eigh in a claim
SAVE_EVERY = 10          # predictions and sharpness every this many steps
RATIO_MAX = 0.3          # flows.md 10 checks
LOSS_TOL = 0.05
SMOOTH = 50.0            # Gaussian sigma (steps) for the time-averaged GD loss
ETA_LAMBDA_MAX = 2.01
SCALAR_TOL = 1e-8
CHECKS = 6               # CF states where the eigensolver is checked against dense eigh
EIG_TOL = 1e-8
OSC_WINDOW = 25         # half-width (steps) of the oscillation-variance windows
OSC_TOL = 0.05
VALIDATE_STEPS = 500     # CF steps re-run with a residual-driven eigensolver


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

    def run(self, budget="quick"):
        E, w0 = cpu_mlp()
        steps, k = STEPS[budget], K[budget]
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
                "d_gf": distance_to_gd(W, W_gf), "predicted": predicted, "eta_lambda": eta_lam, "trace_sigma": trace_sigma,
                "half_step2": np.asarray(0.25 * jnp.sum((W[1:] - W[:-1]) ** 2, axis=1)),
                "delta2": np.asarray(jnp.sum((W - W_cf) ** 2, axis=1)),
                "cf_seconds": cf_seconds, "solver_gap": solver_gap, "dense_check": dense, "pick": pick, "eta_s_gf": ETA * sharpness_along(E, W_gf[saved[:-1]], steps=LANCZOS_STEPS),
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
        inner = settled & (t >= OSC_WINDOW) & (t <= steps - OSC_WINDOW)
        window_mean = lambda x: np.array([x[i - OSC_WINDOW:i + OSC_WINDOW].mean() for i in t[inner]])
        oscillation = window_mean(ev["half_step2"])
        osc_err = float(np.max(np.abs(oscillation / ev["trace_sigma"][inner] - 1)))
        delta2 = window_mean(ev["delta2"])
        predicted_x = ev["sigma2"] + (ev["lam1"] - 2 / ETA) / ev["B"]
        lo = int(steps * (1 - LATE_FRACTION))
        lanczos = ev["eta_lambda"][np.searchsorted(t, ev["pick"])]
        return [
            Claim(f"CF predictions' eigenpairs (LOBPCG) vs dense eigh, eta lambda_1..{ev['k']} at {CHECKS} CF states",
                  float(np.max(np.abs(lanczos - ev["dense_check"]))), EIG_TOL, kind="max",
                  note="max abs gap; independent check of the eigenvalues behind the predictions"),
            Claim(f"CF with warm {LANCZOS_STEPS_CF}-step Lanczos vs CF with LOBPCG to residual 1e-9, max |w| gap",
                  ev["solver_gap"], EIG_TOL, kind="max",
                  note=f"steps 0-{VALIDATE_STEPS} (through the onset); validates the cheap eigensolver of the main run"),
            Claim("late-window max ||GD_mid - CF|| / ||GD_mid - GF||", ratio, RATIO_MAX, kind="max",
                  note=(f"flows.md 10, steps {lo}-{steps}, all steps, flows at tau = k + 1/2; CF k = {ev['k']}, "
                        f"Lanczos, {ev['cf_seconds']:.0f} s")),
            Claim("predicted loss vs Gaussian-smoothed GD loss (sigma 50 steps), max rel error, late window",
                  float(np.max(rel[settled])), LOSS_TOL, kind="max",
                  note=f"flows.md 10 prediction 2, steps {lo}-{steps - 2 * SMOOTH:.0f} (edges of 2 sigma cut)"),
            Claim("predicted loss vs smoothed GD loss, max rel error from onset on", float(np.max(rel[after])),
                  LOSS_TOL, kind="max",
                  note=f"flows.md 10; onset tau = {onset:.0f}; worst at step {worst}",
                  known_failure=("the central flow holds S at 2/eta and does not model GD's damped oscillation at "
                                 "the onset (loss spikes; Cohen et al. 2025 and flows.md 10 say so); on this draw it "
                                 "lasts until step ~1500, the reference draw's settles by ~700")),
            Claim("oscillation: windowed mean ||w_k - (w_k + w_k+1)/2||^2 vs tr Sigma(CF), max rel error, late window",
                  osc_err, OSC_TOL, kind="max",
                  note=(f"flows.md 10 prediction 4, +-{OSC_WINDOW}-step windows; the oscillation is measured about GD's "
                        "own midpoints: the spec's E||w_GD(k) - w_CF(k)||^2 also holds the offset the onset left "
                        f"between GD and CF ({np.sqrt(delta2.mean()):.3f} rms vs oscillation "
                        f"{np.sqrt(oscillation.mean()):.3f})")),
            Claim("max eta lambda_1(CF)", float(np.max(ev["eta_lambda"][:, 0])), ETA_LAMBDA_MAX, kind="max",
                  note="flows.md 10 prediction 3"),
            Claim("k = 1: CF's X vs sigma^2 + (lambda - 2/eta)/B (closed form, grad S = T[u,u])", ev["X1"],
                  predicted_x, SCALAR_TOL, kind="rel",
                  note=(f"at the last CF state; sigma^2 = {ev['sigma2']:.6g}, eta lambda = {ETA * ev['lam1']:.6g}; "
                        f"solve_sdcp {ev['sdcp']:.10g} vs max(0, -A/B) {ev['scalar']:.10g}")),
        ]

    def figure(self, ev):
        t, k = ev["saved"], np.arange(ev["steps"]) + 0.5
        fig, ax = plt.subplots(1, 3, figsize=(15, 4))
        ax[0].semilogy(k, ev["d_cf"], label="||GD_mid - CF||")
        ax[0].semilogy(k, ev["d_gf"], label="||GD_mid - GF||")
        ax[0].set(xlabel="step", ylabel="distance", title="distances to GD midpoints")
        ax[0].legend()
        ax[1].plot(t, ev["eta_lambda"][:, 0], label="CF")
        ax[1].plot(t[:-1] + 0.5, ev["eta_s_gf"], "k--", label="GF")
        ax[1].axhline(2.0, color="r", lw=0.8, label="2")
        ax[1].set(xlabel="step", ylabel="eta lambda_1", title="sharpness", ylim=(0, 6))
        ax[1].legend()
        ax[2].semilogy(ev["loss"], lw=0.5, label="GD loss")
        ax[2].semilogy(gaussian_filter1d(ev["loss"], SMOOTH, mode="nearest"), label="GD smoothed (50)")
        ax[2].semilogy(t, ev["predicted"], "--", label="CF predicted")
        ax[2].set(xlabel="step", ylabel="loss", title="loss")
        ax[2].legend()
        return fig
