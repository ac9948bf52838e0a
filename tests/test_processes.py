"""Processes run through `simulate` against plain NumPy loops and closed-form flows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import dynamics as dy


class LinearTail(dy.AbstractTail):
    """l(u) = -u: -l' = 1, so an SGD step adds lr * sum of the batch's z_n and reveals its indices."""

    def log_value(self, u):
        return jnp.log(-u)

    def log_neg_derivative(self, u):
        return jnp.zeros_like(u)


@pytest.fixture
def logistic_problem(make_separable):
    X, y, _ = make_separable(0, 20, 2, margin=0.1)
    return X, y, y[:, None] * X


def _logistic_step(w, Z, lr):
    """w - lr grad sum_n log(1 + e^{-z_n.w}) = w + lr Z^T sigmoid(-Z w)."""
    return w + lr * Z.T @ (1.0 / (1.0 + np.exp(Z @ w)))


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - b, axis=-1) / np.linalg.norm(b, axis=-1)


def test_gd_matches_numpy_loop(logistic_problem):
    X, y, Z = logistic_problem
    lr, w0 = 0.1, np.array([0.3, -0.5])
    save = np.array([0, 1, 10, 100, 2000])
    traj = dy.simulate(dy.GradientDescent(dy.linear_classifier(X, y, "logistic"), lr), w0, save * lr)
    w, ref = w0.copy(), []
    for k in range(save[-1] + 1):
        if k in save:
            ref.append(w.copy())
        w = _logistic_step(w, Z, lr)
    assert np.max(_rel(traj.ys, np.array(ref))) < 1e-12
    np.testing.assert_array_equal(traj.ts, save * lr)
    assert traj.stats["steps"] == 2000


def test_saves_only_requested_times_and_observe(logistic_problem):
    """1e5 steps, 10 saves: 10 observed values at t = k lr (requested times rounded to the step grid)."""
    X, y, Z = logistic_problem
    lr, w0 = 0.1, np.zeros(2)
    save = np.rint(np.linspace(0, 100_000, 10)).astype(int)
    observe = lambda t, w: {"t": t, "margin": jnp.min(jnp.asarray(Z) @ w), "w": w}
    traj = dy.simulate(dy.GradientDescent(dy.linear_classifier(X, y, "logistic"), lr), w0, save * lr + 0.3 * lr,
                       observe=observe)
    assert len(traj) == 10 and traj.ys["margin"].shape == (10,) and traj.ys["w"].shape == (10, 2)
    np.testing.assert_array_equal(traj.ts, save * lr)
    np.testing.assert_allclose(traj.ys["t"], save * lr, rtol=1e-15)
    np.testing.assert_allclose(traj.ys["margin"], np.min(np.asarray(traj.ys["w"]) @ Z.T, axis=1), rtol=1e-14)
    w, ref = w0.copy(), []
    for k in range(save[-1] + 1):
        if k in save:
            ref.append(w.copy())
        w = _logistic_step(w, Z, lr)
    # 1e5 steps of rounding (~1e-16 each, not amplified: GD contracts transverse errors here)
    assert np.max(_rel(traj.ys["w"][1:], np.array(ref)[1:])) < 1e-11
    np.testing.assert_array_equal(traj.ys["w"][0], w0)


def test_discrete_run_starts_at_the_first_requested_iterate(logistic_problem):
    """y0 is iterate k0 = round(ts[0] / lr): normalized GD's schedule continues from k0."""
    X, y, Z = logistic_problem
    lr, w0, k0 = 0.1, np.array([0.2, 0.1]), 5
    traj = dy.simulate(dy.NormalizedGD(dy.linear_classifier(X, y, "exp"), lr), w0, np.array([k0, 40]) * lr)
    w = w0.copy()
    for k in range(k0, 40):
        weights = np.exp(-Z @ w)
        w = w + lr / (weights.sum() * np.sqrt(k + 1)) * Z.T @ weights
    np.testing.assert_array_equal(traj.ys[0], w0)
    assert _rel(traj.ys[-1], w) < 1e-12


def test_gradient_count_when_starting_late(axis_data):
    X, y, _ = axis_data
    traj = dy.simulate(dy.GradientDescent(dy.linear_classifier(X, y, "exp"), 0.1), np.zeros(2), [0.5, 1.0])
    assert traj.stats["gradients"] == 5


def test_heavy_ball_matches_numpy_loop(logistic_problem):
    X, y, Z = logistic_problem
    lr, momentum, w0 = 0.05, 0.9, np.array([1.0, 0.5])
    save = np.array([0, 1, 2, 50, 500])
    traj = dy.simulate(dy.HeavyBall(dy.linear_classifier(X, y, "logistic"), lr, momentum), w0, save * lr)
    w, w_prev, ref = w0.copy(), w0.copy(), []
    for k in range(save[-1] + 1):
        if k in save:
            ref.append(w.copy())
        w, w_prev = _logistic_step(w, Z, lr) + momentum * (w - w_prev), w
    assert np.max(_rel(traj.ys, np.array(ref))) < 1e-12


def test_normalized_gd_matches_numpy_loop(logistic_problem):
    """eta_k = lr / (L(w_k) sqrt(k + 1)) formed directly (losses stay moderate over 200 steps)."""
    X, y, Z = logistic_problem
    lr, w0 = 0.1, np.array([0.2, 0.1])
    save = np.array([0, 1, 5, 200])
    traj = dy.simulate(dy.NormalizedGD(dy.linear_classifier(X, y, "exp"), lr), w0, save * lr)
    w, ref = w0.copy(), []
    for k in range(save[-1] + 1):
        if k in save:
            ref.append(w.copy())
        weights = np.exp(-Z @ w)
        eta = lr / (weights.sum() * np.sqrt(k + 1))
        w = w + eta * Z.T @ weights
    assert np.exp(-Z @ w).sum() > 1e-8  # moderate losses: the direct formula is accurate
    assert np.max(_rel(traj.ys, np.array(ref))) < 1e-12


def _increments(traj):
    return np.rint(np.diff(np.asarray(traj.ys), axis=0)).astype(int)


def test_sgd_reshuffle_uses_each_example_once_per_epoch():
    """z_n = e_n and -l' = 1: step k adds the indicator of its batch. N = 10, B = 3: 3 disjoint batches/epoch."""
    n, b, epochs = 10, 3, 3
    key = jax.random.key(7)
    loss = dy.linear_classifier(np.eye(n), np.ones(n), LinearTail())
    process = dy.SGD(loss, 1.0, b, key, sampling="reshuffle")
    steps = (n // b) * epochs
    traj = dy.simulate(process, np.zeros(n), np.arange(steps + 1.0))
    counts = _increments(traj)
    assert np.all(counts.sum(axis=1) == b) and set(np.unique(counts)) <= {0, 1}
    orders = []
    for epoch in range(epochs):
        per_epoch = counts[epoch * (n // b):(epoch + 1) * (n // b)]
        assert per_epoch.sum(axis=0).max() == 1 and per_epoch.sum() == b * (n // b)  # disjoint, 9 of 10
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        for position, row in enumerate(per_epoch):
            assert set(np.flatnonzero(row)) == set(order[position * b:(position + 1) * b])
        orders.append(tuple(np.argmax(per_epoch, axis=1)))
    assert len(set(orders)) > 1  # a fresh permutation each epoch


def test_sgd_mean_reduction_averages_the_batch():
    n, b = 6, 3
    loss = dy.linear_classifier(np.eye(n), np.ones(n), LinearTail(), reduction="mean")
    traj = dy.simulate(dy.SGD(loss, 1.0, b, jax.random.key(1)), np.zeros(n), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(np.asarray(traj.ys[-1]), np.full(n, 1.0 / b), rtol=1e-15)  # one epoch


def test_sgd_reshuffle_matches_numpy_replay(logistic_problem):
    X, y, Z = logistic_problem
    n, b, lr, key = 20, 6, 0.2, jax.random.key(3)
    per_epoch = n // b  # 3 batches, 2 examples skipped per epoch
    steps = 4 * per_epoch
    traj = dy.simulate(dy.SGD(dy.linear_classifier(X, y, "logistic"), lr, b, key), np.zeros(2), [0.0, steps * lr])
    w = np.zeros(2)
    for k in range(steps):
        epoch, position = divmod(k, per_epoch)
        batch = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))[position * b:(position + 1) * b]
        w = _logistic_step(w, Z[batch], lr)
    assert _rel(traj.ys[-1], w) < 1e-12


def test_sgd_with_replacement_counts_duplicates_and_matches_replay(logistic_problem):
    n, b, key = 5, 4, jax.random.key(11)
    loss = dy.linear_classifier(np.eye(n), np.ones(n), LinearTail())
    traj = dy.simulate(dy.SGD(loss, 1.0, b, key, sampling="replacement"), np.zeros(n), np.arange(21.0))
    draws = [np.asarray(jax.random.randint(jax.random.fold_in(key, k), (b,), 0, n)) for k in range(20)]
    np.testing.assert_array_equal(_increments(traj), [np.bincount(d, minlength=n) for d in draws])
    assert any(len(set(d)) < b for d in draws)  # duplicates occurred and were counted twice

    X, y, Z = logistic_problem
    n, b, lr, steps = 20, 7, 0.1, 30
    traj = dy.simulate(dy.SGD(dy.linear_classifier(X, y, "logistic"), lr, b, key, sampling="replacement"),
                       np.zeros(2), [0.0, steps * lr])
    w = np.zeros(2)
    for k in range(steps):
        w = _logistic_step(w, Z[np.asarray(jax.random.randint(jax.random.fold_in(key, k), (b,), 0, n))], lr)
    assert _rel(traj.ys[-1], w) < 1e-12


def test_gradient_flow_quadratic_matches_expm():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(3, 3))
    A = B @ B.T + 0.5 * np.eye(3)
    w0 = rng.normal(size=3)
    ts = np.array([0.0, 0.5, 1.0, 2.0, 5.0])
    traj = dy.simulate(dy.GradientFlow(lambda w: 0.5 * w @ (jnp.asarray(A) @ w)), w0, ts, rtol=1e-13, atol=1e-14)
    expected = np.stack([scipy.linalg.expm(-A * t) @ w0 for t in ts])
    np.testing.assert_allclose(traj.ys, expected, rtol=1e-10)


def _axis_closed_form(log_t, c, w0):
    """Exp-loss GF on z_n = c_n e_n: w_n(t) = log(c_n^2 t + e^{c_n w_n(0)}) / c_n, from log t."""
    return np.logaddexp(2 * np.log(c) + np.asarray(log_t)[:, None], c * w0) / c


def test_gradient_flow_axis_data_in_t(axis_data):
    X, y, c = axis_data
    w0 = np.array([0.3, -1.0])
    ts = np.array([0.0, 1.0, 10.0, 1e3, 1e4])
    traj = dy.simulate(dy.GradientFlow(dy.linear_classifier(X, y, "exp")), w0, ts, rtol=1e-12, atol=1e-12)
    with np.errstate(divide="ignore"):
        expected = _axis_closed_form(np.log(ts), c, w0)
    np.testing.assert_allclose(traj.ys, expected, rtol=0, atol=1e-9)


def test_gradient_flow_axis_data_in_log_time(axis_data):
    """Log time (Kvaerno5) to t = e^400: the closed form to 1e-9, exp loss, no overflow."""
    X, y, c = axis_data
    w0 = np.array([0.3, -1.0])
    taus = np.array([0.0, 5.0, 20.0, 40.0, 100.0, 400.0])
    traj = dy.simulate(dy.GradientFlow(dy.linear_classifier(X, y, "exp")), w0, np.expm1(taus), log_time=True,
                       rtol=1e-12, atol=1e-12)
    ys = np.asarray(traj.ys)
    assert np.all(np.isfinite(ys))
    with np.errstate(divide="ignore"):
        log_t = taus + np.log(-np.expm1(-taus))  # log(e^tau - 1)
    np.testing.assert_allclose(ys, _axis_closed_form(log_t, c, w0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ys[-1], (400.0 + 2 * np.log(c)) / c, rtol=1e-12)  # w_n ~ (log t + 2 log c_n)/c_n


def test_log_time_tau_grid_past_float64_overflow():
    """tau_grid=True reaches tau = 3000 (t = e^3000); closed form w_n = (tau + 2 log c_n) / c_n for z_n = c_n e_n."""
    import diffrax

    c = np.array([1.0, 2.0])
    loss = dy.linear_classifier(np.diag(c), np.ones(2), "exp")
    taus = np.array([0.0, 1000.0, 3000.0])
    traj = dy.simulate(dy.GradientFlow(loss), jnp.zeros(2), taus, log_time=True, tau_grid=True,
                       rtol=1e-8, atol=1e-10, solver=diffrax.Kvaerno5())
    assert traj.time_unit == "tau"
    np.testing.assert_allclose(np.asarray(traj.ys)[1:], (taus[1:, None] + 2 * np.log(c)) / c, rtol=1e-8)
    with pytest.raises(dy.InputError, match="needs log_time=True"):
        dy.simulate(dy.GradientFlow(loss), jnp.zeros(2), taus, tau_grid=True)
