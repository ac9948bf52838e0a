"""SAM throughput: steps/s of `dynamics.simulate(SAM)` against a Python loop of a jitted optax SAM step.

Problem: the cohen2021_eos MLP (dataset "eos_mlp": 128 Gaussian inputs in R^8, 8-16-16-1 swish MLP, 433 flat
parameters), L = mean (f - y)^2, lr = 0.1, rho = 0.05, float64, STEPS steps. Methods:

  optax loop   optax.contrib.sam(sgd(lr), chain(normalize(), sgd(rho)), sync_period=2, opaque_mode=True), one
               jax.jit-ted update + apply_updates dispatched per Python iteration (2 gradients per step)
  simulate     dynamics.simulate(SAM(E, lr, rho), w0, [0, steps lr]) (one compiled loop, 2 gradients per step)

Both compute the same iterates (tests/test_sam.py checks them to round-off; here they agree to 2e-16 after 50
steps). Past the edge-of-stability onset (~step 150 at rho = 0.05) the dynamics amplify round-off, so the printed
final-iterate gap (~1e-4 after 200-500 steps) measures that sensitivity, not a difference of the updates.
Run time = median of warm repeats (benchmarks.common.time_calls). Run: ``python -m benchmarks.sam``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynamics as dyn
from theorems.cohen2021_eos import cpu_mlp

from .common import si, table, time_calls

LR, RHO, STEPS = 0.1, 0.05, 2000


def optax_loop(E, w0, steps):
    """A Python loop of one jitted optax SAM (opaque mode) step."""
    grad = jax.grad(E)
    tx = optax.contrib.sam(optax.sgd(LR), optax.chain(optax.contrib.normalize(), optax.sgd(RHO)), sync_period=2,
                           opaque_mode=True)

    @jax.jit
    def step(w, state):
        updates, state = tx.update(grad(w), state, w, grad_fn=lambda q, _: grad(q))
        return optax.apply_updates(w, updates), state

    def run():
        w, state = w0, tx.init(w0)
        for _ in range(steps):
            w, state = step(w, state)
        return w

    return run


def report(steps=STEPS):
    E, w0 = cpu_mlp(0)
    w0 = jnp.asarray(w0)
    sam = dyn.SAM(E, LR, RHO)
    fns = {"optax loop": optax_loop(E, w0, steps),
           "simulate": lambda: dyn.simulate(sam, w0, np.array([0.0, steps * LR])).ys[-1]}
    timings, results = time_calls(fns, repeats=3)
    gap = float(jnp.max(jnp.abs(results["simulate"] - results["optax loop"])) / jnp.max(jnp.abs(results["optax loop"])))
    base = timings["optax loop"].median_s
    rows = [[name, f"{t.first_s:.2f}", f"{t.median_s:.3f}", si(steps / t.median_s), f"{base / t.median_s:.1f}x"]
            for name, t in timings.items()]
    print(f"\nSAM on the eos_mlp (433 parameters), lr = {LR}, rho = {RHO}, {steps} steps; final-iterate relative gap "
          f"simulate vs optax {gap:.1e}")
    print(table(["method", "first (s)", "warm (s)", "steps/s", "vs optax loop"], rows))


if __name__ == "__main__":
    report()
