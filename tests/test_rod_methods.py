"""Rod flows of momentum and Adam (dynamics/processes/rod_methods.py) and RodFlow's second-order centre, against
NumPy loops of the methods, NumPy closed forms on quadratics and the stability thresholds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import dynamics as dy
from dynamics.predictions import heavy_ball_threshold, nesterov_threshold
from dynamics.processes import MethodRodFlow, RodFlow, StableFlow, adam_rod, heavy_ball_rod
from dynamics.processes.rod_methods import SMOOTH

SCALAR_LOSS = dy.models.mlp.scalar_network_loss(1.0)
W0 = np.array([2.0, 0.5, 0.3])
LAM = np.array([2.7, 1.0, 0.2])
QUAD = lambda w: 0.5 * jnp.sum(jnp.asarray(LAM) * w**2)


def scalar_net_grad(w):
    return (np.prod(w) - 1.0) * np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]])


def numpy_adam(grad, w0, lr, b1, b2, eps, steps):
    """optax.adam's update written out: states (w, m, nu, count) for k = 0..steps."""
    w, m, nu, out = np.asarray(w0, float), np.zeros(len(w0)), np.zeros(len(w0)), []
    for k in range(steps + 1):
        out.append((w.copy(), m.copy(), nu.copy(), float(k)))
        g = grad(w)
        m, nu = b1 * m + (1 - b1) * g, b2 * nu + (1 - b2) * g**2
        w = w - lr * (m / (1 - b1 ** (k + 1))) / (np.sqrt(nu / (1 - b2 ** (k + 1))) + eps)
    return out


def adam_parts(z):
    """(w, m, nu, count) of an OptaxState of optax.adam."""
    adam = z.opt_state[0]
    return z.params, adam.mu, adam.nu, adam.count


def numpy_rod(a, b, k):
    s = (-1.0) ** k
    return [0.5 * (x + y) for x, y in zip(a, b)], [0.5 * s * (np.asarray(x) - np.asarray(y)) for x, y in zip(a, b)]


def test_gd_rod_is_rodflow_and_its_stable_flow_is_stableflow():
    rod, eta = MethodRodFlow(dy.GradientDescent(SCALAR_LOSS, 0.58)), 0.58
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, d = jnp.asarray(rng.normal(size=3)), jnp.asarray(0.3 * rng.normal(size=3))
        for a, b in zip(rod.field(0.0, (x, d)), RodFlow(SCALAR_LOSS, eta).field(0.0, (x, d))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-15)
        dx, dd = rod.field(0.0, (x, jnp.zeros(3)))
        np.testing.assert_allclose(np.asarray(dx), np.asarray(StableFlow(SCALAR_LOSS, eta).field(0.0, x)), atol=1e-15)
        assert np.all(np.asarray(dd) == 0.0)


def test_heavy_ball_euler_step_is_the_next_rod():
    """One Euler step dtau = 1 from the rod of (w_k, v_k), (w_k+1, v_k+1) is the next rod (NumPy heavy ball)."""
    lr, beta = 0.3, 0.5
    z = [(W0, np.zeros(3))]
    for _ in range(6):
        w, v = z[-1]
        v = beta * v - scalar_net_grad(w)
        z.append((w + lr * v, v))
    rod = heavy_ball_rod(SCALAR_LOSS, lr, beta)
    for k in range(5):
        state = rod.rod(dy.processes.discrete.MomentumState(*map(jnp.asarray, z[k])),
                        dy.processes.discrete.MomentumState(*map(jnp.asarray, z[k + 1])), k)
        x1, d1 = numpy_rod(z[k + 1], z[k + 2], k + 1)
        step = jax.tree_util.tree_map(lambda a, b: a + b, state, rod.field(float(k), state))
        for got, want in zip(jax.tree_util.tree_leaves(step), x1 + d1):
            np.testing.assert_allclose(np.asarray(got), want, atol=1e-13)


def test_adam_euler_step_is_the_next_rod_with_every_coordinate_on_it():
    """smooth="none": the Euler step of the rod of (w, m, nu, count)_k, k+1 is the rod k+1, NumPy Adam; the
    default keeps nu and the counter off the rod (d = 0 there, dd = 0), and moves them by the average of the map."""
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    ref = numpy_adam(scalar_net_grad, W0, lr, b1, b2, eps, 6)
    for smooth in SMOOTH:
        rod = adam_rod(SCALAR_LOSS, lr, b1, b2, eps, smooth=smooth)
        z = [rod.method.init(jnp.asarray(W0))]
        for k in range(6):
            z.append(rod.method.step(z[-1], k))
        for k in (0, 1, 4):
            state = rod.rod(z[k], z[k + 1], k)
            x, d = (adam_parts(part) for part in state)
            if smooth == "second_moment":
                assert float(np.max(np.abs(d[2]))) == 0.0 and float(d[3]) == 0.0
            step = [np.asarray(a) + np.asarray(b) for a, b in zip(x, adam_parts(rod.field(float(k), state)[0]))]
            x1, d1 = numpy_rod(ref[k + 1], ref[k + 2], k + 1)
            if smooth == "none":
                dstep = [np.asarray(a) + np.asarray(b) for a, b in zip(d, adam_parts(rod.field(float(k), state)[1]))]
                for got, want in zip(step + dstep, x1 + d1):
                    np.testing.assert_allclose(got, want, atol=1e-13)
            else:   # the parameters and m are exact to the smooth nu's effect; nu moves by the two ends' average
                (w_a, m_a, nu_a, _), (w_b, m_b, nu_b, _) = ref[k], ref[k + 1]
                g_a, g_b = scalar_net_grad(w_a), scalar_net_grad(w_b)
                nu_c = 0.5 * (nu_a + nu_b)
                want = nu_c + 0.5 * ((1 - b2) * (g_a**2 - nu_c) + (1 - b2) * (g_b**2 - nu_c))
                np.testing.assert_allclose(step[2], want, rtol=1e-12)
                assert float(step[3]) == pytest.approx(k + 1.5, abs=1e-12)


def heavy_ball_jacobian(lam, lr, beta):
    """The linear heavy-ball map (w, v) -> (w + lr (beta v - lam w), beta v - lam w) per eigenvalue."""
    return np.array([[1 - lr * lam, lr * beta], [-lam, beta]])


def test_heavy_ball_rod_on_a_quadratic_is_the_linear_closed_form():
    """L = sum lam_i w_i^2 / 2 at rest (x = 0): d(tau) = expm(-(J_F + I) tau) d0 per eigenvalue, and d opens
    exactly above heavy_ball_threshold (lr lam = 2(1 + beta)(1 +- 1%)), closed form vs the rod run."""
    lr, beta, tau = 1.0, 0.5, 40.0
    limit = float(heavy_ball_threshold(lr, beta))
    lam = np.array([0.99 * limit, 1.01 * limit, 0.3])
    rod = heavy_ball_rod(lambda w: 0.5 * jnp.sum(jnp.asarray(lam) * w**2), lr, beta)
    zero = dy.processes.discrete.MomentumState(jnp.zeros(3), jnp.zeros(3))
    d0 = dy.processes.discrete.MomentumState(jnp.full(3, 1e-3), jnp.zeros(3))
    traj = dy.simulate(rod, (zero, d0), np.array([0.0, tau / 2, tau]), rtol=1e-11, atol=1e-18)
    d = traj.ys[1]
    size = lambda j, i: np.hypot(float(d.params[j][i]), float(d.velocity[j][i]))
    for i in range(3):
        J = heavy_ball_jacobian(lam[i], lr, beta)
        want = scipy.linalg.expm(-(J + np.eye(2)) * tau) @ np.array([1e-3, 0.0])
        np.testing.assert_allclose([float(d.params[-1][i]), float(d.velocity[-1][i])], want, rtol=1e-8, atol=1e-15)
    assert [size(2, i) > size(1, i) for i in range(3)] == [False, True, False]   # past the transient


def test_nesterov_rod_threshold():
    """Nesterov's rod opens exactly above (2 + 2 beta)/((1 + 2 beta) lr): the d-field's linear rate at rest, from a
    JVP of the rod field, has the sign of lr lam - threshold at 1 +- 1% (eigenvalues of the 2 x 2 map, NumPy)."""
    lr, beta = 1.0, 0.5
    limit = float(nesterov_threshold(lr, beta))
    for factor, sign in ((0.99, -1), (1.01, 1)):
        lam = factor * limit
        J = np.array([[1 - lr * lam * (1 + beta), lr * beta**2], [-lam, beta]])   # (w, v) map, optax Nesterov
        rate = np.max(np.real(-(np.linalg.eigvals(J) + 1)))
        assert np.sign(rate) == sign
        rod = MethodRodFlow(dy.Nesterov(lambda w: 0.5 * lam * jnp.sum(w**2), lr, momentum=beta))
        zero = dy.processes.discrete.MomentumState(jnp.zeros(1), jnp.zeros(1))
        for e in ([1.0, 0.0], [0.0, 1.0]):
            d = dy.processes.discrete.MomentumState(jnp.asarray(e[:1]), jnp.asarray(e[1:]))
            dd = rod.field(0.0, (zero, d))[1]
            np.testing.assert_allclose([float(dd.params[0]), float(dd.velocity[0])],
                                       -(J + np.eye(2)) @ np.asarray(e), atol=1e-13)


def test_second_order_centre_on_a_quadratic_and_at_d_zero():
    """Order 2 on L = sum lam_i w_i^2 / 2: dx = -eta H x - (eta^2/2) H^2 x for any d (IGR in step time), dd as order
    1; at d = 0 on the scalar net it is IGR, -eta g - (eta^2/2) H g (NumPy Hessian)."""
    eta, x, d = 0.4, np.array([0.3, -0.2, 1.0]), np.array([0.1, 0.05, -0.2])
    dx, dd = RodFlow(QUAD, eta, order=2).field(0.0, (jnp.asarray(x), jnp.asarray(d)))
    np.testing.assert_allclose(np.asarray(dx), -eta * LAM * x - 0.5 * eta**2 * LAM**2 * x, atol=1e-15)
    np.testing.assert_allclose(np.asarray(dd), (eta * LAM - 2) * d, atol=1e-15)
    w = W0
    g = scalar_net_grad(w)
    gp = np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]])
    H = np.outer(gp, gp) + (np.prod(w) - 1) * np.array([[0, w[2], w[1]], [w[2], 0, w[0]], [w[1], w[0], 0]])
    dx = RodFlow(SCALAR_LOSS, eta, order=2).field(0.0, (jnp.asarray(w), jnp.zeros(3)))[0]
    np.testing.assert_allclose(np.asarray(dx), -eta * g - 0.5 * eta**2 * H @ g, atol=1e-13)
    assert RodFlow(QUAD, eta, order=2).step_cost(x) == dy.StepCost(2.0, 2.0)
    assert RodFlow(QUAD, eta).step_cost(x) == heavy_ball_rod(QUAD, eta, 0.5).step_cost(x) == dy.StepCost(2.0)


def test_bad_input():
    for beta in (1.0, -0.1, 1.5):
        with pytest.raises(dy.InputError, match="momentum"):
            heavy_ball_rod(QUAD, 0.1, beta)
    for kwargs, phrase in (({"b1": 1.0}, "b1"), ({"b1": -0.2}, "b1"), ({"b2": 1.0}, "b2"), ({"eps": 0.0}, "eps"),
                           ({"eps": -1e-8}, "eps")):
        with pytest.raises(dy.InputError, match=phrase):
            adam_rod(QUAD, 0.1, **kwargs)
    with pytest.raises(dy.StepSizeError):
        adam_rod(QUAD, 0.0)
    with pytest.raises(dy.InputError, match="deterministic one-step method"):
        MethodRodFlow(RodFlow(QUAD, 0.1))
    with pytest.raises(dy.InputError, match="constant learning rate"):
        MethodRodFlow(dy.HeavyBall(QUAD, lambda k: 0.1 / (1 + k)))
    with pytest.raises(dy.InputError, match="smooth must be one of"):
        MethodRodFlow(dy.HeavyBall(QUAD, 0.1), smooth="nu")
    for order in (0, 3, True, "2"):
        with pytest.raises(dy.InputError, match="centre order"):
            RodFlow(QUAD, 0.1, order=order)
        with pytest.raises(dy.InputError, match="centre order"):
            heavy_ball_rod(QUAD, 0.1, 0.5, order=order)
    rod = adam_rod(QUAD, 0.1)
    with pytest.raises(dy.InputError, match="initial_state"):
        rod.field(0.0, jnp.zeros(3))
    with pytest.raises(dy.InputError, match="shaped like"):
        rod.field(0.0, (jnp.zeros(3), jnp.zeros(3)))
    assert isinstance(rod.method.tx, optax.GradientTransformation)
