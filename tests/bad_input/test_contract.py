"""Bad and edge inputs at the process contract: `simulate` and `simulate_sweep` (issue 11, the contract layer).

A table: each case is (id, call, expectation). The expectation is `Raises(types, phrase)` (the library's own
exception, whose message matches the regular expression ``phrase``), `Value(check)` (a correct value, checked
against an independent computation: a closed form or a NumPy loop) or `LowPrecision(...)` (a run in a dtype below
float64: a finite result within the dtype's resolution of the float64 run, or a clear error naming the dtype).
`classify` sorts an outcome into the issue's categories (correct, clear error, silent wrong/NaN, raw traceback); the
test demands the expected one. The contract-level categories (bad learning rate, non-callable and non-scalar losses,
a complex state with a real loss, float16/bfloat16, log_time) are parametrized over every process class of
`dynamics.processes`. ``python tests/bad_input/test_contract.py`` prints each case's category and the counts.
"""

import dataclasses
import inspect
import re

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics as dy
from dynamics import kernel, processes
from dynamics.errors import DynamicsError, InputError, PrecisionError, StepSizeError
from dynamics.sweeps import simulate_sweep

from . import table
from .table import Raises, Value


@dataclasses.dataclass(frozen=True)
class LowPrecision:
    reference: callable  # () -> the float64 result
    dtype: object


def _leaves(traj):
    return [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(traj.ys)]


def judge_low_precision(expect, outcome):
    """A run in a dtype below float64: correct when it matches the float64 result to 20 eps, or a clear error naming
    the dtype (not "not numeric")."""
    if isinstance(outcome, Exception):
        message = str(outcome)
        ok = (isinstance(outcome, (InputError, PrecisionError)) and jnp.dtype(expect.dtype).name in message
              and "numeric" not in message)
        return ("clear error", "") if ok else ("unexpected error", repr(outcome)[:300])
    reference, got = _leaves(expect.reference()), _leaves(outcome)
    eps = float(jnp.finfo(expect.dtype).eps)
    good = all(g.shape == r.shape and np.all(np.isfinite(g)) and np.allclose(g, r, rtol=20 * eps, atol=20 * eps)
               for g, r in zip(got, reference))
    return ("correct", "") if good else ("silent wrong/NaN", f"{got} vs {reference}"[:300])


def classify(call, expect):
    return table.classify(call, expect, judge_low_precision)


# ----------------------------------------------------------------------------- every process, tiny problems

C = jnp.array([1.0, 2.0])
W0 = np.array([1.0, -0.5])
LR = 0.1
KEY = jax.random.PRNGKey(0)


def quadratic(w):
    """0.5 sum_i c_i w_i^2 with c = (1, 2)."""
    return 0.5 * jnp.sum(C * w**2)


def not_scalar(w):
    return 0.5 * C * w**2


def real_of_complex(w):
    """|w|^2: real-valued, so not holomorphic in a complex w."""
    return jnp.sum(jnp.abs(w) ** 2)


def _pair(loss):
    """A two-player objective (phi, theta) -> loss((phi, theta)) for the games."""
    return lambda phi, theta: loss(jnp.stack([phi, theta])) if callable(loss) else loss


def _fields(loss):
    return dy.game_fields(_pair(loss), _pair(loss)) if callable(loss) else (loss, loss)


def _per_example(loss):
    return dy.per_example(lambda w, x: x * loss(w), jnp.ones(2)) if callable(loss) else loss


def _noise(x):
    return 0.1 * jnp.eye(2, dtype=x.dtype)


def _unit(w):
    return jnp.zeros_like(w).at[0].set(1)


#: class name -> (build(loss, lr) -> process, state(w) -> y0, ts, the name of its step-size parameter or None).
#: Physical-time processes save at t = 0, 2 lr; step-time ones at steps 0, 2.
PROCESSES = {
    "GradientDescent": (lambda L, h: dy.GradientDescent(L, h), lambda w: w, [0.0, 0.2], "lr"),
    "NormalizedGD": (lambda L, h: dy.NormalizedGD(L, h), lambda w: w, [0.0, 0.2], "lr"),
    "HeavyBall": (lambda L, h: dy.HeavyBall(L, h), lambda w: w, [0.0, 0.2], "lr"),
    "Nesterov": (lambda L, h: dy.Nesterov(L, h), lambda w: w, [0.0, 0.2], "lr"),
    "SGD": (lambda L, h: dy.SGD(_per_example(L), h, 1, KEY), lambda w: w, [0.0, 0.2], "lr"),
    "SAM": (lambda L, h: dy.SAM(L, h, 0.05), lambda w: w, [0.0, 0.2], "lr"),
    "DelayedGD": (lambda L, h: dy.DelayedGD(L, h, 2), lambda w: w, [0.0, 0.2], "lr"),
    "DriftAdjustedGD": (lambda L, h: dy.DriftAdjustedGD(L, scale=h), lambda w: w, [0.0, 2.0], "scale"),
    "OptaxMethod": (lambda L, h: dy.OptaxMethod(L, optax.sgd(LR)), lambda w: w, [0.0, 2.0], None),
    "SequentialGD": (lambda L, h: dy.SequentialGD(L, L, h), lambda w: w, [0.0, 0.2], "lr"),
    "GameGD": (lambda L, h: dy.GameGD(*_fields(L), h), lambda w: (w[0], w[1]), [0.0, 0.2], "lr"),
    "SeedEnsemble": (lambda L, h: dy.SeedEnsemble(dy.SGD(_per_example(L), h, 1, KEY), jax.random.split(KEY, 2)),
                     lambda w: jnp.stack([w, w]), [0.0, 0.2], "lr"),
    "CentralFlow": (lambda L, h: dy.CentralFlow(L, h, k=1, substeps=1), lambda w: w, [0.0, 2.0], "lr"),
    "GradientFlow": (lambda L, h: dy.GradientFlow(L), lambda w: w, [0.0, 0.2], None),
    "ModifiedFlow": (lambda L, h: dy.ModifiedFlow(L, h, 2), lambda w: w, [0.0, 0.2], "lr"),
    "PrincipalFlow": (lambda L, h: dy.PrincipalFlow(L, h, variant="real"), lambda w: w, [0.0, 0.2], "lr"),
    "StableFlow": (lambda L, h: dy.StableFlow(L, h), lambda w: w, [0.0, 2.0], "lr"),
    "RodFlow": (lambda L, h: dy.RodFlow(L, h), lambda w: (w, 0.01 * w), [0.0, 2.0], "lr"),
    "EdgeFlow": (lambda L, h: dy.EdgeFlow(L, h), lambda w: (w, _unit(w), 0.01 * w[0]), [0.0, 2.0], "lr"),
    "ContinualModifiedFlow": (lambda L, h: dy.ContinualModifiedFlow(L, L, h), lambda w: w, [0.0, 0.2], "lr"),
    "GameModifiedFlow": (lambda L, h: dy.GameModifiedFlow(*_fields(L), h), lambda w: (w[0], w[1]), [0.0, 0.2], "lr"),
    "StochasticModifiedEquation": (lambda L, h: dy.StochasticModifiedEquation(L, h, _noise, KEY, dt=0.05, paths=2),
                                   lambda w: w, [0.0, 0.2], "lr"),
    "RMSPropCentralFlow": (lambda L, h: dy.RMSPropCentralFlow(L, h, k=1, substeps=1), lambda w: w, [0.0, 2.0], "lr"),
    "RMSPropStableFlow": (lambda L, h: dy.RMSPropStableFlow(L, h, substeps=1), lambda w: w, [0.0, 2.0], "lr"),
    "MethodRodFlow": (lambda L, h: dy.MethodRodFlow(dy.HeavyBall(L, h)),
                      lambda w: dy.MethodRodFlow(dy.HeavyBall(quadratic, LR)).initial_state(w), [0.0, 2.0], "lr"),
}
ABSTRACT = {"AbstractProcess", "AbstractDiscrete", "AbstractFlow", "AbstractSDE"}
HAS_LOG_TIME_FIELD = {"GradientFlow", "ModifiedFlow", "PrincipalFlow"}


def _run(name, loss=quadratic, lr=LR, w=W0, **options):
    build, state, ts, _ = PROCESSES[name]
    return dy.simulate(build(loss, lr), state(jnp.asarray(w)), ts, **options)


def test_every_process_class_is_in_the_table():
    classes = {name for name, obj in vars(processes).items()
               if inspect.isclass(obj) and issubclass(obj, processes.AbstractProcess) and name not in ABSTRACT}
    assert classes == set(PROCESSES), f"missing {classes - set(PROCESSES)}, stale {set(PROCESSES) - classes}"


BAD_LRS = [("None", None), ("list", [0.1]), ("complex", 0.1j), ("complex_zero_imag", 0.1 + 0j),
           ("vector", np.array([0.1, 0.2])), ("string", "0.1"), ("nan", np.nan), ("inf", np.inf), ("zero", 0.0),
           ("negative", -0.1)]


def _lr_cases():
    cases = []
    for name, (build, state, ts, param) in PROCESSES.items():
        if param is None:  # GradientFlow has no step; OptaxMethod's learning rate lives inside the optax transformation
            continue
        phrase = "learning rate" if param == "lr" else param
        kinds = (StepSizeError,) if param == "lr" else (StepSizeError, InputError)
        for bad_id, bad in BAD_LRS:
            cases.append((f"lr[{name}-{bad_id}]", lambda b=build, s=state, t=ts, v=bad: dy.simulate(
                b(quadratic, v), s(jnp.asarray(W0)), t), Raises(kinds, phrase)))
        # the same bad values set after construction (eqx.tree_at skips __init__): refused by simulate itself
        if param == "lr" and name not in ("SeedEnsemble", "MethodRodFlow"):  # their lr lives in the wrapped method
            for bad_id, bad in (("nan", np.nan), ("negative", -0.1), ("None", None), ("complex", 0.1j)):
                cases.append((f"lr_set_later[{name}-{bad_id}]", lambda b=build, s=state, t=ts, v=bad: dy.simulate(
                    eqx.tree_at(lambda p: p.lr, b(quadratic, LR), v, is_leaf=lambda x: x is None),
                    s(jnp.asarray(W0)), t), Raises((StepSizeError,), "lr|learning rate")))
    return cases


def _loss_cases():
    cases = []
    for name in PROCESSES:
        cases.append((f"loss_not_callable[{name}]", lambda n=name: _run(n, loss=3.0),
                      Raises((InputError,), "callable|per-example|must be a (loss|function)")))
        cases.append((f"loss_not_scalar[{name}]", lambda n=name: _run(n, loss=not_scalar), Raises((InputError,), "scalar")))
        cases.append((f"complex_y0_real_loss[{name}]", lambda n=name: _run(n, loss=real_of_complex, w=W0 * (1 + 1j)),
                      Raises((InputError,), "holomorphic")))
    return cases


def _low_precision_cases():
    cases = []
    for name in PROCESSES:
        for dtype in (jnp.float16, jnp.bfloat16):
            call = lambda n=name, d=dtype: _run(n, w=jnp.asarray(W0, d))
            cases.append((f"low_precision[{name}-{jnp.dtype(dtype).name}]", call,
                          LowPrecision(lambda n=name: _run(n), dtype)))
    return cases


def _log_time_cases():
    cases = []
    for name, (build, state, ts, _) in PROCESSES.items():
        call = lambda n=name: _run(n, log_time=True)
        if name in HAS_LOG_TIME_FIELD:
            reference = lambda n=name: _leaves(_run(n))
            expect = Value(lambda traj, r=reference: all(np.allclose(a, b, rtol=1e-6, atol=1e-9)
                                                         for a, b in zip(_leaves(traj), r())))
        elif issubclass(type(build(quadratic, LR)), processes.AbstractFlow):
            expect = Raises((InputError,), "log_time.*GradientFlow")
        else:
            expect = Raises((InputError,), "log_time")
        cases.append((f"log_time[{name}]", call, expect))
        if name in ("GradientDescent", "OptaxMethod", "StochasticModifiedEquation"):
            cases.append((f"tau_grid[{name}]", lambda n=name: _run(n, log_time=True, tau_grid=True),
                          Raises((InputError,), "log_time|tau_grid")))
    return cases


# ----------------------------------------------------------------------------- item 1: complex states


def _gf_split_pair(traj):
    """GF on x^2 + y^2 from (1, 1): (x, y)(t) = e^{-2t} (1, 1) (closed form)."""
    x, y = (np.asarray(leaf)[-1] for leaf in traj.ys)
    return np.allclose([x, y], np.exp(-2 * 0.5), rtol=1e-7)


def _pf_complex_is_gd(traj):
    """Complex principal flow on a quadratic at t = k h equals GD iterate k: w_k = (1 - h c)^k w0 (closed form)."""
    h, k = 0.4, np.arange(4)
    expect = (1 - h * np.asarray(C))[None, :] ** k[:, None] * W0
    return np.allclose(np.asarray(traj.ys).real, expect, rtol=1e-6, atol=1e-8)


COMPLEX_CASES = [
    ("gf_complex_abs2", lambda: dy.simulate(dy.GradientFlow(real_of_complex), jnp.asarray([1 + 1j]), [0.0, 0.5]),
     Raises((InputError,), "holomorphic.*real and imaginary")),
    ("gd_complex_abs2", lambda: dy.simulate(dy.GradientDescent(real_of_complex, 0.1), jnp.asarray([1 + 1j]),
                                            [0.0, 0.5]), Raises((InputError,), "holomorphic")),
    ("gd_real_state_complex_loss", lambda: dy.simulate(dy.GradientDescent(lambda w: jnp.sum(w**2) * (1 + 1j), 0.1),
                                                       jnp.ones(2), [0.0, 0.2]), Raises((InputError,), "complex")),
    ("gf_split_real_imag", lambda: dy.simulate(dy.GradientFlow(lambda p: p[0] ** 2 + p[1] ** 2),
                                               (jnp.asarray(1.0), jnp.asarray(1.0)), [0.0, 0.5], rtol=1e-10,
                                               atol=1e-12), Value(_gf_split_pair)),
    ("pf_complex_quadratic_still_works", lambda: dy.simulate(
        dy.PrincipalFlow(quadratic, 0.4), jnp.asarray(W0, complex), 0.4 * np.arange(4), rtol=1e-10, atol=1e-12),
     Value(_pf_complex_is_gd)),
]

# ----------------------------------------------------------------------------- item 3: one precision policy

_AXIS_LOSS = dy.linear_classifier(np.diag([1.0, 2.0]), np.ones(2), "exp")

PRECISION_CASES = [
    (f"gd_{name}_past_horizon", lambda d=dtype: dy.simulate(dy.GradientDescent(_AXIS_LOSS, 0.5), jnp.zeros(2, d),
                                                            [0.0, 1e7]), Raises((PrecisionError,), name))
    for name, dtype in (("float16", jnp.float16), ("bfloat16", jnp.bfloat16), ("float32", jnp.float32))
] + [
    (f"gf_{name}_log_time_past_horizon", lambda d=dtype: dy.simulate(
        dy.GradientFlow(_AXIS_LOSS), jnp.zeros(2, d), np.expm1([0.0, 100.0]), log_time=True),
     Raises((PrecisionError,), name))
    for name, dtype in (("float16", jnp.float16), ("bfloat16", jnp.bfloat16), ("float32", jnp.float32))
] + [
    ("gd_float16_horizon_from_finfo", lambda: dy.simulate(dy.GradientDescent(_AXIS_LOSS, 0.5), jnp.zeros(2, jnp.float16),
                                                          [0.0, 1e3]), Raises((PrecisionError,), "float16.*steps")),
    ("gd_float16_past_horizon_allowed", lambda: dy.simulate(dy.GradientDescent(_AXIS_LOSS, 0.5),
                                                            jnp.zeros(2, jnp.float16), [0.0, 1e3],
                                                            allow_low_precision=True),
     Value(lambda traj: np.asarray(traj.ys).dtype == np.float16)),
    ("gd_bfloat16_quadratic_closed_form", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.25),
                                                              jnp.asarray(W0, jnp.bfloat16), [0.0, 0.5]),
     Value(lambda traj: np.asarray(traj.ys).dtype == jnp.bfloat16 and np.allclose(
         np.asarray(traj.ys, np.float64)[-1], (1 - 0.25 * np.asarray(C)) ** 2 * W0, rtol=2e-2))),
]

# ----------------------------------------------------------------------------- item 4: simulate_sweep = simulate's checks


def _gd_lane(scale):
    return dy.GradientDescent(quadratic, 0.1), scale * jnp.asarray(W0)


def _gd_lane_f16(scale):
    return dy.GradientDescent(_AXIS_LOSS, 0.5), scale * jnp.zeros(2, jnp.float16)


def _gf_lane(scale):
    return dy.GradientFlow(quadratic), scale * jnp.asarray(W0)


SWEEP_CASES = [
    ("sweep_times_within_one_step", lambda: simulate_sweep(_gd_lane, jnp.ones(2), [0.0, 0.01, 0.02]),
     Raises((InputError,), "closer than one step")),
    ("sweep_low_precision_past_horizon", lambda: simulate_sweep(_gd_lane_f16, jnp.ones(2, jnp.float16), [0.0, 1e7]),
     Raises((PrecisionError,), "float16")),
    ("sweep_nan_start", lambda: simulate_sweep(_gd_lane, jnp.array([1.0, np.nan]), [0.0, 0.2]),
     Raises((InputError,), "y0.*NaN")),
    ("sweep_log_time_discrete", lambda: simulate_sweep(_gd_lane, jnp.ones(2), [0.0, 0.2], log_time=True),
     Raises((InputError,), "log_time")),
    ("sweep_batch_leading_sizes", lambda: simulate_sweep(lambda b: (dy.GradientDescent(quadratic, 0.1), b[0] * b[1]),
                                                         (jnp.ones(2), jnp.ones((3, 2))), [0.0, 0.2]),
     Raises((InputError,), "leading")),
    ("sweep_dt0_negative", lambda: simulate_sweep(_gf_lane, jnp.ones(2), [0.0, 0.2], dt0=-0.1),
     Raises((InputError,), "dt0")),
    ("sweep_gd_correct", lambda: simulate_sweep(_gd_lane, jnp.array([1.0, 2.0]), [0.0, 0.2]),
     Value(lambda traj: np.allclose(np.asarray(traj.ys)[-1], np.array([1.0, 2.0])[:, None]
                                    * (1 - 0.1 * np.asarray(C)) ** 2 * W0, rtol=1e-14))),
]

# ----------------------------------------------------------------------------- item 6: no hang


def _with_limit(steps, call):
    """call() with the long-run limit (kernel.LONG_RUN_STEPS, 1e8) lowered to ``steps``, so the test stays fast."""
    old = kernel.LONG_RUN_STEPS
    kernel.LONG_RUN_STEPS = steps
    try:
        return call()
    finally:
        kernel.LONG_RUN_STEPS = old


def _with_time_limit(call):
    """call() with runs above 10 steps timed (kernel.PROBE_ABOVE) and a time limit of 0 s (kernel.LONG_RUN_SECONDS)."""
    old = kernel.PROBE_ABOVE, kernel.LONG_RUN_SECONDS
    kernel.PROBE_ABOVE, kernel.LONG_RUN_SECONDS = 10, 0.0
    try:
        return call()
    finally:
        kernel.PROBE_ABOVE, kernel.LONG_RUN_SECONDS = old


def _limit_lifted(simulate_one):
    """With every run above 10 steps timed and a time limit of 0 s, 20 steps are refused (the message carries the
    probe's estimate) unless allow_long=True."""
    run = lambda **kw: _with_time_limit(lambda: simulate_one(**kw))
    try:
        run()
    except InputError as e:
        assert re.search("about .* steps/s, measured on a 4096-step probe.*allow_long", str(e)), str(e)
    else:
        return None
    return run(allow_long=True)


def _gd_20_steps(**kw):
    return dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 2.0], **kw)


def _sweep_20_steps(**kw):
    return simulate_sweep(lambda w: (dy.GradientDescent(quadratic, 0.1), w), jnp.stack([jnp.asarray(W0)] * 2),
                          [0.0, 2.0], **kw)


LONG_CASES = [
    # 1e13 steps: refused after the timed probe on any machine slower than 1.7e10 steps/s
    ("gd_1e13_steps", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 1e12]),
     Raises((InputError,), "1e\\+13 steps: about .* measured on a 4096-step probe.*allow_long")),
    ("gd_step_count_overflow", lambda: dy.simulate(dy.GradientDescent(quadratic, 1e-300), jnp.asarray(W0),
                                                   [0.0, 1e-10, 1e30]), Raises((InputError,), "steps")),
    ("gd_step_count_overflow_not_closer", lambda: dy.simulate(dy.GradientDescent(quadratic, 1e-300), jnp.asarray(W0),
                                                              [0.0, 1e29, 1e30]), Raises((InputError,), "^(?!.*closer)")),
    ("schedule_too_long", lambda: _with_limit(10**5, lambda: dy.simulate(
        dy.GradientDescent(quadratic, lambda k: 1e-9 + 0.0 * k), jnp.asarray(W0), [0.0, 1e3])),
     Raises((InputError,), "steps.*allow_long")),
    ("sme_too_many_steps", lambda: dy.simulate(dy.StochasticModifiedEquation(quadratic, 0.1, _noise, KEY, dt=1e-9),
                                               jnp.asarray(W0), [0.0, 1e3]), Raises((InputError,), "steps")),
    ("allow_long_lifts_the_limit", lambda: _limit_lifted(_gd_20_steps),
     Value(lambda traj: traj is not None and np.allclose(np.asarray(traj.ys)[-1],
                                                         (1 - 0.1 * np.asarray(C)) ** 20 * W0, rtol=1e-13))),
    ("allow_long_lifts_the_limit_sweep", lambda: _limit_lifted(_sweep_20_steps),
     Value(lambda traj: traj is not None and np.allclose(np.asarray(traj.ys)[-1],
                                                         (1 - 0.1 * np.asarray(C)) ** 20 * W0, rtol=1e-13))),
]

# ----------------------------------------------------------------------------- item 7: flow options, diagnoses


def _gf(**options):
    return dy.simulate(dy.GradientFlow(quadratic), jnp.asarray(W0), [0.0, 0.5], **options)


OPTION_CASES = [
    ("rtol_atol_zero", lambda: _gf(rtol=0.0, atol=0.0), Raises((InputError,), "rtol.*atol")),
    ("rtol_nan", lambda: _gf(rtol=np.nan), Raises((InputError,), "rtol")),
    ("dt0_zero", lambda: _gf(dt0=0.0), Raises((InputError,), "dt0")),
    ("dt0_negative", lambda: _gf(dt0=-0.1), Raises((InputError,), "dt0")),
    ("dt0_nan", lambda: _gf(dt0=np.nan), Raises((InputError,), "dt0")),
    ("max_steps_zero", lambda: _gf(max_steps=0), Raises((InputError,), "max_steps")),
    ("max_steps_negative", lambda: _gf(max_steps=-5), Raises((InputError,), "max_steps")),
    ("max_steps_float", lambda: _gf(max_steps=1.5), Raises((InputError,), "max_steps")),
    ("max_steps_none", lambda: _gf(max_steps=None), Raises((InputError,), "max_steps")),
    ("solver_name", lambda: _gf(solver="tsit5"), Raises((InputError,), "solver.*diffrax.Tsit5()")),
    ("solver_class", lambda: _gf(solver=diffrax.Tsit5), Raises((InputError,), "solver.*diffrax.Tsit5()")),
    ("euler_without_dt0", lambda: _gf(solver=diffrax.Euler()), Raises((InputError,), "fixed-step.*dt0")),
    ("euler_with_dt0", lambda: _gf(solver=diffrax.Euler(), dt0=0.01),
     # Euler with step 0.01 on w' = -c w: w(0.5) = (1 - 0.01 c)^50 w0 (a NumPy loop, exactly)
     Value(lambda traj: np.allclose(np.asarray(traj.ys)[-1], (1 - 0.01 * np.asarray(C)) ** 50 * W0, rtol=1e-10))),
    ("euler_max_steps_too_small", lambda: _gf(solver=diffrax.Euler(), dt0=1e-4, max_steps=100),
     Raises((InputError, dy.SolverBudgetError), "max_steps")),
    ("optax_times_within_one_step", lambda: dy.simulate(dy.OptaxMethod(quadratic, optax.sgd(0.1)), jnp.asarray(W0),
                                                        [0.0, 0.4]), Raises((InputError,), "ts count steps")),
    ("gd_closer_names_lr", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 0.01]),
     Raises((InputError,), "lr = 0.1")),
    ("central_flow_closer_names_lr", lambda: dy.simulate(dy.CentralFlow(quadratic, 0.1, k=1, substeps=1),
                                                         jnp.asarray(W0), [0.0, 0.4]),
     Raises((InputError,), r"ts count steps.*lr = 0\.1 does not set this clock")),
    ("dal_divergence_no_lr_1", lambda: dy.simulate(dy.DriftAdjustedGD(lambda w: -jnp.sum(w**2), power=0.0, scale=3.0,
                                                                      max_lr=3.0), jnp.asarray(W0), [0.0, 2000.0]),
     Raises((dy.DivergenceError,), "^(?!.*lr = 1\\b).*iterate \\d+ \\(step \\d+\\)")),
]

# ----------------------------------------------------------------------------- item 8: errors inside compiled code

COMPILED_CASES = [
    ("pf_complex_not_holomorphic", lambda: dy.simulate(dy.PrincipalFlow(lambda w: jnp.sum(w * jnp.conj(w)), 0.1),
                                                       jnp.asarray(W0, complex), [0.0, 0.2]),
     Raises((DynamicsError,), "^principal flow.*holomorphic")),
    ("tagged_runtime_error", lambda: dy.simulate(_Tagged(), jnp.asarray(W0), [0.0, 0.2]),
     Raises((StepSizeError,), "^tagged: lr too large$")),
]


class _Tagged(dy.AbstractDiscrete):
    """A process whose step raises a tagged runtime error (the mechanism the processes use)."""

    lr: object = 0.1

    def step(self, theta, k):
        return dy.errors.error_if(theta, k >= 1, "tagged: lr too large", StepSizeError)


# ----------------------------------------------------------------------------- item 9: y0, loss, observe, batches

A3 = jnp.diag(jnp.array([1.0, 2.0, 3.0]))

SHAPE_CASES = [
    ("y0_wrong_shape", lambda: dy.simulate(dy.GradientDescent(lambda w: 0.5 * w @ (A3 @ w), 0.1), jnp.ones(4),
                                           [0.0, 0.2]), Raises((InputError,), r"y0.*\(4,\)")),
    ("y0_wrong_shape_flow", lambda: dy.simulate(dy.GradientFlow(lambda w: 0.5 * w @ (A3 @ w)), jnp.ones(4),
                                                [0.0, 0.2]), Raises((InputError,), r"y0.*\(4,\)")),
    ("y0_wrong_container", lambda: dy.simulate(dy.GradientDescent(lambda w: 0.5 * w @ (A3 @ w), 0.1),
                                               {"w": jnp.ones(3)}, [0.0, 0.2]), Raises((InputError,), "y0")),
    ("y0_integer", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.array([1, 2]), [0.0, 0.2]),
     Raises((InputError,), "floating-point")),
    ("y0_string", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), "w", [0.0, 0.2]),
     Raises((InputError,), "floating-point")),
    ("observe_returns_string", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 0.2],
                                                   observe=lambda t, w: "margin"), Raises((InputError,), "observe")),
    ("observe_returns_none", lambda: dy.simulate(dy.GradientFlow(quadratic), jnp.asarray(W0), [0.0, 0.2],
                                                 observe=lambda t, w: None), Raises((InputError,), "observe")),
    ("observe_fails", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 0.2],
                                          observe=lambda t, w: w @ jnp.ones(3)), Raises((InputError,), "observe")),
    ("process_not_a_process", lambda: dy.simulate(quadratic, jnp.asarray(W0), [0.0, 0.2]),
     Raises((InputError,), "process")),
    ("observe_correct", lambda: dy.simulate(dy.GradientDescent(quadratic, 0.1), jnp.asarray(W0), [0.0, 0.2],
                                            observe=lambda t, w: quadratic(w)),
     Value(lambda traj: np.allclose(np.asarray(traj.ys)[-1],
                                    0.5 * np.sum(np.asarray(C) * ((1 - 0.1 * np.asarray(C)) ** 2 * W0) ** 2), rtol=1e-14))),
]

CASES = (_lr_cases() + _loss_cases() + _low_precision_cases() + _log_time_cases() + COMPLEX_CASES + PRECISION_CASES
         + SWEEP_CASES + LONG_CASES + OPTION_CASES + COMPILED_CASES + SHAPE_CASES)


@pytest.mark.parametrize("call, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(call, expect):
    category, detail = classify(call, expect)
    wanted = "clear error" if isinstance(expect, Raises) else "correct"
    if isinstance(expect, LowPrecision) and category == "clear error":
        wanted = "clear error"
    assert category == wanted, f"{category}: {detail}"


def test_runtime_error_has_no_traceback_in_front():
    """The message of an error raised inside compiled code is the library's, first, and is not chained."""
    with pytest.raises(DynamicsError) as info:   # the holomorphy check runs inside the compiled solve
        dy.simulate(dy.PrincipalFlow(lambda w: jnp.sum(w * jnp.conj(w)), 0.1), jnp.asarray(W0, complex), [0.0, 0.2])
    assert str(info.value).startswith("principal flow")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def _report():
    """Print each case's category and the counts per category (the issue's before/after note)."""
    import collections
    import sys

    skip = set(sys.argv[1:])
    counts = collections.Counter()
    by_group = collections.defaultdict(collections.Counter)
    for case_id, call, expect in CASES:
        if case_id in skip:
            print(f"{case_id:60s} SKIPPED")
            continue
        category, detail = classify(call, expect)
        counts[category] += 1
        by_group[case_id.split("[")[0] if "[" in case_id else "specific"][category] += 1
        print(f"{case_id:60s} {category:18s} {detail[:140]}", flush=True)
    for group, c in by_group.items():
        print(group, dict(c))
    print(dict(counts))


if __name__ == "__main__":
    _report()
