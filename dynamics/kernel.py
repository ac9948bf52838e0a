"""The compiled kernel shared by `simulate` and `simulate_sweep`: input checks, the time grid of discrete
processes, the discrete loop, the diffrax solve, parameter pytrees with non-array leaves, and run statistics.

Everything here is an implementation detail of the two entry points; users call `dynamics.simulate`.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import InputError, PrecisionError, StepSizeError
from .models.losses import MarginLoss
from .processes.base import AbstractDiscrete, AbstractFlow
from .validation import finite_array, partition_parameters

#: float32 horizons past which exponentially-tailed separable runs are meaningless (docs/implicit-bias.md section 1.1):
#: GD updates fall below float32 eps near 1e6 steps; exp(-u) underflows at u ~ 87 (tau ~ 87).
FLOAT32_MAX_STEPS = 1_000_000
FLOAT32_MAX_LOG_TIME = 80.0
#: a schedule is evaluated on the host in chunks of this many steps while locating the requested times.
SCHEDULE_CHUNK = 1 << 16
#: the most iterates a schedule may need to reach the last requested time.
SCHEDULE_MAX_STEPS = 1 << 31


# ----------------------------------------------------------------------------- inputs


def check_times(ts):
    ts = finite_array("ts", ts, ndim=1).astype(np.float64)
    if ts.size == 0:
        raise InputError("ts must contain at least one time")
    if np.any(np.diff(ts) <= 0):
        raise InputError("ts must be strictly increasing")
    if ts[0] < 0:
        raise InputError(f"ts must be >= 0, got ts[0] = {ts[0]}")
    return ts


def _as_array_leaf(x):
    return jnp.asarray(x) if isinstance(x, (bool, int, float, complex, np.ndarray, np.generic, jax.Array)) else x


def split_parameters(y0):
    """(params, static) = the inexact (float/complex) array leaves of y0 and the rest (`partition_parameters`).

    Python and NumPy numbers become JAX arrays first. Raises `InputError` when y0 holds no floating-point array, or
    a NaN/Inf, naming the leaf."""
    y0 = jax.tree_util.tree_map(_as_array_leaf, y0)
    params, static = partition_parameters(y0, "y0")
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        finite_array(f"y0{jax.tree_util.keystr(path)}", leaf)
    return params, static


def has_leaves(static):
    return bool(jax.tree_util.tree_leaves(static))


class CombinedObserve(eqx.Module):
    """observe(t, theta) called with the full model ``eqx.combine(params, static)``."""

    observe: object
    static: object

    def __call__(self, t, params):
        return self.observe(t, eqx.combine(params, self.static))


def identity_observe(t, theta):
    return theta


def _exponential_tail(process):
    loss = getattr(process, "loss", None)
    return isinstance(loss, MarginLoss) and loss.tail.positive_slope


def check_precision(process, y0, horizon, allow_float32):
    """Refuse float32 runs past the horizon where exponentially-tailed runs silently stall."""
    float32 = any(jnp.result_type(leaf) == jnp.float32 for leaf in jax.tree_util.tree_leaves(y0))
    if allow_float32 or not float32 or not _exponential_tail(process):
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


def all_finite(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))


# ----------------------------------------------------------------------------- discrete


def _first_bad(h):
    """Index of the first step size that is not finite and > 0, or None."""
    bad = ~(np.isfinite(h) & (h > 0))
    return int(np.argmax(bad)) if bad.any() else None


def _step_size_error(process, step, value, note=""):
    return StepSizeError(f"{type(process).__name__}: the step size at step {step} is {value!r}{note}; "
                         "a learning rate (schedule) must be finite and > 0 at every step taken")


def _checked_sizes(process, k):
    h = np.asarray(process.step_size(k), dtype=np.float64)
    bad = _first_bad(h)
    if bad is not None:
        raise _step_size_error(process, int(k[bad]), h[bad])
    return h


def iterate_grid(process, ts):
    """(steps, times): the iterate index saved for each requested time and its time t_k.

    Constant step h: k = round(t / h) (iterates closer than one step are refused). Otherwise (a schedule)
    t_k = sum_{j<k} h_j, and each request t is served by the first iterate with t_k >= t (relative slack 1e-12
    for rounding in the partial sums)."""
    if process.constant_step:
        h = float(_checked_sizes(process, np.zeros(1, np.int64))[0])
        steps = np.rint(ts / h).astype(np.int64)
        if np.any(np.diff(steps) <= 0):
            raise InputError(f"ts are closer than one step ({h:g}); iterate k sits at t = k * {h:g}")
        return steps, steps * h
    partial = [np.zeros(1)]
    start = 0
    target = ts[-1] * (1 - 1e-12)
    while partial[-1][-1] < target:
        if start >= SCHEDULE_MAX_STEPS:
            raise InputError(f"{type(process).__name__}: the schedule's time sum_j lr_j reaches only "
                             f"{partial[-1][-1]:.6g} after {start} steps, short of the last requested time "
                             f"{ts[-1]:.6g} (a schedule that decays too fast has a finite total time)")
        h = np.asarray(process.step_size(np.arange(start, start + SCHEDULE_CHUNK, dtype=np.int64)), np.float64)
        bad = _first_bad(h)  # only the steps taken must be > 0: a schedule may decay to 0 after the last request
        reached = partial[-1][-1] + np.cumsum(h[:bad])
        if bad is not None and (reached.size == 0 or reached[-1] < target):
            t = reached[-1] if reached.size else partial[-1][-1]
            raise _step_size_error(process, start + bad, h[bad], f" (t = {t:.6g} there, short of the last "
                                   f"requested time {ts[-1]:.6g})")
        partial.append(reached)
        start += SCHEDULE_CHUNK
    t_k = np.concatenate(partial)
    steps = np.searchsorted(t_k, ts * (1 - 1e-12), side="left").astype(np.int64)
    if np.any(np.diff(steps) <= 0):
        raise InputError("two requested times fall within one step of the schedule; request times at least one "
                         "step apart (traj.ts holds the times t_k of the iterates saved)")
    return steps, t_k[steps]


def time_of_iterate(process, k):
    """t_k = sum_{j<k} step_size(j) (k h for a constant step)."""
    if process.constant_step:
        return float(k) * float(_checked_sizes(process, np.zeros(1, np.int64))[0])
    return float(np.sum(_checked_sizes(process, np.arange(k, dtype=np.int64))))


@eqx.filter_jit
def run_discrete(process, y0, steps, times, observe):
    """Advance step by step to each save index; store only observe(t, theta) at the saves.

    Returns (saved, first non-finite iterate index or -1, counters of the final state or None). The bad iterate is
    located by replaying only the segment in which the state first became non-finite, so the hot loop carries no
    check."""

    def advance(state, start, stop):
        return jax.lax.fori_loop(start, stop, lambda k, s: process.step(s, k), state)

    def first_bad_step(state, start, stop):
        def cond(carry):
            k, s = carry
            return (k < stop) & all_finite(process.params(s))

        k, _ = jax.lax.while_loop(cond, lambda c: (c[0] + 1, process.step(c[1], c[0])), (start, state))
        return k

    def segment(carry, stop_and_time):
        stop, t = stop_and_time
        state, start, diverged_at = carry
        new_state = advance(state, start, stop)
        bad = ~all_finite(process.params(new_state)) & (diverged_at < 0)
        diverged_at = jax.lax.cond(bad, lambda: first_bad_step(state, start, stop), lambda: diverged_at)
        saved = observe(t, process.params(new_state))
        return (new_state, stop, diverged_at), saved

    state0 = process.init(y0, steps[0])
    start = (state0, steps[0], -jnp.ones((), steps.dtype))
    (state, _, diverged_at), saved = jax.lax.scan(segment, start, (steps, times))
    counted = process.counts(state)
    if counted is not None:
        counted = jax.tree_util.tree_map(jnp.subtract, counted, process.counts(state0))
    return saved, diverged_at, counted


def discrete_stats(process, theta, taken, counted):
    """steps and derivative counts: cost per step x steps, plus the counters a process carries in its state."""
    stats = {"steps": int(taken)}
    cost = process.step_cost(theta)
    if cost is not None:
        totals = cost.times(taken)
        if counted is not None:
            totals = {name: totals[name] + _as_number(extra) for name, extra in zip(totals, counted)}
        stats.update(totals)
    return stats


def _as_number(x):
    x = float(x)
    return int(x) if x.is_integer() else x


# ----------------------------------------------------------------------------- flows


def split_complex(tree):
    """Complex leaves -> real (2, ...) stacks (diffrax integrates real states); returns (tree, mask)."""
    mask = jax.tree_util.tree_map(jnp.iscomplexobj, tree)
    split = jax.tree_util.tree_map(lambda x, c: jnp.stack([x.real, x.imag]) if c else x, tree, mask)
    return split, mask


def merge_complex(tree, mask):
    return jax.tree_util.tree_map(lambda x, c: x[0] + 1j * x[1] if c else x, tree, mask)


@eqx.filter_jit
def run_flow(process, y0, mask, grid, observe, log_time, solver, rtol, atol, max_steps, dt0, pcoeff, icoeff):
    """Integrate on ``grid`` (t, or tau = log(1 + t) when log_time). Numbers (rtol, atol, dt0, PID
    coefficients) are arrays: new values reuse the compiled code."""
    field = process.log_time_field if log_time else process.field
    to_physical = jnp.expm1 if log_time else (lambda t: t)
    term = diffrax.ODETerm(lambda s, y, args: split_complex(field(s, merge_complex(y, mask)))[0])
    save = diffrax.SaveAt(ts=grid, fn=lambda s, y, args: observe(to_physical(s), merge_complex(y, mask)))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    sol = diffrax.diffeqsolve(term, solver, grid[0], grid[-1], dt0, y0, saveat=save,
                              stepsize_controller=controller, max_steps=max_steps, throw=False)
    return sol.ys, sol.result, sol.stats


@eqx.filter_jit
def run_flow_until(process, y0, t1, stop, solver, rtol, atol, max_steps):
    """Integrate the flow from t = 0 towards ``t1`` and stop at the end of the first step where ``stop(y)`` holds
    (a diffrax event, no host loop). Returns (y at the stop, its time, result, stats, whether the event fired)."""
    term = diffrax.ODETerm(lambda t, y, args: process.field(t, y))
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(term, solver, 0.0, t1, None, y0, saveat=diffrax.SaveAt(t1=True),
                              stepsize_controller=controller, max_steps=max_steps, throw=False,
                              event=diffrax.Event(lambda t, y, args, **kwargs: stop(y)))
    event = jnp.any(jnp.stack(jax.tree_util.tree_leaves(sol.event_mask)))
    return jax.tree_util.tree_map(lambda leaf: leaf[-1], sol.ys), sol.ts[-1], sol.result, sol.stats, event


def field_evaluations(solver, steps):
    """Field evaluations of an explicit Runge-Kutta solve: (stages - FSAL) per attempted step (accepted or
    rejected) + 1 for the first stage of an FSAL method. Start-up evaluations (diffrax's initial step-size
    selection when dt0 is None, at most 2) are not included: checked against a counting callback to within 3.
    None for other solvers (implicit solvers' Newton iterations are not counted by diffrax)."""
    tableau = getattr(solver, "tableau", None)
    if not isinstance(solver, diffrax.AbstractERK) or tableau is None:
        return None
    fsal = int(bool(tableau.fsal))
    return int(steps) * (tableau.num_stages - fsal) + fsal


def flow_options(rtol, atol, dt0, pcoeff, icoeff):
    """The flow options as float64 arrays (dt0 may be None), validated."""
    values = {"rtol": rtol, "atol": atol, "pcoeff": pcoeff, "icoeff": icoeff}
    out = {}
    for name, value in values.items():
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a real number, got {value!r}") from None
        if not np.isfinite(x) or x < 0 or (name in ("rtol", "atol") and x == 0 and values["rtol" if name == "atol"
                                                                                          else "atol"] == 0):
            raise InputError(f"{name} must be finite and >= 0 (rtol and atol not both 0), got {value!r}")
        out[name] = jnp.asarray(x, jnp.float64)
    out["dt0"] = None if dt0 is None else jnp.asarray(float(dt0), jnp.float64)
    return out
