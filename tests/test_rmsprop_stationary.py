"""The stationary preconditioner of the RMSProp central flow (docs/flows.md section 17, "Predictions") against
independent computations: the central flow's own nu dynamics run with w frozen until dnu ~ 0, and closed forms
(diagonal H decouples per coordinate; scalar RMSProp is one-dimensional)."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.errors import InputError, StepSizeError
from dynamics.processes import RMSPropCentralFlow


def _quadratic(H, center):
    H, center = jnp.asarray(H), jnp.asarray(center)
    return lambda w: 0.5 * (w - center) @ H @ (w - center)


def _frozen_nu(loss, w, lr, eps, scalar, n, iterations=100):
    """nu after ``iterations`` Euler substeps of the central flow's dnu/dtau at the fixed w (w never updated; on a
    quadratic the third derivative is 0, so the flow's SDCP sees only nu move), from a stable start (large nu)."""
    flow = RMSPropCentralFlow(loss, lr, beta2=0.5, eps=eps, scalar=scalar, k=n, method="dense")
    nu = jnp.full(() if scalar else (n,), 100.0)
    for _ in range(iterations):
        drift = flow.drift(w, nu)
        nu = nu + drift.dnu / flow.substeps
    drift = flow.drift(w, nu)
    return np.asarray(nu), np.asarray(drift.dnu), np.asarray(drift.U @ drift.X @ drift.U.T)


@pytest.mark.parametrize("scalar", [False, True])
def test_matches_the_central_flow_with_w_frozen(scalar):
    rng = np.random.default_rng(3)
    n = 5
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    H = Q @ np.diag([4.0, 3.6, 1.0, 0.5, -0.2]) @ Q.T
    center = rng.normal(size=n)
    w = jnp.asarray(center + 0.02 * rng.normal(size=n))
    loss, lr, eps = _quadratic(H, center), 1.0, 1e-8
    result = dy.predictions.rmsprop_stationary_preconditioner(loss, w, lr, scalar=scalar, eps=eps)
    nu, dnu, Sigma = _frozen_nu(loss, w, lr, eps, scalar, n)
    # the flow reached its fixed point: |dnu| at round-off of nu ~ 4 (measured |dnu| ~ 2e-13 after 100 substeps)
    assert np.abs(dnu).max() < 1e-12
    # barrier stopped at t = 1e10: O(1/t) = 1e-10 bias in nu; 1e-8 leaves 100x
    np.testing.assert_allclose(result.nu, nu, rtol=1e-8, atol=1e-8 * np.max(nu))
    np.testing.assert_allclose(result.P, (np.sqrt(nu) + eps) / lr, rtol=1e-8)
    # Sigma: the flow's U X U^T at its fixed point vs the solver's (polished on its active space); 1e-6 relative
    scale = np.abs(result.Sigma).max()
    assert scale > 0 and np.abs(Sigma - result.Sigma).max() < 1e-6 * scale
    # certificate: feasible, complementary, dnu/dtau = 0 (all at the barrier's 1/t = 1e-10 level; 1e-8)
    assert result.feasibility > -1e-8 and result.complementarity < 1e-8 and result.kkt_residual < 1e-8
    np.testing.assert_allclose(result.multiplier, 2 * result.Sigma / lr ** 2)


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_diagonal_hessian_closed_form(eps):
    """H = diag(h): the constraint decouples, s_i = max(|g_i|, eta h_i/2 - eps, 0), Sigma_ii = eta^2 (s_i^2 -
    g_i^2)/(4 (s_i + eps)^2) (from diag(H Sigma H) = 4 P^2 diag Sigma on the active coordinates)."""
    h = np.array([3.0, 1.0, 0.5, -1.0, 2.0, -0.5])
    g = np.array([0.1, -0.5, 0.02, 0.3, 0.0, 0.0])
    lr = 0.4
    s = np.maximum.reduce([np.abs(g), lr * h / 2 - eps, np.zeros_like(g)])
    result = dy.predictions.rmsprop_stationary_from_derivatives(g, np.diag(h), lr, eps=eps)
    # 1e-8: 100x the barrier's O(1/t) bias at t = 1e10
    np.testing.assert_allclose(result.nu, s ** 2, rtol=1e-8, atol=1e-8 * np.max(s ** 2))
    sigma = np.divide(lr ** 2 * (s ** 2 - g ** 2), 4 * (s + eps) ** 2, out=np.zeros_like(s), where=s + eps > 0)
    np.testing.assert_allclose(result.Sigma, np.diag(sigma), atol=1e-8 * lr ** 2)
    # scalar RMSProp on the same H: s = max(||g||, eta max(h)/2 - eps), exact
    one = dy.predictions.rmsprop_stationary_from_derivatives(g, np.diag(h), lr, scalar=True, eps=eps)
    s1 = max(np.linalg.norm(g), lr * 3.0 / 2 - eps)
    np.testing.assert_allclose([one.nu, one.P], [s1 ** 2, (s1 + eps) / lr], rtol=1e-14)
    assert one.kkt_residual < 1e-14 and abs(one.complementarity) < 1e-14


def test_bad_input():
    g, H = np.array([0.1, 0.2]), np.array([[2.0, 0.5], [0.5, 1.0]])
    solve = dy.predictions.rmsprop_stationary_from_derivatives
    for lr in (0.0, -1.0, np.nan):
        with pytest.raises(StepSizeError, match="learning rate"):
            solve(g, H, lr)
    with pytest.raises(InputError, match="symmetric"):
        solve(g, np.array([[2.0, 0.5], [0.0, 1.0]]), 1.0)
    with pytest.raises(InputError, match="finite"):
        solve(g, np.array([[np.nan, 0.5], [0.5, 1.0]]), 1.0)
    with pytest.raises(InputError, match="shapes"):
        solve(g, np.eye(3), 1.0)
    with pytest.raises(InputError, match="shapes"):
        solve(np.ones((2, 2)), H, 1.0)
    with pytest.raises(InputError, match="eps"):
        solve(g, H, 1.0, eps=-1e-8)
    with pytest.raises(InputError, match="scalar"):
        solve(g, H, 1.0, scalar=1)
    with pytest.raises(InputError, match="finite"):
        dy.predictions.rmsprop_stationary_preconditioner(lambda w: jnp.sum(jnp.sqrt(w - 1.0)), jnp.zeros(2), 1.0)


def test_an_inaccurate_certificate_warns(monkeypatch):
    """A KKT residual above KKT_WARN is not returned silently (here the threshold is lowered below the residual of an
    ordinary case, ~1e-9, to exercise the path); float32 parameters are promoted so the certificate is float64's."""
    import warnings

    import dynamics.predictions.rmsprop_stationary as module

    g, H = np.array([0.3, -0.2, 0.1]), np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        quiet = module.rmsprop_stationary_from_derivatives(g, H, 1.0)
    loss = lambda w: 0.5 * w @ jnp.asarray(H) @ w + jnp.asarray(g) @ w
    result = module.rmsprop_stationary_preconditioner(loss, jnp.zeros(3, jnp.float32), 1.0)
    assert result.g.dtype == np.float64
    np.testing.assert_allclose(result.g, g, rtol=0, atol=1e-15)
    monkeypatch.setattr(module, "KKT_WARN", 0.0)
    assert 0 < quiet.kkt_residual < 1e-6
    with pytest.warns(RuntimeWarning, match="KKT residual"):
        module.rmsprop_stationary_from_derivatives(g, H, 1.0)
