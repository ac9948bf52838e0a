"""Max-margin predictions against SciPy SLSQP, exact KKT conditions, closed forms and brute force."""

import itertools

import numpy as np
import pytest
import scipy.optimize

import dynamics as dy


def _slsqp_max_margin(Z, w_start):
    """min ||w||^2 / 2 s.t. Z w >= 1 by SLSQP (ftol 1e-12), started from a feasible point."""
    res = scipy.optimize.minimize(
        lambda w: (0.5 * w @ w, w), w_start, jac=True, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1.0, "jac": lambda w: Z}],
        options={"ftol": 1e-12, "maxiter": 1000})
    assert res.success, res.message
    return res.x


@pytest.mark.parametrize("seed, n, d", [(0, 5, 2), (1, 20, 3), (2, 50, 5), (3, 100, 10), (4, 100, 2),
                                        (5, 30, 10)])
def test_max_margin_matches_slsqp_and_kkt(make_separable, seed, n, d):
    X, y, w_star = make_separable(seed, n, d)
    Z = y[:, None] * X
    sol = dy.max_margin(X, y)
    w_ref = _slsqp_max_margin(Z, w_star / np.min(Z @ w_star))
    np.testing.assert_allclose(sol.w, w_ref, rtol=0, atol=1e-6 * np.linalg.norm(w_ref))

    S, alpha = sol.support, sol.dual
    norm2 = sol.w @ sol.w
    assert np.all(alpha >= 0) and np.all(alpha[np.setdiff1d(np.arange(n), S)] == 0)
    assert abs(alpha.sum() - norm2) <= 1e-12 * norm2  # strong duality
    np.testing.assert_allclose(Z.T @ alpha, sol.w, rtol=0, atol=1e-12 * np.linalg.norm(sol.w))  # stationarity
    np.testing.assert_allclose(Z[S] @ sol.w, 1.0, rtol=0, atol=1e-12)  # active constraints
    assert np.min(Z @ sol.w) >= 1 - 1e-12
    assert sol.margin == pytest.approx(1 / np.sqrt(norm2), rel=1e-15)
    off = np.setdiff1d(np.arange(n), S)
    assert sol.gap == (np.min(Z[off] @ sol.w) if off.size else np.inf) and sol.gap > 1
    assert sol.spans_data == (np.linalg.matrix_rank(Z[S]) == np.linalg.matrix_rank(Z))


@pytest.mark.parametrize("extra", [False, True])
def test_axis_data_closed_form(axis_data, extra):
    """z_n = c_n e_n: w_hat = 1/c, alpha = 1/c^2; the points (2, 2), (3, -0.5) (margins 3, 2.75) change nothing."""
    X, y, c = axis_data
    if extra:
        X = np.vstack([X, [[2.0, 2.0], [3.0, -0.5]]])
        y = np.ones(4)
    sol = dy.max_margin(X, y)
    np.testing.assert_allclose(sol.w, 1 / c, rtol=1e-15)
    np.testing.assert_allclose(sol.dual[:2], 1 / c**2, rtol=1e-15)
    np.testing.assert_array_equal(sol.support, [0, 1])
    assert sol.gap == (2.75 if extra else np.inf)
    assert not sol.degenerate


def test_single_point():
    sol = dy.max_margin(np.array([[3.0, 4.0]]), np.array([-1.0]))
    np.testing.assert_allclose(sol.w, -np.array([3.0, 4.0]) / 25, rtol=1e-15)
    assert sol.dual[0] == pytest.approx(1 / 25, rel=1e-15) and sol.margin == pytest.approx(5.0, rel=1e-15)


def test_degenerate_support_vector_is_flagged():
    """z1 = (1, 0), z2 = (1, 1): w_hat = (1, 0), z2 on the margin with alpha_2 = 0."""
    sol = dy.max_margin(np.array([[1.0, 0.0], [1.0, 1.0]]), np.ones(2))
    np.testing.assert_allclose(sol.w, [1.0, 0.0], atol=1e-15)
    assert 1 in sol.degenerate_support and sol.degenerate
    with pytest.raises(dy.DynamicsError, match="non-degenerate"):
        dy.separable_asymptotics(sol, np.array([[1.0, 0.0], [1.0, 1.0]]))


def test_support_not_spanning_data_is_flagged():
    """z1 = (1, 0), z2 = (2, 5): w_hat = (1, 0), support {0} spans a line, the data the plane."""
    Z = np.array([[1.0, 0.0], [2.0, 5.0]])
    sol = dy.max_margin(Z, np.ones(2))
    np.testing.assert_array_equal(sol.support, [0])
    assert not sol.spans_data and sol.degenerate and sol.degenerate_support.size == 0
    with pytest.raises(dy.DynamicsError, match="spans_data=False"):
        dy.separable_asymptotics(sol, Z)


def _axis_constants(c, w_tilde):
    """C and G of theory section 2 from their definitions, by hand (sum loss, S = all points)."""
    w_hat, alpha = 1 / c, 1 / c**2
    norm2 = w_hat @ w_hat
    perp = w_tilde - (w_tilde @ w_hat) / norm2 * w_hat
    margins = c * w_tilde  # z_n.w_tilde
    return np.linalg.norm(perp) / np.sqrt(norm2), (alpha / norm2 @ margins - margins.min()) / np.sqrt(norm2)


def test_separable_asymptotics_axis_data(axis_data):
    X, y, c = axis_data
    asym = dy.separable_asymptotics(dy.max_margin(X, y), X, w0=np.array([0.3, -1.0]))
    np.testing.assert_allclose(asym.w_tilde, [0.0, np.log(2.0)], atol=1e-15)  # w_tilde_n = 2 log(c_n) / c_n
    C, G = _axis_constants(c, np.array([0.0, np.log(2.0)]))
    assert C == pytest.approx(0.8 * np.log(2.0), rel=1e-14)
    assert G == pytest.approx(0.247988, abs=5e-7)  # docs/implicit-bias.md section 2, reference case 1
    assert asym.direction_constant == pytest.approx(C, rel=1e-12)
    assert asym.margin_constant == pytest.approx(G, rel=1e-12)
    assert asym.kappa == pytest.approx(1.0, rel=1e-12)  # eig(Z_S^T diag(alpha) Z_S) = 1, theta = inf
    # predict() is the T -> inf limit of the closed form w_n(t) = log(c_n^2 t + e^{c_n w_n(0)}) / c_n
    log_t = 60.0
    closed = np.logaddexp(2 * np.log(c) + log_t, c * np.array([0.3, -1.0])) / c
    np.testing.assert_allclose(asym.predict(np.exp(log_t)), closed, rtol=0, atol=1e-12)


def test_separable_asymptotics_keeps_w0_off_the_data_span_and_mean_offset():
    """Axis data embedded in R^3: w_tilde_3 = w0_3 (P_perp part). Mean loss: z_n.w_tilde = -log alpha_n - log N."""
    c = np.array([1.0, 2.0])
    Z = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    sol = dy.max_margin(Z, np.ones(2))
    w0 = np.array([0.3, -1.0, 0.7])
    np.testing.assert_allclose(dy.separable_asymptotics(sol, Z, w0=w0).w_tilde, [0.0, np.log(2.0), 0.7],
                               atol=1e-15)
    mean = dy.separable_asymptotics(sol, Z, w0=w0, reduction="mean")
    np.testing.assert_allclose(Z @ mean.w_tilde, -np.log(1 / c**2) - np.log(2.0), atol=1e-14)
    assert mean.w_tilde[2] == pytest.approx(0.7, rel=1e-15)


def _l1_margin_lp(Z):
    """Independent LP: max gamma s.t. Z w >= gamma, ||w||_1 <= 1, variables (w, s, gamma), |w| <= s."""
    n, d = Z.shape
    cost = np.r_[np.zeros(2 * d), -1.0]
    A_ub = np.block([[-Z, np.zeros((n, d)), np.ones((n, 1))],
                     [np.eye(d), -np.eye(d), np.zeros((d, 1))],
                     [-np.eye(d), -np.eye(d), np.zeros((d, 1))],
                     [np.zeros((1, d)), np.ones((1, d)), np.zeros((1, 1))]])
    b_ub = np.r_[np.zeros(n + 2 * d), 1.0]
    res = scipy.optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * (2 * d + 1), method="highs")
    assert res.status == 0
    return -res.fun


def _l1_margin_brute_force_2d(Z):
    """max over the l1 unit circle of min_n z_n.w, exactly: on each edge min_n is concave piecewise linear,
    so its maximum sits at an edge end or where two margins cross."""
    vertices = [np.array(v) for v in [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]]
    best = -np.inf
    for a, b in zip(vertices, vertices[1:] + vertices[:1]):
        m0, m1 = Z @ a, Z @ b  # margins at the two ends; along the edge m(s) = m0 + s (m1 - m0)
        candidates = [0.0, 1.0]
        for i, j in itertools.combinations(range(len(Z)), 2):
            slope = (m1[i] - m0[i]) - (m1[j] - m0[j])
            if slope != 0:
                s = (m0[j] - m0[i]) / slope
                if 0 <= s <= 1:
                    candidates.append(s)
        best = max(best, max(np.min(m0 + s * (m1 - m0)) for s in candidates))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_max_margin_tiny_data(make_separable, seed):
    X, y, _ = make_separable(seed, 6, 2, margin=0.05)
    Z = y[:, None] * X
    sol = dy.l1_max_margin(X, y)
    assert np.min(Z @ sol.w) >= 1 - 1e-9
    assert sol.margin == pytest.approx(1 / np.abs(sol.w).sum(), rel=1e-15)
    assert sol.margin == pytest.approx(_l1_margin_brute_force_2d(Z), rel=1e-9)
    assert sol.margin == pytest.approx(_l1_margin_lp(Z), rel=1e-9)


def test_l1_max_margin_higher_dimension(make_separable):
    X, y, _ = make_separable(7, 40, 6, margin=0.05)
    sol = dy.l1_max_margin(X, y)
    assert sol.margin == pytest.approx(_l1_margin_lp(y[:, None] * X), rel=1e-9)
