"""Dherin & Rosca (2024): corridors, where gradient descent and gradient flow coincide (docs/flows.md section 6).

A corridor is a region where H(theta) g(theta) = 0: there g is constant along GF (d/dt g = -H g = 0), GF
solutions are straight lines at constant speed, theta(t) = theta_0 - t g_0, and E(theta(t)) = E_0 - t ||g_0||^2.
GD takes the same straight steps, so theta_k = theta(k h) exactly (physical time t = k h). Every BEA correction
vanishes: f_2 = -H g/2 = 0 and, differentiating H g = 0, T[v, g] = -H^2 v, so T[g, g] = 0 and
f_3 = -(H^2 g/3 + T[g, g]/12) = 0 [derived]. The corridor learning rate h = E/||g||^2 (the Polyak step with
E* = 0) reaches E = 0 in one step when the corridor extends that far.

Example [derived]: E(x, y) = x + y^2/2, g = (1, y), H = diag(0, 1), H g = (0, y): the line y = 0 is a corridor
(corridor_residual ||H g||/||g||^2 = |y|/(1 + y^2)). From (1, 0) with h = 0.01, 100 steps reach E = 0 at t = 1.
Off the corridor, from (1, 1): x_k = 1 - k h still, but y_k = (1 - h)^k y_0 while GF has e^{-k h} y_0, so GD
drifts from GF by max_k |(1 - h)^k - e^{-kh}| |y_0| ~ (h/2) t e^{-t} |y_0|.

corridor_residual and corridor_learning_rate themselves are checked against their hand formulas in unit tests
(tests/test_modified_flows.py); here they are only used.
"""

import jax
import numpy as np

from dynamics import GradientDescent, GradientFlow, ModifiedFlow, corridor_learning_rate, sharpness, simulate
from dynamics.models.toys import corridor_loss
from dynamics.predictions import require_step_below

from .common import claims, figures
from .harness import Theorem

ON_CORRIDOR = np.array([1.0, 0.0])
OFF_CORRIDOR = np.array([1.0, 1.0])
LR = 0.01
STEPS = 100
GF_TOL = {"rtol": 1e-12, "atol": 1e-14}
#: exact identities evaluated in float64 with |theta| <= 1 and K = 100 steps: K eps max|theta| = 2.2e-14 bounds the
#: rounding of K additions.
ROUNDING_TOL = STEPS * np.finfo(float).eps
ROUNDING_WHY = (f"exact [derived]; {STEPS} float64 steps of O(1) numbers round by at most K eps max|theta| = "
                f"{STEPS * np.finfo(float).eps:.1e}")
#: GF reference solves: Tsit5 at rtol 1e-12 over t = 1.
GF_SOLVE_TOL = 1e-10
GF_SOLVE_WHY = "Tsit5 at rtol 1e-12 over t = 1 (~100 steps of error <= rtol each) stays below 1e-10"
MODIFIED_ORDERS = (2, 3)


class DherinRosca2024(Theorem):
    id = "dherin2024_corridors"
    reference = "Dherin & Rosca: Corridor geometry in gradient-based optimization, arXiv 2402.08818, 2024"
    statement = (
        "On a corridor, a region where H g = 0, gradient flow solutions are straight lines at constant speed, "
        "GD iterates coincide with the flow at t = k h, the loss decreases linearly E(theta(t)) = E_0 - "
        "t ||g_0||^2, and all backward-error corrections vanish (no implicit regularization drift). The corridor "
        "learning rate E/||g||^2 (the Polyak step with E* = 0) reaches zero loss in one step. Off the corridor GD "
        "drifts from GF.")
    hypotheses = (
        "E = x + y^2/2 (smooth; H = diag(0, 1), so lambda_max = 1); the corridor is the line y = 0.",
        "GD stable: h lambda_max < 2 (h = 0.01).",
        "The corridor extends to E = 0 (x = 0 on y = 0), so the CLR step stays inside it.",
    )

    def run(self, budget="quick"):
        require_step_below(LR, 2.0 / float(sharpness(corridor_loss, OFF_CORRIDOR)), what="GD on x + y^2/2")
        ts = np.arange(STEPS + 1) * LR
        ev = {"t": ts, "lr": LR}
        for name, theta0 in (("on", ON_CORRIDOR), ("off", OFF_CORRIDOR)):
            ev[f"gd_{name}"] = np.asarray(simulate(GradientDescent(corridor_loss, LR), theta0, ts).ys)
            ev[f"gf_{name}"] = np.asarray(simulate(GradientFlow(corridor_loss), theta0, ts, **GF_TOL).ys)
            ev[f"loss_gd_{name}"] = np.asarray(jax.vmap(corridor_loss)(ev[f"gd_{name}"]))
            ev[f"field_1_{name}"] = np.asarray(jax.vmap(lambda th: GradientFlow(corridor_loss).field(0.0, th))(
                ev[f"gd_{name}"]))
            for r in MODIFIED_ORDERS:
                ev[f"field_{r}_{name}"] = np.asarray(jax.vmap(
                    lambda th, r=r: ModifiedFlow(corridor_loss, LR, r).field(0.0, th))(ev[f"gd_{name}"]))
        points = ev["gd_on"]
        clr = np.asarray(jax.vmap(lambda th: corridor_learning_rate(corridor_loss, th))(points[:-1]))
        ev["clr_landing_loss"] = np.asarray(jax.vmap(
            lambda th, h: corridor_loss(GradientDescent(corridor_loss, h).step(th, 0)))(points[:-1], clr))
        ev["clr_off"] = float(corridor_learning_rate(corridor_loss, OFF_CORRIDOR))
        ev["clr_off_landing_loss"] = float(corridor_loss(GradientDescent(corridor_loss, ev["clr_off"]).step(
            OFF_CORRIDOR, 0)))
        return ev

    def check(self, ev):
        t, h = ev["t"], ev["lr"]
        gd, gf = ev["gd_on"], ev["gf_on"]
        x0, y0 = OFF_CORRIDOR
        E0, g0_sq = float(corridor_loss(ON_CORRIDOR)), 1.0 + ON_CORRIDOR[1] ** 2   # ||g||^2 = 1 + y^2
        closed_form = np.c_[ON_CORRIDOR[0] - t, np.zeros_like(t)]
        gd_y_pred, gf_y_pred = (1.0 - h) ** np.arange(len(t)) * y0, np.exp(-t) * y0
        drift_pred = float(np.max(np.abs(gd_y_pred - gf_y_pred)))
        y = ev["gd_off"][:, 1]
        out = [
            claims.bound("corridor: max_k ||GD_k - GF(k h)||, GF by simulate", float(np.max(np.abs(gd - gf))),
                         ROUNDING_TOL, ROUNDING_WHY + " (Tsit5 integrates the constant field exactly)",
                         note=f"{STEPS} steps of h = {h} from (1, 0)"),
            claims.bound("corridor: max_k ||GD_k - (x0 - k h, 0)|| (closed-form GF)",
                         float(np.max(np.abs(gd - closed_form))), ROUNDING_TOL, ROUNDING_WHY,
                         note="GF on the corridor: theta(t) = theta_0 - t g_0, g_0 = (1, 0)"),
            claims.bound("corridor: max_k |E(GD_k) - (E_0 - k h ||g_0||^2)|", float(np.max(np.abs(
                ev["loss_gd_on"] - (E0 - t * g0_sq)))), ROUNDING_TOL, ROUNDING_WHY,
                note="linear loss decrease at rate ||g_0||^2 = 1, reaching E = 0 at t = 1"),
            claims.bound("off corridor: max_k |y_k - (1 - h)^k y_0| / |y_0|", float(np.max(np.abs(
                ev["gd_off"][:, 1] - gd_y_pred)) / y0), ROUNDING_TOL, ROUNDING_WHY, role="consistency",
                note="GD contracts y by 1 - h per step (x_k = x_0 - k h as on the corridor)"),
            claims.bound("off corridor: max_k |y_GF(kh) - e^{-kh} y_0| / |y_0|", float(np.max(np.abs(
                ev["gf_off"][:, 1] - gf_y_pred)) / y0), GF_SOLVE_TOL, GF_SOLVE_WHY, role="consistency",
                note="the GF reference of the drift claim"),
            claims.identity(
                "off corridor: drift max_k |y_GD - y_GF| vs max_k |(1 - h)^k - e^{-kh}| |y_0|",
                float(np.max(np.abs(ev["gd_off"][:, 1] - ev["gf_off"][:, 1]))), drift_pred, GF_SOLVE_TOL * y0,
                "the GF reference is within 1e-10 |y_0| of e^{-t} y_0 (checked above); GD's rounding is ~1e-14",
                note=f"nonzero drift {drift_pred:.2e} ~ (h/2) t e^(-t) at t = 1, against <= 2e-14 on the corridor"),
        ]
        for r in MODIFIED_ORDERS:
            out.append(claims.bound(
                f"corridor: max_k ||ModifiedFlow order {r} field - GF field||",
                float(np.max(np.abs(ev[f"field_{r}_on"] - ev["field_1_on"]))), 0.0,
                "y_k = 0 exactly on the corridor, so H g = (0, y) and T[g, g] = -H^2 g vanish exactly in float64: "
                "any nonzero value is a real correction term",
                note="BEA corrections vanish: f_2 = -Hg/2 = 0, f_3 = -(H^2 g/3 + T[g,g]/12) = 0 on y = 0"))
        igr_pred = np.c_[-np.ones_like(y), -y - h / 2 * y]                          # -g - (h/2) H g
        out += [
            claims.bound("off corridor: max_k ||order-2 field - (-g - (h/2)(0, y))|| / ||g||",
                         float(np.max(np.linalg.norm(ev["field_2_off"] - igr_pred, axis=1) / np.hypot(1.0, y))),
                         ROUNDING_TOL, "nested jvps vs the hand formula on O(1) numbers: a few roundings (~1e-16)",
                         role="consistency", note=f"the IGR drift (h/2)||H g|| = (h/2)|y| in "
                         f"{h / 2 * np.abs(y).min():.1e} .. {h / 2 * np.abs(y).max():.1e} does not vanish off the "
                         "corridor"),
            claims.bound("CLR: max_k |E after one GD step of size E/||g||^2| / E_0",
                         float(np.max(np.abs(ev["clr_landing_loss"])) / E0), ROUNDING_TOL,
                         "x - (x / ||g||^2) ||g||^2 with ||g||^2 = 1 on the corridor is exact up to a rounding or two",
                         note="from every corridor iterate (x, 0): zero loss in one step; off the corridor, from "
                         f"(1, 1), the same rule gives h = {ev['clr_off']:.2f} and lands on E = "
                         f"{ev['clr_off_landing_loss']:.3f}"),
        ]
        return out

    def figure(self, ev):
        t = ev["t"]
        fig, axes = figures.panels(self, 3, width=5.4, height=4.6, title=r"corridors: $E = x + y^2/2$, "
                                   f"h = {ev['lr']}, {STEPS} steps")
        ax = axes[0]
        ax.axhline(0.0, color="0.7", lw=6, label=r"corridor $y = 0$ ($Hg = 0$)")
        for name, color in (("on", "C0"), ("off", "C1")):
            ax.plot(*ev[f"gd_{name}"][::5].T, "o", ms=4, color=color, label=f"GD (every 5th step), {name} corridor")
            ax.plot(*ev[f"gf_{name}"].T, "-", lw=1, color="k")
        ax.plot([], [], "k-", lw=1, label="GF")
        figures.axes_style(ax, "$x$", "$y$", title="paths")
        ax.legend(fontsize=7)
        ax = axes[1]
        for name, color in (("on", "C0"), ("off", "C1")):
            ax.plot(t[::5], ev[f"loss_gd_{name}"][::5], "o", ms=4, color=color, label=f"GD, {name} corridor")
            ax.plot(t, np.asarray(jax.vmap(corridor_loss)(ev[f"gf_{name}"])), "-", lw=1, color=color,
                    label=f"GF, {name} corridor")
        ax.plot(t, corridor_loss(ON_CORRIDOR) - t, "k--", lw=1, label=r"$E_0 - t\|g_0\|^2$")
        figures.axes_style(ax, r"$t = kh$", "$E$", title="loss: linear on the corridor")
        ax.legend(fontsize=7)
        ax = axes[2]
        floor = 1e-18
        ax.plot(t, np.maximum(np.linalg.norm(ev["gd_on"] - ev["gf_on"], axis=1), floor), "o-", ms=2,
                color="C0", label=f"on corridor (zeros drawn at {floor:.0e})")
        ax.plot(t, np.maximum(np.linalg.norm(ev["gd_off"] - ev["gf_off"], axis=1), floor), "o-", ms=2,
                color="C1", label="off corridor")
        y0 = OFF_CORRIDOR[1]
        ax.plot(t[1:], np.abs((1.0 - ev["lr"]) ** np.arange(1, len(t)) - np.exp(-t[1:])) * y0, "k--", lw=1,
                label=r"$|(1 - h)^k - e^{-kh}|\,|y_0|$")
        figures.reference_line(ax, y=ROUNDING_TOL, color="0.5", linestyle=":", label="rounding bound")
        figures.axes_style(ax, r"$t = kh$", r"$\|GD_k - GF(kh)\|$", logy=True, title="GD - GF drift")
        ax.legend(fontsize=7)
        return fig
