"""Stochastic Lanczos quadrature (`dyn.spectral_density`) against dense eigvalsh and closed forms.

Tolerances, fixed before the results were seen:
- moments: |estimate - tr(H^p)/n| <= Z s.e., Z = 4: the estimate is an average of n_v = 32 iid per-probe values
  (exact quadrature, so no bias); a t_31 variable exceeds 4 with probability ~4e-4 per moment;
- smoothed density: L1 error <= Z_L1 (L1 norm of the pointwise s.e.) + L1 norm of the bias bound, Z_L1 = 2: the L1
  error of an unbiased average concentrates near sqrt(2/pi) ~ 0.8 times the L1 norm of its s.e.;
- exact quadrature: relative to v^T |H|^p v, 1e-10: Lanczos with full reorthogonalization is backward stable
  (T is V^T (H + F) V, ||F|| ~ eps sqrt(n) ||H|| ~ 1e-14 at n = 1,443), and a degree-p moment inherits ~p times that.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.errors import InputError, SolverBudgetError
from dynamics.linalg import flat_loss

Z, Z_L1, EXACT_TOL = 4.0, 2.0, 1e-10
SIZES = ((8, 32), (32, 32), (32, 3))  # tanh MLP 8-32-32-3: 1,443 parameters


def _kernel(x, width):
    return np.exp(-0.5 * (x / width) ** 2) / (width * np.sqrt(2 * np.pi))


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(0)
    X, Y = jnp.asarray(rng.normal(size=(64, 8))), jnp.asarray(rng.normal(size=(64, 3)))
    keys = jax.random.split(jax.random.PRNGKey(1), len(SIZES))
    params = [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.full(b, 0.1)) for k, (a, b) in zip(keys, SIZES)]

    def loss(ps):
        h = X
        for i, (W, b) in enumerate(ps):
            h = h @ W + b
            h = jnp.tanh(h) if i < len(ps) - 1 else h
        return 0.5 * jnp.mean(jnp.sum((h - Y) ** 2, axis=1))

    E, flat, _ = flat_loss(loss, params)
    H = np.asarray(jax.hessian(E)(flat))
    lam, U = np.linalg.eigh(H)
    return loss, params, lam, U


def test_moments_match_dense_within_standard_error(mlp):
    loss, params, lam, _ = mlp
    result = dyn.spectral_density(loss, params, probes=32, steps=30, key=0)
    assert result.n == lam.size == 1443 and result.hvps == 32 * 30
    for p, estimate, se in zip(result.powers, result.moments, result.moment_stderr):
        exact = np.mean(lam.astype(float) ** p)
        assert np.isfinite(se) and se > 0
        assert abs(estimate - exact) <= Z * se, (p, estimate, exact, se)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, rtol=1e-12)  # Rademacher: ||v||^2 / n = 1


def test_smoothed_density_within_error_estimate(mlp):
    loss, params, lam, U = mlp
    result = dyn.spectral_density(loss, params, probes=32, steps=30, key=1)
    grid, width = result.grid, result.width
    dx = grid[1] - grid[0]
    exact = _kernel(grid[:, None] - lam[None], width).mean(axis=1)
    l1_error = np.sum(np.abs(result.density - exact)) * dx
    allowed = Z_L1 * np.sum(result.density_stderr) * dx + np.sum(result.density_bias) * dx
    assert l1_error <= allowed, (l1_error, allowed)
    # the bias bound holds probe by probe against the exact v^T g(x - H) v / n from eigh (independent of Lanczos)
    V = np.asarray(jax.random.rademacher(jax.random.PRNGKey(1), (32, lam.size), jnp.float64))
    exact_probe = (((V @ U) ** 2) @ _kernel(grid[None] - lam[:, None], width)) / lam.size  # (n_v, G)
    slq_probe = np.einsum("ij,gij->ig", result.weights, _kernel(grid[:, None, None] - result.nodes[None], width))
    assert np.all(np.abs(slq_probe - exact_probe) <= result.density_bias[None] + 1e-12)
    # and where it is not negligible: a kernel 7.5x narrower than the default, same probes and steps
    narrow = dyn.spectral_density(loss, params, probes=32, steps=30, key=1, width=width / 7.5, grid=grid)
    slq_probe = np.einsum("ij,gij->ig", narrow.weights, _kernel(grid[:, None, None] - narrow.nodes[None], width / 7.5))
    exact_probe = (((V @ U) ** 2) @ _kernel(grid[None] - lam[:, None], width / 7.5)) / lam.size
    assert np.max(narrow.density_bias) > 1e3 * np.max(result.density_bias)
    assert np.all(np.abs(slq_probe - exact_probe) <= narrow.density_bias[None] + 1e-12)


def test_gauss_quadrature_exact_up_to_degree_2m_minus_1(mlp):
    loss, params, lam, U = mlp
    m = 5
    result = dyn.spectral_density(loss, params, probes=1, steps=m, key=2, distribution="gaussian",
                                  powers=range(2 * m))
    v = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (1, lam.size), jnp.float64))[0]
    c2 = (U.T @ v) ** 2 / lam.size
    for p, q in zip(result.powers, result.probe_moments[0]):
        exact, scale = np.sum(c2 * lam**p), np.sum(c2 * np.abs(lam) ** p)
        assert abs(q - exact) <= EXACT_TOL * scale, (p, q, exact)
    assert np.isnan(result.moment_stderr).all()  # one probe: no error estimate
    # degree 2m is not integrated exactly (the claim above could fail): the error is far above rounding
    nodes, weights = result.nodes[0], result.weights[0]
    p = 2 * m
    assert abs(np.sum(weights * nodes**p) - np.sum(c2 * lam**p)) > 1e3 * EXACT_TOL * np.sum(c2 * np.abs(lam) ** p)


def test_full_krylov_space_is_exact_for_every_degree():
    A = np.diag(np.arange(1.0, 7.0))
    loss = lambda w: 0.5 * w @ jnp.asarray(A) @ w
    result = dyn.spectral_density(loss, jnp.zeros(6), probes=3, steps=10, powers=(1, 2, 12))
    assert result.steps == 6 and np.all(result.density_bias == 0)
    # every probe's quadrature is exact: Rademacher probes have (u_k . v)^2 = 1 for the standard basis
    np.testing.assert_allclose(result.probe_moments, np.tile([np.mean(np.arange(1, 7.0) ** p) for p in (1, 2, 12)],
                                                             (3, 1)), rtol=1e-12)
    np.testing.assert_allclose(result.moment_stderr, 0, atol=1e-9)


def test_no_recompile_for_new_key_and_values(mlp):
    loss, params, _, _ = mlp
    traces = []

    def counting(ps):  # its Python body runs only while tracing
        traces.append(1)
        return loss(ps)

    dyn.spectral_density(counting, params, probes=4, steps=7, key=0)
    before = len(traces)
    dyn.spectral_density(counting, params, probes=4, steps=7, key=5)
    dyn.spectral_density(counting, jax.tree_util.tree_map(lambda a: 1.1 * a, params), probes=4, steps=7, key=6)
    assert before > 0 and len(traces) == before


def test_bad_input(mlp):
    loss, params, _, _ = mlp
    for bad in ({"probes": 0}, {"steps": 0}, {"probes": 2.5}, {"steps": True}, {"distribution": "uniform"},
                {"width": 0.0}, {"tol": -1.0}, {"powers": (-1,)}, {"powers": ()}):
        with pytest.raises(InputError):
            dyn.spectral_density(loss, params, **{"probes": 2, "steps": 3, **bad})
    with pytest.raises(SolverBudgetError, match="exact up to degree 5"):
        dyn.spectral_density(loss, params, probes=2, steps=3, powers=(6,))
    with pytest.raises(SolverBudgetError, match="standard errors"):
        dyn.spectral_density(loss, params, probes=4, steps=10, tol=1e-6)
    assert dyn.spectral_density(loss, params, probes=4, steps=10, tol=0.9).moments.shape == (3,)  # a loose request
    with pytest.raises(SolverBudgetError, match="standard errors"):
        dyn.spectral_density(loss, params, probes=1, steps=10, tol=0.5)
    with pytest.raises(InputError, match="NaN or Inf"):
        dyn.spectral_density(lambda w: jnp.sum(w**2), jnp.array([1.0, jnp.nan]), probes=2, steps=2)


def test_equinox_module_with_full_krylov_space():
    import equinox as eqx

    model = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))  # 17 parameters
    X = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)))
    loss = lambda m: jnp.mean((jax.vmap(m)(X)[:, 0] - X[:, 0] * X[:, 1]) ** 2)
    result = dyn.spectral_density(loss, model, probes=3, steps=40, key=4, powers=(1, 2, 5))
    E, flat, _ = flat_loss(loss, model)
    H = np.asarray(jax.hessian(E)(flat))
    V = np.asarray(jax.random.rademacher(jax.random.PRNGKey(4), (3, flat.size), jnp.float64))
    assert result.steps == result.n == 17
    for j, p in enumerate((1, 2, 5)):  # m >= n: the quadrature of each probe is exact for every degree
        exact = np.einsum("in,nm,im->i", V, np.linalg.matrix_power(H, p), V) / 17
        scale = np.abs(np.linalg.eigvalsh(H)).max() ** p  # ||H||^p ||v||^2 / n, ||v||^2 = n for Rademacher
        assert np.all(np.abs(result.probe_moments[:, j] - exact) <= EXACT_TOL * scale)
