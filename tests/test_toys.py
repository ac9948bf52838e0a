"""The toy objectives of `dynamics.models.toys`: value and gradient against hand-written NumPy formulas at a few
points, Hessians against the closed forms stated in the docstrings, and the documented critical points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.models import toys

POINTS = np.random.default_rng(0).normal(size=(4, 2)) * 1.5
TOL = {"rtol": 1e-12, "atol": 1e-14}


def _check(loss, value, grad, hessian=None, points=POINTS):
    """loss, its gradient and (optionally) its Hessian at each point against NumPy formulas of one point."""
    derivatives = [loss, jax.grad(loss)] + ([jax.hessian(loss)] if hessian is not None else [])
    measured = jax.jit(jax.vmap(lambda w: [f(w) for f in derivatives]))(jnp.asarray(points))
    for got, formula in zip(measured, (value, grad, hessian)):
        np.testing.assert_allclose(got, np.stack([formula(p) for p in points]), **TOL)


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("linear", [False, True])
def test_quadratic(diagonal, linear):
    n, rng = 5, np.random.default_rng(1)
    M = rng.normal(size=(n, n))
    H = np.diag(rng.normal(size=n)) if diagonal else M + M.T
    b = rng.normal(size=n) if linear else np.zeros(n)
    loss = toys.Quadratic(jnp.asarray(np.diag(H) if diagonal else H), jnp.asarray(b) if linear else None)
    _check(loss, lambda w: 0.5 * w @ H @ w - b @ w, lambda w: H @ w - b, lambda w: H, rng.normal(size=(3, n)))
    if linear:   # the critical point solves H w = b
        np.testing.assert_allclose(jax.grad(loss)(jnp.asarray(np.linalg.solve(H, b))), 0.0, atol=1e-12)


def test_product_loss():
    _check(toys.product_loss, lambda p: 0.5 * (1 - p[0] * p[1]) ** 2,
           lambda p: -(1 - p[0] * p[1]) * np.array([p[1], p[0]]),
           lambda p: np.array([[p[1] ** 2, 2 * p[0] * p[1] - 1], [2 * p[0] * p[1] - 1, p[0] ** 2]]))
    a = np.array([0.5, 1.0, 2.0])   # minimizers on ab = 1: Hessian eigenvalues 0 and a^2 + b^2
    H = jax.vmap(jax.hessian(toys.product_loss))(jnp.stack([a, 1.0 / a], axis=1))
    np.testing.assert_allclose(np.linalg.eigvalsh(H), np.stack([0.0 * a, a**2 + a**-2], axis=1), atol=1e-12)


def test_corridor_loss():
    _check(toys.corridor_loss, lambda p: p[0] + 0.5 * p[1] ** 2, lambda p: np.array([1.0, p[1]]),
           lambda p: np.diag([0.0, 1.0]))


def test_sine_valley():
    _check(toys.sine_valley, lambda p: np.log(np.cosh(p[0] - 1)) + 0.5 * (p[1] - np.sin(p[0])) ** 2,
           lambda p: np.array([np.tanh(p[0] - 1) - (p[1] - np.sin(p[0])) * np.cos(p[0]), p[1] - np.sin(p[0])]))
    minimizer = jnp.array([1.0, np.sin(1.0)])
    np.testing.assert_allclose(jax.grad(toys.sine_valley)(minimizer), 0.0, atol=1e-15)
    c = np.cos(1.0)
    np.testing.assert_allclose(jax.hessian(toys.sine_valley)(minimizer), [[1 + c**2, -c], [-c, 1.0]], **TOL)


def test_quartic_product():
    r = lambda p: p[0] * p[1] - 0.5
    _check(toys.quartic_product, lambda p: 0.5 * r(p) ** 2 + 0.1 * p[1] ** 4,
           lambda p: np.array([r(p) * p[1], r(p) * p[0] + 0.4 * p[1] ** 3]))
    origin = jnp.zeros(2)
    np.testing.assert_allclose(toys.quartic_product(origin), 0.125, **TOL)
    np.testing.assert_allclose(jax.grad(toys.quartic_product)(origin), 0.0, atol=1e-15)
    np.testing.assert_allclose(jax.hessian(toys.quartic_product)(origin), [[0.0, -0.5], [-0.5, 0.0]], **TOL)


def test_bilinear_game():
    joint = lambda z: toys.bilinear_game(z[0], z[1])
    _check(joint, lambda p: p[0] * p[1], lambda p: np.array([p[1], p[0]]), lambda p: np.array([[0.0, 1], [1, 0]]))


@pytest.mark.parametrize("n", [1, 3])
def test_two_point_quadratic(n):
    s = 0.7
    example_loss, mean_loss = toys.two_point_quadratic(s)
    points = np.random.default_rng(2).normal(size=(3, n))
    for i, gamma in enumerate((s, -s)):
        _check(lambda x, i=i: example_loss(x, i), lambda x, g=gamma: 0.5 * np.sum((x - g) ** 2),
               lambda x, g=gamma: x - g, lambda x: np.eye(n), points)
    _check(mean_loss, lambda x: 0.5 * (x @ x + n * s**2), lambda x: x, lambda x: np.eye(n), points)
    # per-example gradients with a traced index, as the SGD noise covariance takes them: covariance s^2 1 1^T
    grads = jax.vmap(jax.grad(example_loss), (None, 0))(jnp.asarray(points[0]), jnp.arange(2))
    np.testing.assert_allclose(np.cov(np.asarray(grads).T, bias=True).reshape(n, n), s**2 * np.ones((n, n)), **TOL)
