"""Dherin (2023): implicit biases of multitask and continual learning by backward error analysis
(docs/flows.md section 5).

Two fixed non-quadratic tasks on R^2 (g_i = grad L_i, H_i = hess L_i), from THETA0 = (1.5, 0.3):
    L_1(theta) = log cosh(theta_1 - 1) + (theta_2 - sin theta_1)^2 / 2
    L_2(theta) = (theta_1 theta_2 - 1/2)^2 / 2 + theta_2^4 / 10

Continual (sequential) GD: n steps of size h on L_1, then n on L_2 (one cycle, time 2 n h). Composing the two
IGR flows over time s = n h each (BCH to second order) gives, to O(h^3) per cycle [derived],

    theta. = -grad[ (L_1 + L_2)/2 + (h/8)(||g_1||^2 + ||g_2||^2) ] + (n h / 4) [g_1, g_2],
    [g_1, g_2] = H_2 g_1 - H_1 g_2   (Lie bracket: not a gradient, grows with n, odd in the task order),

so the two task orders end a cycle n^2 h^2 [g_1, g_2] + O(h^3) apart, and dropping the bracket leaves a
flow with local error O(h^2). Multitask (joint GD on L_1 + L_2) follows the IGR flow of
L_1 + L_2 + (h/4)(||g_1||^2 + ||g_2||^2) + (h/2) <g_1, g_2> = igr_loss(L_1 + L_2) to O(h^3) per step.

The algebra of the fields (the bracket's antisymmetry, the odd/even split of the continual field under reversing
the task order, multitask loss = IGR of the sum) is checked in unit tests against dense Hessians
(tests/test_theorem_units_flows.py, tests/test_modified_flows.py, tests/test_stochastic_and_games.py): those are
identities of the code, not predictions about GD.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.models.toys import quartic_product as task_two
from dynamics.models.toys import sine_valley as task_one

from .common import claims, figures
from .harness import Theorem

THETA0 = np.array([1.5, 0.3])
LADDER = {"quick": np.array([0.04, 0.02, 0.01, 0.005]),
          "full": np.array([0.04, 0.02, 0.01, 0.005, 0.0025, 0.00125])}
PHASES = (1, 3)
TRAJECTORY = {"lr": 0.04, "phase": 3, "cycles": 25}
FLOW_TOL = {"rtol": 1e-13, "atol": 1e-15}  # flow integration (Tsit5), far below the smallest error (~1e-8)


def joint_loss(theta):
    return task_one(theta) + task_two(theta)


def averaged_igr_loss(lr):
    """(igr(L_1) + igr(L_2))/2 = (L_1 + L_2)/2 + (h/8)(||g_1||^2 + ||g_2||^2): the continual flow minus its bracket."""
    first, second = dyn.igr_loss(task_one, lr), dyn.igr_loss(task_two, lr)
    return lambda theta: 0.5 * (first(theta) + second(theta))


def multitask_loss(lr):
    return dyn.multitask_modified_loss([task_one, task_two], lr)


class ModifiedLossFlow(dyn.AbstractFlow):
    """theta. = -grad M_h(theta), M_h = make(h); h is a traced leaf, so one compilation serves every h."""

    make: callable = eqx.field(static=True)
    lr: object

    def field(self, t, theta):
        return -jax.grad(self.make(self.lr))(theta)


def _cycle_order(phase, ladder, flow):
    """One-cycle errors of SequentialGD(n = phase) against ``flow(h)``: convergence_order over the cycle time
    2 n h (2n steps of h = H/(2n) land on t = H), so the slope in H is the slope in h."""
    fit = dyn.convergence_order(lambda H: dyn.SequentialGD(task_one, task_two, jnp.asarray(H / (2 * phase)), phase),
                                lambda H: flow(jnp.asarray(H / (2 * phase))), THETA0, 2 * phase * ladder,
                                solver=diffrax.Tsit5(), **FLOW_TOL)
    return fit.errors


def _cycle_end(first, second, lr, phase, cycles):
    """SequentialGD iterates at the end of each cycle, cycles 0..cycles."""
    return np.asarray(dyn.simulate(dyn.SequentialGD(first, second, lr, phase), THETA0,
                                   2 * phase * lr * np.arange(cycles + 1)).ys)


def _sampled(flow, ts):
    """``flow`` from THETA0 at ``ts``, one solve per interval restarted at the previous sample: the call signature
    of the one-cycle comparisons, so flows compiled there are reused (restarts stay within FLOW_TOL)."""
    ys = [THETA0]
    for start, stop in zip(ts[:-1], ts[1:]):
        ys.append(np.asarray(dyn.simulate(flow, ys[-1], np.array([start, stop]), solver=diffrax.Tsit5(),
                                          **FLOW_TOL).ys[-1]))
    return np.array(ys)


class Dherin2023(Theorem):
    id = "dherin2023_continual"
    reference = ("Dherin: Implicit biases in multitask and continual learning from a backward error analysis "
                 "perspective, NeurIPS 2023 M3L workshop (arXiv 2311.00235)")
    statement = (
        "Continual learning by GD (n steps on task 1, then n on task 2, repeated) follows, to O(h^3) per cycle, "
        "the flow of the averaged IGR loss (L_1 + L_2)/2 + (h/8)(||g_1||^2 + ||g_2||^2) plus the conflict term "
        "(n h/4)[g_1, g_2], the Lie bracket of the task gradients: not a gradient, growing with the phase "
        "length n and changing sign with the task order. Multitask learning (joint GD on L_1 + L_2) follows "
        "the gradient flow of L_1 + L_2 + (h/4)(||g_1||^2 + ||g_2||^2) + (h/2)<g_1, g_2>, i.e. IGR of the sum.")
    hypotheses = (
        "Smooth (analytic) non-quadratic tasks on R^2 with a non-vanishing bracket at theta_0 "
        "(||[g_1, g_2]|| comparable to ||g_1||, checked).",
        "Fixed phase length n (the per-cycle error is O(h^3) with O(n h lambda_max) relative corrections; "
        "n h lambda_max(H_i) <= 0.3 at theta_0 on the ladder, checked).",
        "Errors compared after one cycle (2n steps, time 2 n h) from the same theta_0; flows integrated with "
        "Tsit5 at rtol 1e-13, far below the errors.",
    )

    def run(self, budget="quick"):
        ladder = LADDER[budget]
        theta0 = jnp.asarray(THETA0)
        bracket0 = np.asarray(dyn.lie_bracket(task_one, task_two, theta0))
        g1 = np.asarray(jax.grad(task_one)(theta0))
        if np.linalg.norm(bracket0) < 0.1 * np.linalg.norm(g1):
            raise InputError(f"the task gradients nearly commute at theta_0 (||[g1, g2]|| = "
                             f"{np.linalg.norm(bracket0):.2g}): the bracket term would be invisible")
        curvature = max(float(dyn.sharpness(task, theta0)) for task in (task_one, task_two))
        if max(PHASES) * ladder.max() * curvature > 0.3:
            raise InputError(f"n h lambda_max = {max(PHASES) * ladder.max() * curvature:.3g} > 0.3: outside the "
                             "asymptotic regime of the per-cycle expansion")
        ev = {"ladder": ladder, "bracket0": bracket0, "curvature": curvature,
              "joint_curvature": float(dyn.sharpness(joint_loss, theta0))}
        for n in PHASES:
            ev[f"err_continual_{n}"] = _cycle_order(n, ladder, lambda h, n=n: dyn.ContinualModifiedFlow(
                task_one, task_two, h, n))
        ev["err_no_bracket"] = _cycle_order(1, ladder, lambda h: ModifiedLossFlow(averaged_igr_loss, h))

        # task order: GD(1 then 2) - GD(2 then 1) after one cycle (n = 1) vs n^2 h^2 [g_1, g_2]
        swap = [_cycle_end(task_one, task_two, jnp.asarray(h), 1, 1)[-1] - _cycle_end(
            task_two, task_one, jnp.asarray(h), 1, 1)[-1] for h in ladder]
        ev["order_gap"] = np.linalg.norm(np.array(swap), axis=1)
        ev["order_residual"] = np.linalg.norm(np.array(swap) - ladder[:, None] ** 2 * bracket0, axis=1)

        ev["err_multitask"] = dyn.convergence_order(
            lambda h: dyn.GradientDescent(joint_loss, jnp.asarray(h)),
            lambda h: ModifiedLossFlow(multitask_loss, jnp.asarray(h)), theta0, ladder, solver=diffrax.Tsit5(),
            **FLOW_TOL).errors

        traj = TRAJECTORY
        lr, n, cycles = jnp.asarray(np.float64(traj["lr"])), traj["phase"], traj["cycles"]  # strong type: cached
        ts = 2 * n * traj["lr"] * np.arange(cycles + 1)
        ev.update(traj_ts=ts, gd_forward=_cycle_end(task_one, task_two, lr, n, cycles),
                  gd_backward=_cycle_end(task_two, task_one, lr, n, cycles),
                  flow_forward=_sampled(dyn.ContinualModifiedFlow(task_one, task_two, lr, n), ts),
                  flow_backward=_sampled(dyn.ContinualModifiedFlow(task_two, task_one, lr, n), ts),
                  flow_no_bracket=_sampled(ModifiedLossFlow(averaged_igr_loss, lr), ts))
        return ev

    def check(self, ev):
        hs = ev["ladder"]
        scale = float(hs.max() * ev["curvature"])
        ladder = f"h in {hs.tolist()}"
        out = []
        for n in PHASES:
            err = ev[f"err_continual_{n}"]
            out.append(claims.slope(
                f"C{1 if n == 1 else 2}: one-cycle error slope, n = {n}, sequential GD vs continual modified flow", hs,
                err, 3.0, 0.15, claims.slope_why(3, hs, n * scale, "n h lambda_max"),
                note=f"per-cycle error O(h^3) [derived]; {ladder}; errors {err[0]:.2e} -> {err[-1]:.2e}"))
        err = ev["err_no_bracket"]
        out.append(claims.slope(
            "C3: one-cycle error slope, n = 1, averaged IGR flow without the bracket", hs, err, 2.0, 0.15,
            claims.slope_why(2, hs, scale, "n h lambda_max"),
            note="dropping the O(h) term (h/4)[g_1, g_2] leaves an O(h^2) per-cycle error: the bracket matters; "
            + ladder))
        out.append(claims.slope(
            "C4: slope of ||GD(1,2) - GD(2,1) - h^2 [g_1, g_2]|| after one cycle, n = 1", hs, ev["order_residual"], 3.0,
            0.15, claims.slope_why(3, hs, scale, "n h lambda_max"),
            note="[derived] the two task orders follow flows differing by (n h/2)[g_1, g_2], so one cycle (time "
            f"2 n h) ends n^2 h^2 [g_1, g_2] + O(h^3) apart; the gap itself: {ev['order_gap'][0]:.2e} -> "
            f"{ev['order_gap'][-1]:.2e}; {ladder}"))
        err = ev["err_multitask"]
        out.append(claims.slope(
            "C9: local error slope, joint GD on L_1 + L_2 vs the multitask modified flow", hs, err, 3.0, 0.15,
            claims.slope_why(3, hs, float(hs.max() * ev["joint_curvature"]), "h lambda_max(L_1 + L_2)"),
            note=f"IGR of the sum: local O(h^3); {ladder}"))
        return out

    def figure(self, ev):
        hs = ev["ladder"]
        fig, axes = figures.panels(self, 2, width=6.2, height=5.2, title="continual and multitask learning by BEA")
        ax = axes[0]
        for key, label, order, color in (
                ("err_continual_1", "continual flow, n = 1", 3, "C0"),
                ("err_continual_3", "continual flow, n = 3", 3, "C1"),
                ("err_no_bracket", "averaged IGR flow (no bracket), n = 1", 2, "C3"),
                ("order_residual", r"$|GD_{12} - GD_{21} - h^2 [g_1, g_2]|$, n = 1", 3, "C4"),
                ("err_multitask", "joint GD vs multitask flow (one step)", 3, "C2")):
            err = ev[key]
            ax.plot(hs, err, "o-", color=color, label=label)
            ax.plot(hs, err[-1] * (hs / hs[-1]) ** order, ":", color=color, lw=1)
        figures.axes_style(ax, "h", "error after one cycle (2n steps)", logx=True, logy=True,
                           title=r"local errors; dotted: $h^3$ and $h^2$")
        ax.legend(fontsize=7)
        ax = axes[1]
        traj = TRAJECTORY
        ax.plot(*ev["gd_forward"].T, "o", ms=5, mfc="none", color="C0", label="sequential GD, L1 first (cycle ends)")
        ax.plot(*ev["flow_forward"].T, color="C0", lw=1, label="continual modified flow, L1 first")
        ax.plot(*ev["gd_backward"].T, "s", ms=4, mfc="none", color="C3", label="sequential GD, L2 first (cycle ends)")
        ax.plot(*ev["flow_backward"].T, color="C3", lw=1, label="continual modified flow, L2 first")
        ax.plot(*ev["flow_no_bracket"].T, "--", color="k", lw=1, label="averaged IGR flow (no bracket)")
        ax.plot(*THETA0, "k*", ms=10, label=r"$\theta_0$")
        figures.axes_style(ax, r"$\theta_1$", r"$\theta_2$",
                           title=f"n = {traj['phase']}, h = {traj['lr']}, {traj['cycles']} cycles: the task orders "
                           "split by the bracket term")
        ax.legend(fontsize=7)
        return fig
