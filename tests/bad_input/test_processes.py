"""Bad and edge inputs to every process of `dynamics.processes` (issue 11), one table.

Each case names the process class it covers, a thunk, and what must happen: `Raises(type, phrase)` (the library's own
exception with a phrase of its message) or `Equals(reference)` (the result against an independent computation: a
NumPy loop or a closed form). `test_every_process_is_covered` keeps the table complete.
"""

import inspect
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics as dy
import dynamics.processes as processes
from dynamics.errors import DivergenceError, DynamicsError, InputError, StepSizeError


class Raises(NamedTuple):
    error: type
    phrase: str


class Equals(NamedTuple):
    reference: Callable  # () -> the expected value (a pytree of arrays)
    atol: float = 1e-12


class Case(NamedTuple):
    id: str
    process: str  # the class of dynamics.processes the case covers
    run: Callable
    expect: object
    mark: object = ()


#: `simulate` does not yet hand an SDE's saved paths to `dynamics.processes.sde.nonfinite_path_error` (its SDE branch
#: lives in dynamics/simulate.py, outside the processes); remove this mark once it does.


# ----------------------------------------------------------------------------- tiny problems

W0 = jnp.array([1.0, -0.5])
KEY = jax.random.PRNGKey(0)
KEYS = jax.random.split(KEY, 3)
STEPS3 = np.arange(3.0)


def quad(w):
    return 0.5 * jnp.sum(w**2)


def quad12(w):
    """H = diag(1, 2)."""
    return 0.5 * jnp.sum(jnp.array([1.0, 2.0]) * w**2)


def noise(w):
    return 0.1 * jnp.eye(2)


X4 = np.array([[1.0, 0.5], [0.5, 1.0], [1.0, 1.0], [0.2, 1.0]])
CLASSIFIER = dy.linear_classifier(X4, np.ones(4))
FIELDS = processes.game_fields(lambda p, t: p * t, lambda p, t: -p * t)
PAIR = (jnp.asarray(1.0), jnp.asarray(0.5))


def sme(**kwargs):
    args = dict(loss=quad, lr=0.1, noise_factor=noise, key=KEY)
    args.update(kwargs)
    return processes.StochasticModifiedEquation(**args)


def sim(process, y0, ts, **kwargs):
    return dy.simulate(process, y0, ts, **kwargs).ys


def numpy_normalized_gd(w, lr, steps, loss, grad):
    """eta_k = lr / (L sqrt(k + 1)); a step of 0 where L = 0."""
    out = [np.array(w, float)]
    for k in range(steps):
        L = loss(out[-1])
        out.append(out[-1] if L == 0 else out[-1] - lr / (L * np.sqrt(k + 1)) * grad(out[-1]))
    return np.array(out)


def sme_blow_up():
    """dX = 4 X^3 dt + noise from X = (3, -1.5): the drift blows up in finite time on every path."""
    return sim(sme(loss=lambda w: -jnp.sum(w**4), paths=3), 3 * W0, np.array([0.0, 1.0, 5.0]))


def sme_blow_up_report():
    """The error for the blow-up: raised by simulate, or built from its saved paths by `nonfinite_path_error`."""
    process, ts = sme(loss=lambda w: -jnp.sum(w**4), paths=3), np.array([0.0, 1.0, 5.0])
    try:
        ys = sim(process, 3 * W0, ts)
    except DivergenceError as error:
        return error
    return processes.sde.nonfinite_path_error(process, ts, ys)


def nonfinite_path_report():
    """Saved values (T = 3, paths = 2): path 1 becomes NaN at the save t = 2."""
    ys = np.zeros((3, 2, 2))
    ys[2, 1, 0] = np.nan
    error = processes.sde.nonfinite_path_error(sme(paths=2), np.array([0.0, 1.0, 2.0]), ys)
    return np.array([error.path, error.time]), isinstance(error, DivergenceError), "path 1" in str(error)


def edge_direction_scaled():
    """(x, 2u, rho) runs like (x, u, rho), the u-part doubled: u is read as the direction u/||u||."""
    edge = processes.EdgeFlow(quad12, 0.9)
    x, u, rho = edge.initial_state(W0)
    a = sim(edge, (x, u, rho), STEPS3)
    b = sim(edge, (x, 2.0 * u, rho), STEPS3)
    return np.concatenate([b[0].ravel(), b[1].ravel() / 2.0, b[2].ravel()]), np.concatenate(
        [a[0].ravel(), a[1].ravel(), a[2].ravel()])


def ensemble_matches_single_runs():
    sgd = processes.SGD(CLASSIFIER, 0.1, 2, KEY)
    ens = sim(processes.SeedEnsemble(sgd, KEYS), jnp.zeros((3, 2)), np.array([0.0, 0.3]))
    single = [sim(processes.SGD(CLASSIFIER, 0.1, 2, key), jnp.zeros(2), np.array([0.0, 0.3])) for key in KEYS]
    return np.asarray(ens), np.stack(single, axis=1)


# ----------------------------------------------------------------------------- the table

CASES = [
    # StochasticModifiedEquation
    Case("sme-blow-up-names-path", "StochasticModifiedEquation", sme_blow_up, Raises(DivergenceError, "path 0")),
    Case("sme-nan-loss-names-path", "StochasticModifiedEquation",
         lambda: sim(sme(loss=lambda w: jnp.sum(jnp.sqrt(w - 0.9)), paths=3), W0, np.array([0.0, 1.0])),
         Raises(DivergenceError, "path 0")),
    Case("sme-blow-up-report", "StochasticModifiedEquation",  # (is a DivergenceError, path, last finite save)
         lambda: np.array([isinstance(error := sme_blow_up_report(), DivergenceError), error.path, error.time], float),
         Equals(lambda: np.array([1.0, 0.0, 0.0]))),  # blow-up at t ~ 1/72: the save t = 1 is NaN
    Case("sme-nonfinite-path-report", "StochasticModifiedEquation", lambda: nonfinite_path_report()[0],
         Equals(lambda: np.array([1.0, 1.0]))),
    Case("sme-dt-zero", "StochasticModifiedEquation", lambda: sme(dt=0.0), Raises(StepSizeError, "dt")),
    Case("sme-dt-negative", "StochasticModifiedEquation", lambda: sme(dt=-0.01), Raises(StepSizeError, "dt")),
    Case("sme-dt-nan", "StochasticModifiedEquation", lambda: sme(dt=float("nan")), Raises(StepSizeError, "dt")),
    Case("sme-paths-zero", "StochasticModifiedEquation", lambda: sme(paths=0), Raises(InputError, "paths")),
    Case("sme-paths-negative", "StochasticModifiedEquation", lambda: sme(paths=-2), Raises(InputError, "paths")),
    Case("sme-paths-fractional", "StochasticModifiedEquation", lambda: sme(paths=2.5), Raises(InputError, "paths")),
    Case("sme-noise-vector", "StochasticModifiedEquation",
         lambda: sim(sme(noise_factor=lambda w: jnp.ones(2)), W0, STEPS3 / 10), Raises(InputError, "jnp.diag")),
    Case("sme-noise-wrong-rows", "StochasticModifiedEquation",
         lambda: sim(sme(noise_factor=lambda w: jnp.ones((3, 2))), W0, STEPS3 / 10), Raises(InputError, "(n, m)")),
    Case("sme-noise-not-callable", "StochasticModifiedEquation", lambda: sme(noise_factor=jnp.eye(2)),
         Raises(InputError, "noise_factor")),
    Case("sme-key-none", "StochasticModifiedEquation", lambda: sme(key=None), Raises(InputError, "PRNGKey(0)")),
    Case("sme-pytree-state", "StochasticModifiedEquation",
         lambda: sim(sme(loss=lambda p: quad(p["a"])), {"a": W0}, STEPS3 / 10), Raises(InputError, "1-D array")),
    Case("sme-order-3", "StochasticModifiedEquation", lambda: sme(order=3), Raises(InputError, "order")),
    Case("sme-zero-noise-is-euler", "StochasticModifiedEquation",
         lambda: sim(sme(noise_factor=lambda w: jnp.zeros((2, 1)), dt=0.01), W0, np.array([0.0, 0.5]))[-1, 0],
         Equals(lambda: (1 - 0.01) ** 50 * np.asarray(W0), 1e-12)),

    # DriftAdjustedGD
    Case("dal-start-at-minimizer", "DriftAdjustedGD", lambda: sim(processes.DriftAdjustedGD(quad), 0 * W0, STEPS3),
         Equals(lambda: np.zeros((3, 2)))),
    Case("dal-lands-on-minimizer", "DriftAdjustedGD",
         lambda: sim(processes.DriftAdjustedGD(quad, power=1.0, scale=1.0), jnp.array([2.0]), np.arange(4.0)),
         Equals(lambda: np.array([[2.0], [0.0], [0.0], [0.0]]))),  # h = scale / 1 = 1: w1 = 2 - 1 * 2 = 0
    Case("dal-finite-difference-at-minimizer", "DriftAdjustedGD",
         lambda: sim(processes.DriftAdjustedGD(quad, hg="finite_difference"), 0 * W0, STEPS3),
         Equals(lambda: np.zeros((3, 2)))),
    Case("dal-rate-at-critical-point", "DriftAdjustedGD",
         lambda: processes.DriftAdjustedGD(quad, max_lr=3.0).learning_rate(0 * W0), Equals(lambda: 3.0)),
    Case("dal-power-nan", "DriftAdjustedGD", lambda: processes.DriftAdjustedGD(quad, power=float("nan")),
         Raises(InputError, "power")),
    Case("dal-power-negative", "DriftAdjustedGD", lambda: processes.DriftAdjustedGD(quad, power=-1.0),
         Raises(InputError, "power")),
    Case("dal-hg-unknown", "DriftAdjustedGD", lambda: processes.DriftAdjustedGD(quad, hg="secant"),
         Raises(InputError, "hg")),

    # NormalizedGD
    Case("ngd-start-at-zero-loss", "NormalizedGD", lambda: sim(processes.NormalizedGD(quad, 0.1), 0 * W0, STEPS3 / 10),
         Equals(lambda: np.zeros((3, 2)))),
    Case("ngd-lands-on-zero-loss", "NormalizedGD",
         lambda: sim(processes.NormalizedGD(lambda w: jnp.sum(w**2), 0.5), jnp.array([1.0]), 0.5 * np.arange(4.0)),
         Equals(lambda: numpy_normalized_gd([1.0], 0.5, 3, lambda w: np.sum(w**2), lambda w: 2 * w))),
    Case("ngd-infinite-loss-is-divergence", "NormalizedGD",
         lambda: sim(processes.NormalizedGD(lambda w: 1e300 * jnp.sum(w**2), 0.1), jnp.array([1e5]), STEPS3 / 10),
         Raises(DivergenceError, "iterate 1")),
    Case("ngd-negative-loss", "NormalizedGD",
         lambda: sim(processes.NormalizedGD(lambda w: jnp.sum(w) - 10.0, 0.1), W0, STEPS3 / 10),
         Raises(DynamicsError, "positive loss")),
    Case("ngd-exp-loss-against-numpy", "NormalizedGD",
         lambda: sim(processes.NormalizedGD(CLASSIFIER, 0.1), jnp.zeros(2), 0.1 * np.arange(4.0)),
         Equals(lambda: numpy_normalized_gd([0.0, 0.0], 0.1, 3, lambda w: np.sum(np.exp(-X4 @ w)),
                                            lambda w: -X4.T @ np.exp(-X4 @ w)))),

    # SGD
    Case("sgd-key-none", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 2, None), Raises(InputError, "PRNGKey(0)")),
    Case("sgd-key-int", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 2, 0), Raises(InputError, "PRNGKey(0)")),
    Case("sgd-key-float", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 2, jnp.zeros(2)),
         Raises(InputError, "PRNG key")),
    Case("sgd-key-batch", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 2, KEYS), Raises(InputError, "SeedEnsemble")),
    Case("sgd-batch-zero", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 0, KEY), Raises(InputError, "batch_size")),
    Case("sgd-batch-fractional", "SGD", lambda: processes.SGD(CLASSIFIER, 0.1, 2.0, KEY),
         Raises(InputError, "batch_size")),
    Case("sgd-batch-numpy-int", "SGD",
         lambda: sim(processes.SGD(CLASSIFIER, 0.1, np.int64(2), KEY), jnp.zeros(2), np.array([0.0, 0.3])),
         Equals(lambda: sim(processes.SGD(CLASSIFIER, 0.1, 2, KEY), jnp.zeros(2), np.array([0.0, 0.3])))),

    # SeedEnsemble
    Case("ensemble-no-seed-axis", "SeedEnsemble",
         lambda: sim(processes.SeedEnsemble(processes.SGD(CLASSIFIER, 0.1, 2, KEY), KEYS), jnp.zeros(2), STEPS3 / 10),
         Raises(InputError, "seed axis")),
    Case("ensemble-seed-mismatch", "SeedEnsemble",
         lambda: sim(processes.SeedEnsemble(processes.SGD(CLASSIFIER, 0.1, 2, KEY), KEYS), jnp.zeros((4, 2)),
                     STEPS3 / 10), Raises(InputError, "(4, 2)")),
    Case("ensemble-keyless-process", "SeedEnsemble",
         lambda: processes.SeedEnsemble(processes.GradientDescent(quad, 0.1), KEYS), Raises(InputError, "no key")),
    Case("ensemble-one-key", "SeedEnsemble",
         lambda: processes.SeedEnsemble(processes.SGD(CLASSIFIER, 0.1, 2, KEY), KEY), Raises(InputError, "split")),
    Case("ensemble-keys-none", "SeedEnsemble",
         lambda: processes.SeedEnsemble(processes.SGD(CLASSIFIER, 0.1, 2, KEY), None), Raises(InputError, "keys")),
    Case("ensemble-equals-single-runs", "SeedEnsemble", lambda: ensemble_matches_single_runs()[0],
         Equals(lambda: ensemble_matches_single_runs()[1])),

    # RodFlow, EdgeFlow
    Case("rod-raw-parameters", "RodFlow", lambda: sim(processes.RodFlow(quad, 0.1), W0, STEPS3),
         Raises(InputError, "rod_from_gd")),
    Case("rod-mismatched-parts", "RodFlow", lambda: sim(processes.RodFlow(quad, 0.1), (W0, jnp.zeros(3)), STEPS3),
         Raises(InputError, "same structure")),
    Case("rod-three-parts", "RodFlow", lambda: sim(processes.RodFlow(quad, 0.1), (W0, W0, W0), STEPS3),
         Raises(InputError, "3 parts")),
    Case("rod-from-gd-fractional-k", "RodFlow", lambda: processes.rod_from_gd(W0, W0, k=1.5),
         Raises(InputError, "integer")),
    Case("rod-list-state", "RodFlow",  # H = I: x' = -eta x, d' = (eta - 2) d
         lambda: sim(processes.RodFlow(quad, 0.1), [W0, 0.1 * W0], STEPS3, rtol=1e-12, atol=1e-14),
         Equals(lambda: [np.exp(-0.1 * STEPS3)[:, None] * np.asarray(W0),
                         np.exp(-1.9 * STEPS3)[:, None] * 0.1 * np.asarray(W0)], 1e-9)),
    Case("edge-raw-parameters", "EdgeFlow", lambda: sim(processes.EdgeFlow(quad, 0.1), W0, STEPS3),
         Raises(InputError, "initial_state")),
    Case("edge-vector-rho", "EdgeFlow",
         lambda: sim(processes.EdgeFlow(quad, 0.1), (W0, W0 / jnp.linalg.norm(W0), jnp.ones(2)), STEPS3),
         Raises(InputError, "scalar")),
    Case("edge-non-unit-direction", "EdgeFlow", lambda: edge_direction_scaled()[0],
         Equals(lambda: edge_direction_scaled()[1], 1e-9)),

    # PrincipalFlow
    # h lambda = 1 (lambda = 2, h = 0.5) is regularized, not refused: |1 - h lambda| floored at 1e-12, so that
    # component is (1e-12)^(t/h) w0 (GD: 0 after one step) and the other (1 - h)^(t/h) w0, exactly
    Case("principal-singular-h-lambda", "PrincipalFlow",
         lambda: sim(processes.PrincipalFlow(quad12, 0.5, variant="real"), W0, STEPS3 / 10, rtol=1e-12, atol=1e-14),
         Equals(lambda: np.stack([np.asarray(W0) * np.array([0.5, 1e-12]) ** (t / 0.5) for t in STEPS3 / 10]),
                1e-10)),
    Case("principal-lanczos-steps-zero", "PrincipalFlow",
         lambda: processes.PrincipalFlow(quad12, 0.1, variant="real", method="topk", k=1, lanczos_steps=0),
         Raises(InputError, "lanczos_steps")),
    Case("principal-lanczos-steps-negative", "PrincipalFlow",
         lambda: processes.PrincipalFlow(quad12, 0.1, variant="real", method="topk", k=1, lanczos_steps=-1),
         Raises(InputError, "lanczos_steps")),
    Case("principal-correction-string", "PrincipalFlow", lambda: processes.PrincipalFlow(quad, 0.1, correction="no"),
         Raises(InputError, "correction")),
    Case("principal-fractional-k", "PrincipalFlow",
         lambda: processes.PrincipalFlow(quad, 0.1, variant="real", method="topk", k=1.5), Raises(InputError, "k")),

    # CentralFlow, StableFlow
    Case("central-k-zero", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, k=0), Raises(InputError, "k")),
    Case("central-fractional-k", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, k=1.5),
         Raises(InputError, "k must be an integer")),
    Case("central-string-k", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, k="3"),
         Raises(InputError, "k must be an integer")),
    Case("central-fractional-substeps", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, substeps=2.7),
         Raises(InputError, "substeps")),
    Case("central-lanczos-steps-zero", "CentralFlow",
         lambda: processes.CentralFlow(quad12, 0.1, k=1, method="lanczos", lanczos_steps=0),
         Raises(InputError, "lanczos_steps")),
    Case("central-negative-guard", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, guard=-1),
         Raises(InputError, "guard")),
    Case("central-nan-threshold", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, threshold=float("nan")),
         Raises(InputError, "threshold")),
    Case("central-track-above-two", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, track=2.5),
         Raises(InputError, "pass track <= threshold <= 2")),
    Case("central-track-above-threshold", "CentralFlow",
         lambda: processes.CentralFlow(quad12, 0.1, track=1.9, threshold=1.8), Raises(InputError, "track <= threshold")),
    Case("central-strict-string", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, strict="yes"),
         Raises(InputError, "strict")),
    Case("central-method-unknown", "CentralFlow", lambda: processes.CentralFlow(quad12, 0.1, method="eigh"),
         Raises(InputError, "method must be None")),
    Case("stable-flow-is-gradient-flow-in-step-time", "StableFlow",
         lambda: sim(processes.StableFlow(quad12, 0.1), W0, STEPS3, rtol=1e-12, atol=1e-14),
         Equals(lambda: np.asarray(W0) * np.exp(-0.1 * np.outer(STEPS3, [1.0, 2.0])), 1e-9)),
    Case("stable-flow-negative-lr", "StableFlow", lambda: processes.StableFlow(quad, -0.1),
         Raises(StepSizeError, "learning rate")),

    # RMSPropCentralFlow, RMSPropStableFlow, MethodRodFlow
    Case("rmsprop-central-beta2-one", "RMSPropCentralFlow",
         lambda: processes.RMSPropCentralFlow(quad, 0.1, beta2=1.0), Raises(InputError, "beta2")),
    Case("rmsprop-central-eps-zero", "RMSPropCentralFlow",
         lambda: processes.RMSPropCentralFlow(quad, 0.1, eps=0.0), Raises(InputError, "eps must be > 0")),
    Case("rmsprop-stable-beta2-negative", "RMSPropStableFlow",
         lambda: processes.RMSPropStableFlow(quad, 0.1, beta2=-0.1), Raises(InputError, "beta2")),
    Case("rmsprop-stable-eps-negative", "RMSPropStableFlow",
         lambda: processes.RMSPropStableFlow(quad, 0.1, eps=-1.0), Raises(InputError, "eps must be > 0")),
    Case("method-rod-not-a-method", "MethodRodFlow", lambda: processes.MethodRodFlow(quad),
         Raises(InputError, "one-step method")),
    Case("method-rod-order-three", "MethodRodFlow",
         lambda: processes.MethodRodFlow(processes.HeavyBall(quad, 0.1, momentum=0.5), order=3),
         Raises(InputError, "order")),
    Case("method-rod-raw-parameters", "MethodRodFlow",
         lambda: sim(processes.MethodRodFlow(processes.HeavyBall(quad, 0.1, momentum=0.5)), W0, STEPS3),
         Raises(InputError, "initial_state")),

    # SequentialGD, ContinualModifiedFlow
    Case("sequential-task-not-callable", "SequentialGD", lambda: processes.SequentialGD([quad, quad], quad, 0.1),
         Raises(InputError, "first")),
    Case("sequential-phase-zero", "SequentialGD", lambda: processes.SequentialGD(quad, quad, 0.1, phase=0),
         Raises(InputError, "phase")),
    Case("sequential-phase-fractional", "SequentialGD", lambda: processes.SequentialGD(quad, quad, 0.1, phase=1.5),
         Raises(InputError, "phase")),
    Case("continual-flow-second-none", "ContinualModifiedFlow",
         lambda: processes.ContinualModifiedFlow(quad, None, 0.1), Raises(InputError, "second")),

    # GameGD, GameModifiedFlow
    Case("game-negative-alpha", "GameGD", lambda: processes.GameGD(*FIELDS, 0.1, alpha=-1.0),
         Raises(StepSizeError, "alpha")),
    Case("game-zero-lam", "GameGD", lambda: processes.GameGD(*FIELDS, 0.1, lam=0.0), Raises(StepSizeError, "lam")),
    Case("game-alternating-string", "GameGD", lambda: processes.GameGD(*FIELDS, 0.1, alternating="no"),
         Raises(InputError, "alternating")),
    Case("game-field-not-callable", "GameGD", lambda: processes.GameGD(1.0, FIELDS[1], 0.1), Raises(InputError, "f")),
    Case("game-single-array-state", "GameGD", lambda: sim(processes.GameGD(*FIELDS, 0.1), jnp.array([1.0, 0.5]),
                                                          STEPS3 / 10), Raises(InputError, "(phi, theta)")),
    Case("game-three-players", "GameGD", lambda: sim(processes.GameGD(*FIELDS, 0.1), PAIR + PAIR[:1], STEPS3 / 10),
         Raises(InputError, "3 parts")),
    Case("game-list-state", "GameGD", lambda: sim(processes.GameGD(*FIELDS, 0.1), list(PAIR), STEPS3 / 10)[1],
         Equals(lambda: np.array([0.5, 0.6, 0.695]))),  # theta' = theta + h phi, phi' = phi - h theta
    Case("game-flow-single-array-state", "GameModifiedFlow",
         lambda: sim(processes.GameModifiedFlow(*FIELDS, 0.1), jnp.array([1.0, 0.5]), STEPS3 / 10),
         Raises(InputError, "(phi, theta)")),
    Case("game-flow-nan-lam", "GameModifiedFlow",
         lambda: processes.GameModifiedFlow(*FIELDS, 0.1, lam=float("nan")), Raises(StepSizeError, "lam")),

    # ModifiedFlow, GradientFlow, GradientDescent
    Case("modified-order-zero", "ModifiedFlow", lambda: processes.ModifiedFlow(quad, 0.1, 0),
         Raises(InputError, "order")),
    Case("modified-order-fractional", "ModifiedFlow", lambda: processes.ModifiedFlow(quad, 0.1, 2.0),
         Raises(InputError, "order")),
    Case("modified-order-numpy-int", "ModifiedFlow",  # order 2 on a quadratic: theta' = -(1 + h/2) theta
         lambda: sim(processes.ModifiedFlow(quad, 0.1, np.int64(2)), W0, STEPS3, rtol=1e-12, atol=1e-14),
         Equals(lambda: np.exp(-1.05 * STEPS3)[:, None] * np.asarray(W0), 1e-9)),
    Case("gradient-flow-loss-not-callable", "GradientFlow", lambda: processes.GradientFlow(3.0),
         Raises(InputError, "callable")),
    Case("gradient-descent-against-numpy", "GradientDescent",
         lambda: sim(processes.GradientDescent(quad12, 0.1), W0, STEPS3 / 10),
         Equals(lambda: np.asarray(W0) * (1 - 0.1 * np.array([1.0, 2.0])) ** np.arange(3.0)[:, None])),

    # HeavyBall, Nesterov
    Case("heavy-ball-momentum-one", "HeavyBall", lambda: processes.HeavyBall(quad, 0.1, momentum=1.0),
         Raises(InputError, "momentum")),
    Case("heavy-ball-momentum-negative", "HeavyBall", lambda: processes.HeavyBall(quad, 0.1, momentum=-0.1),
         Raises(InputError, "momentum")),
    Case("nesterov-momentum-nan", "Nesterov", lambda: processes.Nesterov(quad, 0.1, momentum=float("nan")),
         Raises(InputError, "momentum")),
    Case("nesterov-momentum-vector", "Nesterov", lambda: processes.Nesterov(quad, 0.1, momentum=jnp.ones(2)),
         Raises(InputError, "momentum")),

    # OptaxMethod
    Case("optax-uncalled-factory", "OptaxMethod", lambda: processes.OptaxMethod(quad, optax.adam),
         Raises(InputError, "optax.adam(1e-3)")),
    Case("optax-not-a-transformation", "OptaxMethod", lambda: processes.OptaxMethod(quad, None),
         Raises(InputError, "GradientTransformation")),
    Case("optax-needs-value", "OptaxMethod", lambda: sim(processes.OptaxMethod(quad, optax.polyak_sgd()), W0, STEPS3),
         Raises(InputError, "not supported")),
    Case("optax-needs-value-fn", "OptaxMethod", lambda: sim(processes.OptaxMethod(quad, optax.lbfgs()), W0, STEPS3),
         Raises(InputError, "not supported")),

    # SAM
    Case("sam-rho-zero", "SAM", lambda: processes.SAM(quad, 0.1, 0.0), Raises(InputError, "rho")),
    Case("sam-normalized-string", "SAM", lambda: processes.SAM(quad, 0.1, 0.05, normalized="no"),
         Raises(InputError, "normalized must be True or False")),
    Case("sam-group-not-dividing", "SAM",
         lambda: processes.SAM(dy.per_example(lambda w, x: jnp.sum((x * w) ** 2), X4), 0.1, 0.05, group_size=3),
         Raises(InputError, "group_size must divide")),

    # DelayedGD
    Case("delayed-negative-delay", "DelayedGD", lambda: processes.DelayedGD(quad, 0.1, -1),
         Raises(InputError, "delay must be an integer >= 0")),
    Case("delayed-fractional-delay", "DelayedGD", lambda: processes.DelayedGD(quad, 0.1, 1.5),
         Raises(InputError, "delay must be an integer >= 0")),
    Case("delayed-momentum-one", "DelayedGD", lambda: processes.DelayedGD(quad, 0.1, 2, 1.0),
         Raises(InputError, "momentum must lie in [0, 1)")),
]


def _check(case):
    if isinstance(case.expect, Raises):
        with pytest.raises(case.expect.error) as caught:
            case.run()
        assert case.expect.phrase in str(caught.value), str(caught.value)
    else:
        got, expected = case.run(), case.expect.reference()
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0,
                                                                       atol=case.expect.atol), got, expected)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.mark) for case in CASES])
def test_process_input(case):
    _check(case)


def test_nonfinite_path_report_names_the_path():
    _, is_divergence, names_path = nonfinite_path_report()
    assert is_divergence and names_path
    error = sme_blow_up_report()
    assert "path 0 (of 3)" in str(error) and error.path == 0 and error.time == 0.0, str(error)


def test_every_process_is_covered():
    """Every concrete process class exported by dynamics.processes has at least one case."""
    classes = {name for name, obj in vars(processes).items() if inspect.isclass(obj) and not name.startswith("Abstract")
               and issubclass(obj, processes.AbstractProcess)}
    assert classes <= {case.process for case in CASES}, classes - {case.process for case in CASES}
