"""The compiled kernel shared by `simulate` and `simulate_sweep`: the contract checks (made once here, for every
process, by `check_run`), the time grid of discrete processes, the discrete loop, the diffrax solve, parameter pytrees
with non-array leaves, and run statistics.

Everything here is an implementation detail of the two entry points; users call `dynamics.simulate`.
"""

import contextlib
import dataclasses

import sys
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .errors import DynamicsError, InputError, PrecisionError, StepSizeError, compiled_errors
from .models.losses import MarginLoss
from .processes.base import AbstractDiscrete, AbstractFlow, TimeUnit, positive_lr
from .processes.sde import AbstractSDE
from .validation import finite_array, partition_parameters

#: GD updates on an exponentially-tailed separable loss fall below the resolution of a dtype with machine epsilon eps
#: near 1/(8 eps) steps (2^20 ~ 1e6 for float32, 128 for float16, 16 for bfloat16), and exp(-u) comes within a factor
#: 1000 of the smallest normal number at u = -log(tiny) - log(1000) (tau ~ 80 for float32 and bfloat16, 2.8 for float16)
#: (docs/implicit-bias.md section 1.1): `low_precision_horizon`.
STEPS_PER_INVERSE_EPS = 0.125
UNDERFLOW_MARGIN = 1000.0
#: the most loop iterations a run may take without a timing, unless ``allow_long=True``: SDE steps x paths, and the
#: steps of a learning-rate schedule (enumerated on the host to place the saves). 1e8 steps take minutes even for a
#: tiny model, so a longer request is most often a wrong time unit or learning rate.
LONG_RUN_STEPS = 10**8
#: a discrete run of more than PROBE_ABOVE steps is timed first: PROBE_STEPS steps of its own compiled loop, run once
#: to compile and once to time. An estimate above LONG_RUN_SECONDS is refused (`InputError` with the estimate) unless
#: ``allow_long=True``; one above REPORT_SECONDS is printed to stderr before the run starts.
PROBE_ABOVE = 10**6
PROBE_STEPS = 4096
LONG_RUN_SECONDS = 600.0
REPORT_SECONDS = 10.0
#: iterate indices are int64: no run may need more steps than this (``allow_long`` does not lift it).
INT64_STEPS = 2**62
#: a schedule is evaluated on the host in chunks of this many steps (doubling up to SCHEDULE_CHUNK_MAX) while
#: locating the requested times.
SCHEDULE_CHUNK = 1 << 16
SCHEDULE_CHUNK_MAX = 1 << 22


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


def split_parameters(y0, name="y0"):
    """(params, static) = the inexact (float/complex) array leaves of y0 and the rest (`partition_parameters`).

    Python and NumPy numbers become JAX arrays first. Raises `InputError` when y0 holds no floating-point array, or
    a NaN/Inf, naming the leaf."""
    y0 = jax.tree_util.tree_map(_as_array_leaf, y0)
    params, static = partition_parameters(y0, name)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        finite_array(f"{name}{jax.tree_util.keystr(path)}", leaf)
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


def _describe(tree, name="y0"):
    """``y0: float64 array of shape (4,)`` (one line per leaf, at most 4) for messages."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    parts = [f"{name}{jax.tree_util.keystr(path)}: {jnp.result_type(leaf).name} array of shape {jnp.shape(leaf)}"
             if hasattr(leaf, "shape") else f"{name}{jax.tree_util.keystr(path)}: {type(leaf).__name__}"
             for path, leaf in leaves[:4]]
    return "; ".join(parts) + (f"; ... ({len(leaves)} leaves)" if len(leaves) > 4 else "")


_MISSING = object()


def check_process(process):
    """The checks every process gets from the contract: a process of a known kind, a callable loss, and step sizes
    (``lr``; ``dt`` of an SDE) that are positive finite real scalars, also when set after construction (e.g. by
    ``eqx.tree_at``). Values are only read, never replaced: a new number still reuses the compiled code."""
    if not isinstance(process, (AbstractDiscrete, AbstractFlow, AbstractSDE)):
        raise InputError(f"simulate needs a discrete method, a flow or an SDE (a dynamics process), got "
                         f"{type(process).__name__}; for an optax optimizer use dynamics.OptaxMethod(loss, tx)")
    name = type(process).__name__
    loss = getattr(process, "loss", None)
    if loss is not None and not callable(loss):
        raise InputError(f"{name}: the loss must be a callable of the parameters returning a scalar, got {loss!r} "
                         f"({type(loss).__name__})")
    for attribute, what in (("lr", "learning rate lr"), ("dt", "SDE step dt")):
        value = getattr(process, attribute, _MISSING)
        if value is not _MISSING and not callable(value):  # a schedule's values are checked where they are used (iterate_grid)
            try:
                positive_lr(value, what)
            except StepSizeError as error:
                raise StepSizeError(f"{name}: {error}") from None


def check_state(process, y0):
    """Refuse a complex y0 unless the process runs on complex states (`AbstractProcess.complex_state`)."""
    complex_leaves = [jax.tree_util.keystr(path) or "y0" for path, leaf in jax.tree_util.tree_leaves_with_path(y0)
                      if jnp.iscomplexobj(leaf)]
    if complex_leaves and not process.complex_state:
        raise InputError(
            f"{type(process).__name__} runs on real states, but y0 has complex leaves ({', '.join(complex_leaves)}). "
            "A real-valued loss of a complex w = x + i y is not holomorphic: jax.grad returns the conjugate of its "
            "gradient (grad_x L - i grad_y L), so descent would move the imaginary part the wrong way (and a "
            "complex-valued loss has no descent direction). Split the state into real and imaginary parts, e.g. "
            "y0 = (w.real, w.imag) and a loss of both; complex states are for holomorphic losses in processes that "
            "support them (PrincipalFlow(variant='complex')).")


def check_observe(observe, t0, y0, what="theta"):
    """``observe(t, theta)`` must return an array or a pytree of arrays at y0 (checked by tracing it once, without the
    loss); `InputError` naming what it returned or how it failed. ``what``: the name of the second argument in
    messages ("state" when observe receives the process state, `check_observe_state`)."""
    if observe is identity_observe:
        return
    try:
        out = jax.eval_shape(observe, jnp.asarray(t0), y0)
    except DynamicsError:
        raise
    except Exception as error:  # noqa: BLE001 -- the user's function: any failure is reported as bad input
        raise InputError(f"observe(t, {what}) failed at {_describe(y0, what)} ({type(error).__name__}: "
                         f"{_first_line(error)}); it must return an array or a pytree of arrays") from error
    if not jax.tree_util.tree_leaves(out):
        raise InputError(f"observe(t, {what}) returned {out!r}, no arrays: it must return an array or a pytree of "
                         "arrays (a missing return statement?)")


def check_observe_state(process, observe, t0, y0, k0):
    """``observe_state=True``: observe(t, state) receives the discrete process's full state (e.g. `OptaxState`: the
    parameters and the optimizer's state) instead of its parameters. Refused (`InputError`) for flows and SDEs, whose
    state is the parameters themselves; otherwise observe is traced once on the shapes of ``process.init(y0, k0)``
    (`check_observe`). A bool flag: it selects compiled code, numbers still do not."""
    if not isinstance(process, AbstractDiscrete):
        kind = "an SDE" if isinstance(process, AbstractSDE) else "a flow"
        raise InputError(f"observe_state=True applies to discrete methods (their state carries more than the "
                         f"parameters: an optimizer's moments, counters); {type(process).__name__} is {kind}, whose "
                         "state is the parameters, which observe(t, theta) already receives: drop observe_state")
    with traced_errors(process, y0):
        state = jax.eval_shape(lambda y: process.init(y, jnp.asarray(k0)), y0)
    check_observe(observe, t0, state, "state")


def _first_line(error):
    """The error's message on one line (at most 600 characters), without a trailing period."""
    return " ".join(str(error).split())[:600].rstrip(".")


def _log_time_flows():
    """Names of the flows (subclasses of AbstractFlow anywhere) that define a log-time field."""
    found, todo = set(), [AbstractFlow]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.log_time_field is not AbstractFlow.log_time_field and not cls.__name__.startswith("_"):
            found.add(cls.__name__)
    return sorted(found)


def check_clock(process, log_time, tau_grid):
    """log_time / tau_grid are options of flows that define a log-time field; `InputError` anywhere else."""
    if not (log_time or tau_grid):
        return
    name = type(process).__name__
    if not isinstance(process, AbstractFlow):
        kind = "a discrete method whose iterates sit at t_k" if isinstance(process, AbstractDiscrete) else "an SDE"
        raise InputError(f"log_time/tau_grid apply to flows; {name} is {kind} (pass physical times, "
                         "log_time=False, tau_grid=False)")
    if tau_grid and not log_time:
        raise InputError("tau_grid=True gives ts as tau = log(1 + t): it needs log_time=True")
    if type(process).log_time_field is AbstractFlow.log_time_field:
        raise InputError(f"log_time=True needs a flow with a log-time field; {name} has none (flows that have one: "
                         f"{', '.join(_log_time_flows())}). Run it with log_time=False")


@contextlib.contextmanager
def traced_errors(process, y0):
    """Errors raised while tracing the process at y0 (a loss expecting another shape, dtype or container; a Python
    error in the loss) become `InputError` naming y0 and the original error; the library's own errors pass."""
    try:
        yield
    except DynamicsError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, ZeroDivisionError) as error:
        raise InputError(f"{type(process).__name__} could not be traced at {_describe(y0)}: {type(error).__name__}: "
                         f"{_first_line(error)}. y0 must have the structure, shapes and dtypes that the process and "
                         "its loss expect") from error


def _exponential_tail(process):
    loss = getattr(process, "loss", None)
    return isinstance(loss, MarginLoss) and loss.tail.positive_slope


def low_precision_horizon(dtype):
    """(steps, log time) past which an exponentially-tailed separable run in ``dtype`` stalls silently: GD's update
    falls below the resolution near STEPS_PER_INVERSE_EPS / eps steps, and exp(-margin) nears the smallest normal
    number at log t = -log(tiny) - log(UNDERFLOW_MARGIN) (float32: 2^20 ~ 1e6 steps, log t ~ 80)."""
    info = jnp.finfo(dtype)
    return STEPS_PER_INVERSE_EPS / float(info.eps), -np.log(float(info.tiny)) - np.log(UNDERFLOW_MARGIN)


def _lowest_precision(y0):
    """The real dtype of lowest precision among y0's inexact leaves below float64, or None."""
    dtypes = {jnp.finfo(jnp.result_type(leaf)).dtype for leaf in jax.tree_util.tree_leaves(y0)}
    low = [d for d in dtypes if jnp.finfo(d).bits < 64]
    return max(low, key=lambda d: float(jnp.finfo(d).eps)) if low else None


def check_precision(process, y0, horizon, allow_low_precision):
    """One policy for every dtype below float64 (float32, float16, bfloat16): refuse exponentially-tailed runs past the
    dtype's `low_precision_horizon` (``horizon``: the last iterate index for discrete processes, the last physical
    time t for flows), where they silently stall."""
    dtype = _lowest_precision(y0)
    if allow_low_precision or dtype is None or not _exponential_tail(process):
        return
    steps, log_time = low_precision_horizon(dtype)
    name = jnp.dtype(dtype).name
    advice = "Use float64 (jax_enable_x64) or pass allow_low_precision=True to run anyway."
    if isinstance(process, AbstractDiscrete) and horizon > steps:
        raise PrecisionError(
            f"{name} {type(process).__name__} asked for {horizon:.3g} steps on a separable exponentially-tailed "
            f"loss: past ~{steps:.3g} steps (1/(8 eps), eps = {float(jnp.finfo(dtype).eps):.3g}) the update falls "
            f"below {name} resolution and the iterate freezes silently. {advice}")
    if not isinstance(process, AbstractDiscrete) and np.log1p(horizon) > log_time:
        raise PrecisionError(
            f"{name} flow asked for t = {horizon:.3g} (log t = {np.log1p(horizon):.1f}): exp(-margin) underflows in "
            f"{name} past log t ~ {log_time:.0f} and the field stalls. {advice}")


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


def _step_limit(allow_long):
    return INT64_STEPS if allow_long else LONG_RUN_STEPS


def _too_many_steps(process, steps, why, allow_long):
    """`InputError` for a run of ``steps`` loop iterations above the limit (see LONG_RUN_STEPS)."""
    name = type(process).__name__
    if steps > INT64_STEPS or allow_long:
        return InputError(f"{name} would need {steps:.3g} steps ({why}): more than int64 iterate indices can count "
                          f"({INT64_STEPS:.3g}); check the time unit of ts and the learning rate")
    return InputError(f"{name} would take {steps:.3g} steps ({why}), above the long-run limit of {LONG_RUN_STEPS:.0e} "
                      "steps (dynamics.kernel.LONG_RUN_STEPS: minutes of compute even for a tiny model). Check the time "
                      "unit of ts and the learning rate; pass allow_long=True to run it anyway")


def _duration(seconds):
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_duration(process, total, run_steps, allow_long):
    """Estimated wall time (s) of a discrete run of ``total`` steps, or None at most PROBE_ABOVE steps.

    ``run_steps(n)`` runs n steps of the run's own compiled loop and blocks until done; it is called twice with
    n = PROBE_STEPS (the first call compiles, the second is timed), so the estimate total / rate includes the
    model's real cost. Above LONG_RUN_SECONDS the run is refused (`InputError` with the estimate) unless
    ``allow_long``; above REPORT_SECONDS the estimate is printed to stderr."""
    if total <= PROBE_ABOVE:
        return None
    run_steps(PROBE_STEPS)
    start = time.perf_counter()
    run_steps(PROBE_STEPS)
    rate = PROBE_STEPS / max(time.perf_counter() - start, 1e-9)
    estimate = total / rate
    name = type(process).__name__
    measured = f"about {_duration(estimate)} at {rate:.3g} steps/s, measured on a {PROBE_STEPS}-step probe"
    if estimate > LONG_RUN_SECONDS and not allow_long:
        raise InputError(f"{name} would take {total:.3g} steps: {measured}, above the long-run limit of "
                         f"{_duration(LONG_RUN_SECONDS)} (dynamics.kernel.LONG_RUN_SECONDS). Check the time unit of ts "
                         "and the learning rate; pass allow_long=True to run it anyway")
    if estimate > REPORT_SECONDS:
        print(f"dynamics: {name}, {total:.3g} steps, {measured}", file=sys.stderr, flush=True)
    return estimate


def describe_rate(process):
    """The learning rate for messages (``lr = 0.1``, ``a learning-rate schedule``), or None for a process without one;
    never the unit of step time."""
    lr = getattr(process, "lr", None)
    if callable(lr):
        return "a learning-rate schedule"
    if lr is not None:
        return f"lr = {float(np.asarray(lr)):g}"
    if process.time_unit == TimeUnit.STEP:
        return None
    return f"step size {float(_checked_sizes(process, np.zeros(1, np.int64))[0]):g}"


def _unit(process, h):
    """How a step of length h is named in messages: the learning rate, or one step of step time."""
    if process.time_unit == TimeUnit.STEP:
        rate = describe_rate(process)
        return "ts count steps: time_unit 'step', t = k" + (f"; {rate} does not set this clock" if rate else "")
    return f"lr = {h:g}: iterate k sits at t = k * {h:g}"


def iterate_grid(process, ts, allow_long=False):
    """(steps, times): the iterate index saved for each requested time and its time t_k.

    Constant step h: k = round(t / h) (iterates closer than one step are refused). Otherwise (a schedule)
    t_k = sum_{j<k} h_j, and each request t is served by the first iterate with t_k >= t (relative slack 1e-12
    for rounding in the partial sums), the schedule being evaluated on the host chunk by chunk. Runs of more than
    LONG_RUN_STEPS steps raise `InputError` unless ``allow_long`` for a schedule (whose steps are enumerated here);
    a constant-step run of any length up to int64 is timed by `check_duration` before it starts."""
    limit = _step_limit(allow_long)
    if process.constant_step:  # no enumeration: a long run is timed by `check_duration` instead
        h = float(_checked_sizes(process, np.zeros(1, np.int64))[0])
        with np.errstate(over="ignore"):
            counts = ts / h
        if not np.isfinite(counts[-1]) or counts[-1] > INT64_STEPS:
            raise _too_many_steps(process, counts[-1] - counts[0], f"t up to {ts[-1]:.6g} at {_unit(process, h)}",
                                  True)
        steps = np.rint(counts).astype(np.int64)
        if np.any(np.diff(steps) <= 0):
            raise InputError(f"{type(process).__name__}: ts are closer than one step ({_unit(process, h)}); request "
                             "times at least one step apart")
        return steps, steps * h
    targets = ts * (1 - 1e-12)
    steps, times = np.empty(ts.size, np.int64), np.empty(ts.size)
    served, start, t_start, chunk = 0, 0, 0.0, SCHEDULE_CHUNK
    while served < ts.size:
        if start >= limit:
            raise _too_many_steps(process, start, f"the schedule's time sum_j lr_j reaches only {t_start:.6g} after "
                                  f"{start} steps, short of t = {ts[-1]:.6g}", allow_long)
        h = np.asarray(process.step_size(np.arange(start, start + chunk, dtype=np.int64)), np.float64)
        bad = _first_bad(h)  # only the steps taken must be > 0: a schedule may decay to 0 after the last request
        t_k = np.concatenate([[t_start], t_start + np.cumsum(h[:bad])])  # iterates start .. start + len(h[:bad])
        found = np.searchsorted(t_k, targets[served:], side="left")
        n = int(np.sum(found < t_k.size))  # the requests served in this chunk (targets increase)
        steps[served:served + n], times[served:served + n] = start + found[:n], t_k[found[:n]]
        served += n
        if bad is not None and served < ts.size:
            raise _step_size_error(process, start + bad, h[bad], f" (t = {t_k[-1]:.6g} there, short of the last "
                                   f"requested time {ts[-1]:.6g})")
        start, t_start, chunk = start + chunk, t_k[-1], min(2 * chunk, SCHEDULE_CHUNK_MAX)
    if np.any(np.diff(steps) <= 0):
        raise InputError("two requested times fall within one step of the schedule; request times at least one "
                         "step apart (traj.ts holds the times t_k of the iterates saved)")
    if steps[-1] - steps[0] > limit:
        raise _too_many_steps(process, steps[-1] - steps[0], f"t up to {ts[-1]:.6g}", allow_long)
    return steps, times


def time_of_iterate(process, k):
    """t_k = sum_{j<k} step_size(j) (k h for a constant step)."""
    if process.constant_step:
        return float(k) * float(_checked_sizes(process, np.zeros(1, np.int64))[0])
    return float(np.sum(_checked_sizes(process, np.arange(k, dtype=np.int64))))


def keep_dtypes(new, old):
    """``new`` (a step's output state) with each floating leaf cast back to the dtype of the same leaf of ``old``: a
    discrete process computes in y0's dtype (a float64 constant in a step would otherwise promote a float16 state and
    break the loop). A real leaf that turned complex raises `InputError` (never silently complex)."""

    def cast(n, o):
        n_dtype, o_dtype = jnp.result_type(n), jnp.result_type(o)
        if n_dtype == o_dtype or not (jnp.issubdtype(n_dtype, jnp.inexact) and jnp.issubdtype(o_dtype, jnp.inexact)):
            return n
        if jnp.issubdtype(n_dtype, jnp.complexfloating) and not jnp.issubdtype(o_dtype, jnp.complexfloating):
            raise InputError(f"a step turned a real {o_dtype} state complex ({n_dtype}): the loss or the process returns "
                             "complex values at a real state; descent needs a real-valued loss")
        return jnp.asarray(n).astype(o_dtype)

    return jax.tree_util.tree_map(cast, new, old)


@eqx.filter_jit
def run_discrete(process, y0, steps, times, observe, observe_state=False):
    """Advance step by step to each save index; store only observe(t, theta) at the saves (observe(t, state), the
    process's full state, when ``observe_state``).

    Returns (saved, first non-finite iterate index or -1, counters of the final state or None). The bad iterate is
    located by replaying only the segment in which the state first became non-finite, so the hot loop carries no
    check."""

    step = lambda s, k: keep_dtypes(process.step(s, k), s)

    def advance(state, start, stop):
        return jax.lax.fori_loop(start, stop, lambda k, s: step(s, k), state)

    def first_bad_step(state, start, stop):
        def cond(carry):
            k, s = carry
            return (k < stop) & all_finite(process.params(s))

        k, _ = jax.lax.while_loop(cond, lambda c: (c[0] + 1, step(c[1], c[0])), (start, state))
        return k

    def segment(carry, stop_and_time):
        stop, t = stop_and_time
        state, start, diverged_at = carry
        new_state = advance(state, start, stop)
        bad = ~all_finite(process.params(new_state)) & (diverged_at < 0)
        diverged_at = jax.lax.cond(bad, lambda: first_bad_step(state, start, stop), lambda: diverged_at)
        saved = observe(t, new_state if observe_state else process.params(new_state))
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


def as_time_dtype(tree):
    """Leaves promoted to float64 (complex128), the dtype of the times: what diffrax integrates in anyway, done before
    compiling so that a float32/float16/bfloat16 y0 reuses the float64 compiled code."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.result_type(leaf, jnp.float64)), tree)


def split_complex(tree):
    """Complex leaves -> real (2, ...) stacks (diffrax integrates real states); returns (tree, mask)."""
    mask = jax.tree_util.tree_map(jnp.iscomplexobj, tree)
    split = jax.tree_util.tree_map(lambda x, c: jnp.stack([x.real, x.imag]) if c else x, tree, mask)
    return split, mask


def merge_complex(tree, mask):
    return jax.tree_util.tree_map(lambda x, c: x[0] + 1j * x[1] if c else x, tree, mask)


def _controller(solver, rtol, atol, pcoeff, icoeff):
    """diffrax's PID controller for an adaptive solver (one with an error estimate); constant steps of dt0 otherwise."""
    if isinstance(solver, diffrax.AbstractAdaptiveSolver):
        return diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    return diffrax.ConstantStepSize()


@eqx.filter_jit
def run_flow(process, y0, mask, grid, observe, log_time, solver, rtol, atol, max_steps, dt0, pcoeff, icoeff):
    """Integrate on ``grid`` (t, or tau = log(1 + t) when log_time). Numbers (rtol, atol, dt0, PID
    coefficients) are arrays: new values reuse the compiled code. A fixed-step solver takes steps of dt0."""
    field = process.log_time_field if log_time else process.field
    to_physical = jnp.expm1 if log_time else (lambda t: t)
    term = diffrax.ODETerm(lambda s, y, args: split_complex(field(s, merge_complex(y, mask)))[0])
    save = diffrax.SaveAt(ts=grid, fn=lambda s, y, args: observe(to_physical(s), merge_complex(y, mask)))
    sol = diffrax.diffeqsolve(term, solver, grid[0], grid[-1], dt0, y0, saveat=save,
                              stepsize_controller=_controller(solver, rtol, atol, pcoeff, icoeff),
                              max_steps=max_steps, throw=False)
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


def _real(name, value):
    try:
        if np.ndim(value) != 0 or np.iscomplexobj(value) or isinstance(value, (bool, str)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real number, got {value!r}") from None


def check_solver(solver):
    """A diffrax solver instance (Tsit5 when None); `InputError` for a name or an uninstantiated class."""
    if solver is None:
        return diffrax.Tsit5()
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    name = solver if isinstance(solver, str) else getattr(solver, "__name__", type(solver).__name__)
    match = [n for n in dir(diffrax) if n.lower() == str(name).lower()
             and isinstance(getattr(diffrax, n), type) and issubclass(getattr(diffrax, n), diffrax.AbstractSolver)]
    hint = f"diffrax.{match[0]}()" if match else "diffrax.Tsit5(), diffrax.Dopri8() or diffrax.Kvaerno5()"
    raise InputError(f"solver must be a diffrax solver instance, got {solver!r}: pass e.g. {hint}")


def flow_options(rtol, atol, dt0, pcoeff, icoeff, solver=None, max_steps=100_000, span=None):
    """The flow options as float64 arrays (dt0 may be None), validated, with the solver (`check_solver`) and
    max_steps. rtol, atol >= 0 and not both 0; dt0 > 0 (required by a fixed-step solver such as diffrax.Euler(), which
    then takes (span / dt0) steps, at most max_steps); max_steps a positive integer."""
    values = {"rtol": rtol, "atol": atol, "pcoeff": pcoeff, "icoeff": icoeff}
    out = {name: _real(name, value) for name, value in values.items()}
    for name, x in out.items():
        if not (np.isfinite(x) and x >= 0):
            raise InputError(f"{name} must be finite and >= 0, got {values[name]!r}")
    if out["rtol"] == 0 and out["atol"] == 0:
        raise InputError("rtol and atol are both 0: the step-size controller could never accept a step; "
                         "pass rtol > 0 or atol > 0 (e.g. rtol=1e-8, atol=1e-10)")
    out = {name: jnp.asarray(x, jnp.float64) for name, x in out.items()}
    if dt0 is not None:
        step = _real("dt0", dt0)
        if not (np.isfinite(step) and step > 0):
            raise InputError(f"dt0 (the first step) must be finite and > 0, or None to let the solver choose, "
                             f"got {dt0!r}")
    out["dt0"] = None if dt0 is None else jnp.asarray(step, jnp.float64)
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise InputError(f"max_steps must be a positive integer (the solver's step budget), got {max_steps!r}")
    out["max_steps"] = int(max_steps)
    out["solver"] = solver = check_solver(solver)
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        if dt0 is None:
            raise InputError(f"{type(solver).__name__} is a fixed-step solver (no error estimate for rtol/atol): pass "
                             "its step dt0")
        if span is not None and span / step > max_steps:
            raise InputError(f"{type(solver).__name__} with the fixed step dt0 = {step:g} needs {span / step:.3g} "
                             f"steps, more than max_steps = {max_steps}: raise max_steps or dt0")
    return out


# ----------------------------------------------------------------------------- the contract, once for every process


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What `check_run` settled: ``kind`` ("discrete", "flow" or "sde"); ``ts`` the requested times (checked);
    discrete: ``steps`` and ``times`` (the iterates saved and their t_k); flows: ``grid`` (t, or tau = log(1 + t)) and
    the validated ``options`` (`flow_options`)."""

    kind: str
    ts: np.ndarray
    steps: np.ndarray = None
    times: np.ndarray = None
    grid: np.ndarray = None
    options: dict = None


def check_run(process, y0, ts, *, observe=identity_observe, log_time=False, tau_grid=False, solver=None, rtol=1e-8,
              atol=1e-10, max_steps=100_000, dt0=None, pcoeff=0.3, icoeff=0.3, allow_low_precision=False,
              allow_long=False, observe_state=False):
    """Every check `simulate` and `simulate_sweep` make before compiling anything, in one place: the process
    (`check_process`), the times (`check_times`), the clock (`check_clock`), a complex state (`check_state`),
    observe (`check_observe`; `check_observe_state` when ``observe_state``), the step grid and the long-run limit (`iterate_grid`; SDEs: (t1 - t0)/dt steps x
    paths), the precision policy (`check_precision`) and the flow options (`flow_options`). ``y0``: the parameters
    (inexact array leaves, already split from a model's static part and checked finite). Returns a `RunPlan`."""
    check_process(process)
    ts = check_times(ts)
    check_clock(process, log_time, tau_grid)
    check_state(process, y0)
    if not isinstance(observe_state, (bool, np.bool_)):
        raise InputError(f"observe_state must be True or False, got {observe_state!r}")
    if observe_state:
        if not isinstance(process, AbstractDiscrete):
            check_observe_state(process, observe, ts[0], y0, 0)  # raises: flows and SDEs
    else:
        check_observe(observe, np.expm1(ts[0]) if tau_grid else ts[0], y0)
    if isinstance(process, AbstractDiscrete):
        steps, times = iterate_grid(process, ts, allow_long)
        if observe_state:
            check_observe_state(process, observe, times[0], y0, steps[0])
        check_precision(process, y0, steps[-1], allow_low_precision)
        return RunPlan("discrete", ts, steps=steps, times=times)
    if isinstance(process, AbstractSDE):
        steps = np.ceil((ts[-1] - ts[0]) / float(process.dt)) * int(process.paths)
        if not np.isfinite(steps) or steps > _step_limit(allow_long):
            raise _too_many_steps(process, steps, f"paths x (t1 - t0) / dt = {process.paths} x "
                                  f"{(ts[-1] - ts[0]) / float(process.dt):.3g} with dt = {float(process.dt):g}",
                                  allow_long)
        check_precision(process, y0, ts[-1], allow_low_precision)
        return RunPlan("sde", ts)
    grid = ts if tau_grid else (np.log1p(ts) if log_time else ts)
    check_precision(process, y0, np.expm1(min(ts[-1], 700.0)) if tau_grid else ts[-1], allow_low_precision)
    options = flow_options(rtol, atol, dt0, pcoeff, icoeff, solver, max_steps, span=grid[-1] - grid[0])
    return RunPlan("flow", ts, grid=grid, options=options)


@contextlib.contextmanager
def run_errors(process, y0):
    """Errors of a run, translated: raised while tracing (`traced_errors`) or inside compiled code
    (`dynamics.errors.compiled_errors`)."""
    with compiled_errors(), traced_errors(process, y0):
        yield
