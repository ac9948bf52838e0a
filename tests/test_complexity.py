"""Geometric complexity and arc length (dynamics/measure/complexity.py) against closed forms, finite
differences and an independent knot-by-knot sum; bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.errors import InputError, SolverBudgetError
from dynamics.measure import arc_length, geometric_complexity
from dynamics.models.mlp import mlp_apply, mlp_init


def test_linear_model_gc_is_frobenius_norm_squared():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    X = rng.normal(size=(7, 5))
    gc = geometric_complexity(lambda p, x: p[0] @ x + p[1], (W, b), X)
    assert abs(float(gc) - np.sum(W**2)) <= 1e-12 * np.sum(W**2)
    assert dyn.geometric_complexity is geometric_complexity


def test_scalar_output_closed_form_and_wide_output():
    # f(x) = sin(a.x): grad = cos(a.x) a, GC = mean cos^2(a.x_i) ||a||^2; reverse mode (d_in > d_out)
    rng = np.random.default_rng(1)
    a, X = rng.normal(size=4), rng.normal(size=(9, 4))
    gc = geometric_complexity(lambda p, x: jnp.sin(p @ x), a, X)
    assert abs(float(gc) - np.mean(np.cos(X @ a) ** 2) * a @ a) <= 1e-12
    # f(x) = (x, x^2, x^3) for scalar x (examples of shape ()): forward mode
    xs = np.linspace(-1, 1, 5)
    gc = geometric_complexity(lambda p, x: jnp.stack([x, x**2, x**3]), None, xs)
    assert abs(float(gc) - np.mean(1 + 4 * xs**2 + 9 * xs**4)) <= 1e-12


def test_mlp_against_central_differences():
    params = mlp_init(jax.random.PRNGKey(0), (2, 8, 3))
    X = np.random.default_rng(2).normal(size=(6, 2))
    f = lambda p, x: mlp_apply(p, x)
    gc = float(geometric_complexity(f, params, X))
    h = 1e-5
    fd = np.mean([sum(np.sum(((np.asarray(f(params, x + h * e)) - np.asarray(f(params, x - h * e))) / (2 * h)) ** 2)
                      for e in np.eye(2)) for x in X])
    assert abs(gc - fd) <= 1e-8 * gc          # central differences: O(h^2 f''') ~ 1e-10 plus rounding eps/h ~ 1e-11


def test_equinox_model_and_no_recompile_for_new_parameters():
    model = eqx.nn.MLP(2, 1, 8, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    X = np.random.default_rng(3).normal(size=(5, 2))
    f = lambda m, x: m(x)
    gc = float(geometric_complexity(f, model, X))
    expected = np.mean([np.sum(np.asarray(jax.jacrev(model)(jnp.asarray(x))) ** 2) for x in X])
    assert abs(gc - expected) <= 1e-12 * expected
    traces = []
    counted = lambda m, x: (traces.append(1), m(x))[1]        # runs once per trace, never when compiled code runs
    geometric_complexity(counted, model, X)
    first = len(traces)
    doubled = jax.tree_util.tree_map(lambda v: 2 * v if eqx.is_inexact_array(v) else v, model)
    geometric_complexity(counted, doubled, X)
    assert len(traces) - first == 1                          # the shape check only: no new compilation


def test_constant_model_gives_zero():
    assert float(geometric_complexity(lambda p, x: p * jnp.ones(2), 3.0, np.ones((4, 3)))) == 0.0


def test_wrong_example_shape_names_the_shapes():
    params = mlp_init(jax.random.PRNGKey(0), (2, 4, 1))
    with pytest.raises(InputError, match=r"shape \(3,\).*X has shape \(5, 3\)"):
        geometric_complexity(lambda p, x: mlp_apply(p, x), params, np.ones((5, 3)))
    with pytest.raises(InputError, match="NaN"):
        geometric_complexity(lambda p, x: mlp_apply(p, x), params, np.full((5, 2), np.nan))
    with pytest.raises(InputError, match="N >= 1"):
        geometric_complexity(lambda p, x: mlp_apply(p, x), params, np.ones((0, 2)))
    with pytest.raises(InputError, match="floating-point"):
        geometric_complexity(lambda p, x: jnp.sum(x) > 0, params, np.ones((5, 2)))


def test_arc_length_smooth_closed_forms():
    # f = c x: sqrt(1 + c^2) (b - a); f = cosh(x): int sqrt(1 + sinh^2) = sinh(b) - sinh(a)
    res = arc_length(lambda p, x: p * x, 0.75, -1.0, 3.0)
    assert abs(res.value - 1.25 * 4.0) <= 1e-13 and res.error <= 1e-10 * res.value
    res = arc_length(lambda p, x: jnp.cosh(p * x), 1.0, -0.5, 2.0)
    assert abs(res.value - (np.sinh(2.0) - np.sinh(-0.5))) <= 1e-12 * res.value
    # parabola f = x^2 on [0, 1]: (2 sqrt(5) + asinh(2)) / 4; model taking vectors of length 1
    res = arc_length(lambda p, x: p * x[0] ** 2, 1.0, 0.0, 1.0)
    assert abs(res.value - (2 * np.sqrt(5) + np.arcsinh(2)) / 4) <= 1e-12


def _relu_net(seed, width=6):
    params = mlp_init(jax.random.PRNGKey(seed), (1, width, 1))
    params = [(W, jnp.asarray(np.random.default_rng(seed).normal(size=b.shape))) for W, b in params]
    return params, lambda p, x: mlp_apply(p, x[None, :], "relu")[0, 0]


def test_arc_length_relu_exact_with_knots_and_converges_without():
    params, f = _relu_net(0)
    (W1, b1), _ = params
    knots = np.sort(-np.asarray(b1) / np.asarray(W1)[0])
    a, b = -3.0, 3.0
    # independent: sum over linear pieces of width * sqrt(1 + slope^2), slope by a secant inside each piece
    grid = np.unique(np.r_[a, knots[(knots > a) & (knots < b)], b])
    value = lambda x: float(f(params, jnp.array([x])))
    exact = sum((hi - lo) * np.hypot(1.0, (value(hi - (hi - lo) / 4) - value(lo + (hi - lo) / 4)) / ((hi - lo) / 2))
                for lo, hi in zip(grid[:-1], grid[1:]))
    res = arc_length(f, params, a, b, breakpoints=knots)
    assert abs(res.value - exact) <= 1e-12 * exact and res.panels == 2 * (len(grid) - 1)
    # without the knots: a kink inside a panel of width w costs at most w * (jump of sqrt(1 + f'^2)) (positive
    # weights summing to w, integrand between its one-sided values); the level-difference estimate is not a bound there
    res = arc_length(f, params, a, b, rtol=1e-6, max_level=14)
    pieces = [(value(hi - (hi - lo) / 4) - value(lo + (hi - lo) / 4)) / ((hi - lo) / 2)
              for lo, hi in zip(grid[:-1], grid[1:])]
    jumps = np.abs(np.diff(np.hypot(1.0, pieces)))
    assert abs(res.value - exact) <= (b - a) / res.panels * jumps.sum()


def test_arc_length_bad_input():
    with pytest.raises(InputError, match="a < b"):
        arc_length(lambda p, x: x, None, 1.0, 0.0)
    with pytest.raises(InputError, match="one output"):
        arc_length(lambda p, x: jnp.stack([x, x]), None, 0.0, 1.0)
    with pytest.raises(InputError, match="one input"):
        arc_length(lambda p, x: x @ jnp.ones((3, 1)), None, 0.0, 1.0)
    params, f = _relu_net(1)
    with pytest.raises(SolverBudgetError, match="breakpoints"):
        arc_length(f, params, -3.0, 3.0, rtol=1e-14, max_level=2)
