"""Yun, Krishnan, Mobahi (2021): implicit bias of linear tensor networks through the ODeCo reduction.

Checks Y1-Y4 of theory/implicit-bias.md section 6 (sum losses; ODeCo: M(x) = sum_j [S x]_j u_1^j (x) ... (x) u_L^j
with S orthogonal, U_l with orthonormal columns, rho_j = prod_l [U_l^T v_l]_j, beta = S^T rho):
Y1 the reduction identity (an ODeCo net trained by GF follows S^T of a diagonal "product" net on the
transformed data S x, and the part of v_l outside range(U_l) stays frozen; a perturbed U is refused);
Y2 regression from the last-layer-zero initialization converges to argmin Q_{L,a}(rho) s.t. X S^T rho = y
(L = 2, 3; 4 at the full budget); Y3 exp-loss classification: the predictor-space KKT residual of
min ||rho||_{2/L} s.t. Z S^T rho >= 1 decays like 1/tau; Y4 fully connected deep linear nets from a small
initialization of scale s reach the min-l2 interpolant up to O(s).
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.networks import (DeepLinear, DiagonalNetwork, ODeCoNetwork, classification_loss, regression_loss,
                               require_odeco)
from dynamics.predictions import (fit_line, implicit_norm_minimizer, last_layer_zero_map, min_l1_interpolant,
                                  min_l2_interpolant, optimality_certificate, predictor_kkt)
from dynamics.sweeps import simulate_sweep

from .harness import Claim, Theorem

SETTINGS = {
    "quick": {"depths": (2, 3, 4), "tau_end": 400.0, "fc_scales": {2: (0.1, 0.03, 0.01, 0.003, 0.001),
                                                               3: (0.1, 0.03, 0.01, 0.003)},
              "fc_T": {2: 30.0, 3: 60.0}},  # GF time: residual < 1e-12 by t ~ 13 (depth 2), ~ 31 (depth 3, s = 0.003)
    "full": {"depths": (2, 3, 4), "tau_end": 700.0, "fc_scales": {2: tuple(np.geomspace(0.1, 1e-4, 10)),
                                                                 3: tuple(np.geomspace(0.1, 1e-3, 10))},
             "fc_T": {2: 40.0, 3: 200.0}},
}
RTOL, ATOL = 1e-13, 1e-17  # regression GF (Dopri8); classification in log time: rtol 1e-10
A_SCALE = {2: 0.3, 3: 0.3, 4: 0.5}  # last-layer-zero magnitude a per depth: limits far from min-l1 and min-l2
EXTRA = 2  # each v_l has k = d + EXTRA entries: a component outside range(U_l) that GF must leave frozen


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


def _frozen_drift(net, params0, params):
    """max_l max_i |[(I - U_l U_l^T)(v_l(T) - v_l(0))]_i|: GF never moves v_l outside range(U_l)."""
    drift = 0.0
    for U, v0, v in zip(net.U, params0, params):
        U = np.asarray(U)
        delta = np.asarray(v) - np.asarray(v0)
        drift = max(drift, float(np.abs(delta - delta @ U @ U.T).max()))
    return drift


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
        cfg = SETTINGS[budget]
        rng = np.random.default_rng(3)
        X, y = rng.normal(size=(5, 12)), rng.normal(size=5)
        S = orthonormal(rng, X.shape[1], X.shape[1])
        ev = {"X": X, "y": y, "S": S, "regression": {}}
        for L in cfg["depths"]:
            ev["regression"][L], net, params0 = self._regression(rng, X, y, S, L)
            if L == 3:
                ev["reduction"] = self._reduction(y, ev["regression"][3], net, params0)
        ev["guard"] = self._guard(rng)
        ev["classification"] = self._classification(cfg["tau_end"])
        ev["fc"] = {L: self._fully_connected(X, y, L, cfg["fc_scales"][L], cfg["fc_T"][L]) for L in (2, 3)}
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
        ts = np.r_[0.0, np.geomspace(0.1, 200.0, 12)]
        traj = dyn.simulate(dyn.GradientFlow(regression_loss(net, X, y)), params0, ts,
                            observe=lambda t, p: (net.predictor(p), p), rtol=RTOL, atol=ATOL, solver=diffrax.Dopri8(),
                            max_steps=200_000)
        beta = np.asarray(traj.ys[0])
        rho = beta[-1] @ S.T
        feasibility, stationarity = optimality_certificate(Xt, y, rho, mirror)
        rho_l1, rho_l2 = min_l1_interpolant(Xt, y), min_l2_interpolant(Xt, y)
        out = {"S": S, "a": a, "X_t": Xt, "ts": ts, "beta": beta, "rho": rho, "rho_q": rho_q,
               "error": np.linalg.norm(beta[-1] - S.T @ rho_q) / np.linalg.norm(rho_q),
               "residual": float(np.linalg.norm(X @ beta[-1] - y)), "stationarity": stationarity,
               "feasibility": feasibility, "change": float(np.abs(beta[-1] - beta[-2]).max()),
               "frozen": _frozen_drift(net, params0, [np.asarray(v)[-1] for v in traj.ys[1]]),
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
    def _guard(rng):
        """A perturbed U (not orthonormal) must be refused with the measured defect."""
        d = 6
        S = orthonormal(rng, d, d)
        U = tuple(jnp.asarray(orthonormal(rng, d, d) + 1e-3 * rng.normal(size=(d, d))) for _ in range(3))
        net = ODeCoNetwork(jnp.asarray(S), U)
        try:
            require_odeco(net)
            return {"refused": False, "defect": net.orthogonality_defect(), "message": ""}
        except InputError as err:
            return {"refused": True, "defect": net.orthogonality_defect(), "message": str(err)}

    @staticmethod
    def _classification(tau_end):
        """Y3: depth-3 ODeCo net, exp loss, GF in log time; KKT of min ||rho||_{2/3} s.t. Z S^T rho >= 1, also
        restricted to the growing coordinates (the support) and the share of the bounded ones in |rho_bar|^(2/3)."""
        rng = np.random.default_rng(7)
        n, d, depth = 6, 8, 3
        X = rng.normal(size=(n, d))
        y = np.where(rng.normal(size=n) > 0, 1.0, -1.0)
        dyn.max_margin(X, y)  # raises NonSeparableError on non-separable data
        S = orthonormal(rng, d, d)
        net = odeco_network(rng, S, depth)
        params0 = [jnp.asarray(0.1 * rng.normal(size=d + EXTRA)) for _ in range(depth)]
        loss = classification_loss(net, X, y, "exp")
        taus = np.unique(np.r_[np.geomspace(1.0, tau_end, 40), 100.0])
        traj = dyn.simulate(dyn.GradientFlow(loss), params0, np.r_[0.0, np.expm1(taus)], log_time=True,
                            rtol=1e-10, atol=1e-12, solver=diffrax.Dopri8(), max_steps=200_000)
        Zt = (y[:, None] * X) @ S.T
        rho = np.stack([np.asarray(net.predictor([np.asarray(v)[i] for v in traj.ys])) @ S.T
                        for i in range(1, len(taus) + 1)])
        p = np.stack([np.asarray(loss.dual_weights([np.asarray(v)[i] for v in traj.ys]))
                      for i in range(1, len(taus) + 1)])
        # |rho_j| grows like tau on the limit's support and stays bounded elsewhere: split by growth over the
        # last factor 2 of tau (ratio -> 2 vs -> 1)
        half = int(np.argmin(np.abs(taus - taus[-1] / 2)))
        growing = np.abs(rho[-1]) > 1.5 * np.abs(rho[half])
        kkt = np.array([predictor_kkt(r, Zt, q, depth) for r, q in zip(rho, p)])
        kkt_support = np.array([predictor_kkt(r[growing], Zt[:, growing], q, depth)[0] for r, q in zip(rho, p)])
        weights = np.abs(rho / (rho @ Zt.T).min(axis=1, keepdims=True)) ** (2.0 / depth)
        bounded_share = np.linalg.norm(weights[:, ~growing], axis=1) / np.linalg.norm(weights, axis=1)
        return {"taus": taus, "separated": (rho @ Zt.T).min(axis=1) > 0, "r_stat": kkt[:, 0], "r_cs": kkt[:, 1],
                "r_stat_support": kkt_support,
                "bounded_share": bounded_share, "growing": growing, "rho_end": rho[-1]}

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
        return {"scales": scales, "beta": beta[-1], "change": float(np.abs(beta[-1] - beta[1]).max()),
                "residual": np.linalg.norm(beta[-1] @ X.T - y, axis=1),
                "distance": np.linalg.norm(beta[-1] - beta_l2, axis=1) / np.linalg.norm(beta_l2)}

    def check(self, ev):
        claims = []
        red = ev["reduction"]
        claims += [
            Claim("Y1 reduction identity: max_t ||beta_ODeCo(t) - S^T rho_product(t)||_max / max||beta|| "
                  f"(L = 3 regression, {len(red['ts'])} times)", float(red["path_error"].max()), 1e-9, kind="max",
                  note="both runs Dopri8 rtol 1e-13: ODE tolerance"),
            Claim("Y1 the part of v_l outside range(U_l) stays frozen: max_l |(I - U_l U_l^T)(v_l(T) - v_l(0))|",
                  float(ev["regression"][3]["frozen"]), 1e-12, kind="max"),
            Claim("Y1 non-ODeCo tensor (U + 1e-3 noise) refused by require_odeco", ev["guard"]["refused"], True,
                  kind="true", note=f"defect max_l ||U_l^T U_l - I||_max = {ev['guard']['defect']:.3g}"),
        ]
        for L, e in ev["regression"].items():
            claims += [
                Claim(f"Y2 L = {L}: ||beta_GF - S^T argmin Q|| / ||argmin Q|| (last layer zero, a = {e['a']})",
                      float(e["error"]), 1e-8, kind="max", note="Newton-dual minimizer in rho = S beta"),
                Claim(f"Y2 L = {L}: certificate stationarity in the transformed coordinates", float(e["stationarity"]),
                      1e-8, kind="max"),
                Claim(f"Y2 L = {L}: ||X beta - y||", e["residual"], 1e-12, kind="max",
                      note=f"converged: last change {e['change']:.2g}"),
                Claim(f"Y2 L = {L}: min(rel. distance of argmin Q to min-l1, to min-l2) in rho",
                      float(min(e["d1"], e["d2"])), 1e-2, kind="min",
                      note=f"d1 = {e['d1']:.3g}, d2 = {e['d2']:.3g} (spec reference L = 3: 0.76 from min-l2, "
                           "another instance)"),
            ]
        c = ev["classification"]
        taus, r = c["taus"], c["r_stat"]
        late = taus >= 100.0
        sep = c["separated"]
        at100 = int(np.argmin(np.abs(taus - 100.0)))
        slope = lambda values: fit_line(np.log(taus[late]), np.log(values[late])).slope
        claims += [
            Claim("Y3 r_stat of min ||rho||_{2/3} s.t. Z S^T rho >= 1 at tau = 100 (run's own dual weights)",
                  float(r[at100]), 5e-3, kind="max", note="spec pass rule (section 5 C2, in the transformed space)"),
            Claim("Y3 r_stat non-increasing in tau once the data is separated (all margins > 0)",
                  bool(np.all(np.diff(r[sep]) <= 0)), True, kind="true",
                  note=f"{r[sep][0]:.3g} at tau = {taus[sep][0]:.2f} -> {r[-1]:.3g} at {taus[-1]:.0f}; r tau "
                       f"{r[at100] * 100:.3f} at 100 -> {r[-1] * taus[-1]:.3f}: NOT bounded (see the bounded part)"),
            Claim(f"Y3 r_stat restricted to the {int(c['growing'].sum())} growing coordinates (the support): slope vs "
                  "log tau, tau >= 100", float(slope(c["r_stat_support"])), -1.0, 0.1, "abs",
                  note="spec: ~ 1/tau (margins ~ tau, O(1) corrections)"),
            Claim(f"Y3 share of the {int((~c['growing']).sum())} bounded coordinates in ||rho_bar^(2/3)||: slope vs "
                  "log tau, tau >= 100", float(slope(c["bounded_share"])), -2.0 / 3.0, 0.1, "abs",
                  note="derived: int L dt < inf for L = 3 (L(t) ~ 1/(t (log t)^(4/3))), so rho_j -> finite limits "
                       "off the support and |rho_j / min margin|^(2/3) ~ tau^(-2/3)(1 + O(tau^(-1/3))): r_stat "
                       f"decays like tau^(-2/3) eventually, not 1/tau (full slope {slope(r):.3f})"),
            Claim("Y3 complementary slackness r_cs: slope vs log tau, tau >= 100", float(slope(c["r_cs"])), -1.0, 0.1,
                  "abs", note=f"sum_n p_n (margin_n / min margin - 1): O(1) margin spread over margins ~ tau; "
                              f"r_cs = {c['r_cs'][-1]:.2g} at tau = {taus[-1]:.0f}"),
        ]
        for L, f in ev["fc"].items():
            s, dist = f["scales"], f["distance"]
            claims += [
                Claim(f"Y4 FC depth {L}: distance to X^+ y decreasing as the init scale -> 0",
                      bool(np.all(np.diff(dist) < 0)), True, kind="true",
                      note=f"scales {np.round(s, 4).tolist()}: distances {np.round(dist, 4).tolist()}"),
                Claim(f"Y4 FC depth {L}: slope of log distance vs log scale",
                      float(fit_line(np.log(s), np.log(dist)).slope), 1.0, 0.1, "abs",
                      note="derived: beta - X^+ y = (I - P_row) W_1(0) (W_2 ... w_L) = O(s)"),
                Claim(f"Y4 FC depth {L}: converged interpolant, max ||X beta - y||", float(f["residual"].max()), 1e-10,
                      kind="max", note=f"last change {f['change']:.2g}"),
            ]
        return claims

    def figure(self, ev):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        ax = axes[0, 0]
        red = ev["reduction"]
        ax.loglog(red["ts"][1:], np.maximum(red["path_error"][1:], 1e-17), "o-", label="ODeCo vs S^T product (Y1)")
        e3 = ev["regression"][3]
        ax.loglog(red["ts"][1:], np.linalg.norm(red["beta_odeco"][1:] - e3["S"].T @ e3["rho_q"], axis=1)
                  / np.linalg.norm(e3["rho_q"]), "s-", label="ODeCo vs S^T argmin Q (Y2 limit)")
        ax.axhline(1e-9, color="k", ls=":", lw=0.8, label="Y1 tolerance 1e-9")
        ax.set(xlabel="t", ylabel="relative difference", title="Y1/Y2: reduction identity and limit, L = 3")
        ax.legend(fontsize=8)
        ax = axes[0, 1]
        depths = sorted(ev["regression"])
        width = 0.8 / len(depths)
        for i, L in enumerate(depths):
            e = ev["regression"][L]
            idx = np.arange(e["rho"].size)
            ax.bar(idx + i * width, e["rho"], width, label=f"GF rho, L = {L}")
            ax.plot(idx + i * width, e["rho_q"], "k_", ms=8)
        e = ev["regression"][depths[0]]  # one S for all depths: the same transformed coordinates
        idx = np.arange(e["rho"].size) + 0.4 - width / 2
        ax.plot(idx, e["rho_l1"], "rv", ms=5, label="min-l1")
        ax.plot(idx, e["rho_l2"], "g^", ms=5, label="min-l2")
        ax.plot([], [], "k_", label="argmin Q (Newton)")
        ax.set(xlabel="coordinate j (transformed)", ylabel="rho_j", title="Y2: limits vs min-l1 / min-l2")
        ax.legend(fontsize=7)
        ax = axes[1, 0]
        c = {k: (v[ev["classification"]["separated"]] if k not in ("growing", "rho_end") else v)
             for k, v in ev["classification"].items()}
        taus = c["taus"]
        ax.loglog(taus, c["r_stat"], "o-", ms=3, label="r_stat")
        ax.loglog(taus, c["r_stat_support"], "s-", ms=3, label="r_stat on the growing coordinates")
        ax.loglog(taus, c["bounded_share"], "^-", ms=3, label="share of bounded coordinates")
        ax.loglog(taus, np.abs(c["r_cs"]), "d-", ms=3, label="|r_cs|")
        ax.loglog(taus, c["r_stat_support"][-1] * taus[-1] / taus, "k:", label="1/tau")
        ax.loglog(taus, c["bounded_share"][-1] * (taus[-1] / taus) ** (2 / 3), "k--", lw=0.8, label="tau^(-2/3)")
        ax.axhline(5e-3, color="r", ls=":", lw=0.8, label="5e-3 at tau >= 100")
        ax.set(xlabel="tau = log(1 + t)", ylabel="KKT residual", title="Y3: depth-3 ODeCo, l_{2/3} KKT in rho")
        ax.legend(fontsize=7)
        ax = axes[1, 1]
        for L, f in ev["fc"].items():
            ax.loglog(f["scales"], f["distance"], "o-", label=f"depth {L}")
            ax.loglog(f["scales"], 0.6 * f["distance"][-1] * f["scales"] / f["scales"][-1], ":", color="gray")
        ax.plot([], [], ":", color="gray", label="slope 1")
        ax.set(xlabel="init scale s", ylabel="||beta_GF - X^+ y|| / ||X^+ y||", title="Y4: fully connected -> min-l2")
        ax.legend(fontsize=8)
        fig.suptitle("Yun, Krishnan, Mobahi 2021: linear tensor networks (ODeCo reduction)")
        fig.tight_layout()
        return fig
