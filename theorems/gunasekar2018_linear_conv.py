"""Gunasekar, Lee, Soudry, Srebro (2018): implicit bias of gradient descent on linear convolutional networks.

Exp loss, sum convention, gradient flow in log time tau = log(1 + t) (theory/implicit-bias.md section 5).
Data: N = 6 Gaussian points in R^8 with random labels (`dataset(seed)`), layers initialized 0.1 N(0, 1).

C1 (fully connected beta = W_1 ... W_{L-1} w_L, L = 2, 3, 4): beta -> w_hat (l2 max margin) in direction.
  [derived] P W_1 is frozen for P the projector onto span(Z_S)^perp (its gradient P g w^T only sees the
  non-support points, whose weights die like exp(-(theta - 1) q_min)); so ||P beta|| / ||beta|| ~
  ||P W_1(0) v_1|| / sigma_1(W_1) ~ tau^{-1/L}: the angle decays like 1/||W_1||_F, not 1/log t, while the
  angle inside span(Z_S) decays like 1/q_min (as for a linear model). Layer alignment (Ji & Telgarsky 2019):
  W_l^T W_l - W_{l+1} W_{l+1}^T is conserved, so the non-top singular values stay bounded: the rank-1 defect
  1 - sigma_1/||W_l||_F ~ ||W_l||_F^{-2} and 1 - |v_l . u_{l+1}| ~ ||W_l||_F^{-4}.
C2 (diagonal beta = w_1 ... w_L and circular convolution, L = 3): the predictor-space KKT residuals of
  min ||beta||_{2/L} (conv: ||F beta||_{2/L}) s.t. Z beta >= 1 from the run's own dual weights -> 0.
  [derived] r_cs = sum_n p_n Delta_n / q_min (Delta_n = q_n - q_min) <= (N - 1)/(e q_min) for any softmax
  weights (p_n <= exp(-Delta_n)): its ~1/tau decay is automatic once q_min ~ tau.
  r_stat has two parts: on-support imbalance (~1/tau) and coordinates (frequencies) that stay bounded
  while the support grows like tau: they contribute (|beta_off| / tau)^{2/L} = O(tau^{-2/3}); where such a
  coordinate sits near its blow-up threshold it keeps growing like (c + tau^{-1/3})^{-3} and r_stat decays
  slower still. Saddle-to-saddle transitions (a new coordinate blowing up) occur at any tau, raising r_stat
  temporarily. The spec's rule (r_stat < 5e-3 at tau >= 100) comes from one diagonal run; it is checked here
  over 8 data/init seeds for both models.
Single point z = (1, 2), L = 3, positive balanced init w_{l,j} = beta_j(0)^{1/3}: [derived]
  d(beta_j^{-1/3})/dt = -z_j exp(-z.beta), so beta_1^{-1/3} - (z_1/z_2) beta_2^{-1/3} is conserved and
  the coordinate maximizing z_j beta_j(0)^{1/3} diverges; the other tends to the finite value the invariant
  gives. Both limits (0, 1/2) (objective ||b||_{2/3}^{2/3} = 0.63, global) and (1, 0) (objective 1, not
  global) are KKT points: the harness checks stationarity, not optimality.
C3: on one data set the conv (sparse |F beta|), diagonal (sparse beta) and FC (w_hat) limits differ.
C4 (L = 2, beta = w_+^2 - w_-^2, alpha = 0.1): gamma_l1(beta) / gamma_l1* increases to 1, very slowly.
  [heuristic, spec 5.4] mirror descent with the hypentropy potential: beta_j = 2 alpha^2 sinh(4 G_j),
  G = Z^T int(exp(-q)); an off-support coordinate with dual-certificate value c_j = |(Z^T lambda)_j| < 1
  has a share |beta_j| / ||beta||_1 ~ (alpha^2 / tau)^{1 - c_j}.
  Conv L = 2 (init 0.1 N(0, 1)): the same ratio for ||F beta||_1, whose optimum (an SOCP) is bracketed by
  `dynamics.predictions.dft_l1_max_margin` (cutting-plane LPs: lower <= optimum <= upper to relative gap 1e-10).
"""

import jax
import numpy as np

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.networks import ConvolutionalNetwork, DeepLinear, DiagonalNetwork, classification_loss
from dynamics.predictions import angle, dft_l1_max_margin, dft_l1_norm, fit_line, layer_alignment, predictor_kkt
from dynamics.sweeps import simulate_sweep

from .harness import Claim, Theorem

SETTINGS = {  # tau_end: log-time horizon (beyond tau = 700 the grid is tau itself: tau_grid=True)
    "quick": {"tau_end": 400.0},
    "full": {"tau_end": 1600.0},
}
N_POINTS, DIM, INIT_SCALE, SEEDS = 6, 8, 0.1, 8
FC_DEPTHS = (2, 3, 4)
GF_TOL = {"rtol": 1e-10, "atol": 1e-12, "max_steps": 400_000}
SINGLE_Z = np.array([1.0, 2.0])
SINGLE_INITS = ((1e-3, 1e-3), (0.5, 1e-3))  # beta(0); layers beta(0)^{1/3}
#: spec 5.4 reference trend (other random data): 1 - gamma_l1 ratio at tau = 10/50/200/1000, alpha = 0.1
SPEC_L1_GAP = (np.array([10.0, 50.0, 200.0, 1000.0]), 1.0 - np.array([0.90, 0.956, 0.975, 0.987]))
L1_ALPHA = 0.1


def dataset(seed):
    """(X (6, 8) Gaussian, y random signs, layer inits 0.1 N(0, 1) of shape (3, 8)), drawn in that order."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_POINTS, DIM))
    y = rng.choice([-1.0, 1.0], size=N_POINTS)
    return X, y, INIT_SCALE * rng.normal(size=(3, DIM))


def _saves(tau_end, count=48):
    """Log-spaced taus in [1, tau_end] plus the checkpoints the claims read."""
    marks = [5.0, 25.0, 100.0, tau_end / 4, tau_end / 2, tau_end]
    return np.unique(np.r_[np.geomspace(1.0, tau_end, count), marks])


def _flow(loss, y0, taus):
    """Log-time GF saved at taus (tau itself on the grid when t = e^tau would overflow)."""
    big = taus[-1] > 700.0
    ts = np.r_[0.0, taus] if big else np.expm1(np.r_[0.0, taus])
    traj = dyn.simulate(dyn.GradientFlow(loss), y0, ts, log_time=True, tau_grid=big, **GF_TOL)
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[1:], traj.ys)


def _sweep(net, data, taus):
    """One vmapped log-time GF per lane (X, y, init), taus <= 700 (simulate_sweep has no tau_grid);
    returns the parameters (T, B, ...)."""

    def make(b):
        X, y, p0 = b
        loss = dyn.MarginLoss(net.margins, y[:, None] * X, dyn.Exponential())
        params = tuple(p0) if isinstance(net, DiagonalNetwork) else list(p0)
        return dyn.GradientFlow(loss), params

    traj = simulate_sweep(make, data, np.expm1(np.r_[0.0, taus]), log_time=True, **GF_TOL)
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[1:], traj.ys)


def _kkt_series(net, X, y, params, fourier):
    """Predictor, q_min and (r_stat, r_cs) along a run, with the run's own dual weights."""
    loss = classification_loss(net, X, y, "exp")
    Z = y[:, None] * X
    beta = np.asarray(jax.vmap(net.predictor)(params))
    p = np.asarray(jax.vmap(loss.dual_weights)(params))
    r = np.array([predictor_kkt(b, Z, w, net.depth, fourier=fourier) for b, w in zip(beta, p)])
    return {"beta": beta, "q_min": (beta @ Z.T).min(axis=1), "r_stat": r[:, 0], "r_cs": r[:, 1]}


def _pair(values):
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def _at(taus, value):
    return int(np.argmin(np.abs(taus - value)))


class Gunasekar2018(Theorem):
    id = "gunasekar2018_linear_conv"
    reference = ("Gunasekar, Lee, Soudry, Srebro: Implicit bias of gradient descent on linear convolutional "
                 "networks, NeurIPS 2018")
    statement = (
        "For separable data and the exp loss, gradient flow/descent on a linear network beta(w) converges in "
        "direction to: the l2 max-margin separator for fully connected networks of any depth; a first-order "
        "stationary point of min ||beta||_{2/L} s.t. y_n x_n.beta >= 1 for depth-L diagonal networks; and of "
        "min ||F beta||_{2/L} (F the DFT) for depth-L full-width circular convolutional networks. The three "
        "limits differ on the same data (dense, sparse in beta, sparse in frequency); for L >= 3 the "
        "stationary point reached depends on the initialization and need not be the global minimizer.")
    hypotheses = (
        "data linearly separable through the origin (max_margin raises NonSeparableError otherwise)",
        "exp loss, sum convention, gradient flow (log time); float64",
        "the loss reaches L < 1 (checked: log L at the horizon < 0 for every run)",
        "single-point runs: positive balanced init w_{l,j} = beta_j(0)^{1/L}",
    )

    def run(self, budget="quick"):
        tau_end = SETTINGS[budget]["tau_end"]
        taus = _saves(tau_end)
        sweep_taus = taus[taus <= 700.0]
        seeds = [dataset(s) for s in range(SEEDS)]
        for X, y, _ in seeds:
            dyn.max_margin(X, y)  # separability
        X, y, _ = seeds[0]
        Z = y[:, None] * X
        solution = dyn.max_margin(X, y)
        evidence = {"taus": taus, "sweep_taus": sweep_taus, "w_hat": solution.w, "Z": Z}
        evidence["fc"] = self._fully_connected(X, y, solution, taus)
        data = tuple(np.array([s[i] for s in seeds]) for i in range(3))
        for name, net, fourier in (("diag", DiagonalNetwork(3, "product"), False),
                                   ("conv", ConvolutionalNetwork(3), True)):
            params = _sweep(net, data, sweep_taus)
            runs = [_kkt_series(net, Xs, ys, jax.tree_util.tree_map(lambda leaf: leaf[:, b], params), fourier)
                    for b, (Xs, ys, _) in enumerate(seeds)]
            if min(r["q_min"][-1] for r in runs) <= 0:
                raise InputError(f"{name}: a run did not separate the data (L >= 1) by tau = {sweep_taus[-1]}")
            evidence[name] = {k: np.array([r[k] for r in runs]) for k in runs[0]}
        evidence["single"] = self._single_point(taus)
        evidence["l1"] = self._l1(X, y, taus)
        evidence["dft"] = self._dft_l1(X, y, seeds[0][2][:2], taus)
        return evidence

    @staticmethod
    def _fully_connected(X, y, solution, taus):
        Z = y[:, None] * X
        basis, _ = np.linalg.qr(Z[solution.support].T)
        P = np.eye(Z.shape[1]) - basis @ basis.T          # projector onto span(Z_S)^perp
        loss = classification_loss(DeepLinear(), X, y, "exp")
        out = {}
        for depth in FC_DEPTHS:
            p0 = DeepLinear.init(jax.random.PRNGKey(depth), DIM, (DIM,) * (depth - 1), INIT_SCALE)
            layers = _flow(loss, p0, taus)
            beta = np.asarray(jax.vmap(DeepLinear().predictor)(layers))
            q_min = (beta @ Z.T).min(axis=1)
            if q_min[-1] <= 0:
                raise InputError(f"FC depth {depth} did not separate the data by tau = {taus[-1]}")
            alignment = [layer_alignment([leaf[i] for leaf in layers]) for i in range(len(taus))]
            span_part = beta - beta @ P
            out[depth] = {
                "angle": angle(beta, solution.w), "q_min": q_min,
                "perp_share": np.linalg.norm(beta @ P, axis=1) / np.linalg.norm(beta, axis=1),
                "span_angle": angle(span_part, solution.w),
                "norms": np.array([np.linalg.norm(leaf.reshape(len(taus), -1), axis=1) for leaf in layers]).T,
                "defects": np.array([a[0] for a in alignment]), "adjacency": np.array([a[1] for a in alignment]),
                "beta_end": beta[-1],
            }
        return out

    @staticmethod
    def _single_point(taus):
        net = DiagonalNetwork(3, "product")
        inits = np.array(SINGLE_INITS)
        if not np.all(inits > 0):
            raise InputError("the single-point reference needs a positive balanced init")
        X, y = SINGLE_Z[None, :], np.ones(1)
        loss = classification_loss(net, X, y, "exp")
        runs = []
        for beta0 in inits:
            params = _flow(loss, net.init(beta0 ** (1.0 / 3.0)), taus)
            beta = np.asarray(jax.vmap(net.predictor)(params))
            p = np.asarray(jax.vmap(loss.dual_weights)(params))
            r = np.array([predictor_kkt(b, SINGLE_Z[None, :], w, 3) for b, w in zip(beta, p)])
            winner = int(np.argmax(SINGLE_Z * beta0 ** (1.0 / 3.0)))
            loser = 1 - winner
            ratio = SINGLE_Z[loser] / SINGLE_Z[winner]
            invariant = beta[:, loser] ** (-1 / 3) - ratio * beta[:, winner] ** (-1 / 3)
            invariant0 = beta0[loser] ** (-1 / 3) - ratio * beta0[winner] ** (-1 / 3)
            bar = beta / (beta @ SINGLE_Z)[:, None]
            runs.append({"beta0": beta0, "beta": beta, "predicted_winner": winner,
                         "measured_winner": int(np.argmax(np.abs(beta[-1]))),
                         "invariant_error": float(np.max(np.abs(invariant / invariant0 - 1.0))),
                         "loser_limit": invariant0 ** -3.0, "r_stat": r[:, 0], "r_cs": r[:, 1],
                         "objective": np.sum(np.abs(bar) ** (2.0 / 3.0), axis=1)})
        return runs

    @staticmethod
    def _l1(X, y, taus):
        Z = y[:, None] * X
        l1 = dyn.l1_max_margin(X, y)
        g = l1.subgradient  # Z^T lambda of the LP dual: |g_j| = 1 on the support of every l1 solution
        net = DiagonalNetwork(2, "pm")
        params = _flow(classification_loss(net, X, y, "exp"), net.init(L1_ALPHA, d=DIM), taus)
        beta = np.asarray(jax.vmap(net.predictor)(params))
        ratio = (beta @ Z.T).min(axis=1) / np.abs(beta).sum(axis=1) / l1.margin
        off = np.abs(g) < 1.0 - 1e-6
        top = int(np.flatnonzero(off)[np.argmax(np.abs(g[off]))])
        return {"ratio": ratio, "top_off": top, "c_star": float(abs(g[top])),
                "share": np.abs(beta) / np.abs(beta).sum(axis=1, keepdims=True),
                "duality_gap": abs(l1.certificate.gap)}

    @staticmethod
    def _dft_l1(X, y, params0, taus):
        Z = y[:, None] * X
        optimum = dft_l1_max_margin(X, y)
        net = ConvolutionalNetwork(2)
        params = _flow(classification_loss(net, X, y, "exp"), list(params0), taus)
        beta = np.asarray(jax.vmap(net.predictor)(params))
        gamma = (beta @ Z.T).min(axis=1) / dft_l1_norm(beta)
        return {"lower": optimum.lower, "upper": optimum.upper, "lp_solves": optimum.lp_solves,
                "ratio_low": gamma * optimum.lower, "ratio_high": gamma * optimum.upper}

    def check(self, ev):
        taus, claims = ev["taus"], []
        end, half, quarter = len(taus) - 1, _at(taus, taus[-1] / 2), _at(taus, taus[-1] / 4)
        for depth, e in ev["fc"].items():
            a = e["angle"][taus >= 5.0]
            share = e["perp_share"] * e["norms"][:, 0]
            span = e["span_angle"] * e["q_min"]
            log_norm = np.log(e["norms"][:, :-1])
            defect_slope = max(fit_line(log_norm[quarter:, l], np.log(e["defects"][quarter:, l])).slope
                               for l in range(depth - 1))
            adjacency_slope = max(fit_line(log_norm[quarter:, l], np.log1p(-e["adjacency"][quarter:, l])).slope
                                  for l in range(depth - 1))
            claims += [
                Claim(f"C1 FC L={depth}: angle(beta, w_hat) non-increasing on tau in [5, {taus[-1]:.0f}]",
                      bool(np.all(np.diff(a) <= 1e-12)), True, kind="true",
                      note=f"angle at tau_end = {e['angle'][-1]:.3g} rad"),
                Claim(f"C1 FC L={depth}: ||P beta||/||beta|| * ||W_1||_F, relative change over "
                      f"tau in [{taus[half]:.0f}, {taus[-1]:.0f}]", float(abs(share[end] / share[half] - 1.0)),
                      float(e["defects"][half, 0]), kind="max",
                      note="P projects on span(Z_S)^perp, where P W_1 is frozen [derived]: the slow part of the "
                           "angle is ~1/||W_1||_F ~ tau^{-1/L}; allowed change: the rank-1 defect of W_1 at "
                           "tau_end/2 (the size of the neglected corrections)"),
                Claim(f"C1 FC L={depth}: angle inside span(Z_S) * q_min, ratio tau_end / (tau_end/2)",
                      float(span[end] / span[half]), 1.01, kind="max",
                      note="linear-model rate C/log t (q_min ~ log t): bounded with a non-increasing trend "
                           "(spec rule shape); 1% allowance for the O(1/q_min) corrections"),
                Claim(f"C1 FC L={depth}: slope of log(rank-1 defect) vs log ||W_l||_F (worst layer, "
                      f"tau >= {taus[quarter]:.0f})", defect_slope, -2.0, 0.2, "abs",
                      note="conserved W_l^T W_l - W_{l+1} W_{l+1}^T keeps the other singular values bounded "
                           "[derived]: defect ~ ||W_l||^-2; 10% for the O(defect) corrections"),
                Claim(f"C1 FC L={depth}: slope of log(1 - |v_l.u_(l+1)|) vs log ||W_l||_F (worst pair)",
                      adjacency_slope, -4.0, 0.4, "abs",
                      note="misalignment angle ~ ||W||^-2 [derived], so 1 - cos ~ ||W||^-4; 10% tolerance"),
            ]
        st = ev["sweep_taus"]
        s100, s25, s_end, s_half = _at(st, 100.0), _at(st, 25.0), len(st) - 1, _at(st, st[-1] / 2)
        for name in ("diag", "conv"):
            e = ev[name]
            rule = (e["r_stat"][:, s100] < 5e-3) & (e["r_stat"][:, s_end] < 5e-3)
            cs = e["r_cs"] * e["q_min"]
            claims += [
                Claim(f"C2 {name} L=3: seeds with r_stat < 5e-3 at tau = 100 and {st[-1]:.0f} (of {SEEDS})",
                      int(rule.sum()), SEEDS, kind="min",
                      note="spec 5 pass rule (from one diagonal reference run: 2.0e-3 at tau = 100); per-seed "
                           "r_stat at tau = 100: " + ", ".join(f"{v:.1e}" for v in e["r_stat"][:, s100]),
                      known_failure="" if name == "diag" else (
                          "the spec's 5e-3 threshold was read off one diagonal run; for conv nets off-support "
                          "frequencies stay bounded while the support grows ~tau, so r_stat decays ~tau^(-2/3) and "
                          "late saddle-to-saddle transitions raise it temporarily (3 of 8 seeds pass; seeds 2, 6, 7 "
                          "are still at 3.5e-3, 1.5e-2, 4.0e-3 at tau = 3200). r_stat -> 0 itself is checked by the "
                          "next claim.")),
                Claim(f"C2 {name} L=3: seeds with r_stat(tau_end) < r_stat(25)", int(np.sum(
                    e["r_stat"][:, s_end] < e["r_stat"][:, s25])), SEEDS, kind="min",
                      note="the limit is a KKT point: r_stat -> 0 (transitions between saddles can raise it "
                           "temporarily)"),
                Claim(f"C2 {name} L=3: max over seeds and tau of r_cs q_min / ((N - 1)/e)", float(np.max(cs)) / (
                    (N_POINTS - 1) / np.e), 1.0, kind="max",
                      note="p_n <= exp(-Delta_n) gives r_cs <= (N - 1)/(e q_min) for any softmax weights [derived]: "
                           "r_cs ~ 1/tau as the spec says, but this checks the bookkeeping (weights from "
                           "MarginLoss.dual_weights), not the dynamics; r_cs q_min at tau_end: " + ", ".join(
                               f"{v:.3f}" for v in cs[:, s_end])),
            ]
        for run in ev["single"]:
            b0 = _pair(run["beta0"])
            claims += [
                Claim(f"single point z = (1, 2), beta(0) = {b0}: diverging coordinate = argmax z_j beta_j(0)^(1/3)",
                      run["measured_winner"] == run["predicted_winner"], True, kind="true",
                      note=f"predicted coordinate {run['predicted_winner'] + 1}"),
                Claim(f"single point beta(0) = {b0}: invariant beta_l^(-1/3) - (z_l/z_w) beta_w^(-1/3), max "
                      "relative drift", run["invariant_error"], 1e-8, kind="max",
                      note="exact conservation law of the balanced flow [derived]; ODE rtol 1e-10"),
                Claim(f"single point beta(0) = {b0}: r_stat at tau_end", float(run["r_stat"][-1]), 5e-3, kind="max",
                      note="both limits are KKT points; residual (|beta_l(inf)|/beta_w)^(2/3) ~ tau^(-2/3)"),
                Claim(f"single point beta(0) = {b0}: ||beta/q||_(2/3)^(2/3) at tau_end", float(run["objective"][-1]),
                      [0.5 ** (2 / 3), 1.0][run["predicted_winner"] == 0], 1e-2, "abs",
                      note="(0, 1/2): 0.63 (global min); (1, 0): 1 (a KKT point that is not the global min)"),
            ]
        fc, diag, conv = ev["fc"][2]["beta_end"], ev["diag"]["beta"][0, -1], ev["conv"]["beta"][0, -1]
        limits = {"FC": fc, "diag": diag, "conv": conv}
        pairs = [("FC", "diag"), ("FC", "conv"), ("diag", "conv")]
        drift = max(float(angle(ev["diag"]["beta"][0, -1], ev["diag"]["beta"][0, s_half])),
                    float(angle(ev["conv"]["beta"][0, -1], ev["conv"]["beta"][0, s_half])), float(
                        angle(ev["fc"][2]["beta_end"], ev["w_hat"])))
        min_pair = min(float(angle(limits[a], limits[b])) for a, b in pairs)
        n_eff = lambda v: float(np.sum(np.abs(v)) ** 2 / np.sum(np.abs(v) ** 2))
        F = lambda v: np.fft.fft(v, norm="ortho")
        claims += [
            Claim("C3 seed 0: smallest pairwise angle between the FC, diagonal and conv limits (rad)", min_pair,
                  10 * drift, kind="min",
                  note="must exceed 10x the largest remaining motion (angle moved over the last doubling of tau, "
                       f"FC: angle to w_hat) = {drift:.3g}; pairs: " + ", ".join(
                           f"{a}-{b} {float(angle(limits[a], limits[b])):.3f}" for a, b in pairs)),
            Claim("C3: diagonal limit sparser in beta than w_hat (effective count ||v||_1^2/||v||_2^2)",
                  n_eff(diag), n_eff(ev["w_hat"]), kind="max", note="l_{2/3} bias vs l2"),
            Claim("C3: conv limit sparser in frequency (effective count of |F beta|) than diagonal and w_hat",
                  n_eff(F(conv)), min(n_eff(F(diag)), n_eff(F(ev["w_hat"]))), kind="max",
                  note="||F beta||_{2/3} bias"),
        ]
        l1 = ev["l1"]
        ratio, share = l1["ratio"], l1["share"][:, l1["top_off"]]
        ref_gap = np.exp(np.interp(np.log(taus[-1]), np.log(SPEC_L1_GAP[0]), np.log(SPEC_L1_GAP[1])))
        slope = fit_line(np.log(taus[half:]), np.log(share[half:])).slope
        claims += [
            Claim("C4 L=2 diagonal: gamma_l1 ratio non-decreasing (tau >= 1; 1e-10 slack)",
                  bool(np.all(np.diff(ratio) >= -1e-10)), True, kind="true",
                  note=f"ratio at tau = 10/100/{taus[-1]:.0f}: {ratio[_at(taus, 10)]:.4f}/"
                       f"{ratio[_at(taus, 100)]:.4f}/{ratio[-1]:.5f}"),
            Claim(f"C4 L=2 diagonal: 1 - gamma_l1 ratio at tau = {taus[-1]:.0f}", float(1.0 - ratio[-1]),
                  (ref_gap / 3, 3 * ref_gap), kind="range",
                  note=f"spec 5.4 reference trend (other random data, alpha = 0.1) interpolated to tau_end: "
                       f"{ref_gap:.3g}; a data-dependent constant, so a factor-3 band"),
            Claim(f"C4 L=2 diagonal: slope of log share of off-support coordinate {l1['top_off'] + 1} vs log tau "
                  f"(tau >= {taus[half]:.0f})", float(slope), -(1.0 - l1["c_star"]), 0.05, "abs",
                  note=f"[heuristic, spec 5.4] share ~ (alpha^2/tau)^(1 - c*), c* = {l1['c_star']:.4f} from the "
                       f"LP dual certificate (the largest off-support |Z^T lambda|_j; primal-dual gap "
                       f"{l1['duality_gap']:.1e})"),
        ]
        dft = ev["dft"]
        ratio = dft["ratio_high"]
        claims += [
            Claim("C4 conv L=2: DFT-l1 margin ratio gamma_F(beta)/gamma_F* non-decreasing (tau >= 1; 1e-10 slack)",
                  bool(np.all(np.diff(ratio) >= -1e-10)), True, kind="true",
                  note=f"ratio at tau = 10/100/{taus[-1]:.0f}: {ratio[_at(taus, 10)]:.4f}/{ratio[_at(taus, 100)]:.4f}/"
                       f"{ratio[-1]:.5f}; gamma_F* bracketed to relative gap {dft['upper'] / dft['lower'] - 1:.1e} "
                       f"({dft['lp_solves']} cutting-plane LPs)"),
            Claim("C4 conv L=2: max over tau of gamma_F(beta) / gamma_F*_upper (no run beats the optimum)",
                  float(np.max(dft["ratio_low"])), 1.0, kind="max",
                  note="gamma_F*_upper = 1/lower bound of the certified bracket: checks it against the run"),
            Claim("C4 conv L=2: 1 - DFT-l1 ratio at tau_end / at tau_end/4",
                  float((1 - ratio[-1]) / (1 - ratio[quarter])), 1.0, kind="max",
                  note=f"-> 0 (ratio increases toward 1); 1 - ratio at tau_end = {1 - ratio[-1]:.3g}"),
        ]
        return claims

    def figure(self, ev):
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 4, figsize=(20, 9))
        taus = ev["taus"]
        ax = axes[0, 0]
        for i, (depth, e) in enumerate(ev["fc"].items()):
            ax.loglog(taus, e["angle"], color=f"C{i}", label=f"L={depth}: angle(beta, w_hat)")
            ax.loglog(taus, e["perp_share"], color=f"C{i}", ls="--", label=f"L={depth}: ||P beta||/||beta||")
            ref = e["perp_share"][-1] * e["norms"][-1, 0] / e["norms"][:, 0]
            ax.loglog(taus, ref, color="k", ls=":", lw=0.8)
        ax.plot([], [], "k:", label="prediction ~ 1/||W_1||_F")
        ax.set(xlabel="tau = log(1 + t)", ylabel="rad / share", title="C1: FC direction -> w_hat")
        ax.legend(fontsize=7)
        ax = axes[0, 1]
        for i, (depth, e) in enumerate(ev["fc"].items()):
            ax.loglog(e["norms"][:, 0], e["defects"][:, 0], color=f"C{i}", label=f"L={depth}: rank-1 defect W_1")
            ax.loglog(e["norms"][:, 0], 1 - e["adjacency"][:, 0], color=f"C{i}", ls="--",
                      label=f"L={depth}: 1 - |v_1.u_2|")
        n = np.geomspace(3, 40, 10)
        ax.loglog(n, 0.5 * n**-2.0, "k:", label="slope -2")
        ax.loglog(n, 0.05 * n**-4.0, "k-.", label="slope -4")
        ax.set(xlabel="||W_1||_F", ylabel="defect", title="C1: layer alignment")
        ax.legend(fontsize=7)
        st = ev["sweep_taus"]
        for j, name in enumerate(("diag", "conv")):
            ax = axes[0, 2 + j]
            e = ev[name]
            for b in range(SEEDS):
                ax.loglog(st, e["r_stat"][b], color=f"C{b}", lw=1)
                ax.loglog(st, e["r_cs"][b], color=f"C{b}", lw=1, ls="--")
            ax.loglog(st, 0.2 / st, "k:", label="1/tau")
            ax.loglog(st, 0.1 * st ** (-2 / 3), "k-.", label="tau^(-2/3)")
            ax.axhline(5e-3, color="r", lw=0.8, label="spec: 5e-3 at tau >= 100")
            ax.axvline(100, color="r", lw=0.8)
            ax.set(xlabel="tau", ylabel="r_stat (solid), r_cs (dashed)", title=f"C2: {name} L=3, 8 seeds",
                   ylim=(1e-5, 1))
            ax.legend(fontsize=7)
        ax = axes[1, 0]
        for i, run in enumerate(ev["single"]):
            direction = run["beta"] / np.linalg.norm(run["beta"], axis=1, keepdims=True)
            ax.semilogx(taus, direction[:, 0], color=f"C{i}", label=f"beta(0) = {_pair(run['beta0'])}: dir_1")
            ax.semilogx(taus, direction[:, 1], color=f"C{i}", ls="--", label="dir_2")
        ax.set(xlabel="tau", ylabel="beta/||beta||", title="single point z = (1, 2), L = 3: init decides")
        ax.legend(fontsize=7)
        ax = axes[1, 1]
        for i, run in enumerate(ev["single"]):
            ax.loglog(taus, run["r_stat"], color=f"C{i}", label=f"beta(0) = {_pair(run['beta0'])}: r_stat")
            ax.semilogx(taus, run["objective"], color=f"C{i}", ls="--", label="||beta/q||_{2/3}^{2/3}")
        ax.axhline(0.5 ** (2 / 3), color="k", ls=":", label="0.63 (global)")
        ax.axhline(1.0, color="k", ls="-.", label="1 (KKT, not global)")
        ax.set(xlabel="tau", title="single point: both limits stationary")
        ax.legend(fontsize=7)
        ax = axes[1, 2]
        fc, diag, conv = ev["fc"][2]["beta_end"], ev["diag"]["beta"][0, -1], ev["conv"]["beta"][0, -1]
        k = np.arange(DIM)
        named = (("w_hat (FC limit)", ev["w_hat"]), ("diag L=3", diag), ("conv L=3", conv))
        for i, (label, v) in enumerate(named):
            v = v / np.linalg.norm(v)
            ax.bar(k + 0.27 * (i - 1), np.abs(v), width=0.25, color=f"C{i}", label=f"|beta| {label}")
            ax.plot(k, np.abs(np.fft.fft(v, norm="ortho")), "o-", color=f"C{i}", ms=4, lw=0.8)
        ax.set(xlabel="coordinate j (bars) / frequency k (markers: |F beta|)", ylabel="normalized magnitude",
               title="C3: three limits on seed 0")
        ax.legend(fontsize=7)
        ax = axes[1, 3]
        l1 = ev["l1"]
        ax.loglog(taus, 1 - l1["ratio"], label="1 - gamma_l1(beta)/gamma_l1*")
        ax.loglog(*SPEC_L1_GAP, "ks", label="spec 5.4 reference (other data)")
        share = l1["share"][:, l1["top_off"]]
        ax.loglog(taus, share, label=f"share of off-support coordinate {l1['top_off'] + 1}")
        ax.loglog(taus, share[-1] * (taus / taus[-1]) ** (-(1 - l1["c_star"])), "k:",
                  label=f"(1/tau)^(1-c*), c* = {l1['c_star']:.3f}")
        ax.loglog(taus, 1 - ev["dft"]["ratio_high"], label="conv L=2: 1 - gamma_F(beta)/gamma_F* (DFT-l1)")
        ax.set(xlabel="tau", title="C4: L = 2 diagonal (alpha = 0.1) and conv: l1 biases, slow")
        ax.legend(fontsize=7)
        fig.suptitle("Gunasekar et al. 2018: linear FC / diagonal / convolutional networks, exp loss, log-time GF")
        fig.tight_layout()
        return fig
