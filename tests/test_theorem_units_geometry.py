"""Unit checks behind the geometry theorems (docs/stability-sam-geometry.md sections 7 and 9): the helpers whose
values set the theorems' predictions and rules, against independent computations, and the `outliers_` data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.models.mlp import mlp_apply
from theorems import dherin2022_geometric_complexity, sagun2017_hessian_outliers
from theorems.common import datasets


@pytest.mark.parametrize("K, flip", [(3, 0.2), (4, 0.2), (5, 0.4)])
def test_class_levels_are_the_eigenvalues_of_the_softmax_hessian(K, flip):
    """diag(p) - p p^T for p = q e_c + s (1 - e_c): eigvalsh gives 0 once, s (K - 2) times, lambda_class once."""
    q, s = 1 - flip, flip / (K - 1)
    p = np.full(K, s)
    p[1] = q
    lam = np.sort(np.linalg.eigvalsh(np.diag(p) - np.outer(p, p)))
    lam_class, s_level = sagun2017_hessian_outliers.class_levels(K, flip)
    np.testing.assert_allclose(lam, np.sort(np.r_[0.0, np.full(K - 2, s), lam_class]), atol=1e-15)
    assert s_level == pytest.approx(s)


def test_outlier_rules_on_a_two_level_spectrum():
    """4 values near 2, 8 near 0.6, then a bulk below 0.02: the rules find 12 and 4; the gap search stops at K^2."""
    rng = np.random.default_rng(0)
    lam = np.r_[2 + 0.1 * rng.random(4), 0.6 + 0.05 * rng.random(8), np.geomspace(0.015, 1e-5, 100)]
    lam = np.sort(lam)[::-1]
    assert sagun2017_hessian_outliers.outlier_counts(lam, 4) == (12, 4)
    assert sagun2017_hessian_outliers.outlier_counts(lam, 3)[0] == 4          # K = 3 looks at j <= 9 only


def test_noisy_clusters_have_balanced_label_frequencies():
    for K, per_class in ((3, 30), (4, 30), (5, 60)):
        X, y = datasets.dataset("outliers_noisy_clusters", seed=0, classes=K, per_class=per_class)
        assert X.shape == (K * per_class, K) and y.shape == (K * per_class,)
        cluster = np.argmax(X, axis=1)
        counts = np.array([[np.sum((cluster == c) & (y == k)) for k in range(K)] for c in range(K)]) / per_class
        np.testing.assert_allclose(counts, 0.8 * np.eye(K) + 0.2 / (K - 1) * (1 - np.eye(K)))
    with pytest.raises(ValueError, match="K >= 3"):
        datasets.dataset("outliers_noisy_clusters", classes=2)


def test_masked_network_equals_the_narrow_network():
    """The width-16 lanes of the masked width-64 MLP are the width-16 MLP on the active parameters."""
    rng = np.random.default_rng(1)
    W1, b1, W2, b2 = (jnp.asarray(rng.normal(size=shape)) for shape in ((4, 64), (64,), (64, 4), (4,)))
    X = jnp.asarray(rng.normal(size=(7, 4)))
    mask = (jnp.arange(64) < 16).astype(float)
    narrow = [(W1[:, :16], b1[:16]), (W2[:16], b2)]
    np.testing.assert_allclose(sagun2017_hessian_outliers.masked_logits([(W1, b1), (W2, b2)], mask, X),
                               mlp_apply(narrow, X), atol=1e-14)


def test_spectral_penalty_and_its_gradient_match_the_svd():
    """sum_l sigma_max(W_l)^2 against NumPy's SVD, and its gradient against the closed form 2 sigma u v^T."""
    rng = np.random.default_rng(0)
    shapes = ((2, 64), (64, 2), (5, 3), (1, 7))
    params = [(jnp.asarray(rng.normal(size=shape)), jnp.zeros(shape[1])) for shape in shapes]
    svds = [np.linalg.svd(np.asarray(W)) for W, _ in params]
    expected = sum(s[0] ** 2 for _, s, _ in svds)
    assert float(dherin2022_geometric_complexity.spectral_penalty(params)) == pytest.approx(expected, rel=1e-12)
    grads = jax.grad(dherin2022_geometric_complexity.spectral_penalty)(params)
    for (gW, gb), (u, s, vt) in zip(grads, svds):
        np.testing.assert_allclose(gW, 2 * s[0] * np.outer(u[:, 0], vt[0]), atol=1e-10)
        assert not np.any(gb)


def test_xor_dataset_is_seeded_and_labelled_by_the_quadrant():
    X, y = datasets.dataset("geometry_xor_2d", seed=0)
    assert X.shape == (64, 2) and np.all(np.abs(X) <= 1)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) == np.sign(X[:, 1])).astype(int))
    np.testing.assert_array_equal(X, datasets.dataset("geometry_xor_2d", seed=0)[0])
