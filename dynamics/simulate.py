"""`simulate`: the one entry point that runs any process and returns a `Trajectory`."""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import kernel
from .errors import DivergenceError, SolverBudgetError
from .processes.base import AbstractProcess, TimeUnit
from .processes.sde import nonfinite_path_error
from .trajectory import Trajectory


def _last_finite_time(ts, ys):
    finite = np.array([bool(kernel.all_finite(jax.tree_util.tree_map(lambda leaf: leaf[i], ys)))
                       for i in range(len(ts))])
    return float(ts[finite][-1]) if finite.any() else None


# ----------------------------------------------------------------------------- discrete


def _simulate_discrete(process, y0, steps, times, observe, observe_state=False, allow_long=False):
    probe = lambda n: jax.block_until_ready(kernel.run_discrete(
        process, y0, jnp.asarray([steps[0], steps[0] + n]), jnp.asarray(times[:1].repeat(2)), observe, observe_state))
    kernel.check_duration(process, int(steps[-1] - steps[0]), probe, allow_long)
    saved, diverged_at, counted = kernel.run_discrete(process, y0, jnp.asarray(steps), jnp.asarray(times), observe,
                                                      observe_state)
    taken = int(steps[-1] - steps[0])
    traj = Trajectory(ts=times, ys=saved, time_unit=process.time_unit,
                      stats=kernel.discrete_stats(process, y0, taken, counted))
    diverged_at = int(diverged_at)
    if diverged_at >= 0:
        bad_time = kernel.time_of_iterate(process, diverged_at)
        rate = kernel.describe_rate(process)
        when = (f"step {diverged_at}" if process.time_unit == TimeUnit.STEP else f"t = {bad_time:.6g}") + (
            f", {rate}" if rate else "")
        raise DivergenceError(
            f"{type(process).__name__} diverged: iterate {diverged_at} ({when}) is the first non-finite one. Lower "
            "the step size (the learning rate, the step sizes of the schedule, or the method's own step parameters).",
            step=diverged_at, time=bad_time, trajectory=traj)
    return traj


# ----------------------------------------------------------------------------- flows


def _simulate_flow(process, y0, ts, grid, observe, log_time, tau_grid, options):
    solver, max_steps = options["solver"], options["max_steps"]
    y0, mask = kernel.split_complex(kernel.as_time_dtype(y0))
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
    ys, ok, steps = _run_sde(process, kernel.as_time_dtype(y0), jnp.asarray(ts), observe, solver or diffrax.Euler(),
                             noise_shape)
    traj = Trajectory(ts=ts, ys=ys, stats={"steps": int(steps), "paths": process.paths})
    error = nonfinite_path_error(process, ts, ys, traj)
    if error is not None:
        raise error
    if not bool(ok):
        raise DivergenceError(f"{type(process).__name__}: a path became non-finite (last finite save at "
                              f"t = {_last_finite_time(ts, ys)})", trajectory=traj)
    return traj


# ----------------------------------------------------------------------------- entry point


def simulate(process, y0, ts, *, observe=None, rtol=1e-8, atol=1e-10, log_time=False, tau_grid=False,
             solver=None, max_steps=100_000, dt0=None, pcoeff=0.3, icoeff=0.3, allow_low_precision=False,
             allow_long=False, observe_state=False):
    """Run ``process`` from ``y0`` (the state at ts[0]) and save at the times ``ts`` (in ``process.time_unit``).

    ``y0`` is any pytree: arrays, or a model mixing arrays and non-arrays (an Equinox or Flax nnx module). Its
    floating-point array leaves are the parameters; the rest is held fixed (the process's loss is rebound to the
    whole model), and ``traj.ys`` keeps the model's structure with the array leaves stacked. A complex y0 is refused
    unless the process runs on complex states (the complex `PrincipalFlow`, holomorphic losses): jax.grad of a real
    loss of a complex w is the conjugate of its gradient; split such a state into real and imaginary parts.

    Discrete methods (GD, SGD, OptaxMethod, ...): iterate k sits at t_k = sum_{j<k} lr_j (`TimeUnit`): t = k lr
    for a constant rate, so ``ts`` is rounded to the step grid (y0 is iterate round(ts[0] / lr), which matters
    for k-dependent methods such as normalized GD); with a schedule each request is served by the first iterate
    with t_k >= t; step-time processes use t = k. ``traj.ts`` holds the times actually saved. The whole run is
    one compiled `lax` loop storing only the T saved values, in y0's dtype; a new number (lr, momentum, ...) reuses
    the compiled code. A non-finite iterate raises `DivergenceError` naming the first bad step. ``traj.stats``: steps
    and the gradients / HVPs / third-derivative products they cost (the process's `StepCost`).

    Flows: diffrax with a PID step-size controller (``rtol``, ``atol`` >= 0, not both 0; ``pcoeff``, ``icoeff``),
    Tsit5 unless ``solver`` (a diffrax solver instance) is given; a fixed-step solver (diffrax.Euler()) takes
    constant steps of ``dt0`` (required). ``dt0`` > 0 or None; ``max_steps`` a positive integer. ``log_time=True``
    integrates in tau = log(1 + t), for horizons like t = e^40 ... e^400 (separable problems are stiff in t: explicit
    steps grow only like t); only flows with a log-time field support it (GradientFlow, ModifiedFlow, PrincipalFlow).
    Explicit solvers suit tight tolerances (rtol 1e-10 .. 1e-12); for tau ~ 1e3 .. 1e4 at
    rtol ~ 1e-6 pass diffrax.Kvaerno5() (implicit: a nearly constant step count at any horizon,
    but its Newton iteration struggles below rtol ~ 1e-9). Running out of ``max_steps`` raises
    `SolverBudgetError` with advice. ``tau_grid=True`` (with log_time) takes and returns ``ts`` as
    tau = log(1 + t) itself, for horizons past t = e^709 where t overflows float64 (``traj.time_unit``
    is then "tau"; ``observe`` still receives t = e^tau - 1, which is inf there). ``traj.stats``: diffrax's
    step counts, ``field_evaluations`` (explicit Runge-Kutta solvers) and their derivative cost. diffrax integrates
    in float64 (the dtype of the times) whatever y0's dtype.

    SDEs (`StochasticModifiedEquation`): ``process.paths`` independent paths with a fixed step
    ``process.dt`` (Euler-Maruyama unless ``solver`` is given); ``ys`` leaves have shape (T, paths, ...).

    ``observe(t, theta)``: computed at each save instead of storing theta (e.g. a margin), so
    long runs return the quantities, not the states; it must return an array or a pytree of arrays.
    ``observe_state=True`` (discrete methods only; `InputError` for flows and SDEs, whose state is theta): observe
    receives the process's full state after each save's step instead of its parameters, e.g. an `OptaxMethod`'s
    ``OptaxState(params, opt_state)`` with Adam's moments; without observe the states themselves are saved. The
    state is the process's own: for a model mixing arrays and non-arrays its parameters are the array partition
    (``eqx.combine(state.params, static)`` rebuilds the model). It is validated like observe (traced once on the
    shapes of ``process.init(y0)``) and selects compiled code once; new numbers still reuse it.

    Limits. Precision: a state in any dtype below float64 (float32, float16, bfloat16) on an exponentially-tailed
    separable loss raises `PrecisionError` past the dtype's horizon (1/(8 eps) steps, log t = -log(tiny) - log 1000:
    1e6 steps and log t ~ 80 for float32; `kernel.low_precision_horizon`) unless ``allow_low_precision=True``.
    Length: a discrete run of more than 1e6 steps is first timed on a 4096-step probe of its own compiled loop; an
    estimate above 10 minutes raises `InputError` with the estimate unless ``allow_long=True``, and one above 10 s
    is printed to stderr (`kernel.check_duration`). SDEs (steps x paths) and learning-rate schedules (enumerated on
    the host) are refused above 1e8 steps (`kernel.LONG_RUN_STEPS`) unless ``allow_long=True``.

    Errors: bad input raises `InputError` (or `StepSizeError` for a learning rate), also when the loss fails on
    y0 while being traced (the message names y0's shapes); checks inside compiled code raise the library's own
    exception, message first (`dynamics.errors.error_if`).
    """
    if not isinstance(process, AbstractProcess):
        kernel.check_process(process)  # raises: bind_static below needs a process
    y0, static = kernel.split_parameters(process.promote(y0))
    model = kernel.has_leaves(static)  # a model mixing arrays and non-arrays (an Equinox module)
    if model:
        process = process.bind_static(static)
    if observe is None:
        observe = kernel.identity_observe
    elif model and not (isinstance(observe_state, (bool, np.bool_)) and observe_state):  # state: array partition
        observe = kernel.CombinedObserve(observe, static)
    plan = kernel.check_run(process, y0, ts, observe=observe, log_time=log_time, tau_grid=tau_grid, solver=solver,
                            rtol=rtol, atol=atol, max_steps=max_steps, dt0=dt0, pcoeff=pcoeff, icoeff=icoeff,
                            allow_low_precision=allow_low_precision, allow_long=allow_long,
                            observe_state=observe_state)
    with kernel.run_errors(process, y0):
        if plan.kind == "discrete":
            traj = _simulate_discrete(process, y0, plan.steps, plan.times, observe, bool(observe_state), allow_long)
        elif plan.kind == "sde":
            traj = _simulate_sde(process, y0, plan.ts, observe, solver)
        else:
            traj = _simulate_flow(process, y0, plan.ts, plan.grid, observe, log_time, tau_grid, plan.options)
    if model and observe is kernel.identity_observe and not observe_state:
        traj = dataclasses.replace(traj, ys=eqx.combine(traj.ys, static))
    return traj
