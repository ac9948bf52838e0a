"""Unit checks moved out of the continuous-model theorems (docs/flows.md sections 1-7): identities of the code that
the theorems use but do not predict (so they are not claims), the helpers behind the theorems' tolerances, and the
`flows_` datasets."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorems.common import claims

import dynamics as dy
from dynamics.models.toys import quartic_product, sine_valley
from theorems import barrett2021_igr, dherin2023_continual, li2017_sme, rosca2021_games, rosca2023_principal_flow
from theorems import smith2021_reshuffling
from theorems.common import datasets



def _dense(loss, theta):
    return np.asarray(jax.grad(loss)(theta)), np.asarray(jax.hessian(loss)(theta))


@pytest.mark.parametrize("phase", [1, 3])
def test_continual_modified_flow_field_against_dense_hessians(phase):
    """ContinualModifiedFlow(L1, L2, h, n).field = -(g1 + g2)/2 - (h/4)(H1 g1 + H2 g2) + (n h/4)(H2 g1 - H1 g2),
    with dense Hessians (jax.hessian, not the field's jvps); reversing the task order flips exactly the bracket
    term (odd part (n h/2)[g1, g2]), and the even part is -grad of the averaged IGR loss. These were claims C5-C7 of
    dherin2023_continual: identities of the field, not predictions about GD."""
    h = 0.02
    points = datasets.dataset("flows_normal_points", seed=0, shape=(8, 2), centre=(1.5, 0.3))
    forward = jax.jit(lambda th: dy.ContinualModifiedFlow(sine_valley, quartic_product, h, phase).field(0.0, th))
    backward = jax.jit(lambda th: dy.ContinualModifiedFlow(quartic_product, sine_valley, h, phase).field(0.0, th))
    for theta in points:
        th = jnp.asarray(theta)
        (g1, H1), (g2, H2) = _dense(sine_valley, th), _dense(quartic_product, th)
        bracket = H2 @ g1 - H1 @ g2
        even = -(g1 + g2) / 2 - h / 4 * (H1 @ g1 + H2 @ g2)
        f12, f21 = np.asarray(forward(th)), np.asarray(backward(th))
        np.testing.assert_allclose(f12, even + phase * h / 4 * bracket, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(f12 - f21, phase * h / 2 * bracket, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose((f12 + f21) / 2, even, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ladder", [np.array([0.04, 0.02, 0.01, 0.005]), 0.04 / 2.0 ** np.arange(6)])
def test_slope_why_predicts_the_shift_of_a_linear_correction(ladder):
    """The slope tolerances' reason: e = h^p (1 + c h) fitted in log-log over the ladder has slope p + s c h_max,
    s the least-squares slope of h/h_max on log h (0.41 for 4 points over a factor 8), to O((c h)^2)."""
    for c in (0.5, -1.0, 2.0):
        fitted = np.polyfit(np.log(ladder), np.log(ladder**3 * (1.0 + c * ladder)), 1)[0]
        text = claims.slope_why(3, ladder, c * ladder.max(), "c h")
        predicted = float(text.split("by ~")[1].split(";")[0])
        assert abs((fitted - 3.0) - predicted) <= 0.01 + 0.2 * abs(predicted)


def test_linear_recursion_moments_against_iteration():
    """li2017's closed-form moments of x' = c x + xi vs iterating mean' = c mean, var' = c^2 var + v."""
    for eta in li2017_sme.ETAS:
        c, v = 1.0 - eta, eta**2
        mean, var = 1.0, 0.0
        for k in range(1, 81):
            mean, var = c * mean, c * c * var + v
            m, s = li2017_sme.linear_recursion_moments(c, v, k, 1.0)
            assert abs(m - mean) < 1e-14 and abs(s - var) < 1e-14 * max(1.0, var)


def test_coupled_sampler_coefficients_match_the_ou_law():
    """The exact-SME sampler's I = c xi + d zeta: Var I = (1 - e^{-2 a eta})/(2a) and Cov(I, dW) = (1 - e^{-a eta})/a,
    checked against a fine Riemann sum of int_0^eta e^{-a(eta - u)} dW_u."""
    for eta, a in ((0.1, 1.0), (0.0125, 1.0 + 0.0125 / 2)):
        u = (np.arange(200_000) + 0.5) * eta / 200_000
        kernel = np.exp(-a * (eta - u))
        du = eta / 200_000
        var_i, cov = np.sum(kernel**2) * du, np.sum(kernel) * du
        c = -np.expm1(-a * eta) / (a * np.sqrt(eta))
        assert abs(c * np.sqrt(eta) - cov) < 1e-9 * cov
        assert abs(-np.expm1(-2 * a * eta) / (2 * a) - var_i) < 1e-9 * var_i


def test_partitions_count():
    for n, b in smith2021_reshuffling.PARTITION_CASES:
        parts = smith2021_reshuffling.partitions(n, b)
        m = n // b
        assert len(parts) == math.factorial(n) // (math.factorial(b) ** m * math.factorial(m))
        assert all(sorted(itertools.chain.from_iterable(p)) == list(range(n)) for p in parts)


def test_flows_datasets():
    """Reproducible from the seed alone; the documented structure."""
    H, b, theta0 = datasets.dataset("flows_quadratic_spectrum", seed=11, spectrum=(3.0, -1.0, 0.5))
    np.testing.assert_allclose(np.linalg.eigvalsh(H), [-1.0, 0.5, 3.0], atol=1e-13)
    A, b2, theta = datasets.dataset("flows_indefinite_quadratic", seed=3, n=6)
    np.testing.assert_array_equal(A, A.T)
    assert np.linalg.eigvalsh(A).min() < 0 < np.linalg.eigvalsh(A).max()
    X6, y6 = datasets.dataset("flows_reshuffling_regression", seed=0, n=6)
    X8, y8 = datasets.dataset("flows_reshuffling_regression", seed=0, n=8)
    np.testing.assert_array_equal(X8[:6], X6)
    np.testing.assert_array_equal(y8[:6], y6)
    again = datasets.dataset("flows_quadratic_spectrum", seed=11, spectrum=(3.0, -1.0, 0.5))
    for first, second in zip((H, b, theta0), again):
        np.testing.assert_array_equal(first, second)
