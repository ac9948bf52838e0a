"""dynamics.measure.function_space: the exact knot sum int |f''| g against a hand example, numerical integration of a
softened ReLU (scipy.integrate.quad), finite differences of f', a plain loop for g, and bad input; the multivariate
Laplacian norm against a finite-difference Laplacian on a grid, the univariate norm of an embedded net, a plain loop
for the line weight, parametrization invariance, and bad input."""

import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.special

from dynamics.errors import InputError
from dynamics.measure import (radon_stability_weight, relu_curvature_norm, relu_hyperplanes, relu_knots,
                              relu_laplacian_norm, relu_net, stability_weight)

jax.config.update("jax_enable_x64", True)


def net(w, b, v, c=0.0):
    return {"w": np.asarray(w, float), "b": np.asarray(b, float), "v": np.asarray(v, float), "c": np.asarray(c, float)}


def g_loop(X, x):
    """g by a plain loop over the data (independent of the vectorized code)."""
    def side(points, sign):
        if not points:
            return 0.0
        p, m = len(points) / len(X), sum(points) / len(points)
        return p**2 * sign * (m - x) * np.sqrt(1 + m**2)

    return min(side([t for t in X if t > x], 1.0), side([t for t in X if t < x], -1.0))


def test_hand_example():
    # f = 2 relu(x) - relu(-3x + 1) + relu(2x): knots 0 (masses 2 + 2 = 4, merged) and 1/3 (mass -1 * 3)
    params = net([1.0, -3.0, 2.0], [0.0, 1.0, 0.0], [2.0, -1.0, 1.0])
    knots, masses = relu_knots(params)
    np.testing.assert_allclose(knots, [0.0, 1 / 3], atol=1e-15)
    np.testing.assert_allclose(masses, [4.0, -3.0], atol=1e-15)
    X = np.array([-1.0, -0.5, 0.2, 0.6, 1.0])
    # g(0) by hand: right {0.2, 0.6, 1}: P = 3/5, mean 0.6, gap 0.6; left {-1, -0.5}: P = 2/5, mean -0.75, gap 0.75
    right, left = 0.36 * 0.6 * np.sqrt(1 + 0.36), 0.16 * 0.75 * np.sqrt(1 + 0.5625)
    assert stability_weight(X, np.array(0.0)) == pytest.approx(min(right, left), rel=1e-14)
    expected = 4 * min(right, left) + 3 * g_loop(X, 1 / 3)
    assert relu_curvature_norm(params, X) == pytest.approx(expected, rel=1e-14)
    assert relu_curvature_norm(params, None, weight=np.ones_like) == pytest.approx(7.0, rel=1e-15)


def test_weight_matches_loop_and_vanishes_outside_hull():
    rng = np.random.default_rng(3)
    X = rng.normal(size=9)
    x = np.r_[np.linspace(-3, 3, 41), X.min() - 1e-3, X.max() + 1e-3]
    np.testing.assert_allclose(stability_weight(X, x), [g_loop(list(X), t) for t in x], rtol=1e-13, atol=1e-16)
    assert stability_weight(X, np.array([X.min() - 1.0, X.max() + 1.0])).tolist() == [0.0, 0.0]


def test_cancelling_pair_and_dead_neuron():
    X = np.linspace(-1, 1, 7)
    base = net([1.0, 2.0], [0.3, -0.4], [0.7, -1.1])
    # a cancelling pair at x = 0.1 (masses v |w| = +0.5 and -0.25 * 2) and a dead neuron (w = 0) add nothing
    more = net([1.0, 2.0, 1.0, -2.0, 0.0], [0.3, -0.4, -0.1, 0.2, 5.0], [0.7, -1.1, 0.5, -0.25, 3.0])
    assert relu_curvature_norm(more, X) == pytest.approx(relu_curvature_norm(base, X), rel=1e-14)


def test_against_softened_relu_quadrature():
    """relu_beta(z) = softplus(beta z)/beta has second derivative beta sigma'(beta z); int |f_beta''| g dx by quad
    converges to the knot sum as beta -> infinity (knots well separated, g continuous near them)."""
    rng = np.random.default_rng(0)
    X = np.sort(rng.uniform(-1, 1, 12))
    params = net([1.3, -0.8, 2.1, 0.9], [0.2, 0.1, -0.5, 0.55], [0.9, -1.4, 0.6, 0.8])
    knots, _ = relu_knots(params)
    assert np.min(np.abs(knots[:, None] - X[None, :])) > 0.02   # g is piecewise smooth, with jumps at the data

    def f2(x, beta):
        z = beta * (params["w"] * x + params["b"])
        s = scipy.special.expit(z)
        return np.sum(params["v"] * params["w"] ** 2 * beta * s * (1 - s))

    exact = relu_curvature_norm(params, X)
    errors = []
    for beta in (1e3, 1e4):
        value = scipy.integrate.quad(lambda x: abs(f2(x, beta)) * stability_weight(X, np.array(x)), -1.5, 1.5,
                                     points=list(knots) + list(X), limit=500, epsabs=1e-12, epsrel=1e-12)[0]
        errors.append(abs(value - exact))
    # smoothing width ~ 1/(beta |w|): the error shrinks with beta (the Lipschitz part of g at the knots: O(1/beta))
    assert errors[1] < 3e-3 * exact and errors[1] < errors[0]


def test_against_finite_differences_of_slope():
    """Jumps of f' (jax.grad of relu_net in x) on a fine grid, weighted by g at the jump's location."""
    params = net([1.0, -2.0, 0.5, 3.0], [-0.3, 0.2, 0.1, 1.5], [1.2, 0.4, -2.0, 0.3])
    X = np.linspace(-1, 1, 9) + 0.013
    grid = np.linspace(-2.0, 2.0, 400_001)
    slope = np.asarray(jax.vmap(jax.grad(lambda x: relu_net({k: jax.numpy.asarray(v) for k, v in params.items()}, x)))(
        jax.numpy.asarray(grid)))
    jumps = np.diff(slope)
    where = np.flatnonzero(np.abs(jumps) > 1e-12)
    fd = np.sum(np.abs(jumps[where]) * stability_weight(X, 0.5 * (grid[where] + grid[where + 1])))
    # g is evaluated 1e-5 from the knot: its slope is O(1), so the error is O(1e-5) relative
    assert fd == pytest.approx(relu_curvature_norm(params, X), rel=1e-4)


@pytest.mark.parametrize("params, match", [
    ([1.0, 2.0], "dict"),
    ({"w": np.ones(3), "b": np.ones(3), "v": np.ones(3)}, "missing keys"),
    ({"w": np.ones(3), "b": np.ones(3), "v": np.ones(3), "c": np.zeros(()), "w2": np.ones(3)}, "unexpected keys"),
    ({"w": np.ones((3, 2)), "b": np.ones(3), "v": np.ones(3), "c": np.zeros(())}, "multivariate"),
    ({"w": np.ones(3), "b": np.ones(3), "v": np.ones((3, 2)), "c": np.zeros(())}, "multiple outputs"),
    ({"w": np.ones(3), "b": np.ones(2), "v": np.ones(3), "c": np.zeros(())}, r"must have shape \(K,\)"),
    ({"w": np.ones(3), "b": np.ones(3), "v": np.ones(3), "c": np.zeros(2)}, "scalar"),
    ({"w": np.ones(3, int), "b": np.ones(3), "v": np.ones(3), "c": np.zeros(())}, "float array"),
    ({"w": np.array([1.0, np.nan, 1.0]), "b": np.ones(3), "v": np.ones(3), "c": np.zeros(())}, "NaN"),
])
def test_bad_params(params, match):
    with pytest.raises(InputError, match=match):
        relu_curvature_norm(params, np.linspace(-1, 1, 5))


def test_bad_inputs_and_weight():
    params = net([1.0], [0.0], [1.0])
    with pytest.raises(InputError, match="1-D array of training inputs"):
        relu_curvature_norm(params, np.ones((3, 2)))
    with pytest.raises(InputError, match="nonnegative"):
        relu_curvature_norm(params, None, weight=lambda x: -np.ones_like(x))


W2 = np.array([[1.0, 0.5], [-0.7, 1.2], [0.3, -2.0], [2.0, 0.1]])
NET2 = {"w": W2, "b": np.array([0.1, -0.3, 0.4, 0.5]), "v": np.array([1.0, -0.6, 0.8, -0.3]), "c": np.array(0.2)}


def test_multivariate_net_matches_numpy():
    x = np.random.default_rng(2).normal(size=(5, 2))
    expected = np.maximum(x @ W2.T + NET2["b"], 0.0) @ NET2["v"] + 0.2
    got = relu_net({k: jax.numpy.asarray(v) for k, v in NET2.items()}, jax.numpy.asarray(x))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-14)


def test_laplacian_against_finite_differences():
    """int |Laplacian f| rho dx for a Gaussian density rho: the exact line sum with the closed-form line integrals of
    rho (sqrt(2 pi) s exp(-t^2 / 2 s^2) / (2 pi s^2) over {u . x = t}) against the 5-point Laplacian of f on grids
    of step h = 8e-3 and 4e-3, Richardson-extrapolated. The grid sum's error is O(h) (measured -2.2%, -1.0%, -0.5% at
    h = 8e-3, 4e-3, 2e-3); the extrapolation's remainder 1.2e-3 at (8e-3, 4e-3), 1.5e-4 at (4e-3, 2e-3): 3e-3 allows
    2.5 times the measured one."""
    s = 0.5

    def line_mass(normals, offsets):
        return np.sqrt(2 * np.pi) * s * np.exp(-offsets**2 / (2 * s * s)) / (2 * np.pi * s * s)

    exact = relu_laplacian_norm(NET2, None, weight=line_mass)
    sums = []
    for h in (8e-3, 4e-3):
        g = np.arange(-2.5, 2.5 + h / 2, h)
        x1, x2 = np.meshgrid(g, g, indexing="ij")
        F = np.maximum(x1[..., None] * W2[:, 0] + x2[..., None] * W2[:, 1] + NET2["b"], 0.0) @ NET2["v"]
        lap = (F[2:, 1:-1] + F[:-2, 1:-1] + F[1:-1, 2:] + F[1:-1, :-2] - 4 * F[1:-1, 1:-1]) / h**2
        rho = np.exp(-(x1[1:-1, 1:-1] ** 2 + x2[1:-1, 1:-1] ** 2) / (2 * s * s)) / (2 * np.pi * s * s)
        sums.append(np.sum(np.abs(lap) * rho) * h * h)
    assert abs(sums[1] / exact - 1) < abs(sums[0] / exact - 1) < 0.03          # first order, converging
    assert 2 * sums[1] - sums[0] == pytest.approx(exact, rel=3e-3)


def test_embedded_univariate_net_and_weight_loop():
    """A univariate net on data (x, 0) has the same norm as relu_curvature_norm; g by a plain loop over the data."""
    rng = np.random.default_rng(0)
    X1 = np.sort(rng.uniform(-1, 1, 12))
    params = net([1.3, -0.8, 2.1, 0.9], [0.2, 0.1, -0.5, 0.55], [0.9, -1.4, 0.6, 0.8])
    embedded = {**params, "w": np.c_[params["w"], np.zeros(4)]}
    assert relu_laplacian_norm(embedded, np.c_[X1, np.zeros(12)]) == pytest.approx(relu_curvature_norm(params, X1),
                                                                                    rel=1e-13)
    X = rng.normal(size=(9, 2))
    normals, offsets, _ = relu_hyperplanes(NET2)

    def g_loop(u, t):
        def side(sign):
            above = [x for x in X if sign * (u @ x - t) > 0]
            if not above:
                return 0.0
            mean = np.mean(above, axis=0)
            return (len(above) / len(X)) ** 2 * sign * (u @ mean - t) * np.sqrt(1 + mean @ mean)
        return min(side(1.0), side(-1.0))

    np.testing.assert_allclose(radon_stability_weight(X, normals, offsets),
                               [g_loop(u, t) for u, t in zip(normals, offsets)], rtol=1e-13)


def test_hyperplanes_merge_and_parametrization_invariance():
    X = np.random.default_rng(4).normal(size=(8, 2))
    base = relu_laplacian_norm(NET2, X)
    w, b, v = NET2["w"], NET2["b"], NET2["v"]
    # relu(z) - relu(-z) = z on a new line adds a linear function (mass 0); a neuron split in two halves on its own
    # line, one of them rescaled (relu(a z) = a relu(z), a > 0), and a dead neuron (w = 0) change nothing
    z = np.array([0.6, -0.8]), 0.25
    more = {"w": np.r_[w, [z[0], -z[0], w[0], 3.0 * w[0], [0.0, 0.0]]],
            "b": np.r_[b, [z[1], -z[1], b[0], 3.0 * b[0], 7.0]],
            "v": np.r_[v[:1] * 0.5, v[1:], [1.3, -1.3, 0.0, v[0] * 0.5 / 3.0, 2.0]], "c": NET2["c"]}
    assert relu_laplacian_norm(more, X) == pytest.approx(base, rel=1e-14)
    normals, offsets, masses = relu_hyperplanes(more)
    assert len(offsets) == 5 and np.sum(masses == 0.0) == 1                    # the linear pair's line, mass 0
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, rtol=1e-15)


@pytest.mark.parametrize("params, X, match", [
    (net([1.0, 2.0], [0.0, 1.0], [1.0, 1.0]), np.ones((3, 2)), "univariate net: use relu_curvature_norm"),
    ({**NET2, "w2": np.ones((4, 2))}, np.ones((3, 2)), "unexpected keys"),
    ({**NET2, "v": np.ones((4, 3))}, np.ones((3, 2)), "multiple outputs"),
    ({**NET2, "b": np.ones(3)}, np.ones((3, 2)), r"must have shape \(K,\)"),
    (NET2, np.ones((3, 3)), "input dimension 3 but the net's first layer"),
    (NET2, np.ones(3), r"\(n, d\) array of training inputs"),
    (NET2, np.array([[0.0, np.nan]]), r"\(n, d\) array of training inputs"),
])
def test_multivariate_bad_input(params, X, match):
    with pytest.raises(InputError, match=match):
        relu_laplacian_norm(params, X)
    with pytest.raises(InputError, match="multivariate first layer.*relu_laplacian_norm"):
        relu_curvature_norm(NET2, np.linspace(-1, 1, 4))
    with pytest.raises(InputError, match="nonnegative"):
        relu_laplacian_norm(NET2, None, weight=lambda normals, offsets: -np.ones(len(offsets)))
