"""Unit checks moved out of the edge-of-stability theorems: statements that hold by construction of the code they
test (so they are not claims of a theorem), and the instruments the theorems rely on."""

import warnings

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import dynamics as dyn
from theorems.common import datasets
from theorems.damian2023_self_stabilization import LotkaVolterraFlow, SelfStabilizationMap
from theorems.kreisler2023_gfs import balanced_two_cycles, gfs_sharpness_path

SCALAR_LOSS = dyn.models.mlp.scalar_network_loss(1.0)


def test_self_stabilization_map_average_identity():
    """Summing the y-update: mean_{t<T} x_t^2 = 2 alpha/beta - 2 (y_T - y_0)/(eta beta T), to rounding."""
    eta, alpha, beta, T = 0.01, 1.0, 10.0, 5000
    z = np.asarray(dyn.simulate(SelfStabilizationMap(jnp.asarray(eta), alpha, beta), jnp.array([0.3, 0.0]),
                                np.arange(T + 1) * eta).ys)
    mean = np.mean(z[:-1, 0] ** 2)
    assert mean == pytest.approx(2 * alpha / beta - 2 * (z[-1, 1] - z[0, 1]) / (eta * beta * T), abs=1e-12)


def test_lotka_volterra_average_over_a_whole_cycle():
    """Over a whole cycle (y back to 0) int dy = 0 gives <X> = 2 alpha/beta exactly (formerly a theorem claim)."""
    eta, alpha, beta = 0.01, 1.0, 10.0
    flow = LotkaVolterraFlow(eta, alpha, beta)
    z0 = jnp.array([0.09, 0.0, 0.0])
    options = dict(rtol=1e-12, atol=1e-14, solver=diffrax.Dopri8(), max_steps=100_000)
    ts = np.arange(0.0, 700.0)
    y = np.asarray(dyn.simulate(flow, z0, ts, **options).ys)[:, 1]
    up = np.nonzero((y[:-1] < 0) & (y[1:] >= 0))[0][0]          # one cycle: ~454 steps
    end = lambda T: np.asarray(dyn.simulate(flow, z0, np.array([0.0, T]), **options).ys)[-1]
    T = scipy.optimize.brentq(lambda T: end(T)[1], ts[up], ts[up + 1], xtol=1e-12)
    assert end(T)[2] / T == pytest.approx(2 * alpha / beta, abs=1e-8)


def test_rod_linearization_at_zero_extent_is_eta_hessian_minus_two():
    """d(dd/dtau)/dd at d = 0 = eta H(x) - 2 I on the scalar network (by construction of the reconstructed field;
    formerly claim (e) of regis2026_rod_edge)."""
    eta = 0.58
    rod = dyn.RodFlow(SCALAR_LOSS, eta)
    for x in (np.array([1.2, 0.9, 0.95]), np.array([2.0, 0.5, 0.3])):
        J = jax.jacfwd(lambda d: rod.field(0.0, (jnp.asarray(x), d))[1])(jnp.zeros(3))
        H = jax.hessian(SCALAR_LOSS)(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(J), eta * np.asarray(H) - 2 * np.eye(3), atol=1e-13)


def test_balanced_two_cycles_are_cycles_of_the_balanced_map():
    for depth, eta in ((3, 0.72), (2, 1.17), (4, 0.6)):
        f = lambda a: a - eta * (a**depth - 1.0) * a ** (depth - 1)
        for a, b, multiplier in balanced_two_cycles(depth, eta):
            assert f(a) == pytest.approx(b, abs=1e-12) and f(b) == pytest.approx(a, abs=1e-12)
            fp = lambda a: 1 - eta * (2 * depth - 1) * a ** (2 * depth - 2) + eta * (depth - 1) * a ** (depth - 2)
            assert multiplier == pytest.approx(fp(a) * fp(b), rel=1e-10)


def test_vectorized_gfs_sharpness_matches_closed_form():
    rng = np.random.default_rng(0)
    w = rng.uniform(0.2, 2.0, size=(20, 3))
    expected = [dyn.predictions.gfs_sharpness_scalar(v) for v in w]
    np.testing.assert_allclose(gfs_sharpness_path(w), expected, rtol=1e-13)


def test_principal_flow_solver_failure_is_not_the_predicted_departure():
    """A PF segment the solver cannot finish is an instrument failure: `left` stays None and the claim fails."""
    from theorems.eos_comparison import _principal, _principal_claim, scalar_problem

    E, w0, eta = scalar_problem()
    rows, record = _principal(E, w0, eta, steps=20, segment=10, horizon=None, budget=1,
                              tol=dict(rtol=1e-10, atol=1e-12))
    assert record["left"] is None and record["instrument"] == 0 and "SolverBudgetError" in record["reason"]
    assert np.isnan(rows).all()
    result = {"records": {"PF": record}, "eta_s": {"PF": np.full(20, 2.5)}, "ks": np.arange(20), "onset": 1,
              "gd_loss_ratio": 1.0, "distance": {"PF": np.full(20, np.nan)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # nanmean of an all-NaN distance in the note
        assert not _principal_claim("A", result).passed


def test_eos_datasets_are_seeded():
    a, b = datasets.dataset("eos_mlp", seed=0), datasets.dataset("eos_mlp", seed=0)
    assert a["X"].shape == (128, 8) and a["y"].shape == (128,) and a["sizes"] == (8, 16, 16, 1)
    np.testing.assert_array_equal(a["X"], b["X"])
    assert sum(W.size + c.size for W, c in a["params"]) == 433
    c = datasets.dataset("gfs_mlp", seed=1, d=4)
    assert c["X"].shape == (8, 4) and [W.shape for W, _ in c["params"]] == [(4, 8), (8, 8), (8, 1)]
    assert not np.array_equal(c["X"], datasets.dataset("gfs_mlp", seed=2, d=4)["X"])
