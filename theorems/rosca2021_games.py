"""Rosca, Wu, Dherin, Barrett (2021): discretization drift in two-player games (theory flows.md section 4).

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
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

import dynamics as dyn
from dynamics.errors import InputError

from .harness import Claim, Theorem

BILINEAR_LR = 0.05
BILINEAR_Z0 = (1.0, 0.5)
BILINEAR_STEPS = 10_000        # spec: Q conserved over 1e4 alternating steps
FLOW_STEPS = 600               # flows on the bilinear game: t in [0, 600 h] = [0, 30], ~5 turns
NONBILINEAR_Z0 = (np.array([0.4, -0.7]), np.array([0.9]))
ALPHA, LAM = 1.0, 0.3
LADDER = {"quick": np.array([0.04, 0.02, 0.01, 0.005]),
          "full": np.array([0.04, 0.02, 0.01, 0.005, 0.0025, 0.00125])}
FLOW_TOL = {"rtol": 1e-12, "atol": 1e-14}
#: closed-form checks of integrated flows: Tsit5 at rtol 1e-12 over ~5 turns (~1e4 steps) keeps the global
#: relative error below 100 rtol (error per step <= rtol, no growth on these linear flows; measured ~1e-12).
FLOW_CHECK_TOL = 1e-10
SLOPE_TOL = 0.15               # spec section 4: slopes 3 +- 0.15 (local)


def bilinear_fields():
    """(f, g) of the zero-sum game E = phi theta: f = -d_phi E = -theta, g = d_theta E = phi."""
    energy = lambda phi, theta: phi * theta
    return dyn.game_fields(energy, lambda phi, theta: -energy(phi, theta))


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


def non_gradient_defect(f, g, z, alpha, lam):
    """||J - J^T|| / ||J|| for the Jacobian J of z -> F(z) at z: 0 iff F is locally a gradient field."""
    flat, unravel = ravel_pytree(jax.tree_util.tree_map(jnp.asarray, z))
    field = lambda x: ravel_pytree(dyn.GameGD(f, g, 1.0, alpha, lam).scaled(unravel(x)))[0]
    J = np.asarray(jax.jacfwd(field)(flat))
    return float(np.linalg.norm(J - J.T) / np.linalg.norm(J))


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
        defect = non_gradient_defect(fo, go, zo, ALPHA, LAM)
        if defect < 0.1:
            raise InputError(f"the order game must not be a gradient field; Jacobian asymmetry {defect:.2g}")
        ladder = LADDER[budget]
        gd = lambda alternating: lambda s: dyn.GameGD(fo, go, jnp.asarray(s), ALPHA, LAM, alternating)
        mf = lambda alternating: lambda s: dyn.GameModifiedFlow(fo, go, jnp.asarray(s), ALPHA, LAM, alternating)
        plain = lambda s: GameFlow(dyn.GameGD(fo, go, jnp.asarray(s), ALPHA, LAM))
        order = lambda discrete, flow: dyn.convergence_order(discrete, flow, zo, ladder, solver=diffrax.Tsit5())
        fits = {"sim": order(gd(False), mf(False)), "alt": order(gd(True), mf(True)),
                "gf": order(gd(False), plain), "alt_vs_sim_flow": order(gd(True), mf(False))}
        evidence.update(ladder=ladder, asymmetry=defect)
        for name, fit in fits.items():
            evidence[f"err_{name}"] = fit.errors
            evidence[f"slope_{name}"] = fit.slope
            evidence[f"stderr_{name}"] = fit.slope_stderr
        return evidence

    def check(self, ev):
        h, k, t, r0 = ev["h"], ev["k"], ev["t_flow"], ev["r0_sq"]
        sq = lambda z: z[0] ** 2 + z[1] ** 2
        quad = lambda z: z[0] ** 2 + z[1] ** 2 - h * z[0] * z[1]
        max_rel = lambda a, b: float(np.max(np.abs(a / b - 1.0)))
        steps = f"{len(k) - 1} steps, h = {h}"
        claims = [
            Claim("B1: simultaneous GD, max_k | |z_k|^2 / ((1+h^2)^k |z_0|^2) - 1 |",
                  max_rel(sq(ev["sim"]), (1.0 + h * h) ** k * r0), 1e-12, kind="max",
                  note=f"exact for the map [[1, -h], [h, 1]] ({steps}); spec tolerance 1e-12 (rounding ~ k eps)"),
            Claim("B2: simultaneous modified flow, max_t | |z(t)|^2 / (e^{h t} |z_0|^2) - 1 |",
                  max_rel(sq(ev["mf_sim"]), np.exp(h * t) * r0), FLOW_CHECK_TOL, kind="max",
                  note=f"closed form of z. = F - (h/2) F'F = (-theta + h phi/2, phi + h theta/2), t <= {t[-1]:g}; "
                  "tolerance: integrator accuracy (rtol 1e-12, ~5 turns)"),
            Claim("B3: alternating GD, max_k |Q_k / Q_0 - 1|, Q = phi^2 + theta^2 - h phi theta",
                  max_rel(quad(ev["alt"]), quad(ev["alt"][:, 0])), 1e-12, kind="max",
                  note=f"exact invariant of the determinant-1 map [[1, -h], [h, 1 - h^2]] ({steps}); spec 1e-12"),
            Claim("B4: alternating modified flow, max_t |Q(t)/Q(0) - 1|",
                  max_rel(quad(ev["mf_alt"]), quad(ev["mf_alt"][:, 0])), FLOW_CHECK_TOL, kind="max",
                  note="[derived] z. = A z, A = [[h/2, -1], [1, -h/2]]: S A antisymmetric for Q = z^T S z, so the "
                  "modified flow shares GD's exact invariant; tolerance: integrator accuracy"),
            Claim("B5: gradient flow, max_t | |z(t)|^2 / |z_0|^2 - 1 |", max_rel(sq(ev["gf"]), r0),
                  FLOW_CHECK_TOL, kind="max", note="z. = (-theta, phi) is a rotation; tolerance: integrator accuracy"),
        ]
        ladder = f"h in {list(ev['ladder'])}, alpha = {ALPHA}, lambda = {LAM}"
        for name, label, expected, why in (
                ("sim", "simultaneous GD vs its modified flow", 3.0, "modified flow of order 1: local O(h^3)"),
                ("alt", "alternating GD vs its modified flow", 3.0, "modified flow of order 1: local O(h^3)"),
                ("gf", "simultaneous GD vs gradient flow z. = F", 2.0, "the O(h) drift -(h/2) F'F is missing"),
                ("alt_vs_sim_flow", "alternating GD vs the simultaneous modified flow", 2.0,
                 "the O(h) alternation term alpha lambda h (d_phi g) f is missing")):
            claims.append(Claim(f"L: local error slope, {label}", ev[f"slope_{name}"], expected, SLOPE_TOL,
                                note=f"{why}; {ladder}; fit stderr {ev[f'stderr_{name}']:.1e}; spec tolerance "
                                f"0.15 (O(h) relative corrections); Jacobian asymmetry {ev['asymmetry']:.2f}"))
        return claims

    def figure(self, ev):
        h, k, t = ev["h"], ev["k"], ev["t_flow"]
        shown = k <= len(t) - 1
        fig, axes = plt.subplots(2, 2, figsize=(12, 10))
        ax = axes[0, 0]
        ax.plot(*ev["sim"][:, shown], ".", ms=2, color="C0", zorder=3, label="simultaneous GD")
        ax.plot(*ev["mf_sim"], color="C1", lw=1, label="modified flow z. = F - (h/2) F'F")
        ax.plot(*ev["gf"], "--", color="k", lw=1, label="gradient flow (circle)")
        ax.set(xlabel="phi", ylabel="theta", aspect="equal",
               title=f"bilinear E = phi theta, h = {h}: simultaneous (t <= {t[-1]:g})")
        ax.legend(loc="center", fontsize=7)
        ax = axes[0, 1]
        ax.plot(*ev["alt"][:, shown], ".", ms=2, color="C2", zorder=3, label="alternating GD")
        ax.plot(*ev["mf_alt"], color="C3", lw=1, label="alternating modified flow")
        ax.plot(*ev["gf"], "--", color="k", lw=1, label="gradient flow (circle)")
        ax.set(xlabel="phi", ylabel="theta", aspect="equal",
               title="alternating: ellipse phi^2 + theta^2 - h phi theta = Q_0")
        ax.legend(loc="center", fontsize=7)
        ax = axes[1, 0]
        r0, sq, ks = ev["r0_sq"], lambda z: z[0] ** 2 + z[1] ** 2, k[shown]
        ax.semilogy(ks * h, sq(ev["sim"][:, shown]) / r0, ".", ms=3, color="C0",
                    label="simultaneous GD |z_k|^2/|z_0|^2")
        ax.semilogy(ks * h, (1 + h * h) ** ks, color="C0", lw=1, label="(1 + h^2)^k")
        ax.semilogy(t, sq(ev["mf_sim"]) / r0, "--", color="C1", lw=1.5, label="modified flow |z(t)|^2/|z_0|^2")
        ax.semilogy(ks * h, sq(ev["alt"][:, shown]) / r0, color="C2", lw=1, label="alternating GD |z_k|^2/|z_0|^2")
        ax.semilogy(t, sq(ev["gf"]) / r0, ":", color="k", lw=1, label="gradient flow")
        ax.set(xlabel="t = k h", ylabel="squared radius / initial",
               title=f"growth: (1 + h^2)^(t/h) vs e^(h t) differ by e^(-h^3 t/2) = {np.exp(-h ** 3 * t[-1] / 2):.5f}")
        ax.legend(fontsize=8)
        ax = axes[1, 1]
        hs = ev["ladder"]
        for name, label, color in (("sim", "simultaneous vs modified flow", "C0"),
                                   ("alt", "alternating vs alternating modified flow", "C2"),
                                   ("gf", "simultaneous vs gradient flow", "C1"),
                                   ("alt_vs_sim_flow", "alternating vs simultaneous modified flow", "C3")):
            err = ev[f"err_{name}"]
            ax.loglog(hs, err, "o-", color=color, label=f"{label}: slope {ev[f'slope_{name}']:.2f}")
            order = 3 if name in ("sim", "alt") else 2
            ax.loglog(hs, err[-1] * (hs / hs[-1]) ** order, ":", color=color, lw=1)
        ax.set(xlabel="h", ylabel="local error |z_1 - z(h)|",
               title=f"non-gradient 3-D game, alpha = {ALPHA}, lambda = {LAM}\ndotted: h^3 and h^2")
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig
