"""Yun, Krishnan, Mobahi (2021): implicit bias of linear tensor networks through the ODeCo reduction.

Claims Y1-Y4 of docs/implicit-bias.md section 6 (sum losses; ODeCo: M(x) = sum_j [S x]_j u_1^j (x) ... (x) u_L^j
with S orthogonal, U_l with orthonormal columns, rho_j = prod_l [U_l^T v_l]_j, beta = S^T rho):
Y1 the reduction identity: an ODeCo net trained by GF follows S^T of a diagonal "product" net on the transformed
data S x (two independent runs). That the part of v_l outside range(U_l) stays frozen holds by construction of the
code (the gradient is U_l times a vector) and a perturbed U is refused by input validation: both are unit tests
(tests/test_theorem_units_networks.py), not claims.
Y2 regression from the last-layer-zero initialization converges to argmin Q_{L,a}(rho) s.t. X S^T rho = y
(L = 2, 3, 4; Newton-dual minimizer).
Y3 exp-loss classification, depth 3: rho converges in direction to a first-order stationary point of
min ||rho||_{2/3} s.t. Z S^T rho >= 1. The stationary points are predicted independently of the run: every strict
local minimizer of this concave-per-orthant problem is a vertex (support J and active constraints I with
|I| = |J|, rho_J = Z_IJ^{-1} 1, feasible) whose multipliers lambda_I = Z_IJ^{-T} grad ||.||^{2/3}(rho_J) are > 0;
`dyn.lq_kkt_vertices` enumerates them. The theorem does not say which one GF reaches: the candidate is the predicted
vertex nearest the run at tau_end/8, fixed before the claims' window [tau_end/4, tau_end], and its support J
(not a threshold on the run's growth) splits the coordinates. [derived, docs/implicit-bias.md section 6] off J,
int L dt < inf (L(t) ~ 1/(t (log t)^{4/3})) keeps rho_j bounded, so their share |rho_j / q_min|^{2/3} ~ tau^{-2/3};
on J the residual is set by O(1) margin offsets over margins ~ tau: ~ 1/tau; the angle to the vertex ~ 1/tau.
Y4 fully connected deep linear nets from a small initialization of scale s reach the min-l2 interpolant up to O(s).
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.measure import angle, predictor_kkt_path
from dynamics.models.networks import (DeepLinear, DiagonalNetwork, ODeCoNetwork, classification_loss, regression_loss,
                                      require_odeco)
from dynamics.predictions import (implicit_norm_minimizer, last_layer_zero_map, min_l1_interpolant,
                                  min_l2_interpolant, optimality_certificate)
from dynamics.sweeps import simulate_sweep

from .common import by_budget, claims, datasets, figures, runs
from .harness import Theorem

QUICK = {"tau_end": 400.0, "fc_scales": {2: (0.1, 0.03, 0.01, 0.003, 0.001), 3: (0.1, 0.03, 0.01, 0.003)},
         "fc_T": {2: 30.0, 3: 60.0}}  # GF time: residual < 1e-12 by t ~ 13 (depth 2), ~ 31 (depth 3, s = 0.003)
FULL = {"tau_end": 700.0, "fc_scales": {2: tuple(np.geomspace(0.1, 1e-4, 10)), 3: tuple(np.geomspace(0.1, 1e-3, 10))},
        "fc_T": {2: 40.0, 3: 200.0}}
DEPTHS = (2, 3, 4)
RTOL, ATOL = 1e-13, 1e-17  # regression GF (Dopri8); classification in log time: rtol 1e-10
A_SCALE = {2: 0.3, 3: 0.3, 4: 0.5}  # last-layer-zero magnitude a per depth: limits far from min-l1 and min-l2
EXTRA = 2  # each v_l has k = d + EXTRA entries: a component outside range(U_l) that GF must leave frozen
CLASS_DEPTH = 3


def orthonormal(rng, rows, cols):
    """A rows x cols matrix with orthonormal columns (QR of a Gaussian)."""
    return np.linalg.qr(rng.normal(size=(rows, cols)))[0]


def odeco_network(rng, S, depth):
    """ODeCoNetwork with the given orthogonal S (d x d) and random U_l ((d + EXTRA) x d), checked by require_odeco."""
    d = S.shape[0]
    U = tuple(jnp.asarray(orthonormal(rng, d + EXTRA, d)) for _ in range(depth))
    net = ODeCoNetwork(jnp.asarray(S), U)
    require_odeco(net)
    return net


def last_layer_zero_init(rng, net, a):
    """v_l(0) = U_l (a 1) + xi_l (l < L), v_L(0) = xi_L, with xi_l random and orthogonal to range(U_l):
    rho_{l,j}(0) = a, rho_{L,j}(0) = 0 (scheme ii)."""
    params = []
    for l, U in enumerate(net.U):
        U = np.asarray(U)
        xi = rng.normal(size=U.shape[0])
        xi = 0.1 * (xi - U @ (U.T @ xi))
        params.append(jnp.asarray(xi + (a * U.sum(axis=1) if l < len(net.U) - 1 else 0.0)))
    return params


class Yun2021(Theorem):
    id = "yun2021_tensor"
    reference = ("Yun, Krishnan, Mobahi: A unifying view on implicit bias in training linear neural networks, "
                 "ICLR 2021")
    statement = (
        "For an orthogonally decomposable linear tensor network M(x) = sum_j [S x]_j u_1^j (x) ... (x) u_L^j, "
        "gradient flow on v_1..v_L is exactly gradient flow of an L-layer diagonal network rho = prod_l U_l^T v_l "
        "on the transformed inputs S x (beta = S^T rho). Hence, on separable data with the exponential loss, "
        "rho converges in direction to a first-order stationary point of min ||rho||_{2/L} s.t. "
        "y_n <S x_n, rho> >= 1, and in underdetermined regression GF converges to the interpolant minimizing "
        "Q_{L,a}(rho) = sum_j int (Phi^-1) fixed by the initialization (weighted l1 as a -> 0, l2 as a -> inf). "
        "Fully connected deep linear nets, which are not ODeCo, reach the min-l2 interpolant as the "
        "initialization scale -> 0.")
    hypotheses = ("U_l with orthonormal columns (require_odeco; S orthogonal here)",
                  "regression: X S^T rho = y consistent and underdetermined; last-layer-zero init (scheme ii)",
                  "classification: data linearly separable (max_margin certificate), exp loss, GF in log time",
                  "float64, sum losses")

    def run(self, budget="quick"):
        cfg = by_budget(budget, QUICK, FULL)
        X, y = datasets.dataset("net_underdetermined_regression", seed=3)
        rng = np.random.default_rng(4)  # the networks (S, U_l) and their initializations
        S = orthonormal(rng, X.shape[1], X.shape[1])
        ev = {"X": X, "y": y, "S": S, "regression": {}}
        for L in DEPTHS:
            ev["regression"][str(L)], net, params0 = self._regression(rng, X, y, S, L)
            if L == 3:
                ev["reduction"] = self._reduction(y, ev["regression"]["3"], net, params0)
        ev["classification"] = self._classification(cfg["tau_end"])
        ev["fc"] = {str(L): self._fully_connected(X, y, L, cfg["fc_scales"][L], cfg["fc_T"][L]) for L in (2, 3)}
        return ev

    @staticmethod
    def _regression(rng, X, y, S, depth):
        """Y2: ODeCo GF (Dopri8) from the last-layer-zero init vs argmin Q in the transformed coordinates."""
        d = X.shape[1]
        net = odeco_network(rng, S, depth)
        a = A_SCALE[depth]
        params0 = last_layer_zero_init(rng, net, a)
        Xt = X @ S.T
        mirror = last_layer_zero_map(a, depth, d)
        rho_q = implicit_norm_minimizer(Xt, y, mirror).beta
        ts = np.r_[0.0, np.geomspace(0.1, 1000.0, 13)]  # residual < 1e-14 by t ~ 450 (L = 3, the slowest)
        traj = dyn.simulate(dyn.GradientFlow(regression_loss(net, X, y)), params0, ts,
                            observe=lambda t, p: net.predictor(p), rtol=RTOL, atol=ATOL, solver=diffrax.Dopri8(),
                            max_steps=200_000)
        beta = np.asarray(traj.ys)
        rho = beta[-1] @ S.T
        feasibility, stationarity = optimality_certificate(Xt, y, rho, mirror)
        rho_l1, rho_l2 = min_l1_interpolant(Xt, y), min_l2_interpolant(Xt, y)
        out = {"depth": depth, "S": S, "a": a, "X_t": Xt, "ts": ts, "beta": beta, "rho": rho, "rho_q": rho_q,
               "error": np.linalg.norm(beta[-1] - S.T @ rho_q) / np.linalg.norm(rho_q),
               "residual": float(np.linalg.norm(X @ beta[-1] - y)), "stationarity": stationarity,
               "feasibility": feasibility, "change": float(np.abs(beta[-1] - beta[-2]).max()),
               "d1": np.linalg.norm(rho_q - rho_l1) / np.linalg.norm(rho_l1),
               "d2": np.linalg.norm(rho_q - rho_l2) / np.linalg.norm(rho_l2), "rho_l1": rho_l1, "rho_l2": rho_l2}
        return out, net, params0

    @staticmethod
    def _reduction(y, odeco, net, params0):
        """Y1: the product net beta = w_1 ... w_L on X S^T from w_l(0) = U_l^T v_l(0), compared along the path."""
        S = odeco["S"]
        product = DiagonalNetwork(len(net.U), "product")
        w0 = tuple(jnp.asarray(np.asarray(U).T @ np.asarray(v)) for U, v in zip(net.U, params0))
        traj = dyn.simulate(dyn.GradientFlow(regression_loss(product, odeco["X_t"], y)), w0, odeco["ts"],
                            observe=lambda t, w: product.predictor(w), rtol=RTOL, atol=ATOL, solver=diffrax.Dopri8(),
                            max_steps=200_000)
        beta_product = np.asarray(traj.ys) @ S  # S^T rho, row-wise
        scale = np.linalg.norm(odeco["beta"], axis=1).max()
        return {"ts": odeco["ts"], "beta_odeco": odeco["beta"], "beta_product": beta_product,
                "path_error": np.abs(beta_product - odeco["beta"]).max(axis=1) / scale}

    @staticmethod
    def _classification(tau_end):
        """Y3: depth-3 ODeCo net, exp loss, GF in log time; the predicted KKT vertices of min ||rho||_{2/3} s.t.
        Z S^T rho >= 1 (no run involved); along the run: angle to the vertex selected at tau_end/8, the KKT residual
        on its support and the share of the coordinates off it."""
        X, y, _ = datasets.dataset("net_gaussian_random_signs", seed=7, n=6, d=8)
        dyn.max_margin(X, y)  # raises NonSeparableError on non-separable data
        d = X.shape[1]
        rng = np.random.default_rng(8)  # the network and its initialization
        S = orthonormal(rng, d, d)
        net = odeco_network(rng, S, CLASS_DEPTH)
        params0 = [jnp.asarray(0.1 * rng.normal(size=d + EXTRA)) for _ in range(CLASS_DEPTH)]
        Zt = (y[:, None] * X) @ S.T
        vertices = dyn.lq_kkt_vertices(Zt, CLASS_DEPTH)  # the prediction: independent of the run
        loss = classification_loss(net, X, y, "exp")
        taus = np.unique(np.r_[np.geomspace(1.0, tau_end, 40), tau_end / 8, tau_end / 4])
        params = runs.gf_log_time(loss, params0, taus, rtol=1e-10, atol=1e-12, solver=diffrax.Dopri8(),
                                  max_steps=200_000)
        rho = np.asarray(jax.vmap(net.predictor)(params)) @ S.T
        p = np.asarray(jax.vmap(loss.dual_weights)(params))
        select = int(np.argmin(np.abs(taus - tau_end / 8)))
        angles = np.array([[float(angle(r, v[1])) for v in vertices] for r in rho])
        k = int(np.argmin(angles[select]))
        support = np.zeros(d, bool)
        support[list(vertices[k][4])] = True
        separated = (rho @ Zt.T).min(axis=1) > 0  # KKT residuals exist only for separating predictors (else NaN)
        kkt = predictor_kkt_path(rho, Zt, p, CLASS_DEPTH)
        kkt_support = predictor_kkt_path(rho[:, support], Zt[:, support], p, CLASS_DEPTH)[:, 0]
        weights = np.abs(rho / (rho @ Zt.T).min(axis=1, keepdims=True)) ** (2.0 / CLASS_DEPTH)
        off_share = np.linalg.norm(weights[:, ~support], axis=1) / np.linalg.norm(weights, axis=1)
        return {"taus": taus, "tau_select": taus[select], "separated": separated,
                "n_vertices": len(vertices), "objectives": np.array([v[0] for v in vertices]), "selected": k,
                "vertex": vertices[k][1], "multipliers": vertices[k][2], "support": support,
                "angle": angles[:, k], "nearest": angles.argmin(axis=1), "r_stat": kkt[:, 0],
                "r_stat_support": kkt_support, "off_share": off_share, "rho_end": rho[-1]}

    @staticmethod
    def _fully_connected(X, y, depth, scales, T):
        """Y4: DeepLinear (width 10 per hidden layer), init scale * N(0, 1) (same draw), one sweep over scales."""
        d = X.shape[1]
        net = DeepLinear()
        widths = (10,) * (depth - 1)
        base = DeepLinear.init(jax.random.PRNGKey(depth), d, widths, 1.0)
        scales = np.asarray(scales)
        loss = regression_loss(net, X, y)
        inits = jax.tree_util.tree_map(lambda leaf: jnp.asarray(scales).reshape((-1,) + (1,) * leaf.ndim) * leaf, base)
        traj = simulate_sweep(lambda params: (dyn.GradientFlow(loss), params), inits, np.array([0.0, 0.75 * T, T]),
                              observe=lambda t, p: net.predictor(p), rtol=1e-12, atol=1e-16,
                              solver=diffrax.Dopri8(), max_steps=200_000)
        beta = np.asarray(traj.ys)
        beta_l2 = min_l2_interpolant(X, y)
        return {"depth": depth, "scales": scales, "beta": beta[-1], "change": float(np.abs(beta[-1] - beta[1]).max()),
                "residual": np.linalg.norm(beta[-1] @ X.T - y, axis=1),
                "distance": np.linalg.norm(beta[-1] - beta_l2, axis=1) / np.linalg.norm(beta_l2)}

    def check(self, ev):
        out = []
        red = ev["reduction"]
        out.append(claims.bound(
            f"Y1 reduction identity: max_t ||beta_ODeCo(t) - S^T rho_product(t)||_max / max||beta|| (L = 3 "
            f"regression, {len(red['ts'])} times)", float(red["path_error"].max()), 1e-9,
            "two independent Dopri8 runs at rtol 1e-13 (different networks, same exact dynamics): 1e-9 is >= 1e3x "
            "the integrators' accumulated error"))
        for key in sorted(ev["regression"], key=int):
            e = ev["regression"][key]
            L = int(e["depth"])
            out += [
                claims.bound(
                    f"Y2 L = {L}: ||beta_GF - S^T argmin Q|| / ||argmin Q|| (last layer zero, a = {float(e['a']):g})",
                    float(e["error"]), 1e-8,
                    "GF (Dopri8, rtol 1e-13) vs the Newton-dual minimizer in rho = S beta (tol 1e-13): independent "
                    "solves; 1e-8 >= 1e4x their tolerances and 1e6x below the distance to min-l1/min-l2"),
                claims.bound(
                    f"Y2 L = {L}: certificate stationarity ||(I - P) grad Q(rho_GF)|| / ||grad Q|| (transformed "
                    "coordinates)", float(e["stationarity"]), 1e-8,
                    "solver-free optimality test of the GF limit (docs/implicit-bias.md section 1.4); the scale of "
                    "the GF-vs-Newton agreement"),
                claims.bound(f"Y2 L = {L}: ||X beta - y||", float(e["residual"]), 1e-12,
                             "the limit is an interpolant: residual at the integrator's floor (rtol 1e-13, O(1) data)",
                             role="consistency", note=f"converged: last change {float(e['change']):.2g}"),
                claims.bound(
                    f"Y2 L = {L}: min(rel. distance of argmin Q to min-l1, to min-l2) in rho",
                    float(min(e["d1"], e["d2"])), 1e-2,
                    "the 1e-8 agreement discriminates only if the alternatives are far: 1e-2 is 1e6x above it",
                    upper=False, role="consistency", note=f"d1 = {float(e['d1']):.3g}, d2 = {float(e['d2']):.3g}"),
            ]
        c = ev["classification"]
        taus = c["taus"]
        window = taus >= taus[-1] / 4
        J = np.flatnonzero(c["support"])
        vertex_text = (f"vertex {int(c['selected']) + 1} of {int(c['n_vertices'])} predicted (by objective), support "
                       f"{(J + 1).tolist()}, multipliers {np.round(c['multipliers'], 3).tolist()}, selected at tau = "
                       f"{float(c['tau_select']):.0f}; nearest vertex unchanged on the window: "
                       f"{bool(np.all(c['nearest'][window] == c['selected']))}")
        out += [
            claims.slope(
                "Y3 angle(rho(tau), predicted KKT vertex) -> 0: slope of log angle vs log tau on "
                f"[tau_end/4, tau_end]", taus[window], c["angle"][window], -1.0, 0.1,
                "[derived] off-support rho_j bounded and O(1) margin offsets over margins ~ tau give angle ~ C/tau; "
                "log tau/tau corrections move the slope by ~1/log tau^2 <= 0.1 here", note=vertex_text),
            claims.slope(
                f"Y3 r_stat on the predicted support {(J + 1).tolist()}: slope vs log tau on [tau_end/4, tau_end]",
                taus[window], c["r_stat_support"][window], -1.0, 0.1,
                "[derived] on the support the residual is set by O(1) margin offsets over margins ~ tau; the same "
                "log tau/tau corrections as the angle"),
            claims.slope(
                f"Y3 share of the {int((~c['support']).sum())} coordinates off the predicted support in "
                "||rho_bar^(2/3)||: slope vs log tau on [tau_end/4, tau_end]", taus[window], c["off_share"][window],
                -2.0 / 3.0, 0.1,
                "[derived] int L dt < inf for L = 3, so rho_j -> finite limits off the support: |rho_j/q_min|^(2/3) "
                "~ tau^(-2/3)(1 + O(tau^(-1/3))), the correction moving the slope by ~ tau^(-1/3)/3 <= 0.07",
                note=f"total r_stat {c['r_stat'][window][0]:.3g} -> {c['r_stat'][-1]:.3g} (decays like the larger "
                     "of the two parts)"),
        ]
        for key in sorted(ev["fc"], key=int):
            f = ev["fc"][key]
            L = int(f["depth"])
            s, dist = f["scales"], f["distance"]
            out += [
                claims.monotone(
                    f"Y4 FC depth {L}: distance to X^+ y decreasing as the init scale -> 0", dist,
                    "Yun et al.: fully connected nets reach min-l2 as the scale -> 0 (an ordering)",
                    note=f"scales {np.round(s, 4).tolist()}: distances {np.round(dist, 4).tolist()}"),
                claims.slope(
                    f"Y4 FC depth {L}: slope of log distance vs log scale", s, dist, 1.0, 0.1,
                    "[derived] beta - X^+ y = (I - P_row) W_1(0) (W_2 ... w_L)(inf) = O(s), with O(s) relative "
                    "corrections from the s-dependence of the product: <= 0.1 at s <= 0.1"),
                claims.bound(f"Y4 FC depth {L}: converged interpolant, max ||X beta - y||", float(f["residual"].max()),
                             1e-10, "the limit is read at an interpolant: residual at the integrator's floor (rtol "
                             "1e-12)", role="consistency", note=f"last change {float(f['change']):.2g}"),
            ]
        return out

    def figure(self, ev):
        fig, axes = figures.panels(self, 4, width=4.8, title="linear tensor networks: ODeCo reduction, regression and "
                                                   "classification limits, fully connected nets")
        ax = axes[0]
        red = ev["reduction"]
        e3 = ev["regression"]["3"]
        ax.plot(red["ts"][1:], np.maximum(red["path_error"][1:], 1e-17), "o-", label=r"ODeCo vs $S^\top$ product (Y1)")
        ax.plot(red["ts"][1:], np.linalg.norm(red["beta_odeco"][1:] - e3["S"].T @ e3["rho_q"], axis=1)
                / np.linalg.norm(e3["rho_q"]), "s-", label=r"ODeCo vs $S^\top \arg\min Q$ (Y2 limit)")
        figures.reference_line(ax, y=1e-9, label="Y1 tolerance", linestyle=":")
        figures.axes_style(ax, "t", "relative difference", logx=True, logy=True, title="Y1/Y2: reduction, $L = 3$")
        ax.legend(fontsize=7)
        ax = axes[1]
        keys = sorted(ev["regression"], key=int)
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            e = ev["regression"][key]
            idx = np.arange(e["rho"].size)
            ax.bar(idx + i * width, e["rho"], width, label=f"GF, $L = {key}$")
            ax.plot(idx + i * width, e["rho_q"], "k_", ms=8)
        e = ev["regression"][keys[0]]  # one S for all depths: the same transformed coordinates
        idx = np.arange(e["rho"].size) + 0.4 - width / 2
        ax.plot(idx, e["rho_l1"], "rv", ms=5, label=r"min-$\ell_1$")
        ax.plot(idx, e["rho_l2"], "g^", ms=5, label=r"min-$\ell_2$")
        ax.plot([], [], "k_", label=r"$\arg\min Q$ (Newton)")
        figures.axes_style(ax, "coordinate $j$ (transformed)", r"$\rho_j$", title="Y2: regression limits")
        ax.legend(fontsize=6)
        ax = axes[2]
        c = ev["classification"]
        ok = c["separated"]
        taus = c["taus"][ok]
        ax.plot(taus, c["r_stat"][ok], "o-", ms=3, label=r"$r_{\mathrm{stat}}$")
        ax.plot(taus, c["angle"][ok], "v-", ms=3, label="angle to the predicted vertex")
        ax.plot(taus, c["r_stat_support"][ok], "s-", ms=3, label=r"$r_{\mathrm{stat}}$ on its support")
        ax.plot(taus, c["off_share"][ok], "^-", ms=3, label="share off its support")
        ax.plot(taus, c["r_stat_support"][-1] * taus[-1] / taus, "k:", label=r"$1/\tau$")
        ax.plot(taus, c["off_share"][-1] * (taus[-1] / taus) ** (2 / 3), "k--", lw=0.8, label=r"$\tau^{-2/3}$")
        figures.reference_line(ax, x=float(c["tau_select"]), label="vertex selected", color="gray", linestyle=":")
        figures.axes_style(ax, "tau", "KKT residual / angle", logx=True, logy=True,
                           title=r"Y3: depth-3 ODeCo, $\ell_{2/3}$ KKT in $\rho$")
        ax.legend(fontsize=6)
        ax = axes[3]
        for key in sorted(ev["fc"], key=int):
            f = ev["fc"][key]
            ax.plot(f["scales"], f["distance"], "o-", label=f"depth {key}")
            ax.plot(f["scales"], 0.6 * f["distance"][-1] * f["scales"] / f["scales"][-1], ":", color="gray")
        ax.plot([], [], ":", color="gray", label="slope 1")
        figures.axes_style(ax, "init scale $s$", r"$\|\beta_{GF} - X^+y\| / \|X^+y\|$", logx=True, logy=True,
                           title=r"Y4: fully connected $\to$ min-$\ell_2$")
        ax.legend(fontsize=7)
        return fig
