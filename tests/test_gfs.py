"""GFS sharpness of general models (gradient flow to convergence) against closed forms; digits MLP losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.predictions.gfs import gfs_limit, gfs_point_scalar, gfs_sharpness, gfs_sharpness_batch, gfs_sharpness_scalar
from dynamics.models.mlp import digits_dataset, mlp_init, mlp_loss, scalar_network_loss

LOSS = scalar_network_loss(1.0)


@pytest.mark.parametrize("w0", [(2.5, 0.1), (2.0, -0.5), (2.0, 0.5, 0.3), (2.0, 0.5, -0.3), (1.5, 1.2, 0.6, 0.3),
                                (0.3, 0.4, -0.5, 2.0)])
def test_gfs_sharpness_matches_scalar_closed_form(w0):
    """The diffrax solve against the conserved-quantity root find, including sign(prod w) != sign(y): the
    smallest |w_i| crosses zero and GF still ends at a minimizer (same c, that coordinate's sign flipped)."""
    limit = gfs_limit(LOSS, jnp.asarray(w0), interpolating=True)
    np.testing.assert_allclose(np.asarray(limit.params), gfs_point_scalar(w0), rtol=1e-9, atol=1e-12)
    assert gfs_sharpness(LOSS, jnp.asarray(w0)) == pytest.approx(gfs_sharpness_scalar(w0), rel=1e-8)
    assert limit.grad_norm <= 1e-10 and limit.loss < 1e-20


def test_depth_two_closed_form_with_sign_crossing():
    """D = 2: phi = sqrt((w1^2 - w2^2)^2 + 4 y^2), also when w starts with the wrong sign of the product."""
    for w, y in [((2.0, -0.5), 1.0), ((-3.0, 0.4), 2.0), ((0.0, 1.5), 1.0)]:
        assert gfs_sharpness_scalar(w, y) == pytest.approx(np.sqrt((w[0] ** 2 - w[1] ** 2) ** 2 + 4 * y**2), rel=1e-13)
        assert np.sign(np.prod(gfs_point_scalar(w, y))) == np.sign(y)


def test_batch_over_checkpoints_matches_closed_form():
    rows = np.array([[2.0, 0.5, 0.3], [1.0, 1.0, 1.5], [0.8, -1.3, 2.0]])
    path = gfs_sharpness_batch(LOSS, jnp.asarray(rows))
    np.testing.assert_allclose(path.phi, [gfs_sharpness_scalar(r) for r in rows], rtol=1e-8)
    assert path.phi.shape == path.loss.shape == path.grad_norm.shape == path.time.shape == path.steps.shape == (3,)
    with pytest.raises(dy.InputError, match="leading axis"):
        gfs_sharpness_batch(lambda p: p["a"] @ p["b"], {"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))})


def test_flow_ending_at_a_saddle_is_reported():
    """w = (1, 0, 0): grad L = 0 (two zero factors), L = 1/2. The closed form refuses; the general routine returns the
    sharpness of that stationary point (Hessian -(e2 e3^T + e3 e2^T): top eigenvalue 1) or, for an interpolating
    model, refuses."""
    w = jnp.array([1.0, 0.0, 0.0])
    with pytest.raises(dy.InputError, match="ends at pi = 0"):
        gfs_point_scalar(w)
    with pytest.raises(dy.InputError, match="ends at pi = 0"):
        gfs_point_scalar([1.0, -1.0])
    assert gfs_sharpness(LOSS, w) == pytest.approx(1.0, abs=1e-14)
    with pytest.raises(dy.InputError, match="not at a global minimizer"):
        gfs_sharpness(LOSS, w, interpolating=True)


def test_quadratic_limit_is_the_projection_onto_the_minimizers():
    """L(w) = |A w - b|^2 / (2 m), A wide (3 x 6): GF from w0 ends at w0 - A^+ (A w0 - b) (it moves only in the row
    space of A), and the sharpness is lambda_max(A^T A) / m. Parameters as a pytree (dict of arrays)."""
    rng = np.random.default_rng(0)
    A, b, w0 = rng.normal(size=(3, 6)), rng.normal(size=3), rng.normal(size=6)
    unflat = lambda w: {"u": w[:2], "v": w[2:].reshape(2, 2)}
    flat = lambda p: jnp.concatenate([p["u"], p["v"].ravel()])
    loss = lambda p: 0.5 * jnp.sum((jnp.asarray(A) @ flat(p) - b) ** 2) / 3
    limit = gfs_limit(loss, unflat(jnp.asarray(w0)), interpolating=True)
    np.testing.assert_allclose(np.asarray(flat(limit.params)), w0 - np.linalg.pinv(A) @ (A @ w0 - b), atol=1e-10)
    assert gfs_sharpness(loss, unflat(jnp.asarray(w0))) == pytest.approx(np.linalg.eigvalsh(A.T @ A)[-1] / 3, rel=1e-12)


def test_budget_exhaustion_reports_the_gradient_norm():
    w0 = jnp.array([2.0, 0.5, 0.3])
    with pytest.raises(dy.SolverBudgetError, match=r"did not converge: \|\|grad L\|\| = .* after GF time 0.5"):
        gfs_limit(LOSS, w0, max_time=0.5)
    with pytest.raises(dy.SolverBudgetError, match="used all 5 steps.*Kvaerno5"):
        gfs_limit(LOSS, w0, max_steps=5)
    with pytest.raises(dy.InputError, match="gtol"):
        gfs_limit(LOSS, w0, gtol=0.0)
    with pytest.raises(dy.InputError, match="not finite"):
        gfs_limit(LOSS, jnp.array([jnp.inf, 1.0, 1.0]))


def test_digits_dataset_shapes_and_labels():
    X, Y = digits_dataset(60)
    assert X.shape == (60, 64) and Y.shape == (60, 10)
    assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
    X3, y3 = digits_dataset(40, classes=3, one_hot=False)
    assert X3.shape == (40, 64) and set(np.unique(y3)) <= {0, 1, 2}
    np.testing.assert_array_equal(np.argmax(digits_dataset(40, classes=3)[1], axis=1), y3)


@pytest.mark.parametrize("activation", ["tanh", "swish", "relu"])
def test_mlp_losses_on_digits(activation):
    """Finite losses and gradients; with a zero output layer the logits vanish, so cross-entropy = log(classes) and
    MSE = mean |y|^2 = 1 for one-hot targets (independent of the hidden layers)."""
    X, Y = digits_dataset(50)
    params = mlp_init(jax.random.PRNGKey(1), (64, 16, 10))
    zero_out = params[:-1] + [(jnp.zeros_like(params[-1][0]), jnp.zeros_like(params[-1][1]))]
    for kind, target, zero_value in (("mse", Y, 1.0), ("cross_entropy", np.argmax(Y, axis=1), np.log(10))):
        loss = mlp_loss(X, target, activation, kind)
        value, grads = jax.value_and_grad(loss)(params)
        assert np.isfinite(float(value))
        assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
        assert float(loss(zero_out)) == pytest.approx(zero_value, rel=1e-12)
