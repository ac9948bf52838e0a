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
def _sweep_discrete(make, batch, steps, times, observe, observe_state=False):
    """One compiled, vmapped run per call signature: ``make`` and ``observe`` are static (reuse the same
    function objects to hit the cache)."""

    def one(b):
        process, y0 = make(b)
        saved, diverged_at, _ = kernel.run_discrete(process, y0, steps, times, observe, observe_state)
        return saved, diverged_at

    return jax.vmap(one)(batch)


@eqx.filter_jit
def _sweep_flow(make, batch, grid, observe, log_time, solver, rtol, atol, max_steps, dt0, pcoeff, icoeff):
    import diffrax

    def one(b):
        process, y0 = make(b)
        y0, mask = kernel.split_complex(process.promote(y0))
        ys, result, _ = kernel.run_flow(process, y0, mask, grid, observe, log_time, solver, rtol, atol, max_steps, dt0,
                                  pcoeff, icoeff)
        return ys, result == diffrax.RESULTS.successful

    return jax.vmap(one)(batch)


def _check_batch(batch):
    """The batch as JAX arrays, all with the same leading size B >= 1 (`InputError` naming the sizes otherwise)."""
    batch = jax.tree_util.tree_map(jnp.asarray, batch)
    leaves = jax.tree_util.tree_leaves_with_path(batch)
    if not leaves:
        raise InputError("simulate_sweep needs a batch: a pytree of arrays with a leading lane axis")
    sizes = {jax.tree_util.keystr(path) or "batch": (leaf.shape[0] if leaf.ndim else None) for path, leaf in leaves}
    if len(set(sizes.values())) != 1 or None in sizes.values() or 0 in sizes.values():
        raise InputError(f"every leaf of the batch needs the same leading size (the lanes), got leading sizes {sizes}")
    return batch


def simulate_sweep(make, batch, ts, *, observe=None, rtol=1e-8, atol=1e-10, log_time=False, solver=None,
                   max_steps=100_000, dt0=None, pcoeff=0.3, icoeff=0.3, allow_low_precision=False, allow_long=False,
                   observe_state=False):
    """Run ``make(b) -> (process, y0)`` for every b in ``batch`` (pytree, leading axis B) in one vmapped call.

    All runs share ``ts`` and the options of `simulate`, and get the same checks (`kernel.check_run` on the first
    lane's process and state; every lane's y0 checked finite); flows: diffrax; discrete methods: lax loops, the
    step grid from the first lane's learning rate, which must then be equal across lanes. Returns a
    `Trajectory` whose ``ys`` leaves have shape (T, B, ...). A failed or diverged lane raises, naming it.
    Compiled code is cached per (make, observe) function objects and shapes: reuse them across calls. On a
    few CPU cores a vmapped adaptive solve runs every lane for the slowest lane's step count, so it can be
    slower than a loop of compiled runs; it pays on accelerators and for fixed-step methods.
    ``observe_state=True`` (discrete methods only, as in `simulate`): observe(t, state) receives each lane's full
    process state (without observe the states are saved).
    """
    observe = kernel.identity_observe if observe is None else observe
    batch = _check_batch(batch)
    probe, probe_y0 = make(jax.tree_util.tree_map(lambda leaf: leaf[0], batch))
    if not isinstance(probe, (AbstractDiscrete, AbstractFlow)):
        kernel.check_process(probe)
        raise InputError(f"simulate_sweep needs discrete methods or flows, got {type(probe).__name__}")
    kernel.split_parameters(jax.vmap(lambda b: make(b)[1])(batch), "y0 (lanes on axis 0)")  # every lane: finite
    probe_y0, _ = kernel.split_parameters(probe.promote(probe_y0))
    plan = kernel.check_run(probe, probe_y0, ts, observe=observe, log_time=log_time, solver=solver, rtol=rtol,
                            atol=atol, max_steps=max_steps, dt0=dt0, pcoeff=pcoeff, icoeff=icoeff,
                            allow_low_precision=allow_low_precision, allow_long=allow_long,
                            observe_state=observe_state)
    batch = shard_batch(batch)
    with kernel.run_errors(probe, probe_y0):
        if plan.kind == "discrete":
            if probe.time_unit != "step":
                lrs = np.asarray(jax.vmap(lambda b: make(b)[0].lr)(batch))
                if not np.allclose(lrs, lrs.flat[0], rtol=0, atol=0):
                    raise InputError("simulate_sweep over a discrete method needs one learning rate for all lanes "
                                     f"(the step grid is shared); got {np.unique(lrs)[:5]}")
            probe_run = lambda n: jax.block_until_ready(_sweep_discrete(
                make, batch, jnp.asarray([plan.steps[0], plan.steps[0] + n]), jnp.asarray(plan.times[:1].repeat(2)),
                observe, bool(observe_state)))
            kernel.check_duration(probe, int(plan.steps[-1] - plan.steps[0]), probe_run, allow_long)
            ys, diverged_at = _sweep_discrete(make, batch, jnp.asarray(plan.steps), jnp.asarray(plan.times), observe,
                                              bool(observe_state))
            bad = np.flatnonzero(np.asarray(diverged_at) >= 0)
            if bad.size:
                raise DivergenceError(f"sweep lanes {bad.tolist()} diverged (first non-finite iterates "
                                      f"{np.asarray(diverged_at)[bad].tolist()})")
            ts = plan.times
        else:
            options = plan.options
            ys, succeeded = _sweep_flow(make, batch, jnp.asarray(plan.grid), observe, log_time, options["solver"],
                                        options["rtol"], options["atol"], options["max_steps"], options["dt0"],
                                        options["pcoeff"], options["icoeff"])
            failed = np.flatnonzero(~np.asarray(succeeded))
            if failed.size:
                raise DivergenceError(f"sweep lanes {failed.tolist()} did not finish (solver failure or max_steps="
                                      f"{options['max_steps']}); rerun one lane with simulate for the diagnosis")
            ts = plan.ts
    return Trajectory(ts=ts, ys=jax.tree_util.tree_map(lambda leaf: jnp.swapaxes(leaf, 0, 1), ys),
                      time_unit=probe.time_unit, stats={"lanes": jax.tree_util.tree_leaves(batch)[0].shape[0]})
