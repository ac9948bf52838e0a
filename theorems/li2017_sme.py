"""Li, Tai, E (2017/2019): stochastic modified equations of SGD (docs/flows.md section 7).

SGD x_{k+1} = x_k - eta grad f_gamma(x_k), f = E_gamma f_gamma, Sigma(x) = Cov_gamma[grad f_gamma(x)], time
t = k eta. The order-1 SME dX = -grad f dt + (eta Sigma)^{1/2} dW and the order-2 SME
dX = -grad[f + (eta/4)||grad f||^2] dt + (eta Sigma)^{1/2} dW are weak approximations [paper]:
max_{k eta <= T} |E psi(x_k) - E psi(X_{k eta})| <= C_T eta^order for smooth psi of polynomial growth.

Problem: f_gamma(x) = (x - gamma)^2/2 with E gamma = 0, Var gamma = s^2, so f = (x^2 + s^2)/2 and Sigma = s^2 for
every law of gamma; x0 = s = 1, T = 1. The weak orders are measured on runs: SGD (Monte Carlo, Gaussian gamma) against
the SME sampled exactly (its Ornstein-Uhlenbeck transitions over each step, SME-1 rate a = 1, SME-2 rate
a = 1 + eta/2), the two coupled by common Brownian increments (gamma_k = s dW_k / eta over the k-th step), which
leaves each law unchanged and cuts the variance of psi(x_K) - psi(X_T) from O(eta) to O(eta^3), so that the
O(eta^2) weak error of the order-2 SME is resolved with 3e5 paths. The weak error is taken at T for psi = x and x^2;
its slope against eta is the measured order. Exact references [derived]: both SGD and the SMEs are linear, so their
first two moments have closed forms (SGD: c = 1 - eta, mean c^k x0, variance eta^2 s^2 (1 - c^2k)/(1 - c^2); SME:
mean e^{-at} x0, variance eta s^2 (1 - e^{-2at})/(2a)); the Monte-Carlo weak errors are z-tested against them.

The library's `StochasticModifiedEquation` (Euler-Maruyama, noise factor from the two-point law gamma = +-s by
`minibatch_noise_factor`, the same Sigma = s^2) is checked against the exact law of its Euler-Maruyama chain.
"""

import jax
import jax.numpy as jnp
import numpy as np

from dynamics import StochasticModifiedEquation, minibatch_noise_factor, simulate
from dynamics.errors import InputError
from dynamics.models.toys import two_point_quadratic
from dynamics.predictions import require_step_below

from .common import by_budget, claims, figures
from .harness import Theorem

X0, SPREAD, HORIZON = 1.0, 1.0, 1.0
ETAS = np.array([0.1, 0.05, 0.025, 0.0125])
ORDERS = (1, 2)
TESTS = ("x", "x^2")
SEED = 0
#: coupled SGD / exact-SME Monte Carlo: paths per eta, stored as BATCHES batch means (i.i.d., the same s.e.).
COUPLED = {"quick": 300_000, "full": 2_000_000}
BATCHES = 1000
#: library SME (Euler-Maruyama) consistency: step dt = eta * DT_FRACTION, paths, etas.
DT_FRACTION = 1.0 / 10.0
LIBRARY = {"quick": {"etas": ETAS[:1], "paths": 10_000}, "full": {"etas": ETAS, "paths": 100_000}}
Z_ACCEPT = 4.0
Z_WHY = "4 standard errors: a Gaussian false alarm rate of 6e-5 per component (means of >= 300 paths)"


#: f_gamma_i(x) = ||x - gamma_i||^2/2 with gamma = (+s, -s), x of shape (1,), and f = E_gamma f_gamma = (x^2 + s^2)/2.
example_loss, mean_loss = two_point_quadratic(SPREAD)


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


def exact_weak_errors(eta, order):
    """E psi(x_K) - E psi(X_T) for psi = x, x^2 (K = T/eta), from the closed-form moments."""
    mean, var = sgd_moments(eta, int(round(HORIZON / eta)))
    sme_mean, sme_var = sme_moments(eta, order, HORIZON)
    return np.array([mean - sme_mean, mean**2 + var - sme_mean**2 - sme_var])


def euler_maruyama_moments(eta, order, dt, steps):
    """Exact moments of Euler-Maruyama on the linear SME: c = 1 - a dt, v = eta s^2 dt."""
    return linear_recursion_moments(1.0 - sme_rate(eta, order) * dt, eta * SPREAD**2 * dt, steps, X0)


def coupled_weak_errors(eta, paths, rng):
    """Batch means, shape (BATCHES, orders, tests), of psi(x_K) - psi(X_T): SGD x (Gaussian gamma) and the exact
    SME-1 and SME-2 sampled at t = k eta, coupled by common Brownian increments (module docstring).

    Over one step [k eta, (k + 1) eta] the Brownian increment dW = sqrt(eta) xi and the OU noise integral
    I = int e^{-a((k+1) eta - u)} dW_u are jointly Gaussian: I = c xi + d zeta with c = Cov(I, dW)/sqrt(eta) =
    (1 - e^{-a eta})/(a sqrt(eta)), d^2 = Var I - c^2, Var I = (1 - e^{-2 a eta})/(2a), xi and zeta independent
    standard normals. SGD uses gamma_k = s xi_k; the SME steps X' = e^{-a eta} X + sqrt(eta) s I."""
    steps = int(round(HORIZON / eta))
    rates = [sme_rate(eta, order) for order in ORDERS]
    coefficients = []
    for a in rates:
        c = -np.expm1(-a * eta) / (a * np.sqrt(eta))
        coefficients.append((np.exp(-a * eta), c, np.sqrt(-np.expm1(-2.0 * a * eta) / (2.0 * a) - c * c)))
    x = np.full(paths, X0)
    sme = [np.full(paths, X0) for _ in rates]
    for _ in range(steps):
        xi, zeta = rng.standard_normal(paths), rng.standard_normal(paths)
        x -= eta * (x - SPREAD * xi)                               # grad f_gamma(x) = x - gamma, gamma = s xi
        for X, (decay, c, d) in zip(sme, coefficients):
            X *= decay
            X += np.sqrt(eta) * SPREAD * (c * xi + d * zeta)
    out = np.empty((BATCHES, len(ORDERS), len(TESTS)))
    for j, X in enumerate(sme):
        out[:, j, 0] = (x - X).reshape(BATCHES, -1).mean(axis=1)
        out[:, j, 1] = (x * x - X * X).reshape(BATCHES, -1).mean(axis=1)
    return out


def library_sme(eta, order, paths, key):
    """X_T for ``paths`` Euler-Maruyama paths of the library's order-``order`` SME; returns (samples, dt, steps)."""
    noise = minibatch_noise_factor(example_loss, 2, 1)
    process = StochasticModifiedEquation(mean_loss, eta, noise, key, order=order, dt=eta * DT_FRACTION,
                                         paths=paths)
    traj = simulate(process, jnp.array([X0]), np.array([0.0, HORIZON]))
    return np.asarray(traj.ys)[-1, :, 0], process.dt, traj.stats["steps"]


def slope_standard_error(etas, values, errors):
    """Standard error of the least-squares slope of log|values| on log eta from independent per-point standard
    errors (delta method: Var log|v| = (s.e./v)^2)."""
    x = np.log(etas) - np.log(etas).mean()
    weights = x / np.sum(x**2)
    return float(np.sqrt(np.sum((weights * errors / values) ** 2)))


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
        "E gamma = 0, Var gamma = s^2 (Gaussian gamma for the SGD runs, gamma = +-s for the library's noise factor), "
        "so Sigma = s^2 is constant (checked on the noise factor).",
        "eta < 1, so the SGD contraction 1 - eta lies in (0, 1); T/eta and T/dt integers.",
        "The weak errors are resolved: the coupled Monte Carlo's standard error is below the weak error at every eta "
        "(the slope's standard error is propagated into the claims' notes).",
    )
    seed = SEED

    def run(self, budget="quick"):
        require_step_below(ETAS.max(), 1.0, what="SGD on the quadratic f_gamma")
        noise = minibatch_noise_factor(example_loss, 2, 1)
        sigma = np.asarray(jax.vmap(lambda x: noise(x) @ noise(x).T)(jnp.linspace(-2.0, 2.0, 5)[:, None]))
        if not np.allclose(sigma, SPREAD**2, rtol=1e-12, atol=0.0):
            raise InputError(f"the closed forms need a constant gradient covariance s^2; got {sigma.ravel()}")
        evidence = {"etas": ETAS, "sigma_error": float(np.max(np.abs(sigma - SPREAD**2)))}

        paths = by_budget(budget, COUPLED["quick"], COUPLED["full"])
        rng = np.random.default_rng(SEED)
        evidence["coupled_paths"] = paths
        # batch means of psi(x_K) - psi(X_T), shape (batches, order, eta, psi)
        evidence["coupled"] = np.stack([coupled_weak_errors(eta, paths, rng) for eta in ETAS], axis=2)
        evidence["exact"] = np.array([[exact_weak_errors(eta, order) for eta in ETAS] for order in ORDERS])

        config = by_budget(budget, LIBRARY["quick"], LIBRARY["full"])
        evidence["library_etas"] = config["etas"]
        keys = jax.random.split(jax.random.PRNGKey(SEED), len(config["etas"]) * len(ORDERS))
        for i, eta in enumerate(config["etas"]):
            for j, order in enumerate(ORDERS):
                samples, dt, steps = library_sme(eta, order, config["paths"], keys[i * len(ORDERS) + j])
                if abs(steps * dt - HORIZON) > 1e-12:
                    raise InputError(f"T/dt = {HORIZON / dt} must be an integer for the exact Euler-Maruyama moments")
                evidence[f"library_{eta}_{order}"] = samples
                evidence[f"em_{eta}_{order}"] = np.array(euler_maruyama_moments(eta, order, dt, steps))
        return evidence

    def check(self, ev):
        etas, coupled, exact = ev["etas"], ev["coupled"], ev["exact"]
        means = coupled.mean(axis=0)                                             # (order, eta, psi)
        errors = coupled.std(axis=0, ddof=1) / np.sqrt(coupled.shape[0])
        out = [claims.bound("minibatch_noise_factor: max |M M^T - s^2| over x in [-2, 2]", ev["sigma_error"], 1e-14,
                            "Sigma = Var gamma = s^2 exactly; centring two O(1) gradients rounds to a few ulps",
                            role="consistency", note="the library's noise factor for gamma = +-s")]
        for j, order in enumerate(ORDERS):
            for p, test in enumerate(TESTS):
                measured, se = np.abs(means[j, :, p]), errors[j, :, p]
                slope_se = slope_standard_error(etas, measured, se)
                exact_slope = float(np.polyfit(np.log(etas), np.log(np.abs(exact[j, :, p])), 1)[0])
                out.append(claims.slope(
                    f"SME-{order}, psi = {test}: slope of log |E psi(x_K) - E psi(X_T)| vs log eta (Monte Carlo)",
                    etas, measured, float(order), 0.15,
                    f"the exact moments [derived] put the pre-asymptotic slope on this ladder at {exact_slope:.3f} "
                    f"({abs(exact_slope - order):.3f} off); 4 Monte-Carlo s.e. of the slope add {4 * slope_se:.3f}; "
                    f"0.15 covers both and excludes orders {order} +- 1",
                    note=f"{ev['coupled_paths']} coupled SGD / exact-SME paths per eta; weak errors "
                         f"{measured[0]:.2e} -> {measured[-1]:.2e} (s.e. {se[0]:.1e} -> {se[-1]:.1e})"))
        for j, order in enumerate(ORDERS):
            out.append(claims.z_test(
                f"SME-{order}: Monte-Carlo weak errors (psi = x, x^2; every eta) vs the exact moment differences",
                coupled[:, j].reshape(coupled.shape[0], -1), exact[j].reshape(-1), Z_WHY, z=Z_ACCEPT,
                role="consistency", note=f"{BATCHES} batch means of {ev['coupled_paths'] // BATCHES} paths; checks "
                "the coupled samplers against the closed forms"))
        for order in ORDERS:
            samples, expected = [], []
            for eta in ev["library_etas"]:
                x, em = ev[f"library_{eta}_{order}"], ev[f"em_{eta}_{order}"]
                samples += [x, (x - em[0]) ** 2]
                expected += [em[0], em[1]]
            out.append(claims.z_test(
                f"library SME-{order} (Euler-Maruyama, dt = eta/{1 / DT_FRACTION:.0f}): mean and variance of X_T vs "
                "the exact Euler-Maruyama moments", np.stack(samples, axis=1), np.array(expected), Z_WHY,
                z=Z_ACCEPT, role="consistency",
                note=f"eta in {np.asarray(ev['library_etas']).tolist()}; {samples[0].size} paths; the chain's O(dt) "
                     "bias from the SME is part of the exact expectation"))
        return out

    def figure(self, ev):
        etas, coupled, exact = ev["etas"], ev["coupled"], ev["exact"]
        means = coupled.mean(axis=0)
        errors = coupled.std(axis=0, ddof=1) / np.sqrt(coupled.shape[0])
        fig, axes = figures.panels(self, 3, width=5.4, height=4.6, title="SGD vs its stochastic modified equations, "
                                   r"$f_\gamma = (x - \gamma)^2/2$, T = 1")
        for ax, p, test in zip(axes[:2], range(len(TESTS)), (r"$\psi = x$", r"$\psi = x^2$")):
            for j, order in enumerate(ORDERS):
                ax.errorbar(etas, np.abs(means[j, :, p]), yerr=Z_ACCEPT * errors[j, :, p], fmt="o", color=f"C{j}",
                            capsize=3, label=rf"SME-{order}: Monte Carlo, $\pm{Z_ACCEPT:.0f}$ s.e.")
                ax.plot(etas, np.abs(exact[j, :, p]), "-", lw=1, color=f"C{j}", label=f"SME-{order}: exact moments")
                ax.plot(etas, np.abs(exact[j, -1, p]) * (etas / etas[-1]) ** order, ":", lw=1, color="k")
            figures.axes_style(ax, r"learning rate $\eta$", r"$|\mathbb{E}\psi(x_K) - \mathbb{E}\psi(X_T)|$",
                               logx=True, logy=True, title=f"weak error, {test} (dotted: $\\eta$, $\\eta^2$)")
            ax.legend(fontsize=7)
        ax = axes[2]
        grid = np.linspace(etas.min(), etas.max(), 100)
        for j, order in enumerate(ORDERS):
            ax.plot(grid, np.broadcast_to(sme_moments(grid, order, HORIZON)[0], grid.shape), color=f"C{j}", lw=1,
                    label=f"SME-{order} (exact)")
            lib = [ev[f"library_{eta}_{order}"] for eta in ev["library_etas"]]
            ax.errorbar(np.asarray(ev["library_etas"]) * (1 + 0.01 * (2 * j - 1)), [x.mean() for x in lib],
                        yerr=[Z_ACCEPT * x.std(ddof=1) / np.sqrt(x.size) for x in lib], fmt="s", color=f"C{j}",
                        capsize=3, label=f"library SME-{order} (Euler-Maruyama)")
        ax.plot(etas, [sgd_moments(eta, int(round(HORIZON / eta)))[0] for eta in etas], "ks", ms=4,
                label="SGD (exact)")
        figures.axes_style(ax, r"learning rate $\eta$", r"$\mathbb{E}\,X_T$", title="mean at T = 1")
        ax.legend(fontsize=7)
        return fig
