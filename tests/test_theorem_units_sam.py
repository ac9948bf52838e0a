"""Helpers of the SAM theorems (theorems/bartlett2023_sam.py) and the predictions they rest on
(dynamics.predictions.sam, dynamics.processes.sam.sam_modified_loss)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.predictions import require_usam_stable, sam_cycle_amplitude, sam_threshold, usam_threshold
from theorems.bartlett2023_sam import (cycle_transient_bound, growth_rate, quadratic_run, usam_curvature,
                                       usam_rate)

CASES = [(0.1, 0.05), (0.05, 0.5), (0.2, 0.01), (0.01, 2.0), (1e-3, 1e-9)]


@pytest.mark.parametrize("lr, rho", CASES)
def test_usam_threshold_is_the_root_of_the_stability_condition(lr, rho):
    star = usam_threshold(lr, rho)
    assert np.isclose(lr * star * (1 + rho * star), 2.0, rtol=1e-14, atol=0)
    if rho > 1e-6:
        assert np.isclose(star, (np.sqrt(1 + 8 * rho / lr) - 1) / (2 * rho), rtol=1e-12)
    assert star < 2 / lr


@pytest.mark.parametrize("lr, rho", CASES)
def test_sam_edge_reduces_to_the_usam_threshold_with_radius_rho_over_grad_norm(lr, rho):
    for grad_norm in (1e-3, 0.7, 50.0):
        assert np.isclose(sam_threshold(lr, rho * grad_norm, grad_norm), usam_threshold(lr, rho), rtol=1e-14)
    assert sam_threshold(lr, rho, 0.0) == 0.0
    assert np.isclose(sam_threshold(lr, rho, 1e30), 2 / lr, rtol=1e-9)


def test_sam_edge_matches_the_papers_expression():
    """(||g||/(2 rho))(sqrt(1 + 8 rho/(lr ||g||)) - 1) as written by Long & Bartlett (2023)."""
    lr, rho, g = 0.1, 0.05, np.array([0.01, 0.3, 2.0])
    assert np.allclose(sam_threshold(lr, rho, g), g / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g)) - 1), rtol=1e-13)


@pytest.mark.parametrize("lr, rho, lam", [(0.1, 0.05, 15.0), (0.05, 0.1, 10.0), (0.02, 0.5, 80.0)])
def test_on_the_quadratic_cycle_the_top_curvature_sits_on_the_sam_edge(lr, rho, lam):
    """The SAM-edge at the cycle's gradient norm lambda_1 A is lambda_1 exactly, and a SAM run on a quadratic
    reaches it: S / SAM-edge -> 1 (the EoS theorem's ratio reduces to the exact cycle)."""
    A = sam_cycle_amplitude(lr, rho, lam)
    assert np.isclose(sam_threshold(lr, rho, lam * A), lam, rtol=1e-14)
    H = np.diag([lam, 0.3 * lam, 0.1 * lam])
    top, rest, _ = quadratic_run(H, np.array([1.0, -0.5, 0.25]), lr, rho, True, 3000)
    assert rest[-1] < 1e-12 * abs(top[-1])                # the iterate is on the top eigenvector
    grad_norm = lam * abs(top[-1])                        # ||H w|| there
    assert np.isclose(sam_threshold(lr, rho, grad_norm), lam, rtol=1e-10)


def test_cycle_amplitude_and_usam_stability_refuse_unstable_steps():
    with pytest.raises(dyn.StepSizeError, match="lr lambda < 2"):
        sam_cycle_amplitude(0.1, 0.05, 20.0)
    require_usam_stable(0.1, 0.05, 0.99 * usam_threshold(0.1, 0.05))
    with pytest.raises(dyn.StepSizeError, match="USAM"):
        require_usam_stable(0.1, 0.05, 1.01 * usam_threshold(0.1, 0.05))
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(dyn.InputError):
            usam_threshold(0.1, bad)
        with pytest.raises(dyn.InputError):
            sam_threshold(bad, 0.1, 1.0)


@pytest.mark.parametrize("lr, rho", CASES[:4])
def test_usam_curvature_inverts_the_stability_polynomial_and_rates(lr, rho):
    for q in (0.5, 1.0, 1.5, 2.0):
        lam = usam_curvature(lr, rho, q)
        assert np.isclose(lr * lam * (1 + rho * lam), q, rtol=1e-13)
    assert np.isclose(usam_curvature(lr, rho, 2.0), usam_threshold(lr, rho), rtol=1e-13)
    assert usam_rate(lr, rho, 0.99 * usam_threshold(lr, rho)) < 0 < usam_rate(lr, rho, 1.01 * usam_threshold(lr, rho))


def test_growth_rate_and_transient_bound():
    norms = 3.0 * 1.05 ** np.arange(50)
    assert np.isclose(growth_rate(norms, 10), np.log(1.05), rtol=1e-13)
    bound = cycle_transient_bound(0.1, 0.05, (15.0, 8.0, 1.0), 100)
    assert 0 < bound < 1 and np.isclose(bound, (1 - 0.1 * (1 + 0.05 / 2.25)) ** 100, rtol=1e-12)  # lambda_1 A = 2.25


def test_sam_modified_loss_weights_and_its_igr_limit():
    L = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 3.0]) * w**2) + 0.1 * w[0] ** 3
    w = jnp.array([0.4, -0.7])
    g = jax.grad(L)(w)
    h, rho = 0.05, 0.02
    assert np.isclose(dyn.sam_modified_loss(L, h, rho)(w), L(w) + rho * jnp.linalg.norm(g) + h / 4 * g @ g, rtol=1e-15)
    assert np.isclose(dyn.sam_modified_loss(L, h, rho, normalized=False)(w), L(w) + (rho / 2 + h / 4) * g @ g,
                      rtol=1e-15)
    igr = dyn.sam_modified_loss(L, h, 0.0, normalized=False)
    assert np.allclose(jax.grad(igr)(w), jax.grad(dyn.igr_loss(L, h))(w), rtol=1e-14)
    at_minimum = jax.grad(dyn.sam_modified_loss(L, h, rho))(jnp.zeros(2))  # ||grad L|| at g = 0: gradient 0, not NaN
    assert np.all(np.isfinite(at_minimum))


# ------------------------------------------------------------------ andriushchenko2022_sam_bias helpers
from theorems.andriushchenko2022_sam_bias import (effective_scale_minimizer, excess_l1, fitted_scale,  # noqa: E402
                                                  make_process)
from theorems.common import datasets  # noqa: E402


def test_sign_test_critical_values_match_the_binomial_tail():
    import scipy.stats

    from theorems.common.claims import sign_test_critical
    assert sign_test_critical(8, 0.05) == 7 and sign_test_critical(10, 0.05) == 9 and sign_test_critical(12, 0.05) == 10
    assert sign_test_critical(16, 0.01) == 14 and sign_test_critical(3, 0.05) == 4       # 3 coins never reach 5%
    for n in (8, 12, 24):
        k = sign_test_critical(n, 0.05)
        assert scipy.stats.binom.sf(k - 1, n, 0.5) <= 0.05 < scipy.stats.binom.sf(k - 2, n, 0.5)


def test_sparse_regression_dataset_is_seeded_and_3_sparse():
    X, y, beta = datasets.dataset("sam_sparse_regression", seed=3)
    X2, y2, beta2 = datasets.dataset("sam_sparse_regression", seed=3)
    assert X.shape == (20, 30) and np.array_equal(X, X2) and np.array_equal(beta, beta2)
    assert np.count_nonzero(beta) == 3 and np.all(beta >= 0) and np.isclose(np.linalg.norm(beta), 1.0)
    assert np.allclose(X @ beta, y)


def test_effective_scale_minimizer_interpolates_and_moves_to_l1_as_the_scale_shrinks():
    X, y, _ = datasets.dataset("sam_sparse_regression", seed=0)
    big, small = effective_scale_minimizer(X, y, 1.0), effective_scale_minimizer(X, y, 1e-6)
    assert np.allclose(X @ big, y, atol=1e-10) and np.allclose(X @ small, y, atol=1e-10)
    from dynamics.predictions import min_l1_interpolant
    l1 = min_l1_interpolant(X, y)
    assert 0 <= excess_l1(small, l1) < excess_l1(big, l1)


def test_fitted_scale_recovers_a_uniform_scale():
    X, y, _ = datasets.dataset("sam_sparse_regression", seed=1)
    beta = effective_scale_minimizer(X, y, 0.05)
    scale, misfit = fitted_scale(X, y, beta, 0.09)
    assert np.isclose(scale, 0.05, rtol=1e-5) and misfit < 1e-6


@pytest.mark.parametrize("method", ["GD", "n-SAM", "1-SAM"])
def test_diagonal_net_step_is_the_multiplicative_u_plus_minus_v_update(method):
    """[derived] u + v -> (u + v)(1 - a), u - v -> (u - v)(1 + b) with (a + b)/2 = lr (X^T r~ / n) and (a - b)/2 the
    SAM shrinkage: one step of the process against the closed form (authors' code, rho per-example convention)."""
    X, y, _ = datasets.dataset("sam_sparse_regression", seed=2)
    lr, rho = 0.2, 0.05
    process, (u, v) = make_process(method, jnp.asarray(X), jnp.asarray(y), lr=lr, rho=rho)
    u = u + 0.1 * jnp.arange(30) / 30.0
    v = v + 0.05
    u1, v1 = process.step((u, v), 0)
    u, v = np.asarray(u), np.asarray(v)
    r = X @ (u * v) - y
    n = X.shape[0]
    if method == "GD":
        gu, gv = (X.T @ r / n) * v, (X.T @ r / n) * u
    elif method == "n-SAM":
        g = X.T @ r / n
        us, vs = u + rho * g * v, v + rho * g * u
        gs = X.T @ (X @ (us * vs) - y) / n
        gu, gv = gs * vs, gs * us
    else:
        gu, gv = np.zeros(30), np.zeros(30)
        for i in range(n):
            us, vs = u + rho * r[i] * X[i] * v, v + rho * r[i] * X[i] * u
            ri = X[i] @ (us * vs) - y[i]
            gu += ri * X[i] * vs / n
            gv += ri * X[i] * us / n
    assert np.allclose(np.asarray(u1), u - lr * gu, rtol=1e-13, atol=1e-15)
    assert np.allclose(np.asarray(v1), v - lr * gv, rtol=1e-13, atol=1e-15)


# moon2026_sam_margin: SAM on separable data (docs/stability-sam-geometry.md section 1.3)

def test_sam_perturbation_on_the_separable_asymptote_is_minus_rho_u():
    """[derived] on w = w_hat log t + w_tilde the normalized gradient is -w_hat/||w_hat|| up to the off-support weights
    e^{-(theta - 1) log t} (theta = 2.75 on the axis data): numpy gradient, independent of dynamics."""
    from theorems.common import datasets
    from theorems.moon2026_sam_margin import closed_form

    X, y = datasets.dataset("axis_closed_form")
    Z = y[:, None] * X
    solution = dyn.max_margin(X, y)
    w_tilde = dyn.separable_asymptotics(solution, Z).w_tilde
    w = closed_form(30.0, solution.w, w_tilde)
    g = -Z.T @ np.exp(-Z @ w)
    u = solution.w / np.linalg.norm(solution.w)
    assert np.linalg.norm(g / np.linalg.norm(g) + u) < 1e-12
    # the shift is a margin shift: grad L(w - rho u) = e^{rho/||w_hat||} grad L(w) on the support
    rho = 0.5
    shifted = -Z.T @ np.exp(-Z @ (w - rho * u))
    assert np.allclose(shifted, np.exp(rho / np.linalg.norm(solution.w)) * g, rtol=1e-12, atol=0)


def test_shifted_asymptote_keeps_the_direction_constant_and_lowers_the_error_at_second_order():
    """[derived] err(w_hat T + w_tilde) - err(w_hat T + w_tilde + rho u) ~ C rho / (||w_hat|| T^2); both errors x T
    -> C."""
    from theorems.common import datasets
    from theorems.moon2026_sam_margin import closed_form

    X, y = datasets.dataset("axis_closed_form")
    solution = dyn.max_margin(X, y)
    asy = dyn.separable_asymptotics(solution, y[:, None] * X)
    W, C, T, rho = np.linalg.norm(solution.w), asy.direction_constant, 1e5, 0.5
    gd = dyn.direction_error(closed_form(T, solution.w, asy.w_tilde), solution.w)
    sam = dyn.direction_error(closed_form(T, solution.w, asy.w_tilde, rho), solution.w)
    assert np.isclose(sam * T, C, rtol=1e-4) and np.isclose(gd * T, C, rtol=1e-4)
    assert np.isclose((gd - sam) * T**2, C * rho / W, rtol=1e-3)


def test_l1_gap_and_minor_share_on_simple_predictors():
    from theorems.moon2026_sam_margin import l1_gap, minor_share

    x = np.array([1.0, 0.6, 0.3])
    assert l1_gap(np.array([2.0, 0.0, 0.0]), x, 1.0) == 0.0
    assert np.isclose(l1_gap(np.array([1.0, 1.0, 0.0]), x, 1.0), 0.2)
    assert np.isclose(minor_share(np.array([[1.0, 1.0, 2.0]])), [0.75]).all()


def test_sam_step_hypothesis_rejects_a_step_past_the_weighted_bound():
    from dynamics.errors import InputError
    from theorems.moon2026_sam_margin import sam_step_hypothesis

    Z = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert np.isclose(sam_step_hypothesis(0.1, 0.5, Z, 1.0), np.e)
    with pytest.raises(InputError):
        sam_step_hypothesis(0.5, 0.5, Z, 1.0)
