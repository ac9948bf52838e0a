"""`simulate`: the one entry point that runs any process and returns a `Trajectory`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import DivergenceError, InputError, PrecisionError, SolverBudgetError
from .losses import MarginLoss
from .processes.base import AbstractDiscrete, AbstractFlow
from .processes.sde import AbstractSDE
from .trajectory import Trajectory
from .validation import finite_array

#: float32 horizons past which exponentially-tailed separable runs are meaningless (theory 1.1):
#: GD updates fall below float32 eps near 1e6 steps; exp(-u) underflows at u ~ 87 (tau ~ 87).
FLOAT32_MAX_STEPS = 1_000_000
FLOAT32_MAX_LOG_TIME = 80.0


def _all_finite(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))


def _is_float32(tree):
    return any(jnp.result_type(leaf) == jnp.float32 for leaf in jax.tree_util.tree_leaves(tree))


def _exponential_tail(process):
    loss = getattr(process, "loss", None)
    return isinstance(loss, MarginLoss) and loss.tail.positive_slope


def _check_precision(process, y0, horizon, allow_float32):
    """Refuse float32 runs past the horizon where exponentially-tailed runs silently stall."""
    if allow_float32 or not _is_float32(y0) or not _exponential_tail(process):
        return
    if isinstance(process, AbstractDiscrete) and horizon > FLOAT32_MAX_STEPS:
        raise PrecisionError(
            f"float32 {type(process).__name__} asked for {horizon:.3g} steps on a separable "
            f"exponentially-tailed loss: past ~{FLOAT32_MAX_STEPS:.0e} steps the update falls below "
            "float32 resolution and the iterate freezes silently. Use float64 (jax_enable_x64) or "
            "pass allow_float32=True to run anyway.")
    if isinstance(process, AbstractFlow) and np.log1p(horizon) > FLOAT32_MAX_LOG_TIME:
        raise PrecisionError(
            f"float32 flow asked for t = {horizon:.3g} (log t = {np.log1p(horizon):.1f}): exp(-margin) "
            f"underflows in float32 past log t ~ {FLOAT32_MAX_LOG_TIME:.0f} and the field stalls. "
            "Use float64 (jax_enable_x64) or pass allow_float32=True to run anyway.")


def _check_times(ts):
    ts = finite_array("ts", ts, ndim=1).astype(np.float64)
    if ts.size == 0:
        raise InputError("ts must contain at least one time")
    if np.any(np.diff(ts) <= 0):
        raise InputError("ts must be strictly increasing")
    if ts[0] < 0:
        raise InputError(f"ts must be >= 0, got ts[0] = {ts[0]}")
    return ts


def _identity_observe(t, theta):
    return theta


# ----------------------------------------------------------------------------- discrete


@eqx.filter_jit
def _run_discrete(process, y0, steps, observe):
    """Advance step by step to each save index; store only observe(t, theta) at the saves.

    Also returns the first non-finite iterate index (-1 if none), located by replaying only the
    segment in which the state first became non-finite, so the hot loop carries no check.
    """

    def advance(state, start, stop):
        return jax.lax.fori_loop(start, stop, lambda k, s: process.step(s, k), state)

    def first_bad_step(state, start, stop):
        def cond(carry):
            k, s = carry
            return (k < stop) & _all_finite(process.params(s))

        k, _ = jax.lax.while_loop(cond, lambda c: (c[0] + 1, process.step(c[1], c[0])), (start, state))
        return k

    def segment(carry, stop):
        state, start, diverged_at = carry
        new_state = advance(state, start, stop)
        bad = ~_all_finite(process.params(new_state)) & (diverged_at < 0)
        diverged_at = jax.lax.cond(bad, lambda: first_bad_step(state, start, stop), lambda: diverged_at)
        saved = observe(stop * process.step_time, process.params(new_state))
        return (new_state, stop, diverged_at), saved

    start = (process.init(y0, steps[0]), steps[0], -jnp.ones((), steps.dtype))
    (_, _, diverged_at), saved = jax.lax.scan(segment, start, steps)
    return saved, diverged_at


def _simulate_discrete(process, y0, ts, observe):
    lr = float(process.step_time)
    steps = np.rint(ts / lr).astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise InputError(f"ts are closer than one step ({lr}); iterate k sits at t = k * {lr}")
    saved, diverged_at = _run_discrete(process, y0, jnp.asarray(steps), observe)
    taken = int(steps[-1] - steps[0])
    traj = Trajectory(ts=steps * lr, ys=saved, time_unit=process.time_unit, stats={"steps": taken, "gradients": taken})
    diverged_at = int(diverged_at)
    if diverged_at >= 0:
        raise DivergenceError(
            f"{type(process).__name__} diverged: iterate {diverged_at} (t = {diverged_at * lr:.6g}) is the "
            "first non-finite one. Lower the learning rate (lr = {:.6g}).".format(lr),
            step=diverged_at, time=diverged_at * lr, trajectory=traj)
    return traj


# ----------------------------------------------------------------------------- flows


def _split_complex(tree):
    """Complex leaves -> real (2, ...) stacks (diffrax integrates real states); returns (tree, mask)."""
    mask = jax.tree_util.tree_map(jnp.iscomplexobj, tree)
    split = jax.tree_util.tree_map(lambda x, c: jnp.stack([x.real, x.imag]) if c else x, tree, mask)
    return split, mask


def _merge_complex(tree, mask):
    return jax.tree_util.tree_map(lambda x, c: x[0] + 1j * x[1] if c else x, tree, mask)


@eqx.filter_jit
def _run_flow(process, y0, mask, grid, observe, log_time, solver, rtol, atol, max_steps, dt0, pcoeff, icoeff):
    """Integrate on ``grid`` (t, or tau = log(1 + t) when log_time)."""
    field = process.log_time_field if log_time else process.field
    to_physical = jnp.expm1 if log_time else (lambda t: t)
    term = diffrax.ODETerm(lambda s, y, args: _split_complex(field(s, _merge_complex(y, mask)))[0])
    save = diffrax.SaveAt(ts=grid, fn=lambda s, y, args: observe(to_physical(s), _merge_complex(y, mask)))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    sol = diffrax.diffeqsolve(term, solver, grid[0], grid[-1], dt0, y0, saveat=save,
                              stepsize_controller=controller, max_steps=max_steps, throw=False)
    return sol.ys, sol.result, sol.stats


def _last_finite_time(ts, ys):
    finite = np.array([bool(_all_finite(jax.tree_util.tree_map(lambda leaf: leaf[i], ys))) for i in range(len(ts))])
    return float(ts[finite][-1]) if finite.any() else None


def _simulate_flow(process, y0, ts, observe, log_time, tau_grid, solver, rtol, atol, max_steps, dt0, pcoeff,
                   icoeff):
    solver = diffrax.Tsit5() if solver is None else solver
    y0, mask = _split_complex(y0)
    grid = ts if tau_grid else (np.log1p(ts) if log_time else ts)
    ys, result, stats = _run_flow(process, y0, mask, jnp.asarray(grid), observe, log_time, solver,
                                  jnp.asarray(rtol), jnp.asarray(atol), max_steps, dt0, pcoeff, icoeff)
    stats = {k: int(v) for k, v in stats.items()}
    traj = Trajectory(ts=ts, ys=ys, time_unit="tau" if tau_grid else process.time_unit, stats=stats)
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
    """Run ``process`` from ``y0`` (the state at ts[0]) and save at the physical times ``ts``.

    Discrete methods (GD, SGD, ...): iterate k sits at t = k * lr, so ``ts`` is rounded to the
    step grid (``traj.ts`` holds the times actually saved; y0 is iterate round(ts[0] / lr), which
    matters for k-dependent schedules such as normalized GD);
    the whole run is one compiled `lax` loop storing only the T saved values. A non-finite
    iterate raises `DivergenceError` naming the first bad step.

    Flows: diffrax with a PID step-size controller (``rtol``, ``atol``, ``pcoeff``, ``icoeff``),
    Tsit5 unless ``solver`` is given. ``log_time=True`` integrates in tau = log(1 + t), for
    horizons like t = e^40 ... e^400 (separable problems are stiff in t: explicit steps grow only
    like t). Explicit solvers suit tight tolerances (rtol 1e-10 .. 1e-12); for tau ~ 1e3 .. 1e4 at
    rtol ~ 1e-6 pass diffrax.Kvaerno5() (implicit: a nearly constant step count at any horizon,
    but its Newton iteration struggles below rtol ~ 1e-9). Running out of ``max_steps`` raises
    `SolverBudgetError` with advice. ``tau_grid=True`` (with log_time) takes and returns ``ts`` as
    tau = log(1 + t) itself, for horizons past t = e^709 where t overflows float64 (``traj.time_unit``
    is then "tau"; ``observe`` still receives t = e^tau - 1, which is inf there).

    SDEs (`StochasticModifiedEquation`): ``process.paths`` independent paths with a fixed step
    ``process.dt`` (Euler-Maruyama unless ``solver`` is given); ``ys`` leaves have shape (T, paths, ...).

    ``observe(t, theta)``: computed at each save instead of storing theta (e.g. a margin), so
    long runs return the quantities, not the states. float32 states past the horizon where
    exponentially-tailed runs stall raise `PrecisionError` unless ``allow_float32=True``.
    """
    ts = _check_times(ts)
    for leaf in jax.tree_util.tree_leaves(y0):
        finite_array("y0", leaf)
    y0 = jax.tree_util.tree_map(jnp.asarray, y0)
    observe = _identity_observe if observe is None else observe
    if isinstance(process, AbstractDiscrete):
        _check_precision(process, y0, ts[-1] / float(process.step_time), allow_float32)
        return _simulate_discrete(process, y0, ts, observe)
    if isinstance(process, AbstractSDE):
        return _simulate_sde(process, y0, ts, observe, solver)
    if isinstance(process, AbstractFlow):
        if tau_grid and not log_time:
            raise InputError("tau_grid=True gives ts as tau = log(1 + t): it needs log_time=True")
        _check_precision(process, y0, np.expm1(min(ts[-1], 700.0)) if tau_grid else ts[-1], allow_float32)
        return _simulate_flow(process, y0, ts, observe, log_time, tau_grid, solver, rtol, atol, max_steps,
                              dt0, pcoeff, icoeff)
    raise InputError(f"simulate needs a discrete method, a flow or an SDE, got {type(process).__name__}")
