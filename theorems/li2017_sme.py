"""Li, Tai, E (2017/2019): stochastic modified equations of SGD (flows.md section 7).

SGD x_{k+1} = x_k - eta grad f_gamma(x_k), f = E_gamma f_gamma, Sigma(x) = Cov_gamma[grad f_gamma(x)], time
t = k eta. The order-1 SME dX = -grad f dt + (eta Sigma)^{1/2} dW and the order-2 SME
dX = -grad[f + (eta/4)||grad f||^2] dt + (eta Sigma)^{1/2} dW are weak approximations [paper]:
max_{k eta <= T} |E psi(x_k) - E psi(X_{k eta})| <= C_T eta^order for smooth psi of polynomial growth.

Exact reference [derived]: f_gamma(x) = (x - gamma)^2/2 with gamma = +-s equally likely (E gamma = 0,
Var gamma = s^2, Sigma = s^2 constant), x0 = s = 1, T = 1. Both SGD and Euler-Maruyama on the linear SMEs
are linear recursions x' = c x + noise of variance v, whose moments are exact (`linear_recursion_moments`);
SME-1 is the OU process with rate a = 1, SME-2 with a = 1 + eta/2 (mean e^{-at} x0, variance
eta s^2 (1 - e^{-2at})/(2a)). The weak error uses psi(x) = x and x^2.
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynamics import StochasticModifiedEquation, minibatch_noise_factor, simulate
from dynamics.errors import InputError
from dynamics.predictions import loglog_slope, require_step_below

from .harness import Claim, Theorem

X0, SPREAD, HORIZON = 1.0, 1.0, 1.0
ETAS = np.array([0.1, 0.05, 0.025, 0.0125])
ORDERS = (1, 2)
#: Euler-Maruyama step as a fraction of eta (flows.md: the SDE step must be << eta).
DT_FRACTION = 1.0 / 50.0
SEED = 0
MONTE_CARLO = {"quick": {"etas": ETAS[:1], "paths": 10_000}, "full": {"etas": ETAS, "paths": 200_000}}
#: Monte-Carlo acceptance in standard errors (plus the exactly computed Euler-Maruyama bias).
Z_ACCEPT = 4.0


def example_loss(x, i):
    """f_gamma_i(x) = ||x - gamma_i||^2/2 with gamma = (+s, -s); x has shape (1,)."""
    return 0.5 * jnp.sum((x - SPREAD * jnp.array([1.0, -1.0])[i]) ** 2)


def mean_loss(x):
    """f = E_gamma f_gamma = (x^2 + s^2)/2."""
    return 0.5 * (example_loss(x, 0) + example_loss(x, 1))


def linear_recursion_moments(contraction, noise_variance, steps, x0):
    """Mean and variance after k steps of x' = c x + xi, E xi = 0, Var xi = v, x(0) = x0 deterministic:
    c^k x0 and v (1 - c^{2k})/(1 - c^2)."""
    c = np.asarray(contraction, float)
    return c**steps * x0, noise_variance * (1.0 - c ** (2 * steps)) / (1.0 - c**2)


def sgd_moments(eta, steps):
    """SGD on f_gamma: x' = (1 - eta) x + eta gamma, so c = 1 - eta, v = eta^2 s^2."""
    return linear_recursion_moments(1.0 - eta, eta**2 * SPREAD**2, steps, X0)


def sme_rate(eta, order):
    """Drift rate a of the linear SME: grad f = x, and (eta/4)||grad f||^2 adds (eta/2) x at order 2."""
    return 1.0 + (eta / 2.0 if order == 2 else 0.0)


def sme_moments(eta, order, t):
    """Closed-form OU moments of dX = -a X dt + sqrt(eta) s dW: e^{-at} x0 and eta s^2 (1 - e^{-2at})/(2a)."""
    a = sme_rate(eta, order)
    return np.exp(-a * t) * X0, eta * SPREAD**2 * (1.0 - np.exp(-2.0 * a * t)) / (2.0 * a)


def euler_maruyama_moments(eta, order, dt, steps):
    """Exact moments of Euler-Maruyama on the linear SME: c = 1 - a dt, v = eta s^2 dt."""
    return linear_recursion_moments(1.0 - sme_rate(eta, order) * dt, eta * SPREAD**2 * dt, steps, X0)


def weak_error(eta, order):
    """max over k eta <= T and psi in {x, x^2} of |E psi(x_k) - E psi(X_{k eta})| (exact, no sampling)."""
    k = np.arange(int(round(HORIZON / eta)) + 1)
    mean, var = sgd_moments(eta, k)
    sme_mean, sme_var = sme_moments(eta, order, k * eta)
    return max(np.abs(mean - sme_mean).max(), np.abs(mean**2 + var - sme_mean**2 - sme_var).max())


def monte_carlo(eta, order, paths, key):
    """X_T for ``paths`` Euler-Maruyama paths of the order-``order`` SME; returns (samples, dt, steps)."""
    noise = minibatch_noise_factor(example_loss, 2, 1)
    process = StochasticModifiedEquation(mean_loss, eta, noise, key, order=order, dt=eta * DT_FRACTION,
                                         paths=paths)
    traj = simulate(process, jnp.array([X0]), np.array([0.0, HORIZON]))
    return np.asarray(traj.ys)[-1, :, 0], process.dt, traj.stats["steps"]


class LiTaiE2017(Theorem):
    id = "li2017_sme"
    reference = ("Li, Tai, E: Stochastic modified equations and adaptive stochastic gradient algorithms, "
                 "ICML 2017; JMLR 2019")
    statement = (
        "SGD with learning rate eta is a weak approximation of the stochastic modified equation dX = -grad f dt "
        "+ (eta Sigma)^{1/2} dW of order 1, and of dX = -grad[f + (eta/4)||grad f||^2] dt + (eta Sigma)^{1/2} dW "
        "of order 2: expectations of smooth test functions agree up to C_T eta and C_T eta^2 on [0, T].")
    hypotheses = (
        "f_gamma smooth with Lipschitz gradients and bounded moments: quadratic f_gamma(x) = (x - gamma)^2/2, "
        "gamma = +-s, whose gradient noise Sigma = s^2 is constant (checked on the noise factor).",
        "eta < 1, so the SGD contraction 1 - eta lies in (0, 1).",
        "The Euler-Maruyama step dt = eta/50 << eta; its O(dt) bias is computed exactly and added to the "
        "Monte-Carlo tolerance.",
    )

    def run(self, budget="quick"):
        require_step_below(ETAS.max(), 1.0, what="SGD on the quadratic f_gamma")
        noise = minibatch_noise_factor(example_loss, 2, 1)
        sigma = np.asarray(jax.vmap(lambda x: noise(x) @ noise(x).T)(jnp.linspace(-2.0, 2.0, 5)[:, None]))
        if not np.allclose(sigma, SPREAD**2, rtol=1e-12, atol=0.0):
            raise InputError(f"the closed forms need a constant gradient covariance s^2; got {sigma.ravel()}")
        evidence = {"etas": ETAS, "sigma_error": float(np.max(np.abs(sigma - SPREAD**2)))}
        for order in ORDERS:
            evidence[f"weak_error_{order}"] = np.array([weak_error(eta, order) for eta in ETAS])

        config = MONTE_CARLO[budget]
        evidence["mc_etas"] = config["etas"]
        keys = jax.random.split(jax.random.PRNGKey(SEED), len(config["etas"]) * len(ORDERS))
        for i, eta in enumerate(config["etas"]):
            for j, order in enumerate(ORDERS):
                samples, dt, steps = monte_carlo(eta, order, config["paths"], keys[i * len(ORDERS) + j])
                require_step_below(dt, eta / 10.0, what="Euler-Maruyama step (dt << eta)")
                if abs(steps * dt - HORIZON) > 1e-12:
                    raise InputError(f"T/dt = {HORIZON / dt} must be an integer for the exact Euler-Maruyama moments")
                evidence[f"mc_{eta}_{order}"] = samples
                evidence[f"em_{eta}_{order}"] = np.array(euler_maruyama_moments(eta, order, dt, steps))
        return evidence

    def check(self, ev):
        etas = ev["etas"]
        claims = [Claim("minibatch_noise_factor: max |M M^T - s^2| over x in [-2, 2]", ev["sigma_error"], 1e-14,
                        kind="max", note="Sigma = Cov_gamma(x - gamma) = Var gamma = s^2 for every x")]
        for order, spec in zip(ORDERS, ("1.9e-2 -> 2.3e-3", "3.6e-3 -> 5.4e-5")):
            errors = ev[f"weak_error_{order}"]
            fit = loglog_slope(etas, errors)
            claims.append(Claim(
                f"SME-{order}: slope of log(weak error) vs log eta (exact moments)", fit.slope, float(order),
                tolerance=0.1, note=f"max over k eta <= {HORIZON} of |E x_k - E X| and |E x_k^2 - E X^2|: "
                f"{errors[0]:.2e} -> {errors[-1]:.2e} over eta {etas[0]} -> {etas[-1]} (flows.md: {spec}, "
                "slope within 0.1)"))
        for eta in ev["mc_etas"]:
            for order in ORDERS:
                x = ev[f"mc_{eta}_{order}"]
                paths = x.size
                mean, var = x.mean(), x.var(ddof=1)
                se_mean = np.sqrt(var / paths)
                se_var = np.sqrt((np.mean((x - mean) ** 4) - var**2) / paths)
                exact_mean, exact_var = sme_moments(eta, order, HORIZON)
                bias_mean, bias_var = np.abs(ev[f"em_{eta}_{order}"] - np.array([exact_mean, exact_var]))
                for name, measured, exact, se, bias in (("mean", mean, exact_mean, se_mean, bias_mean),
                                                        ("variance", var, exact_var, se_var, bias_var)):
                    claims.append(Claim(
                        f"SME-{order} eta={eta}: Monte-Carlo {name} of X_T vs closed form", float(measured),
                        float(exact), tolerance=float(Z_ACCEPT * se + bias),
                        note=f"{paths} Euler-Maruyama paths (dt = eta/{1 / DT_FRACTION:.0f}); tolerance "
                             f"{Z_ACCEPT:.0f} standard errors ({se:.1e} each) + the exact Euler-Maruyama bias "
                             f"{bias:.1e}"))
            x = ev[f"mc_{eta}_2"]
            se = np.sqrt(x.var(ddof=1) / x.size)
            bias = abs(ev[f"em_{eta}_2"][0] - sme_moments(eta, 2, HORIZON)[0])
            claims.append(Claim(
                f"eta={eta}: |MC mean of SME-2 - closed-form SME-1 mean|", float(abs(x.mean() - sme_moments(
                    eta, 1, HORIZON)[0])), float(Z_ACCEPT * se + bias), kind="min",
                note="power check: the order-1 prediction lies outside the acceptance band of the order-2 sample "
                f"(drift correction e^{{-T}}(1 - e^{{-eta T/2}}) = "
                f"{sme_moments(eta, 1, HORIZON)[0] - sme_moments(eta, 2, HORIZON)[0]:.2e}), so the "
                f"{Z_ACCEPT:.0f}-SE agreements above can tell the orders apart"))
        return claims

    def figure(self, ev):
        etas = ev["etas"]
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
        ax = axes[0]
        for i, order in enumerate(ORDERS):
            errors = ev[f"weak_error_{order}"]
            ax.loglog(etas, errors, "o-", color=f"C{i}", label=f"SME-{order} (exact moments)")
            ax.loglog(etas, errors[-1] * (etas / etas[-1]) ** order, "--", lw=1, color=f"C{i}",
                      label=f"slope {order}")
        ax.set(xlabel="learning rate eta", ylabel="max_{k eta <= T} |E psi(x_k) - E psi(X_{k eta})|, psi = x, x^2",
               title="weak error vs SGD, T = 1 (exact)")
        ax.legend(fontsize=8)
        grid = np.linspace(etas.min(), etas.max(), 100)
        mc_etas = ev["mc_etas"]
        for ax, moment, name in zip(axes[1:], (0, 1), ("E X_T", "Var X_T / eta")):
            scale = (lambda eta: 1.0) if moment == 0 else (lambda eta: 1.0 / eta)   # Var ~ eta: show Var/eta
            for i, order in enumerate(ORDERS):
                ax.plot(grid, np.broadcast_to(sme_moments(grid, order, HORIZON)[moment], grid.shape) * scale(grid),
                        color=f"C{i}", lw=1, label=f"SME-{order} closed form")
                mc = [ev[f"mc_{eta}_{order}"] for eta in mc_etas]
                values = [x.mean() if moment == 0 else x.var(ddof=1) for x in mc]
                se = [np.sqrt(x.var(ddof=1) / x.size) if moment == 0 else
                      np.sqrt((np.mean((x - x.mean()) ** 4) - x.var(ddof=1) ** 2) / x.size) for x in mc]
                ax.errorbar(mc_etas * (1 + 0.01 * (2 * i - 1)), np.array(values) * scale(mc_etas),
                            yerr=Z_ACCEPT * np.array(se) * scale(mc_etas), fmt="o", color=f"C{i}", capsize=3,
                            label=f"SME-{order} Euler-Maruyama, +-{Z_ACCEPT:.0f} SE ({mc[0].size} paths)")
            ax.plot(etas, [sgd_moments(eta, int(round(HORIZON / eta)))[moment] * scale(eta) for eta in etas], "ks",
                    ms=4, label="SGD (exact)")
            ax.set(xlabel="learning rate eta", ylabel=name, title=f"{name} at T = {HORIZON:g}: SDE samples vs "
                   "closed forms")
            ax.legend(fontsize=7)
        fig.tight_layout()
        return fig
