"""Bad input and failing runs raise a `DynamicsError` subclass whose message names the problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.predictions import gd_step_bound, require_step_below


@pytest.fixture
def axis_loss(axis_data):
    X, y, _ = axis_data
    return dy.linear_classifier(X, y, "exp")


@pytest.mark.parametrize("solver", [dy.max_margin, dy.l1_max_margin])
def test_non_separable_data_has_a_farkas_certificate(solver):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    y = np.where(rng.random(12) < 0.5, 1.0, -1.0)
    X = np.vstack([X, X[:1]])  # the same point with both labels: no separator
    y = np.r_[y, -y[0]]
    with pytest.raises(dy.NonSeparableError, match="not linearly separable") as info:
        solver(X, y)
    a = info.value.certificate
    Z = y[:, None] * X
    assert np.all(a >= 0) and a.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(Z.T @ a, 0.0, atol=1e-9)


@pytest.mark.parametrize("call", [dy.max_margin, dy.linear_classifier])
def test_labels_outside_plus_minus_one(call):
    with pytest.raises(dy.InputError, match=r"labels must be -1 or \+1; y\[1\] = .*0\.0.*1 labels outside"):
        call(np.eye(3), np.array([1.0, 0.0, -1.0]))


def test_shape_mismatch():
    with pytest.raises(dy.InputError, match="X has 3 rows but y has 2 labels"):
        dy.max_margin(np.eye(3), np.ones(2))
    with pytest.raises(dy.InputError, match=r"X must have 2 dimension\(s\)"):
        dy.linear_classifier(np.ones(3), np.ones(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(bad):
    X = np.eye(3)
    X[2, 1] = bad
    with pytest.raises(dy.InputError, match=r"X contains NaN or Inf \(first at index \(2, 1\)\)"):
        dy.linear_classifier(X, np.ones(3))


def test_nan_initial_state(axis_loss):
    with pytest.raises(dy.InputError, match=r"y0 contains NaN or Inf \(first at index \(1,\)\)"):
        dy.simulate(dy.GradientDescent(axis_loss, 0.1), np.array([0.0, np.nan]), [0.0, 1.0])


@pytest.mark.parametrize("ts, message", [([0.0, 2.0, 1.0], "strictly increasing"),
                                         ([0.0, 1.0, 1.0], "strictly increasing"),
                                         ([-1.0, 1.0], "ts must be >= 0"),
                                         ([0.0, np.nan], "ts contains NaN")])
def test_bad_times(axis_loss, ts, message):
    with pytest.raises(dy.InputError, match=message):
        dy.simulate(dy.GradientFlow(axis_loss), np.zeros(2), ts)


def test_times_closer_than_one_step(axis_loss):
    with pytest.raises(dy.InputError, match="closer than one step"):
        dy.simulate(dy.GradientDescent(axis_loss, 0.1), np.zeros(2), [0.0, 0.01])


@pytest.mark.parametrize("lr", [0.0, -0.1, np.nan, np.inf])
@pytest.mark.parametrize("method", [dy.GradientDescent, dy.NormalizedGD, dy.HeavyBall])
def test_learning_rate_must_be_positive(axis_loss, lr, method):
    with pytest.raises(dy.StepSizeError, match="learning rate must be finite and > 0"):
        method(axis_loss, lr)


def test_sgd_learning_rate_and_sampling(axis_loss):
    with pytest.raises(dy.StepSizeError, match="learning rate"):
        dy.SGD(axis_loss, 0.0, 1, jax.random.key(0))
    with pytest.raises(dy.InputError, match="sampling must be"):
        dy.SGD(axis_loss, 0.1, 1, jax.random.key(0), sampling="cyclic")


def test_require_step_below():
    Z = np.array([[1.0, 0.0], [0.0, 2.0]])
    bound = gd_step_bound(Z, dy.Logistic())
    assert bound == pytest.approx(8.0 / 4.0, rel=1e-15)  # 2 / (beta sigma_max^2), beta = 1/4, sigma_max = 2
    require_step_below(0.99 * bound, bound)
    with pytest.raises(dy.StepSizeError, match="not below the bound"):
        require_step_below(bound, bound)
    # exp loss: 1 / (L(w0) max ||z_n||^2) with L(0) = N = 2
    assert gd_step_bound(Z, dy.Exponential(), loss_at_start=2.0) == pytest.approx(1 / 8, rel=1e-15)


def test_float32_gd_past_million_steps(axis_loss):
    w0 = jnp.zeros(2, jnp.float32)
    with pytest.raises(dy.PrecisionError, match=r"float32 GradientDescent asked for 2e\+06 steps"):
        dy.simulate(dy.GradientDescent(axis_loss, 0.5), w0, [0.0, 1e6])


def test_float32_log_time_flow_past_tau_80(axis_loss):
    w0 = jnp.zeros(2, jnp.float32)
    with pytest.raises(dy.PrecisionError, match="float32 flow.*log t = 81"):
        dy.simulate(dy.GradientFlow(axis_loss), w0, np.expm1([0.0, 81.0]), log_time=True)


def test_solver_budget_advises_log_time(axis_loss):
    with pytest.raises(dy.SolverBudgetError, match=r"max_steps=200.*log_time=True"):
        dy.simulate(dy.GradientFlow(axis_loss), np.zeros(2), [0.0, 1e12], max_steps=200)


def test_gd_divergence_reports_first_non_finite_iterate():
    """L = a w^2 / 2, lr a = 4: w_k = (-3)^k w0. w0 = 0.6: |w_K| first exceeds the largest float64 M at
    K = ceil(log(M / w0) / log 3), and |w_K| < 2.25 M = (9/4) M, so 4 |w_{K-2}| < M: no intermediate
    product (lr a w, 2 w, ...) overflows before iterate K."""
    a, lr, w0 = 1.0, 4.0, 0.6
    M = np.finfo(np.float64).max
    K = int(np.ceil((np.log(M) - np.log(w0)) / np.log(3.0)))
    assert 3.0 ** (K - 1) * w0 < M and np.log(w0) + K * np.log(3.0) < np.log(2.25) + np.log(M)
    with pytest.raises(dy.DivergenceError, match=f"iterate {K} .* is the first non-finite one") as info:
        dy.simulate(dy.GradientDescent(lambda w: 0.5 * a * jnp.sum(w**2), lr), np.array([w0]),
                    lr * np.array([0.0, 100.0, 1000.0]))
    assert info.value.step == K and info.value.time == pytest.approx(K * lr, rel=1e-15)
    saved = np.asarray(info.value.trajectory.ys)
    np.testing.assert_allclose(saved[:2, 0], [w0, (-3.0) ** 100 * w0], rtol=1e-12)
    assert not np.isfinite(saved[2, 0])


def test_flow_divergence_is_reported_as_divergence():
    """dw/dt = 50 w (L = -25 w^2): w = e^{50 t} overflows at t = log(M)/50 = 14.2; 1120 steps reach t = 14."""
    with pytest.raises(dy.DivergenceError, match="non-finite|diverg") as info:
        dy.simulate(dy.GradientFlow(lambda w: -25.0 * jnp.sum(w**2)), np.ones(1), [0.0, 1.0, 10.0, 20.0],
                    rtol=1e-4, atol=1e-6, max_steps=20_000)
    assert info.value.time == 10.0  # the last finite saved time


def test_loss_returning_non_scalar():
    with pytest.raises(dy.InputError, match="must return a scalar"):
        dy.simulate(dy.GradientDescent(lambda w: w**2, 0.1), jnp.ones(2), [0.0, 1.0])


def test_loss_that_is_not_callable():
    with pytest.raises(dy.InputError, match="loss must be a callable"):
        dy.GradientDescent(3.0, 0.1)


@pytest.mark.parametrize("name", ["hinge", "polyexp:-1"])
def test_unknown_loss_names(name):
    with pytest.raises(dy.InputError, match="unknown loss|NU > 0"):
        dy.linear_classifier(np.eye(2), np.ones(2), name)


def test_bad_reduction():
    with pytest.raises(dy.InputError, match="reduction must be one of"):
        dy.linear_classifier(np.eye(2), np.ones(2), "exp", reduction="max")


@pytest.mark.parametrize("batch_size", [0, 3, 1.5, -1])
def test_sgd_batch_size_out_of_range(axis_loss, batch_size):
    with pytest.raises(dy.InputError, match=r"batch_size must be an integer in \[1, N=2\]"):
        dy.SGD(axis_loss, 0.1, batch_size, jax.random.key(0))


def test_sgd_needs_a_margin_loss():
    with pytest.raises(dy.InputError, match="per-example loss"):
        dy.SGD(lambda w: jnp.sum(w**2), 0.1, 1, jax.random.key(0))


def test_momentum_out_of_range(axis_loss):
    with pytest.raises(dy.InputError, match=r"momentum must lie in \[0, 1\)"):
        dy.HeavyBall(axis_loss, 0.1, momentum=1.0)


def test_simulate_needs_a_process(axis_loss):
    with pytest.raises(dy.InputError, match="discrete method, a flow or an SDE"):
        dy.simulate(axis_loss, np.zeros(2), [0.0, 1.0])
