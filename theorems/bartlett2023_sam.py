"""Sharpness-aware minimization: its exact quadratic dynamics, its edge of stability and its modified flow
(docs/stability-sam-geometry.md section 1).

Three theorems on the process `dynamics.SAM` (w+ = w - lr grad L(w + rho g/||g||); USAM: w + rho g):

- `Bartlett2023` ("bartlett2023_sam"), quadratic L = w^T H w / 2, exact [derived]: USAM is the linear map
  I - lr H - lr rho H^2, stable iff lr lambda_1 (1 + rho lambda_1) < 2, i.e. lambda_1 < lambda* = (sqrt(1 + 8 rho/lr)
  - 1)/(2 rho); runs at lambda_1 = lambda* (1 -+ 1%) for four (lr, rho) decay / grow at the predicted rate
  log|1 - lr lambda_1 (1 + rho lambda_1)|. Normalized SAM with lr lambda_1 < 2 ends on a period-2 cycle +-A v_1 with
  A = lr rho lambda_1 / (2 - lr lambda_1) while the other eigen-coordinates vanish (Bartlett, Long & Bousquet 2023).
- `LongBartlett2023` ("long2023_sam_edge"): on the EoS MLP of `cohen2021_eos` (dataset "eos_mlp"), the sharpness S at
  SAM iterates settles at the SAM-edge (||g||/(2 rho))(sqrt(1 + 8 rho/(lr ||g||)) - 1) (||g|| the gradient norm at the
  same iterate; Long & Bartlett 2023), and USAM's at lambda*, not at 2/lr.
- `SamModifiedFlow` ("foret2021_sam_flow"): with rho = lr, one SAM step matches the gradient flow of
  L + rho ||grad L|| + (lr/4)||grad L||^2 (USAM: L + (rho/2 + lr/4)||grad L||^2) to O(lr^3) at t = lr, while GF on L,
  IGR and the same losses without the lr/4 term are O(lr^2) [derived]: local-error slopes 3 against 2.
"""

import numpy as np
import jax
import jax.numpy as jnp

from dynamics import GradientFlow, SAM, convergence_order, sharpness, simulate
from dynamics.measure.eos import sharpness_along
from dynamics.predictions import require_usam_stable, sam_cycle_amplitude, sam_threshold, usam_threshold
from dynamics.processes.sam import SAMModifiedLoss

from .cohen2021_eos import cpu_mlp
from .common import by_budget, claims, datasets, figures
from .harness import Theorem

# ---------------------------------------------------------------------------------------------------- quadratic
#: (lr, rho) pairs of the USAM threshold check: lr rho lambda* from 0.003 to 1.6 (the H^2 term from small to dominant)
USAM_CASES = ((0.1, 0.05), (0.05, 0.5), (0.2, 0.01), (0.01, 2.0))
MARGIN = 0.01                                # lambda_1 = lambda* (1 -+ MARGIN)
#: the other eigenvalues sit where lr lambda (1 + rho lambda) = q: USAM contracts them by |1 - q| <= 1/2 per step, so
#: the top mode (|1 - q_1| ~ 1) dominates the late window on both sides of the threshold
USAM_OTHER_Q = (0.5, 1.0, 1.5)
USAM_STEPS, RATE_WINDOW = 1000, 200
#: (lr, rho, spectrum) of the SAM cycle check: lr lambda_1 = 1.5, 0.5, 1.6
CYCLE_CASES = ((0.1, 0.05, (15.0, 8.0, 5.0, 2.0, 1.0)), (0.05, 0.1, (10.0, 6.0, 3.0, 1.0, 0.5)),
               (0.02, 0.5, (80.0, 50.0, 20.0, 5.0, 1.0)))
CYCLE_STEPS = {"quick": 4000, "full": 8000}
CYCLE_TOL = 1e-10
RATE_TOL = 1e-10


def quadratic(seed, spectrum):
    """(H, w0): H = Q diag(spectrum) Q^T with a random rotation Q and a standard normal w0 (dataset
    "flows_quadratic_spectrum"; its linear term is not used: L = w^T H w / 2)."""
    H, _, w0 = datasets.dataset("flows_quadratic_spectrum", seed=seed, spectrum=spectrum)
    return H, w0


def quadratic_run(H, w0, lr, rho, normalized, steps):
    """SAM / USAM iterates 0..steps on w^T H w / 2, with their top-eigenvector coordinate and orthogonal remainder."""
    Hj = jnp.asarray(H)
    W = np.asarray(simulate(SAM(lambda w: 0.5 * w @ Hj @ w, lr, rho, normalized=normalized), w0,
                            lr * np.arange(steps + 1.0)).ys)
    v1 = np.linalg.eigh(H)[1][:, -1]
    top = W @ v1
    return top, np.linalg.norm(W - np.outer(top, v1), axis=1), np.linalg.norm(W, axis=1)


def growth_rate(norms, window):
    """(log ||w_K|| - log ||w_{K - window}||) / window: the per-step log growth over the last ``window`` steps."""
    return float((np.log(norms[-1]) - np.log(norms[-1 - window])) / window)


def usam_curvature(lr, rho, q):
    """The curvature lambda at which lr lambda (1 + rho lambda) = q (the positive root)."""
    return float((np.sqrt(1.0 + 4.0 * rho * q / lr) - 1.0) / (2.0 * rho))


def usam_rate(lr, rho, curvature):
    """log |1 - lr lambda (1 + rho lambda)|: USAM's per-step log growth along an eigenvector of curvature lambda."""
    return float(np.log(abs(1.0 - lr * curvature * (1.0 + rho * curvature))))


def cycle_transient_bound(lr, rho, spectrum, steps):
    """A bound on the leftover transient after ``steps``: the largest per-step contraction at the cycle, over the
    two-step map along v_1 ((1 - lr lambda_1)^2 per two steps) and the other eigen-coordinates (multipliers
    1 - lr lambda_i (1 + rho lambda_i / (lambda_1 A)) with ||g|| = lambda_1 A on the cycle), to the power ``steps``."""
    lam = np.sort(np.asarray(spectrum, float))[::-1]
    amplitude = sam_cycle_amplitude(lr, rho, lam[0])
    others = np.abs(1.0 - lr * lam[1:] * (1.0 + rho * lam[1:] / (lam[0] * amplitude)))
    return float(max(abs(1.0 - lr * lam[0]), others.max()) ** steps)


class Bartlett2023(Theorem):
    id = "bartlett2023_sam"
    reference = ("Bartlett, Long, Bousquet: The dynamics of sharpness-aware minimization: bouncing across ravines and "
                 "drifting towards wide minima, JMLR 24 (2023); USAM threshold derived (docs/stability-sam-geometry.md "
                 "section 1)")
    statement = ("On a quadratic w^T H w / 2, USAM is stable iff lr lambda_1 (1 + rho lambda_1) < 2, and normalized "
                 "SAM with lr lambda_1 < 2 converges to a period-2 cycle +-A v_1 along the top eigenvector with "
                 "A = lr rho lambda_1 / (2 - lr lambda_1) while the other eigen-coordinates vanish.")
    hypotheses = ("L = w^T H w / 2, H symmetric positive definite with a simple top eigenvalue",
                  "SAM cycle: lr lambda_1 < 2 (checked: sam_cycle_amplitude raises StepSizeError otherwise)",
                  "a generic start (standard normal w0, nonzero along v_1)")
    seed = 0

    def run(self, budget="quick"):
        usam = []
        for i, (lr, rho) in enumerate(USAM_CASES):
            star = float(usam_threshold(lr, rho))
            for side in (-1, 1):
                lam1 = star * (1 + side * MARGIN)
                H, w0 = quadratic(self.seed + i, (lam1, *(usam_curvature(lr, rho, q) for q in USAM_OTHER_Q)))
                top, rest, norms = quadratic_run(H, w0, lr, rho, False, USAM_STEPS)
                usam.append({"lr": lr, "rho": rho, "star": star, "side": side, "lam1": lam1, "top": np.abs(top),
                             "norms": norms, "rate": growth_rate(norms, RATE_WINDOW),
                             "predicted": usam_rate(lr, rho, lam1)})
        steps = by_budget(budget, CYCLE_STEPS["quick"], CYCLE_STEPS["full"])
        cycle = []
        for i, (lr, rho, spectrum) in enumerate(CYCLE_CASES):
            H, w0 = quadratic(self.seed + 10 + i, spectrum)
            top, rest, _ = quadratic_run(H, w0, lr, rho, True, steps)
            cycle.append({"lr": lr, "rho": rho, "spectrum": np.asarray(spectrum), "top": top, "rest": rest,
                          "amplitude": float(sam_cycle_amplitude(lr, rho, max(spectrum))),
                          "transient": cycle_transient_bound(lr, rho, spectrum, steps)})
        return {"usam": usam, "cycle": cycle, "steps": steps}

    def check(self, ev):
        out = []
        for case in ev["usam"]:
            lr, rho, side = case["lr"], case["rho"], case["side"]
            where = f"lr = {lr}, rho = {rho}, lambda_1 = lambda* ({'1 + ' if side > 0 else '1 - '}{MARGIN})"
            ratio = float(case["norms"][-1] / case["norms"][0])
            out.append(claims.bound(
                f"USAM {where}: ||w_K|| / ||w_0||, K = {USAM_STEPS}", ratio, 1.0, upper=side < 0,
                why="the threshold itself: stable runs shrink, unstable ones grow; no margin",
                note=f"lambda* = {case['star']:.6g}; lr lambda_1 (1 + rho lambda_1) = "
                     f"{lr * case['lam1'] * (1 + rho * case['lam1']):.5f}"))
            out.append(claims.identity(
                f"USAM {where}: per-step log growth over the last {RATE_WINDOW} steps",
                case["rate"], case["predicted"], RATE_TOL,
                why="an exact linear map: the other eigen-coordinates are below (0.5/0.96)^800 < 1e-200 of the top "
                    "one, and float64 rounding of log ||w|| over 200 steps is ~1e-17",
                note="predicted log|1 - lr lambda_1 (1 + rho lambda_1)|"))
        for case in ev["cycle"]:
            lr, rho, A, top = case["lr"], case["rho"], case["amplitude"], case["top"]
            lam1 = float(case["spectrum"].max())
            where = f"SAM lr = {lr}, rho = {rho}, lr lambda_1 = {lr * lam1:g}"
            why = (f"the cycle is attracting: the transient left after the run is <= {case['transient']:.1e} of the "
                   "initial one (contraction factors at the cycle, computed), so only float64 rounding (~1e-15) "
                   "remains; 1e-10 is the issue's accuracy")
            out += [
                claims.bound(f"{where}: max over the last two iterates of ||v_1 . w| - A| / A",
                             float(np.max(np.abs(np.abs(top[-2:]) - A)) / A), CYCLE_TOL, why=why,
                             note=f"A = lr rho lambda_1 / (2 - lr lambda_1) = {A:.6g}"),
                claims.holds(f"{where}: the top coordinate alternates in sign (period 2)",
                             bool(top[-1] * top[-2] < 0), why="the cycle is +-A v_1: consecutive iterates on opposite "
                             "sides; a sign pattern, no tolerance"),
                claims.bound(f"{where}: orthogonal remainder ||w - (v_1 . w) v_1|| / A at the last iterate",
                             float(case["rest"][-1] / A), CYCLE_TOL, why=why),
            ]
        return out

    def figure(self, ev):
        fig, ax = figures.panels(self, 2, width=5.4, height=4.0)
        for i, case in enumerate(ev["usam"]):
            style = "-" if case["side"] > 0 else "--"
            ax[0].plot(case["norms"] / case["norms"][0], style, color=f"C{i // 2}", lw=1,
                       label=f"lr={case['lr']}, rho={case['rho']}" if case["side"] > 0 else None)
        figures.axes_style(ax[0], "k", r"$\|w_k\| / \|w_0\|$", logy=True,
                           title=r"USAM at $\lambda_1 = \lambda^*(1 \pm 1\%)$ (solid: +, dashed: -)")
        ax[0].legend(fontsize=7)
        for i, case in enumerate(ev["cycle"]):
            k = np.arange(case["top"].size)
            ax[1].plot(k, np.abs(np.abs(case["top"]) - case["amplitude"]) / case["amplitude"], color=f"C{i}", lw=1,
                       label=f"lr={case['lr']}, rho={case['rho']}")
            ax[1].plot(k, case["rest"] / case["amplitude"], ":", color=f"C{i}", lw=1)
        figures.reference_line(ax[1], y=CYCLE_TOL, label="claimed tolerance")
        figures.axes_style(ax[1], "k", r"$||v_1 \cdot w| - A| / A$ (dotted: remainder / A)", logy=True,
                           title="SAM: cycle $\\pm A v_1$")
        ax[1].legend(fontsize=7)
        return fig


# ---------------------------------------------------------------------------------------------- edge of stability
EOS_LR = 0.1
EOS_RHOS = (0.02, 0.05)
EOS_STEPS = {"quick": 3000, "full": 6000}
EOS_EVERY = {"quick": 10, "full": 5}
LANCZOS_STEPS = 20
DENSE_CHECKS = 4                              # iterates per run where Lanczos is compared with dense eigh
EIG_TOL = 1e-8
LATE_FRACTION = 1 / 3
#: S / threshold band, fixed for every run (see `LongBartlett2023.check` for its reason)
EDGE_BAND = (0.9, 1.1)


def sam_eos_run(E, w0, lr, rho, normalized, steps, every):
    """SAM / USAM iterates 0..steps on the MLP; at k = 0, every, 2 every, ...: sharpness S (Lanczos) and ||grad L||
    at the iterates themselves (as Long & Bartlett measure), and the threshold (SAM-edge of ||g||, or lambda*)."""
    W = simulate(SAM(E, lr, rho, normalized=normalized), w0, lr * np.arange(steps + 1.0)).ys
    k = np.arange(0, steps, every)
    S = sharpness_along(E, W[k], "lanczos", LANCZOS_STEPS)
    g = np.asarray(jax.vmap(lambda w: jnp.linalg.norm(jax.grad(E)(w)))(W[k]))
    edge = sam_threshold(lr, rho, g) if normalized else np.full(k.size, float(usam_threshold(lr, rho)))
    pick = np.linspace(0, k.size - 1, DENSE_CHECKS).astype(int)
    return {"k": k, "S": S, "grad_norm": g, "edge": edge, "loss": np.asarray(jax.vmap(E)(W[k])),
            "dense": (sharpness_along(E, W[k[pick]], "dense"), pick), "lr": lr, "rho": rho, "normalized": normalized}


class LongBartlett2023(Theorem):
    id = "long2023_sam_edge"
    reference = ("Long, Bartlett: Sharpness-aware minimization and the edge of stability, arXiv:2309.12488 "
                 "(2023); setup of Cohen et al., ICLR 2021 (cohen2021_eos)")
    statement = ("Full-batch SAM with step lr and radius rho operates at its own edge of stability: the sharpness S "
                 "at the iterates settles at the SAM-edge (||g||/(2 rho))(sqrt(1 + 8 rho/(lr ||g||)) - 1), below 2/lr "
                 "and set by the gradient norm; USAM's at lambda* = (sqrt(1 + 8 rho/lr) - 1)/(2 rho).")
    hypotheses = ("full-batch SAM / USAM, float64, on the cohen2021_eos MLP (433 parameters) from its initialization",
                  "training starts below the threshold: S(w0) < SAM-edge(||g(w0)||) and < lambda* (checked)",
                  "S and ||g|| at the same iterate (the paper's code evaluates both at the current parameters)")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp(self.seed)
        steps, every = by_budget(budget, EOS_STEPS["quick"], EOS_STEPS["full"]), by_budget(
            budget, EOS_EVERY["quick"], EOS_EVERY["full"])
        s0, g0 = float(sharpness(E, w0, "dense")), float(jnp.linalg.norm(jax.grad(E)(w0)))
        runs = []
        for rho in EOS_RHOS:
            if not s0 < min(float(sam_threshold(EOS_LR, rho, g0)), float(usam_threshold(EOS_LR, rho))):
                raise ValueError(f"S(w0) = {s0:.3g} is not below the SAM / USAM thresholds at rho = {rho}")
            for normalized in (True, False):
                runs.append(sam_eos_run(E, w0, EOS_LR, rho, normalized, steps, every))
        return {"steps": steps, "runs": runs, "s0": s0}

    def check(self, ev):
        out, steps = [], ev["steps"]
        gaps = []
        for run in ev["runs"]:
            window = run["k"] >= steps * (1 - LATE_FRACTION)
            ratio = float(np.median((run["S"] / run["edge"])[window]))
            gd = float(np.median(run["lr"] * run["S"][window] / 2.0))
            name = f"{'SAM' if run['normalized'] else 'USAM'} rho = {run['rho']}"
            threshold = "the SAM-edge of ||g||" if run["normalized"] else "lambda*"
            out += [
                claims.within(
                    f"{name}: late-window median of S / {threshold}", ratio, *EDGE_BAND,
                    why="the paper's figures (MNIST, CIFAR-10, tiny Shakespeare) show ||H|| tracking the SAM-edge but "
                        "give no number; +-10% is the band fixed for all runs (the GD analogue here, cohen2021_eos, "
                        "allows -2.5%/+5% around 2/lr)",
                    note=f"steps {int(steps * (1 - LATE_FRACTION))}-{steps}; median lr S = "
                         f"{float(np.median(run['lr'] * run['S'][window])):.3f}, median lr x threshold = "
                         f"{float(np.median(run['lr'] * run['edge'][window])):.3f}"),
                claims.bound(
                    f"{name}: |log(S / threshold)| - |log(S / (2/lr))| (late medians)",
                    abs(np.log(ratio)) - abs(np.log(gd)), 0.0,
                    why="the paper's point: S settles at the SAM threshold, not at GD's 2/lr; negative = closer to the "
                        "SAM threshold (parameter-free)",
                    note=f"median S / (2/lr) = {gd:.3f}"),
            ]
            dense, pick = run["dense"]
            gaps.append(float(np.max(np.abs(run["S"][pick] / dense - 1))))
        out.append(claims.bound(
            f"Lanczos ({LANCZOS_STEPS} HVPs) vs dense eigh, S at {DENSE_CHECKS} iterates per run: max relative gap",
            max(gaps), EIG_TOL, role="consistency",
            why="dense eigh is exact to ~1e-15 on 433 parameters, so the gap is Lanczos's error; 1e-8 is dynamics' "
                "float64 eigen-residual tolerance"))
        return out

    def figure(self, ev):
        runs = ev["runs"]
        fig, ax = figures.panels(self, 2, width=5.6, height=4.2)
        for i, run in enumerate(runs):
            label = f"{'SAM' if run['normalized'] else 'USAM'} rho={run['rho']}"
            ax[0].plot(run["k"], run["lr"] * run["S"], color=f"C{i}", lw=0.8, label=label + r": $\eta S$")
            ax[0].plot(run["k"], run["lr"] * run["edge"], "--", color=f"C{i}", lw=0.8)
            ax[1].plot(run["k"], run["S"] / run["edge"], color=f"C{i}", lw=0.8, label=label)
        figures.reference_line(ax[0], y=2.0, color="r", label=r"$2$ (GD's edge)")
        figures.axes_style(ax[0], "k", r"$\eta S$ (dashed: $\eta\times$ threshold)", title="sharpness vs thresholds")
        ax[0].legend(fontsize=6)
        for y in EDGE_BAND:
            figures.reference_line(ax[1], y=y, color="0.5")
        figures.axes_style(ax[1], "k", "S / threshold", title="ratio (grey: claimed band)")
        ax[1].set_ylim(0, 1.5)
        ax[1].legend(fontsize=6)
        return fig


# -------------------------------------------------------------------------------------------------- modified flow
FLOW_STEPS = np.array([0.02, 0.01, 0.005, 0.0025])
RHO_OVER_LR = 1.0                              # rho = RHO_OVER_LR * lr along the ladder
#: (name, norm weight a(h), square weight b(h), predicted local order) of L + a ||grad L|| + b ||grad L||^2, per variant
FLOW_MODELS = {
    True: (("SAM modified loss L + rho|g| + (lr/4)|g|^2", lambda h, r: r, lambda h, r: h / 4, 3),
           ("IGR L + (lr/4)|g|^2", lambda h, r: 0.0, lambda h, r: h / 4, 2),
           ("L + rho|g| (no lr/4 term)", lambda h, r: r, lambda h, r: 0.0, 2)),
    False: (("USAM modified loss L + (rho/2 + lr/4)|g|^2", lambda h, r: 0.0, lambda h, r: r / 2 + h / 4, 3),
            ("IGR L + (lr/4)|g|^2", lambda h, r: 0.0, lambda h, r: h / 4, 2),
            ("L + (rho/2)|g|^2 (no lr/4 term)", lambda h, r: 0.0, lambda h, r: r / 2, 2)),
}


def modified_flow_errors(E, w0, normalized, steps=FLOW_STEPS):
    """Local errors ||w_1 - w(lr)|| of one SAM / USAM step (rho = RHO_OVER_LR lr) against GF on L and the gradient
    flows of L + a||grad L|| + b||grad L||^2 for each model of FLOW_MODELS (one compiled flow for all of them)."""
    sam = lambda h: SAM(E, h, RHO_OVER_LR * h, normalized=normalized)
    fits = {"GF on L": convergence_order(sam, lambda h: GradientFlow(E), w0, steps)}
    for name, a, b, _ in FLOW_MODELS[normalized]:
        flow = lambda h: GradientFlow(SAMModifiedLoss(E, jnp.asarray(float(a(h, RHO_OVER_LR * h))),
                                                      jnp.asarray(float(b(h, RHO_OVER_LR * h)))))
        fits[name] = convergence_order(sam, flow, w0, steps)
    return {name: fit.errors for name, fit in fits.items()}


class SamModifiedFlow(Theorem):
    id = "foret2021_sam_flow"
    reference = ("Foret, Kleiner, Mobahi, Neyshabur: Sharpness-aware minimization for efficiently improving "
                 "generalization, ICLR 2021 (SAM; L + rho||grad L|| is its first-order objective); Barrett & Dherin, "
                 "ICLR 2021 (the (lr/4)||grad L||^2 term); modified flows derived in docs/stability-sam-geometry.md "
                 "section 1")
    statement = ("With rho proportional to lr, one SAM step w - lr grad L(w + rho g/||g||) follows the gradient flow "
                 "of L + rho ||grad L|| + (lr/4) ||grad L||^2 to O(lr^3) over t = lr, and one USAM step that of "
                 "L + (rho/2 + lr/4) ||grad L||^2; gradient flow on L, IGR and these losses without the lr/4 term "
                 "are only O(lr^2).")
    hypotheses = ("rho = lr (the expansion is joint in (lr, rho); at fixed rho no first-order flow in lr exists)",
                  "backward-error regime: lr S(w0) <= 0.11 on the ladder, USAM stable there (checked)",
                  "g(w0) != 0 (||grad L|| differentiable at w0)")
    seed = 0

    def run(self, budget="quick"):
        E, w0 = cpu_mlp(self.seed)
        s0 = float(sharpness(E, w0, "dense"))
        require_usam_stable(FLOW_STEPS.max(), RHO_OVER_LR * FLOW_STEPS.max(), s0, what="USAM modified-flow ladder")
        return {"steps": FLOW_STEPS, "s0": s0, "sam": modified_flow_errors(E, w0, True),
                "usam": modified_flow_errors(E, w0, False)}

    def check(self, ev):
        steps, out = ev["steps"], []
        scale = float(steps.max() * ev["s0"])
        for normalized, key in ((True, "sam"), (False, "usam")):
            orders = {"GF on L": 2, **{name: order for name, _, _, order in FLOW_MODELS[normalized]}}
            for name, errors in ev[key].items():
                out.append(claims.slope(
                    f"{key.upper()} step vs {name}: slope of log local error vs log lr", steps, errors,
                    float(orders[name]), 0.15, claims.slope_why(orders[name], steps, scale, "lr S(w0)"),
                    note=f"errors {errors[0]:.2e} -> {errors[-1]:.2e}"))
        return out

    def figure(self, ev):
        steps = ev["steps"]
        fig, ax = figures.panels(self, 2, width=5.4, height=4.2)
        for axis, key in zip(ax, ("sam", "usam")):
            for i, (name, errors) in enumerate(ev[key].items()):
                axis.plot(steps, errors, "o-", color=f"C{i}", label=name)
            for order in (2, 3):
                axis.plot(steps, ev[key]["GF on L"][-1] * 0.3 ** (order - 2) * (steps / steps[-1]) ** order, ":",
                          color="k", lw=0.8)
            figures.axes_style(axis, "h", r"$\|w_1 - w(\eta)\|$", logx=True, logy=True,
                               title=f"{key.upper()}, rho = lr (dotted: slopes 2, 3)")
            axis.legend(fontsize=6)
        return fig
