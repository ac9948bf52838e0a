"""Interactive use of `dynamics.sharpness` / `eigenpairs`: compiled code reused across calls (traces counted inside
the loss), calls from jit/vmap, a top without a gap (accuracy met or SolverBudgetError), the default solver (LOBPCG
above DENSE_LIMIT) on Equinox-module parameters against numpy eigvalsh of jax.hessian, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynamics as dy
from dynamics.errors import InputError, SolverBudgetError
from dynamics.linalg import DENSE_LIMIT
from dynamics.models.mlp import mlp_init, mlp_loss


def _counting(loss):
    """(loss that counts its own calls, the counter): a jitted loss runs only while being traced."""
    count = [0]

    def counted(params):
        count[0] += 1
        return loss(params)

    return counted, count


def _eigvalsh_top(loss, params):
    """Independent reference: numpy eigvalsh of jax.hessian on the flat inexact-array leaves."""
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(dynamic)
    H = np.asarray(jax.jit(jax.hessian(lambda v: loss(eqx.combine(unravel(v), static))))(flat))
    return np.linalg.eigvalsh(0.5 * (H + H.T))[-1], H


def test_second_call_reuses_compiled_code():
    """tanh MLP 64->16->16->1 (1,329 parameters): the loss is traced once; new parameter values, a new tolerance and
    start blocks (cold, then warm: same shape) do not retrace; the same calls work inside jit(vmap)."""
    rng = np.random.default_rng(0)
    loss, traces = _counting(mlp_loss(rng.normal(size=(128, 64)), rng.normal(size=128)))
    params = mlp_init(jax.random.PRNGKey(0), (64, 16, 16, 1))
    moved = jax.tree_util.tree_map(lambda a: 1.01 * a, params)
    first = float(dy.sharpness(loss, params))
    assert traces[0] == 1
    assert float(dy.sharpness(loss, params)) == first
    second = float(dy.sharpness(loss, moved, tol=1e-9))
    assert traces[0] == 1 and second != first
    result = dy.eigenpairs(loss, params, 1, start=jax.random.normal(jax.random.PRNGKey(1), (1329, 1)))
    warm = dy.eigenpairs(loss, moved, 1, start=result.vectors)
    assert traces[0] == 1  # cold (default start) and warm starts share one compilation
    assert bool(warm.converged) and int(warm.hvps) < int(result.hvps)
    np.testing.assert_allclose(float(warm.values[0]), second, rtol=1e-12)

    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), params, moved)
    sharp = jax.jit(jax.vmap(lambda w: dy.sharpness(loss, w)))(stacked)
    top = jax.jit(jax.vmap(lambda w: dy.measure.top_eigenpairs(loss, w, 1, steps=40)))(stacked)[0][:, 0]
    np.testing.assert_allclose(sharp, [first, second], rtol=1e-12)
    np.testing.assert_allclose(top, [first, second], rtol=1e-10)


def test_top_without_gap_meets_accuracy_or_raises():
    """E(w) = sum_i d_i w_i^2 / 2, n = 3,000 (Hessian diag(d)), loss an eqx.Partial so both spectra share one
    compiled solver. 50 equal top eigenvalues: converged, within tol = 1e-8 (relative) of max(d). 100 top eigenvalues
    spread over 1e-6 (no gap): LOBPCG runs out of its 100 iterations; sharpness raises SolverBudgetError naming the
    residual it reached (outside jit) or an equinox runtime error (inside jit), never a silently wrong value."""
    rng = np.random.default_rng(2)
    quadratic = lambda d, w: 0.5 * jnp.sum(d * w**2)
    bulk = rng.uniform(0.0, 0.9, 2900)
    degenerate = jnp.asarray(np.concatenate([np.ones(50), rng.uniform(0.0, 0.9, 2950)]))
    clustered = jnp.asarray(np.concatenate([1.0 - 1e-6 * rng.uniform(size=100), bulk]))
    w = jnp.zeros(3000)
    for d in (degenerate, clustered):
        exact = float(jnp.max(d))
        try:
            value = float(dy.sharpness(eqx.Partial(quadratic, d), w))
        except SolverBudgetError as error:
            assert "did not converge: residuals ||H v - lambda v|| = [" in str(error)
            assert d is clustered
            continue
        assert abs(value - exact) <= 1e-8 * exact
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(jax.jit(lambda d: dy.sharpness(eqx.Partial(quadratic, d), w))(clustered))


@pytest.fixture(scope="module")
def module_problem():
    """eqx.nn.MLP 8->24->24->1 (tanh, float64: 841 parameters next to its activation functions), MSE loss."""
    model = eqx.nn.MLP(8, 1, 24, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    model = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)
    rng = np.random.default_rng(3)
    X, y = jnp.asarray(rng.normal(size=(64, 8))), jnp.asarray(rng.normal(size=64))
    return (lambda m: jnp.mean((jax.vmap(m)(X)[:, 0] - y) ** 2)), model


def test_default_solver_on_equinox_module_against_eigvalsh(module_problem):
    """An eqx.nn.MLP as params (841 > DENSE_LIMIT parameters): the default solver (LOBPCG, far fewer HVPs than n)
    agrees with numpy eigvalsh of jax.hessian on the partitioned flat parameters to 1e-10 relative; the eigenvector
    is flat over the inexact leaves, with a true residual within the reported tolerance; top_eigenpairs agrees."""
    loss, model = module_problem
    exact, H = _eigvalsh_top(loss, model)
    assert H.shape == (841, 841) and 841 > DENSE_LIMIT
    assert abs(float(dy.sharpness(loss, model)) - exact) <= 1e-10 * abs(exact)
    result = dy.measure.eigenpairs(loss, model)
    assert bool(result.converged) and int(result.hvps) < 100 and result.vectors.shape == (841, 1)
    v = np.asarray(result.vectors[:, 0])
    assert np.linalg.norm(H @ v - float(result.values[0]) * v) <= 1.01 * float(result.tolerance)
    np.testing.assert_allclose(dy.measure.top_eigenpairs(loss, model, 1, steps=60)[0], [exact], rtol=1e-10)


def test_bad_input(module_problem):
    """No inexact-array leaves -> InputError naming what was found; NaN / Inf parameters -> InputError (outside jit),
    NaN inside jit (no host check there; eigh of a non-finite matrix would return garbage, dense and Lanczos)."""
    E = lambda w: jnp.sum(w**4)
    for params in ({"n": jnp.arange(3), "name": "abc"}, [], (len,)):
        with pytest.raises(InputError, match="no floating-point array leaves"):
            dy.sharpness(E, params)
    with pytest.raises(InputError, match="NaN or Inf"):
        dy.sharpness(E, jnp.array([1.0, jnp.nan, 0.0]))
    with pytest.raises(InputError, match="NaN or Inf"):
        dy.eigenpairs(E, jnp.array([1.0, 2.0, jnp.inf]), 2)
    loss, model = module_problem
    broken = eqx.tree_at(lambda m: m.layers[0].bias, model, jnp.full(24, jnp.nan))
    with pytest.raises(InputError, match="NaN or Inf"):
        dy.sharpness(loss, broken)
    inside_jit = jax.jit(lambda w: (dy.sharpness(E, w), dy.measure.top_eigenpairs(E, w, 1, steps=3)[0][0]))
    assert np.all(np.isnan(inside_jit(jnp.array([1.0, jnp.nan, 0.0]))))
