"""Cohen, Damian, Talwalkar, Kolter, Lee (ICLR 2025), "Understanding optimization in deep learning with central
flows": the RMSProp central flow (docs/flows.md section 17).

RMSProp (per-coordinate; PyTorch's eps convention, no bias correction, no momentum) at the edge of stability
oscillates along the critical generalized eigenvectors H u = lambda P u, lambda = 2; its time-averaged trajectory
(w, nu) should follow the central flow `RMSPropCentralFlow` (dw/dtau = -P^-1 [grad L + (1/2) grad<Sigma, H>],
dnu/dtau = ((1 - beta2)/beta2)(grad L^2 + diag(H Sigma H) - nu)), not the stable flow `RMSPropStableFlow` (Sigma = 0),
and its time-averaged loss should equal L(w) + (1/2)<Sigma, H>.

Setup: the central-flows CPU MLP of `cohen2021_eos` (433 parameters, "eos_mlp"), full batch, float64,
optax.rmsprop(lr = 3e-3, decay = beta2 = 0.99, eps = 1e-8, eps_in_sqrt=False). RMSProp and both flows start from
(w_0, nu_0 = g_0^2) (`RMSPropFlowState`; optax via its state): with PyTorch's nu_0 = 0 the first update's effective
step is 10x larger (nu_1 = 0.01 g_0^2) and lambda_1(P^-1 H) = 2.2 at step 0, an unstable start neither flow models;
with nu_0 = g_0^2 it is 0.67 and RMSProp reaches the edge of stability at step ~36 (lr 3e-3 picked so that it does
within a few hundred steps; 1e-3, the rate `cohen2022_adaptive_eos` uses, takes ~290 steps from this start). Both
flows use the authors' discretization, Euler substeps (dt = 1/4 for the CF). The CF tracks k = 2 eigenpairs by
warm-started Lanczos.

Horizon: 300 steps (quick), 1000 (full); late window = last third. RMSProp overshoots at the onset (lambda_1(P^-1 H)
up to ~3.4 at step ~60: the EMA lags), which the CF, holding lambda_1 at 2, does not model (as for GD: docs/flows.md
section 10); the claims are on the late window.

The stable flow runs with SF_SUBSTEPS = 160 Euler substeps: its S_eff = lambda_1(P^-1 H) keeps growing past the edge
(~74 by step 300; with the CF's 4 substeps Euler turns unstable near S_eff = 8 and caps it at ~9, a numerical
artifact): claim (f) checks the authors' rule substeps >= 2 S_eff.

Claims: (a) consistency: the CF's eigenvalues lambda(P^-1 H) at CHECKS states vs scipy's dense generalized eigh
(jax.hessian, scipy.linalg.eigh(H, diag P)); (b) the late-window max ||RMSProp_mid - CF|| / ||RMSProp_mid - SF||
< 1 (the brief's ordering; the GD theorem's "<< = 0.1" is not claimed); (c) predicted loss vs the Gaussian-
smoothed RMSProp loss on the late window, tolerance twice the measured resolution of the smoothed loss (its largest
relative change there when sigma is doubled), the GD theorem's rule; (d) the same for the squared gradient norm,
||g||^2 + tr(H Sigma H); (e) max lambda_1(P^-1 H) along the CF <= 2.01 (Euler overshoot within a substep); (f)
consistency: the stable flow's substeps >= 2 max S_eff (the authors' rule).
Measured (quick): (a) 8e-15; (b) 0.35 (0.1, the GD theorem's "<<", is not reached);
(c) 3.8% vs 3.7%: an expected failure (LOSS_GAP: the prediction is systematically 1.5-4% low on the whole window);
(d) 24% vs 44% (RMSProp's oscillation amplitude cycles over ~20-40 steps, so a sigma-10 average of ||g||^2 resolves
its time average to ~22% only: a weak claim, reported as such); (e) 2.0006; (f) 0.92 (max S_eff 74 on the stable
flow, 160 substeps).
"""

import jax
import numpy as np
import optax
import scipy.linalg
from scipy.ndimage import gaussian_filter1d

from dynamics import OptaxMethod, RMSPropCentralFlow, RMSPropFlowState, RMSPropStableFlow, simulate
from dynamics.measure.eos import distance_to_gd

from .cohen2021_eos import LATE_FRACTION, cpu_mlp
from .common import by_budget, claims, figures
from .harness import Theorem, expected_failure

LR, BETA2, EPS = 3e-3, 0.99, 1e-8
STEPS = {"quick": 300, "full": 1000}
K, LANCZOS = 2, 15       # tracked eigenpairs; warm Lanczos HVPs per substep
SF_SUBSTEPS = 160        # the stable flow's Euler substeps: the authors' rule substeps >= 2 S_eff (checked, claim f)
SF_EVERY = 50            # steps between the stable flow's S_eff measurements
SAVE_EVERY = 5           # predictions every this many steps in the late window (twice that before it)
SMOOTH = 10.0            # Gaussian sigma (steps) of RMSProp's time-averaged loss / squared gradient norm
RESOLUTION_FACTOR = 2.0  # tolerance = twice the measured resolution of the time average (sigma doubled)
LAMBDA_MAX = 2.01        # lambda_1(P^-1 H) along the CF: 2 plus the Euler substeps' overshoot (0.5%)
CHECKS = 4               # CF states where the eigenvalues are checked against dense generalized eigh
EIG_TOL = 1e-8           # dynamics' float64 eigen-residual tolerance (linalg.default_tol)
LOSS_GAP = expected_failure(
    "measured, not explained: at the quick budget the predicted loss lies 1.5-4% below RMSProp's smoothed loss over "
    "the whole late window (3.8% max vs the 3.7% tolerance, twice the 1.8% resolution of the sigma-10 average): a "
    "systematic lead of the central flow, which does not model RMSProp's onset overshoot (lambda_1(P^-1 H) up to ~3.4 "
    "while the flow holds 2; the EMA remembers it for ~1/(1 - beta2) = 100 steps); the full budget was not run",
    "quick")


def warm_rmsprop(tx, nu0):
    """``tx`` (optax.rmsprop) started from the EMA nu_0 instead of 0."""
    return optax.GradientTransformation(lambda p: (optax.ScaleByRmsState(nu=nu0),) + tuple(tx.init(p)[1:]),
                                        tx.update)


class Cohen2025RMSProp(Theorem):
    id = "cohen2025_rmsprop_central_flow"
    reference = ("Cohen, Damian, Talwalkar, Kolter, Lee: Understanding optimization in deep learning with central "
                 "flows, ICLR 2025 (arXiv:2410.24206)")
    statement = ("At the edge of stability the time-averaged trajectory of RMSProp follows its central flow "
                 "dw/dt = -P^-1 [grad L + (1/2) grad<Sigma, H>], dnu/dt = ((1 - beta2)/beta2)(grad L^2 + "
                 "diag(H Sigma H) - nu), P = (sqrt(nu) + eps)/lr, with Sigma >= 0 on the critical generalized "
                 "eigenvectors of H u = lambda P u solving a complementarity problem that keeps "
                 "lambda_max(P^-1 H) <= 2; the time-averaged loss is L + (1/2)<Sigma, H> and the squared gradient "
                 "norm ||grad L||^2 + tr(H Sigma H).")
    hypotheses = ("full-batch per-coordinate RMSProp, PyTorch eps convention, no bias correction, float64",
                  "RMSProp and the flows start from (w_0, nu_0 = g_0^2), lambda_1(P^-1 H) < 2 at step 0 (checked)")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp(self.seed)
        steps = by_budget(budget, STEPS["quick"], STEPS["full"])
        nu0 = jax.grad(E)(w0) ** 2
        y0 = RMSPropFlowState(w0, nu0)
        lam0 = float(self._dense(E, w0, np.asarray(nu0))[0])   # nu_1 = beta2 nu_0 + (1 - beta2) g_0^2 = nu_0
        if lam0 >= 2:
            raise ValueError(f"lambda_1(P^-1 H) = {lam0:.3g} >= 2 at step 0: RMSProp starts unstable")
        taus = np.arange(steps + 1.0)
        tx = warm_rmsprop(optax.rmsprop(LR, decay=BETA2, eps=EPS, eps_in_sqrt=False), nu0)
        W = np.asarray(simulate(OptaxMethod(E, tx), w0, taus).ys)
        sf = simulate(RMSPropStableFlow(E, LR, BETA2, EPS, substeps=SF_SUBSTEPS), y0, taus, observe_state=True).ys
        s_eff = [self._dense(E, sf.params[i], sf.nu[i])[0] for i in range(0, steps + 1, SF_EVERY)]
        cf = RMSPropCentralFlow(E, LR, BETA2, EPS, k=K, method="lanczos", lanczos_steps=LANCZOS)
        tr = simulate(cf, y0, taus, observe_state=True).ys
        W_cf, NU = np.asarray(tr.params), np.asarray(tr.nu)
        saved = np.arange(0, steps + 1, SAVE_EVERY)   # every SAVE_EVERY steps in the late window, 2 SAVE_EVERY before
        saved = saved[(saved >= steps * (1 - LATE_FRACTION)) | (saved % (2 * SAVE_EVERY) == 0)]
        pred = jax.vmap(lambda w, nu: (lambda p: (p["predicted_loss"], p["predicted_grad_norm2"], p["lam"],
                                                  p["X"]))(cf.predictions(w, nu)))
        predicted, grad2, lam, X = (np.asarray(a) for a in pred(W_cf[saved], NU[saved]))
        pick = saved[np.linspace(0, saved.size - 1, CHECKS).astype(int)]
        dense = np.stack([self._dense(E, W_cf[i], NU[i]) for i in pick])
        grads = np.asarray(jax.vmap(jax.grad(E))(W))
        return {"steps": steps, "saved": saved, "loss": np.asarray(jax.vmap(E)(W)), "grad2": np.sum(grads**2, 1),
                "d_cf": distance_to_gd(W, W_cf), "d_sf": distance_to_gd(W, np.asarray(sf.params)),
                "predicted": predicted, "predicted_grad2": grad2, "lam": lam, "X": X, "pick": pick, "dense": dense,
                "lam0": lam0, "sf_s_eff": np.asarray(s_eff)}

    @staticmethod
    def _dense(E, w, nu):
        """Top-K eigenvalues of P^-1 H by scipy's generalized eigh on jax.hessian (no change of variables)."""
        H = np.asarray(jax.hessian(E)(w))
        return scipy.linalg.eigh(0.5 * (H + H.T), np.diag((np.sqrt(nu) + EPS) / LR), eigvals_only=True)[::-1][:K]

    def check(self, ev):
        steps, t = ev["steps"], ev["saved"]
        k = np.arange(steps)
        late = k >= steps * (1 - LATE_FRACTION)
        ratio = ev["d_cf"][late] / ev["d_sf"][late]
        settled = (t >= steps * (1 - LATE_FRACTION)) & (t <= steps - 2 * SMOOTH)
        lo = int(steps * (1 - LATE_FRACTION))

        def average(series, predicted, what, xfail=None):
            smooth = gaussian_filter1d(series, SMOOTH, mode="nearest")[t]
            wide = gaussian_filter1d(series, 2 * SMOOTH, mode="nearest")[t]
            error = float(np.max(np.abs(predicted / smooth - 1)[settled]))
            resolution = float(np.max(np.abs(smooth / wide - 1)[settled]))
            return claims.bound(
                f"predicted {what} vs Gaussian-smoothed RMSProp {what} (sigma {SMOOTH:g} steps), max rel error, late "
                "window", error, RESOLUTION_FACTOR * resolution,
                why=("the paper's time-average prediction (no number given); tolerance = twice the measured "
                     f"resolution of RMSProp's smoothed {what}: its largest relative change on this window when sigma "
                     f"is doubled ({SMOOTH:g} -> {2 * SMOOTH:g} steps), an error of the reference computed from "
                     "RMSProp alone (the rule of cohen2025_central_flow)"),
                note=f"steps {lo}-{steps - 2 * SMOOTH:.0f}; resolution {resolution:.4f}", xfail=xfail)

        onset = t[np.argmax(ev["lam"][:, 0] >= 1.95)]
        return [
            claims.bound(f"CF eigenvalues lambda_1..{K}(P^-1 H) (cold LOBPCG) vs scipy generalized eigh at {CHECKS} CF "
                         "states, max abs gap", float(np.max(np.abs(ev["lam"][np.searchsorted(t, ev["pick"])]
                                                                 - ev["dense"]))), EIG_TOL, role="consistency",
                         why="scipy's dense generalized eigh on jax.hessian is exact to ~1e-13 at 433 parameters; "
                             "1e-8 is dynamics' float64 eigen-residual tolerance"),
            claims.bound("late-window max ||RMSProp_mid - CF|| / ||RMSProp_mid - SF||", float(np.max(ratio)), 1.0,
                         why="the paper: RMSProp follows the central flow and departs from the stable flow at the edge "
                             "of stability; the brief's ordering (CF closer than SF), no tolerance",
                         note=(f"steps {lo}-{steps}; ratio at the end {ratio[-1]:.3f}; distances at the end: CF "
                               f"{ev['d_cf'][-1]:.3f}, SF {ev['d_sf'][-1]:.3f}; CF onset (lambda_1 >= 1.95) at step "
                               f"{onset}, where both flows are already {ev['d_cf'][onset]:.3f} / "
                               f"{ev['d_sf'][onset]:.3f} from RMSProp (its first, stable steps depart from the flows "
                               "at O(lr)); "
                               f"lambda_1(P^-1 H) at step 0: {ev['lam0']:.3f}")),
            average(ev["loss"], ev["predicted"], "loss", LOSS_GAP),
            average(ev["grad2"], ev["predicted_grad2"], "squared gradient norm"),
            claims.bound(f"stable flow: 2 max S_eff / substeps (S_eff = lambda_1(P^-1 H) every {SF_EVERY} steps)",
                         float(2 * np.max(ev["sf_s_eff"]) / SF_SUBSTEPS), 1.0, role="consistency",
                         why="the authors discretize the stable flow with substeps >= 2 S_eff (Euler's stability needs "
                             "S_eff / substeps < 2); S_eff keeps growing along the stable flow past the edge",
                         note=f"S_eff: {np.array2string(ev['sf_s_eff'], precision=2)}"),
            claims.bound("max lambda_1(P^-1 H) along the CF", float(np.max(ev["lam"][:, 0])), LAMBDA_MAX,
                         why="the CF holds lambda_1(P^-1 H) <= 2; 0.5% allows the Euler substeps' (dt = 1/4) overshoot "
                             "within a substep (the GD theorem's allowance)"),
        ]

    def figure(self, ev):
        t, k = ev["saved"], np.arange(ev["steps"]) + 0.5
        fig, ax = figures.panels(self, 3, width=5.0, height=4.0, title="RMSProp vs its central and stable flows")
        ax[0].plot(k, ev["d_cf"], label=r"$\|RMSProp_{mid} - CF\|$")
        ax[0].plot(k, ev["d_sf"], label=r"$\|RMSProp_{mid} - SF\|$")
        figures.axes_style(ax[0], "k", "distance", logy=True, title="distances to RMSProp midpoints")
        ax[0].legend()
        ax[1].plot(t, ev["lam"][:, 0], label=r"CF $\lambda_1(P^{-1}H)$")
        figures.reference_line(ax[1], y=2.0, color="r", label="2")
        figures.axes_style(ax[1], "k", "lambda_1(P^-1 H)", title="preconditioned sharpness")
        ax[1].legend()
        ax[2].plot(ev["loss"], lw=0.5, label="RMSProp loss")
        ax[2].plot(gaussian_filter1d(ev["loss"], SMOOTH, mode="nearest"), label=f"smoothed ({SMOOTH:g})")
        ax[2].plot(t, ev["predicted"], "--", label="CF predicted")
        figures.axes_style(ax[2], "k", "loss", logy=True, title="loss")
        ax[2].legend()
        return fig
