"""Damian, Nichani, Lee (2023): self-stabilization at the edge of stability (docs/flows.md section 9).

Local model near the onset point theta*: x = u.(theta - theta*) (top-eigenvector displacement), y = grad S.(theta -
theta*) (sharpness excess, S ~ 2/eta + y), alpha = -grad L . grad S > 0 (progressive sharpening), beta = |grad S|^2:

    x_{t+1} = -(1 + eta y_t) x_t,    y_{t+1} = y_t + eta (alpha - beta x_t^2 / 2).

Summing the y-update over t < T gives mean_{t<T} x_t^2 = 2 alpha/beta - 2 (y_T - y_0)/(eta beta T) exactly, so the
map's oscillation self-tunes to 2 alpha/beta on average exactly when the sharpness excess y stays bounded
(self-stabilization) instead of growing with T. Its continuous (Lotka-Volterra) form in step time tau, X = x^2:
dX/dtau = 2 eta y X, dy/dtau = eta (alpha - beta X/2), conserves H = y^2 + (beta/2) X - alpha ln X, so its orbits
are closed cycles around (X*, y*) = (2 alpha/beta, 0). (That the flow's average of X over a whole cycle is 2 alpha/beta
follows from y returning to its start by the same identity; it is a unit test, tests/test_theorem_units_eos.py.)
"""

import diffrax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.errors import InputError

from .common import claims, figures
from .harness import Theorem

ETA, ALPHA, BETA = 0.01, 1.0, 10.0
X0S = (0.3, 0.4)                 # docs/flows.md section 9: x0 in {0.3, 0.4}, y0 = 0
STEPS = 20_000                   # docs/flows.md section 9: 2e4 steps of the discrete map
MEAN_TOL = 0.05                  # relative; equivalent to |y_T| <= MEAN_TOL eta alpha T = 10 (see the claim)
FLOW_TOL = {"rtol": 1e-12, "atol": 1e-14, "solver": diffrax.Dopri8(), "max_steps": 1_000_000}
#: H drifts only by the integration error: rtol 1e-12 per step over ~1e4 steps accumulates to at most ~1e-8 relative
CONSERVATION_TOL = 1e-8
FLOW_HORIZON = 5_000.0           # step time; linearized period 2 pi / (eta sqrt(2 alpha)) = 444 steps: ~10 cycles


class SelfStabilizationMap(dyn.AbstractDiscrete):
    """The two-dimensional map (x, y) -> (-(1 + eta y) x, y + eta (alpha - beta x^2/2)); lr = eta."""

    lr: object
    alpha: float
    beta: float

    def step(self, z, k):
        x, y = z[0], z[1]
        return jnp.stack([-(1.0 + self.lr * y) * x, y + self.lr * (self.alpha - 0.5 * self.beta * x**2)])


class LotkaVolterraFlow(dyn.AbstractFlow):
    """State (X, y, I) in step time tau: dX = 2 eta y X, dy = eta (alpha - beta X/2), dI = X (I = int_0^tau X)."""

    eta: float
    alpha: float
    beta: float
    time_unit = "steps"

    def field(self, t, z):
        X, y = z[0], z[1]
        return jnp.stack([2.0 * self.eta * y * X, self.eta * (self.alpha - 0.5 * self.beta * X), X])


def conserved(X, y, alpha=ALPHA, beta=BETA):
    """H = y^2 + (beta/2) X - alpha ln X, constant along the Lotka-Volterra flow."""
    return y**2 + 0.5 * beta * X - alpha * np.log(X)


class Damian2023(Theorem):
    id = "damian2023_self_stabilization"
    reference = ("Damian, Nichani, Lee: Self-stabilization: the implicit bias of gradient descent at the edge of "
                 "stability, ICLR 2023")
    statement = (
        "Near the edge of stability GD's displacement x along the top Hessian eigenvector and the sharpness excess "
        "y = S - 2/eta follow x' = -(1 + eta y) x, y' = y + eta (alpha - beta x^2/2): sharpening (y grows at rate "
        "eta alpha), blow-up of |x| while y > 0, self-stabilization (the cubic term pushes y down by eta beta x^2/2), "
        "return to stability. The sharpness excess stays bounded, so the average of x^2 self-tunes to 2 alpha/beta "
        "(the sharpness stays at 2/eta on average); the continuous form is a Lotka-Volterra system in (X = x^2, y) "
        "with conserved quantity y^2 + (beta/2) X - alpha ln X (closed cycles).")
    hypotheses = (
        "alpha > 0 (progressive sharpening) and beta > 0 (checked).",
        "x0 != 0 (else X = 0 is a fixed point and ln X is undefined), y0 = 0 (checked).",
        "eta = 0.01 small: the map is the Euler step of the Lotka-Volterra flow in step time; 2e4 steps.",
    )

    def run(self, budget="quick"):
        if not (ALPHA > 0 and BETA > 0):
            raise InputError(f"self-stabilization needs alpha > 0 and beta > 0, got alpha = {ALPHA}, beta = {BETA}")
        if any(x0 == 0 for x0 in X0S):
            raise InputError("x0 must be nonzero: X = 0 is a fixed point of the Lotka-Volterra flow")
        evidence = {"target": 2 * ALPHA / BETA, "x0s": np.array(X0S)}
        gd = SelfStabilizationMap(jnp.asarray(ETA), ALPHA, BETA)
        flow = LotkaVolterraFlow(ETA, ALPHA, BETA)
        ts = np.arange(0.0, FLOW_HORIZON + 1.0)
        for x0 in X0S:
            z = np.asarray(dyn.simulate(gd, jnp.array([x0, 0.0]), np.arange(STEPS + 1) * ETA).ys)
            ys = np.asarray(dyn.simulate(flow, jnp.array([x0**2, 0.0, 0.0]), ts, **FLOW_TOL).ys)
            evidence[f"x0={x0}"] = {"map": z, "flow": ys, "H": conserved(ys[:, 0], ys[:, 1])}
        return evidence

    def check(self, evidence):
        target = evidence["target"]
        out = []
        for x0 in evidence["x0s"]:
            e = evidence[f"x0={x0}"]
            x, y = e["map"][:-1, 0], e["map"][:, 1]
            H = e["H"]
            out.append(claims.identity(
                f"x0={x0}: discrete map mean x^2 over 2e4 steps vs 2 alpha/beta", float(np.mean(x**2)), target,
                MEAN_TOL, relative=True,
                why=(f"mean x^2 - 2 alpha/beta = -2 y_T/(eta beta T) exactly, so 5% means |y_T| <= "
                     f"{MEAN_TOL * ETA * ALPHA * STEPS:g}: the sharpness excess stays bounded instead of growing like "
                     f"eta alpha T = {ETA * ALPHA * STEPS:g}"),
                note=(f"y_T = {y[-1]:.4f}, max |y| = {np.max(np.abs(y)):.3f}; the map's energy drifts (H from "
                      f"{conserved(x0 ** 2, 0.0):.3g} to {conserved(e['map'][-1, 0] ** 2, y[-1]):.3g}): it is the "
                      "Lotka-Volterra flow only to O(eta)")))
            out.append(claims.bound(
                f"x0={x0}: conserved y^2 + (beta/2)X - alpha ln X along the Lotka-Volterra flow, max relative drift",
                float(np.max(np.abs(H - H[0])) / abs(H[0])), CONSERVATION_TOL,
                why="exact conservation law; Dopri8 at rtol 1e-12 over ~1e4 steps accumulates at most ~1e-8 relative",
                note=(f"H = {H[0]:.6g} over tau in [0, {FLOW_HORIZON:g}] "
                      f"(~{FLOW_HORIZON * ETA * np.sqrt(2 * ALPHA) / (2 * np.pi):.0f} linearized periods)")))
        return out

    def figure(self, evidence):
        fig, axes = figures.panels(self, 2, width=6.0, height=4.5, title="self-stabilization")
        target = evidence["target"]
        for x0 in evidence["x0s"]:
            e = evidence[f"x0={x0}"]
            x, y = e["map"][:, 0], e["map"][:, 1]
            (line,) = axes[0].plot(x**2, y, ".", ms=1.0, alpha=0.4, label=f"map, $x_0$ = {x0}")
            axes[0].plot(e["flow"][:, 0], e["flow"][:, 1], "-", color=line.get_color(), lw=1.2,
                         label=f"Lotka-Volterra, $X_0$ = {x0 ** 2:g}")
            k = np.arange(1, x.size)
            axes[1].plot(k, np.cumsum(x[:-1] ** 2) / k, color=line.get_color(), label=f"$x_0$ = {x0}")
        axes[0].plot([target], [0.0], "k*", ms=10, label=r"fixed point $(2\alpha/\beta, 0)$")
        figures.axes_style(axes[0], r"$X = x^2$", r"$y$ (sharpness $- 2/\eta$)", logx=True, title="phase portrait")
        axes[0].legend(fontsize=7)
        figures.reference_line(axes[1], y=target, label=r"$2\alpha/\beta$")
        figures.axes_style(axes[1], "step $t$", r"running mean of $x_t^2$", logx=True, title="self-stabilized average")
        axes[1].legend(fontsize=8)
        return fig
