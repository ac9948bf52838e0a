"""Nacson, Srebro, Soudry (2019): SGD with a fixed step on separable data (docs/implicit-bias.md section 4).

Update (the paper's batch-sum form): w_{k+1} = w_k - eta sum_{n in B_k} l'(z_n.w_k) z_n, logistic loss
(beta = 1/4), |B_k| = B, sampled with replacement (i.i.d. indices) or by epoch-wise reshuffling, w_0 = 0.
Data: `wedge_2d` (seed 112): N = 10 points in R^2 whose support vectors span the plane.

Time convention. The library puts iterate k at t = k eta. A step draws each example with probability B/N,
so SGD averages to GD on the sum loss with eta_eff = eta B/N, and the Soudry clock is the *effective*
gradient-flow time t_eff = k eta B/N = eta * epochs (an epoch is N/B steps): SGD at step k follows full-batch GD
with the same eta at step k B/N, whose limit w_hat log t_eff + w_tilde is the theorem of `soudry2018`.

Fluctuations [derived here, heuristic]. Linearize in s = log t_eff: dr = -A r ds + dM with
A = sum_S alpha_n z_n z_n^T. With replacement, a step (ds = eta B/(N t_eff)) adds B i.i.d. draws of
eta (alpha_i/t_eff) z_i 1[i in S], so dM has covariance (eta N/t_eff) Sigma ds with
Sigma = (1/N) sum_S alpha_n^2 z_n z_n^T - w_hat w_hat^T/N^2, independent of B. If lambda_min(A) > 1/2,
Cov(r) -> (eta N/t_eff) P0 with (A - I/2) P0 + P0 (A - I/2) = Sigma: the RMS of w_SGD - w_GD is
sigma(t_eff) = (eta N tr P0/t_eff)^{1/2}. Reshuffling cancels this to first order (every example once per
epoch): its deviation from GD obeys dr/ds = -A r + O(e^{-s}) (second-order, ordering terms), so it decays like
t_eff^-kappa or t_eff^-1, not t_eff^-1/2.

Tolerances. Every claim compares SGD with full-batch GD run at the same t_eff, an independent algorithm, so no
tolerance contains the residual of the predicted limit: seed means are tested against 4 standard errors of the
sample (`claims.z_test`) or 4 predicted standard deviations (P0), the noise level itself against the spread of an
RMS of Gaussian samples.

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
from dynamics.measure import fit_line
from dynamics.predictions import gd_step_bound, require_step_below

from .common import by_budget, claims, datasets, figures, runs
from .harness import Theorem

DATA_SEED = 112
BATCH_SIZES = (1, 2, 5)  # 1, 2 and N/2
SAMPLINGS = ("replacement", "reshuffle")
STEP_FRACTION = 0.5  # eta0 = 0.5 * 2/(beta B_max max||z||^2)
Z_SCORE = 4.0  # seed means: within 4 standard errors
KEY_SEED = 0  # jax.random.key of the SGD runs (folded with the run index)


def replacement_noise(Z, solution):
    """P0 of the module docstring: Cov(w_SGD - w_GD) ~ (eta N / t_eff) P0 for with-replacement SGD (batch-sum, any B).

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
        last_epoch = by_budget(budget, 30_000, 300_000)  # horizon: t_eff = eta0 * epochs
        seeds = by_budget(budget, {"replacement": 8, "reshuffle": 2}, {"replacement": 32, "reshuffle": 8})
        X, y = datasets.dataset("wedge_2d", seed=DATA_SEED)
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
        epochs = np.unique(np.round(np.logspace(0, np.log10(last_epoch), 48)).astype(int))
        t_eff = lr * epochs
        # the reference: full-batch GD with the same eta (B = N), whose iterate k = epochs sits at t_eff
        require_step_below(lr, gd_step_bound(Z, loss.tail), "full-batch GD")
        _, gd_w = runs.gd_saves(dyn.GradientDescent(loss, jnp.asarray(lr)), jnp.zeros(d), np.r_[0, epochs])
        gd_w = gd_w[1:]
        log_loss = jax.jit(jax.vmap(jax.vmap(loss.log_value)))
        sgd_runs = {}
        for i, (sampling, B) in enumerate((s, B) for s in SAMPLINGS for B in BATCH_SIZES):
            keys = jax.random.split(jax.random.fold_in(jax.random.key(KEY_SEED), i), seeds[sampling])
            process = dyn.SeedEnsemble(dyn.SGD(loss, jnp.asarray(lr), B, keys[0], sampling), keys)
            _, w = runs.gd_saves(process, jnp.zeros((len(keys), d)), np.r_[0, epochs * (n // B)])
            w = w[1:]  # (saves, seeds, d)
            sgd_runs[f"{sampling}/B={B}"] = {
                "sampling": sampling, "B": B, "w": w,
                "tl": np.exp(np.log(t_eff)[:, None] + np.asarray(log_loss(jnp.asarray(w)))),
            }
        return {"Z": Z, "w_hat": solution.w, "w_tilde": asy.w_tilde, "support": solution.support,
                "alpha": solution.dual[solution.support], "C": asy.direction_constant, "kappa": asy.kappa,
                "p0": p0, "lr": lr, "bounds": {f"B={B}": b for B, b in bounds.items()}, "n": n, "epochs": epochs,
                "t_eff": t_eff, "gd_w": gd_w, "gd_tl": np.exp(np.log(t_eff) + np.asarray(jax.vmap(loss.log_value)(
                    jnp.asarray(gd_w)))), "runs": sgd_runs}

    @staticmethod
    def _cov(ev, t):
        """Predicted covariance of w_SGD - w_GD at effective time t (with replacement): (eta N / t) P0."""
        return ev["lr"] * ev["n"] / t * ev["p0"]

    @staticmethod
    def _sigma(ev):
        """Predicted RMS of ||w_SGD - w_GD|| at each save (with replacement): (eta N tr P0 / t_eff)^(1/2)."""
        return np.sqrt(ev["lr"] * ev["n"] * np.trace(ev["p0"]) / ev["t_eff"])

    def check(self, ev):
        runs_, t_eff, epochs, gd_w = ev["runs"], ev["t_eff"], ev["epochs"], ev["gd_w"]
        end = -1
        cov, sigma, p0 = self._cov(ev, t_eff[end]), self._sigma(ev), ev["p0"]
        ZS, w_hat, alpha = ev["Z"][ev["support"]], ev["w_hat"], ev["alpha"]
        norm2 = w_hat @ w_hat
        rep = [r for r in runs_.values() if r["sampling"] == "replacement"]
        pooled = sum(r["w"].shape[1] for r in rep)
        deviation = {k: r["w"] - gd_w[:, None] for k, r in runs_.items()}  # w_SGD - w_GD at the same t_eff
        rep_dev = np.concatenate([deviation[k] for k, r in runs_.items() if r["sampling"] == "replacement"], axis=1)
        out = []

        # G1: with replacement, pooled over B (the noise does not depend on B), against GD at the same t_eff.
        margins = rep_dev[end] @ ZS.T
        se = float(np.min(margins.std(axis=0, ddof=1)) / np.sqrt(pooled))
        drift = float(np.linalg.norm(ZS.T @ (alpha * np.einsum("nd,de,ne->n", ZS, cov, ZS) / 2)) * np.log(t_eff[end]))
        out.append(claims.z_test(
            f"G1a support margins z_n.w_k of SGD at step k vs GD at step k B/N (same t_eff = {t_eff[end]:.3g}), "
            f"n in S, mean of {pooled} with-replacement runs (B = {BATCH_SIZES})", margins,
            np.zeros(len(ZS)), z=Z_SCORE,
            why="4 standard errors of the seed mean; the second-order drift of the mean, |sum_S alpha_n z_n "
                f"(z_n.Cov z_n)/2| log t_eff = {drift:.1e} [derived], is {drift / se:.2f} s.e.",
            note="so z_n.w_k - log k -> log(eta B/N) - log alpha_n as GD's z_n.w - log k' -> log eta - log alpha_n "
                 "(soudry2018)"))
        tl_dev = np.concatenate([r["tl"][end] for r in rep]) - ev["gd_tl"][end]
        jensen = float(alpha @ np.einsum("nd,de,ne->n", ZS, cov, ZS) / (2 * norm2))
        out.append(claims.z_test(
            f"G1b t_eff L(w_k) / ||w_hat||^2 of SGD minus GD's at t_eff = {t_eff[end]:.3g}, mean of {pooled} "
            "with-replacement runs", tl_dev / norm2, jensen, z=Z_SCORE,
            why="4 standard errors of the seed mean around the second-order (Jensen) term sum_S alpha_n z_n.Cov z_n "
                f"/ (2 ||w_hat||^2) = {jensen:.1e} [derived]",
            note=f"GD: t_eff L / ||w_hat||^2 = {ev['gd_tl'][end] / norm2:.5f} (-> 1, L = O(1/t))"))
        err_dev = np.concatenate([dyn.direction_error(r["w"][end], w_hat) for r in rep]) - \
            dyn.direction_error(gd_w[end], w_hat)
        out.append(claims.z_test(
            f"G1c direction error of SGD minus GD's at t_eff = {t_eff[end]:.3g}, mean of {pooled} with-replacement "
            "runs", err_dev, 0.0, z=Z_SCORE,
            why="4 standard errors of the seed mean; the direction error is smooth in w, so zero-mean noise "
                "shifts its mean only at O(Cov/||w||^2)",
            note=f"GD: direction error x log t_eff = {dyn.direction_error(gd_w[end], w_hat) * np.log(t_eff[end]):.4f} "
                 f"(-> C = {ev['C']:.4f} as t -> inf)"))
        decade = epochs >= epochs[end] / 10  # the last decade of t_eff, fixed by the budget
        ratio = np.sqrt(np.mean(np.sum(rep_dev[decade] ** 2, axis=-1) / sigma[decade, None] ** 2))
        spread = Z_SCORE * np.sqrt(np.trace(p0 @ p0) / (2 * pooled)) / np.trace(p0)
        out.append(claims.within(
            "G1c noise level: RMS ||w_SGD - w_GD|| / sigma(t_eff), with replacement, last decade of t_eff "
            f"(sigma(t_end) = {sigma[end]:.2e})", float(ratio), 1.0 - spread, 1.0 + spread,
            why=f"4 sd of the RMS of {pooled} Gaussian vectors with covariance prop. to P0 (one save: "
                "sqrt(tr P0^2 / (2 runs)) / tr P0); the decade's other saves only narrow it",
            note="sigma(t) = (eta N tr P0 / t_eff)^(1/2) [derived]; prediction with replacement, any B"))

        # G2: one limit (GD's) for both samplings and every B; reshuffling cancels the noise to first order.
        def z_mean(key):
            return np.linalg.norm(deviation[key][end].mean(0)) / (sigma[end] / np.sqrt(deviation[key].shape[1]))
        name = max(runs_, key=z_mean)
        out.append(claims.bound(
            f"G2 seed-mean ||<w_SGD> - w_GD|| at t_eff = {t_eff[end]:.3g} in units of sigma/sqrt(seeds), worst of "
            f"{len(runs_)} (sampling, B) ({name}, {runs_[name]['w'].shape[1]} seeds)", float(z_mean(name)), Z_SCORE,
            why="E||<w> - w_GD||^2 = sigma^2/seeds for with-replacement noise; 4 times its root (reshuffling cancels "
                "the noise to first order, so this bounds it too)"))
        window = t_eff >= t_eff[end] / 100  # the last two decades of t_eff, fixed by the budget
        shuffled = np.concatenate([deviation[k] for k, r in runs_.items() if r["sampling"] == "reshuffle"], axis=1)
        rms = np.sqrt(np.mean(np.sum(shuffled**2, axis=-1), axis=1))
        fit = fit_line(np.log(t_eff[window]), np.log(rms[window]))
        out.append(claims.within(
            "G2 reshuffling: slope of log RMS ||w_SGD - w_GD|| vs log t_eff, last two decades", fit.slope,
            -1.0 - 4 * fit.slope_stderr, -ev["kappa"] + 4 * fit.slope_stderr,
            why="the deviation obeys dr/ds = -A r + O(e^-s) [derived]: modes t^-kappa and t^-1, so a slope in "
                "[-1, -kappa] +- 4 s.e.; uncancelled noise would give -1/2",
            note=f"kappa = {ev['kappa']:.3f}; fit s.e. {fit.slope_stderr:.1e}; RMS over the "
                 f"{shuffled.shape[1]} reshuffling runs (B = {BATCH_SIZES}); at t_end RMS/sigma = "
                 f"{rms[end] / sigma[end]:.3f}"))

        # G3: eta0 B with the batch-mean update (= eta0, batch sum): direction error vs epochs independent of B.
        mean_err = np.stack([dyn.direction_error(r["w"], w_hat).mean(1) for r in rep])  # (B, saves)
        spread = (mean_err.max(0) - mean_err.min(0)) / mean_err.mean(0)
        noise = self._spread_noise(ev)
        out.append(claims.bound(
            f"G3 relative spread (max - min)/mean across B = {BATCH_SIZES} of the seed-mean direction error "
            f"at epoch {epochs[end]}", float(spread[end]), float(Z_SCORE * noise[end]),
            why="4 sd of the difference of two seed means of g.(w_SGD - w_GD), g the gradient of the direction "
                "error at the GD iterate, over GD's direction error",
            note="batch sum with eta0 B would shift log t_eff by log B: predicted spread "
                 f"{self._batch_sum_spread(ev)[end]:.2f}"))
        return out

    def _spread_noise(self, ev):
        """Predicted sd of the relative spread across B at each save: sd of the difference of two seed means
        of g.(w_SGD - w_GD) over GD's direction error (g = `direction_gradient` at the GD iterate)."""
        seeds = min(r["w"].shape[1] for r in ev["runs"].values() if r["sampling"] == "replacement")
        g = np.array([direction_gradient(w, ev["w_hat"]) for w in ev["gd_w"]])
        var = np.array([gi @ self._cov(ev, t) @ gi for gi, t in zip(g, ev["t_eff"])])
        return np.sqrt(2 * var / seeds) / dyn.direction_error(ev["gd_w"], ev["w_hat"])

    @staticmethod
    def _batch_sum_spread(ev):
        """Predicted relative spread across B if eta = eta0 B were used with the batch-SUM update (at the
        predicted iterate w_hat log(B t_eff) + w_tilde)."""
        err = np.stack([dyn.direction_error(np.log(ev["t_eff"] * B)[:, None] * ev["w_hat"] + ev["w_tilde"],
                                            ev["w_hat"]) for B in BATCH_SIZES])
        return (err.max(0) - err.min(0)) / err.mean(0)

    def figure(self, ev):
        runs_, t_eff, epochs, n = ev["runs"], ev["t_eff"], ev["epochs"], ev["n"]
        T = np.log(t_eff)
        w_hat, gd_w = ev["w_hat"], ev["gd_w"]
        colours = {B: f"C{i}" for i, B in enumerate(BATCH_SIZES)}
        styles = {"replacement": "-", "reshuffle": "--"}
        fig, axes = figures.panels(self, 5, width=4.2, height=3.6)

        ax = axes[0]
        ZS = ev["Z"][ev["support"]]
        for B in BATCH_SIZES:
            r = runs_[f"replacement/B={B}"]
            for j in range(len(ZS)):
                ax.plot(T, (r["w"] @ ZS[j]).mean(1) - np.log(epochs * (n // B)), color=colours[B],
                        ls=["-", "-."][j % 2], label=f"B={B}, n={ev['support'][j]}")
                figures.reference_line(ax, y=np.log(ev["lr"] * B / n) - np.log(ev["alpha"][j]), color=colours[B],
                                       linestyle=":", linewidth=0.8)
        figures.axes_style(ax, r"$\log t_{\mathrm{eff}}$", r"$z_n\cdot w_k - \log k$",
                           title=r"G1a: support margins; dotted: $\log(\eta B/N) - \log\alpha_n$")

        ax = axes[1]
        norm2 = w_hat @ w_hat
        for B in BATCH_SIZES:
            ax.plot(T, runs_[f"replacement/B={B}"]["tl"].mean(1) / norm2, color=colours[B], label=f"B={B}")
        ax.plot(T, ev["gd_tl"] / norm2, "k-", lw=3, alpha=0.3, label="full-batch GD")
        figures.reference_line(ax, y=1.0, label=r"$\|\hat w\|^2$")
        figures.axes_style(ax, r"$\log t_{\mathrm{eff}}$", r"$t_{\mathrm{eff}} L(w)/\|\hat w\|^2$",
                           title="G1b: seed mean, with replacement")

        ax = axes[2]
        for name, r in runs_.items():
            dev = r["w"] - gd_w[:, None]
            ax.loglog(t_eff, np.sqrt(np.mean(np.sum(dev**2, axis=-1), axis=1)), color=colours[r["B"]],
                      ls=styles[r["sampling"]], label=name)
        ax.loglog(t_eff, self._sigma(ev), "k:", lw=2, label=r"predicted $\sigma$ (replacement)")
        ax.loglog(t_eff, np.linalg.norm(gd_w - (T[:, None] * w_hat + ev["w_tilde"]), axis=1), "k-", lw=3, alpha=0.3,
                  label=r"GD $- (\hat w\log t + \tilde w)$")
        figures.axes_style(ax, r"$t_{\mathrm{eff}} = \eta\cdot$epochs", r"RMS $\|w_{SGD} - w_{GD}\|$",
                           title="G1c/G2: deviation from GD (dashed: reshuffle)")

        ax = axes[3]
        for name, r in runs_.items():
            ax.plot(T, dyn.direction_error(r["w"], w_hat).mean(1) * T, color=colours[r["B"]],
                    ls=styles[r["sampling"]], label=name)
        ax.plot(T, dyn.direction_error(gd_w, w_hat) * T, "k-", lw=3, alpha=0.3, label="full-batch GD")
        figures.reference_line(ax, y=ev["C"], linestyle=":", label=f"C = {ev['C']:.3f}")
        ax.set_ylim(0, 1.2)
        figures.axes_style(ax, r"$\log t_{\mathrm{eff}}$", r"direction error $\times\log t_{\mathrm{eff}}$",
                           title="G1c: direction error ~ C / log t")

        ax = axes[4]
        mean_err = np.stack([dyn.direction_error(runs_[f"replacement/B={B}"]["w"], w_hat).mean(1)
                             for B in BATCH_SIZES])
        ax.loglog(epochs, (mean_err.max(0) - mean_err.min(0)) / mean_err.mean(0), label="measured (batch mean)")
        ax.loglog(epochs, self._spread_noise(ev), "k:", label="predicted sd of the spread (noise)")
        ax.loglog(epochs, self._batch_sum_spread(ev), "k--", label=r"predicted, batch sum with $\eta_0 B$")
        figures.axes_style(ax, "epochs", "(max - min) / mean over B", title="G3: relative spread across B")
        for ax in axes:
            ax.legend(fontsize=6)
        fig.tight_layout()
        return fig
