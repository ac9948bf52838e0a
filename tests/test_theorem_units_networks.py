"""Checks moved out of the network theorems (issue "verdicts that can fail"): each holds by construction of the code or
compares one code path with itself, so it is a unit test of the code, not a claim of a theorem. Also the seeded
datasets of the networks area and the vertex enumerator of `theorems.yun2021_tensor`."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy.special import softmax

import dynamics as dyn
from dynamics.errors import InputError
from dynamics.measure import parameter_kkt, predictor_kkt
from dynamics.models.factorization import sensing_loss
from dynamics.models.networks import (DiagonalNetwork, ODeCoNetwork, TwoLayerHomogeneous, classification_loss,
                                      regression_loss, require_odeco)
from theorems.common import datasets
from theorems.yun2021_tensor import EXTRA, last_layer_zero_init, odeco_network, orthonormal


def test_commuting_sensing_flow_stays_diagonal():
    """gunasekar2017 (was claim M1): diagonal A_i and U(0) = alpha I keep U, hence X = U U^T, exactly diagonal."""
    a, y = datasets.dataset("net_commuting_sensing", seed=0)
    n = a.shape[1]
    loss = sensing_loss(np.stack([np.diag(row) for row in a]), y)
    traj = dyn.simulate(dyn.GradientFlow(loss), 0.1 * jnp.eye(n), np.array([0.0, 1.0, 5.0]),
                        observe=lambda t, U: U @ U.T, rtol=1e-10, atol=1e-14, solver=diffrax.Dopri8())
    X = np.asarray(traj.ys)[-1]
    assert np.abs(X - np.diag(np.diag(X))).max() == 0.0
    assert np.abs(np.diag(X) - 0.01).max() > 1e-3  # it moved


@pytest.mark.parametrize("seed", range(5))
def test_complementary_slackness_bound_holds_for_any_softmax_weights(seed):
    """gunasekar2018 C2 / lyu2020 H3 (were claims): p_n <= exp(-Delta_n) gives r_cs <= (N - 1)/(e q_min), whatever the
    predictor, in both the predictor-space and the parameter-space residual."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=4) * rng.uniform(1, 30)
    X = rng.normal(size=(7, 4))
    Z = np.sign(X @ beta)[:, None] * X  # labels from beta: every margin positive
    q = Z @ beta
    r_cs = predictor_kkt(beta, Z, softmax(-q), 3)[1]
    assert 0.0 <= r_cs <= (len(q) - 1) / (np.e * q.min())
    net = DiagonalNetwork(3, "product")
    theta = (np.cbrt(beta),) * 3
    loss = classification_loss(net, Z, np.ones(len(Z)), "exp")
    qn = np.asarray(loss.margins(theta))
    r_cs_param = parameter_kkt(loss.margin_fn, theta, loss.data, softmax(-qn), 3)[1]
    assert 0.0 <= r_cs_param <= (len(qn) - 1) / (np.e * qn.min()) * (1 + 1e-12)


@pytest.mark.parametrize("model", ["diagonal", "square"])
def test_parameter_kkt_stationarity_is_sine_of_alignment(model):
    """lyu2020 (was claim H4): for an L-homogeneous margin, r_stat = sin angle(theta, -grad L) with the run's own
    weights, computed here by parameter_kkt (VJP of the margins) and by the loss's descent direction."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 3))
    if model == "diagonal":
        net, theta = DiagonalNetwork(3, "product"), tuple(rng.normal(size=(3, 3)))
        f = X @ np.asarray(net.predictor(theta))
    else:
        net, theta = TwoLayerHomogeneous("square"), (rng.normal(size=(5, 3)), rng.normal(size=5))
        f = np.asarray(net.outputs(theta, X))
    y = np.sign(f)  # labels from the model itself: every margin positive, as parameter_kkt requires
    loss = classification_loss(net, X, y, "exp")
    p = np.asarray(loss.dual_weights(theta))
    r_stat = parameter_kkt(loss.margin_fn, theta, loss.data, p, 3)[0]
    flat = np.asarray(ravel_pytree(theta)[0])
    descent = np.asarray(ravel_pytree(loss.descent_direction(theta))[0])
    cos = flat @ descent / (np.linalg.norm(flat) * np.linalg.norm(descent))
    assert r_stat > 0.05  # a generic point, away from the cancellation at cos ~ 1
    np.testing.assert_allclose(r_stat, np.sqrt(1.0 - cos**2), rtol=1e-10)


def test_odeco_gradient_lives_in_range_of_U_and_outside_part_stays_frozen():
    """yun2021 (was claim Y1): the gradient with respect to v_l is U_l times a vector, so (I - U_l U_l^T) v_l is
    frozen along GF."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(4, 6)), rng.normal(size=4)
    net = odeco_network(rng, orthonormal(rng, 6, 6), 3)
    params0 = last_layer_zero_init(rng, net, 0.3)
    params0[-1] = params0[-1] + jnp.asarray(np.asarray(net.U[-1]) @ rng.normal(size=6))  # a nonzero gradient
    loss = regression_loss(net, X, y)
    for U, g in zip(net.U, jax.grad(loss)(params0)):
        U, g = np.asarray(U), np.asarray(g)
        assert np.linalg.norm(g) > 1e-3
        assert np.linalg.norm(g - U @ (U.T @ g)) <= 1e-13 * np.linalg.norm(g)
    traj = dyn.simulate(dyn.GradientFlow(loss), params0, np.array([0.0, 5.0]), rtol=1e-12, atol=1e-14,
                        solver=diffrax.Dopri8())
    for U, v0, v in zip(net.U, params0, traj.ys):
        U, delta = np.asarray(U), np.asarray(v)[-1] - np.asarray(v0)
        assert np.abs(delta - U @ (U.T @ delta)).max() <= 1e-12
        assert np.abs(delta).max() > 1e-3
    assert all(np.asarray(v0).size == 6 + EXTRA for v0 in params0)


def test_require_odeco_refuses_a_perturbed_U():
    """yun2021 (was claim Y1): non-orthonormal U_l is refused with the measured defect."""
    rng = np.random.default_rng(1)
    S = orthonormal(rng, 6, 6)
    U = tuple(jnp.asarray(orthonormal(rng, 6, 6) + 1e-3 * rng.normal(size=(6, 6))) for _ in range(3))
    with pytest.raises(InputError, match="orthogonally decomposable"):
        require_odeco(ODeCoNetwork(jnp.asarray(S), U))


@pytest.mark.parametrize("name", [n for n in datasets.names() if n.startswith("net_")])
def test_network_datasets_are_seeded(name):
    first, again, other = (datasets.dataset(name, seed=s) for s in (5, 5, 6))
    flat = lambda data: np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(data)])
    np.testing.assert_array_equal(flat(first), flat(again))
    assert not np.array_equal(flat(first), flat(other))
    assert np.all(np.isfinite(flat(first)))
