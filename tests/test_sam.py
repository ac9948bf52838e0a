"""`dynamics.SAM`: iterate-by-iterate agreement with optax.contrib.sam (opaque mode) and with plain NumPy loops
(SAM, USAM, m-sharpness), the g = 0 convention, time and cost bookkeeping, bad inputs, no recompilation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics as dyn

RNG = np.random.default_rng(0)
A = RNG.normal(size=(4, 4)) / 2
H = A @ A.T + np.diag([0.5, 1.0, 2.0, 3.0])
W0 = RNG.normal(size=4)
X = RNG.normal(size=(6, 3))
Y = RNG.normal(size=6)
STEPS = 40
#: round-off: a few ulps per step, propagated through a contracting map over STEPS steps
ROUND_OFF = 1e-13


def quartic(w):
    """w.H w / 2 + sum w^4 / 4 (non-quadratic, so the perturbation matters beyond a linear map)."""
    return 0.5 * w @ jnp.asarray(H) @ w + 0.25 * jnp.sum(w**4)


def quartic_grad(w):
    return H @ w + w**3


def run(process, w0, steps=STEPS):
    h = float(process.step_size(np.zeros(1, np.int64))[0])
    return np.asarray(dyn.simulate(process, w0, h * np.arange(steps + 1.0)).ys)


def numpy_sam(grad, w0, lr, rho, normalized, steps=STEPS):
    W = [np.array(w0, float)]
    for _ in range(steps):
        w = W[-1]
        g = grad(w)
        e = rho * g / np.linalg.norm(g) if normalized else rho * g
        W.append(w - lr * grad(w + e))
    return np.array(W)


def relative_gap(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_matches_optax_contrib_sam_opaque_iterate_by_iterate():
    """optax.contrib.sam(sgd(lr), chain(normalize(), sgd(rho)), sync_period=2, opaque_mode=True) is w - lr grad L(w +
    rho g/||g||) with ||g|| the norm over all leaves; run on a two-leaf pytree."""
    lr, rho = 0.05, 0.1

    def loss(p):
        return quartic(jnp.concatenate([p["a"], p["b"]]))

    p0 = {"a": jnp.asarray(W0[:2]), "b": jnp.asarray(W0[2:])}
    tx = optax.contrib.sam(optax.sgd(lr), optax.chain(optax.contrib.normalize(), optax.sgd(rho)), sync_period=2,
                           opaque_mode=True)
    grad = jax.grad(loss)

    @jax.jit
    def step(p, state):
        updates, state = tx.update(grad(p), state, p, grad_fn=lambda q, _: grad(q))
        return optax.apply_updates(p, updates), state

    p, state, reference = p0, tx.init(p0), [np.asarray(W0)]
    for _ in range(STEPS):
        p, state = step(p, state)
        reference.append(np.concatenate([p["a"], p["b"]]))
    traj = dyn.simulate(dyn.SAM(loss, lr, rho), p0, lr * np.arange(STEPS + 1.0))
    ours = np.concatenate([np.asarray(traj.ys["a"]), np.asarray(traj.ys["b"])], axis=1)
    assert relative_gap(ours, np.array(reference)) < ROUND_OFF


@pytest.mark.parametrize("normalized", [True, False])
def test_matches_a_numpy_loop(normalized):
    lr, rho = 0.05, 0.2
    ours = run(dyn.SAM(quartic, lr, rho, normalized=normalized), W0)
    assert relative_gap(ours, numpy_sam(quartic_grad, W0, lr, rho, normalized)) < ROUND_OFF


def test_usam_on_a_quadratic_is_the_linear_map():
    """USAM on w.H w/2 is w -> (I - lr H - lr rho H^2) w exactly."""
    lr, rho = 0.05, 0.3
    ours = run(dyn.SAM(lambda w: 0.5 * w @ jnp.asarray(H) @ w, lr, rho, normalized=False), W0)
    M = np.eye(4) - lr * H - lr * rho * H @ H
    expected = np.array([np.linalg.matrix_power(M, k) @ W0 for k in range(STEPS + 1)])
    assert relative_gap(ours, expected) < ROUND_OFF


def _regression(reduction="mean"):
    return dyn.per_example(lambda w, ex: 0.5 * (ex[0] @ w - ex[1]) ** 2 + 0.05 * jnp.sum(w**4), (X, Y), reduction)


def test_m_sharpness_with_m_equal_to_n_is_sam():
    loss = _regression()
    w0 = np.array([0.3, -0.2, 0.5])
    assert relative_gap(run(dyn.SAM(loss, 0.1, 0.2, group_size=len(Y)), w0), run(dyn.SAM(loss, 0.1, 0.2), w0)) \
        < ROUND_OFF


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("m", [1, 2])
def test_m_sharpness_matches_a_hand_loop(normalized, m):
    """Each group of m consecutive examples perturbed by its own (normalized) gradient; the perturbed group gradients
    averaged ("mean" loss)."""
    lr, rho, w0 = 0.1, 0.2, np.array([0.3, -0.2, 0.5])

    def group_grad(w, idx):
        return X[idx].T @ (X[idx] @ w - Y[idx]) / len(idx) + 0.05 * 4 * w**3

    W = [w0]
    for _ in range(STEPS):
        w, total = W[-1], 0.0
        for idx in np.arange(len(Y)).reshape(-1, m):
            g = group_grad(w, idx)
            e = rho * g / np.linalg.norm(g) if normalized else rho * g
            total = total + group_grad(w + e, idx)
        W.append(w - lr * total / (len(Y) // m))
    ours = run(dyn.SAM(_regression(), lr, rho, normalized=normalized, group_size=m), w0)
    assert relative_gap(ours, np.array(W)) < ROUND_OFF


def test_m_sharpness_on_a_sum_loss_sums_the_groups():
    """For m = 1 the group losses of "sum" and "mean" coincide, so SAM on the sum with lr / N is SAM on the mean."""
    w0, n = np.array([0.3, -0.2, 0.5]), len(Y)
    mean = run(dyn.SAM(_regression("mean"), 0.1, 0.2, group_size=1), w0)
    total = run(dyn.SAM(_regression("sum"), 0.1 / n, 0.2, group_size=1), w0)
    assert relative_gap(total, mean) < ROUND_OFF


def test_zero_gradient_is_a_gd_step_not_nan():
    """At a stationary point the perturbation is 0 (stated convention): the iterate stays put, where optax's
    normalize() divides 0 by 0."""
    w_star = np.zeros(4)
    assert np.array_equal(run(dyn.SAM(quartic, 0.1, 0.5), w_star, 5), np.zeros((6, 4)))
    assert np.isnan(np.asarray(optax.contrib.normalize().update(jnp.zeros(4), None)[0])).all()
    # a group whose own gradient vanishes is not perturbed: example 0 fitted exactly, others not
    loss = dyn.per_example(lambda w, ex: 0.5 * (ex[0] @ w - ex[1]) ** 2, (X[:2], np.array([0.0, 1.0])))
    w = np.zeros(3)
    step = run(dyn.SAM(loss, 0.1, 0.3, group_size=1), w, 1)[1]
    g1 = X[1] * (X[1] @ w - 1.0)
    w_pert = w + 0.3 * g1 / np.linalg.norm(g1)
    expected = w - 0.1 * (X[0] * (X[0] @ w - 0.0) + X[1] * (X[1] @ w_pert - 1.0)) / 2
    assert np.all(np.isfinite(step)) and relative_gap(step, expected) < ROUND_OFF


def test_tiny_gradient_direction_does_not_underflow():
    """||g||^2 underflows for |g| ~ 1e-170; the normalized perturbation must still have length rho."""
    scale = 1e-170
    process = dyn.SAM(lambda w: scale * jnp.sum(w), 1.0, 0.25)
    perturbation = process.perturbation(jnp.full(4, scale))
    assert np.isclose(float(jnp.linalg.norm(perturbation)), 0.25, rtol=1e-15)


def test_time_cost_and_schedule():
    traj = dyn.simulate(dyn.SAM(quartic, 0.05, 0.1), W0, 0.05 * np.arange(11.0))
    assert np.allclose(traj.ts, 0.05 * np.arange(11)) and traj.stats["gradients"] == 20
    schedule = optax.exponential_decay(0.05, 5, 0.5)
    lrs = np.asarray([schedule(k) for k in range(10)], float)
    times = np.r_[0.0, np.cumsum(lrs)]
    traj = dyn.simulate(dyn.SAM(quartic, schedule, 0.1), W0, times)
    W = [W0]
    for k in range(10):
        g = quartic_grad(W[-1])
        W.append(W[-1] - lrs[k] * quartic_grad(W[-1] + 0.1 * g / np.linalg.norm(g)))
    assert np.allclose(traj.ts, times) and relative_gap(np.asarray(traj.ys), np.array(W)) < ROUND_OFF


@pytest.mark.parametrize("rho", [0.0, -0.1, float("nan"), float("inf"), None, np.ones(2), 1j])
def test_bad_rho(rho):
    with pytest.raises(dyn.InputError, match="rho"):
        dyn.SAM(quartic, 0.1, rho)


@pytest.mark.parametrize("m", [4, 0, 7, 2.0, True])
def test_group_size_must_divide_n(m):
    with pytest.raises(dyn.InputError, match="group_size"):
        dyn.SAM(_regression(), 0.1, 0.1, group_size=m)


def test_group_size_needs_a_per_example_loss():
    with pytest.raises(dyn.InputError, match="per-example"):
        dyn.SAM(quartic, 0.1, 0.1, group_size=1)


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan")])
def test_bad_lr(lr):
    with pytest.raises(dyn.StepSizeError):
        dyn.SAM(quartic, lr, 0.1)


def test_new_lr_and_rho_do_not_recompile():
    """A Python counter in the loss runs only while tracing: new numbers must hit the compiled code."""
    calls = []

    def loss(w):
        calls.append(1)
        return quartic(w)

    for normalized in (True, False):
        dyn.simulate(dyn.SAM(loss, 0.05, 0.1, normalized=normalized), W0, 0.05 * np.arange(6.0))
        traced = len(calls)
        dyn.simulate(dyn.SAM(loss, 0.02, 0.3, normalized=normalized), W0, 0.02 * np.arange(6.0))
        assert len(calls) == traced, "a new (lr, rho) traced the loss again"


def test_equinox_module_with_m_sharpness():
    """A model mixing arrays and functions runs through `bind_static` (full batch and per group)."""
    import equinox as eqx

    model = eqx.nn.MLP(3, 1, 4, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    loss = dyn.per_example(lambda m, ex: (m(ex[0])[0] - ex[1]) ** 2, (X, Y))
    for m in (None, 2):
        run_ = dyn.simulate(dyn.SAM(loss, 0.05, 0.1, group_size=m), model, 0.05 * np.arange(4.0))
        assert np.all(np.isfinite(np.asarray(run_.ys.layers[0].weight)))
        assert run_.stats["gradients"] == 6
