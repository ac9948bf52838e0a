"""New numbers reuse compiled code: a process rebuilt with another learning rate (momentum, scale, tolerance, ...)
and `simulate` / `simulate_sweep` called with new flow options do not trace again.

Traces are counted by a Python-side counter inside the loss: Python code in a jitted function runs only while
tracing, so a cache hit leaves the counter unchanged whatever the code under test does.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.sweeps import simulate_sweep

A = jnp.array([[1.5, 0.3], [0.3, 0.5]])
W0 = jnp.array([0.8, -0.6])


class CountingLoss:
    """A 2-parameter loss w.A w / 2 + w_0^4 / 12 that counts how often its Python body runs (= traces)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, w):
        self.calls += 1
        return 0.5 * w @ A @ w + w[0] ** 4 / 12.0

    def first_player(self, phi, theta):
        return self(jnp.stack([phi, theta]))

    def second_player(self, phi, theta):
        return -self(jnp.stack([phi, theta]))

    @property
    def fields(self):
        """Game fields rebuilt at every access: equal by their losses, so they reuse the compiled code."""
        return dy.game_fields(self.first_player, self.second_player)


def second_task(w):
    return 0.5 * jnp.sum(w**2)


def _no_retrace(run, first, second):
    """run(value) twice: the first call traces the loss, the second (a new number, same shapes) must not."""
    loss = CountingLoss()
    run(loss, first)
    traced = loss.calls
    assert traced > 0, "the first run should trace the loss"
    run(loss, second)
    assert loss.calls == traced, f"a new value {second!r} (after {first!r}) traced the loss again"


def _physical(lr, n=6):
    return lr * np.arange(n)


# (name, run(loss, value), first value, second value); a tuple changes several numbers at once (none may retrace)
CASES = [
    ("GD lr", lambda L, v: dy.simulate(dy.GradientDescent(L, v), W0, _physical(v)), 0.1, 0.2),
    ("HeavyBall lr, momentum", lambda L, v: dy.simulate(dy.HeavyBall(L, v[0], momentum=v[1]), W0, _physical(v[0])),
     (0.1, 0.5), (0.05, 0.9)),
    ("DAL scale, power, max_lr", lambda L, v: dy.simulate(dy.DriftAdjustedGD(L, scale=v[0], power=v[1], max_lr=v[2]),
                                                          W0, np.arange(6.0)), (2.0, 1.0, 5.0), (1.5, 0.5, 0.3)),
    ("SequentialGD lr, phase", lambda L, v: dy.simulate(dy.SequentialGD(L, second_task, v[0], v[1]), W0,
                                                        _physical(v[0])), (0.1, 1), (0.2, 3)),
    ("GameGD alpha, lam (fields rebuilt)", lambda L, v: dy.simulate(
        dy.GameGD(*L.fields, 0.1, alpha=v[0], lam=v[1], alternating=True), (W0[0], W0[1]), _physical(0.1)),
     (1.0, 1.0), (0.5, 2.0)),
    ("StableFlow lr", lambda L, v: dy.simulate(dy.StableFlow(L, v), W0, np.arange(4.0)), 0.1, 0.2),
    ("CentralFlow lr, threshold", lambda L, v: dy.simulate(dy.CentralFlow(L, v[0], k=1, substeps=2, threshold=v[1]),
                                                           W0, np.arange(3.0)), (0.5, 1.95), (1.2, 1.9)),
    ("CentralFlow tol", lambda L, v: dy.simulate(
        dy.CentralFlow(L, 1.2, k=1, substeps=2, method="lobpcg", guard=1, tol=v), W0, np.arange(3.0)), 1e-9, 1e-7),
    ("RodFlow lr", lambda L, v: dy.simulate(dy.RodFlow(L, v), (W0, 0.01 * W0), np.arange(3.0)), 0.1, 0.2),
    ("PrincipalFlow lr", lambda L, v: dy.simulate(dy.PrincipalFlow(L, v, variant="real"), W0, _physical(v, 3)),
     0.1, 0.3),
    ("ModifiedFlow lr", lambda L, v: dy.simulate(dy.ModifiedFlow(L, v, 2), W0, _physical(v, 3)), 0.1, 0.3),
    ("ContinualModifiedFlow phase", lambda L, v: dy.simulate(
        dy.ContinualModifiedFlow(L, second_task, 0.1, v), W0, _physical(0.1, 3)), 1, 4),
    ("GameModifiedFlow alpha", lambda L, v: dy.simulate(
        dy.GameModifiedFlow(*L.fields, 0.1, alpha=v), (W0[0], W0[1]), _physical(0.1, 3)), 1.0, 0.5),
    ("GradientFlow rtol, atol, pcoeff, icoeff, dt0", lambda L, v: dy.simulate(
        dy.GradientFlow(L), W0, np.arange(3.0), rtol=v[0], atol=v[1], pcoeff=v[2], icoeff=v[3], dt0=v[4]),
     (1e-8, 1e-10, 0.3, 0.3, 0.01), (1e-6, 1e-9, 0.1, 0.5, 0.02)),
]


@pytest.mark.parametrize("run, first, second", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_new_number_does_not_retrace(run, first, second):
    _no_retrace(run, first, second)


def test_sme_lr_and_dt_do_not_retrace():
    noise = lambda w: 0.1 * jnp.eye(2)
    key = jax.random.PRNGKey(0)
    ts = np.linspace(0.0, 0.2, 3)
    run = lambda L, v: dy.simulate(dy.StochasticModifiedEquation(L, v[0], noise, key, dt=v[1], paths=2), W0, ts)
    _no_retrace(run, (0.01, 0.005), (0.02, 0.002))


def test_sweep_reuses_compiled_code_for_a_new_batch():
    """simulate_sweep with the same ``make`` and a new batch of the same shape does not trace again."""
    loss = CountingLoss()

    def make_discrete(scale):
        return dy.GradientDescent(loss, 0.1), scale * W0

    def make_flow(lr):
        return dy.ModifiedFlow(loss, lr, 2), W0

    for make, batches, ts in ((make_discrete, ([1.0, 2.0, 3.0], [0.5, -1.0, 4.0]), _physical(0.1)),
                              (make_flow, ([0.1, 0.2, 0.3], [0.05, 0.15, 0.25]), np.arange(3.0))):
        first = simulate_sweep(make, jnp.asarray(batches[0]), ts)
        traced = loss.calls
        assert traced > 0
        second = simulate_sweep(make, jnp.asarray(batches[1]), ts)
        assert loss.calls == traced, f"a new batch for {make.__name__} traced the loss again"
        assert np.asarray(first.ys).shape == np.asarray(second.ys).shape
        assert not np.allclose(np.asarray(first.ys), np.asarray(second.ys))


def test_the_counter_sees_a_retrace():
    """Control: a learning rate stored as a Python float is static under eqx.filter_jit, so a new value retraces."""
    import equinox as eqx

    loss = CountingLoss()
    as_float = lambda lr: eqx.tree_at(lambda p: p.lr, dy.GradientDescent(loss, 1.0), lr)
    dy.simulate(as_float(0.1), W0, _physical(0.1))
    traced = loss.calls
    dy.simulate(as_float(0.2), W0, _physical(0.2))
    assert loss.calls > traced
