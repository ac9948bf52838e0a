"""Hessian eigensolvers (dynamics.linalg): LOBPCG and Lanczos against numpy/scipy eigh on random symmetric matrices
and on an MLP Hessian (jax.hessian + numpy eigh as the oracle), tiny n, largest *algebraic* eigenvalues, warm starts
along a GD trajectory, and non-convergence reported with what was reached. Every solve is jitted (one compilation
each; eager calls would compile op by op)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

import dynamics as dy
from dynamics.errors import InputError, SolverBudgetError
from dynamics.models.mlp import mlp_init, mlp_loss
from dynamics.linalg import hessian_eigenpairs, lanczos, lobpcg, require_converged
from dynamics.measure import eigenpairs


def _with_spectrum(eigenvalues, seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues), len(eigenvalues))))
    return (Q * np.asarray(eigenvalues, float)) @ Q.T


def _quadratic(A):
    """E(x) = x^T A x / 2: Hessian A everywhere."""
    A = jnp.asarray(A)
    return lambda x: 0.5 * x @ (A @ x)


def _exact(A):
    values, vectors = np.linalg.eigh(A)
    return values[::-1], vectors[:, ::-1]


def _true_residuals(A, result):
    V, values = np.asarray(result.vectors), np.asarray(result.values)
    return np.linalg.norm(A @ V - V * values, axis=0)


def _check_against_eigh(A, result, k, rtol=1e-8):
    """Values to rtol relative (of the spectral radius); the residuals ||A v - lambda v|| recomputed here are within
    the reported tolerance; the largest principal angle to the exact top-k eigenspace (scipy) is within the
    Davis-Kahan bound ||R||_F / (theta_k - lambda_{k+1}) and below 1e-6."""
    exact, U = _exact(A)
    values, V = np.asarray(result.values), np.asarray(result.vectors)
    assert bool(result.converged)
    np.testing.assert_allclose(values, exact[:k], rtol=rtol, atol=rtol * np.abs(exact).max())
    np.testing.assert_allclose(V.T @ V, np.eye(k), atol=1e-10)
    residuals = _true_residuals(A, result)
    assert np.all(residuals <= 1.01 * float(result.tolerance) + 1e-13)
    if k < len(exact):
        angle = np.max(scipy.linalg.subspace_angles(V, U[:, :k]))
        assert angle <= np.linalg.norm(residuals) / (values[k - 1] - exact[k]) * (1 + 1e-6) + 1e-12
        assert angle < 1e-6
    return residuals


# ----------------------------------------------------------------------------- random symmetric matrices

#: 300 eigenvalues: top 10, 8, 6.5, 5, a bulk in [-4, 3] and a bottom -12.
SPECTRUM = np.concatenate([[10.0, 8.0, 6.5, 5.0, -12.0], np.random.default_rng(0).uniform(-4.0, 3.0, size=295)])
MATRIX = _with_spectrum(SPECTRUM, seed=1)


@jax.jit
def _matrix_lobpcg(A, X0, steps):
    """Top-3 (block X0: 3 columns, or 5 with two guard vectors) with a traced iteration budget."""
    return lobpcg(lambda v: A @ v, X0, 3, steps=steps)


@pytest.mark.parametrize("guard", [0, 2])
def test_lobpcg_random_symmetric_against_eigh(guard):
    X0 = jnp.asarray(np.random.default_rng(2).normal(size=(300, 3 + guard)))
    result = _matrix_lobpcg(jnp.asarray(MATRIX), X0, 100)
    residuals = _check_against_eigh(MATRIX, result, 3)
    np.testing.assert_allclose(np.asarray(result.residuals), residuals, rtol=1e-6, atol=1e-13)
    assert int(result.hvps) == (3 + guard) * (int(result.iterations) + 2)


def test_lanczos_random_symmetric_and_residual_estimate():
    """Converged Lanczos matches eigh; with a short budget its estimate |beta_m s_mi| equals the true residual."""
    v0 = jnp.asarray(np.random.default_rng(3).normal(size=300))
    matvec = lambda v: jnp.asarray(MATRIX) @ v
    full, short = jax.jit(lambda v: (lanczos(matvec, v, 60, k=3), lanczos(matvec, v, 8, k=2)))(v0)
    assert int(full.hvps) == 60
    _check_against_eigh(MATRIX, full, 3)
    np.testing.assert_allclose(np.asarray(short.residuals), _true_residuals(MATRIX, short), rtol=1e-6)


def test_eigenpairs_through_hvps_of_a_quadratic():
    """The same checks through the HVP path (E = x^T A x / 2, A: 120 x 120), and the tuple API."""
    A = _with_spectrum(SPECTRUM[:120], seed=4)
    x, E = jnp.asarray(np.random.default_rng(5).normal(size=120)), _quadratic(A)
    results, (values, vectors) = jax.jit(lambda x: ([eigenpairs(E, x, 2, m) for m in ("lanczos", "lobpcg")],
                                                    hessian_eigenpairs(E, x, 2, "dense")))(x)
    for result in results:
        _check_against_eigh(A, result, 2)
    np.testing.assert_allclose(values, _exact(A)[0][:2], rtol=1e-12)
    assert vectors.shape == (120, 2)


# ----------------------------------------------------------------------------- tiny n, algebraic order


def test_tiny_n_three():
    """n = 3: LOBPCG for k = 1, 2, 3 (the basis [X, R, P] has up to 9 > n columns) and Lanczos."""
    A = _with_spectrum([2.0, -0.5, -7.0], seed=6)
    blocks = [jnp.asarray(np.random.default_rng(7).normal(size=(3, k))) for k in (1, 2, 3)]
    results = jax.jit(lambda blocks: [lobpcg(lambda v: jnp.asarray(A) @ v, X) for X in blocks]
                      + [eigenpairs(_quadratic(A), jnp.ones(3), 3, "lanczos")])(blocks)
    for k, result in zip((1, 2, 3, 3), results):
        _check_against_eigh(A, result, k)


def test_largest_algebraic_not_largest_magnitude():
    """Top eigenvalue 1.5 while the most negative is -40: every method returns 1.5 (power iteration would give
    -40). All-negative spectrum: -1 (no spurious zero Ritz value). Lanczos started on an eigenvector of a lower
    eigenvalue (an invariant Krylov space) restarts and still finds the top."""
    A = _with_spectrum(np.concatenate([[1.5, 1.0, -40.0], np.random.default_rng(8).uniform(-2.0, 0.5, size=47)]), 9)
    negative = _with_spectrum([-1.0, -2.0, -50.0], seed=10)
    lower = jnp.asarray(_exact(negative)[1][:, 1])

    def solve(x):
        sharp = [dy.sharpness(_quadratic(A), x, method=m) for m in ("dense", "lanczos", "lobpcg")]
        neg = [eigenpairs(_quadratic(negative), x[:3], 1, m, start=s).values[0]
               for m, s in (("lobpcg", None), ("lanczos", lower))]
        return sharp, neg

    sharp, neg = jax.jit(solve)(jnp.zeros(50))
    np.testing.assert_allclose(sharp, 1.5, rtol=1e-10)
    np.testing.assert_allclose(neg, -1.0, rtol=1e-12)


# ----------------------------------------------------------------------------- MLP Hessians


@pytest.fixture(scope="module")
def mlp():
    """tanh MLP 16->32->32->1 (1,633 parameters), MSE on 64 Gaussian samples: (E, flat params, jitted top-3 LOBPCG
    from a start block, jitted dense Hessian). Shared so each compiles once."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 16)), rng.normal(size=64)
    flat, unravel = ravel_pytree(mlp_init(jax.random.PRNGKey(0), (16, 32, 32, 1)))
    loss = mlp_loss(X, y, "tanh")
    E = lambda v: loss(unravel(v))
    solve = jax.jit(lambda w, X0: eigenpairs(E, w, 3, "lobpcg", start=X0))
    return E, flat, solve, jax.jit(jax.hessian(E))


def test_mlp_hessian_against_dense_eigh(mlp):
    """Top-3 by LOBPCG (cold) and Lanczos against jax.hessian + numpy eigh at 1,633 parameters."""
    E, flat, solve, hessian = mlp
    assert flat.size == 1633
    H = np.asarray(hessian(flat))
    cold = solve(flat, jax.random.normal(jax.random.PRNGKey(3), (flat.size, 3)))
    assert require_converged(cold) is cold
    _check_against_eigh(0.5 * (H + H.T), cold, 3)
    _check_against_eigh(0.5 * (H + H.T), jax.jit(lambda w: eigenpairs(E, w, 3, "lanczos", steps=80))(flat), 3)


def test_warm_start_reduces_hvps_along_gd(mlp):
    """12 GD steps (lr = 0.5 / lambda_max at init) on the MLP: top-3 at each iterate by LOBPCG from a fixed random
    block (cold) and from the previous iterate's block (warm). Both converge to the same values; warm uses fewer
    HVPs (measured 0.72x); the last iterate is checked against dense eigh."""
    E, flat, solve, hessian = mlp
    cold_block = jax.random.normal(jax.random.PRNGKey(3), (flat.size, 3))
    lr = 0.5 / float(solve(flat, cold_block).values[0])
    traj = dy.simulate(dy.GradientDescent(E, lr), flat, lr * np.arange(13))
    block, cold_hvps, warm_hvps = cold_block, [], []
    for w in traj.ys:
        cold, warm = solve(w, cold_block), solve(w, block)
        assert bool(cold.converged) and bool(warm.converged)
        np.testing.assert_allclose(warm.values, cold.values, rtol=1e-9)
        cold_hvps.append(int(cold.hvps))
        warm_hvps.append(int(warm.hvps))
        block = warm.vectors
    H = np.asarray(hessian(traj.ys[-1]))
    _check_against_eigh(0.5 * (H + H.T), warm, 3)
    ratio = sum(warm_hvps[1:]) / sum(cold_hvps[1:])
    assert ratio < 0.85, (cold_hvps, warm_hvps)


# ----------------------------------------------------------------------------- non-convergence, bad input


def test_non_convergence_is_reported_and_raises():
    """A budget of 2 LOBPCG iterations: not converged, the reported residuals are the true ones (recomputed here),
    above the tolerance; require_converged / strict=True raise SolverBudgetError naming them."""
    X0 = jnp.asarray(np.random.default_rng(2).normal(size=(300, 3)))
    result = _matrix_lobpcg(jnp.asarray(MATRIX), X0, 2)
    assert not bool(result.converged) and int(result.iterations) == 2 and int(result.hvps) == 12
    np.testing.assert_allclose(np.asarray(result.residuals), _true_residuals(MATRIX, result), rtol=1e-8)
    assert float(np.max(result.residuals)) > float(result.tolerance)
    with pytest.raises(SolverBudgetError, match=r"tolerance .* after 2 of 2 iterations \(12 HVPs\).*larger block"):
        require_converged(result)
    with pytest.raises(SolverBudgetError, match=f"{float(result.residuals[0]):.3g}"):
        require_converged(result)
    x = jnp.zeros(300)
    with pytest.raises(SolverBudgetError, match=r"lanczos eigensolver .* did not converge.* 1 of 1 iterations"):
        eigenpairs(_quadratic(MATRIX[:3, :3]), x[:3], 1, "lanczos", steps=1, strict=True)  # host-side check
    with pytest.raises(Exception, match="did not converge"):  # inside jit: an equinox runtime error
        jax.block_until_ready(jax.jit(lambda w: eigenpairs(_quadratic(MATRIX), w, 1, "lobpcg", steps=1,
                                                           strict=True))(x))


def test_bad_input():
    E, x = _quadratic(np.eye(3)), jnp.zeros(3)
    with pytest.raises(InputError, match="k must satisfy"):
        eigenpairs(E, x, 4, "lobpcg")
    with pytest.raises(InputError, match="method must be one of"):
        eigenpairs(E, x, 1, "power")
    with pytest.raises(InputError, match="LOBPCG start"):
        eigenpairs(E, x, 1, "lobpcg", start=jnp.ones(4))
    with pytest.raises(InputError, match="block size <= n"):
        lobpcg(lambda v: v, jnp.ones((3, 4)))
