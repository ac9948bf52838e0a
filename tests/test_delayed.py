"""DelayedGD (dynamics/processes/delayed.py) and its thresholds (dynamics/predictions/delay.py)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.predictions import delayed_gd_threshold, delayed_threshold_companion
from dynamics.predictions.delay import delayed_companion

A = np.array([[1.5, 0.3], [0.3, 0.5]])
W0 = np.array([0.8, -0.6])


def loss(w):
    return 0.5 * w @ (jnp.asarray(A) @ w) + w[0] ** 4 / 12.0


def grad(w):
    return A @ w + np.array([w[0] ** 3 / 3.0, 0.0])


def numpy_delayed(lr, tau, beta, steps, shifted=False):
    """Plain NumPy loop: v_{k+1} = beta v_k - grad(w_{k-tau}) (shifted: beta v_{k-tau}), w_{k+1} = w_k + lr v_{k+1},
    w_j = w_0 for j < 0, v_j = 0 for j <= 0."""
    ws, vs = [W0.copy()], [np.zeros(2)]
    for k in range(steps):
        old = vs[k - tau] if shifted and k - tau >= 0 else (np.zeros(2) if shifted else vs[-1])
        vs.append(beta * old - grad(ws[max(k - tau, 0)]))
        ws.append(ws[-1] + lr * vs[-1])
    return np.array(ws)


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_delay_3_matches_a_numpy_loop(momentum):
    lr, steps = 0.1, 40
    traj = dyn.simulate(dyn.DelayedGD(loss, lr, 3, momentum=momentum), W0, lr * np.arange(steps + 1))
    # different summation orders (XLA vs NumPy) accumulate ~1e-16 per step, amplified ~1/(1 - beta) by the momentum
    np.testing.assert_allclose(np.asarray(traj.ys), numpy_delayed(lr, 3, momentum, steps), rtol=1e-12, atol=1e-14)
    assert traj.stats["gradients"] == steps


def test_delay_0_is_gradient_descent_and_heavy_ball_bit_for_bit():
    ts = 0.1 * np.arange(30)
    gd = dyn.simulate(dyn.GradientDescent(loss, 0.1), W0, ts)
    delayed = dyn.simulate(dyn.DelayedGD(loss, 0.1, 0), W0, ts)
    np.testing.assert_array_equal(np.asarray(delayed.ys), np.asarray(gd.ys))
    hb = dyn.simulate(dyn.HeavyBall(loss, 0.1, momentum=0.6), W0, ts)
    delayed = dyn.simulate(dyn.DelayedGD(loss, 0.1, 0, momentum=0.6), W0, ts)
    np.testing.assert_array_equal(np.asarray(delayed.ys), np.asarray(hb.ys))


def test_pytree_parameters():
    """A dict of arrays runs and agrees with the flat NumPy loop."""
    def tree_loss(p):
        return loss(jnp.stack([p["a"], p["b"]]))

    traj = dyn.simulate(dyn.DelayedGD(tree_loss, 0.1, 2, momentum=0.3), {"a": W0[0], "b": W0[1]},
                        0.1 * np.arange(21))
    got = np.stack([np.asarray(traj.ys["a"]), np.asarray(traj.ys["b"])], axis=1)
    np.testing.assert_allclose(got, numpy_delayed(0.1, 2, 0.3, 20), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("delay", [-1, 1.0, 2.5, "3", True, None])
def test_bad_delay(delay):
    with pytest.raises(dyn.InputError, match="delay must be an integer >= 0"):
        dyn.DelayedGD(loss, 0.1, delay)
    with pytest.raises(dyn.InputError, match="delay"):
        delayed_gd_threshold(0.1, delay)


def test_bad_lr_and_momentum():
    with pytest.raises(dyn.StepSizeError):
        dyn.DelayedGD(loss, -0.1, 2)
    with pytest.raises(dyn.InputError, match="momentum"):
        dyn.DelayedGD(loss, 0.1, 2, momentum=1.0)
    with pytest.raises(dyn.StepSizeError):
        delayed_threshold_companion(0.0, 2)
    with pytest.raises(dyn.InputError, match="momentum"):
        delayed_threshold_companion(0.1, 2, momentum=-0.1)


def test_new_lr_and_momentum_do_not_retrace():
    calls = []

    def counting(w):
        calls.append(1)
        return loss(w)

    dyn.simulate(dyn.DelayedGD(counting, 0.1, 2, momentum=0.5), W0, 0.1 * np.arange(6))
    traced = len(calls)
    assert traced > 0
    dyn.simulate(dyn.DelayedGD(counting, 0.2, 2, momentum=0.9), W0, 0.2 * np.arange(6))
    assert len(calls) == traced


def test_thresholds_known_values_and_scaling():
    assert delayed_gd_threshold(1.0, 0) == 2.0
    assert delayed_gd_threshold(0.5, 1) == pytest.approx(2.0, rel=1e-15)
    assert delayed_gd_threshold(1.0, 2) == pytest.approx((math.sqrt(5) - 1) / 2, rel=1e-15)   # 2 sin(pi/10)
    for tau in (0, 1, 5):
        assert delayed_threshold_companion(0.01, tau) == pytest.approx(delayed_gd_threshold(0.01, tau), rel=1e-12)
    # heavy ball: tau = 0 is heavy_ball_threshold, tau = 1 is 1 - beta (Jury)
    assert delayed_threshold_companion(0.1, 0, 0.5) == pytest.approx(float(dyn.predictions.heavy_ball_threshold(0.1, 0.5)),
                                                                       rel=1e-12)
    assert delayed_threshold_companion(1.0, 1, 0.9) == pytest.approx(0.1, rel=1e-12)


def test_companion_is_the_update_rule():
    """The companion matrix applied to (w_k, ..., w_{k-m}) gives the recursion's next iterate."""
    rng = np.random.default_rng(0)
    for tau, beta in ((0, 0.4), (1, 0.0), (4, 0.7)):
        state = rng.normal(size=max(tau, 1) + 1)
        nxt = delayed_companion(0.3, tau, beta) @ state
        assert nxt[0] == pytest.approx((1 + beta) * state[0] - beta * state[1] - 0.3 * state[tau], rel=1e-15)
        np.testing.assert_array_equal(nxt[1:], state[:-1])


def test_equinox_model_and_keyword_construction():
    """A model mixing arrays and functions runs (simulate partitions it and rebinds the loss); keywords work."""
    import equinox as eqx
    import jax

    model = eqx.nn.Linear(2, 1, key=jax.random.PRNGKey(0))
    X = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)))

    def model_loss(m):
        return jnp.mean(jax.vmap(m)(X) ** 2)

    process = dyn.DelayedGD(loss=model_loss, lr=0.1, delay=2, momentum=0.5)
    traj = dyn.simulate(process, model, 0.1 * np.arange(11))
    final = jax.tree_util.tree_map(lambda leaf: leaf[-1], traj.ys)
    assert model_loss(final) < model_loss(model)


@pytest.mark.parametrize("tau", [0, 3])
def test_shifted_momentum_matches_a_numpy_loop(tau):
    lr, steps = 0.1, 40
    traj = dyn.simulate(dyn.DelayedGD(loss, lr, tau, momentum=0.7, shifted=True), W0, lr * np.arange(steps + 1))
    np.testing.assert_allclose(np.asarray(traj.ys), numpy_delayed(lr, tau, 0.7, steps, shifted=True), rtol=1e-12,
                               atol=1e-14)
    if tau == 0:   # shifted momentum without delay is heavy ball, bit for bit
        hb = dyn.simulate(dyn.HeavyBall(loss, lr, momentum=0.7), W0, lr * np.arange(steps + 1))
        np.testing.assert_array_equal(np.asarray(traj.ys), np.asarray(hb.ys))


def test_shifted_companion_is_the_update_rule_and_its_polynomial():
    """The shifted companion matrix advances (w, lr v) histories by the update rule, and its eigenvalues are the roots
    of (z - 1)(z^{tau+1} - beta) + a z (numpy roots)."""
    rng = np.random.default_rng(1)
    a, beta = 0.3, 0.6
    for tau in (0, 2, 5):
        n = tau + 1
        state = rng.normal(size=2 * n)
        nxt = delayed_companion(a, tau, beta, shifted=True) @ state
        u_new = beta * state[n + tau] - a * state[tau]
        assert nxt[n] == pytest.approx(u_new, rel=1e-14) and nxt[0] == pytest.approx(state[0] + u_new, rel=1e-14)
        np.testing.assert_array_equal(nxt[1:n], state[:n - 1])
        np.testing.assert_array_equal(nxt[n + 1:], state[n:-1])
        coeffs = np.zeros(tau + 3)
        np.add.at(coeffs, [0, 1, -2, -1], [1.0, -1.0, a - beta, beta])   # -2 and 1 coincide when tau = 0
        eig = np.linalg.eigvals(delayed_companion(a, tau, beta, shifted=True))
        # the other 2n - (tau + 2) eigenvalues are 0, one defective block: computed only to ~eps^(1/(2n - tau - 2))
        order = np.argsort(-np.abs(eig))
        assert np.all(np.abs(eig[order[tau + 2:]]) < 1e-2)
        np.testing.assert_allclose(np.sort_complex(eig[order[:tau + 2]]), np.sort_complex(np.roots(coeffs)),
                                   atol=1e-9)
    # tau = 0: heavy ball's 2 (1 + beta); tau = 1, beta = 0: 1 (no momentum)
    assert delayed_threshold_companion(1.0, 0, 0.5, shifted=True) == pytest.approx(3.0, rel=1e-12)
    assert delayed_threshold_companion(1.0, 1, 0.0, shifted=True) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("shifted", ["yes", 1, None])
def test_bad_shifted_flag(shifted):
    with pytest.raises(dyn.InputError, match="shifted must be True or False"):
        dyn.DelayedGD(loss, 0.1, 2, momentum=0.5, shifted=shifted)
    with pytest.raises(dyn.InputError, match="shifted must be True or False"):
        delayed_threshold_companion(0.1, 2, 0.5, shifted=shifted)
