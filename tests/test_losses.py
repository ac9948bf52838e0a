"""Tails and margin losses against closed forms (NumPy) and autodiff, including extreme margins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy


def _logistic_log_value(u):
    """log log(1 + e^{-u}) in NumPy: exact formula where exp(-u) is representable, -u beyond."""
    u = np.asarray(u, float)
    with np.errstate(over="ignore"):
        direct = np.log(np.logaddexp(0.0, -u))
    return np.where(u > 700, -u, direct)


U_GRID = np.concatenate([np.linspace(-30, 30, 121), [19.9, 20.0, 20.1, 50.0, 300.0, 700.0]])


def test_exponential_closed_forms():
    tail = dy.Exponential()
    u = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    np.testing.assert_array_equal(tail.log_value(u), -u)
    np.testing.assert_array_equal(tail.log_neg_derivative(u), -u)
    np.testing.assert_allclose(tail.value(u[1:4]), np.exp(-u[1:4]), rtol=1e-15)
    np.testing.assert_allclose(tail.neg_derivative(u[1:4]), np.exp(-u[1:4]), rtol=1e-15)


def test_logistic_closed_forms():
    tail = dy.Logistic()
    np.testing.assert_allclose(tail.log_value(U_GRID), _logistic_log_value(U_GRID), rtol=1e-14, atol=0)
    np.testing.assert_allclose(tail.value(U_GRID), np.logaddexp(0.0, -U_GRID), rtol=1e-14)
    # -l'(u) = 1/(1 + e^u), so log(-l'(u)) = -log(1 + e^u)
    np.testing.assert_allclose(tail.log_neg_derivative(U_GRID), -np.logaddexp(0.0, U_GRID), rtol=1e-14)


def test_logistic_derivative_matches_finite_differences():
    tail = dy.Logistic()
    u = np.linspace(-8, 8, 33)
    h = 1e-5
    fd = -(np.logaddexp(0.0, -(u + h)) - np.logaddexp(0.0, -(u - h))) / (2 * h)
    np.testing.assert_allclose(tail.neg_derivative(u), fd, rtol=1e-9)


@pytest.mark.parametrize("tail", [dy.Exponential(), dy.Logistic()], ids=["exp", "logistic"])
def test_extreme_margins_are_finite(tail):
    u = jnp.array([800.0, -800.0])
    log_value = np.asarray(tail.log_value(u))
    log_slope = np.asarray(tail.log_neg_derivative(u))
    assert np.all(np.isfinite(log_value)) and np.all(np.isfinite(log_slope))
    # log l(800) = -800 up to log1p(-e^{-800}/2) = 0 in float64 (both tails); -l'(800) = e^{-800}
    assert log_value[0] == pytest.approx(-800.0, rel=1e-15)
    assert log_slope[0] == pytest.approx(-800.0, rel=1e-15)
    if isinstance(tail, dy.Logistic):
        assert log_value[1] == pytest.approx(np.log(800.0), rel=1e-15)  # log(log(1 + e^800))
        assert log_slope[1] == pytest.approx(0.0, abs=1e-300)  # -l'(-800) = 1/(1 + e^-800)


def test_polyexponential_nu1_is_logistic():
    np.testing.assert_array_equal(dy.PolyExponential(1).log_neg_derivative(U_GRID),
                                  dy.Logistic().log_neg_derivative(U_GRID))
    assert dy.PolyExponential(1.0).exponential_tail and not dy.PolyExponential(2.0).exponential_tail


@pytest.mark.parametrize("nu", [0.5, 2.0])
def test_polyexponential_derivative_closed_form(nu):
    u = np.linspace(-10, 10, 41)
    phi = u * (1 + u**2) ** ((nu - 1) / 2)
    np.testing.assert_allclose(dy.PolyExponential(nu).log_neg_derivative(u), -np.logaddexp(0.0, phi),
                               rtol=1e-13)


def test_polyexponential_value_raises():
    tail = dy.PolyExponential(2.0)
    with pytest.raises(NotImplementedError, match="no closed form"):
        tail.log_value(jnp.array([1.0]))
    with pytest.raises(NotImplementedError, match="no closed form"):
        tail.value(jnp.array([1.0]))


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(7, 3))
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
    theta = rng.normal(size=3)
    return X, y, theta


@pytest.mark.parametrize("name", ["exp", "logistic", "squared", "polyexp:1"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("s", [0.0, 1.3, -2.0])
def test_descent_direction_is_scaled_negative_gradient(data, name, reduction, s):
    X, y, theta = data
    loss = dy.linear_classifier(X, y, name, reduction)
    # polyexp:1 has no value; its gradient is the logistic one
    reference = dy.linear_classifier(X, y, "logistic" if name == "polyexp:1" else name, reduction)
    expected = -np.exp(s) * np.asarray(jax.grad(reference)(jnp.asarray(theta)))
    np.testing.assert_allclose(loss.descent_direction(jnp.asarray(theta), s), expected, rtol=1e-13, atol=1e-15)


def test_objective_descent_direction_is_scaled_negative_gradient():
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    loss = dy.Objective(lambda w: 0.5 * w @ (jnp.asarray(A) @ w))
    w = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(loss.descent_direction(w, 0.7), -np.exp(0.7) * (A @ np.asarray(w)), rtol=1e-15)
    assert float(loss.log_value(w)) == pytest.approx(np.log(0.5 * w @ A @ w), rel=1e-15)


@pytest.mark.parametrize("name", ["exp", "logistic"])
def test_descent_direction_at_large_margins_and_scale(name):
    """s = 700, margins 900..1500: -e^s grad L underflows if formed as a product; the log-space form does not."""
    Z = np.array([[1.0, 0.2], [0.5, 1.0], [1.0, 1.0]])
    theta = np.array([750.0, 750.0])  # margins 900, 1125, 1500: e^{-q} underflows
    q = Z @ theta
    loss = dy.linear_classifier(Z, np.ones(3), name)
    got = np.asarray(loss.descent_direction(jnp.asarray(theta), 700.0))
    log_weights = -q if name == "exp" else -np.logaddexp(0.0, q)
    expected = Z.T @ np.exp(700.0 + log_weights)  # = sum_n e^{s} (-l'(q_n)) z_n
    assert np.all(np.isfinite(got)) and np.all(np.abs(got) > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert np.all(np.asarray(jax.grad(loss)(jnp.asarray(theta))) == 0.0)  # why the log-space form is needed


@pytest.mark.parametrize("name", ["exp", "logistic"])
def test_mean_and_sum_reductions(data, name):
    X, y, theta = data
    theta = jnp.asarray(theta)
    n = len(y)
    total = dy.linear_classifier(X, y, name, "sum")
    mean = dy.linear_classifier(X, y, name, "mean")
    assert float(mean(theta)) == pytest.approx(float(total(theta)) / n, rel=1e-14)
    assert float(mean.log_value(theta)) == pytest.approx(float(total.log_value(theta)) - np.log(n), rel=1e-14)
    np.testing.assert_allclose(mean.descent_direction(theta, 0.4), total.descent_direction(theta, 0.4) / n,
                               rtol=1e-14)
    np.testing.assert_allclose(mean.dual_weights(theta), total.dual_weights(theta), rtol=1e-14)


@pytest.mark.parametrize("name", ["exp", "logistic"])
def test_log_value_matches_numpy(data, name):
    X, y, theta = data
    q = y * (X @ theta)
    per_example = np.exp(-q) if name == "exp" else np.logaddexp(0.0, -q)
    loss = dy.linear_classifier(X, y, name)
    assert float(loss.log_value(jnp.asarray(theta))) == pytest.approx(np.log(per_example.sum()), rel=1e-14)
    assert float(loss(jnp.asarray(theta))) == pytest.approx(per_example.sum(), rel=1e-14)


def test_log_value_after_loss_underflows():
    Z = np.array([[1.0, 0.0], [0.0, 2.0]])
    theta = jnp.array([800.0, 450.0])  # margins 800, 900: e^{-800} + e^{-900} underflows
    loss = dy.linear_classifier(Z, np.ones(2), "exp")
    assert float(loss(theta)) == 0.0
    assert float(loss.log_value(theta)) == pytest.approx(-800.0 + np.log1p(np.exp(-100.0)), rel=1e-15)


def test_dual_weights_are_softmax_of_negative_margins(data):
    X, y, theta = data
    q = y * (X @ theta)
    expected = np.exp(-(q - q.min())) / np.exp(-(q - q.min())).sum()
    np.testing.assert_allclose(dy.linear_classifier(X, y, "exp").dual_weights(jnp.asarray(theta)), expected,
                               rtol=1e-14)
    slope = 1.0 / (1.0 + np.exp(q))
    np.testing.assert_allclose(dy.linear_classifier(X, y, "logistic").dual_weights(jnp.asarray(theta)),
                               slope / slope.sum(), rtol=1e-14)


def test_subset_restricts_examples(data):
    X, y, theta = data
    index = jnp.array([4, 0, 4])  # a repeated index counts twice
    sub = dy.linear_classifier(X, y, "exp", "mean").subset(index)
    q = y[[4, 0, 4]] * (X[[4, 0, 4]] @ theta)
    assert float(sub(jnp.asarray(theta))) == pytest.approx(np.exp(-q).mean(), rel=1e-14)
