"""Sweeps: many runs of one experiment (initialization scales, shapes, learning rates, seeds) as ONE vmapped,
compiled computation, sharded over the batch axis when several devices exist (jax.sharding)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import kernel
from .errors import DivergenceError, InputError
from .processes.base import AbstractDiscrete, AbstractFlow
from .trajectory import Trajectory


def shard_batch(batch):
    """Place a pytree with a leading batch axis across all devices (no-op on one device or uneven sizes)."""
    devices = jax.devices()
    size = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if len(devices) < 2 or size % len(devices):
        return batch
    sharding = NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))
    return jax.device_put(batch, sharding)


@eqx.filter_jit
def _sweep_discrete(make, batch, steps, times, observe):
    """One compiled, vmapped run per call signature: ``make`` and ``observe`` are static (reuse the same
    function objects to hit the cache)."""

    def one(b):
        process, y0 = make(b)
        saved, diverged_at, _ = kernel.run_discrete(process, y0, steps, times, observe)
        return saved, diverged_at

    return jax.vmap(one)(batch)


@eqx.filter_jit
def _sweep_flow(make, batch, grid, observe, log_time, solver, rtol, atol, max_steps, dt0, pcoeff, icoeff):
    import diffrax

    def one(b):
        process, y0 = make(b)
        y0, mask = kernel.split_complex(y0)
        ys, result, _ = kernel.run_flow(process, y0, mask, grid, observe, log_time, solver, rtol, atol, max_steps, dt0,
                                  pcoeff, icoeff)
        return ys, result == diffrax.RESULTS.successful

    return jax.vmap(one)(batch)


def simulate_sweep(make, batch, ts, *, observe=None, rtol=1e-8, atol=1e-10, log_time=False, solver=None,
                   max_steps=100_000, dt0=None, pcoeff=0.3, icoeff=0.3):
    """Run ``make(b) -> (process, y0)`` for every b in ``batch`` (pytree, leading axis B) in one vmapped call.

    All runs share ``ts`` and the options of `simulate` (flows: diffrax; discrete methods: lax loops, the
    step grid from the first lane's learning rate, which must then be equal across lanes). Returns a
    `Trajectory` whose ``ys`` leaves have shape (T, B, ...). A failed or diverged lane raises, naming it.
    Compiled code is cached per (make, observe) function objects and shapes: reuse them across calls. On a
    few CPU cores a vmapped adaptive solve runs every lane for the slowest lane's step count, so it can be
    slower than a loop of compiled runs; it pays on accelerators and for fixed-step methods.
    """
    import diffrax

    ts = kernel.check_times(ts)
    observe = kernel.identity_observe if observe is None else observe
    batch = shard_batch(jax.tree_util.tree_map(jnp.asarray, batch))
    probe, _ = make(jax.tree_util.tree_map(lambda leaf: leaf[0], batch))
    if isinstance(probe, AbstractDiscrete):
        if probe.time_unit != "step":
            lrs = np.asarray(jax.vmap(lambda b: make(b)[0].lr)(batch))
            if not np.allclose(lrs, lrs.flat[0], rtol=0, atol=0):
                raise InputError("simulate_sweep over a discrete method needs one learning rate for all lanes (the "
                                 f"step grid is shared); got {np.unique(lrs)[:5]}")
        steps, times = kernel.iterate_grid(probe, ts)
        ys, diverged_at = _sweep_discrete(make, batch, jnp.asarray(steps), jnp.asarray(times), observe)
        bad = np.flatnonzero(np.asarray(diverged_at) >= 0)
        if bad.size:
            raise DivergenceError(f"sweep lanes {bad.tolist()} diverged (first non-finite iterates "
                                  f"{np.asarray(diverged_at)[bad].tolist()})")
        ts = times
    elif isinstance(probe, AbstractFlow):
        solver = diffrax.Tsit5() if solver is None else solver
        grid = jnp.asarray(np.log1p(ts) if log_time else ts)
        options = kernel.flow_options(rtol, atol, dt0, pcoeff, icoeff)
        ys, succeeded = _sweep_flow(make, batch, grid, observe, log_time, solver, options["rtol"], options["atol"],
                                    max_steps, options["dt0"], options["pcoeff"], options["icoeff"])
        failed = np.flatnonzero(~np.asarray(succeeded))
        if failed.size:
            raise DivergenceError(f"sweep lanes {failed.tolist()} did not finish (solver failure or max_steps="
                                  f"{max_steps}); rerun one lane with simulate for the diagnosis")
    else:
        raise InputError(f"simulate_sweep needs discrete methods or flows, got {type(probe).__name__}")
    return Trajectory(ts=ts, ys=jax.tree_util.tree_map(lambda leaf: jnp.swapaxes(leaf, 0, 1), ys),
                      time_unit=probe.time_unit, stats={"lanes": jax.tree_util.tree_leaves(batch)[0].shape[0]})
