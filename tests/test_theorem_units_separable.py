"""Unit checks of the separable-data theorem modules (soudry2018, nacson2019_tails, nacson2019_sgd): their dataset
generators, helper predictions, and the properties that hold by construction of the code (and so are not claims)."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from theorems.common import datasets
from theorems.nacson2019_sgd import direction_gradient, replacement_noise
from theorems.soudry2018 import decay_rates, log_coefficient

SEPARABLE = ("axis_closed_form", "degenerate_support", "gaussian_hyperplane", "shifted_plane", "wedge_2d")


@pytest.mark.parametrize("name", SEPARABLE)
def test_separable_datasets_are_seeded_separable_float64(name):
    X, y = datasets.dataset(name, seed=3)
    X2, y2 = datasets.dataset(name, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert X.dtype == np.float64 and y.dtype == np.float64 and set(np.unique(y)) <= {-1.0, 1.0}
    sol = dy.max_margin(X, y)  # raises NonSeparableError otherwise
    assert np.all((y[:, None] * X) @ sol.w >= 1 - 1e-9)


def test_random_datasets_depend_on_the_seed_and_keep_their_structure():
    for name in ("gaussian_hyperplane", "shifted_plane", "wedge_2d"):
        assert not np.array_equal(datasets.dataset(name, seed=1)[0], datasets.dataset(name, seed=2)[0])
    X, _ = datasets.dataset("shifted_plane", seed=15)
    assert X.shape == (16, 3) and np.all(X[:, 2] == 0)
    X, y = datasets.dataset("wedge_2d", seed=112)
    Z = y[:, None] * X
    assert np.all(Z[:, 0] > 0) and np.all(np.linalg.norm(Z, axis=1) <= 1.0)


def test_axis_data_closed_form_limit():
    """z_n = c_n e_n: w_hat_n = 1/c_n, alpha_n = 1/c_n^2, w_tilde_n = 2 log(c_n)/c_n; extra points change nothing."""
    for extra in (False, True):
        X, y = datasets.dataset("axis_closed_form", extra=extra)
        sol = dy.max_margin(X, y)
        asy = dy.separable_asymptotics(sol, y[:, None] * X)
        np.testing.assert_allclose(sol.w, [1.0, 0.5], atol=1e-12)
        np.testing.assert_allclose(asy.w_tilde, [0.0, np.log(2.0)], atol=1e-12)
        assert asy.direction_constant == pytest.approx(0.8 * np.log(2.0), rel=1e-12)


def test_soudry_rates_and_log_coefficient_on_axis_data():
    """A = sum_S alpha z z^T = I there, so every residual mode has rate 1 and P_1 = I:
    v1 = (lr/2) w_hat - sum_S alpha_n^2 z_n (logistic), (lr/2) w_hat (exp)."""
    X, y = datasets.dataset("axis_closed_form")
    Z = y[:, None] * X
    sol = dy.max_margin(X, y)
    np.testing.assert_allclose(decay_rates(sol, Z), [1.0, 1.0, 1.75, 2.0], atol=1e-9)
    b = 1.0 * np.array([1.0, 0.0]) + 0.25**2 * np.array([0.0, 2.0])
    np.testing.assert_allclose(log_coefficient(sol, Z, 0.3, "logistic"), 0.15 * sol.w - b, atol=1e-12)
    np.testing.assert_allclose(log_coefficient(sol, Z, 0.3, "exp"), 0.15 * sol.w, atol=1e-12)


def test_normalized_gd_step_is_bounded_by_construction():
    """w_{k+1} - w_k = (eta/sqrt(k+1)) sum_n p_n z_n with p a probability vector: its norm is at most
    eta max||z_n||/sqrt(k+1) (this was a claim of nacson2019_tails; it holds by construction of the update)."""
    X, y = datasets.dataset("shifted_plane", seed=15)
    Z = y[:, None] * X
    lr = 1.0 / np.max(np.sum(Z**2, axis=1))
    process = dy.NormalizedGD(dy.linear_classifier(X, y, "exp"), lr)
    rng = np.random.default_rng(0)
    for k in (0, 1, 10, 10**4):
        w = jnp.asarray(rng.normal(size=3) * 5)
        step = np.linalg.norm(np.asarray(process.step(w, k)) - np.asarray(w)) * np.sqrt(k + 1)
        assert step <= lr * np.max(np.linalg.norm(Z, axis=1)) * (1 + 1e-12)


def test_replacement_noise_solves_its_lyapunov_equation_and_needs_lambda_above_half():
    X, y = datasets.dataset("wedge_2d", seed=112)
    Z = y[:, None] * X
    sol = dy.max_margin(X, y)
    p0 = replacement_noise(Z, sol)
    S, alpha = sol.support, sol.dual[sol.support]
    A = Z[S].T @ (alpha[:, None] * Z[S])
    sigma = Z[S].T @ (alpha[:, None] ** 2 * Z[S]) / len(Z) - np.outer(sol.w, sol.w) / len(Z) ** 2
    M = A - 0.5 * np.eye(2)
    np.testing.assert_allclose(M @ p0 + p0 @ M, sigma, atol=1e-12 * np.abs(sigma).max())
    assert np.all(np.linalg.eigvalsh(p0) > 0)
    narrow = np.array([[1.0, 0.1], [1.0, -0.1]])  # alpha = (1/2, 1/2): A = diag(1, 0.01)
    with pytest.raises(dy.DynamicsError, match="lambda_min"):
        replacement_noise(narrow, dy.max_margin(narrow, np.ones(2)))


def test_direction_gradient_matches_finite_differences():
    w, w_hat = np.array([3.0, 1.2]), np.array([1.0, 0.1])
    g = direction_gradient(w, w_hat)
    eps = 1e-7
    numeric = [(dy.direction_error(w + eps * e, w_hat) - dy.direction_error(w - eps * e, w_hat)) / (2 * eps)
               for e in np.eye(2)]
    np.testing.assert_allclose(g, numeric, rtol=1e-6)
