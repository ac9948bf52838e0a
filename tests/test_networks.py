"""Linear networks (dynamics/networks.py) and their implicit-norm / KKT predictions against independent
numpy computations, the toy table of docs/implicit-bias.md section 6, and refusals of bad input."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.models.networks import (ConvolutionalNetwork, DeepLinear, DiagonalNetwork, ODeCoNetwork, TensorNetwork,
                               require_odeco)
from dynamics.measure import layer_alignment, predictor_kkt
from dynamics.predictions import (implicit_norm_minimizer, min_l2_interpolant, optimality_certificate,
                                  require_interpolant, woodworth_map)


def orthonormal(rng, rows, cols):
    return np.linalg.qr(rng.normal(size=(rows, cols)))[0]


def test_deep_linear_predictor_is_the_matrix_product():
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)]
    beta = DeepLinear().predictor([jnp.asarray(p) for p in params])
    np.testing.assert_allclose(beta, params[0] @ params[1] @ params[2], rtol=1e-13)


def _circular_conv_forward(x, filters):
    """h_0 = x, h_l[i] = D^(-1/2) sum_k w_l[k] h_(l-1)[(i + k) mod D] (l < L), output <h_(L-1), w_L>."""
    D = x.size
    h = x
    for w in filters[:-1]:
        h = np.array([sum(w[k] * h[(i + k) % D] for k in range(w.size)) for i in range(D)]) / np.sqrt(D)
    return h @ filters[-1]


@pytest.mark.parametrize("sizes", [(6, 6, 6), (3, 2, 6), (6, 6)])
def test_convolutional_predictor_matches_direct_circular_convolution(sizes):
    rng = np.random.default_rng(1)
    filters = [rng.normal(size=k) for k in sizes]
    beta = np.asarray(ConvolutionalNetwork(len(sizes)).predictor([jnp.asarray(w) for w in filters]))
    for x in rng.normal(size=(4, 6)):
        np.testing.assert_allclose(x @ beta, _circular_conv_forward(x, filters), rtol=1e-12, atol=1e-14)


def test_tensor_network_with_diagonal_tensor_is_the_product_diagonal_network():
    rng = np.random.default_rng(2)
    d, L = 4, 3
    T = np.zeros((d,) * (L + 1))
    for j in range(d):
        T[(j,) * (L + 1)] = 1.0
    vs = [jnp.asarray(rng.normal(size=d)) for _ in range(L)]
    np.testing.assert_allclose(TensorNetwork(jnp.asarray(T)).predictor(vs), DiagonalNetwork(L, "product").predictor(vs),
                               rtol=1e-14)


def test_odeco_predictor_equals_the_contracted_tensor():
    """beta_i = M(e_i)(v_1, v_2, v_3) with M(x) = sum_j [S x]_j u_1^j (x) u_2^j (x) u_3^j built explicitly."""
    rng = np.random.default_rng(3)
    d, k = 4, 6
    S = orthonormal(rng, d, d)
    U = [orthonormal(rng, k, d) for _ in range(3)]
    vs = [rng.normal(size=k) for _ in range(3)]
    T = np.einsum("ji,aj,bj,cj->abci", S, *U)
    expected = np.einsum("abci,a,b,c->i", T, *vs)
    rho = np.prod([Ul.T @ v for Ul, v in zip(U, vs)], axis=0)
    net = ODeCoNetwork(jnp.asarray(S), tuple(jnp.asarray(Ul) for Ul in U))
    beta = np.asarray(net.predictor([jnp.asarray(v) for v in vs]))
    np.testing.assert_allclose(beta, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(beta, S.T @ rho, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(TensorNetwork(jnp.asarray(T)).predictor([jnp.asarray(v) for v in vs]), expected,
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth", [0, -1, 2.5])
def test_bad_depth_is_refused(depth):
    with pytest.raises(InputError, match="depth"):
        DiagonalNetwork(depth)
    with pytest.raises(InputError, match="depth"):
        ConvolutionalNetwork(depth)


def test_uv_form_needs_depth_two():
    with pytest.raises(InputError, match="depth 2"):
        DiagonalNetwork(3, "uv")


@pytest.mark.parametrize("alpha", [0.0, -0.1])
def test_nonpositive_init_scale_is_refused(alpha):
    with pytest.raises(InputError, match="alpha"):
        DiagonalNetwork(2, "pm").init(alpha, d=3)
    with pytest.raises(InputError, match="alpha"):
        woodworth_map(alpha, 2, 3)


@pytest.mark.parametrize("shape", [1.0, -1.0, 1.5])
def test_shape_outside_open_interval_is_refused(shape):
    with pytest.raises(InputError, match="shape"):
        DiagonalNetwork(2, "uv").init(0.1, shape, d=3)


def test_require_odeco_refuses_perturbed_layers_with_the_defect():
    rng = np.random.default_rng(4)
    U = tuple(jnp.asarray(orthonormal(rng, 5, 4) + 1e-3 * rng.normal(size=(5, 4))) for _ in range(2))
    net = ODeCoNetwork(jnp.asarray(orthonormal(rng, 4, 4)), U)
    defect = net.orthogonality_defect()
    assert defect > 1e-4
    with pytest.raises(InputError, match="not orthogonally decomposable") as err:
        require_odeco(net)
    assert f"{defect:.3g}" in str(err.value)


def test_require_interpolant_refuses_inconsistent_system():
    rng = np.random.default_rng(5)
    with pytest.raises(InputError, match="no solution"):
        require_interpolant(rng.normal(size=(3, 2)), rng.normal(size=3))


@pytest.mark.parametrize("depth, alpha, expected", [(2, 0.1, (0.06686, 0.46657)), (3, 0.3, (0.06916, 0.46542))])
def test_implicit_norm_minimizer_reproduces_spec_toy_table(depth, alpha, expected):
    """docs/implicit-bias.md: X = [1 2], y = 1, beta = w_+^D - w_-^D from alpha."""
    X, y = np.array([[1.0, 2.0]]), np.array([1.0])
    mirror = woodworth_map(alpha, depth, 2)
    sol = implicit_norm_minimizer(X, y, mirror)
    np.testing.assert_array_equal(np.round(sol.beta, 5), expected)
    feasibility, stationarity = optimality_certificate(X, y, sol.beta, mirror)
    assert feasibility < 1e-12 and stationarity < 1e-10


def test_certificate_rejects_min_l2_interpolant_at_small_scale():
    X, y = np.array([[1.0, 2.0]]), np.array([1.0])
    mirror = woodworth_map(0.01, 2, 2)
    feasibility, stationarity = optimality_certificate(X, y, min_l2_interpolant(X, y), mirror)
    assert feasibility < 1e-14
    assert stationarity > 0.1  # grad Q = arcsinh(beta / (2 alpha^2)) is far from range(X^T) = span(1, 2)


def test_predictor_kkt_zero_at_l2_max_margin_with_its_dual():
    """depth 1: min ||beta||_2 s.t. Z beta >= 1; p = the SVM dual weights (beta = Z^T p)."""
    from conftest import separable_data

    X, y = separable_data(6, 12, 3)[:2]
    sol = dyn.max_margin(X, y)
    r_stat, r_cs = predictor_kkt(sol.w, y[:, None] * X, sol.dual, 1)
    assert r_stat < 1e-8 and abs(r_cs) < 1e-8


def test_predictor_kkt_l1_hand_example():
    """depth 2: min ||beta||_1 s.t. beta_1 >= 1, 2 beta_2 >= 1 -> beta = (1, 1/2), dual p = (2, 1)/3
    (sign(beta) = Z^T p / c); a wrong p = (1, 1)/2 gives r_stat > 0."""
    Z, beta = np.diag([1.0, 2.0]), np.array([1.0, 0.5])
    r_stat, r_cs = predictor_kkt(beta, Z, np.array([2.0, 1.0]) / 3, 2)
    assert r_stat < 1e-14 and abs(r_cs) < 1e-14
    assert predictor_kkt(beta, Z, np.array([0.5, 0.5]), 2)[0] > 0.1


def test_layer_alignment_of_aligned_rank_one_layers():
    rng = np.random.default_rng(7)
    u = [v / np.linalg.norm(v) for v in (rng.normal(size=5), rng.normal(size=4), rng.normal(size=3))]
    layers = [2.0 * np.outer(u[0], u[1]), -3.0 * np.outer(u[1], u[2]), 0.5 * u[2]]
    defects, adjacency = layer_alignment(layers)
    np.testing.assert_allclose(defects, 0.0, atol=1e-14)
    np.testing.assert_allclose(adjacency, 1.0, atol=1e-14)
