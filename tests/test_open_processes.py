"""Optax optimizers, learning-rate schedules, Nesterov momentum and SGD on any per-example objective.

Every equivalence is checked against a plain NumPy loop written here (hand-coded gradients), never only
against another process of the library."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics as dy
from dynamics.processes import Nesterov, OptaxMethod

RNG = np.random.default_rng(0)
A = RNG.normal(size=(6, 3))
B = RNG.normal(size=6)
W0 = RNG.normal(size=3)


def loss(w):
    """0.5 |A w - b|^2 + 0.1 sum w^4: not quadratic, so every step's gradient matters."""
    return 0.5 * jnp.sum((jnp.asarray(A) @ w - jnp.asarray(B)) ** 2) + 0.1 * jnp.sum(w ** 4)


def grad(w):
    return A.T @ (A @ w - B) + 0.4 * w ** 3


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _gd_loop(w, rates):
    out = [w]
    for lr in rates:
        w = w - lr * grad(w)
        out.append(w)
    return np.array(out)


# ----------------------------------------------------------------------------- optax


def test_optax_sgd_is_gradient_descent_and_a_numpy_loop():
    lr, steps = 0.02, 150
    traj = dy.simulate(OptaxMethod(loss, optax.sgd(lr)), W0, np.arange(steps + 1.0))
    gd = dy.simulate(dy.GradientDescent(loss, lr), W0, np.arange(steps + 1) * lr)
    assert traj.time_unit == "step" and np.array_equal(traj.ts, np.arange(steps + 1.0))
    assert traj.stats["gradients"] == steps and traj.stats["hvps"] == 0
    assert _rel(traj.ys, gd.ys) <= 1e-15  # observed: bit-identical
    ref = _gd_loop(W0, [lr] * steps)
    assert _rel(traj.ys, ref) < 1e-14 and _rel(gd.ys, ref) < 1e-14


def test_optax_momentum_is_heavy_ball_and_polyaks_recursion():
    lr, b, steps = 0.02, 0.9, 150
    traj = dy.simulate(OptaxMethod(loss, optax.sgd(lr, momentum=b)), W0, np.arange(steps + 1.0))
    hb = dy.simulate(dy.HeavyBall(loss, lr, b), W0, np.arange(steps + 1) * lr)
    assert _rel(traj.ys, hb.ys) <= 1e-15
    w, w_prev, ref = W0, W0, [W0]  # theta_{k+1} = theta_k - lr g + b (theta_k - theta_{k-1}), from rest
    for _ in range(steps):
        w, w_prev = w - lr * grad(w) + b * (w - w_prev), w
        ref.append(w)
    assert _rel(hb.ys, np.array(ref)) < 1e-14


def test_optax_nesterov_is_nesterov_and_sutskevers_look_ahead_form():
    lr, b, steps = 0.02, 0.9, 150
    traj = dy.simulate(OptaxMethod(loss, optax.sgd(lr, momentum=b, nesterov=True)), W0, np.arange(steps + 1.0))
    nag = dy.simulate(Nesterov(loss, lr, b), W0, np.arange(steps + 1) * lr)
    assert _rel(traj.ys, nag.ys) <= 1e-15
    assert np.allclose(nag.ts, np.arange(steps + 1) * lr, rtol=1e-15)  # physical time t = k lr
    # Sutskever et al. 2013: u_{k+1} = b u_k - lr grad(x_k + b u_k), x_{k+1} = x_k + u_{k+1}; theta_k = x_k + b u_k
    x, u, ref = W0, np.zeros(3), [W0]
    for _ in range(steps):
        u = b * u - lr * grad(x + b * u)
        x = x + u
        ref.append(x + b * u)
    assert _rel(nag.ys, np.array(ref)) < 1e-14


def test_optax_adam_matches_a_hand_written_adam_on_a_pytree():
    lr, b1, b2, eps, steps = 1e-2, 0.9, 0.999, 1e-8, 200
    params0 = {"w": W0[:2], "v": W0[2:]}
    traj = dy.simulate(OptaxMethod(lambda p: loss(jnp.concatenate([p["w"], p["v"]])), optax.adam(lr)), params0,
                       np.arange(steps + 1.0))
    w, m, v, ref = W0, np.zeros(3), np.zeros(3), [W0]
    for k in range(1, steps + 1):
        g = grad(w)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
        w = w - lr * (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + eps)  # eps outside the sqrt
        ref.append(w)
    got = np.concatenate([traj.ys["w"], traj.ys["v"]], axis=1)
    assert _rel(got, np.array(ref)) < 1e-13


def test_optax_method_binds_the_static_part_of_an_equinox_model():
    model = eqx.nn.Linear(3, 1, key=jax.random.key(0))
    X, y = jnp.asarray(A), jnp.asarray(B)
    mse = lambda m: jnp.mean((jax.vmap(m)(X)[:, 0] - y) ** 2)
    traj = dy.simulate(OptaxMethod(mse, optax.sgd(0.1)), model, [0.0, 20.0])
    Wt, bt = np.asarray(model.weight)[0], float(model.bias[0])
    for _ in range(20):
        r = A @ Wt + bt - B
        Wt, bt = Wt - 0.1 * 2 * A.T @ r / len(B), bt - 0.1 * 2 * r.mean()
    assert _rel(traj.ys.weight[-1, 0], Wt) < 1e-12 and abs(float(traj.ys.bias[-1, 0]) - bt) < 1e-12


def test_optax_method_divergence_names_the_step():
    with pytest.raises(dy.DivergenceError) as info:
        dy.simulate(OptaxMethod(loss, optax.sgd(5.0)), W0, [0.0, 50.0])
    assert info.value.step is not None and 0 < info.value.step <= 50


@pytest.mark.parametrize("tx, match", [(optax.adam, r"'adam' itself.*optax\.adam\(1e-3\)"),
                                       (3, r"got 3 of type int.*optax\.adam\(1e-3\)")])
def test_optax_method_rejects_what_is_not_a_transformation(tx, match):
    with pytest.raises(dy.InputError, match=match):
        OptaxMethod(loss, tx)


# ----------------------------------------------------------------------------- schedules


def test_schedule_saves_the_first_iterate_past_each_time_and_matches_a_numpy_loop():
    schedule = optax.exponential_decay(0.05, 20, 0.5)
    rates = 0.05 * 0.5 ** (np.arange(400) / 20)
    t_k = np.concatenate([[0.0], np.cumsum(rates)])
    ts = np.array([0.0, 0.1, 0.5, 1.0, 1.4])  # the total time sum_k lr_k is 1.47
    traj = dy.simulate(dy.GradientDescent(loss, schedule), W0, ts)
    steps = np.searchsorted(t_k, ts * (1 - 1e-12))
    assert np.all(t_k[steps] >= ts * (1 - 1e-12)) and np.all(t_k[np.maximum(steps - 1, 0)][1:] < ts[1:])
    assert np.allclose(traj.ts, t_k[steps], rtol=1e-14, atol=0)
    assert _rel(traj.ys, _gd_loop(W0, rates[:steps[-1]])[steps]) < 1e-14
    assert traj.stats["gradients"] == steps[-1]


def test_heavy_ball_with_a_schedule_follows_optax_recursion():
    lr_k = lambda k: 0.02 / (1.0 + 0.01 * k)  # a plain function of k
    b, steps = 0.8, 100
    rates = 0.02 / (1.0 + 0.01 * np.arange(steps))
    traj = dy.simulate(dy.HeavyBall(loss, lr_k, b), W0, [0.0, float(np.sum(rates))])
    w, m = W0, np.zeros(3)
    for lr in rates:
        m = grad(w) + b * m
        w = w - lr * m
    assert _rel(traj.ys[-1], w) < 1e-14


def test_schedule_that_ends_at_zero_after_the_last_request_runs():
    traj = dy.simulate(dy.GradientDescent(loss, optax.linear_schedule(0.05, 0.0, 50)), W0, [0.0, 0.5])
    assert traj.ts[-1] >= 0.5 and np.isfinite(traj.ys).all()


@pytest.mark.parametrize("schedule, step", [(lambda k: jnp.where(k == 7, 0.0, 0.1), 7),
                                            (lambda k: jnp.where(k == 4, jnp.nan, 0.1), 4)])
def test_schedule_with_a_bad_step_names_it(schedule, step):
    with pytest.raises(dy.StepSizeError, match=f"step size at step {step} is"):
        dy.simulate(dy.GradientDescent(loss, schedule), W0, [0.0, 2.0])


@pytest.mark.parametrize("lr, match", [
    (optax.exponential_decay, "missing 2 required positional arguments"),
    (lambda k: 0.1 if k < 3 else 0.01, "TracerBoolConversionError.*jnp.where"),
    (lambda k: jnp.ones(2), "real scalar.*shape=\\(2,\\)"),
    (lambda k: 0.1j * k, "real scalar.*complex"),
    (0.0, "finite and > 0"), (float("nan"), "finite and > 0"), (1 + 1j, "real"), ("0.1", "positive real scalar"),
    (np.array([0.1, 0.2]), "positive real scalar")])
def test_bad_learning_rates_raise_step_size_error(lr, match):
    with pytest.raises(dy.StepSizeError, match=match):
        dy.GradientDescent(loss, lr)


# ----------------------------------------------------------------------------- SGD on any per-example objective

X = RNG.normal(size=(12, 3))
Y = RNG.normal(size=12)


def _example_loss(w, example):
    x, y = example
    return 0.5 * (jnp.tanh(x @ w) - y) ** 2


def _batch_grad(w, index):
    h = np.tanh(X[index] @ w)
    return X[index].T @ ((h - Y[index]) * (1 - h ** 2)) / len(index)


@pytest.mark.parametrize("objective", ["per_example", "margin"])
def test_full_batch_reshuffled_sgd_is_gd(objective):
    n, lr, steps = 12, 0.3, 60
    if objective == "per_example":
        f = dy.per_example(_example_loss, (X, Y))
    else:
        f = dy.linear_classifier(X, np.where(Y > 0, 1.0, -1.0), "logistic", reduction="mean")
    ts = np.arange(steps + 1) * lr
    sgd = dy.simulate(dy.SGD(f, lr, n, jax.random.key(2)), W0, ts)
    gd = dy.simulate(dy.GradientDescent(f, lr), W0, ts)
    assert _rel(sgd.ys, gd.ys) < 1e-14  # the same mean in another summation order (observed < 3e-16)
    assert sgd.stats["gradients"] == steps


def test_sgd_on_per_example_replays_the_permutations():
    n, b, lr, key = 12, 5, 0.3, jax.random.key(4)
    per_epoch, steps = n // b, 7  # 2 batches an epoch, 2 examples skipped; 3.5 epochs
    traj = dy.simulate(dy.SGD(dy.per_example(_example_loss, (X, Y)), lr, b, key), W0, [0.0, steps * lr])
    w = W0
    for k in range(steps):
        epoch, position = divmod(k, per_epoch)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        w = w - lr * _batch_grad(w, order[position * b:(position + 1) * b])
    assert _rel(traj.ys[-1], w) < 1e-14
    assert traj.stats["gradients"] == pytest.approx(steps * b / n)


def test_sgd_on_a_plain_callable_says_to_wrap_it():
    with pytest.raises(dy.InputError, match=r"dynamics\.per_example\(fn, data\)"):
        dy.SGD(loss, 0.1, 2, jax.random.key(0))
