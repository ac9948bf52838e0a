"""Rosca, Wu, Dherin, Barrett (2021): discretization drift in two-player games (docs/flows.md section 4).

Players phi, theta with fields f = -grad_phi L_1, g = -grad_theta L_2 and learning rates alpha h, lambda h.
With z = (phi, theta) and F = (alpha f, lambda g), in step time t = k h [derived by BEA]:

    simultaneous GD  z' = z + h F(z)           follows  z. = F - (h/2) F'F
    alternating GD   theta sees the new phi    follows  z. = F - (h/2) F'F + (0, alpha lambda h (d_phi g) f)

with local error O(h^3) (slope 3 in h), while the gradient flow z. = F has local error O(h^2).

Bilinear zero-sum game E = phi theta (L_1 = E, L_2 = -E, alpha = lambda = 1), closed forms [derived]:
simultaneous GD |z_k|^2 = (1 + h^2)^k |z_0|^2; its modified flow phi. = -theta + (h/2) phi,
theta. = phi + (h/2) theta gives |z(t)|^2 = e^{h t} |z_0|^2; alternating GD is the map [[1, -h], [h, 1 - h^2]]
(determinant 1) and conserves Q = phi^2 + theta^2 - h phi theta exactly; so does its modified flow
(A = [[h/2, -1], [1, -h/2]], S = [[1, -h/2], [-h/2, 1]]: S A is antisymmetric, so d/dt z^T S z = 0);
gradient flow z. = (-theta, phi) runs on circles.

Local orders are measured on a fixed smooth non-gradient game, phi in R^2, theta in R^1 (NONBILINEAR_Z0):
    f(phi, theta) = (sin theta + phi_2 cos(phi_1) / 2 - 0.3 phi_1^2,  cos(phi_1 + theta) - 0.4 phi_2 + 0.2 phi_1 theta)
    g(phi, theta) = sin(phi_1 phi_2) + cos(theta) / 2 - 0.3 theta^3 + 0.7 phi_2
with alpha = 1, lambda = 0.3 (unequal, where the released code's interaction coefficient would be wrong).
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.models.toys import bilinear_game

from .common import claims, figures
from .harness import Theorem

BILINEAR_LR = 0.05
BILINEAR_Z0 = (1.0, 0.5)
BILINEAR_STEPS = 10_000        # docs/flows.md section 4: Q conserved over 1e4 alternating steps
FLOW_STEPS = 600               # flows on the bilinear game: t in [0, 600 h] = [0, 30], ~5 turns
NONBILINEAR_Z0 = (np.array([0.4, -0.7]), np.array([0.9]))
ALPHA, LAM = 1.0, 0.3
LADDER = {"quick": np.array([0.04, 0.02, 0.01, 0.005]),
          "full": np.array([0.04, 0.02, 0.01, 0.005, 0.0025, 0.00125])}
FLOW_TOL = {"rtol": 1e-12, "atol": 1e-14}
#: closed-form checks of integrated flows: Tsit5 at rtol 1e-12 over ~5 turns keeps the global relative error
#: below 100 rtol (error per step <= rtol, no growth on these linear flows).
FLOW_CHECK_TOL = 1e-10
FLOW_CHECK_WHY = ("Tsit5 at rtol 1e-12 over ~5 turns of a linear flow: per-step errors <= rtol add up to < 100 rtol; "
                  "an O(h) error in the field would show at ~h t = 1.5")
#: exact invariants of the GD maps in float64: k roundings of relative size eps over 1e4 steps, ~1e-12.
MAP_TOL = 1e-12


def bilinear_fields():
    """(f, g) of the zero-sum game E = phi theta: f = -d_phi E = -theta, g = d_theta E = phi."""
    return dyn.game_fields(bilinear_game, lambda phi, theta: -bilinear_game(phi, theta))


def nonbilinear_f(phi, theta):
    return jnp.stack([jnp.sin(theta[0]) + 0.5 * phi[1] * jnp.cos(phi[0]) - 0.3 * phi[0] ** 2,
                      jnp.cos(phi[0] + theta[0]) - 0.4 * phi[1] + 0.2 * phi[0] * theta[0]])


def nonbilinear_g(phi, theta):
    return jnp.stack([jnp.sin(phi[0] * phi[1]) + 0.5 * jnp.cos(theta[0]) - 0.3 * theta[0] ** 3 + 0.7 * phi[1]])


class GameFlow(dyn.AbstractFlow):
    """z. = F(z) = (alpha f, lambda g) of ``game`` (a `GameGD`): the h -> 0 limit, local error O(h^2)."""

    game: dyn.GameGD

    def field(self, t, z):
        return self.game.scaled(z)


def field_jacobian(f, g, z, alpha, lam):
    """The Jacobian J of z -> F(z) = (alpha f, lambda g) at z (flattened); J - J^T = 0 iff F is locally a gradient
    field, and ||J|| is the rate that sets the size of the O(h) corrections."""
    flat, unravel = ravel_pytree(jax.tree_util.tree_map(jnp.asarray, z))
    field = lambda x: ravel_pytree(dyn.GameGD(f, g, 1.0, alpha, lam).scaled(unravel(x)))[0]
    return np.asarray(jax.jacfwd(field)(flat))


def _pair(traj):
    phi, theta = (np.asarray(leaf) for leaf in traj.ys)
    return phi, theta


class Rosca2021(Theorem):
    id = "rosca2021_games"
    reference = "Rosca, Wu, Dherin, Barrett: Discretization drift in two-player games, ICML 2021"
    statement = (
        "Gradient descent in two-player games with learning rates alpha h and lambda h follows, to O(h^3) per "
        "step, the modified flow z. = F - (h/2) F'F (simultaneous updates) or the same plus "
        "(0, alpha lambda h (d_phi g) f) (alternating updates), F = (alpha f, lambda g); the plain flow z. = F "
        "is only O(h^2) accurate per step. On the bilinear game E = phi theta simultaneous GD spirals out as "
        "(1 + h^2)^k, tracked by the modified flow's e^{h t}, while alternating GD conserves "
        "phi^2 + theta^2 - h phi theta and gradient flow circles.")
    hypotheses = (
        "Bilinear game: zero-sum (L_2 = -L_1, E = phi theta), alpha = lambda = 1, h = 0.05.",
        "Order game: smooth fields, F not a gradient field (Jacobian asymmetry checked at z_0), alpha != lambda.",
        "Local errors compared after one step from the same z_0; the flows integrated far below the errors "
        "(Tsit5, rtol 1e-13 in convergence_order).",
    )

    def run(self, budget="quick"):
        h = BILINEAR_LR
        f, g = bilinear_fields()
        z0 = tuple(jnp.asarray(c) for c in BILINEAR_Z0)
        if abs(float(f(*z0)) + float(z0[1])) + abs(float(g(*z0)) - float(z0[0])) > 1e-15:
            raise InputError("the bilinear game fields must be f = -theta, g = phi (zero-sum E = phi theta)")
        ks = np.arange(BILINEAR_STEPS + 1)
        sim = _pair(dyn.simulate(dyn.GameGD(f, g, h), z0, ks * h))
        alt = _pair(dyn.simulate(dyn.GameGD(f, g, h, alternating=True), z0, ks * h))
        ts = np.arange(FLOW_STEPS + 1) * h
        mf_sim = _pair(dyn.simulate(dyn.GameModifiedFlow(f, g, h), z0, ts, **FLOW_TOL))
        mf_alt = _pair(dyn.simulate(dyn.GameModifiedFlow(f, g, h, alternating=True), z0, ts, **FLOW_TOL))
        gf = _pair(dyn.simulate(GameFlow(dyn.GameGD(f, g, h)), z0, ts, **FLOW_TOL))
        evidence = {"h": h, "k": ks, "t_flow": ts, "r0_sq": float(z0[0] ** 2 + z0[1] ** 2),
                    "sim": np.stack(sim), "alt": np.stack(alt), "mf_sim": np.stack(mf_sim),
                    "mf_alt": np.stack(mf_alt), "gf": np.stack(gf)}

        fo, go, zo = nonbilinear_f, nonbilinear_g, tuple(jnp.asarray(c) for c in NONBILINEAR_Z0)
        J = field_jacobian(fo, go, zo, ALPHA, LAM)
        defect = float(np.linalg.norm(J - J.T) / np.linalg.norm(J))
        if defect < 0.1:
            raise InputError(f"the order game must not be a gradient field; Jacobian asymmetry {defect:.2g}")
        ladder = LADDER[budget]
        gd = lambda alternating: lambda s: dyn.GameGD(fo, go, jnp.asarray(s), ALPHA, LAM, alternating)
        mf = lambda alternating: lambda s: dyn.GameModifiedFlow(fo, go, jnp.asarray(s), ALPHA, LAM, alternating)
        plain = lambda s: GameFlow(dyn.GameGD(fo, go, jnp.asarray(s), ALPHA, LAM))
        order = lambda discrete, flow: dyn.convergence_order(discrete, flow, zo, ladder, solver=diffrax.Tsit5())
        fits = {"sim": order(gd(False), mf(False)), "alt": order(gd(True), mf(True)),
                "gf": order(gd(False), plain), "alt_vs_sim_flow": order(gd(True), mf(False))}
        evidence.update(ladder=ladder, asymmetry=defect, jacobian_norm=float(np.linalg.norm(J, 2)))
        for name, fit in fits.items():
            evidence[f"err_{name}"] = fit.errors
        return evidence

    def check(self, ev):
        h, k, t, r0 = ev["h"], ev["k"], ev["t_flow"], ev["r0_sq"]
        sq = lambda z: z[0] ** 2 + z[1] ** 2
        quad = lambda z: z[0] ** 2 + z[1] ** 2 - h * z[0] * z[1]
        max_rel = lambda a, b: float(np.max(np.abs(a / b - 1.0)))
        steps = f"{len(k) - 1} steps, h = {h}"
        out = [
            claims.bound("B1: simultaneous GD, max_k | |z_k|^2 / ((1+h^2)^k |z_0|^2) - 1 |",
                         max_rel(sq(ev["sim"]), (1.0 + h * h) ** k * r0), MAP_TOL,
                         "exact for the map [[1, -h], [h, 1]] [derived]; 1e4 steps of float64 rounding (~k eps = 2e-12 "
                         "worst case, random-walk ~1e-14)", note=f"{steps}; GD spirals out"),
            claims.bound("B2: simultaneous modified flow, max_t | |z(t)|^2 / (e^{h t} |z_0|^2) - 1 |",
                         max_rel(sq(ev["mf_sim"]), np.exp(h * t) * r0), FLOW_CHECK_TOL, FLOW_CHECK_WHY,
                         role="consistency", note="closed form of z. = F - (h/2) F'F = (-theta + h phi/2, phi + h "
                         f"theta/2), t <= {t[-1]:g}: checks GameModifiedFlow and the integrator"),
            claims.bound("B3: alternating GD, max_k |Q_k / Q_0 - 1|, Q = phi^2 + theta^2 - h phi theta",
                         max_rel(quad(ev["alt"]), quad(ev["alt"][:, 0])), MAP_TOL,
                         "exact invariant of the determinant-1 map [[1, -h], [h, 1 - h^2]] [derived]; 1e4 steps of "
                         "float64 rounding", note=steps),
            claims.bound("B4: alternating modified flow, max_t |Q(t)/Q(0) - 1|",
                         max_rel(quad(ev["mf_alt"]), quad(ev["mf_alt"][:, 0])), FLOW_CHECK_TOL, FLOW_CHECK_WHY,
                         role="consistency", note="[derived] z. = A z, A = [[h/2, -1], [1, -h/2]]: S A antisymmetric "
                         "for Q = z^T S z, so the modified flow shares GD's exact invariant"),
            claims.bound("B5: gradient flow, max_t | |z(t)|^2 / |z_0|^2 - 1 |", max_rel(sq(ev["gf"]), r0),
                         FLOW_CHECK_TOL, FLOW_CHECK_WHY, role="consistency",
                         note="z. = (-theta, phi) is a rotation"),
        ]
        scale = float(ev["ladder"].max() * ev["jacobian_norm"])
        ladder = f"alpha = {ALPHA}, lambda = {LAM}, Jacobian asymmetry {ev['asymmetry']:.2f}"
        for name, label, expected, why in (
                ("sim", "simultaneous GD vs its modified flow", 3.0, "modified flow of order 1: local O(h^3)"),
                ("alt", "alternating GD vs its modified flow", 3.0, "modified flow of order 1: local O(h^3)"),
                ("gf", "simultaneous GD vs gradient flow z. = F", 2.0, "the O(h) drift -(h/2) F'F is missing"),
                ("alt_vs_sim_flow", "alternating GD vs the simultaneous modified flow", 2.0,
                 "the O(h) alternation term alpha lambda h (d_phi g) f is missing")):
            err = ev[f"err_{name}"]
            out.append(claims.slope(
                f"L: local error slope, {label}", ev["ladder"], err, expected, 0.15,
                claims.slope_why(expected, ev["ladder"], scale, "h ||F'(z_0)||"),
                note=f"{why}; {ladder}; errors {err[0]:.2e} -> {err[-1]:.2e}"))
        return out

    def figure(self, ev):
        h, k, t = ev["h"], ev["k"], ev["t_flow"]
        shown = k <= len(t) - 1
        fig, axes = figures.panels(self, 4, width=4.8, height=4.6, title="discretization drift in two-player games")
        ax = axes[0]
        ax.plot(*ev["sim"][:, shown], ".", ms=2, color="C0", zorder=3, label="simultaneous GD")
        ax.plot(*ev["mf_sim"], color="C1", lw=1, label=r"modified flow $\dot z = F - \frac{h}{2}F'F$")
        ax.plot(*ev["gf"], "--", color="k", lw=1, label="gradient flow (circle)")
        ax.set(aspect="equal")
        figures.axes_style(ax, r"$\phi$", r"$\theta$", title=rf"bilinear $E = \phi\theta$, h = {h}: simultaneous")
        ax.legend(loc="center", fontsize=6)
        ax = axes[1]
        ax.plot(*ev["alt"][:, shown], ".", ms=2, color="C2", zorder=3, label="alternating GD")
        ax.plot(*ev["mf_alt"], color="C3", lw=1, label="alternating modified flow")
        ax.plot(*ev["gf"], "--", color="k", lw=1, label="gradient flow (circle)")
        ax.set(aspect="equal")
        figures.axes_style(ax, r"$\phi$", r"$\theta$",
                           title=r"alternating: ellipse $\phi^2 + \theta^2 - h\phi\theta = Q_0$")
        ax.legend(loc="center", fontsize=6)
        ax = axes[2]
        r0, sq, ks = ev["r0_sq"], lambda z: z[0] ** 2 + z[1] ** 2, k[shown]
        ax.plot(ks * h, sq(ev["sim"][:, shown]) / r0, ".", ms=3, color="C0", label="simultaneous GD")
        ax.plot(ks * h, (1 + h * h) ** ks, color="C0", lw=1, label=r"$(1 + h^2)^k$")
        ax.plot(t, sq(ev["mf_sim"]) / r0, "--", color="C1", lw=1.5, label="modified flow")
        ax.plot(ks * h, sq(ev["alt"][:, shown]) / r0, color="C2", lw=1, label="alternating GD")
        ax.plot(t, sq(ev["gf"]) / r0, ":", color="k", lw=1, label="gradient flow")
        figures.axes_style(ax, r"$t = kh$", r"$|z|^2 / |z_0|^2$", logy=True,
                           title=rf"$(1 + h^2)^{{t/h}}$ vs $e^{{ht}}$: ratio {np.exp(-h ** 3 * t[-1] / 2):.5f} "
                           "at the end")
        ax.legend(fontsize=6)
        ax = axes[3]
        hs = ev["ladder"]
        for name, label, color in (("sim", "simultaneous vs modified flow", "C0"),
                                   ("alt", "alternating vs alternating modified flow", "C2"),
                                   ("gf", "simultaneous vs gradient flow", "C1"),
                                   ("alt_vs_sim_flow", "alternating vs simultaneous modified flow", "C3")):
            err = ev[f"err_{name}"]
            ax.plot(hs, err, "o-", color=color, label=label)
            order = 3 if name in ("sim", "alt") else 2
            ax.plot(hs, err[-1] * (hs / hs[-1]) ** order, ":", color=color, lw=1)
        figures.axes_style(ax, "h", r"local error $|z_1 - z(h)|$", logx=True, logy=True,
                           title=rf"non-gradient 3-D game, $\alpha$ = {ALPHA}, $\lambda$ = {LAM} "
                           r"(dotted: $h^3$, $h^2$)")
        ax.legend(fontsize=6)
        fig.tight_layout()
        return fig
