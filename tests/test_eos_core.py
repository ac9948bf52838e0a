"""Edge-of-stability core: scalar-network GFS sharpness, step-time flows, the central-flow SDCP solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.flatten_util import ravel_pytree

import dynamics as dy
from dynamics.models.mlp import mlp_init, mlp_loss, scalar_network_loss
from dynamics.predictions.gfs import (balanced_sharpness, gfs_point_scalar, gfs_sharpness_scalar,
                                      require_stable_minimizer)
from dynamics.processes.eos import CentralFlow, StableFlow, solve_sdcp


def test_gfs_sharpness_depth_two_closed_form():
    """D = 2: phi = sqrt((w1^2 - w2^2)^2 + 4 y^2) (the conserved w1^2 - w2^2 fixes the limit)."""
    for w, y in [((2.5, 0.1), 1.0), ((1.2, 0.7), 1.0), ((-0.5, -3.0), 2.0)]:
        expected = np.sqrt((w[0] ** 2 - w[1] ** 2) ** 2 + 4 * y**2)
        assert gfs_sharpness_scalar(w, y) == pytest.approx(expected, rel=1e-13)


def test_gfs_point_matches_gradient_flow_and_dense_sharpness():
    w0 = jnp.array([2.0, 0.5, 0.3])
    loss = scalar_network_loss(1.0)
    traj = dy.simulate(dy.GradientFlow(loss), w0, np.array([0.0, 200.0]), rtol=1e-12, atol=1e-14)
    end = np.asarray(traj.ys)[-1]
    np.testing.assert_allclose(end, gfs_point_scalar(np.asarray(w0)), rtol=1e-9)
    hessian = jax.hessian(loss)(jnp.asarray(end))
    assert np.linalg.eigvalsh(np.asarray(hessian))[-1] == pytest.approx(gfs_sharpness_scalar(np.asarray(w0)), rel=1e-8)


def test_gfs_refuses_flow_that_ends_at_zero_and_unstable_learning_rates():
    with pytest.raises(dy.InputError, match="ends at pi = 0"):
        gfs_point_scalar([1.0, -1.0], 1.0)
    assert balanced_sharpness(3, 1.0) == 3.0
    require_stable_minimizer(0.6, 3)  # 2/0.6 = 3.33 > 3
    with pytest.raises(dy.StepSizeError, match="no minimizer of the depth-3 scalar network is stable"):
        require_stable_minimizer(0.7, 3)  # 2/0.7 = 2.86 < 3


def test_stable_flow_is_gradient_flow_in_step_time():
    loss = lambda w: 0.5 * jnp.sum(jnp.array([2.0, 0.5]) * w**2)
    traj = dy.simulate(StableFlow(loss, 0.1), jnp.ones(2), np.array([0.0, 10.0]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(traj.ys)[-1], np.exp(-0.1 * 10 * np.array([2.0, 0.5])), rtol=1e-10)


def test_sdcp_single_eigenvalue_closed_form():
    for a, b, expected in [(-3.0, 2.0, 1.5), (1.0, 2.0, 0.0)]:
        X = solve_sdcp(jnp.array([[a]]), jnp.array([[b]]), jnp.array([True]))
        assert float(X[0, 0]) == pytest.approx(expected, abs=1e-12)


def test_sdcp_two_eigenvalues_against_scipy():
    """min_{X PSD} (1/2)<X, B[X]> + <A, X> over X = L L^T, compared with the projected-gradient solver."""
    rng = np.random.default_rng(0)
    D = rng.normal(size=(4, 6))
    D[1] = D[2]  # B acts on symmetric matrices: entries (0,1) and (1,0) share one gradient
    gram = D @ D.T
    A = np.array([[-1.0, 0.3], [0.3, -0.5]])
    X = np.asarray(solve_sdcp(jnp.asarray(A), jnp.asarray(gram), jnp.array([True, True]), iterations=3000))
    objective = lambda M: 0.5 * M.reshape(-1) @ gram @ M.reshape(-1) + np.sum(A * M)
    best = min((scipy.optimize.minimize(lambda p: objective(np.array([[p[0], 0], [p[1], p[2]]]) @
                                                            np.array([[p[0], 0], [p[1], p[2]]]).T),
                                        rng.normal(size=3), method="BFGS", options={"gtol": 1e-12})
                for _ in range(5)), key=lambda r: r.fun)
    assert objective(X) == pytest.approx(best.fun, rel=1e-8, abs=1e-12)
    assert np.linalg.eigvalsh(X).min() >= -1e-12
    residual = A + (gram @ X.reshape(-1)).reshape(2, 2)  # complementarity <X, A + B[X]> = 0
    assert abs(np.sum(X * residual)) < 1e-8


def test_central_flow_below_threshold_is_the_stable_flow():
    """With every eta lambda < threshold the critical set is empty, X = 0 and one step is 4 Euler substeps of -eta g."""
    params = mlp_init(jax.random.PRNGKey(0), (3, 4, 1))
    X = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    loss = mlp_loss(X, jnp.sin(X[:, 0]), "tanh")
    flat, unravel = ravel_pytree(params)
    E = lambda v: loss(unravel(v))
    eta = 0.05
    assert eta * dy.sharpness(E, flat) < 1.95
    state = CentralFlow(E, eta, k=2).step(CentralFlow(E, eta, k=2).init(flat), 0)
    w = flat
    for _ in range(4):
        w = w - eta / 4 * jax.grad(E)(w)
    np.testing.assert_allclose(state[0], w, atol=1e-13)


def test_mlp_loss_conventions():
    params = mlp_init(jax.random.PRNGKey(0), (2, 3, 1))
    X = jnp.ones((4, 2))
    y = jnp.arange(4.0)
    full, half = mlp_loss(X, y, "swish")(params), mlp_loss(X, y, "swish", half=True)(params)
    assert float(half) == pytest.approx(0.5 * float(full), rel=1e-14)
    with pytest.raises(dy.InputError, match="loss must be"):
        mlp_loss(X, y, loss="hinge")


def test_eos_metrics_midpoints_distances_and_loss_oscillation():
    from dynamics.measure.eos import distance_to_gd, loss_oscillation, midpoints, sharpness_along

    W = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(midpoints(W), (W[:-1] + W[1:]) / 2)
    flow_int = W + 1.0                                   # at tau = 0..3: midpoint rule, distance sqrt(3)
    np.testing.assert_allclose(distance_to_gd(W, flow_int), np.sqrt(3.0) * np.ones(3))
    np.testing.assert_allclose(distance_to_gd(W, midpoints(W)), np.zeros(3))
    with pytest.raises(dy.InputError, match="do not match"):
        distance_to_gd(W, W[:2])
    losses = np.array([3.0, 2.0, 2.5, 1.0, 1.5, 0.5])
    increases, ratio = loss_oscillation(losses, window=2)
    assert increases == 2 and ratio == pytest.approx(1.0 / 2.5)
    with pytest.raises(dy.InputError, match="longer than the window"):
        loss_oscillation(losses, window=10)
    # sharpness along rows against numpy's eigvalsh of the known Hessian diag(a) * (1 + row-dependent scale)
    a = jnp.array([3.0, -7.0, 1.0])
    loss = lambda w: 0.5 * jnp.sum(a * w**2) + 0.25 * w[0] ** 4
    rows = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [2.0, 5.0, 1.0]])
    expected = [np.linalg.eigvalsh(np.diag(np.asarray(a)) + np.diag([3 * r[0] ** 2, 0, 0]))[-1] for r in rows]
    np.testing.assert_allclose(sharpness_along(loss, rows, "dense"), expected, rtol=1e-13)
    np.testing.assert_allclose(sharpness_along(loss, rows, "lanczos", 3), expected, rtol=1e-12)


def test_gd_blowing_up_on_an_mlp_reports_the_step():
    """eta far beyond 2/S: GD overflows; simulate names the first non-finite iterate, found independently here by a
    plain step-by-step loop."""
    params = mlp_init(jax.random.PRNGKey(0), (3, 8, 1))
    X = jax.random.normal(jax.random.PRNGKey(1), (16, 3))
    loss = mlp_loss(X, X[:, 0] ** 2, "relu")
    flat, unravel = ravel_pytree(params)
    E = lambda v: loss(unravel(v))
    eta = 60.0 / float(dy.sharpness(E, flat))
    grad = jax.jit(jax.grad(E))
    w, first = flat, None
    for k in range(1, 400):
        w = w - eta * grad(w)
        if not np.all(np.isfinite(np.asarray(w))):
            first = k
            break
    assert first is not None
    with pytest.raises(dy.DivergenceError, match=f"iterate {first} ") as info:
        dy.simulate(dy.GradientDescent(E, eta), flat, eta * np.array([0.0, 200.0, 400.0]))
    assert info.value.step == first
