"""BEA modified flows and modified losses against closed forms and dense derivatives (docs/flows.md section 1-3, 5, 6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def quadratic():
    """E = th^T A th / 2 - b^T th with A symmetric, eigenvalues in [-1, 2]; a point th."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A = Q @ np.diag([2.0, 1.3, 0.4, -0.2, -1.0]) @ Q.T
    b, th = rng.normal(size=5), rng.normal(size=5)
    return A, b, th


def _field(flow, theta):
    """flow.field(0, theta), compiled (nested jvps are slow op by op)."""
    return jax.jit(lambda th: flow.field(0.0, th))(theta)


def _rosenbrock_like(th):
    """A non-quadratic loss on R^3 with non-zero third derivatives in every direction."""
    return (th[0] * th[1] - 1.0) ** 2 / 2 + jnp.sin(th[2]) * th[0] ** 2 + 0.1 * jnp.sum(th**4)


def test_bea_on_quadratic_is_the_power_series(quadratic):
    """f = -g, g = A th - b:  f_{p+1} = -(1/(p+1)) A^p g exactly (GNI IX.1 on linear fields)."""
    A, b, th = quadratic
    field = lambda x: -(jnp.asarray(A) @ x - jnp.asarray(b))
    values = jax.jit(lambda x: [f(x) for f in dy.bea_coefficients(field, 5)])(jnp.asarray(th))
    g = A @ th - b
    for p, value in enumerate(values):
        expected = -np.linalg.matrix_power(A, p) @ g / (p + 1)
        assert _rel(value, expected) < 1e-12, p


def test_bea_third_term_hand_formula():
    """f_3 = f''(f, f)/12 + f'f'f/3 with f' and f'' from dense jacfwd (GNI IX.1, eq. (1.5))."""
    f = lambda th: -jax.grad(_rosenbrock_like)(th)
    th = jnp.array([1.5, 0.3, -0.7])
    J, T, v = jax.jit(lambda x: (jax.jacfwd(f)(x), jax.jacfwd(jax.jacfwd(f))(x), f(x)))(th)
    # T[i, j, k] = d^2 f_i / d th_j d th_k
    expected = np.einsum("ijk,j,k->i", T, v, v) / 12 + J @ (J @ v) / 3
    f1, f2, f3 = jax.jit(lambda x: [c(x) for c in dy.bea_coefficients(f, 3)])(th)
    assert _rel(f1, v) < 1e-15
    assert _rel(f2, -J @ v / 2) < 1e-12
    assert _rel(f3, expected) < 1e-12


def test_modified_flow_order2_is_igr_gradient_flow():
    h, th = 0.07, jnp.array([1.5, 0.3, -0.7])
    field = _field(dy.ModifiedFlow(_rosenbrock_like, h, 2), th)
    expected = jax.jit(jax.grad(dy.igr_loss(_rosenbrock_like, h)))(th)
    expected = -expected
    assert _rel(field, expected) < 1e-12


def test_modified_flow_on_pytree_params():
    """A dict of parameters gives the same field as the flat vector it packs."""
    h = 0.05
    flat = jnp.array([1.5, 0.3, -0.7])
    tree = {"a": flat[:2], "b": flat[2:]}
    tree_loss = lambda p: _rosenbrock_like(jnp.concatenate([p["a"], p["b"]]))
    out = _field(dy.ModifiedFlow(tree_loss, h, 3), tree)
    ref = _field(dy.ModifiedFlow(_rosenbrock_like, h, 3), flat)
    assert set(out) == {"a", "b"} and out["a"].shape == (2,) and out["b"].shape == (1,)
    assert _rel(jnp.concatenate([out["a"], out["b"]]), ref) < 1e-12


@pytest.mark.parametrize("order", [0, 6, 2.5])
def test_modified_flow_bad_order(order):
    with pytest.raises(dy.InputError, match=r"\[1, 5\]"):
        dy.ModifiedFlow(_rosenbrock_like, 0.1, order)
    with pytest.raises(dy.InputError, match=r"\[1, 5\]"):
        dy.bea_coefficients(lambda th: -th, order)


@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_modified_flow_bad_lr(lr):
    with pytest.raises(dy.StepSizeError):
        dy.ModifiedFlow(_rosenbrock_like, lr, 2)


def test_modified_flow_non_scalar_loss():
    flow = dy.ModifiedFlow(lambda th: th**2, 0.1, 2)
    with pytest.raises(dy.InputError, match="must return a scalar"):
        flow.field(0.0, jnp.ones(3))


# ----------------------------------------------------------------------------- modified losses


@pytest.fixture(scope="module")
def regression():
    """Linear regression C_i = (x_i.th - y_i)^2 / 2, N = 6, d = 3, and numpy per-example gradients."""
    rng = np.random.default_rng(1)
    X, y, th = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=3)
    example = lambda w, i: (jnp.asarray(X)[i] @ w - jnp.asarray(y)[i]) ** 2 / 2
    grads = (X @ th - y)[:, None] * X  # (N, d)
    return X, y, th, example, grads


def test_reshuffling_one_batch_is_igr(regression):
    X, y, th, example, _ = regression
    C = lambda w: jnp.mean((jnp.asarray(X) @ w - jnp.asarray(y)) ** 2) / 2
    eps = 0.03
    g = X.T @ (X @ th - y) / len(y)
    hand = np.mean((X @ th - y) ** 2) / 2 + eps / 4 * g @ g
    assert abs(jax.jit(dy.reshuffling_modified_loss([C], eps))(th) - hand) < 1e-13 * abs(hand)
    assert abs(jax.jit(dy.igr_loss(C, eps))(th) - hand) < 1e-13 * abs(hand)


def test_reshuffling_singleton_batches(regression):
    """m = N single-example batches: C + eps/(4N) sum_i ||grad C_i||^2."""
    X, y, th, example, grads = regression
    eps = 0.03
    losses = [lambda w, i=i: example(w, i) for i in range(len(y))]
    hand = np.mean((X @ th - y) ** 2) / 2 + eps / (4 * len(y)) * np.sum(grads**2)
    assert abs(jax.jit(dy.reshuffling_modified_loss(losses, eps))(th) - hand) < 1e-13 * abs(hand)


def test_gradient_noise_against_numpy(regression):
    X, y, th, example, grads = regression
    mean, gamma = jax.jit(dy.gradient_noise(example, len(y)))(jnp.asarray(th))
    assert _rel(mean, grads.mean(axis=0)) < 1e-13
    hand = np.mean(np.sum((grads - grads.mean(axis=0)) ** 2, axis=1))
    assert abs(gamma - hand) < 1e-13 * hand


@pytest.mark.parametrize("batch_size", [1, 2, 6])
def test_partition_averaged_modified_loss(regression, batch_size):
    """C + (eps/4)||grad C||^2 + (eps/4)(N-B)/(B(N-1)) Gamma: factor 0 at B = N (IGR of C), 1 at B = 1."""
    X, y, th, example, grads = regression
    N, eps = len(y), 0.03
    C = np.mean((X @ th - y) ** 2) / 2
    g = grads.mean(axis=0)
    gamma = np.mean(np.sum((grads - g) ** 2, axis=1))
    factor = (N - batch_size) / (batch_size * (N - 1))
    hand = C + eps / 4 * (g @ g + factor * gamma)
    value = jax.jit(dy.partition_averaged_modified_loss(example, N, batch_size, eps))(jnp.asarray(th))
    assert abs(value - hand) < 1e-13 * abs(hand)
    if batch_size == N:
        mean_loss = lambda w: jnp.mean((jnp.asarray(X) @ w - jnp.asarray(y)) ** 2) / 2
        assert abs(value - jax.jit(dy.igr_loss(mean_loss, eps))(th)) < 1e-13 * abs(hand)
    if batch_size == 1:  # Gamma + ||g||^2 = (1/N) sum_i ||g_i||^2
        assert abs(value - (C + eps / (4 * N) * np.sum(grads**2))) < 1e-13 * abs(hand)


def test_partition_averaged_bad_batch(regression):
    _, _, _, example, _ = regression
    with pytest.raises(dy.InputError, match="divide"):
        dy.partition_averaged_modified_loss(example, 6, 4, 0.1)


def test_multitask_is_igr_of_sum():
    L1 = lambda th: jnp.sum(jnp.sin(th) * th[::-1])
    L2 = lambda th: 0.5 * jnp.sum((th - 1.0) ** 2) + th[0] ** 3
    h = 0.1
    joint = jax.jit(dy.multitask_modified_loss([L1, L2], h))
    igr = jax.jit(dy.igr_loss(lambda w: L1(w) + L2(w), h))
    for th in (jnp.array([0.3, -1.2, 0.8]), jnp.array([2.0, 0.1, -0.5])):
        assert abs(joint(th) - igr(th)) < 1e-13 * abs(joint(th))


def test_corridor_learning_rate_polyak():
    rng = np.random.default_rng(2)
    A, th = rng.normal(size=(4, 3)), rng.normal(size=3)
    E = lambda w: 0.5 * jnp.sum((jnp.asarray(A) @ w) ** 2) + 0.3
    g = A.T @ (A @ th)
    hand = (0.5 * np.sum((A @ th) ** 2) + 0.3) / (g @ g)
    assert abs(dy.corridor_learning_rate(E, jnp.asarray(th)) - hand) < 1e-13 * hand


def test_corridor_residual_hand_formula():
    """E = x + y^2/2: g = (1, y), H g = (0, y), so ||Hg||/||g||^2 = |y|/(1 + y^2): zero on the corridor y = 0."""
    E = lambda th: th[0] + th[1] ** 2 / 2
    residual = jax.jit(lambda th: dy.corridor_residual(E, th))
    assert residual(jnp.array([3.0, 0.0])) == 0.0
    for x, y in ((0.0, 0.5), (-2.0, -1.7), (1.0, 3.0)):
        assert abs(residual(jnp.array([x, y])) - abs(y) / (1 + y**2)) < 1e-15
