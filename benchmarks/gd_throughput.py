"""GD throughput: steps/s of `dynamics.simulate(GradientDescent)` against Python-driven loops.

Problem: logistic sum loss L(w) = sum_n log(1 + exp(-z_n.w)) on separable Gaussian data
(n, d) = (20, 2) and (200, 50), float64, w0 = 0, lr = 1/sigma_max(Z)^2 (1/8 of the theorem's
bound 2/(beta sigma_max^2), beta = 1/4), 1e5 steps. Methods:

  numpy loop       w <- w + lr Z^T sigmoid(-Z w), hand-written, one Python iteration per step
  jit step loop    one jax.jit-ted GradientDescent.step dispatched per Python iteration
  simulate         dynamics.simulate(GradientDescent(loss, lr), w0, [steps lr]) (compiled loop)
  bare lax.scan        jit(lax.scan) of the hand-written step (the baseline measurements' reference)
  bare fori(GD.step)   jit(lax.fori_loop) of GradientDescent.step: simulate's step without its
                       segment/divergence machinery. simulate / fori isolates simulate's own
                       overhead; fori / scan the cost of the log-space step (weights
                       exp(log lr - softplus(q)) instead of lr sigmoid(-q))

Run time = median of warm repeats; compile = XLA backend seconds of the first call (JAX
monitoring), and warm calls are checked to trigger no compilation (JIT cache hit).
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import dynamics as dyn
from dynamics.predictions import gd_step_bound, require_step_below

from .common import si, separable_gaussian, table, time_calls

SIZES = ((20, 2), (200, 50))
STEPS = 100_000
SEED = 0
REPEATS_COMPILED = 5
REPEATS_PYTHON = 3


def problem(n, d, seed=SEED):
    """Logistic sum loss on separable Gaussian data; lr = 1/sigma_max(Z)^2, checked below the bound."""
    X, y = separable_gaussian(seed, n, d)
    loss = dyn.linear_classifier(X, y, "logistic")
    Z = np.asarray(loss.data)
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    require_step_below(lr, gd_step_bound(Z, loss.tail), "GD throughput benchmark")
    return loss, Z, lr


def numpy_loop(Z, lr, steps):
    w = np.zeros(Z.shape[1])
    for _ in range(steps):
        w = w + lr * (Z.T @ (1.0 / (1.0 + np.exp(Z @ w))))
    return w


def jit_step_loop(step, w, steps):
    for _ in range(steps):
        w = step(w)
    return w


@functools.partial(jax.jit, static_argnames="steps")
def _scan(w, Z, lr, steps):
    body = lambda w, _: (w + lr * (Z.T @ jax.nn.sigmoid(-(Z @ w))), None)
    return jax.lax.scan(body, w, None, length=steps)[0]


@eqx.filter_jit
def _fori(gd, w, steps):
    return jax.lax.fori_loop(0, steps, lambda k, w: gd.step(w, k), w)


def measure(n, d, steps=STEPS):
    """Timings of every method on one size; returns (timings, final iterates, lr)."""
    loss, Z, lr = problem(n, d)
    gd = dyn.GradientDescent(loss, lr)
    w0 = jnp.zeros(d)
    Zj = jnp.asarray(Z)
    step = jax.jit(lambda w: gd.step(w, 0))
    methods = {
        "numpy loop": lambda: numpy_loop(Z, lr, steps),
        "jit step loop": lambda: jit_step_loop(step, w0, steps),
        "simulate": lambda: dyn.simulate(gd, w0, np.array([0.0, steps * lr])).ys[-1],
        "bare lax.scan": lambda: _scan(w0, Zj, lr, steps),
        "bare fori(GD.step)": lambda: _fori(gd, w0, steps),
    }
    repeats = {name: REPEATS_PYTHON if "loop" in name else REPEATS_COMPILED for name in methods}
    timings, finals = time_calls(methods, repeats)
    finals = {name: np.asarray(w) for name, w in finals.items()}
    return timings, finals, lr


def report(sizes=SIZES, steps=STEPS):
    """Print the throughput table; returns {size: {method: steps/s}}."""
    out = {}
    for n, d in sizes:
        timings, finals, lr = measure(n, d, steps)
        rate = {name: steps / t.median_s for name, t in timings.items()}
        rows = []
        for name, t in timings.items():
            rows.append([name, si(rate[name]), f"{t.median_s:.3g}",
                         f"{min(t.runs_s):.3g}-{max(t.runs_s):.3g}", f"{t.first_s:.3g}",
                         f"{t.compile_s:.2f} ({t.compiles})", t.warm_compiles,
                         f"{rate[name] / rate['numpy loop']:.2f}", f"{rate[name] / rate['jit step loop']:.1f}"])
        print(f"\nGD throughput, logistic sum loss, n={n}, d={d}, lr={lr:.4g} (1/sigma_max^2), "
              f"{steps:.0e} steps, float64, w0=0")
        print(table(["method", "steps/s", "run s (median)", "run s range", "first call s",
                     "XLA compile s (n)", "warm compiles", "x numpy", "x jit-step"], rows))
        deviation = max(np.max(np.abs(w - finals["simulate"])) for w in finals.values())
        print(f"sanity: final w (simulate) = {np.array2string(finals['simulate'][:4], precision=10)}"
              f"{' ...' if d > 4 else ''}; max |w_method - w_simulate| over methods = {deviation:.1e}")
        print(f"simulate: {rate['simulate'] / rate['numpy loop']:.1f}x numpy, "
              f"{rate['simulate'] / rate['jit step loop']:.1f}x jit-step; "
              f"overhead vs bare lax.scan {rate['bare lax.scan'] / rate['simulate']:.2f}x, "
              f"vs bare fori(GD.step) {rate['bare fori(GD.step)'] / rate['simulate']:.2f}x "
              "(ratio of steps/s; > 1: simulate slower)")
        out[(n, d)] = rate
    return out


if __name__ == "__main__":
    report()
