"""l1 / DFT-l1 max margin with dual certificates, the l1 interpolation certificate, and warm-started
implicit-norm minimizers, each checked against an independent computation (closed forms, a separately solved
dual LP, an SLSQP solve of the smooth DFT-l1 dual, the former 256-angle LP bracket, cold-start Newton)."""

import numpy as np
import pytest
import scipy.optimize

import dynamics as dy
from dynamics.predictions import (dft_l1_max_margin, implicit_norm_minimizer, l1_interpolant_certificate,
                                  l1_max_margin, margin_certificate, max_margin, min_l1_interpolant,
                                  optimality_certificate, woodworth_map)


def _classification(seed, n=6, d=8):
    """Gaussian X (n, d), random labels (n <= d: separable)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.choice([-1.0, 1.0], size=n)


def _l1_dual_lp(Z):
    """max 1^T lam s.t. ||Z^T lam||_inf <= 1, lam >= 0, solved as its own LP."""
    n, d = Z.shape
    res = scipy.optimize.linprog(-np.ones(n), A_ub=np.vstack([Z.T, -Z.T]), b_ub=np.ones(2 * d),
                                 bounds=[(0, None)] * n, method="highs")
    assert res.status == 0
    return -res.fun


def _bracket_256(Z, angles=256):
    """Former reference: LP with |b| replaced by max over 256 phases (lower) and its point rescaled (upper)."""
    n, d = Z.shape
    F = np.fft.fft(np.eye(d), norm="ortho")
    phases = np.exp(-2j * np.pi * np.arange(angles) / angles)
    rows = np.real(phases[None, :, None] * F[:, None, :]).reshape(d * angles, d)
    A = np.block([[rows, -np.repeat(np.eye(d), angles, axis=0)], [-Z, np.zeros((n, d))]])
    res = scipy.optimize.linprog(np.r_[np.zeros(d), np.ones(d)], A_ub=A, b_ub=np.r_[np.zeros(d * angles), -np.ones(n)],
                                 bounds=[(None, None)] * d + [(0, None)] * d, method="highs")
    assert res.status == 0
    beta = res.x[:d]
    return res.fun, np.abs(F @ beta).sum() / (Z @ beta).min()


def _dft_dual_slsqp(Z):
    """max sum a s.t. |(F Z^T a)_k|^2 <= 1 for all k, a >= 0 (smooth convex constraints), by SLSQP."""
    n = Z.shape[0]
    Zh = np.fft.fft(Z, norm="ortho", axis=1)
    res = scipy.optimize.minimize(
        lambda a: -a.sum(), np.full(n, 0.5 / np.abs(Zh).sum(axis=0).max()), jac=lambda a: -np.ones(n),
        method="SLSQP", bounds=[(0, None)] * n, options={"ftol": 1e-15, "maxiter": 1000},
        constraints=[{"type": "ineq", "fun": lambda a: 1 - np.abs(a @ Zh) ** 2,
                      "jac": lambda a: -2 * np.real(np.conj(a @ Zh)[:, None] * Zh.T)}])
    return res.x


@pytest.mark.parametrize("seed", range(4))
def test_l1_max_margin_dual_certificate(seed):
    X, y = _classification(seed, 10, 5)
    X = X + 0.5 * y[:, None] * np.ones(5)  # shift toward separability
    Z = y[:, None] * X
    sol = l1_max_margin(X, y)
    assert 1 / sol.margin == pytest.approx(_l1_dual_lp(Z), rel=1e-10)
    cert = sol.certificate
    assert max(cert.infeasibility, cert.dual_infeasibility, abs(cert.alignment), abs(cert.slackness),
               abs(cert.gap)) < 1e-12
    on = np.abs(sol.w) > 1e-9 * np.abs(sol.w).max()
    np.testing.assert_allclose(sol.subgradient[on], np.sign(sol.w[on]), atol=1e-12)
    np.testing.assert_allclose(sol.subgradient, Z.T @ sol.dual, atol=1e-15)


def test_single_point_closed_forms():
    """One point z: min N(w) s.t. z.w >= 1 has value 1/N_*(z): 1/||z||_inf (l1), 1/max_k |(F z)_k| (DFT-l1)."""
    rng = np.random.default_rng(3)
    for d in (1, 2, 5, 8):
        z = rng.normal(size=d)
        assert 1 / l1_max_margin(z[None, :], np.ones(1)).margin == pytest.approx(1 / np.abs(z).max(), rel=1e-12)
        sol = dft_l1_max_margin(z[None, :], np.ones(1))
        assert sol.value == pytest.approx(1 / np.abs(np.fft.fft(z, norm="ortho")).max(), rel=1e-10)
        assert z @ sol.w >= 1 - 1e-12 and sol.lower <= sol.value


@pytest.mark.parametrize("seed, n, d", [(0, 6, 8), (1, 6, 8), (2, 5, 7), (3, 4, 9), (4, 8, 6)])
def test_dft_l1_against_256_angle_bracket_and_slsqp_dual(seed, n, d):
    X, y = _classification(seed, n, d)
    if n > d:
        X = X + y[:, None] * np.ones(d)
    Z = y[:, None] * X
    sol = dft_l1_max_margin(X, y)
    assert sol.gap <= 1e-10 and sol.lower <= sol.value == sol.upper
    lower, upper = _bracket_256(Z)
    assert lower * (1 - 1e-12) <= sol.value <= upper * (1 + 1e-12)
    alpha = _dft_dual_slsqp(Z)
    dual_value = alpha.sum() / max(1.0, np.abs(np.fft.fft(Z.T @ alpha, norm="ortho")).max())
    assert dual_value <= sol.upper * (1 + 1e-12)  # weak duality with an independently found dual point
    assert dual_value == pytest.approx(sol.value, rel=1e-8)
    assert np.min(Z @ sol.w) == pytest.approx(1.0, abs=1e-12)
    assert np.abs(np.fft.fft(sol.w, norm="ortho")).sum() == pytest.approx(sol.value, rel=1e-14)
    cert = sol.certificate
    assert cert.infeasibility < 1e-12 and cert.dual_infeasibility < 1e-12
    assert 0 <= cert.alignment + 1e-14 and cert.slackness + 1e-14 >= 0 and cert.gap <= 1e-10
    assert cert.gap == pytest.approx(sol.gap, abs=1e-13)


def test_dft_l1_scale_covariance():
    X, y = _classification(5)
    base = dft_l1_max_margin(X, y)
    scaled = dft_l1_max_margin(1e4 * X, y)
    assert scaled.value * 1e4 == pytest.approx(base.value, rel=1e-10)


def test_dft_l1_budget_and_input_errors():
    X, y = _classification(0)
    with pytest.raises(dy.SolverBudgetError, match=r"relative gap .* after 2 LP solves .*raise max_lp"):
        dft_l1_max_margin(X, y, max_lp=2)
    with pytest.raises(dy.InputError, match="tol must lie in"):
        dft_l1_max_margin(X, y, tol=0.0)
    with pytest.raises(dy.NonSeparableError):
        dft_l1_max_margin(np.vstack([X, X[:1]]), np.r_[y, -y[0]])


def test_margin_certificate_flags_a_non_optimal_point():
    X, y = _classification(1)
    l1 = l1_max_margin(X, y)
    w2 = max_margin(X, y).w  # feasible (margins >= 1) but not l1-optimal
    cert = margin_certificate(X, y, w2, l1.dual, "l1")
    assert cert.infeasibility < 1e-12 and cert.gap > 1e-3
    assert cert.gap == pytest.approx(cert.alignment + cert.slackness, abs=1e-14)
    with pytest.raises(dy.InputError, match="norm must be one of"):
        margin_certificate(X, y, w2, l1.dual, "l2")


def test_l1_interpolant_certificate():
    rng = np.random.default_rng(15)
    X, y = rng.normal(size=(5, 12)), rng.normal(size=5)
    cert = l1_interpolant_certificate(X, y)
    res = scipy.optimize.linprog(-y, A_ub=np.vstack([X.T, -X.T]), b_ub=np.ones(24), bounds=[(None, None)] * 5,
                                 method="highs")  # the dual LP, solved on its own
    assert np.abs(cert.beta).sum() == pytest.approx(-res.fun, rel=1e-12)
    np.testing.assert_allclose(X @ cert.beta, y, atol=1e-12)
    np.testing.assert_allclose(cert.beta, min_l1_interpolant(X, y), atol=0)
    np.testing.assert_allclose(cert.correlation[cert.support], np.sign(cert.beta[cert.support]), atol=1e-12)
    assert np.abs(cert.correlation[~cert.support]).max() == pytest.approx(0.5083, abs=1e-4)
    with pytest.raises(dy.InputError, match="no strict l1 dual certificate"):
        l1_interpolant_certificate(np.array([[1.0, 1.0]]), np.array([1.0]))  # a tie: |c| = 1 off the support


def test_warm_start_continuation_over_alpha():
    """alpha from 1 down to 1e-8 (D = 2): warm starts reach the cold-start minimizer to 1e-12 in fewer Newton
    iterations; for alpha <= 1e-7 the cold start fails and the continuation still certifies optimality."""
    rng = np.random.default_rng(15)
    X, y = rng.normal(size=(5, 12)), rng.normal(size=5)
    alphas = np.logspace(0, -8, 17)
    nu, cold_total, warm_total = None, 0, 0
    for alpha in alphas:
        mirror = woodworth_map(alpha, 2, 12)
        warm = implicit_norm_minimizer(X, y, mirror, nu0=nu)
        nu = warm.nu
        if alpha < 2e-7:  # cold start: the first Newton step overflows sinh
            with pytest.raises(dy.DynamicsError, match="no Newton step decreases the residual"):
                implicit_norm_minimizer(X, y, mirror)
            continue
        cold = implicit_norm_minimizer(X, y, mirror)
        assert np.linalg.norm(warm.beta - cold.beta) <= 1e-12 * np.linalg.norm(cold.beta)
        assert warm.iterations <= cold.iterations
        cold_total, warm_total = cold_total + cold.iterations, warm_total + warm.iterations
    assert warm_total < 0.6 * cold_total
    feasibility, stationarity = optimality_certificate(X, y, warm.beta, mirror)
    assert feasibility < 1e-12 and stationarity < 1e-10
    beta_l1 = min_l1_interpolant(X, y)
    assert np.linalg.norm(warm.beta - beta_l1) < 1e-6 * np.linalg.norm(beta_l1)  # rich limit, ~alpha^0.98


def test_warm_start_bad_input():
    rng = np.random.default_rng(15)
    X, y = rng.normal(size=(5, 12)), rng.normal(size=5)
    with pytest.raises(dy.InputError, match=r"nu0 must have shape \(5,\)"):
        implicit_norm_minimizer(X, y, woodworth_map(0.1, 3, 12), nu0=np.zeros(4))
    with pytest.raises(dy.InputError, match="outside the domain"):
        implicit_norm_minimizer(X, y, woodworth_map(0.1, 3, 12), nu0=np.full(5, 10.0))
    with pytest.raises(dy.InputError, match="overflows"):
        implicit_norm_minimizer(X, y, woodworth_map(0.1, 2, 12), nu0=np.full(5, 1e3))


def test_lq_kkt_vertices_on_the_single_point_example():
    """docs/implicit-bias.md section 5.2: z = (1, 2), L = 3 has the strict vertex KKT points (0, 1/2) (objective
    0.63, global) and (1, 0) (objective 1); the non-vertex KKT point (0.8, 0.1) is not a local minimizer."""
    vertices = dy.lq_kkt_vertices(np.array([[1.0, 2.0]]), 3)
    assert len(vertices) == 2
    np.testing.assert_allclose(vertices[0][1], [0.0, 0.5])
    np.testing.assert_allclose(vertices[1][1], [1.0, 0.0])
    np.testing.assert_allclose([v[0] for v in vertices], [0.5 ** (2 / 3), 1.0])
    assert all(np.all(v[2] > 0) for v in vertices)


def test_lq_kkt_vertices_refuses_l2_depth_and_infeasible_is_empty():
    with pytest.raises(dy.InputError, match="integer >= 3"):
        dy.lq_kkt_vertices(np.array([[1.0, 2.0]]), 2)
    assert dy.lq_kkt_vertices(np.array([[1.0], [-1.0]]), 3) == []
