"""Preconditioned sharpness, the preconditioners of optax Adam/RMSProp states and the momentum / frozen-Adam
stability thresholds (docs/stability-sam-geometry.md section 2).

Oracles: numpy eigvalsh of P^{-1/2} H P^{-1/2} (H given, or jax.hessian of an MLP); optax's own update, rebuilt
from the state; the spectral radius of each method's 2 x 2 update matrix on one eigen-direction, written from the
update rule itself (not from the characteristic polynomials of the docs) and computed by numpy; runs through
`dyn.simulate` just below and above each threshold.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import dynamics as dyn
from dynamics.errors import InputError, StepSizeError
from dynamics.measure import adam_preconditioner, rmsprop_preconditioner
from dynamics.models.mlp import mlp_init, mlp_loss
from dynamics.models.toys import Quadratic
from dynamics.processes.optax_method import OptaxState
from dynamics.predictions import adam_frozen_threshold, heavy_ball_threshold, nesterov_threshold


def _spd(n, seed):
    A = np.random.default_rng(seed).standard_normal((n, n))
    return A @ A.T / n


def _reference(H, p):
    """lambda_max(P^{-1/2} H P^{-1/2}) by numpy eigvalsh."""
    s = 1 / np.sqrt(p)
    return np.linalg.eigvalsh(s[:, None] * H * s[None, :])[-1]


class _FlatQuadratic:
    """L(params) = x^T H x / 2 with x = ravel(params): any pytree, Hessian H in ravel order."""

    def __init__(self, H):
        self.H = jnp.asarray(H)

    def __call__(self, params):
        x = ravel_pytree(params)[0]
        return 0.5 * x @ (self.H @ x)


# ----------------------------------------------------------------------------- preconditioned sharpness


@pytest.mark.parametrize("n", [10, 150])  # dense (n <= DENSE_LIMIT = 64) and LOBPCG
def test_matches_eigvalsh(n):
    """A diagonal P as a flat vector and as a pytree like params, against numpy. Dense eigh: ~1e-15 relative
    (measured 0 and 2e-15 at n = 10, 150); LOBPCG stops at residual <= 1e-8 rho, so its Rayleigh quotient is within
    r^2 / gap ~ 1e-16 rho of lambda_max; 1e-10 leaves room for a smaller gap."""
    rng = np.random.default_rng(n)
    H, p = _spd(n, n), rng.uniform(0.05, 3.0, n)
    params = {"a": jnp.asarray(rng.standard_normal(n - 6)), "b": jnp.asarray(rng.standard_normal((2, 3)))}
    loss = _FlatQuadratic(H)
    flat, unravel = ravel_pytree(params)
    expected = _reference(H, p)
    for P in (jnp.asarray(p), unravel(jnp.asarray(p))):
        value = float(dyn.preconditioned_sharpness(loss, params, P))
        assert abs(value - expected) <= 1e-10 * expected, (value, expected)


def test_scalar_preconditioner_divides_sharpness():
    """P = c I: S_P = S / c, dense and LOBPCG (the same solver on a rescaled operator)."""
    for n in (12, 100):
        loss, w = Quadratic(jnp.asarray(_spd(n, 3))), jnp.ones(n)
        S = float(dyn.sharpness(loss, w))
        for c in (0.37, 4.0):
            assert float(dyn.preconditioned_sharpness(loss, w, c)) == pytest.approx(S / c, rel=1e-10)


def test_adam_state_of_an_mlp():
    """The sharpness an Adam run would be measured with: P from optax.adam's state after a few full-batch steps on
    an MLP (31 parameters), against numpy eigvalsh of P^{-1/2} H P^{-1/2}, H = jax.hessian on the flat vector."""
    key = jax.random.PRNGKey(0)
    X = jax.random.normal(key, (16, 3))
    y = jnp.sin(X[:, 0]) + 0.5 * X[:, 1]
    params = mlp_init(jax.random.PRNGKey(1), [3, 6, 1])
    loss = mlp_loss(X, y)
    tx = optax.adam(1e-2)
    state = tx.init(params)
    for _ in range(5):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    P = adam_preconditioner(state)
    flat, unravel = ravel_pytree(params)
    H = np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat))
    expected = _reference(H, np.asarray(ravel_pytree(P)[0]))
    assert float(dyn.preconditioned_sharpness(loss, params, P)) == pytest.approx(expected, rel=1e-12)


def test_new_preconditioner_does_not_retrace():
    """A new P (and new parameters) reuse the compiled solve: the loss's Python body runs only while tracing."""
    H = jnp.asarray(_spd(5, 7))
    calls = []

    def loss(w):
        calls.append(1)
        return 0.5 * w @ (H @ w)

    dyn.preconditioned_sharpness(loss, jnp.ones(5), jnp.full(5, 2.0))
    traced = len(calls)
    for P, w in ((jnp.arange(1.0, 6.0), jnp.ones(5)), (jnp.full(5, 0.1), jnp.arange(5.0))):
        dyn.preconditioned_sharpness(loss, w, P)
    assert len(calls) == traced


def test_bad_preconditioner():
    loss, w = Quadratic(jnp.asarray(_spd(4, 0))), jnp.ones(4)
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    bad = [0.0, -1.0, float("nan"), float("inf"), jnp.array([1.0, 0.0, 1.0, 1.0]),
           jnp.array([1.0, -2.0, 1.0, 1.0]), jnp.array([1.0, jnp.nan, 1.0, 1.0]), jnp.ones(3), jnp.ones((2, 2)),
           None, "1", True]
    for P in bad:
        with pytest.raises(InputError):
            dyn.preconditioned_sharpness(loss, w, P)
    for P in ({"a": jnp.ones(2)}, {"a": jnp.ones(2), "b": jnp.ones(3)}, {"a": jnp.ones(2), "b": -jnp.ones(2)},
              jnp.ones(5)):
        with pytest.raises(InputError):
            dyn.preconditioned_sharpness(_FlatQuadratic(np.eye(4)), params, P)


# ----------------------------------------------------------------------------- optax preconditioners


def _gradients(seed, steps):
    """Gradients over 4 orders of magnitude per coordinate (so eps and eps_root matter)."""
    rng = np.random.default_rng(seed)
    return [{"a": jnp.asarray(rng.standard_normal(3) * 10.0 ** rng.uniform(-4, 0, 3)),
             "b": jnp.asarray(rng.standard_normal((2, 2)))} for _ in range(steps)]


def _close(a, b, rel=1e-14):
    """Leafwise |a - b| <= rel |b| (+ tiny absolute): the reconstruction repeats optax's float operations."""
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return bool(jnp.all(jnp.abs(a - b) <= rel * jnp.abs(b) + 1e-300))


@pytest.mark.parametrize("eps_root", [0.0, 1e-6])
def test_adam_preconditioner_reconstructs_the_update(eps_root):
    lr, b1, b2, eps = 3e-3, 0.8, 0.95, 1e-5
    tx = optax.adam(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    state = tx.init(params)
    for t, g in enumerate(_gradients(0, 6), start=1):
        updates, state = tx.update(g, state, params)
        P = adam_preconditioner(state, b2=b2, eps=eps, eps_root=eps_root)
        mu = state[0].mu
        expected = jax.tree_util.tree_map(lambda m, p: -lr * (m / (1 - b1**t)) / p, mu, P)
        assert _close(updates, expected), t
        # an OptaxState (what OptaxMethod carries) is accepted too
        assert _close(adam_preconditioner(OptaxState(params, state), b2=b2, eps=eps, eps_root=eps_root), P, 0)


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_preconditioner_reconstructs_the_update(eps_in_sqrt, bias_correction, centered):
    lr, decay, eps = 1e-2, 0.9, 1e-6
    tx = optax.rmsprop(lr, decay=decay, eps=eps, initial_scale=0.01, eps_in_sqrt=eps_in_sqrt, centered=centered,
                       bias_correction=bias_correction)
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    state = tx.init(params)
    for g in _gradients(1, 5):
        updates, state = tx.update(g, state, params)
        P = rmsprop_preconditioner(state, eps=eps, eps_in_sqrt=eps_in_sqrt, decay=decay)
        assert _close(updates, jax.tree_util.tree_map(lambda x, p: -lr * x / p, g, P))


def test_bad_optimizer_input():
    params = {"a": jnp.zeros(3)}
    adam = optax.adam(1e-3)
    fresh = adam.init(params)
    stepped = adam.update({"a": jnp.ones(3)}, fresh, params)[1]
    for kwargs in ({"b2": 1.0}, {"b2": -0.1}, {"eps": 0.0}, {"eps": -1e-8}, {"eps_root": -1.0}, {"b2": float("nan")}):
        with pytest.raises(InputError):
            adam_preconditioner(stepped, **kwargs)
    with pytest.raises(InputError, match="count 0"):
        adam_preconditioner(fresh)
    with pytest.raises(InputError, match="Adam state"):
        adam_preconditioner(optax.sgd(0.1, momentum=0.9).init(params))
    rms = optax.rmsprop(1e-3).init(params)
    for kwargs in ({"eps": 0.0}, {"decay": 1.0}, {"decay": -0.5}):
        with pytest.raises(InputError):
            rmsprop_preconditioner(rms, **kwargs)
    with pytest.raises(InputError, match="RMSProp state"):
        rmsprop_preconditioner(fresh)


# ----------------------------------------------------------------------------- thresholds


def _update_matrix(kind, lam, lr, b):
    """One step on the eigen-direction lambda as a 2 x 2 matrix acting on (w, v) (v: velocity / first moment),
    written from each method's update rule: its spectral radius decides growth."""
    if kind == "heavy_ball":  # v+ = b v - lam w; w+ = w + lr v+
        return np.array([[1 - lr * lam, lr * b], [-lam, b]])
    if kind == "nesterov":  # v+ = b v - lam w; w+ = w + lr (b v+ - lam w)
        return np.array([[1 - lr * lam - lr * b * lam, lr * b * b], [-lam, b]])
    if kind == "adam_ema":  # m+ = b m + (1 - b) lam w; w+ = w - lr m+
        return np.array([[1 - lr * (1 - b) * lam, -lr * b], [(1 - b) * lam, b]])
    if kind == "trace":  # v+ = b v + lam w; w+ = w - lr v+
        return np.array([[1 - lr * lam, -lr * b], [lam, b]])
    raise ValueError(kind)


_THRESHOLDS = {"heavy_ball": heavy_ball_threshold, "nesterov": nesterov_threshold, "adam_ema": adam_frozen_threshold,
               "trace": heavy_ball_threshold}
_CASES = [(kind, lr, b) for kind in _THRESHOLDS for lr in (0.1, 0.01) for b in (0.0, 0.5, 0.9)]


@pytest.mark.parametrize("kind,lr,b", _CASES)
def test_threshold_is_where_the_update_matrix_leaves_the_unit_disc(kind, lr, b):
    """Closed form vs numpy: spectral radius <= 1 just below the threshold (1 - 1e-9), > 1 just above."""
    radius = lambda lam: max(abs(np.linalg.eigvals(_update_matrix(kind, lam, lr, b))))
    threshold = float(_THRESHOLDS[kind](lr, b))
    assert radius(threshold * (1 - 1e-9)) < 1 < radius(threshold * (1 + 1e-9))
    assert all(radius(threshold * f) < 1 for f in np.linspace(1e-3, 0.999, 50))


def test_threshold_values():
    assert float(adam_frozen_threshold(0.01, 0.9)) == pytest.approx(3800.0, rel=1e-15)  # 38 / lr
    assert float(nesterov_threshold(0.2, 0.0)) == pytest.approx(10.0, rel=1e-15)  # GD's 2 / lr
    assert float(heavy_ball_threshold(0.2, 0.9)) == pytest.approx(19.0, rel=1e-15)


K, WINDOW = 400, 20


def _run(kind, H, p, lr, b, w0):
    """|component along the top eigenvector of P^{-1/2} H P^{-1/2}| (in u = P^{1/2} w) at steps 0, [K/2 - W, K/2],
    [K - W, K], from a run of the library's process (HeavyBall, Nesterov) or of OptaxMethod with a frozen
    diagonal preconditioner (optax.ema without debiasing: Adam's first moment; optax.trace: heavy-ball momentum)."""
    loss = Quadratic(jnp.asarray(H))
    if kind in ("heavy_ball", "nesterov"):
        process = (dyn.HeavyBall if kind == "heavy_ball" else dyn.Nesterov)(loss, lr, momentum=b)
        unit = lr
    else:
        P = jnp.asarray(p)
        momentum = optax.ema(b, debias=False) if kind == "adam_ema" else optax.trace(decay=b)
        precondition = optax.stateless(lambda u, params: jax.tree_util.tree_map(lambda x: x / P, u))
        process, unit = dyn.OptaxMethod(loss, optax.chain(momentum, precondition, optax.scale(-lr))), 1
    steps = np.concatenate([[0], np.arange(K // 2 - WINDOW, K // 2 + 1), np.arange(K - WINDOW, K + 1)])
    ys = np.asarray(dyn.simulate(process, w0, unit * steps).ys)
    vector = np.linalg.eigh(H / np.sqrt(np.outer(p, p)))[1][:, -1]
    component = np.abs((ys * np.sqrt(p)) @ vector)
    return component[0], component[1:WINDOW + 2].max(), component[WINDOW + 2:].max()


@pytest.mark.parametrize("kind", list(_THRESHOLDS))
def test_runs_decay_below_and_grow_above_the_threshold(kind):
    """lambda_max(P^{-1} H) = 0.98 and 1.02 times the threshold, 400 steps: the top component decays below and grows
    above, at the rate rho the update matrix predicts. The rate is the envelope ratio (max over the 20-step windows
    ending at K/2 and K)^(2/K); the two maxima may sit up to W = 20 steps away from exactly K/2 apart (complex
    roots: |c_k| = C rho^k |cos(k theta + phi)|, period ~11 steps at beta = 0.9), which moves the estimate by
    at most rho |log rho| W / (K/2): the tolerance (measured: 6.6e-4 at beta = 0.9 below; <= 4e-15 with real
    roots, where both maxima sit at the windows' ends)."""
    rng = np.random.default_rng(5)
    n = 5
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    H0 = (Q * np.array([1.0, 0.7, 0.4, 0.2, 0.1])) @ Q.T
    p = np.ones(n) if kind in ("heavy_ball", "nesterov") else rng.uniform(0.5, 2.0, n)
    w0 = jnp.asarray(rng.standard_normal(n))
    for lr in (0.1, 0.01):
        for b in (0.0, 0.5, 0.9):
            threshold = float(_THRESHOLDS[kind](lr, b))
            for factor in (0.98, 1.02):
                H = factor * threshold / _reference(H0, p) * H0
                start, middle, end = _run(kind, H, p, lr, b, w0)
                rate = (end / middle) ** (2 / K)
                lam = factor * threshold
                predicted = max(abs(np.linalg.eigvals(_update_matrix(kind, lam, lr, b))))
                assert (end < start) if factor < 1 else (end > start), (kind, lr, b, factor, end / start)
                tolerance = predicted * abs(np.log(predicted)) * WINDOW / (K // 2)
                assert rate == pytest.approx(predicted, abs=tolerance), (kind, lr, b, factor, rate, predicted)


def test_bad_threshold_input():
    for f in (heavy_ball_threshold, nesterov_threshold, adam_frozen_threshold):
        for beta in (1.0, -0.1, 1.5, float("nan")):
            with pytest.raises(InputError):
                f(0.1, beta)
        for lr in (0.0, -0.1, float("inf")):
            with pytest.raises(StepSizeError):
                f(lr, 0.5)
