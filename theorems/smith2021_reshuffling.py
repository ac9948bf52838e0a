"""Smith, Dherin, Barrett, De (2021): the modified loss of SGD with random reshuffling (docs/flows.md section 3).

Setup: N examples, batch size B, m = N/B batches of a fixed partition, batch-mean losses C_k,
C = (1/m) sum_k C_k. One epoch: w_{j+1} = w_j - eps grad C_{sigma(j)}(w_j), j = 0..m-1, sigma a
uniformly random order. Over the orders [paper; derived]

    E_sigma[w_m] = w(m eps) + O(m^3 eps^3),   w' = -grad C_SGD,
    C_SGD = C + (eps/(4m)) sum_k ||grad C_k||^2,

whereas gradient flow on C and the GD modified flow on C + (eps/4)||grad C||^2 (IGR) miss an
O(eps^2) term per epoch. Averaged over random partitions (sampling without replacement),
E[(1/m) sum_k ||grad C_k - grad C||^2] = (N - B)/(B (N - 1)) Gamma, Gamma = (1/N) sum_i ||grad C_i -
grad C||^2, so E[C_SGD] = C + (eps/4)||grad C||^2 + (eps/4)(N - B)/(B(N - 1)) Gamma.

Data: linear regression C_i(w) = (x_i.w - y_i)^2/2 in R^3, dataset "flows_reshuffling_regression" (the first N
rows of a fixed 8-example set); w(0) = 0. The epochs are enumerated exactly (all m! orders of the partition
{0,1}, {2,3}, {4,5}); no Monte Carlo. The experiment is exact and tiny, so the quick and full budgets run the
same thing.
"""

import itertools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from dynamics import (GradientFlow, gradient_noise, igr_loss, partition_averaged_modified_loss,
                      reshuffling_modified_loss, simulate)
from dynamics.predictions import require_step_below

from .common import claims, datasets, figures
from .harness import Theorem

DATA_SEED, DIM = 0, 3
N, BATCH = 6, 2
EPS = np.array([0.04, 0.02, 0.01, 0.005])
#: (N, B) pairs whose partitions are all enumerated for the partition-average identities.
PARTITION_CASES = ((6, 2), (6, 3), (8, 2), (8, 4))
#: (name, mathtext label, predicted order of the epoch error, what the flow misses).
FLOWS = (("GF on C", r"GF on $C$", 2, "the whole O(eps^2) epoch drift"),
         ("IGR: C + (eps/4)|grad C|^2", r"IGR: $C + \frac{\epsilon}{4}\|\nabla C\|^2$", 2,
          "the O(eps^2) minibatch-variance part of the drift"),
         ("C_SGD", r"$\tilde C_{SGD}$", 3, "nothing at O(eps^2): the mean over orders is matched to O(m^3 eps^3)"))
FLOW_TOL = {"rtol": 1e-13, "atol": 1e-15}
#: BEA regime (docs/flows.md section 1): eps * lambda_max(grad^2 C_k) below this for every batch.
STEP_FRACTION = 0.1
#: exact identities summed over at most 105 partitions of O(1) terms: float64 rounding is ~1e-14.
IDENTITY_TOL = 1e-12


def batch_loss(X, y, idx):
    """C_k(w) = (1/B) sum_{i in idx} (x_i.w - y_i)^2 / 2 (idx may be traced)."""
    return lambda w: 0.5 * jnp.mean((X[idx] @ w - y[idx]) ** 2)


def partitions(n, b):
    """All partitions of range(n) into blocks of size b, as an int array (P, n/b, b); P = n!/((b!)^(n/b) (n/b)!)."""
    def split(rest):
        if not rest:
            yield ()
            return
        first, others = rest[0], rest[1:]
        for mates in itertools.combinations(others, b - 1):
            left = tuple(i for i in others if i not in mates)
            for tail in split(left):
                yield ((first, *mates),) + tail

    return np.array(list(split(tuple(range(n)))))


def epoch_endpoints(X, y, batches, w0, eps):
    """Endpoints of one SGD epoch for every eps and each of the m! orders of the batches, shape
    (eps, orders, d): hand-written least-squares gradients, one compiled scan vmapped over both."""
    Xb, yb = jnp.asarray(X[batches]), jnp.asarray(y[batches])
    orders = jnp.array(list(itertools.permutations(range(len(batches)))))

    def epoch(lr, order):
        def step(w, k):
            return w - lr * Xb[k].T @ (Xb[k] @ w - yb[k]) / Xb.shape[1], None

        return jax.lax.scan(step, jnp.asarray(w0), order)[0]

    over_orders = jax.vmap(epoch, (None, 0))
    return np.asarray(jax.jit(jax.vmap(over_orders, (0, None)))(jnp.asarray(eps), orders))


def flow_endpoints(modified, w0, eps, m):
    """w(m eps) of the gradient flow of ``modified(eps)`` for each eps, one compilation for all eps:
    the state is (w, eps) and eps enters through stop_gradient, so its own field is exactly zero."""
    d = len(w0)
    flow = GradientFlow(lambda z: modified(jax.lax.stop_gradient(z[d]))(z[:d]))
    ends = []
    for e in eps:
        z = np.asarray(simulate(flow, np.r_[w0, e], np.array([0.0, m * e]), solver=diffrax.Dopri8(),
                                **FLOW_TOL).ys)[-1]
        ends.append(z[:d])
    return np.array(ends)


def partition_identities(n, b, eps, points):
    """Enumerate all partitions of n examples into batches of size b, at each point w:

    variance: (avg over partitions of (1/m) sum_k ||grad C_k - grad C||^2 (numpy), (N-B)/(B(N-1)) Gamma (autodiff))
    modified: (avg over partitions of reshuffling_modified_loss - C, partition_averaged_modified_loss - C)
    """
    X, y = datasets.dataset("flows_reshuffling_regression", seed=DATA_SEED, n=n)
    parts = partitions(n, b)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def example_loss(w, i):
        return 0.5 * (Xj[i] @ w - yj[i]) ** 2

    full = batch_loss(Xj, yj, jnp.arange(n))
    noise = gradient_noise(example_loss, n)
    averaged = partition_averaged_modified_loss(example_loss, n, b, eps)

    def reshuffled(w, part):
        return reshuffling_modified_loss([batch_loss(Xj, yj, idx) for idx in part], eps)(w)

    @jax.jit
    @jax.vmap
    def dynamics_side(w):                                            # one compilation per (n, b)
        enumerated = jnp.mean(jax.vmap(reshuffled, (None, 0))(w, jnp.asarray(parts)))
        return noise(w)[1], enumerated - full(w), averaged(w) - full(w)

    gamma, enumerated_modified, averaged_modified = (np.asarray(a) for a in dynamics_side(jnp.asarray(points)))
    grads = X[None] * (points @ X.T - y)[:, :, None]                 # per-example gradients, (points, n, d)
    spread = grads[:, parts].mean(axis=3) - grads.mean(axis=1)[:, None, None]   # grad C_k - grad C, (points, P, m, d)
    enumerated_variance = np.mean(np.sum(spread**2, axis=3), axis=(1, 2))
    factor = (n - b) / (b * (n - 1))
    rows = np.stack([enumerated_variance, factor * gamma, enumerated_modified, averaged_modified], axis=1)
    return len(parts), rows


class Smith2021(Theorem):
    id = "smith2021_reshuffling"
    reference = ("Smith, Dherin, Barrett, De: On the origin of implicit regularization in stochastic gradient "
                 "descent, ICLR 2021")
    statement = (
        "For SGD with random reshuffling (m batches of a fixed partition, learning rate eps), the mean over "
        "orders of the iterate after one epoch follows the gradient flow of C_SGD = C + (eps/(4m)) sum_k "
        "||grad C_k||^2 up to O(m^3 eps^3), while gradient flow on C and the GD modified loss C + (eps/4)"
        "||grad C||^2 are only O(eps^2) accurate. Averaged over random partitions, C_SGD = C + (eps/4)||grad C||^2 "
        "+ (eps/4)(N - B)/(B(N - 1)) Gamma: SGD implicitly penalizes the minibatch gradient variance.")
    hypotheses = (
        "Smooth batch losses (linear least squares) and a step in the backward-error-analysis regime: "
        f"eps * max_k lambda_max(grad^2 C_k) < {STEP_FRACTION} for every eps tested.",
        "Batches of a fixed partition visited in a uniformly random order without replacement; the statement "
        "is about the mean over orders after one epoch, computed exactly by enumerating all m! orders.",
        "B divides N (partitions into equal batches).",
    )
    seed = DATA_SEED

    def run(self, budget="quick"):
        X, y = datasets.dataset("flows_reshuffling_regression", seed=DATA_SEED, n=N)
        m = N // BATCH
        batches = np.arange(N).reshape(m, BATCH)
        curvature = max(np.linalg.eigvalsh(X[k].T @ X[k] / BATCH).max() for k in batches)
        require_step_below(EPS.max(), STEP_FRACTION / curvature, what="SGD epoch (BEA regime)")
        w0 = np.zeros(DIM)
        order_ends = epoch_endpoints(X, y, batches, w0, EPS)
        mean_end = order_ends.mean(axis=1)                         # exact E_sigma w_m

        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        losses = [batch_loss(Xj, yj, k) for k in batches]
        full = batch_loss(Xj, yj, jnp.arange(N))
        models = (lambda eps: full, lambda eps: igr_loss(full, eps),
                  lambda eps: reshuffling_modified_loss(losses, eps))
        ends = [flow_endpoints(model, w0, EPS, m) for model in models]
        evidence = {
            "eps": EPS, "m": m, "curvature": curvature,
            "errors": np.array([np.linalg.norm(e - mean_end, axis=1) for e in ends]),            # (flow, eps)
            "order_errors": np.linalg.norm(order_ends - ends[2][:, None, :], axis=2),            # (eps, orders)
        }
        points = np.stack([np.zeros(DIM), datasets.dataset("flows_normal_points", seed=DATA_SEED + 1, shape=DIM)])
        for n, b in PARTITION_CASES:
            count, rows = partition_identities(n, b, EPS[0], points)
            evidence[f"partitions_{n}_{b}"] = count
            evidence[f"identities_{n}_{b}"] = rows
        return evidence

    def check(self, ev):
        eps, m = ev["eps"], ev["m"]
        scale = float(m * eps.max() * ev["curvature"])
        out = []
        for (name, _, order, misses), errors in zip(FLOWS, ev["errors"]):
            out.append(claims.slope(
                f"{name}: slope of log |E_sigma w_m - w(m eps)| vs log eps", eps, errors, float(order), 0.15,
                claims.slope_why(order, eps, scale, "m eps lambda_max(C_k)"),
                note=f"the flow misses {misses}; errors {errors[0]:.2e} -> {errors[-1]:.2e}"))
        for n, b in PARTITION_CASES:
            rows = ev[f"identities_{n}_{b}"]
            count = ev[f"partitions_{n}_{b}"]
            out += [
                claims.bound(
                    f"N={n}, B={b}: partition average of (1/m) sum_k |grad C_k - grad C|^2 vs (N-B)/(B(N-1)) Gamma",
                    float(np.max(np.abs(rows[:, 0] - rows[:, 1]) / np.abs(rows[:, 1]))), IDENTITY_TOL,
                    "an exact identity [derived] computed two independent ways (numpy over all partitions, autodiff "
                    "Gamma); float64 rounding of <= 105 partitions of O(1) terms is ~1e-14",
                    note=f"relative error, max over 2 points; all {count} partitions enumerated"),
                claims.bound(
                    f"N={n}, B={b}: partition average of reshuffling_modified_loss vs partition_averaged_modified_loss",
                    float(np.max(np.abs(rows[:, 2] - rows[:, 3]) / np.abs(rows[:, 3]))), IDENTITY_TOL,
                    "two implementations of the same exact expectation (enumeration vs the Gamma formula); float64 "
                    "rounding of <= 105 partitions of O(1) terms is ~1e-14", role="consistency",
                    note=f"relative error of the eps-corrections (modified loss - C) at eps = {eps[0]}, max over 2 "
                         f"points, all {count} partitions"),
            ]
        return out

    def figure(self, ev):
        eps, errors = ev["eps"], ev["errors"]
        fig, axes = figures.panels(self, 2, width=5.6, height=4.4,
                                   title="one SGD epoch, mean over all orders vs three flows")
        ax = axes[0]
        for i, (_, label, order, _) in enumerate(FLOWS):
            ax.plot(eps, errors[i], "o-", color=f"C{i}", label=label)
            ax.plot(eps, errors[i, -1] * (eps / eps[-1]) ** order, "--", lw=1, color=f"C{i}",
                    label=rf"$\propto\epsilon^{order}$")
        figures.axes_style(ax, r"learning rate $\epsilon$", r"$\|\mathbb{E}_\sigma w_m - w(m\epsilon)\|$",
                           logx=True, logy=True,
                           title=f"mean of all {ev['order_errors'].shape[1]} epoch orders, m = {ev['m']}")
        ax.legend(fontsize=7)
        ax = axes[1]
        ax.plot(eps, ev["order_errors"], color="0.6", lw=1)
        ax.plot(eps, errors[2], "o-", color="C2", label="mean over orders")
        ax.plot(eps, ev["order_errors"][-1].max() * (eps / eps[-1]) ** 2, "--", lw=1, color="k",
                label=r"$\propto\epsilon^2$")
        figures.axes_style(ax, r"learning rate $\epsilon$", r"distance to the $\tilde C_{SGD}$ flow at $t = m\epsilon$",
                           logx=True, logy=True, title=r"single orders (grey): $O(\epsilon^2)$; their mean: "
                           r"$O(\epsilon^3)$")
        ax.legend(fontsize=7)
        return fig
