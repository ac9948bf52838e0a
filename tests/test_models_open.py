"""Objectives of arbitrary models: per_example against NumPy, bind_static on Equinox modules against
eqx.filter_value_and_grad, linear classifiers with an intercept, and the intercept hint of max_margin."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.errors import InputError, NonSeparableError
from dynamics.models import MarginLoss, Objective, PerExample, linear_classifier, per_example
from dynamics.models.losses import Exponential
from dynamics.predictions import max_margin

RNG = np.random.default_rng(0)
X = RNG.normal(size=(7, 3))
Y = RNG.normal(size=7)
W = RNG.normal(size=3)


def _squared_error(w, example):
    x, y = example
    return 0.5 * (x @ w - y) ** 2


def _assert_trees_close(a, b, rtol=1e-12):
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for u, v in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("reduction, divisor", [("mean", len(Y)), ("sum", 1.0)])
def test_per_example_least_squares_matches_numpy(reduction, divisor):
    loss = per_example(_squared_error, (X, Y), reduction)
    residual = X @ W - Y
    np.testing.assert_allclose(loss.example_losses(W), 0.5 * residual**2, rtol=1e-13)
    np.testing.assert_allclose(loss(W), 0.5 * residual @ residual / divisor, rtol=1e-13)
    np.testing.assert_allclose(loss.log_value(W), np.log(0.5 * residual @ residual / divisor), rtol=1e-13)
    gradient = X.T @ residual / divisor
    np.testing.assert_allclose(loss.descent_direction(W), -gradient, rtol=1e-13)
    np.testing.assert_allclose(loss.descent_direction(W, log_scale=1.5), -np.exp(1.5) * gradient, rtol=1e-13)
    assert loss.num_examples == len(Y)


def test_per_example_subset_reduces_over_the_subset():
    loss = per_example(_squared_error, (X, Y))
    index = np.array([0, 2, 5])
    part = loss.subset(index)
    assert isinstance(part, PerExample) and part.num_examples == 3
    residual = X[index] @ W - Y[index]
    np.testing.assert_allclose(part(W), 0.5 * np.mean(residual**2), rtol=1e-13)
    np.testing.assert_allclose(part.descent_direction(W), -X[index].T @ residual / 3, rtol=1e-13)
    traced = eqx.filter_jit(lambda objective, i, w: objective.subset(i)(w))(loss, jnp.asarray(index), W)
    np.testing.assert_allclose(traced, part(W), rtol=1e-13)
    total = per_example(_squared_error, (X, Y), "sum").subset(index)
    np.testing.assert_allclose(total(W), 0.5 * np.sum(residual**2), rtol=1e-13)


@pytest.mark.parametrize("fn, data, reduction, message", [
    ("not a function", (X, Y), "mean", "fn must be a callable"),
    (lambda w: w, (X, Y), "mean", "two positional arguments"),
    (_squared_error, {}, "mean", "no array leaves"),
    (_squared_error, (X, 1.0), "mean", r"data\[1\] is a float"),
    (_squared_error, (X, np.array(1.0)), "mean", r"data\[1\] is a scalar"),
    (_squared_error, (X, Y[:5]), "mean", "different leading sizes"),
    (_squared_error, (X[:0], Y[:0]), "mean", "N = 0"),
    (_squared_error, (X, Y), "max", "reduction must be one of"),
])
def test_per_example_bad_inputs(fn, data, reduction, message):
    with pytest.raises(InputError, match=message):
        per_example(fn, data, reduction)


def test_per_example_non_scalar_output():
    loss = per_example(lambda w, example: example[0] * w, (X, Y))
    with pytest.raises(InputError, match=r"must return a scalar, got shape \(3,\)"):
        loss.check(W)
    with pytest.raises(InputError, match="must return a scalar"):
        loss(W)
    with pytest.raises(InputError, match="must return a scalar"):
        loss.descent_direction(W)
    per_example(_squared_error, (X, Y)).check(W)


def _mlp():
    return eqx.nn.MLP(3, "scalar", 5, 2, activation=jnp.tanh, key=jax.random.PRNGKey(1))


def _mse(model):
    return 0.5 * jnp.mean((jax.vmap(model)(X) - Y) ** 2)


def _check_bound(bound, params, model, reference):
    """bound (an objective of params) against eqx.filter_value_and_grad(reference)(model)."""
    value, grads = eqx.filter_value_and_grad(reference)(model)
    np.testing.assert_allclose(bound(params), value, rtol=1e-13)
    _assert_trees_close(bound.descent_direction(params), jax.tree_util.tree_map(lambda g: -g, grads))
    _assert_trees_close(bound.descent_direction(params, log_scale=-0.7),
                        jax.tree_util.tree_map(lambda g: -np.exp(-0.7) * g, grads))
    jitted = eqx.filter_jit(lambda objective, p: objective.descent_direction(p))(bound, params)
    _assert_trees_close(jitted, jax.tree_util.tree_map(lambda g: -g, grads))


def test_objective_bind_static_on_an_mlp():
    model = _mlp()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    bound = Objective(_mse).bind_static(static)
    _check_bound(bound, params, model, _mse)
    assert bound == Objective(_mse).bind_static(static)
    assert hash(bound) == hash(Objective(_mse).bind_static(static))


def test_per_example_bind_static_on_a_linear_layer():
    model = eqx.nn.Linear(3, "scalar", key=jax.random.PRNGKey(2))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    bound = per_example(lambda m, example: 0.5 * (m(example[0]) - example[1]) ** 2, (X, Y)).bind_static(static)
    _check_bound(bound, params, model, lambda m: 0.5 * jnp.mean((jax.vmap(m)(X) - Y) ** 2))
    assert bound.subset(np.arange(3)).num_examples == 3


def test_margin_loss_bind_static_on_an_mlp():
    model = _mlp()
    labels = np.sign(Y)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    margins = lambda m, data: data[1] * jax.vmap(m)(data[0])  # noqa: E731
    for reduction, reduce in (("sum", jnp.sum), ("mean", jnp.mean)):
        loss = MarginLoss(margins, (jnp.asarray(X), jnp.asarray(labels)), Exponential(), reduction)
        bound = loss.bind_static(static)
        reference = lambda m: reduce(jnp.exp(-labels * jax.vmap(m)(X)))  # noqa: E731
        _check_bound(bound, params, model, reference)
        np.testing.assert_allclose(bound.log_value(params), np.log(reference(model)), rtol=1e-13)
        assert bound == loss.bind_static(static)


@pytest.mark.parametrize("loss, tail", [("exp", lambda u: np.exp(-u)), ("logistic", lambda u: np.log1p(np.exp(-u)))])
def test_linear_classifier_with_bias_matches_a_loop(loss, tail):
    labels = np.where(Y > 0, 1.0, -1.0)
    w = np.r_[W, 0.4]
    objective = linear_classifier(X, labels, loss, bias=True)
    expected = sum(tail(labels[n] * (X[n] @ w[:3] + w[3])) for n in range(len(labels)))
    np.testing.assert_allclose(objective(jnp.asarray(w)), expected, rtol=1e-13)
    mean = linear_classifier(X, labels, loss, reduction="mean", bias=True)
    np.testing.assert_allclose(mean(jnp.asarray(w)), expected / len(labels), rtol=1e-13)


def test_max_margin_suggests_an_intercept_only_when_it_separates():
    X1 = np.array([[1.0], [2.0], [3.0], [4.0]])
    y1 = np.array([-1.0, -1.0, 1.0, 1.0])
    with pytest.raises(NonSeparableError, match=r"not linearly separable.*IS separable with an intercept.*bias=True"):
        max_margin(X1, y1)
    solution = max_margin(np.c_[X1, np.ones(len(X1))], y1)
    assert np.all(y1 * (X1[:, 0] * solution.w[0] + solution.w[1]) >= 1 - 1e-9)
    with pytest.raises(NonSeparableError) as info:  # XOR: no separator even with an intercept
        max_margin(np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]), np.array([1.0, 1.0, -1.0, -1.0]))
    assert "intercept" not in str(info.value)
