"""Azulay et al. 2021 Theorem 6.1 (one-neuron fully connected net): fc_neuron_minimizer / certificate / q against
independent computations (closed forms, SLSQP on the paper's Q, central differences of the paper's Q)."""

import numpy as np
import pytest
import scipy.optimize

from dynamics.errors import InputError
from dynamics.predictions import (fc_neuron_certificate, fc_neuron_delta, fc_neuron_minimizer, fc_neuron_q,
                                  min_l2_interpolant)


def _instance(seed=0, n=4, d=9):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n), rng


def _init(alpha, s, sign, rng, d):
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    return np.sqrt(alpha * (1 - s) / (1 + s)) * direction, sign * np.sqrt(alpha * (1 + s) / (1 - s))


@pytest.mark.parametrize("alpha,s,sign", [(0.05, 0.0, 1.0), (0.3, 0.6, -1.0), (2.0, 0.2, 1.0)])
def test_paper_q_gradient_is_the_kkt_map(alpha, s, sign):
    """Central differences of the paper's closed-form Q equal (3/2)(beta / |a(beta)| - sign(a0) w0): the derived
    KKT map that the minimizer and certificate use (error O(h^2) ~ 1e-9 at h = 1e-5, plus rounding ~1e-11)."""
    _, _, rng = _instance()
    d = 9
    w0, a0 = _init(alpha, s, sign, rng, d)
    delta = fc_neuron_delta(w0, a0)
    assert delta == pytest.approx(4 * alpha * s / (1 - s**2), abs=1e-14)
    for _ in range(3):
        beta = rng.standard_normal(d)
        h = 1e-5
        fd = np.array([(fc_neuron_q(beta + h * e, w0, a0) - fc_neuron_q(beta - h * e, w0, a0)) / (2 * h)
                       for e in np.eye(d)])
        rho = np.linalg.norm(beta)
        a_abs = np.sqrt(delta / 2 + np.hypot(rho, delta / 2))
        assert np.abs(fd - 1.5 * (beta / a_abs - np.sign(a0) * w0)).max() < 1e-7


@pytest.mark.parametrize("alpha,s,sign", [(0.01, 0.0, 1.0), (0.01, 0.9, -1.0), (0.5, 0.5, 1.0), (3.0, 0.0, -1.0)])
def test_minimizer_matches_slsqp_on_the_paper_q(alpha, s, sign):
    X, y, rng = _instance(1)
    w0, a0 = _init(alpha, s, sign, rng, X.shape[1])
    sol = fc_neuron_minimizer(X, y, w0, a0)
    feasibility, stationarity = fc_neuron_certificate(X, y, sol.beta, w0, a0)
    assert feasibility < 1e-12 and stationarity < 1e-12
    assert np.allclose(sol.a * sol.w, sol.beta, rtol=1e-14, atol=0)
    assert sol.a**2 - sol.w @ sol.w == pytest.approx(sol.delta, abs=1e-12)  # delta conserved along the limit
    primal = scipy.optimize.minimize(lambda b: fc_neuron_q(b, w0, a0), min_l2_interpolant(X, y), method="SLSQP",
                                     constraints={"type": "eq", "fun": lambda b: X @ b - y, "jac": lambda b: X},
                                     options={"ftol": 1e-15, "maxiter": 2000})
    assert primal.success
    # SLSQP with forward-difference gradients: stationarity ~ sqrt(eps); 1e-6 relative
    assert np.linalg.norm(primal.x - sol.beta) / np.linalg.norm(sol.beta) < 1e-6
    assert fc_neuron_q(sol.beta, w0, a0) <= fc_neuron_q(primal.x, w0, a0) + 1e-12


def test_closed_forms():
    """[derived] w0 in range(X^T) (or w0 = 0 with delta > 0): argmin Q = X^+ y; w0 orthogonal to range(X^T):
    beta = sqrt(c) sign(a0) w0 + X^+ y, c = (a0^2 + sqrt(a0^4 + 4 ||X^+ y||^2)) / 2."""
    X, y, rng = _instance(2)
    beta_l2 = min_l2_interpolant(X, y)
    inside = X.T @ rng.standard_normal(X.shape[0]) * 0.01
    for w0, a0 in ((np.zeros(X.shape[1]), 0.7), (inside, -1.3)):
        assert np.allclose(fc_neuron_minimizer(X, y, w0, a0).beta, beta_l2, rtol=0, atol=1e-13)
    P = np.linalg.pinv(X) @ X
    w0 = (np.eye(X.shape[1]) - P) @ rng.standard_normal(X.shape[1]) * 0.2
    for a0 in (1.5, -0.9, np.linalg.norm(w0)):
        c = (a0**2 + np.sqrt(a0**4 + 4 * beta_l2 @ beta_l2)) / 2
        expected = np.sqrt(c) * np.sign(a0) * w0 + beta_l2
        assert np.allclose(fc_neuron_minimizer(X, y, w0, a0).beta, expected, rtol=0, atol=1e-13)


def test_sign_symmetry_and_warm_start():
    """(w, a) -> (-w, -a) leaves beta = a w and the flow's predictor unchanged."""
    X, y, rng = _instance(3)
    w0, a0 = _init(0.2, 0.3, 1.0, rng, X.shape[1])
    plus, minus = fc_neuron_minimizer(X, y, w0, a0), fc_neuron_minimizer(X, y, -w0, -a0)
    assert np.allclose(plus.beta, minus.beta, rtol=0, atol=1e-14)
    warm = fc_neuron_minimizer(X, y, w0, a0, nu0=plus.nu)
    assert warm.iterations <= 1 and np.allclose(warm.beta, plus.beta, rtol=0, atol=1e-14)


def test_bad_input():
    X, y, rng = _instance(4)
    d = X.shape[1]
    w0 = rng.standard_normal(d)
    with pytest.raises(InputError, match="delta"):
        fc_neuron_minimizer(X, y, w0, 0.5 * np.linalg.norm(w0))  # delta < 0: outside Theorem 6.1
    with pytest.raises(InputError, match="a0 = 0"):
        fc_neuron_minimizer(X, y, np.zeros(d), 0.0)
    with pytest.raises(InputError, match="shape"):
        fc_neuron_minimizer(X, y, np.ones(d + 1), 5.0)
    with pytest.raises(InputError):
        fc_neuron_minimizer(X, y, w0, np.array([5.0, 1.0]))
    with pytest.raises(InputError, match="real"):
        fc_neuron_minimizer(X, y, w0 + 0j, 5.0)
    with pytest.raises(InputError, match="NaN"):
        fc_neuron_minimizer(X, y, np.full(d, np.nan), 5.0)
    with pytest.raises(InputError, match="no solution"):
        fc_neuron_minimizer(np.ones((2, d)), np.array([1.0, 2.0]), w0, 5.0)
    with pytest.raises(InputError, match="linearly dependent"):
        fc_neuron_minimizer(np.vstack([X, X[:1]]), np.r_[y, y[:1]], w0, 5.0)
    with pytest.raises(InputError, match="nu0"):
        fc_neuron_minimizer(X, y, w0, 5.0, nu0=np.zeros(X.shape[0] + 1))
    with pytest.raises(InputError, match="shape"):
        fc_neuron_certificate(X, y, np.ones(d - 1), w0, 5.0)
    with pytest.raises(InputError, match="shape"):
        fc_neuron_q(np.ones(d - 1), w0, 5.0)
