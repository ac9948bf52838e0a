"""`dynamics.predictions.self_distillation` (docs/stability-sam-geometry.md section 8): closed forms on 2x2 problems,
agreement with an independent solve of each round, and clear errors on bad input."""

import numpy as np
import pytest

import dynamics as dyn
from dynamics.predictions import self_distillation
from theorems.common import datasets
from theorems.mobahi2020_self_distillation import bisection_round


def _rotation(angle):
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_two_by_two_single_eigendirection_closed_form():
    # y along one eigenvector (d = 2): c a / (c + d) = s = sqrt(N eps) gives c = d s / (a - s) and y_{t+1} = y_t - s
    # along that eigenvector, so the fit collapses at the first t with a - t s <= s.
    R = _rotation(0.3)
    K = R @ np.diag([2.0, 0.5]) @ R.T
    a, eps = 3.0, 0.125                                  # s = sqrt(2 * 0.125) = 0.5
    s = np.sqrt(2 * eps)
    out = self_distillation(K, a * R[:, 0], eps)
    norms = a - s * np.arange(out.collapse_round + 1)
    expected_c = 2.0 * s / (norms[:-1] - s)
    assert out.collapse_round == 5                       # 3 - 5 * 0.5 = 0.5 <= s
    np.testing.assert_allclose(out.multipliers[:-1], expected_c, rtol=1e-13)
    assert np.isinf(out.multipliers[-1])
    np.testing.assert_allclose(out.targets[:-1], norms[:, None] * R[:, 0], atol=1e-14)
    np.testing.assert_array_equal(out.predictions[-1], 0.0)
    np.testing.assert_allclose(np.abs(out.coefficients[:-1, 1]), norms, rtol=1e-13)   # eigh sorts d = 0.5 first


def test_two_by_two_general_targets_meet_the_constraint_and_shrink_the_small_direction():
    K = np.array([[2.0, 0.5], [0.5, 1.0]])
    y = np.array([1.0, -2.0])
    eps = 0.1
    out = self_distillation(K, y, eps, rounds=3)
    for t in range(3):
        if np.isfinite(out.multipliers[t]):
            assert np.mean((out.predictions[t] - out.targets[t]) ** 2) == pytest.approx(eps, rel=1e-12)
    z = out.coefficients
    live = np.isfinite(out.multipliers)
    ratio = np.abs(z[: live.sum() + 1, 0] / z[: live.sum() + 1, 1])              # small / large eigenvalue
    assert np.all(np.diff(ratio) < 0)
    np.testing.assert_allclose(K @ out.dual_coefficients.T, out.predictions.T, atol=1e-13)


def test_rounds_past_collapse_are_zero():
    out = self_distillation(np.eye(2), np.array([1.0, 0.0]), 0.2, rounds=6)    # s = sqrt(0.4): collapses at t = 1
    assert out.collapse_round == 1
    assert out.multipliers.shape == (6,) and np.all(np.isinf(out.multipliers[1:]))
    np.testing.assert_array_equal(out.predictions[1:], 0.0)
    np.testing.assert_array_equal(out.dual_coefficients[1:], 0.0)
    assert self_distillation(np.eye(2), np.array([0.1, 0.0]), 0.2).collapse_round == 0


def test_agrees_with_an_independent_solve_of_each_round():
    _, y, K = datasets.dataset("distillation_rbf_regression", seed=1)
    eps = 0.01
    out = self_distillation(K, y, eps)
    assert out.collapse_round is not None
    for t in range(out.collapse_round):
        c, pred, _ = bisection_round(K, out.targets[t], eps)          # the same round's problem, original basis
        assert abs(c - out.multipliers[t]) <= 1e-10 * c
        assert np.linalg.norm(pred - out.predictions[t]) <= 1e-10 * np.linalg.norm(y)
    c, _, _ = bisection_round(K, out.targets[out.collapse_round], eps)
    assert np.isinf(c)


def test_null_space_of_a_semidefinite_gram_matrix():
    K = np.array([[1.0, 1.0], [1.0, 1.0]])                # rank 1: null direction (1, -1) / sqrt(2)
    out = self_distillation(K, np.array([2.0, 1.9]), 0.05)
    assert np.all(np.isfinite(out.multipliers[: out.collapse_round]))
    np.testing.assert_allclose(out.predictions[:, 0], out.predictions[:, 1], atol=1e-14)   # fits live in range(K)
    with pytest.raises(dyn.InputError, match="null space"):
        self_distillation(K, np.array([1.0, -1.0]), 0.05)


@pytest.mark.parametrize("K, y, eps, kwargs, match", [
    (np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2), 0.1, {}, r"positive semidefinite.*-1"),
    (np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones(2), 0.1, {}, "symmetric"),
    (np.ones((2, 3)), np.ones(2), 0.1, {}, "square"),
    (np.eye(3), np.ones(2), 0.1, {}, r"shape \(3,\)"),
    (np.eye(2), np.ones(2), 0.0, {}, "epsilon must be > 0"),
    (np.eye(2), np.ones(2), -1.0, {}, "epsilon must be > 0"),
    (np.eye(2), np.array([1.0, np.nan]), 0.1, {}, "NaN"),
    (np.eye(2), np.ones(2), 0.1, {"rounds": 0}, "rounds must be a positive integer"),
])
def test_bad_input(K, y, eps, kwargs, match):
    with pytest.raises(dyn.InputError, match=match):
        self_distillation(K, y, eps, **kwargs)


def test_no_collapse_within_max_rounds():
    with pytest.raises(dyn.SolverBudgetError, match="max_rounds"):
        self_distillation(np.diag([1.0, 1e-3]), np.array([1.0, 1.0]), 1e-4, max_rounds=3)
