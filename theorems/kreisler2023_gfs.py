"""Kreisler, Nacson, Soudry, Carmon (2023): GD monotonically decreases the GFS sharpness (docs/flows.md section 13).

Scalar network pi(w) = prod_i w_i, L(w) = (pi(w) - y)^2 / 2, y = 1, GD w <- w - eta grad L(w). The gradient-flow
solution S_GF(w) has coordinates sign(w_i) sqrt(w_i^2 + c) (GF conserves w_i^2 - w_j^2), and the GFS sharpness is
phi(w) = lambda_max(Hessian at S_GF(w)) = y^2 sum_i 1/(w_i^2 + c) (`dynamics.predictions.gfs.gfs_sharpness_scalar`).
Claims: phi(w_{t+1}) <= phi(w_t) at every step of every run (up to twice the measured evaluation error of phi); if
eta phi(w_0) > 2 and GD converges, the limit sits at the edge of stability eta lambda_max(w_T) ~ 2, where GD's own
sharpness equals phi(w_T); the loss is not monotone. GD cannot converge when 2/eta is below the balanced sharpness
D |y|^(2 - 2/D) of every minimizer: it ends on the balanced period-2 cycle, predicted independently as the stable
2-cycle of the one-dimensional balanced map a -> a - eta (a^D - y) a^(D - 1) (roots of f(f(a)) = a).

Beyond scalar networks (the paper's empirical claim): small tanh MLPs on synthetic regression data (dataset
"gfs_mlp"), MSE, GD with eta phi(w_0) ~ 2.3; phi(w_t) = `dynamics.predictions.gfs.gfs_sharpness` (gradient flow
integrated to ||grad L|| <= gtol, dense Hessian there) at evenly spaced checkpoints. Monotonicity is checked up to
twice the measured GF-solve error (each phi re-solved at a 10x tighter gtol and rtol). Along GF phi is constant, so a
GD step changes it only at second order, O(eta^2 |grad L|^2), whose sign is not fixed for MLPs: on the d = 4 runs of
the full budget phi rises beyond the solve error (an expected failure there; the numbers are in its reason).

Full budget, tight GF solve: gtol is 10x (not 100x) below the nominal 1e-10 because explicit Tsit5 at rtol 1e-13
hovers at ||grad L|| ~ 2.5e-12 near minimizers with lambda_max ~ 40 (d = 8, seed 8: a gtol of 1e-12 used all 2e6
steps), so 1e-12 is below what the solver can reach there.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from numpy.polynomial import polynomial as P

import dynamics as dyn
from dynamics.models.mlp import mlp_loss, scalar_network_loss
from dynamics.predictions.gfs import (balanced_sharpness, gfs_sharpness, gfs_sharpness_batch, gfs_sharpness_scalar,
                                      require_stable_minimizer)

from .common import by_budget, claims, datasets, figures
from .harness import Theorem, expected_failure

Y = 1.0
STEPS = 20_000                                          # docs/flows.md section 13: 2e4 GD steps
RATIOS = (1.02, 1.1, 1.3)                               # eta phi(w0) / 2
CONVERGENT = {3: (2.0, 0.5, 0.3), 4: (1.5, 1.2, 0.6, 0.3)}
FAILURES = {"D3_ratio1.6": ((2.0, 0.5, 0.3), 1.6), "D2_ratio1.3": ((1.2, 0.7), 1.3)}
REFERENCE_STRIDE = 100                                  # rows also checked against gfs_sharpness_scalar (brentq)
PHI_DROP = 1e-12                                        # a decrease of phi beyond root-find noise (~4 eps)
EOS_RANGE = (1.95, 2.0)                                 # docs/flows.md section 13: final eta lambda_max
CYCLE_TOL = 1e-12                                       # GD end vs the predicted 2-cycle (see its claim)

#: general-model part. MLP d -> 8 -> 8 -> 1 (tanh), n = 8 Gaussian inputs and labels, mean squared error; eta is
#: round(ETA_PHI0 / phi(w_0), 3) so that eta phi(w_0) ~ 2.3, inside the scalar-net theorem's range (2, 2.6).
MLP_N, MLP_WIDTH, ETA_PHI0 = 8, 8, 2.3
#: (input dim d, seeds, GD steps, checkpoint stride) per budget; d = 8 runs reach the EoS fast (catapult), the full
#: budget adds d = 4 runs with long progressive-sharpening phases
MLP_SETUPS = {"quick": ((8, (0, 1, 2), 1000, 50),),
              "full": ((8, tuple(range(10)), 3000, 50), (4, tuple(range(8)), 3000, 100))}
GF_NOMINAL = {"gtol": 1e-10, "rtol": 1e-12, "atol": 1e-14, "max_time": 1e5, "max_steps": 200_000}
GF_TIGHT = {"gtol": 1e-11, "rtol": 1e-13, "atol": 1e-15, "max_time": 1e5, "max_steps": 200_000}
SOLVE_TOL = 1e-8                                        # GF-solve error of phi (nominal vs tight), relative
CONVERGED_LOSS = 1e-12                                  # GD "converged": L(w_T) <= 1e-12
SCALAR_CHECK, SCALAR_CHECK_STRIDE = "D3_ratio1.1", 1000   # gfs_sharpness vs closed form at every 1000th iterate
D4_RISE = expected_failure(
    "scope of the theorem: monotonicity is proven for scalar networks only; for MLPs a GD step changes phi at second "
    "order (O(eta^2 |grad L|^2), phi being constant along GF) with no fixed sign. Measured (full budget): phi rises "
    "beyond twice the solve error (6.9e-10) in 3 of the 8 d = 4 runs: d4s7 by 6.6e-3 and d4s6 by 3.1e-4 relative over "
    "steps 0-100 (eta phi 2.30 -> 2.31, before the catapult), d4s3 by 2.2e-7 over steps 200-300 (stable convergence, "
    "eta phi 1.948); all 10 d = 8 runs decrease", budgets=("full",))

LOSS = scalar_network_loss(Y)


def _mse(X, y, params):
    return mlp_loss(X, y, "tanh", "mse")(params)


@eqx.filter_jit
def _loss_and_sharpness(loss, iterates, checkpoints):
    """GD's loss at every iterate and its own sharpness lambda_max(w_k) at each checkpoint (dense Hessian)."""
    return jax.vmap(loss)(iterates), jax.vmap(lambda params: dyn.sharpness(loss, params, "dense"))(checkpoints)


def _mlp_run(d, seed, steps, stride):
    """One GD run of the MLP and phi at its checkpoints (nominal and tight GF solves). The loss is an eqx.Partial
    holding the data as arrays, so runs of the same shape share every compiled solver."""
    data = datasets.dataset("gfs_mlp", seed=seed, d=d, n=MLP_N, width=MLP_WIDTH)
    loss = eqx.Partial(_mse, jnp.asarray(data["X"]), jnp.asarray(data["y"]))
    w0 = jax.tree_util.tree_map(jnp.asarray, data["params"])
    phi0 = gfs_sharpness(loss, w0, method="dense", **GF_TIGHT)
    eta = round(ETA_PHI0 / phi0, 3)
    if not 2.0 < eta * phi0 < 2.6:
        raise ValueError(f"MLP d = {d}, seed {seed}: eta phi(w0) = {eta * phi0:.4f} outside (2, 2.6)")
    ks = np.arange(0, steps + 1, stride)
    traj = dyn.simulate(dyn.GradientDescent(loss, eta), w0, np.arange(steps + 1) * eta)
    checkpoints = jax.tree_util.tree_map(lambda leaf: leaf[ks], traj.ys)
    losses, sharp = (np.asarray(a) for a in _loss_and_sharpness(loss, traj.ys, checkpoints))
    nominal = gfs_sharpness_batch(loss, checkpoints, method="dense", **GF_NOMINAL)
    tight = gfs_sharpness_batch(loss, checkpoints, method="dense", **GF_TIGHT)
    return {"d": d, "seed": seed, "eta": eta, "eta_phi0": eta * phi0, "ks": ks, "loss": losses,
            "phi": nominal.phi, "phi_tight": tight.phi, "sharpness": sharp, "limit_loss": nominal.loss,
            "gf_steps": nominal.steps, "gf_time": nominal.time}


def _scalar_vs_general(w):
    """Max relative gap between `gfs_sharpness_batch` (GF integrated to convergence, dense Hessian there) and the
    closed form `gfs_sharpness_scalar`, over the iterates w (rows)."""
    general = gfs_sharpness_batch(LOSS, jnp.asarray(w), method="dense").phi
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


def balanced_two_cycles(depth, eta, y=Y):
    """The 2-cycles (a, b, multiplier) of GD restricted to balanced points |w_i| = a > 0 (all signs +, so
    sign(pi) = sign(y)): a -> f(a) = a - eta (a^D - y) a^(D-1). Real roots of f(f(a)) - a (a polynomial of degree
    (2D - 1)^2, numpy's companion-matrix roots) that are not fixed points, refined by Newton steps; the multiplier
    f'(a) f'(b) decides stability (|.| < 1). Independent of the GD run: it uses only (D, eta, y)."""
    f = np.zeros(2 * depth)
    f[1] += 1.0
    f[depth - 1] += eta * y
    f[2 * depth - 1] -= eta
    ff, power = np.zeros(1), np.array([1.0])
    for coefficient in f:
        ff, power = P.polyadd(ff, coefficient * power), P.polymul(power, f)
    g = P.polysub(ff, [0.0, 1.0])
    dg, df = P.polyder(g), P.polyder(f)
    out = []
    for a in np.sort(P.polyroots(g)):
        if abs(a.imag) > 1e-9 or a.real <= 0:
            continue
        a = a.real
        for _ in range(5):
            a -= P.polyval(a, g) / P.polyval(a, dg)
        b = P.polyval(a, f)
        if b > 0 and abs(b - a) > 1e-9 and a < b:
            out.append((a, b, P.polyval(a, df) * P.polyval(b, df)))
    return out


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
        "Failure runs: 2/eta < D |y|^(2-2/D) (require_stable_minimizer raises StepSizeError; checked).",
        "float64, 2e4 GD steps.",
        "MLPs: d -> 8 -> 8 -> 1 tanh, n = 8 standard-normal inputs and labels, mean squared error, LeCun init; "
        "eta = round(2.3 / phi(w_0), 3) so eta phi(w_0) in (2, 2.6) (checked); phi by gfs_sharpness (GF to "
        "||grad L|| <= 1e-10, Tsit5 rtol 1e-12, dense Hessian) at checkpoints every 50 (d = 8) or 100 (d = 4) steps.",
    )
    seed = 0

    def run(self, budget="quick"):
        runs = {}
        for D, w0 in CONVERGENT.items():
            phi0 = gfs_sharpness_scalar(w0, Y)
            for r in RATIOS:
                eta = 2.0 * r / phi0
                require_stable_minimizer(eta, D, Y)
                runs[f"D{D}_ratio{r}"] = (w0, eta, r)
        cycles = {}
        for name, (w0, r) in FAILURES.items():
            eta = 2.0 * r / gfs_sharpness_scalar(w0, Y)
            try:
                require_stable_minimizer(eta, len(w0), Y)
            except dyn.StepSizeError:
                pass
            else:
                raise ValueError(f"{name}: 2/eta = {2 / eta:.4g} is not below the balanced sharpness, not a failure "
                                 "run")
            runs[name] = (w0, eta, r)
            cycles[name] = np.array(balanced_two_cycles(len(w0), eta))
        evidence = {"names": list(runs), "failures": list(FAILURES), "cycles": cycles,
                    "mlp": [_mlp_run(d, seed, steps, stride)
                            for d, seeds, steps, stride in by_budget(budget, MLP_SETUPS["quick"], MLP_SETUPS["full"])
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
        runs = [evidence[n] for n in evidence["names"]]
        gap = max(float(np.max(np.abs(e["phi"][::REFERENCE_STRIDE] / e["phi_reference"] - 1))) for e in runs)
        depth = max(e["w"].shape[1] for e in runs)
        slack = 2 * max(gap, depth * np.finfo(float).eps)
        worst = max(float(np.max(np.diff(e["phi"]) / e["phi"][:-1])) for e in runs)
        out = [
            claims.bound("max_t relative increase of phi(w_t), all runs", worst, slack,
                         why=f"each phi errs by at most max(measured gap to the independent brentq, D eps) = "
                             f"{slack / 2:.2g}, so a genuine rise must exceed twice that",
                         note=f"phi_(t+1) <= phi_t (1 + slack) at every one of the 2e4 steps of all {len(runs)} runs "
                              "(convergent and failing)"),
            claims.bound("vectorized phi (bisection) vs gfs_sharpness_scalar (brentq), every 100th iterate, max "
                         "relative gap", gap, 1e-12, role="consistency",
                         why="two root finders of the same monotone 1-D problem, each to a few ulps; 1e-12 = 1e4 eps "
                             "allows for the conditioning of c near -min w_i^2"),
        ]
        increases = 0
        for name in evidence["names"]:
            if name in evidence["failures"]:
                continue
            e = evidence[name]
            eta_phi = e["eta"] * e["phi"][-1]
            out.append(claims.within(
                f"{name}: final eta lambda_max(w_T)", e["eta"] * e["sharpness_T"], *EOS_RANGE,
                why="upper end: a GD limit is linearly stable (eta lambda <= 2); lower end: the paper's 'converges "
                    "to the EoS' read as 2.5% below 2 (docs/flows.md section 13)",
                note=f"edge of stability; eta phi(w_T) = {eta_phi:.4f}"))
            out.append(claims.identity(
                f"{name}: |lambda_max(w_T) - phi(w_T)|", abs(e["sharpness_T"] - e["phi"][-1]), 0.0, 1e-8,
                role="consistency",
                why="two computations (eigvalsh of jax.hessian at w_T; closed-form phi) agree at a minimizer; the gap "
                    "is O(|pi - y|) (Hessian = grad pi grad pi^T + (pi - y) Hess pi), |pi - y| << 1e-8 after 2e4 steps",
                note=f"final loss {e['loss'][-1]:.2e}"))
            increases += int(np.sum((np.diff(e["loss"]) > 0) & (e["phi"][1:] < e["phi"][:-1] * (1 - PHI_DROP))))
        out.append(claims.bound(
            "steps where the loss rises while phi falls (count, convergent runs)", increases, 1, upper=False,
            why="the paper: the loss is not monotone at the EoS while phi is; one such step shows it",
            note="L_(t+1) > L_t and phi_(t+1) < phi_t (1 - 1e-12)"))
        for name in evidence["failures"]:
            e, cycles = evidence[name], np.asarray(evidence["cycles"][name], float).reshape(-1, 3)
            w = np.abs(e["w"])
            stable = cycles[np.abs(cycles[:, 2]) < 1]
            if len(stable) == 1:
                a, b = sorted(stable[0][:2])
                end = np.sort(np.stack([w[-1], w[-2]]), axis=0)   # the smaller and larger magnitude per coordinate
                # every coordinate alternates between a and b in phase: rows of end are (min, max) of its two values
                err = float(max(np.max(np.abs(end[0] - a)), np.max(np.abs(end[1] - b)),
                                np.ptp(w[-1]), np.ptp(w[-2])))
            else:
                err = float("nan")
            out.append(claims.bound(
                f"{name}: |w_T|, |w_(T-1)| vs the stable balanced 2-cycle (a, b) of a -> a - eta (a^D - 1) a^(D-1)",
                err, CYCLE_TOL,
                why="the cycle's multiplier (|.| < 0.5 here) contracts the error per two steps, so after 2e4 steps "
                    "only rounding (~1e-15) remains; 1e-12 allows for the conditioning of the polynomial root",
                note=(f"2/eta = {2 / e['eta']:.4f} < {e['balanced']:.4g} = D |y|^(2-2/D); stable positive 2-cycles "
                      f"of the balanced map: {[(round(c[0], 6), round(c[1], 6), round(c[2], 3)) for c in stable]}; "
                      f"|w_T| = {np.round(w[-1], 6).tolist()}, |w_(T-1)| = {np.round(w[-2], 6).tolist()}; final "
                      f"loss {min(e['loss'][-2:]):.3g} (no convergence)")))
        out.append(claims.bound(
            "gfs_sharpness (GF to ||grad L|| <= 1e-10) vs closed form, D = 3, max relative gap",
            evidence["scalar_vs_general"], SOLVE_TOL, role="consistency",
            why="GF stopped at ||grad L|| <= 1e-10 is within ~1e-10/mu of its limit, so phi is off by ~1e-10 x "
                "|grad phi|/mu; 1e-8 is the accuracy the MLP part needs from the same solver",
            note=f"every {SCALAR_CHECK_STRIDE}th iterate of {SCALAR_CHECK}: the general solver (diffrax) against the "
                 "conserved-quantity root find"))
        return out + self._mlp_claims(evidence["mlp"])

    @staticmethod
    def _mlp_claims(runs):
        label = lambda r: f"d{r['d']}s{r['seed']}"
        solve_err = max(float(np.max(np.abs(r["phi"] / r["phi_tight"] - 1))) for r in runs)
        slack = 2.0 * solve_err
        final_S = [r["eta"] * r["sharpness"][-1] for r in runs]
        final_phi = [r["eta"] * r["phi"][-1] for r in runs]
        listing = lambda values: ", ".join(f"{label(r)} {v:.4f}" for r, v in zip(runs, values))
        out = [claims.bound(
            "MLP: GF-solve error of phi (nominal vs 10x tighter gtol and rtol), max relative", solve_err, SOLVE_TOL,
            role="consistency",
            why="two GF solves of the same limit; 1e-8 is the accuracy of gfs_sharpness against the scalar closed "
                "form above, so both phi computations are held to one standard",
            note=f"nominal gtol 1e-10 rtol 1e-12, tight gtol 1e-11 rtol 1e-13; {len(runs)} runs")]
        for d in sorted({r["d"] for r in runs}, reverse=True):
            group = [r for r in runs if r["d"] == d]
            rises = [(float(np.max(np.diff(r["phi"]) / r["phi"][:-1])), label(r)) for r in group]
            worst, where = max(rises)
            out.append(claims.bound(
                f"MLP d = {d}: max relative increase of phi between checkpoints ({len(group)} runs)", worst, slack,
                why="each compared phi errs by at most the measured GF-solve error, so a genuine rise exceeds twice it",
                note=f"largest in run {where}; runs rising beyond the slack: "
                     f"{[f'{n} {v:.2e}' for v, n in rises if v > slack]}",
                xfail=D4_RISE if d == 4 else None))
        out += [
            claims.bound("MLP: GD converged, max final loss", max(float(r["loss"][-1]) for r in runs),
                         CONVERGED_LOSS,
                         why="condition of the two claims below: at L <= 1e-12, |f - y| <= 1e-6 and the Hessian is "
                             "J^T J / n up to O(1e-6); loss 0 is reached only by convergence"),
            claims.bound("MLP: final eta phi(w_T), max over runs", max(final_phi), 2.0,
                         why="linear stability: GD converges only to minimizers with eta lambda_max <= 2 (threshold, "
                             "no margin)",
                         note=f"phi fell from eta phi(w_0) ~ 2.3; per run: {listing(final_phi)}"),
            claims.bound("MLP: |lambda_max(w_T) / phi(w_T) - 1|, max over runs",
                         max(abs(r["sharpness"][-1] / r["phi"][-1] - 1) for r in runs), SOLVE_TOL,
                         role="consistency",
                         why="at a minimizer GF does not move, so dense eigh at w_T and at its GF limit agree to the "
                             "GF-solve accuracy (1e-8)",
                         note=("Not claimed: the scalar theorem's final eta lambda_max in [1.95, 2] (docs/flows.md "
                               "section 13 states it for scalar nets only); on these MLPs GD reaches the EoS by a "
                               f"catapult; final eta lambda_max per run: {listing(final_S)}")),
        ]
        return out

    def figure(self, evidence):
        fig, grid = plt.subplots(2, 3, figsize=(16, 9))
        fig.suptitle(f"{self.id}: {self.statement.split('. ')[0]}", fontsize=10)
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
        figures.axes_style(axes[0], "step $t$", r"GFS sharpness $\varphi(w_t)$", logx=True,
                           title=r"$\varphi$ non-increasing; dotted: $2/\eta$")
        axes[0].legend(fontsize=7)
        figures.reference_line(axes[1], y=2.0)
        figures.axes_style(axes[1], "step $t$", r"$\eta\varphi(w_t)$ (bold); $\eta\lambda_{\max}(w_t)$ (thin)",
                           logx=True, title=r"convergence to the EoS ($\eta\lambda = 2$)")
        figures.axes_style(axes[2], "step $t$", "loss", logx=True, logy=True, title="loss (non-monotone)")
        self._mlp_figure(grid[1], evidence["mlp"])
        fig.tight_layout()
        return fig

    @staticmethod
    def _mlp_figure(axes, runs):
        solve_err = max(float(np.max(np.abs(r["phi"] / r["phi_tight"] - 1))) for r in runs)
        figures.reference_line(axes[2], y=2 * solve_err)
        for r in runs:
            label = f"d{r['d']} seed {r['seed']} ($\\eta$ = {r['eta']})"
            (line,) = axes[0].plot(r["ks"], r["eta"] * r["phi"], "o-", ms=3, label=label)
            axes[0].plot(r["ks"], r["eta"] * r["sharpness"], ":", color=line.get_color(), lw=1)
            axes[1].plot(np.arange(len(r["loss"])), r["loss"] + 1e-300, color=line.get_color(), lw=0.8)
            rise = np.diff(r["phi"]) / r["phi"][:-1]
            up = rise > 0
            axes[2].plot(r["ks"][1:][~up], -rise[~up] + 1e-18, "v", ms=3, color=line.get_color(), ls="none")
            axes[2].plot(r["ks"][1:][up], rise[up], "^", ms=5, color=line.get_color(), ls="none")
        figures.reference_line(axes[0], y=2.0)
        figures.axes_style(axes[0], "GD step", r"$\eta\varphi$ (markers), $\eta\lambda_{\max}$ (dotted)",
                           title="MLP: GFS sharpness at checkpoints")
        if len(runs) <= 6:
            axes[0].legend(fontsize=7)
        figures.axes_style(axes[1], "GD step", "loss", logy=True, title="MLP: loss")
        figures.axes_style(axes[2], "GD step (end of interval)", r"$|$relative change of $\varphi|$", logy=True,
                           title=r"MLP: decreases (v), increases (^); line: 2 x GF-solve error")
