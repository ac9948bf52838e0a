"""Kreisler, Nacson, Soudry, Carmon (2023): GD monotonically decreases the GFS sharpness (flows.md section 13).

Scalar network pi(w) = prod_i w_i, L(w) = (pi(w) - y)^2 / 2, y = 1, GD w <- w - eta grad L(w). The gradient-flow
solution S_GF(w) has coordinates sign(w_i) sqrt(w_i^2 + c) (GF conserves w_i^2 - w_j^2), and the GFS sharpness is
phi(w) = lambda_max(Hessian at S_GF(w)) = y^2 sum_i 1/(w_i^2 + c) (`dynamics.gfs.gfs_sharpness_scalar`).
Claims: phi(w_{t+1}) <= phi(w_t) at every step of every run; if eta phi(w_0) > 2 and GD converges, the limit sits at
the edge of stability eta lambda_max(w_T) ~ 2, where GD's own sharpness equals phi(w_T); the loss is not monotone.
GD cannot converge when 2/eta is below the balanced sharpness D |y|^(2 - 2/D) of every minimizer: it ends on a
balanced period-2 cycle.

Beyond scalar networks (the paper's empirical claim): small tanh MLPs on synthetic regression data, MSE, GD with
eta phi(w_0) ~ 2.3; phi(w_t) = `dynamics.gfs.gfs_sharpness` (gradient flow integrated to ||grad L|| <= gtol) at
evenly spaced checkpoints. Monotonicity is checked up to twice the measured GF-solve error (each phi re-solved at a
100x tighter gtol and 10x tighter rtol). The scalar-network closed form is also checked against the general solver.
Measured (full budget, 18 runs): phi falls from eta phi ~ 2.3 to below 2 in every run, mostly in one catapult; at
checkpoints 50-100 steps apart it never rises beyond the solve error in 15 runs, but rises in 3 d = 4 runs (relative
+6.6e-3 and +3.1e-4 before the catapult, +2.2e-7 during the final stable convergence). Along GF phi is constant, so a
GD step changes it only at second order, O(eta^2 |grad L|^2), whose sign is not fixed for MLPs. GD then converges
below the EoS (final eta lambda_max 1.79-2.00; in [1.95, 2] in 4 of 18 runs).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import dynamics as dyn
from dynamics.gfs import (balanced_sharpness, gfs_sharpness, gfs_sharpness_batch, gfs_sharpness_scalar,
                          require_stable_minimizer)
from dynamics.mlp import mlp_init, mlp_loss, scalar_network_loss

from .harness import Claim, Theorem

Y = 1.0
STEPS = 20_000                                          # spec: 2e4 GD steps
RATIOS = (1.02, 1.1, 1.3)                               # eta phi(w0) / 2
CONVERGENT = {3: (2.0, 0.5, 0.3), 4: (1.5, 1.2, 0.6, 0.3)}
FAILURES = {"D3_ratio1.6": ((2.0, 0.5, 0.3), 1.6), "D2_ratio1.3": ((1.2, 0.7), 1.3)}
#: phi is evaluated by a root find to ~4 eps relative, so the monotonicity test allows 1e-10 relative slack (spec)
MONOTONE_SLACK = 1e-10
REFERENCE_STRIDE = 100                                  # rows also checked against gfs_sharpness_scalar (brentq)
PHI_DROP = 1e-12                                        # a decrease of phi beyond root-find noise (~4 eps)
EOS_RANGE = (1.95, 2.0)                                 # spec: final eta lambda_max in [1.95, 2] for ratio in (1, 1.3]
#: at a minimizer Hessian = grad pi grad pi^T has top eigenvalue phi; GD's residual pi - y after 2e4 steps is
#: far below 1e-8, so the sharpness of w_T matches phi(w_T) to 1e-8 (spec)
SHARPNESS_TOL = 1e-8
CYCLE_TOL = 1e-8                                         # period-2: |w_T - w_{T-2}| and the spread of |w_i|

#: general-model part. MLP d -> 8 -> 8 -> 1 (tanh), n = 8 Gaussian inputs and labels, mean squared error; eta is
#: round(ETA_PHI0 / phi(w_0), 3) so that eta phi(w_0) ~ 2.3, inside the scalar-net theorem's range (2, 2.6).
MLP_N, MLP_WIDTH, ETA_PHI0 = 8, 8, 2.3
#: (input dim d, seeds, GD steps, checkpoint stride) per budget; d = 8 runs reach the EoS fast (catapult), the full
#: budget adds d = 4 runs with long progressive-sharpening phases
MLP_SETUPS = {"quick": ((8, (0, 1, 2), 1000, 50),),
              "full": ((8, tuple(range(10)), 3000, 50), (4, tuple(range(8)), 3000, 100))}
GF_NOMINAL = {"gtol": 1e-10, "rtol": 1e-12, "atol": 1e-14, "max_time": 1e5, "max_steps": 200_000}
GF_TIGHT = {"gtol": 1e-12, "rtol": 1e-13, "atol": 1e-15, "max_time": 1e5, "max_steps": 200_000}
#: the GF-solve error of phi (nominal vs tight) must resolve phi to 1e-8 relative, as for the closed form
SOLVE_TOL = 1e-8
#: GD "converged": L(w_T) <= 1e-12, close enough that lambda_max(w_T) = phi(w_T) to 1e-8 (claimed below)
CONVERGED_LOSS = 1e-12
SCALAR_CHECK, SCALAR_CHECK_STRIDE = "D3_ratio1.1", 1000   # gfs_sharpness vs closed form at every 1000th iterate

LOSS = scalar_network_loss(Y)


def _mse(X, y, params):
    return mlp_loss(X, y, "tanh", "mse")(params)


@eqx.filter_jit
def _loss_and_sharpness(loss, iterates, checkpoints):
    """GD's loss at every iterate and its own sharpness lambda_max(w_k) at each checkpoint (dense Hessian)."""
    return jax.vmap(loss)(iterates), jax.vmap(lambda params: dyn.sharpness(loss, params))(checkpoints)


def _mlp_run(d, seed, steps, stride):
    """One GD run of the MLP and phi at its checkpoints (nominal and tight GF solves). The loss is an eqx.Partial
    holding the data as arrays, so runs of the same shape share every compiled solver."""
    kx, ky, kw = jax.random.split(jax.random.PRNGKey(seed), 3)
    loss = eqx.Partial(_mse, jax.random.normal(kx, (MLP_N, d)), jax.random.normal(ky, (MLP_N,)))
    w0 = mlp_init(kw, (d, MLP_WIDTH, MLP_WIDTH, 1))
    phi0 = gfs_sharpness(loss, w0, **GF_TIGHT)
    eta = round(ETA_PHI0 / phi0, 3)
    ks = np.arange(0, steps + 1, stride)
    traj = dyn.simulate(dyn.GradientDescent(loss, eta), w0, np.arange(steps + 1) * eta)
    checkpoints = jax.tree_util.tree_map(lambda leaf: leaf[ks], traj.ys)
    losses, sharp = (np.asarray(a) for a in _loss_and_sharpness(loss, traj.ys, checkpoints))
    nominal = gfs_sharpness_batch(loss, checkpoints, **GF_NOMINAL)
    tight = gfs_sharpness_batch(loss, checkpoints, **GF_TIGHT)
    return {"d": d, "seed": seed, "eta": eta, "eta_phi0": eta * phi0, "ks": ks, "loss": losses,
            "phi": nominal.phi, "phi_tight": tight.phi, "sharpness": sharp, "limit_loss": nominal.loss,
            "gf_steps": nominal.steps, "gf_time": nominal.time}


def _scalar_vs_general(w):
    """Max relative gap between `gfs_sharpness_batch` (GF integrated to convergence, default tolerances) and the
    closed form `gfs_sharpness_scalar`, over the iterates w (rows)."""
    general = gfs_sharpness_batch(LOSS, jnp.asarray(w)).phi
    return float(np.max(np.abs(general / np.array([gfs_sharpness_scalar(v, Y) for v in w]) - 1)))


def _observe(t, w):
    """(w, L(w), lambda_max of the Hessian of L at w (jax.hessian, eigvalsh))."""
    return w, LOSS(w), jnp.linalg.eigvalsh(jax.hessian(LOSS)(w))[-1]


def _gd(w0, eta):
    """All GD iterates w_0..w_STEPS (shape (STEPS + 1, D)), their losses and sharpnesses: one compiled run
    (module-level loss and observe, so runs of the same depth reuse the compiled loop)."""
    traj = dyn.simulate(dyn.GradientDescent(LOSS, eta), jnp.asarray(w0, float), np.arange(STEPS + 1) * eta,
                        observe=_observe)
    return tuple(np.asarray(a) for a in traj.ys)


def gfs_sharpness_path(ws, y=Y):
    """phi(w) for every row of ws (shape (T, D)): `gfs_sharpness_scalar` vectorized over rows. The root c of the
    increasing f(c) = sum_i ln(w_i^2 + c) - ln y^2 on (-min_i w_i^2, inf) is bracketed per row and bisected to
    adjacent floats (the midpoint stops moving), so it is as precise as the brentq of the scalar version."""
    w2 = np.asarray(ws, float) ** 2
    f = lambda c: np.sum(np.log(w2 + c[:, None]), axis=1) - np.log(y**2)
    lo = -np.min(w2, axis=1) * (1.0 - 1e-14)
    hi = np.maximum(1.0, -lo)
    while np.any(f(hi) < 0):
        hi = np.where(f(hi) < 0, 2 * hi, hi)
    for _ in range(2200):  # enough halvings to reach adjacent floats from any bracket in float64
        mid = 0.5 * (lo + hi)
        moving = (mid > lo) & (mid < hi)
        if not np.any(moving):
            break
        up = f(mid) < 0
        lo, hi = np.where(moving & up, mid, lo), np.where(moving & ~up, mid, hi)
    c = 0.5 * (lo + hi)
    return y**2 * np.sum(1.0 / (w2 + c[:, None]), axis=1)


class Kreisler2023(Theorem):
    id = "kreisler2023_gfs"
    reference = ("Kreisler, Nacson, Soudry, Carmon: Gradient descent monotonically decreases the sharpness of "
                 "gradient flow solutions in scalar networks and beyond, ICML 2023")
    statement = (
        "For scalar networks pi(w) = prod_i w_i with square loss L = (pi - y)^2/2, the sharpness phi(w) of the "
        "gradient-flow solution S_GF(w) never increases along gradient descent, phi(w_{t+1}) <= phi(w_t), even "
        "though the loss itself can increase. When eta phi(w_0) > 2 (but not too large) GD converges to a "
        "minimizer at the edge of stability, eta lambda_max(w_inf) ~ 2. When 2/eta is below the smallest "
        "minimizer sharpness D |y|^(2-2/D), GD cannot converge and ends on a balanced period-2 cycle. Beyond "
        "scalar networks the paper reports that phi decreases empirically: checked on small tanh MLPs (MSE) with "
        "phi computed by integrating gradient flow to convergence from GD checkpoints.")
    hypotheses = (
        "y = 1, sign(prod w_0) = sign(y) and no w_0 coordinate zero (else GF ends at pi = 0; checked by "
        "gfs_point_scalar).",
        "Convergent runs: 2/eta >= D |y|^(2-2/D) (require_stable_minimizer passes) and eta phi(w_0)/2 in (1, 1.3].",
        "Failure runs: 2/eta < D |y|^(2-2/D); require_stable_minimizer must raise StepSizeError.",
        "float64, 2e4 GD steps.",
        "MLPs: d -> 8 -> 8 -> 1 tanh, n = 8 standard-normal inputs and labels, mean squared error, LeCun init; "
        "eta = round(2.3 / phi(w_0), 3) so eta phi(w_0) in (2, 2.6); phi by gfs_sharpness (GF to ||grad L|| <= "
        "1e-10, Tsit5 rtol 1e-12) at checkpoints every 50 (d = 8) or 100 (d = 4) steps.",
    )

    def run(self, budget="quick"):
        runs = {}
        for D, w0 in CONVERGENT.items():
            phi0 = gfs_sharpness_scalar(w0, Y)
            for r in RATIOS:
                eta = 2.0 * r / phi0
                require_stable_minimizer(eta, D, Y)
                runs[f"D{D}_ratio{r}"] = (w0, eta, r)
        raised = {}
        for name, (w0, r) in FAILURES.items():
            eta = 2.0 * r / gfs_sharpness_scalar(w0, Y)
            try:
                require_stable_minimizer(eta, len(w0), Y)
                raised[name] = False
            except dyn.StepSizeError:
                raised[name] = True
            runs[name] = (w0, eta, r)
        evidence = {"names": list(runs), "failures": list(FAILURES), "raised": raised,
                    "mlp": [_mlp_run(d, seed, steps, stride) for d, seeds, steps, stride in MLP_SETUPS[budget]
                            for seed in seeds]}
        for name, (w0, eta, r) in runs.items():
            w, L, S = _gd(w0, eta)
            evidence[name] = {"eta": eta, "ratio": r, "w": w, "loss": L, "phi": gfs_sharpness_path(w),
                              "sharpness": S,
                              "phi_reference": np.array([gfs_sharpness_scalar(v, Y) for v in w[::REFERENCE_STRIDE]]),
                              "sharpness_T": float(S[-1]), "balanced": balanced_sharpness(len(w0), Y)}
        evidence["scalar_vs_general"] = _scalar_vs_general(evidence[SCALAR_CHECK]["w"][::SCALAR_CHECK_STRIDE])
        return evidence

    def check(self, evidence):
        claims = []
        worst = max(float(np.max(np.diff(e["phi"]) / e["phi"][:-1]))
                    for e in (evidence[n] for n in evidence["names"]))
        claims.append(Claim("max_t relative increase of phi(w_t), all runs", worst, MONOTONE_SLACK, kind="max",
                            note="phi_{t+1} <= phi_t (1 + 1e-10) at every one of the 2e4 steps of all 8 runs "
                                 "(convergent and failing); slack = root-find precision (spec)"))
        gap = max(float(np.max(np.abs(e["phi"][::REFERENCE_STRIDE] / e["phi_reference"] - 1)))
                  for e in (evidence[n] for n in evidence["names"]))
        claims.append(Claim("vectorized phi vs gfs_sharpness_scalar (every 100th iterate), max relative gap", gap,
                            1e-12, kind="max", note="both solve the same monotone 1-D root problem to ~eps"))
        increases = 0
        for name in evidence["names"]:
            if name in evidence["failures"]:
                continue
            e = evidence[name]
            eta_phi = e["eta"] * e["phi"][-1]
            claims.append(Claim(f"{name}: final eta lambda_max(w_T)", e["eta"] * e["sharpness_T"], EOS_RANGE,
                                kind="range", note=f"edge of stability (spec table; eta phi(w_T) = {eta_phi:.4f})"))
            claims.append(Claim(f"{name}: |lambda_max(w_T) - phi(w_T)|", abs(e["sharpness_T"] - e["phi"][-1]),
                                0.0, SHARPNESS_TOL, note="w_T is a minimizer: its Hessian's top eigenvalue "
                                                          "(jax.hessian, eigvalsh) is the GFS sharpness"))
            increases += int(np.sum((np.diff(e["loss"]) > 0) & (e["phi"][1:] < e["phi"][:-1] * (1 - PHI_DROP))))
        claims.append(Claim("steps where the loss rises while phi falls (count, convergent runs)", increases, 1,
                            kind="min", note="L_{t+1} > L_t and phi_{t+1} < phi_t (1 - 1e-12): the loss is not a "
                                             "Lyapunov function at the EoS, phi is"))
        for name in evidence["failures"]:
            e = evidence[name]
            w = e["w"]
            claims.append(Claim(f"{name}: require_stable_minimizer raises StepSizeError", evidence["raised"][name],
                                True, kind="true",
                                note=f"2/eta = {2 / e['eta']:.4f} < {e['balanced']:.4g} = D |y|^(2-2/D), the "
                                     "smallest minimizer sharpness"))
            claims.append(Claim(f"{name}: final loss (no convergence)", float(min(e["loss"][-2:])), 1e-3,
                                kind="min", note="GD does not reach a minimizer"))
            cycle = float(np.max(np.abs(w[-1] - w[-3])) + np.max(np.abs(w[-2] - w[-4])))
            claims.append(Claim(f"{name}: period-2 defect |w_T - w_(T-2)|", cycle, CYCLE_TOL, kind="max",
                                note=f"two-cycle: |w_T - w_(T-1)| = {np.max(np.abs(w[-1] - w[-2])):.3g}"))
            spread = float(np.ptp(np.abs(w[-1])))
            claims.append(Claim(f"{name}: balance spread max|w_i| - min|w_i| at T", spread, CYCLE_TOL, kind="max",
                                note=f"iterates become balanced, |w_T| = {np.round(np.abs(w[-1]), 4).tolist()}"))
        claims.append(Claim("gfs_sharpness (GF to ||grad L|| <= 1e-10) vs closed form, D = 3, max relative gap",
                            evidence["scalar_vs_general"], 1e-8, kind="max",
                            note=f"every {SCALAR_CHECK_STRIDE}th iterate of {SCALAR_CHECK}: the general solver "
                                 "(diffrax, growing horizon) against the conserved-quantity root find"))
        return claims + self._mlp_claims(evidence["mlp"])

    @staticmethod
    def _mlp_claims(runs):
        label = lambda r: f"d{r['d']}s{r['seed']}"
        eta_phi0 = [r["eta_phi0"] for r in runs]
        solve_err = max(float(np.max(np.abs(r["phi"] / r["phi_tight"] - 1))) for r in runs)
        slack = 2.0 * solve_err
        rises = [(float(np.max(np.diff(r["phi"]) / r["phi"][:-1])), label(r)) for r in runs]
        worst, where = max(rises)
        final_S = [r["eta"] * r["sharpness"][-1] for r in runs]
        final_phi = [r["eta"] * r["phi"][-1] for r in runs]
        listing = lambda values: ", ".join(f"{label(r)} {v:.4f}" for r, v in zip(runs, values))
        claims = [
            Claim("MLP: eta phi(w_0), min over runs", min(eta_phi0), (2.0, 2.6), kind="range",
                  note=f"hypothesis, eta = round(2.3/phi(w_0), 3); max {max(eta_phi0):.4f}"),
            Claim("MLP: GF-solve error of phi (nominal vs 100x tighter gtol), max relative", solve_err, SOLVE_TOL,
                  kind="max", note=f"nominal gtol 1e-10 rtol 1e-12, tight gtol 1e-12 rtol 1e-13; {len(runs)} runs"),
            Claim("MLP: max relative increase of phi between checkpoints", worst, slack, kind="max",
                  note=f"largest in run {where}; slack = 2 x the measured solve error (each compared phi errs by at "
                       f"most that); runs rising beyond it: {[f'{n} {v:.2e}' for v, n in rises if v > slack]}"),
            Claim("MLP: GD converged, max final loss", max(float(r["loss"][-1]) for r in runs), CONVERGED_LOSS,
                  kind="max", note="the condition of the EoS claim below"),
            Claim("MLP: final eta phi(w_T), max over runs", max(final_phi), 2.0, kind="max",
                  note="phi fell from eta phi(w_0) > 2 to at most 2: GD converges only to minimizers with "
                       f"eta lambda_max <= 2 (linear stability). Per run: {listing(final_phi)}"),
            Claim("MLP: |lambda_max(w_T) / phi(w_T) - 1|, max over runs",
                  max(abs(r["sharpness"][-1] / r["phi"][-1] - 1) for r in runs), SHARPNESS_TOL, kind="max",
                  note=("w_T is a minimizer, so GF from it does not move. Not claimed: the scalar theorem's final "
                        "eta lambda_max in [1.95, 2] (flows.md 13 states it for scalar nets only); on these MLPs GD "
                        "reaches the EoS by a catapult, one unstable burst after which phi is below 2/eta (d8s0: "
                        f"eta phi 2.26 at step 50, 1.79 at step 100), final eta lambda_max per run: "
                        f"{listing(final_S)}")),
        ]
        return claims

    def figure(self, evidence):
        fig, grid = plt.subplots(2, 3, figsize=(16, 9))
        axes = grid[0]
        k = np.arange(STEPS + 1)
        for name in evidence["names"]:
            e = evidence[name]
            ls = "--" if name in evidence["failures"] else "-"
            (line,) = axes[0].plot(k[1:], e["phi"][1:], ls, label=name)
            axes[0].axhline(2 / e["eta"], color=line.get_color(), lw=0.7, ls=":")
            if name not in evidence["failures"]:
                axes[1].plot(k[1:], e["eta"] * e["sharpness"][1:], color=line.get_color(), lw=0.4, alpha=0.4)
            axes[1].plot(k[1:], e["eta"] * e["phi"][1:], ls, color=line.get_color())
            axes[2].plot(k[1:], e["loss"][1:] + 1e-300, ls, color=line.get_color())
        axes[0].set(xscale="log", xlabel="step t", ylabel="GFS sharpness phi(w_t)",
                    title="phi non-increasing; dotted: 2/eta")
        axes[0].legend(fontsize=7)
        axes[1].axhline(2.0, color="k", lw=0.8)
        axes[1].set(xscale="log", xlabel="step t", ylabel="eta phi(w_t) (bold); eta lambda_max(w_t) (thin)",
                    title="convergence to the EoS (eta lambda = 2)")
        axes[2].set(xscale="log", yscale="log", xlabel="step t", ylabel="loss", title="loss (non-monotone)")
        self._mlp_figure(grid[1], evidence["mlp"])
        fig.tight_layout()
        return fig

    @staticmethod
    def _mlp_figure(axes, runs):
        solve_err = max(float(np.max(np.abs(r["phi"] / r["phi_tight"] - 1))) for r in runs)
        axes[2].axhline(2 * solve_err, color="k", lw=0.8)
        for r in runs:
            label = f"d{r['d']} seed {r['seed']} (eta {r['eta']})"
            (line,) = axes[0].plot(r["ks"], r["eta"] * r["phi"], "o-", ms=3, label=label)
            axes[0].plot(r["ks"], r["eta"] * r["sharpness"], ":", color=line.get_color(), lw=1)
            axes[1].plot(np.arange(len(r["loss"])), r["loss"] + 1e-300, color=line.get_color(), lw=0.8)
            rise = np.diff(r["phi"]) / r["phi"][:-1]
            up = rise > 0
            axes[2].plot(r["ks"][1:][~up], -rise[~up] + 1e-18, "v", ms=3, color=line.get_color(), ls="none")
            axes[2].plot(r["ks"][1:][up], rise[up], "^", ms=5, color=line.get_color(), ls="none")
        axes[0].axhline(2.0, color="k", lw=0.8)
        axes[0].set(xlabel="GD step", ylabel="eta phi (markers), eta lambda_max (dotted)",
                    title="MLP: GFS sharpness at checkpoints")
        if len(runs) <= 6:
            axes[0].legend(fontsize=7)
        axes[1].set(yscale="log", xlabel="GD step", ylabel="loss", title="MLP: loss")
        axes[2].set(yscale="log", xlabel="GD step (end of interval)", ylabel="|relative change of phi|",
                    title="MLP: decreases (v), increases (^); line: 2 x GF-solve error")

