"""`CentralFlow` at scale and in use: eigensolver chosen by size, dynamic tracking, the eigensolver's convergence in
the state, warm starts, per-step diagnostics through observe_state, the predicted time average of any f, and the
two-critical-eigenvalue SDCP against an independent drift/complementarity check (docs/flows.md section 10.1).

The references are closed forms in NumPy: the losses below have explicit Hessians and third derivatives
(a quadratic plus quartic ridge terms), never the flow's own autodiff path."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.errors import InputError, SolverBudgetError, compiled_errors
from dynamics.linalg import DENSE_LIMIT
from dynamics.processes.eos import CentralFlow, CentralFlowState

RNG = np.random.default_rng(3)
N = 6
Q = np.linalg.qr(RNG.normal(size=(N, N)))[0]
CURVATURE = np.array([10.0, 9.0, 4.0, 2.0, 1.0, 0.5])
R = RNG.normal(size=(3, N)) / np.sqrt(N)   # quartic ridge directions r_l
C = np.array([0.6, 0.4, 0.5])


def ridge_loss(w):
    """L(w) = 1/2 w^T A w + 1/4 sum_l c_l (r_l.w)^4, A = Q diag(CURVATURE) Q^T."""
    A = jnp.asarray(Q * CURVATURE @ Q.T)
    return 0.5 * w @ A @ w + 0.25 * jnp.sum(jnp.asarray(C) * (jnp.asarray(R) @ w) ** 4)


def ridge_numpy(w):
    """(L, g, H, T) in closed form: H = A + 3 sum c_l s_l^2 r_l r_l^T, T[u, v] = 6 sum c_l s_l (r_l.u)(r_l.v) r_l."""
    w = np.asarray(w)
    A, s = Q * CURVATURE @ Q.T, R @ w
    L = 0.5 * w @ A @ w + 0.25 * np.sum(C * s**4)
    g = A @ w + R.T @ (C * s**3)
    H = A + 3 * np.einsum("l,li,lj->ij", C * s**2, R, R)
    T = lambda u, v: R.T @ (6 * C * s * (R @ u) * (R @ v))
    return L, g, H, T


def drift_residual(eta, dt, lam, V, velocity, T, c):
    """S = (2/eta) I - Lambda - dt [D_ij . velocity] on the critical block (first c pairs), D_ij = T[v_i, v_j]: the
    gap to 2/eta of V^T H V after a substep along the flow's own velocity, to first order (docs/flows.md 10.1)."""
    D = np.array([[T(V[:, i], V[:, j]) @ velocity for j in range(c)] for i in range(c)])
    return (2.0 / eta) * np.eye(c) - np.diag(lam[:c]) - dt * D


def sdcp_violation(X, S):
    """max(-lambda_min(X), -lambda_min(S), |<X, S>|): 0 for a solution of X >= 0, S >= 0, <X, S> = 0."""
    return max(0.0, -np.linalg.eigvalsh(X)[0], -np.linalg.eigvalsh(S)[0], abs(np.sum(X * S)))


#: one compilation per flow configuration: the flow is an argument (lr, track, start are array leaves)
INIT = eqx.filter_jit(lambda flow, w: flow.init(w))
W_RIDGE = jnp.array([0.71, 1.16, -2.16, -0.5, 0.33, -0.61])
LAM_RIDGE = np.linalg.eigvalsh(ridge_numpy(W_RIDGE)[2])[::-1]


@pytest.fixture(scope="module")
def two_critical():
    """A point where eta lambda_1, eta lambda_2 > 1.95 > 1.5 > eta lambda_3, analysed by a dense k = 3 CentralFlow
    (one substep per step, dt = 1)."""
    eta = 2.1 / LAM_RIDGE[1]
    assert eta * LAM_RIDGE[2] < 1.5 < 1.95 < eta * LAM_RIDGE[1]
    flow = CentralFlow(ridge_loss, eta, k=3, substeps=1, method="dense")
    return flow, W_RIDGE, INIT(flow, W_RIDGE)


def test_two_critical_eigenvalues_satisfy_an_independent_drift_and_complementarity_check(two_critical):
    """X >= 0, S = A + B[X] >= 0, <X, S> = 0 with S recomputed in NumPy from the closed-form third derivative and the
    flow's own velocity; the velocity itself against -eta (g + 1/2 sum_ij X_ij D_ij) summed over ordered pairs.
    Negative controls: the same check on the update with off-diagonal pairs weighted sqrt(2) instead of 2 (the JAX
    port's reported bug) and on X with X_12, X_22 off by the reported 5% and 11% must fail by far."""
    flow, w, state = two_critical
    eta, dt = float(flow.lr), 1.0
    L, g, H, T = ridge_numpy(w)
    lam_np = np.linalg.eigvalsh(H)[::-1]
    lam, V, X = np.asarray(state.eigenvalues), np.asarray(state.block[:, :3]), np.asarray(state.X)
    np.testing.assert_allclose(lam, lam_np[:3], rtol=1e-12)
    assert int(state.critical) == 2 and int(state.tracked) == 2
    Xc = X[:2, :2]
    assert abs(Xc[0, 1]) > 0.05 * np.sqrt(Xc[0, 0] * Xc[1, 1])  # coupled: the off-diagonal weight matters
    np.testing.assert_array_equal(X[2], 0.0)

    def velocity(Xc, offdiagonal=2.0):
        D = [[T(V[:, i], V[:, j]) for j in range(2)] for i in range(2)]
        return -eta * (g + 0.5 * (Xc[0, 0] * D[0][0] + Xc[1, 1] * D[1][1] + offdiagonal * Xc[0, 1] * D[0][1]))

    scale = 2.0 / eta
    tol = 1e-8 * scale  # the FISTA SDCP stops at relative change 1e-12; it agrees with a host QP to 4.5e-10
    np.testing.assert_allclose(np.asarray(state.velocity), velocity(Xc), rtol=1e-10, atol=1e-12 * np.linalg.norm(g))
    S = drift_residual(eta, dt, lam, V, np.asarray(state.velocity), T, 2)
    assert sdcp_violation(Xc, S) <= tol
    wrong_update = drift_residual(eta, dt, lam, V, velocity(Xc, np.sqrt(2.0)), T, 2)
    assert sdcp_violation(Xc, wrong_update) > 1e3 * tol
    off = Xc * np.array([[1.0, 1.05], [1.05, 1.11]])
    assert sdcp_violation(off, drift_residual(eta, dt, lam, V, velocity(off), T, 2)) > 1e3 * tol


def test_time_average_of_any_function(two_critical):
    """f(w) + 1/2 <Sigma, H_f> against (a) the exact average of a quadratic f over 2r sigma points w +- sqrt(r) s_i,
    Sigma = sum_i s_i s_i^T (mean w, covariance Sigma: exact for quadratics) and (b) the closed-form Hessian of a
    non-quadratic f; and f = L gives L + 1/2 sum_i X_ii lambda_i."""
    flow, w, state = two_critical
    V, X = np.asarray(state.block[:, :3]), np.asarray(state.X)
    mu, U = np.linalg.eigh(X)
    factors = V @ U[:, mu > 0] * np.sqrt(mu[mu > 0])
    r = factors.shape[1]
    P = RNG.normal(size=(N, N))
    P, c = P + P.T, RNG.normal(size=N)
    quadratic = lambda v: 0.5 * v @ jnp.asarray(P) @ v + jnp.asarray(c) @ v
    points = [np.asarray(w) + sign * np.sqrt(r) * s for s in factors.T for sign in (1, -1)]
    exact = np.mean([0.5 * p @ P @ p + c @ p for p in points])
    assert float(dy.central_flow_time_average(quadratic, state)) == pytest.approx(exact, rel=1e-12)
    Sigma = V @ X @ V.T
    wn = np.asarray(w)
    expected = np.sum(np.sin(wn)) + 0.5 * np.sum(Sigma * np.diag(-np.sin(wn)))
    assert float(dy.central_flow_time_average(lambda v: jnp.sum(jnp.sin(v)), state)) == pytest.approx(expected,
                                                                                                        rel=1e-12)
    L, _, H, _ = ridge_numpy(w)
    predicted = L + 0.5 * np.sum(Sigma * H)
    assert float(dy.central_flow_time_average(ridge_loss, state)) == pytest.approx(predicted, rel=1e-12)
    with pytest.raises(InputError, match="CentralFlowState"):
        dy.central_flow_time_average(ridge_loss, w)


def test_observed_diagnostics_along_a_run_need_no_recomputation():
    """simulate(..., observe_state=True): each saved state's loss, eigenvalues, X and counts at its own parameters
    against NumPy closed forms; stats count the third-derivative products k_c(k_c+1)/2 per analysis."""
    w0 = jnp.asarray(1.3 * Q[:, 0] + 0.9 * Q[:, 1])
    eta = 2.1 / np.linalg.eigvalsh(ridge_numpy(w0)[2])[-1]
    flow = CentralFlow(ridge_loss, eta, k=3, substeps=1, method="dense")
    traj = dy.simulate(flow, w0, np.arange(0.0, 13.0), observe_state=True)
    states = traj.ys
    observed = flow.observe(traj.ts, states)  # what observe=flow.observe saves: the same arrays, fewer of them
    assert set(observed) == set(CentralFlowState._fields) - {"params", "block", "velocity"}
    np.testing.assert_array_equal(np.asarray(observed["X"]), np.asarray(states.X))
    assert isinstance(states, CentralFlowState)
    critical = np.asarray(states.critical)
    assert critical.max() >= 1
    for i in range(0, 13, 3):
        L, g, H, T = ridge_numpy(states.params[i])
        lam = np.linalg.eigvalsh(H)[::-1][:3]
        assert float(states.loss[i]) == pytest.approx(L, rel=1e-13)
        np.testing.assert_allclose(np.asarray(states.eigenvalues[i]), lam, rtol=1e-11)
        c = int(critical[i])
        assert c == np.sum(eta * lam > 1.95)
        if c:
            V = np.asarray(states.block[i][:, :3])
            S = drift_residual(eta, 1.0, lam, V, np.asarray(states.velocity[i]), T, c)
            assert sdcp_violation(np.asarray(states.X[i])[:c, :c], S) <= 1e-8 * 2 / eta
    assert traj.stats["third"] == int(np.sum(critical[1:] * (critical[1:] + 1) // 2))
    assert traj.stats["hvps"] == 12 * N and traj.stats["gradients"] == 12


@pytest.mark.parametrize("eta_lambda_2, eta_lambda_3, tracked, critical, full", [
    (1.7, None, 2, 1, False),
    (None, 1.6, 3, 2, True),
    (None, 1.96, 3, 3, True),
])
def test_tracking_counts_and_all_critical_warning(eta_lambda_2, eta_lambda_3, tracked, critical, full):
    """The counts of eigenvalues above 1.5/eta (tracked) and 1.95/eta (critical) in the k = 3 block against NumPy's
    eigenvalues, third-derivative products only on the critical block, the warning when all k are critical."""
    eta = eta_lambda_2 / LAM_RIDGE[1] if eta_lambda_2 else eta_lambda_3 / LAM_RIDGE[2]
    assert (np.sum(eta * LAM_RIDGE > 1.5), np.sum(eta * LAM_RIDGE > 1.95)) == (tracked, critical)
    flow = CentralFlow(ridge_loss, eta, k=3, substeps=1, method="dense")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = jax.block_until_ready(INIT(flow, W_RIDGE))
    assert (int(state.tracked), int(state.critical), int(state.full)) == (tracked, critical, int(full))
    assert int(state.third) == critical * (critical + 1) // 2
    messages = [str(w.message) for w in caught if "tracked eigenvalues are critical" in str(w.message)]
    assert len(messages) == int(critical == 3) == int(state.crowded)
    if messages:
        assert "Raise k" in messages[0]


def diagonal_loss(w):
    """Hessian diag(DIAG + 3 w^2)."""
    return 0.5 * jnp.sum(jnp.asarray(DIAG) * w**2) + 0.25 * jnp.sum(w**4)


DIAG = np.array([10.0, 8.0, 6.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.01])


def test_tracking_threshold_above_two_over_lr_is_refused():
    with pytest.raises(InputError, match="track = 2.1 .* pass track <= threshold <= 2"):
        CentralFlow(diagonal_loss, 0.1, track=2.1)
    with pytest.raises(InputError, match="exceeds the critical threshold"):
        CentralFlow(diagonal_loss, 0.1, track=1.9, threshold=1.8)


def test_eigensolver_convergence_is_reported_and_warm_starts_work():
    """LOBPCG with one iteration: from a random block it cannot converge on the tracked pairs of a 12-parameter
    Hessian: the state says so, its residuals equal ||H v - lambda v|| recomputed in NumPy, a warning names them, and
    strict=True stops the run. From the exact eigenvectors (start=) it converges at once: (k + guard) x 2 HVPs
    (start + final check), and reaches the exact eigenvalues."""
    eta = 2.2 / DIAG[0]  # eta lambda: 2.2, 1.76, 1.32, ...: two tracked
    exact = np.eye(DIAG.size)[:, :3]  # H = diag(DIAG) at w = 0: eigenvectors e_1..e_3, k = 2 plus 1 guard
    w = jnp.zeros(DIAG.size)
    options = dict(k=2, guard=1, method="lobpcg", max_iterations=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cold = INIT(CentralFlow(diagonal_loss, eta, start=jnp.asarray(RNG.normal(size=exact.shape)), **options), w)
        warm = INIT(CentralFlow(diagonal_loss, eta, start=jnp.asarray(exact), **options), w)
    assert not bool(cold.converged) and int(cold.unconverged) == 1
    V, lam = np.asarray(cold.block[:, :2]), np.asarray(cold.eigenvalues)
    np.testing.assert_allclose(np.asarray(cold.residuals), np.linalg.norm(DIAG[:, None] * V - V * lam, axis=0),
                               rtol=1e-8)
    messages = [str(m.message) for m in caught if "did not converge" in str(m.message)]
    assert len(messages) == 1 and "raise max_iterations (now 1)" in messages[0] and "residuals" in messages[0]
    assert bool(warm.converged) and int(warm.hvps) == 3 * 2 < int(cold.hvps)
    np.testing.assert_allclose(np.asarray(warm.eigenvalues), DIAG[:2], rtol=1e-12)
    strict = CentralFlow(diagonal_loss, eta, strict=True, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SolverBudgetError, match="did not converge on the tracked eigenpairs"):
            with compiled_errors():  # how simulate translates errors raised inside compiled code
                INIT(strict, w + 0.1)
    with pytest.raises(InputError, match="start must be"):
        CentralFlow(diagonal_loss, eta, start=jnp.ones((5, 5))).init(w)


def _largest_intermediate(jaxpr):
    """The largest array (elements) anywhere in a jaxpr, sub-jaxprs (loops, conds) included."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in list(eqn.outvars) + [v for v in eqn.invars if hasattr(v, "aval")]:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (tuple, list)) else [param]):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_intermediate(inner))
    return largest


def test_default_eigensolver_is_dense_only_for_small_models_and_never_dense_at_1e5():
    flow = CentralFlow(diagonal_loss, 0.1)
    assert flow.eigensolver(DENSE_LIMIT) == "dense" and flow.eigensolver(DENSE_LIMIT + 1) == "lobpcg"
    assert CentralFlow(diagonal_loss, 0.1, method="lanczos").eigensolver(10) == "lanczos"
    n = 100_000
    big = CentralFlow(lambda w: 0.5 * jnp.sum(w**2) + 0.25 * jnp.sum(w**4), 0.1)
    jaxpr = jax.make_jaxpr(lambda w: big.step(big.init(w), 0))(jnp.ones(n)).jaxpr
    assert _largest_intermediate(jaxpr) <= 100 * n  # O(n k) memory (LOBPCG's basis: 3(k + guard) columns), never n^2
