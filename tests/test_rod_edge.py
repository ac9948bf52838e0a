"""Rod flow and edge flow (dynamics/processes/rod_edge.py) against GD run in NumPy and closed forms on quadratics."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import dynamics as dy
from dynamics.processes import EdgeFlow, RodFlow, rod_from_gd


def numpy_gd(grad, w0, eta, steps):
    """GD iterates w_0..w_steps with a NumPy gradient (independent of JAX's autodiff)."""
    w = [np.asarray(w0, float)]
    for _ in range(steps):
        w.append(w[-1] - eta * grad(w[-1]))
    return w


def scalar_net_grad(w):
    """grad of (w1 w2 w3 - 1)^2 / 2: (pi - 1) prod_{j != i} w_j."""
    return (np.prod(w) - 1.0) * np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]])


def scalar_net_hessian(w):
    """grad pi grad pi^T + (pi - 1) d2 pi, with d2 pi_ij = w_k (k the third index) off the diagonal."""
    g = np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]])
    d2 = np.array([[0, w[2], w[1]], [w[2], 0, w[0]], [w[1], w[0], 0]])
    return np.outer(g, g) + (np.prod(w) - 1.0) * d2


SCALAR_LOSS = dy.models.mlp.scalar_network_loss(1.0)
W0 = np.array([2.0, 0.5, 0.3])
ETA = 2.6 / dy.predictions.gfs_sharpness_scalar(W0)


def assert_euler_step_is_gd(loss, grad, w0, eta, ks, tol=1e-12):
    w = numpy_gd(grad, w0, eta, max(ks) + 2)
    rod = RodFlow(loss, eta)
    for k in ks:
        x, d = rod_from_gd(jnp.asarray(w[k]), jnp.asarray(w[k + 1]), k)
        dx, dd = rod.field(float(k), (x, d))
        x1, d1 = rod_from_gd(w[k + 1], w[k + 2], k + 1)
        np.testing.assert_allclose(np.asarray(x + dx), x1, rtol=0, atol=tol)
        np.testing.assert_allclose(np.asarray(d + dd), d1, rtol=0, atol=tol)


def test_one_step_identity_random_quadratic():
    """L = w^T H w / 2 - b^T w with eta lambda_max = 2.4: the Euler step dtau = 1 is GD's rod map, odd and even k."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    H = Q @ np.diag([2.4, 1.7, 1.0, 0.3, 0.05]) @ Q.T
    b = rng.normal(size=5)
    assert_euler_step_is_gd(lambda w: 0.5 * w @ jnp.asarray(H) @ w - jnp.asarray(b) @ w, lambda w: H @ w - b,
                            rng.normal(size=5), 1.0, ks=range(6))


def test_one_step_identity_scalar_network():
    assert_euler_step_is_gd(SCALAR_LOSS, scalar_net_grad, W0, ETA, ks=(0, 1, 2, 3, 10, 11, 40))


def test_rod_threshold_on_a_quadratic():
    """H = diag(lam), eta = 1: the field is linear, d_i(tau) = e^{(lam_i - 2) tau} d_i(0), x_i = e^{-lam_i tau} x_i(0);
    d opens iff eta lambda > 2, exactly where GD's period-2 factor |1 - eta lambda| exceeds 1."""
    lam = np.array([0.5, 1.9, 1.99, 2.01, 2.1, 2.5])
    x0, d0, tau = np.full(6, 0.1), np.full(6, 1e-3), 5.0
    loss = lambda w: 0.5 * jnp.sum(jnp.asarray(lam) * w**2)
    traj = dy.simulate(RodFlow(loss, 1.0), (jnp.asarray(x0), jnp.asarray(d0)), np.array([0.0, tau]), rtol=1e-11,
                       atol=1e-20)
    assert traj.time_unit == "step"
    x, d = (np.asarray(a)[-1] for a in traj.ys)
    np.testing.assert_allclose(x, x0 * np.exp(-lam * tau), rtol=1e-8)
    np.testing.assert_allclose(d, d0 * np.exp((lam - 2) * tau), rtol=1e-8)
    np.testing.assert_array_equal(np.abs(d) > d0, np.abs(1 - lam) > 1)


def test_edge_flow_rho_zero_is_invariant():
    """rho = 0: rho stays 0, x does the stable flow x_i = e^{-eta lam_i tau} x_i(0) and u the normalized linear flow
    u(tau) = e^{eta H tau} u0 / ||.|| (Rayleigh-quotient ascent), both in closed form on a quadratic."""
    lam, eta, tau = np.array([3.0, 1.0, 0.5]), 0.5, 2.0
    loss = lambda w: 0.5 * jnp.sum(jnp.asarray(lam) * w**2)
    x0, u0 = np.array([0.3, -0.2, 0.1]), np.array([0.6, 0.0, 0.8])
    edge = EdgeFlow(loss, eta)
    dx, du, drho = edge.field(0.0, (jnp.asarray(x0), jnp.asarray(u0), jnp.asarray(0.0)))
    assert float(drho) == 0.0 and np.all(np.isfinite(np.asarray(du)))
    traj = dy.simulate(edge, (jnp.asarray(x0), jnp.asarray(u0), jnp.asarray(0.0)), np.array([0.0, tau]), rtol=1e-11,
                       atol=1e-14)
    x, u, rho = (np.asarray(a)[-1] for a in traj.ys)
    assert rho == 0.0
    np.testing.assert_allclose(x, x0 * np.exp(-eta * lam * tau), rtol=1e-9)
    expected_u = scipy.linalg.expm(eta * tau * np.diag(lam)) @ u0
    np.testing.assert_allclose(u, expected_u / np.linalg.norm(expected_u), atol=1e-9)


def test_edge_flow_is_the_rod_flow_projected_on_its_direction():
    """With d = rho u: dx(edge) = dx(rod) and drho = u . dd(rod), at arbitrary states of the scalar network."""
    rng = np.random.default_rng(1)
    for _ in range(3):
        x, u, rho = rng.normal(size=3), rng.normal(size=3), abs(rng.normal()) * 0.3
        u /= np.linalg.norm(u)
        dx_e, _, drho = EdgeFlow(SCALAR_LOSS, ETA).field(0.0, (jnp.asarray(x), jnp.asarray(u), jnp.asarray(rho)))
        dx_r, dd_r = RodFlow(SCALAR_LOSS, ETA).field(0.0, (jnp.asarray(x), jnp.asarray(rho * u)))
        np.testing.assert_allclose(np.asarray(dx_e), np.asarray(dx_r), atol=1e-14)
        assert float(drho) == pytest.approx(float(u @ np.asarray(dd_r)), abs=1e-13)


def test_edge_initial_state_seeds_from_gd_and_top_eigenvector():
    x0, u0, rho0 = EdgeFlow(SCALAR_LOSS, ETA).initial_state(jnp.asarray(W0))
    w1 = W0 - ETA * scalar_net_grad(W0)
    np.testing.assert_allclose(np.asarray(x0), 0.5 * (W0 + w1), atol=1e-15)
    top = np.linalg.eigh(scalar_net_hessian(0.5 * (W0 + w1)))[1][:, -1]
    assert abs(float(np.asarray(u0) @ top)) == pytest.approx(1.0, abs=1e-12)
    assert float(rho0) == pytest.approx(abs(top @ (W0 - w1)) / 2, rel=1e-12)
    assert float(np.asarray(u0) @ (W0 - w1)) > 0
    x, d = RodFlow(SCALAR_LOSS, ETA).initial_state(jnp.asarray(W0))
    np.testing.assert_allclose(np.asarray(d), 0.5 * (W0 - w1), atol=1e-15)


def test_pytree_states():
    """Parameters as a dict: the rod's Euler step is still GD's rod map."""
    loss = lambda p: SCALAR_LOSS(jnp.concatenate([p["a"], p["b"]]))
    to_tree = lambda w: {"a": jnp.asarray(w[:1]), "b": jnp.asarray(w[1:])}
    w = numpy_gd(scalar_net_grad, W0, ETA, 2)
    x, d = rod_from_gd(to_tree(w[0]), to_tree(w[1]))
    dx, dd = RodFlow(loss, ETA).field(0.0, (x, d))
    x1, d1 = rod_from_gd(to_tree(w[1]), to_tree(w[2]), 1)
    for key in ("a", "b"):
        np.testing.assert_allclose(np.asarray(x[key] + dx[key]), np.asarray(x1[key]), atol=1e-12)
        np.testing.assert_allclose(np.asarray(d[key] + dd[key]), np.asarray(d1[key]), atol=1e-12)


def test_bad_input():
    edge, w0 = EdgeFlow(SCALAR_LOSS, ETA), jnp.asarray(W0)
    for rho in (0.0, -0.1, float("nan")):
        with pytest.raises(dy.InputError, match="rho0 must be finite and > 0"):
            edge.initial_state(w0, rho=rho)
    with pytest.raises(dy.InputError, match="must be a scalar"):
        edge.initial_state(w0, rho=jnp.ones(2))
    with pytest.raises(dy.InputError, match="unit vector"):
        edge.initial_state(w0, u=jnp.array([1.0, 1.0, 0.0]))
    with pytest.raises(dy.InputError, match="same structure and shapes"):
        edge.initial_state(w0, u=jnp.array([1.0, 0.0]))
    with pytest.raises(dy.InputError, match="same structure and shapes"):
        rod_from_gd(jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(dy.StepSizeError):
        RodFlow(SCALAR_LOSS, 0.0)
    with pytest.raises(dy.StepSizeError):
        EdgeFlow(SCALAR_LOSS, -1.0)


def shifted_quadratic(lam, c):
    """L = sum_i lam_i (w_i - c_i)^2 / 2: x = c is at rest, H = diag(lam), the secant along e_1 is lam_1 exactly."""
    return lambda w: 0.5 * jnp.sum(jnp.asarray(lam) * (w - jnp.asarray(c)) ** 2)


def test_roundoff_floor_formula():
    """2^-53 sqrt(sum x_i^2 u_i^2 / 3), computed in NumPy: the RMS of fl(w - eta g)'s rounding along u."""
    from dynamics.processes.rod_edge import roundoff_floor
    x, u = np.array([3.0, -4.0, 12.0]), np.array([0.6, 0.8, 0.0])
    expected = 2.0 ** -53 * np.sqrt(np.sum((x * u) ** 2) / 3.0)
    assert float(roundoff_floor(jnp.asarray(x), jnp.asarray(u))) == pytest.approx(expected, rel=1e-15)


def test_edge_onset_rule_holds_rho_at_the_roundoff_floor():
    """eta lambda_1 = 1.5 < 2 at rest (x = c, u = e_1): the bare law decays rho0 = 1e3 floor as e^{-tau/2} to
    ~0.045 floor at tau = 20 (closed form); the default rule stops it at the floor (the solver's last step into the
    floor may go below by at most its own decay, e^{-h/2}; 0.3 allows h <= 2.4); at eta lambda_1 = 2.5 both grow as
    e^{tau/2} from the floor (closed form)."""
    from dynamics.processes.rod_edge import roundoff_floor
    c, u0 = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 0.0])
    floor = float(roundoff_floor(jnp.asarray(c), jnp.asarray(u0)))
    assert floor == pytest.approx(2.0 ** -53 * 2.0 / np.sqrt(3.0), rel=1e-15)
    ts, tol = np.array([0.0, 20.0]), dict(rtol=1e-10, atol=1e-30)
    state = lambda rho: (jnp.asarray(c), jnp.asarray(u0), jnp.asarray(rho))
    decay = shifted_quadratic([1.5, 0.5, 0.2], c)
    assert EdgeFlow(decay, 1.0).onset == "roundoff"
    bare = dy.simulate(EdgeFlow(decay, 1.0, onset="none"), state(1e3 * floor), ts, **tol).ys[2][-1]
    assert float(bare) == pytest.approx(1e3 * floor * np.exp(-10.0), rel=1e-7)
    held = float(dy.simulate(EdgeFlow(decay, 1.0), state(1e3 * floor), ts, **tol).ys[2][-1])
    assert 0.3 * floor <= held <= floor * (1 + 1e-12)
    grow = shifted_quadratic([2.5, 0.5, 0.2], c)
    for onset in ("roundoff", "none"):
        end = dy.simulate(EdgeFlow(grow, 1.0, onset=onset), state(floor), ts, **tol).ys[2][-1]
        assert float(end) == pytest.approx(floor * np.exp(10.0), rel=1e-7)


def test_edge_onset_rule_field():
    """Below the floor with eta lambda < 2: drho = 0 (default) and rho (eta lambda - 2) for onset="none"; above the
    floor both are rho (eta lambda - 2), lambda = lam_1 exactly on the shifted quadratic."""
    from dynamics.processes.rod_edge import roundoff_floor
    c, u0 = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 0.0])
    floor = float(roundoff_floor(jnp.asarray(c), jnp.asarray(u0)))
    loss = shifted_quadratic([1.5, 0.5, 0.2], c)
    for rho, default in ((0.5 * floor, 0.0), (1e-3, -0.5 * 1e-3)):
        state = (jnp.asarray(c), jnp.asarray(u0), jnp.asarray(rho))
        assert float(EdgeFlow(loss, 1.0).field(0.0, state)[2]) == pytest.approx(default, rel=1e-12, abs=0)
        assert float(EdgeFlow(loss, 1.0, onset="none").field(0.0, state)[2]) == pytest.approx(-0.5 * rho, rel=1e-12)
    with pytest.raises(dy.InputError, match="onset must be one of"):
        EdgeFlow(loss, 1.0, onset="log")
