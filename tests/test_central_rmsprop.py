"""RMSProp central and stable flows (dynamics.processes.central_rmsprop) against an independent NumPy restatement of
the equations of Cohen, Damian, Talwalkar, Kolter, Lee (ICLR 2025) as their PyTorch code builds them: closed-form
derivatives of a cubic-plus-quartic loss, scipy's generalized eigh (U^T P U = I), the upper-triangular (vech)
bookkeeping with off-diagonal weight 2, and the complementarity conditions X >= 0, A + B[X] >= 0, <X, A + B[X]> = 0
checked on the library's X (whatever algorithm found it)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import dynamics as dyn
from dynamics.errors import InputError, StepSizeError

jax.config.update("jax_enable_x64", True)

N, ETA, BETA2, EPS = 6, 0.22, 0.9, 1e-8


@functools.cache
def problem():
    """L(w) = w^T A w / 2 + sum t_i w_i^3 / 6 + (c.w)^4 / 24 with its closed-form derivatives, and a state (w, nu)
    at which P^-1 H has two eigenvalues above 2 (2.46, 2.09). Built once (one loss object: compiled code is shared)."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(N, N)))
    A = Q @ np.diag([10.0, 9.6, 3, 2, 1, 0.5]) @ Q.T
    t, c = rng.normal(size=N), 0.5 * rng.normal(size=N)
    w = 0.1 * rng.normal(size=N)
    nu = rng.uniform(0.5, 1.5, size=N)
    loss = lambda v: 0.5 * v @ (A @ v) + jnp.sum(t * v**3) / 6 + (c @ v) ** 4 / 24
    grad = lambda v: A @ v + 0.5 * t * v**2 + (c @ v) ** 3 * c / 6
    hess = lambda v: A + np.diag(t * v) + 0.5 * (c @ v) ** 2 * np.outer(c, c)
    third = lambda v, a, b: t * a * b + (c @ v) * (c @ a) * (c @ b) * c     # d/dw (a^T H(w) b)
    return loss, grad, hess, third, w, nu


def numpy_substep(grad, hess, third, w, nu, scalar, k=2, substeps=4):
    """The PyTorch code's central_flow_substep restated in NumPy: returns (dw/dt, dnu/dt, alpha, beta (k^2 x k^2,
    symmetrized), the vech metric, eigenvalues) given the X the caller supplies through the returned closures."""
    dt, c = 1.0 / substeps, (1 - BETA2) / BETA2
    g = grad(w)
    P = np.broadcast_to((np.sqrt(nu) + EPS) / ETA, (N,))
    lam, U = scipy.linalg.eigh(hess(w), np.diag(P))                    # U^T P U = I
    lam, U = lam[::-1][:k], U[:, ::-1][:, :k]
    i, j = np.triu_indices(k)
    metric = np.where(i == j, 1.0, 2.0)
    dH_dw = np.stack([third(w, U[:, a], U[:, b]) for a, b in zip(i, j)])               # (m, n)
    dw_stable, dw_X = -g / P, (-0.5 * dH_dw / P).T                                     # (n,), (n, m)
    HU = P[:, None] * U * lam[None, :]
    square = (lambda v: np.sum(v * v)) if scalar else (lambda v: v * v)
    ds_stable = c * (square(g) - nu)
    ds_X = np.stack([c * (np.sum(HU[:, a] * HU[:, b]) if scalar else HU[:, a] * HU[:, b])
                     for a, b in zip(i, j)], axis=-1)                                  # (m,) or (n, m)
    slope = 1.0 / (2 * ETA * np.sqrt(nu))                                              # dP/dnu
    if scalar:   # grad_nu u^T P(nu) v = slope u.v
        dP_dstate = np.array([slope * U[:, a] @ U[:, b] for a, b in zip(i, j)])        # (m,)
        dP_stable, dP_X = dP_dstate * ds_stable, np.outer(dP_dstate, ds_X)
    else:
        dP_dstate = np.stack([slope * U[:, a] * U[:, b] for a, b in zip(i, j)])        # (m, n)
        dP_stable, dP_X = dP_dstate @ ds_stable, dP_dstate @ ds_X
    dH_stable, dH_X = dH_dw @ dw_stable, dH_dw @ dw_X
    A0 = np.diag(2 - lam)[i, j]
    next_stable, next_X = A0 + dt * (2 * dP_stable - dH_stable), dt * (2 * dP_X - dH_X)
    m = i.size
    T = np.zeros((k, k, m))
    T[i, j, np.arange(m)] = T[j, i, np.arange(m)] = 1
    T = T.reshape(k * k, m)
    alpha = (T @ next_stable).reshape(k, k)
    beta = T @ next_X @ T.T
    beta = 0.5 * (beta + beta.T)
    vech = lambda X: metric * X[i, j]
    dw = lambda X: dw_stable + dw_X @ vech(X)
    dnu = lambda X: ds_stable + ds_X @ vech(X)
    return dw, dnu, alpha, beta, lam


@pytest.mark.parametrize("scalar", [False, True])
def test_drift_and_complementarity_against_numpy(scalar):
    loss, grad, hess, third, w, nu = problem()
    nu = np.mean(nu) if scalar else nu
    flow = dyn.RMSPropCentralFlow(loss, ETA, BETA2, EPS, scalar=scalar, k=2, method="dense")
    d = flow.drift(jnp.asarray(w), jnp.asarray(nu))
    dw, dnu, alpha, beta, lam = numpy_substep(grad, hess, third, w, nu, scalar)
    X = np.asarray(d.X)
    assert np.all(lam > 2.0) and np.all(np.asarray(d.critical))
    np.testing.assert_allclose(np.asarray(d.lam), lam, rtol=1e-12)
    # X couples the two critical directions (off-diagonal entry): the case the JAX port weighted wrongly
    assert np.min(np.linalg.eigvalsh(X)) > -1e-14 and np.trace(X) > 1e-3 and abs(X[0, 1]) > 1e-4
    Y = alpha + (beta @ X.reshape(-1)).reshape(2, 2)
    scale = np.abs(alpha).max()
    assert np.min(np.linalg.eigvalsh(0.5 * (Y + Y.T))) > -1e-9 * scale          # A + B[X] >= 0
    assert abs(np.sum(X * Y)) < 1e-9 * scale * np.abs(X).max()                   # <X, A + B[X]> = 0
    np.testing.assert_allclose(np.asarray(d.A), alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(d.B), beta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(d.dw), dw(X), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(d.dnu), dnu(X), rtol=1e-10, atol=1e-13)


def test_no_critical_eigenvalue_is_the_stable_flow():
    """Below the threshold X = 0 and the central flow's drift is the stable flow's field."""
    loss, grad, hess, third, w, nu = problem()
    small = ETA / 4                                      # P^-1 H <= 0.62 < 1.95
    cf = dyn.RMSPropCentralFlow(loss, small, BETA2, EPS, k=2, method="dense")
    sf = dyn.RMSPropStableFlow(loss, small, BETA2, EPS)
    d = cf.drift(jnp.asarray(w), jnp.asarray(nu))
    field_w, field_nu = sf.field(jnp.asarray(w), jnp.asarray(nu))
    assert not np.any(np.asarray(d.critical)) and np.all(np.asarray(d.X) == 0)
    np.testing.assert_allclose(np.asarray(d.dw), -grad(w) * small / (np.sqrt(nu) + EPS), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(field_w), np.asarray(d.dw), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(field_nu), (1 - BETA2) / BETA2 * (grad(w) ** 2 - nu), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(field_nu), np.asarray(d.dnu), rtol=1e-12)


@pytest.mark.parametrize("scalar", [False, True])
def test_rmsprop_pairing_and_scalar_rmsprop(scalar):
    """The flows' nu at tau = 0 is the EMA of RMSProp's first update (from a given nu_0); scalar_rmsprop equals a
    NumPy loop of Scalar RMSProp; per-coordinate RMSProp is optax.rmsprop(eps_in_sqrt=False)."""
    loss, grad, hess, third, w, nu = problem()
    nu0 = np.mean(nu) if scalar else nu
    flow = dyn.RMSPropCentralFlow(loss, ETA / 4, BETA2, EPS, scalar=scalar, k=1, method="dense")
    state = flow.init(dyn.RMSPropFlowState(jnp.asarray(w), jnp.asarray(nu0)))
    g = grad(w)
    expected = BETA2 * nu0 + (1 - BETA2) * (g @ g if scalar else g * g)
    np.testing.assert_allclose(np.asarray(state.nu), expected, rtol=1e-13)
    tx = dyn.scalar_rmsprop(ETA / 4, BETA2, EPS) if scalar else optax.rmsprop(ETA / 4, BETA2, EPS, eps_in_sqrt=False)
    W = np.asarray(dyn.simulate(dyn.OptaxMethod(loss, tx), jnp.asarray(w), np.arange(4.0)).ys)
    v, s = w.copy(), 0.0 * nu0
    for k in range(3):
        g = grad(v)
        s = BETA2 * s + (1 - BETA2) * (g @ g if scalar else g * g)
        v = v - ETA / 4 * g / (np.sqrt(s) + EPS)
        np.testing.assert_allclose(W[k + 1], v, rtol=1e-12)


def test_flows_run_and_predictions():
    """Without a critical eigenvalue the central flow's run is the stable flow's (same Euler substeps); at the
    critical state the predictions are the stated sums and the flow's X keeps lambda_max(P^-1 H) near 2 after a step."""
    loss, grad, hess, third, w, nu = problem()
    y0 = dyn.RMSPropFlowState(jnp.asarray(w), jnp.asarray(nu))
    args = (loss, ETA / 4, BETA2, EPS)
    sf = dyn.simulate(dyn.RMSPropStableFlow(*args), y0, np.arange(4.0), observe_state=True).ys
    below = dyn.simulate(dyn.RMSPropCentralFlow(*args, k=2, method="dense"), y0, np.arange(4.0), observe_state=True).ys
    np.testing.assert_allclose(np.asarray(sf.params), np.asarray(below.params), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(sf.nu), np.asarray(below.nu), rtol=1e-13)
    cf = dyn.RMSPropCentralFlow(loss, ETA, BETA2, EPS, k=2, method="dense")
    p = cf.predictions(jnp.asarray(w), jnp.asarray(nu))
    X, lam, Sigma, P = (np.asarray(p[key]) for key in ("X", "lam", "Sigma", "P"))
    np.testing.assert_allclose(float(p["predicted_loss"]), float(loss(w)) + 0.5 * np.sum(np.diag(X) * lam), rtol=1e-12)
    np.testing.assert_allclose(float(p["predicted_loss"]), float(loss(w)) + 0.5 * np.sum(Sigma * hess(w)), rtol=1e-10)
    H, g = hess(w), grad(w)
    np.testing.assert_allclose(float(p["predicted_grad_norm2"]), g @ g + np.trace(H @ Sigma @ H), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(p["sq_grad"]), g * g + np.diag(H @ Sigma @ H), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(P, (np.sqrt(nu) + EPS) / ETA, rtol=1e-14)


@pytest.mark.parametrize("kwargs, error, phrase", [
    ({"beta2": 1.0}, InputError, "beta2"), ({"beta2": -0.1}, InputError, "beta2"),
    ({"beta2": 0.0}, InputError, "beta2 must lie in \\(0, 1\\)"), ({"eps": 0.0}, InputError, "eps must be > 0"),
    ({"eps": -1e-8}, InputError, "eps"), ({"lr": 0.0}, StepSizeError, "learning rate"),
])
def test_bad_input(kwargs, error, phrase):
    loss = problem()[0]
    args = {"lr": 0.1, "beta2": 0.99, "eps": 1e-8} | kwargs
    for make in (dyn.RMSPropCentralFlow, dyn.RMSPropStableFlow):
        with pytest.raises(error, match=phrase):
            make(loss, args["lr"], args["beta2"], args["eps"])
    with pytest.raises(error, match=phrase):
        dyn.scalar_rmsprop(args["lr"], args["beta2"], args["eps"])


def test_bad_initial_nu():
    loss, grad, hess, third, w, nu = problem()
    with pytest.raises(InputError, match="nu_0 must be a scalar"):
        dyn.RMSPropCentralFlow(loss, 0.1, scalar=True).init(dyn.RMSPropFlowState(jnp.asarray(w), jnp.asarray(nu)))


@pytest.mark.parametrize("bad, phrase", [(-1.0, "finite and >= 0"), (np.nan, "NaN")])
def test_negative_or_nan_initial_nu_is_refused(bad, phrase):
    loss, grad, hess, third, w, nu = problem()
    nu0 = np.array(nu, float)
    nu0[0] = bad
    for make in (dyn.RMSPropCentralFlow, dyn.RMSPropStableFlow):
        with pytest.raises(InputError, match=phrase):
            make(loss, 0.1).init(dyn.RMSPropFlowState(jnp.asarray(w), jnp.asarray(nu0)))


def test_substeps_that_would_overshoot_nu_are_refused():
    """beta2 = 0.1: rate (1 - beta2)/beta2 = 9 per step; with 4 Euler substeps nu + (9/4)(target - nu) turns
    negative (the stable flow returned NaN at step 2 before this check); 9 substeps are accepted."""
    loss = problem()[0]
    for make in (dyn.RMSPropCentralFlow, dyn.RMSPropStableFlow):
        with pytest.raises(InputError, match="substeps >= 9"):
            make(loss, 0.01, beta2=0.1, substeps=4)
        make(loss, 0.01, beta2=0.1, substeps=9)


def test_a_crowded_block_and_counts_are_reported():
    """P^-1 H = diag(10, 9, 1)/P with P = (sqrt(1) + eps)/0.25 ~ 4: eigenvalues 2.5, 2.25, 0.25, two critical.
    k = 1 tracks only the first: the step warns that every tracked eigenvalue is critical and counts it; k = 3 sees
    the subcritical third (no warning, count 0)."""
    import warnings

    h = jnp.array([10.0, 9.0, 1.0])
    loss = lambda w: 0.5 * jnp.sum(h * w**2) + 0.1 * jnp.sum(w**3)
    y0 = dyn.RMSPropFlowState(jnp.array([1e-4, -1e-4, 1e-4]), jnp.ones(3))
    with pytest.warns(RuntimeWarning, match="all k = 1 tracked eigenvalues are critical"):
        out = dyn.simulate(dyn.RMSPropCentralFlow(loss, 0.25, k=1, method="dense"), y0, [0.0, 1.0],
                           observe_state=True).ys
    assert int(out.crowded[-1]) == 4 and int(out.unconverged[-1]) == 0          # every one of the 4 substeps
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = dyn.simulate(dyn.RMSPropCentralFlow(loss, 0.25, k=3, method="dense"), y0, [0.0, 1.0],
                           observe_state=True).ys
    assert int(out.crowded[-1]) == 0


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("method, options", [("lanczos", {"lanczos_steps": 6}), ("lobpcg", {})])
def test_iterative_eigensolvers_step_like_dense(method, options):
    """One flow step (4 substeps, two critical eigenvalues) with Lanczos (a full Krylov space: 6 steps on 6
    parameters) and LOBPCG against the dense eigensolver: the same (w, nu) to 1e-9, no unconverged substep."""
    loss, grad, hess, third, w, nu = problem()
    y0 = dyn.RMSPropFlowState(jnp.asarray(w), jnp.asarray(nu))
    runs = {name: dyn.simulate(dyn.RMSPropCentralFlow(loss, ETA, BETA2, EPS, k=3, method=name, **opts), y0,
                               [0.0, 1.0], observe_state=True).ys
            for name, opts in (("dense", {}), (method, options))}
    np.testing.assert_allclose(runs[method].params[-1], runs["dense"].params[-1], atol=1e-9)
    np.testing.assert_allclose(runs[method].nu[-1], runs["dense"].nu[-1], atol=1e-9)
    assert int(runs[method].unconverged[-1]) == 0
