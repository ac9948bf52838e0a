"""Nacson, Srebro, Soudry (2019): SGD with a fixed step on separable data (theory/implicit-bias.md section 4).

Update (the paper's batch-sum form): w_{k+1} = w_k - eta sum_{n in B_k} l'(z_n.w_k) z_n, logistic loss
(beta = 1/4), |B_k| = B, sampled with replacement (i.i.d. indices) or by epoch-wise reshuffling, w_0 = 0.

Time convention. The library puts iterate k at t = k eta. A step draws each example with probability B/N,
so SGD averages to GD on the sum loss with eta_eff = eta B/N, and the Soudry clock is the *effective*
gradient-flow time t_eff = k eta B/N = eta * epochs (an epoch is N/B steps). With T = log t_eff:
    w_k = w_hat T + w_tilde + r_k,   r_k -> 0,
    z_n.w_k - log k -> log(eta B/N) - log alpha_n (n in S),   t_eff L(w_k) -> ||w_hat||^2,
and the direction error tends to C/T (C, w_tilde, kappa from `separable_asymptotics`).

Fluctuations [derived here, heuristic]. Linearize in s = log t_eff: dr = -A r ds + dM with
A = sum_S alpha_n z_n z_n^T. With replacement, a step (ds = eta B/(N t_eff)) adds B i.i.d. draws of
eta (alpha_i/t_eff) z_i 1[i in S], so dM has covariance (eta N/t_eff) Sigma ds with
Sigma = (1/N) sum_S alpha_n^2 z_n z_n^T - w_hat w_hat^T/N^2, independent of B. If lambda_min(A) > 1/2,
Cov(r) -> (eta N/t_eff) P0 with (A - I/2) P0 + P0 (A - I/2) = Sigma: the residual RMS is
sigma(t_eff) = (eta N tr P0/t_eff)^{1/2}. Reshuffling cancels this to first order (every example once per
epoch), leaving the deterministic O(t_eff^-kappa) part shared with full-batch GD.

Tolerances: |deterministic part| (the residual of full-batch GD with the same eta, i.e. B = N, at the same
t_eff) + 4 standard deviations of the predicted noise of the statistic (seed means over vmapped seeds).

G3 convention. The paper's "eta proportional to B" is the linear scaling rule of the batch-MEAN update
w <- w - (eta/B) sum_{B_k} grad l_n: with eta = eta0 B it is exactly the batch-sum update with eta0 run
here, so t_eff = eta0 * epochs for every B and the curves against epochs share one limit. (The batch-sum
update with eta = eta0 B would advance t_eff by eta0 B per epoch, and leaves the per-minibatch step range
eta < 2/(beta B max||z||^2) for large B.) One step eta0 = half the bound of the largest batch serves all runs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

import dynamics as dyn
from dynamics.errors import DynamicsError
from dynamics.predictions import gd_step_bound, require_step_below

from .harness import Claim, Theorem

DATA_SEED, N_POINTS = 112, 10
BATCH_SIZES = (1, 2, 5)  # 1, 2 and N/2
SAMPLINGS = ("replacement", "reshuffle")
STEP_FRACTION = 0.5  # eta0 = 0.5 * 2/(beta B_max max||z||^2)
SETTINGS = {  # epochs: horizon (t_eff = eta0 * epochs); seeds per (sampling, B)
    "quick": {"epochs": 30_000, "seeds": {"replacement": 8, "reshuffle": 2}},
    "full": {"epochs": 300_000, "seeds": {"replacement": 32, "reshuffle": 8}},
}
Z_SCORE = 4.0  # tolerances: deterministic (full-batch GD) part + 4 standard deviations of the predicted noise
KEY_SEED = 0  # jax.random.key of the SGD runs (folded with the run index)


def dataset(seed=DATA_SEED, n=N_POINTS, half_angle=60.0, r_min=0.2):
    """Random 2-d data: z_n = r_n (cos phi_n, sin phi_n), phi ~ U(-60, 60) deg, r ~ U(0.2, 1), random labels.

    rng = numpy.random.default_rng(seed) draws phi, r, then y = rng.choice([-1, 1]); x_n = y_n z_n.
    Seed 112: support S = {0, 6} (spans R^2), alpha_S = (16.56, 7.20), off-support margins >= 2.32,
    kappa = 0.84, C = 0.419, max||z_n|| = 0.988.
    """
    rng = np.random.default_rng(seed)
    phi = np.deg2rad(rng.uniform(-half_angle, half_angle, n))
    r = rng.uniform(r_min, 1.0, n)
    y = rng.choice([-1.0, 1.0], n)
    return y[:, None] * r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1), y


def replacement_noise(Z, solution):
    """P0 of the module docstring: Cov(r) ~ (eta N / t_eff) P0 for with-replacement SGD (batch-sum, any B).

    Raises `DynamicsError` when lambda_min(A) <= 1/2 (the noise then decays slower than t_eff^-1/2).
    """
    S, alpha = solution.support, solution.dual[solution.support]
    ZS, n, d = Z[S], len(Z), Z.shape[1]
    A = ZS.T @ (alpha[:, None] * ZS)
    if np.linalg.eigvalsh(A).min() <= 0.5:
        raise DynamicsError("the stationary SGD noise needs lambda_min(sum_S alpha_n z_n z_n^T) > 1/2")
    sigma = ZS.T @ (alpha[:, None] ** 2 * ZS) / n - np.outer(solution.w, solution.w) / n**2
    return scipy.linalg.solve_continuous_lyapunov(A - 0.5 * np.eye(d), sigma)


def direction_gradient(w, w_hat):
    """g with direction_error(w + r, w_hat) ~ direction_error(w, w_hat) + g.r (to first order in r)."""
    u = w / np.linalg.norm(w)
    diff = u - w_hat / np.linalg.norm(w_hat)
    return (diff - (diff @ u) * u) / (np.linalg.norm(w) * np.linalg.norm(diff))


class NacsonSrebroSoudry2019(Theorem):
    id = "nacson2019_sgd"
    reference = ("Nacson, Srebro, Soudry: Stochastic gradient descent on separable data: exact convergence "
                 "with a fixed learning rate, AISTATS 2019")
    statement = (
        "On linearly separable data, SGD with a fixed step below the per-minibatch smoothness bound drives a "
        "smooth monotone loss to zero, for sampling with and without replacement. For exponentially-tailed "
        "losses (logistic) the iterates converge in direction to the l2 max-margin separator w_hat at rate "
        "O(1/log t) and L = O(1/t), like GD: SGD averages to GD with eta_eff = eta B/N, so "
        "w_k = w_hat log t_eff + w_tilde + o(1) with t_eff = k eta B/N. With eta proportional to B (batch-mean "
        "update, with replacement) the asymptotic progress per epoch does not depend on B when the support "
        "vectors span the data.")
    hypotheses = ("data linearly separable through the origin (LP certificate otherwise)",
                  "support vectors span the data, alpha_n > 0 on S (refined limit w_tilde exists)",
                  "batch-sum step eta < 2/(beta B max_n ||z_n||^2) for every batch size used (logistic beta = 1/4)",
                  "lambda_min(sum_S alpha_n z_n z_n^T) > 1/2 for the predicted noise level",
                  "float64; w_0 = 0; iterate k at t = k eta, effective GF time t_eff = k eta B/N")

    def run(self, budget="quick"):
        cfg = SETTINGS[budget]
        X, y = dataset()
        Z = y[:, None] * X
        solution = dyn.max_margin(X, y)  # raises NonSeparableError
        asy = dyn.separable_asymptotics(solution, Z)  # raises unless alpha_S > 0 and the support spans the data
        p0 = replacement_noise(Z, solution)
        loss = dyn.linear_classifier(X, y, "logistic")
        longest = Z[[np.argmax(np.sum(Z**2, axis=1))]]
        # worst minibatch: B copies of the longest z_n (possible with replacement): 2/(beta B max||z||^2)
        bounds = {B: gd_step_bound(np.repeat(longest, B, axis=0), loss.tail) for B in BATCH_SIZES}
        lr = STEP_FRACTION * bounds[max(BATCH_SIZES)]
        for B, bound in bounds.items():
            require_step_below(lr, bound, f"SGD (batch-sum, B = {B})")
        n, d = Z.shape
        epochs = np.unique(np.round(np.logspace(0, np.log10(cfg["epochs"]), 48)).astype(int))
        t_eff = lr * epochs
        predicted = asy.predict(t_eff)
        # deterministic reference: full-batch GD with the same eta (B = N), whose clock is t_eff = k eta
        require_step_below(lr, gd_step_bound(Z, loss.tail), "full-batch GD")
        gd = dyn.simulate(dyn.GradientDescent(loss, jnp.asarray(lr)), jnp.zeros(d), np.r_[0.0, t_eff])
        log_loss = jax.jit(jax.vmap(jax.vmap(loss.log_value)))
        runs = {}
        for i, (sampling, B) in enumerate((s, B) for s in SAMPLINGS for B in BATCH_SIZES):
            keys = jax.random.split(jax.random.fold_in(jax.random.key(KEY_SEED), i), cfg["seeds"][sampling])
            process = dyn.SeedEnsemble(dyn.SGD(loss, jnp.asarray(lr), B, keys[0], sampling), keys)
            steps = epochs * (n // B)
            traj = dyn.simulate(process, jnp.zeros((len(keys), d)), np.r_[0.0, steps * lr])
            w = np.asarray(traj.ys)[1:]  # (saves, seeds, d)
            runs[f"{sampling}/B={B}"] = {
                "sampling": sampling, "B": B, "w": w,
                "residual": np.linalg.norm(w - predicted[:, None], axis=-1),
                "direction_error": dyn.direction_error(w, solution.w),
                "sv_margin": dyn.predictions.margins(w, Z[solution.support]) - np.log(steps)[:, None, None],
                "sv_limit": np.log(lr * B / n) - np.log(solution.dual[solution.support]),
                "tl": np.exp(np.log(t_eff)[:, None] + np.asarray(log_loss(jnp.asarray(w)))),
            }
        return {"Z": Z, "w_hat": solution.w, "support": solution.support, "asymptotics": asy,
                "C": asy.direction_constant, "kappa": asy.kappa, "p0": p0, "lr": lr,
                "bounds": bounds, "n": n, "epochs": epochs, "t_eff": t_eff, "predicted": predicted,
                "gd_residual": np.linalg.norm(np.asarray(gd.ys)[1:] - predicted, axis=-1), "runs": runs}

    @staticmethod
    def _noise(ev, t):
        """Predicted covariance of r at effective time t (with replacement): (eta N / t) P0."""
        return ev["lr"] * ev["n"] / t * ev["p0"]

    def check(self, ev):
        runs, t_eff, epochs = ev["runs"], ev["t_eff"], ev["epochs"]
        T, end = np.log(t_eff), -1
        cov = self._noise(ev, t_eff[end])
        sigma = np.sqrt(ev["lr"] * ev["n"] * np.trace(ev["p0"]) / t_eff)  # predicted RMS noise, each save
        det = ev["gd_residual"]  # deterministic part: full-batch GD with the same eta
        ZS, w_hat = ev["Z"][ev["support"]], ev["w_hat"]
        norm2 = w_hat @ w_hat
        rep = [r for r in runs.values() if r["sampling"] == "replacement"]
        pooled = sum(r["w"].shape[1] for r in rep)
        claims = []

        # G1: with replacement, pooled over B (each run against its own B-dependent prediction).
        offsets = np.concatenate([r["sv_margin"][end] - r["sv_limit"] for r in rep]).mean(axis=0)
        sd = np.sqrt(np.einsum("nd,de,ne->n", ZS, cov, ZS) / pooled)
        claims.append(Claim(
            "G1a support margins: z_n.w_k - log k - (log(eta B/N) - log alpha_n), worst n in S, mean of "
            f"{pooled} with-replacement runs (B = {BATCH_SIZES}) at t_eff = {t_eff[end]:.3g}",
            float(np.abs(offsets).max()), 0.0, float((Z_SCORE * sd + np.linalg.norm(ZS, axis=1) * det[end]).max()),
            "abs", "tolerance = ||z_n|| x (GD residual) + 4 sd of the seed mean of z_n.r, Cov(r) = (eta N/t_eff) P0"))
        tl = np.concatenate([r["tl"][end] for r in rep]).mean() / norm2
        claims.append(Claim(
            f"G1b eta_eff k L(w_k) / ||w_hat||^2, mean of {pooled} with-replacement runs at t_eff = {t_eff[end]:.3g}",
            float(tl), 1.0, float(Z_SCORE * np.sqrt(w_hat @ cov @ w_hat / pooled) / norm2
                                  + np.linalg.norm(w_hat) * det[end] / norm2), "abs",
            "t L = sum_S alpha_n exp(-z_n.r) -> sum alpha = ||w_hat||^2: 4 sd of w_hat.r/||w_hat||^2 + GD "
            "residual; the logistic correction sum alpha^2/(2 t ||w_hat||^2) ~ 3e-4 is inside"))
        pred_err = dyn.direction_error(ev["predicted"][end], w_hat)
        g = direction_gradient(ev["predicted"][end], w_hat)
        err_T = np.concatenate([r["direction_error"][end] for r in rep]).mean() * T[end]
        claims.append(Claim(
            f"G1c direction error x log t_eff, mean of {pooled} runs, vs the predicted iterate w_hat log t_eff + "
            f"w_tilde (-> C = {ev['C']:.4f} as T -> inf)",
            float(err_T), float(pred_err * T[end]),
            float(T[end] * (Z_SCORE * np.sqrt(g @ cov @ g / pooled) + np.linalg.norm(g) * det[end])), "abs",
            f"at T = {T[end]:.2f} the w_tilde component along w_hat still adds O(1/T) to C; tolerance: "
            "4 sd of g.r + |g| x GD residual, g the gradient of the direction error"))
        late = epochs >= epochs[end] / 10
        ratio = np.sqrt(np.mean(np.concatenate([r["residual"][late] for r in rep], axis=1) ** 2
                                / (sigma[late] ** 2 + det[late] ** 2)[:, None]))
        spread_rms = float(Z_SCORE / np.sqrt(2 * pooled * len(w_hat)))  # 4 sd of an RMS of pooled * d normals
        claims.append(Claim(
            "G1c RMS residual ||w - w_hat log t_eff - w_tilde|| / (sigma^2 + GD residual^2)^(1/2), with "
            f"replacement, last decade of t_eff (sigma(t_end) = {sigma[end]:.2e})",
            float(ratio), (1.0 - spread_rms, 1.0 + spread_rms), kind="range",
            note=f"sigma(t) = (eta N tr P0/t)^(1/2) [derived]; range: 4 sd of an RMS over {pooled} runs x "
                 f"{len(w_hat)} components (one save; the decade adds more)"))

        # G2: one limit for both samplings and every B; residuals shrink.
        def z_score(r):
            return np.linalg.norm(r["w"][end].mean(0) - ev["predicted"][end]) / (
                sigma[end] / np.sqrt(r["w"].shape[1]) + det[end])
        name = max(runs, key=lambda k: z_score(runs[k]))
        r = runs[name]
        claims.append(Claim(
            f"G2 seed-mean residual ||<w> - w_hat log t_eff - w_tilde||, worst of {len(runs)} (sampling, B) "
            f"({name}, {r['w'].shape[1]} seeds)",
            float(np.linalg.norm(r["w"][end].mean(0) - ev["predicted"][end])),
            float(Z_SCORE * sigma[end] / np.sqrt(r["w"].shape[1]) + det[end]), kind="max",
            note="worst in units of GD residual + sigma/sqrt(seeds); bound 4 sigma/sqrt(seeds) + GD residual "
                 "(replacement noise; reshuffling cancels it to first order)"))
        early = int(np.argmin(np.abs(epochs - epochs[end] / 100)))
        predicted = {"replacement": np.sqrt((sigma[end] ** 2 + det[end] ** 2) / (sigma[early] ** 2 + det[early] ** 2)),
                     "reshuffle": det[end] / det[early]}
        shrink = {k: np.sqrt(np.mean(r["residual"][end] ** 2) / np.mean(r["residual"][early] ** 2))
                  for k, r in runs.items()}
        name = max(shrink, key=lambda k: shrink[k] / predicted[runs[k]["sampling"]])
        claims.append(Claim(
            f"G2 residual decay: (RMS at epoch {epochs[end]} / RMS at epoch {epochs[early]}) / predicted ratio, "
            f"worst run ({name}: {shrink[name]:.3g})",
            float(shrink[name] / predicted[runs[name]["sampling"]]),
            float(1.0 + Z_SCORE / np.sqrt(min(r["w"].shape[1] for r in rep) * len(w_hat))), kind="max",
            note=f"predicted ratio {predicted['replacement']:.3g} with replacement ((sigma^2 + GD^2)^(1/2)), "
                 f"{predicted['reshuffle']:.3g} with reshuffling (GD); bound 1 + 4 sd of a ratio of RMS over "
                 "seeds x d normals"))

        # G3: eta0 B with the batch-mean update (= eta0, batch sum): direction error vs epochs independent of B.
        mean_err = np.stack([r["direction_error"].mean(1) for r in rep])  # (B, saves)
        spread = (mean_err.max(0) - mean_err.min(0)) / mean_err.mean(0)
        noise = self._spread_noise(ev)
        claims.append(Claim(
            f"G3 relative spread (max - min)/mean across B = {BATCH_SIZES} of the seed-mean direction error "
            f"at epoch {epochs[end]}", float(spread[end]), float(Z_SCORE * noise[end]), kind="max",
            note="bound: 4 sd of the difference of two seed means of g.r, over the predicted error. Batch sum "
                 f"with eta0 B would shift log t_eff by log B: predicted spread "
                 f"{self._batch_sum_spread(ev)[end]:.2f}"))
        window = (epochs >= epochs[end] / 1000) & (epochs <= epochs[end] / 100)
        claims.append(Claim(
            "G3 spread shrinks: mean spread over the last decade of epochs / over the decade two decades earlier",
            float(spread[late].mean() / spread[window].mean()), 1.0, kind="max",
            note=f"noise alone predicts {noise[late].mean() / noise[window].mean():.2f} (~ T t_eff^-1/2); the "
                 "early window also holds B-dependent transients"))
        return claims

    def _spread_noise(self, ev):
        """Predicted sd of the relative spread across B at each save: sd of the difference of two seed means
        of g.r over the predicted direction error (g = `direction_gradient` at w_hat log t_eff + w_tilde)."""
        seeds = min(r["w"].shape[1] for r in ev["runs"].values() if r["sampling"] == "replacement")
        g = np.array([direction_gradient(w, ev["w_hat"]) for w in ev["predicted"]])
        var = np.array([gi @ self._noise(ev, t) @ gi for gi, t in zip(g, ev["t_eff"])])
        return np.sqrt(2 * var / seeds) / dyn.direction_error(ev["predicted"], ev["w_hat"])

    @staticmethod
    def _batch_sum_spread(ev):
        """Predicted relative spread across B if eta = eta0 B were used with the batch-SUM update."""
        err = np.stack([dyn.direction_error(ev["asymptotics"].predict(ev["t_eff"] * B), ev["w_hat"])
                        for B in BATCH_SIZES])
        return (err.max(0) - err.min(0)) / err.mean(0)

    def figure(self, ev):
        import matplotlib.pyplot as plt

        runs, t_eff, epochs, n = ev["runs"], ev["t_eff"], ev["epochs"], ev["n"]
        T = np.log(t_eff)
        asymptotic = t_eff >= t_eff[-1] / 1000  # where the predictions apply (GD residual < 1)
        colors = {B: f"C{i}" for i, B in enumerate(BATCH_SIZES)}
        styles = {"replacement": "-", "reshuffle": "--"}
        fig, axes = plt.subplots(2, 3, figsize=(16, 9))

        ax = axes[0, 0]
        for B in BATCH_SIZES:
            r = runs[f"replacement/B={B}"]
            for j, m in enumerate(ev["support"]):
                ax.plot(np.log(epochs * (n // B)), r["sv_margin"][:, :, j].mean(1), color=colors[B],
                        ls=["-", "-."][j % 2], label=f"B={B}, n={m}")
                ax.axhline(r["sv_limit"][j], color=colors[B], lw=0.8, ls=":")
        ax.set(xlabel="log k", ylabel="z_n.w_k - log k",
               title="G1a: support margins (replacement, seed mean)\ndotted: log(eta B/N) - log alpha_n")
        ax.legend(fontsize=7, ncol=2)

        ax = axes[0, 1]
        norm2 = ev["w_hat"] @ ev["w_hat"]
        for B in BATCH_SIZES:
            ax.plot(T, runs[f"replacement/B={B}"]["tl"].mean(1) / norm2, color=colors[B], label=f"B={B}")
        ax.axhline(1.0, color="k", ls="--", label="||w_hat||^2")
        ax.set(xlabel="log t_eff", ylabel="t_eff L(w) / ||w_hat||^2",
               title="G1b: eta_eff k L(w_k) -> ||w_hat||^2 (replacement, seed mean)")
        ax.legend(fontsize=8)

        ax = axes[0, 2]
        for name, r in runs.items():
            ax.loglog(t_eff, np.sqrt(np.mean(r["residual"] ** 2, axis=1)), color=colors[r["B"]],
                      ls=styles[r["sampling"]], label=name)
        sigma = np.sqrt(ev["lr"] * n * np.trace(ev["p0"]) / t_eff)
        ax.loglog(t_eff[asymptotic], sigma[asymptotic], "k:", lw=2, label="predicted noise sigma (replacement)")
        ax.loglog(t_eff, ev["gd_residual"], "k-", lw=3, alpha=0.3, label="full-batch GD, same eta")
        ax.set(xlabel="t_eff = eta * epochs", ylabel="RMS ||w - w_hat log t_eff - w_tilde||",
               title="G1c/G2: residual (solid: replacement, dashed: reshuffle)")
        ax.legend(fontsize=7)

        ax = axes[1, 0]
        for name, r in runs.items():
            ax.plot(T, r["direction_error"].mean(1) * T, color=colors[r["B"]], ls=styles[r["sampling"]], label=name)
        ax.plot(T[asymptotic], (dyn.direction_error(ev["predicted"], ev["w_hat"]) * T)[asymptotic], "k-", lw=3,
                alpha=0.3, label="predicted iterate w_hat log t_eff + w_tilde")
        ax.axhline(ev["C"], color="k", ls=":", label=f"C = {ev['C']:.3f} (T -> inf)")
        ax.set(xlabel="T = log t_eff", ylabel="direction error x T", title="G1c/G2: direction error ~ C/T",
               ylim=(0, 1.2))
        ax.legend(fontsize=7)

        ax = axes[1, 1]
        ax.loglog(epochs[asymptotic], dyn.direction_error(ev["predicted"], ev["w_hat"])[asymptotic], "k-",
                  lw=3, alpha=0.3, label="predicted, batch mean (every B)")
        for B in BATCH_SIZES:
            ax.loglog(epochs, runs[f"replacement/B={B}"]["direction_error"].mean(1), color=colors[B],
                      label=f"B={B}: batch mean, eta0 B (run)")
            ax.loglog(epochs[asymptotic], dyn.direction_error(ev["asymptotics"].predict(t_eff * B),
                                                              ev["w_hat"])[asymptotic],
                      color=colors[B], ls=":", label=f"B={B}: batch sum, eta0 B (predicted)")
        ax.set(xlabel="epochs", ylabel="direction error", title="G3: eta proportional to B, with replacement")
        ax.legend(fontsize=7)

        ax = axes[1, 2]
        mean_err = np.stack([runs[f"replacement/B={B}"]["direction_error"].mean(1) for B in BATCH_SIZES])
        ax.loglog(epochs, (mean_err.max(0) - mean_err.min(0)) / mean_err.mean(0), label="measured (batch mean)")
        ax.loglog(epochs[asymptotic], self._spread_noise(ev)[asymptotic], "k:",
                  label="predicted sd of the spread (noise)")
        ax.loglog(epochs[asymptotic], self._batch_sum_spread(ev)[asymptotic], "k--",
                  label="predicted, batch sum with eta0 B")
        ax.set(xlabel="epochs", ylabel="(max - min) / mean over B", title="G3: relative spread across B")
        ax.legend(fontsize=8)
        fig.suptitle(f"Nacson, Srebro, Soudry 2019: SGD on separable data, logistic loss, N = {n}, "
                     f"eta = {ev['lr']:.3f} (batch sum)")
        fig.tight_layout()
        return fig
