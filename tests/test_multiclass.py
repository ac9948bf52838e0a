"""Multi-class max margin (Kesler lift) and the softmax cross-entropy model
(docs/stability-sam-geometry.md section 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.errors import InputError, NonSeparableError
from dynamics.models.multiclass import multiclass_data
from dynamics.predictions import kesler_lift
from theorems.soudry2018_multiclass import slsqp_max_margin


def _separable(seed, K=3, d=3, per_class=5):
    """Random data labelled by a random W: y_n = argmax_k w_k.x_n (separable through 0 by construction)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(K * per_class, d))
    y = np.argmax(X @ rng.normal(size=(K, d)).T, axis=1)
    return X, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kesler_solution_matches_slsqp(seed):
    X, y = _separable(seed)
    if np.bincount(y, minlength=3).min() == 0:
        pytest.skip("a class is empty for this seed")
    sol = dyn.multiclass_max_margin(X, y)
    W_qp, _ = slsqp_max_margin(X, y, 3)  # SLSQP may end on status 8 (line search) at its ftol: judged by W
    assert np.linalg.norm(W_qp - sol.W) <= 1e-6 * np.linalg.norm(sol.W)
    # KKT: W = sum alpha (e_y - e_k) x^T, alpha >= 0, sum alpha = ||W||^2, margins >= 1, = 1 on the support
    Z, pairs = kesler_lift(X, y)
    alpha = sol.dual[pairs[:, 0], pairs[:, 1]]
    assert alpha.min() >= 0
    np.testing.assert_allclose(Z.T @ alpha, sol.W.reshape(-1), atol=1e-12)
    np.testing.assert_allclose(alpha.sum(), np.sum(sol.W**2), rtol=1e-12)
    F = X @ sol.W.T
    q = F[np.arange(len(y)), y][:, None] - F
    q[np.arange(len(y)), y] = np.inf
    assert q.min() >= 1 - 1e-12
    np.testing.assert_allclose(q[sol.support[:, 0], sol.support[:, 1]], 1.0, atol=1e-12)
    np.testing.assert_allclose(sol.W.sum(axis=0), 0.0, atol=1e-14)
    assert sol.margin == pytest.approx(1 / np.linalg.norm(sol.W), rel=1e-14)


def test_three_point_closed_form():
    """x_k = e_k in R^3, y = (0, 1, 2): by symmetry W = a (I - J/3), with margin (w_k - w_j).e_k = a = 1 for all j != k,
    so W_hat = I - 11^T/3, ||W_hat||^2 = 2."""
    sol = dyn.multiclass_max_margin(np.eye(3), [0, 1, 2])
    np.testing.assert_allclose(sol.W, np.eye(3) - 1.0 / 3.0, atol=1e-14)
    assert len(sol.support) == 6
    assert sol.dual.sum() == pytest.approx(2.0, rel=1e-14)


def test_non_separable_certificate_verifies():
    """Class 0 at x and at -x, class 1 at x/2: sum of (e_0 - e_1)(x)x and (e_0 - e_1)(x)(-x) is zero."""
    X = np.array([[1.0, 0.5], [-1.0, -0.5], [0.5, 0.2]])
    y = np.array([0, 0, 1])
    with pytest.raises(NonSeparableError, match="not linearly separable") as info:
        dyn.multiclass_max_margin(X, y)
    a = info.value.certificate
    Z, _ = kesler_lift(X, y)
    assert a.min() >= 0 and a.sum() == pytest.approx(1.0)
    assert np.all(np.abs(Z.T @ a) <= 1e-9 * (np.abs(Z).T @ a) + 1e-300)


@pytest.mark.parametrize("labels, match", [
    ([0, 2, 2], "classes \\[1\\] have no examples"),
    ([0, 1, -1], "integers 0..K-1"),
    ([0, 1, 1.5], "integers 0..K-1"),
    ([0, 0, 0], "at least two classes"),
    ([True, False, True], "integers 0..K-1"),
    ([0, 1], "3 rows but y has 2"),
])
def test_bad_labels(labels, match):
    X = np.eye(3)
    for fn in (dyn.multiclass_max_margin, dyn.softmax_classifier):
        with pytest.raises(InputError, match=match):
            fn(X, np.array(labels))


def test_float_integral_labels_accepted():
    assert multiclass_data(np.eye(3), np.array([0.0, 1.0, 2.0]))[2] == 3


def _reference_loss(W, X, y):
    F = X @ W.T
    return np.sum(np.log(np.exp(F - F.max(1, keepdims=True)).sum(1)) + F.max(1) - F[np.arange(len(y)), y])


def test_softmax_loss_gradient_and_log_scale():
    X, y = _separable(3, per_class=4)
    loss = dyn.softmax_classifier(X, y)
    W = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)))
    assert float(loss(W)) == pytest.approx(_reference_loss(np.asarray(W), X, y), rel=1e-13)
    # -grad L by autodiff of the plain formula vs the loss's descent direction (weights p - onehot)
    P = np.asarray(jax.nn.softmax(jnp.asarray(X) @ W.T, axis=1))
    grad = (P - np.eye(3)[y]).T @ X
    np.testing.assert_allclose(loss.descent_direction(W), -grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss.descent_direction(W, jnp.asarray(2.0)), -np.exp(2.0) * grad, rtol=1e-12, atol=1e-13)
    assert float(loss.log_value(W)) == pytest.approx(np.log(_reference_loss(np.asarray(W), X, y)), rel=1e-13)
    mean = dyn.softmax_classifier(X, y, reduction="mean")
    assert float(mean(W)) == pytest.approx(float(loss(W)) / len(y), rel=1e-13)
    # far along the max-margin direction L underflows but log L and the log-scaled direction stay finite
    big = 800.0 * jnp.asarray(dyn.multiclass_max_margin(X, y).W)
    assert np.isfinite(float(loss.log_value(big))) and float(loss.log_value(big)) < -700
    assert np.all(np.isfinite(np.asarray(loss.descent_direction(big, jnp.asarray(800.0)))))


def test_gd_and_gf_conserve_class_sum():
    """Each gradient's class rows sum to zero, so sum_k w_k(t) = sum_k w_k(0) (by construction: a unit test)."""
    X, y = _separable(4, per_class=4)
    loss = dyn.softmax_classifier(X, y)
    W0 = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3)))
    gd = dyn.simulate(dyn.GradientDescent(loss, 0.05), W0, np.arange(0, 2001, 500) * 0.05)
    np.testing.assert_allclose(np.asarray(gd.ys).sum(axis=1), np.broadcast_to(W0.sum(0), (5, 3)), atol=1e-12)
    gf = dyn.simulate(dyn.GradientFlow(loss), W0, np.array([0.0, 10.0, 100.0]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gf.ys).sum(axis=1), np.broadcast_to(W0.sum(0), (3, 3)), atol=1e-10)


def test_sgd_runs_on_the_softmax_loss():
    X, y = _separable(5, per_class=4)
    loss = dyn.softmax_classifier(X, y)
    traj = dyn.simulate(dyn.SGD(loss, 0.05, 3, jax.random.PRNGKey(0)), jnp.zeros((3, 3)), np.array([0.0, 5.0]))
    assert float(loss(traj.ys[-1])) < float(loss(jnp.zeros((3, 3))))
