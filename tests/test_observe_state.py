"""``observe_state=True``: observe(t, state) receives a discrete process's full state (an `OptaxMethod`'s
``OptaxState(params, opt_state)``), in `simulate` and `simulate_sweep`; validated like observe; refused for flows and
SDEs; no recompiles for new numbers.

The reference for the optimizer state is an independent hand loop of optax (jax.grad + tx.update in Python), not the
compiled loop under test."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynamics as dy
from dynamics.errors import InputError
from dynamics.processes.optax_method import OptaxState
from dynamics.measure.preconditioned import adam_preconditioner
from dynamics.sweeps import simulate_sweep

A = jnp.array([[2.0, 0.4, 0.0], [0.4, 1.0, 0.3], [0.0, 0.3, 0.5]])
W0 = jnp.array([0.9, -0.7, 0.4])


def loss(w):
    return 0.5 * w @ A @ w + 0.25 * jnp.sum(w**4)


def hand_adam(lr, steps, b1=0.9, b2=0.999, eps=1e-8):
    """States after 1..steps updates of optax.adam by a plain Python loop (the independent reference)."""
    tx = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    w, s = W0, tx.init(W0)
    out = []
    for _ in range(steps):
        u, s = tx.update(jax.grad(loss)(w), s, w)
        w = optax.apply_updates(w, u)
        out.append((w, s))
    return out


def _adam_nu(state):
    return state.opt_state[0].nu


def test_adam_nu_from_observed_state_matches_hand_loop():
    lr, steps = 0.05, 40
    ts = np.arange(0, steps + 1, 8.0)
    traj = dy.simulate(dy.OptaxMethod(loss, optax.adam(lr)), W0, ts, observe_state=True,
                       observe=lambda t, state: (state.params, _adam_nu(state), state.opt_state[0].count))
    params, nu, count = (np.asarray(x) for x in traj.ys)
    reference = hand_adam(lr, steps)
    for i, k in enumerate(ts.astype(int)):
        if k == 0:  # the state at ts[0] is tx.init(w0)
            np.testing.assert_array_equal(nu[i], 0.0)
            np.testing.assert_array_equal(params[i], W0)
            continue
        w_ref, s_ref = reference[k - 1]
        np.testing.assert_allclose(nu[i], s_ref[0].nu, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(params[i], w_ref, rtol=1e-12, atol=1e-14)
        assert int(count[i]) == int(s_ref[0].count) == k
    assert np.all(nu[-1] > 0)


def test_states_saved_without_observe_and_params_agree():
    ts = np.arange(0.0, 31.0, 10.0)
    process = dy.OptaxMethod(loss, optax.adam(0.05))
    states = dy.simulate(process, W0, ts, observe_state=True).ys
    assert isinstance(states, OptaxState)
    np.testing.assert_array_equal(np.asarray(states.params), np.asarray(dy.simulate(process, W0, ts).ys))
    assert np.asarray(states.opt_state[0].nu).shape == (ts.size, 3)
    # the preconditioner of a saved state, as `adam_preconditioner` reads it, equals the hand loop's
    _, s_ref = hand_adam(0.05, 30)[-1]
    last = jax.tree_util.tree_map(lambda leaf: leaf[-1], states)
    np.testing.assert_allclose(np.asarray(adam_preconditioner(last)), np.asarray(adam_preconditioner(s_ref)),
                               rtol=1e-13)


def test_process_whose_state_is_theta_is_unchanged():
    ts = 0.1 * np.arange(6.0)
    gd = dy.GradientDescent(loss, 0.1)
    np.testing.assert_array_equal(np.asarray(dy.simulate(gd, W0, ts, observe_state=True).ys),
                                  np.asarray(dy.simulate(gd, W0, ts).ys))


def test_heavy_ball_state_carries_the_velocity():
    ts = 0.1 * np.arange(4.0)
    hb = dy.HeavyBall(loss, 0.1, momentum=0.5)
    state = dy.simulate(hb, W0, ts, observe_state=True).ys
    params = np.asarray(dy.simulate(hb, W0, ts).ys)
    np.testing.assert_array_equal(np.asarray(hb.params(state)), params)


def test_sweep_observe_state_matches_single_runs():
    ts = np.arange(0.0, 21.0, 5.0)
    make = lambda b2: (dy.OptaxMethod(loss, optax.adam(0.05, b2=b2)), W0)
    observe = lambda t, state: state.opt_state[0].nu
    b2s = jnp.array([0.99, 0.999])
    swept = np.asarray(simulate_sweep(make, b2s, ts, observe=observe, observe_state=True).ys)
    assert swept.shape == (ts.size, 2, 3)
    for lane, b2 in enumerate([0.99, 0.999]):
        _, s_ref = hand_adam(0.05, 20, b2=b2)[-1]
        np.testing.assert_allclose(swept[-1, lane], s_ref[0].nu, rtol=1e-12)


def test_model_state_parameters_are_the_array_partition():
    model = eqx.nn.Linear(3, 1, key=jax.random.PRNGKey(0))
    X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)))
    model_loss = lambda m: jnp.mean(jax.vmap(m)(X) ** 2)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    traj = dy.simulate(dy.OptaxMethod(model_loss, optax.adam(0.01)), model, [0.0, 3.0], observe_state=True,
                       observe=lambda t, state: model_loss(eqx.combine(state.params, static)))
    plain = dy.simulate(dy.OptaxMethod(model_loss, optax.adam(0.01)), model, [0.0, 3.0],
                        observe=lambda t, m: model_loss(m))
    np.testing.assert_allclose(np.asarray(traj.ys), np.asarray(plain.ys), rtol=1e-14)


class CountingLoss:
    def __init__(self):
        self.calls = 0

    def __call__(self, w):
        self.calls += 1
        return loss(w)


def test_new_numbers_do_not_recompile():
    """New parameters and new save times reuse the compiled loop (an optax transformation is a closure: a new
    optax.adam(lr) object is a new static value for any process, observe_state or not)."""
    counting = CountingLoss()
    observe = lambda t, state: state.opt_state[0].nu
    process = dy.OptaxMethod(counting, optax.adam(0.05))
    dy.simulate(process, W0, np.arange(0.0, 5.0), observe=observe, observe_state=True)
    traced = counting.calls
    assert traced > 0
    dy.simulate(process, W0 + 0.1, np.arange(0.0, 9.0, 2.0), observe=observe, observe_state=True)
    assert counting.calls == traced
    dy.simulate(dy.HeavyBall(counting, 0.1, momentum=0.5), W0, 0.1 * np.arange(4.0), observe_state=True)
    traced_hb = counting.calls
    dy.simulate(dy.HeavyBall(counting, 0.2, momentum=0.7), W0, 0.2 * np.arange(4.0), observe_state=True)
    assert counting.calls == traced_hb and traced_hb > traced


@pytest.mark.parametrize("case", ["flow", "sde", "sweep_flow"])
def test_refused_for_flows_and_sdes(case):
    with pytest.raises(InputError, match="observe_state"):
        if case == "flow":
            dy.simulate(dy.GradientFlow(loss), W0, [0.0, 0.5], observe_state=True)
        elif case == "sde":
            sde = dy.StochasticModifiedEquation(loss, 0.1, lambda w: 0.1 * jnp.eye(3), jax.random.PRNGKey(0), paths=2)
            dy.simulate(sde, W0, [0.0, 0.5], observe_state=True)
        else:
            simulate_sweep(lambda s: (dy.GradientFlow(loss), W0 * s), jnp.array([1.0, 2.0]), [0.0, 0.5],
                           observe_state=True)


def test_bad_observe_on_state_is_input_error():
    process = dy.OptaxMethod(loss, optax.adam(0.05))
    with pytest.raises(InputError, match=r"observe\(t, state\) failed"):
        dy.simulate(process, W0, [0.0, 2.0], observe_state=True, observe=lambda t, state: state @ jnp.ones(3))
    with pytest.raises(InputError, match=r"observe\(t, state\) returned"):
        dy.simulate(process, W0, [0.0, 2.0], observe_state=True, observe=lambda t, state: None)
    with pytest.raises(InputError, match="observe_state must be True or False"):
        dy.simulate(process, W0, [0.0, 2.0], observe_state="yes")
