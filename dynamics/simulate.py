"""`simulate`: the one entry point that runs any process and returns a `Trajectory`."""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import kernel
from .errors import DivergenceError, InputError, SolverBudgetError
from .processes.base import AbstractDiscrete, AbstractFlow, TimeUnit
from .processes.sde import AbstractSDE
from .trajectory import Trajectory


def _last_finite_time(ts, ys):
    finite = np.array([bool(kernel.all_finite(jax.tree_util.tree_map(lambda leaf: leaf[i], ys)))
                       for i in range(len(ts))])
    return float(ts[finite][-1]) if finite.any() else None


# ----------------------------------------------------------------------------- discrete


def _simulate_discrete(process, y0, steps, times, observe):
    saved, diverged_at, counted = kernel.run_discrete(process, y0, jnp.asarray(steps), jnp.asarray(times), observe)
    taken = int(steps[-1] - steps[0])
    traj = Trajectory(ts=times, ys=saved, time_unit=process.time_unit,
                      stats=kernel.discrete_stats(process, y0, taken, counted))
    diverged_at = int(diverged_at)
    if diverged_at >= 0:
        bad_time = kernel.time_of_iterate(process, diverged_at)
        raise DivergenceError(
            f"{type(process).__name__} diverged: iterate {diverged_at} (t = {bad_time:.6g}) is the first non-finite "
            "one. Lower the learning rate (or the step sizes of the schedule).",
            step=diverged_at, time=bad_time, trajectory=traj)
    return traj


# ----------------------------------------------------------------------------- flows


def _simulate_flow(process, y0, ts, observe, log_time, tau_grid, solver, options, max_steps):
    solver = diffrax.Tsit5() if solver is None else solver
    y0, mask = kernel.split_complex(y0)
    grid = ts if tau_grid else (np.log1p(ts) if log_time else ts)
    ys, result, stats = kernel.run_flow(process, y0, mask, jnp.asarray(grid), observe, log_time, solver,
                                        options["rtol"], options["atol"], max_steps, options["dt0"],
                                        options["pcoeff"], options["icoeff"])
    stats = {k: int(v) for k, v in stats.items()}
    evaluations = kernel.field_evaluations(solver, stats.get("num_steps", 0))
    if evaluations is not None:
        stats["field_evaluations"] = evaluations
        cost = process.step_cost(y0)
        if cost is not None:
            stats.update(cost.times(evaluations))
    traj = Trajectory(ts=ts, ys=ys, time_unit=TimeUnit.TAU if tau_grid else process.time_unit, stats=stats)
    if result == diffrax.RESULTS.successful:
        return traj
    last = _last_finite_time(ts, ys)
    accepted, rejected = stats.get("num_accepted_steps", 0), stats.get("num_rejected_steps", 0)
    if result == diffrax.RESULTS.max_steps_reached and rejected < accepted:
        raise SolverBudgetError(
            f"{type(solver).__name__} used all max_steps={max_steps} steps before t = {ts[-1]:.6g} "
            f"(last saved time reached: {last}){'' if log_time else ', integrating in t'}. Advice: "
            + ("separable problems are stiff in t; pass log_time=True to integrate in tau = log(1 + t), "
               if not log_time else "")
            + "raise max_steps, or for log-time horizons beyond tau ~ 1e3 pass solver=diffrax.Kvaerno5() "
              "with rtol ~ 1e-6 (an implicit solver takes a nearly constant number of steps per horizon).")
    raise DivergenceError(
        f"{type(process).__name__} diverged or stalled after the last finite save at t = {last}: "
        f"{rejected} of {accepted + rejected} steps were rejected ({result}). The state became non-finite, or the "
        "field is not finite there (or, in float32, the tolerance is below the dtype's resolution).",
        time=last, trajectory=traj)


# ----------------------------------------------------------------------------- SDEs


@eqx.filter_jit
def _run_sde(process, y0, ts, observe, solver, noise_shape):
    def one_path(key):
        brownian = diffrax.UnsafeBrownianPath(shape=noise_shape, key=key)  # fixed steps: independent increments
        terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, args: process.drift(t, y)),
                                  diffrax.ControlTerm(lambda t, y, args: process.diffusion(t, y), brownian))
        steps = jnp.ceil((ts[-1] - ts[0]) / process.dt).astype(int)
        sol = diffrax.diffeqsolve(terms, solver, ts[0], ts[-1], process.dt, y0,
                                  saveat=diffrax.SaveAt(ts=ts, fn=lambda t, y, args: observe(t, y)),
                                  stepsize_controller=diffrax.ConstantStepSize(), adjoint=diffrax.ForwardMode(),
                                  max_steps=None, throw=False)
        return sol.ys, sol.result == diffrax.RESULTS.successful, steps

    ys, ok, steps = jax.vmap(one_path)(jax.random.split(process.key, process.paths))
    return jax.tree_util.tree_map(lambda leaf: jnp.swapaxes(leaf, 0, 1), ys), jnp.all(ok), steps[0]


def _simulate_sde(process, y0, ts, observe, solver):
    noise_shape = jax.eval_shape(lambda y: process.diffusion(ts[0], y), y0).shape[1:]
    ys, ok, steps = _run_sde(process, y0, jnp.asarray(ts), observe, solver or diffrax.Euler(), noise_shape)
    traj = Trajectory(ts=ts, ys=ys, stats={"steps": int(steps), "paths": process.paths})
    if not bool(ok):
        raise DivergenceError(f"{type(process).__name__}: a path became non-finite (last finite save at "
                              f"t = {_last_finite_time(ts, ys)})", trajectory=traj)
    return traj


# ----------------------------------------------------------------------------- entry point


def simulate(process, y0, ts, *, observe=None, rtol=1e-8, atol=1e-10, log_time=False, tau_grid=False,
             solver=None, max_steps=100_000, dt0=None, pcoeff=0.3, icoeff=0.3, allow_float32=False):
    """Run ``process`` from ``y0`` (the state at ts[0]) and save at the times ``ts`` (in ``process.time_unit``).

    ``y0`` is any pytree: arrays, or a model mixing arrays and non-arrays (an Equinox or Flax nnx module). Its
    floating-point array leaves are the parameters; the rest is held fixed (the process's loss is rebound to the
    whole model), and ``traj.ys`` keeps the model's structure with the array leaves stacked.

    Discrete methods (GD, SGD, OptaxMethod, ...): iterate k sits at t_k = sum_{j<k} lr_j (`TimeUnit`): t = k lr
    for a constant rate, so ``ts`` is rounded to the step grid (y0 is iterate round(ts[0] / lr), which matters
    for k-dependent methods such as normalized GD); with a schedule each request is served by the first iterate
    with t_k >= t; step-time processes use t = k. ``traj.ts`` holds the times actually saved. The whole run is
    one compiled `lax` loop storing only the T saved values; a new number (lr, momentum, ...) reuses the compiled
    code. A non-finite iterate raises `DivergenceError` naming the first bad step. ``traj.stats``: steps and
    the gradients / HVPs / third-derivative products they cost (the process's `StepCost`).

    Flows: diffrax with a PID step-size controller (``rtol``, ``atol``, ``pcoeff``, ``icoeff``),
    Tsit5 unless ``solver`` is given. ``log_time=True`` integrates in tau = log(1 + t), for
    horizons like t = e^40 ... e^400 (separable problems are stiff in t: explicit steps grow only
    like t). Explicit solvers suit tight tolerances (rtol 1e-10 .. 1e-12); for tau ~ 1e3 .. 1e4 at
    rtol ~ 1e-6 pass diffrax.Kvaerno5() (implicit: a nearly constant step count at any horizon,
    but its Newton iteration struggles below rtol ~ 1e-9). Running out of ``max_steps`` raises
    `SolverBudgetError` with advice. ``tau_grid=True`` (with log_time) takes and returns ``ts`` as
    tau = log(1 + t) itself, for horizons past t = e^709 where t overflows float64 (``traj.time_unit``
    is then "tau"; ``observe`` still receives t = e^tau - 1, which is inf there). ``traj.stats``: diffrax's
    step counts, ``field_evaluations`` (explicit Runge-Kutta solvers) and their derivative cost.

    SDEs (`StochasticModifiedEquation`): ``process.paths`` independent paths with a fixed step
    ``process.dt`` (Euler-Maruyama unless ``solver`` is given); ``ys`` leaves have shape (T, paths, ...).

    ``observe(t, theta)``: computed at each save instead of storing theta (e.g. a margin), so
    long runs return the quantities, not the states. float32 states past the horizon where
    exponentially-tailed runs stall raise `PrecisionError` unless ``allow_float32=True``.
    """
    if not isinstance(process, (AbstractDiscrete, AbstractFlow, AbstractSDE)):
        raise InputError(f"simulate needs a discrete method, a flow or an SDE (a dynamics process), got "
                         f"{type(process).__name__}; for an optax optimizer use dynamics.OptaxMethod(loss, tx)")
    ts = kernel.check_times(ts)
    y0, static = kernel.split_parameters(y0)
    model = kernel.has_leaves(static)  # a model mixing arrays and non-arrays (an Equinox module)
    if model:
        process = process.bind_static(static)
    if observe is None:
        observe = kernel.identity_observe
    elif model:
        observe = kernel.CombinedObserve(observe, static)
    if isinstance(process, AbstractDiscrete):
        if log_time or tau_grid:
            raise InputError(f"log_time/tau_grid apply to flows; {type(process).__name__} is a discrete method whose "
                             "iterates sit at t_k (pass physical times)")
        traj = _simulate_discrete_checked(process, y0, ts, observe, allow_float32)
    elif isinstance(process, AbstractSDE):
        traj = _simulate_sde(process, y0, ts, observe, solver)
    else:
        if tau_grid and not log_time:
            raise InputError("tau_grid=True gives ts as tau = log(1 + t): it needs log_time=True")
        kernel.check_precision(process, y0, np.expm1(min(ts[-1], 700.0)) if tau_grid else ts[-1], allow_float32)
        options = kernel.flow_options(rtol, atol, dt0, pcoeff, icoeff)
        traj = _simulate_flow(process, y0, ts, observe, log_time, tau_grid, solver, options, max_steps)
    if model and observe is kernel.identity_observe:
        traj = dataclasses.replace(traj, ys=eqx.combine(traj.ys, static))
    return traj


def _simulate_discrete_checked(process, y0, ts, observe, allow_float32):
    steps, times = kernel.iterate_grid(process, ts)  # once: a schedule is evaluated on the host
    kernel.check_precision(process, y0, steps[-1], allow_float32)
    return _simulate_discrete(process, y0, steps, times, observe)
