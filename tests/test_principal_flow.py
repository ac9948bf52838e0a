"""The principal flow (flows.md section 2.5) and Hessian spectra against numpy: complex logs, eigh, GD loops."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy


def _quadratic(A, b=None):
    """E = th^T A th / 2 - b^T th (no conjugation: holomorphic at complex states)."""
    A = jnp.asarray(A)
    b = jnp.zeros(A.shape[0]) if b is None else jnp.asarray(b)
    return lambda th: th @ A @ th / 2 - b @ th


def _with_spectrum(eigenvalues, seed):
    """A = Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return Q @ np.diag(eigenvalues) @ Q.T


def _field(flow, theta):
    """flow.field(0, theta), compiled (equinox runtime errors keep their message under filter_jit)."""
    return eqx.filter_jit(lambda th: flow.field(0.0, th))(theta)


coefficient = jax.jit(dy.principal_coefficient, static_argnames="variant")


def _phi(z):
    """log(1 - z)/z on the principal branch, by numpy: log1p for |z| < 1 (no cancellation near 0), complex log else."""
    z = np.asarray(z, dtype=float)
    inside = np.abs(z) < 1
    out = np.empty(z.shape, complex)
    out[inside] = np.log1p(-z[inside]) / z[inside]
    out[~inside] = np.log((1 - z[~inside]) + 0j) / z[~inside]
    return out


# ----------------------------------------------------------------------------- principal_coefficient


def test_principal_coefficient_principal_branch():
    z = np.concatenate([np.linspace(-3, 3, 601), [1 - 1e-6, 1 + 1e-6, 0.999, 1.001, 1e-4, -1e-4, 2e-4]])
    z = z[(np.abs(z - 1) > 1e-9) & (z != 0)]
    ref = np.log((1 - z) + 0j) / z  # numpy's principal branch: ln|1 - z| + i pi for z > 1
    coeff = np.asarray(coefficient(jnp.asarray(z)))
    far = np.abs(z) > 1e-2  # the plain complex log loses relative accuracy as z -> 0
    np.testing.assert_allclose(coeff[far], ref[far], rtol=1e-12, atol=0)
    np.testing.assert_allclose(coeff, _phi(z), rtol=1e-12, atol=0)
    assert np.all(coeff.imag[z < 1] == 0) and np.all(coeff.imag[z > 1] > 0)


def test_principal_coefficient_real_variant():
    z = np.linspace(-3, 3, 600)  # the grid avoids 0 and 1
    real = np.asarray(coefficient(jnp.asarray(z), "real"))
    assert real.dtype == np.float64
    np.testing.assert_allclose(real, np.log(np.abs(1 - z)) / z, rtol=1e-12, atol=0)


def test_principal_coefficient_near_zero():
    """phi(0) = -1 (gradient flow); near 0 (both sides of the series switch at |z| = 1e-4), against log1p(-z)/z
    and the series -(1 + z/2 + z^2/3 + z^3/4) (next term z^4/5: below 1e-16 relative here)."""
    z = np.array([1e-10, -1e-10, 1e-6, -1e-6, 5e-5, -9.99e-5, 1.0001e-4, -1.0001e-4, 0.0])
    coeff = np.asarray(coefficient(jnp.asarray(z)))
    series = -(1 + z / 2 + z**2 / 3 + z**3 / 4)
    assert np.all(np.isfinite(coeff)) and np.all(coeff.imag == 0)
    np.testing.assert_allclose(coeff.real, series, rtol=1e-12, atol=0)
    nonzero = z != 0
    np.testing.assert_allclose(coeff.real[nonzero], np.log1p(-z[nonzero]) / z[nonzero], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.asarray(coefficient(jnp.asarray(z), "real")), coeff.real)


# ----------------------------------------------------------------------------- the flow


def test_dense_complex_field_on_quadratic():
    """theta' = U phi(h Lambda) U^T g with (Lambda, U) = eigh(A), g = A th - b, in all regimes of h lambda."""
    h = 0.5
    A = _with_spectrum([5.0, 3.0, 1.2, 0.3, -0.8], seed=3)  # h lambda = 2.5, 1.5, 0.6, 0.15, -0.4
    b = np.random.default_rng(4).normal(size=5)
    th = np.random.default_rng(5).normal(size=5)
    lam, U = np.linalg.eigh(A)
    expected = U @ (_phi(h * lam) * (U.T @ (A @ th - b)))
    field = _field(dy.PrincipalFlow(_quadratic(A, b), h), jnp.asarray(th, complex))
    assert np.linalg.norm(field - expected) < 1e-12 * np.linalg.norm(expected)
    real = _field(dy.PrincipalFlow(_quadratic(A, b), h, variant="real"), jnp.asarray(th))
    assert np.linalg.norm(real - expected.real) < 1e-12 * np.linalg.norm(expected.real)


def test_complex_flow_is_gd_on_quadratic():
    """h lambda = (1.8, 0.5, -0.3): oscillation, convergence and a saddle; PF at t = k h is GD iterate k."""
    h = 0.2
    A = _with_spectrum(np.array([1.8, 0.5, -0.3]) / h, seed=6)
    b, th0 = np.array([0.3, -0.2, 0.5]), np.array([1.0, -0.5, 0.7])
    steps = 10
    gd, th = [th0], th0
    for _ in range(steps):
        th = th - h * (A @ th - b)
        gd.append(th)
    traj = dy.simulate(dy.PrincipalFlow(_quadratic(A, b), h), jnp.asarray(th0, complex), h * np.arange(steps + 1),
                       rtol=1e-12, atol=1e-12)
    ys = np.asarray(traj.ys)
    assert np.max(np.abs(ys.real - np.array(gd))) <= 1e-8
    assert np.max(np.abs(ys.imag)) <= 1e-8  # (1 - h lambda)^k is real at integer k


def test_saddle():
    """E = (x^2 - y^2)/2: h lambda = (h, -h), both < 1; PF at t = k h gives ((1 - h)^k x0, (1 + h)^k y0)."""
    h, k = 0.1, np.arange(0, 21, 4)
    y0 = np.array([0.8, 1e-3])
    traj = dy.simulate(dy.PrincipalFlow(lambda th: (th[0] ** 2 - th[1] ** 2) / 2, h, variant="real"), y0, h * k,
                       rtol=1e-12, atol=1e-14)
    expected = np.stack([(1 - h) ** k * y0[0], (1 + h) ** k * y0[1]], axis=1)
    np.testing.assert_allclose(traj.ys, expected, rtol=1e-9, atol=0)


def test_topk_against_dense():
    """30-D quadratic, h lambda_{1,2} = (1.5, 0.8), |h lambda_i| <= 0.05 below: top-k differs from the dense real PF
    only on the complement, by sum_{i>2} (phi(z_i) + 1 + z_i/2) (g.u_i) u_i = O((h lambda_3)^2 ||g_perp||)."""
    h = 0.1
    rng = np.random.default_rng(7)
    eigenvalues = np.concatenate([[15.0, 8.0], rng.uniform(-0.5, 0.5, size=28)])
    A = _with_spectrum(eigenvalues, seed=8)
    th = jnp.asarray(rng.normal(size=30))
    E = _quadratic(A)
    topk = dy.PrincipalFlow(E, h, variant="real", method="topk", k=2)
    dense = dy.PrincipalFlow(E, h, variant="real")
    lam, U = np.linalg.eigh(A)
    lam, U = lam[::-1], U[:, ::-1]
    z, along = h * lam, U.T @ (A @ np.asarray(th))
    predicted = U[:, 2:] @ ((_phi(z[2:]).real + 1 + z[2:] / 2) * along[2:])  # dense - topk
    difference = np.asarray(_field(dense, th) - _field(topk, th))
    g_perp = np.linalg.norm(along[2:])
    h_lambda_3 = np.max(np.abs(z[2:]))
    assert np.linalg.norm(difference) <= (h_lambda_3**2 / 3) / (1 - h_lambda_3) * g_perp
    assert np.linalg.norm(difference - predicted) < 1e-10 * np.linalg.norm(predicted)
    diagnostics = jax.jit(lambda x: topk.diagnostics(x))(th)
    np.testing.assert_allclose(diagnostics["h_lambda"], z[:2], rtol=1e-8)
    assert abs(diagnostics["h_lambda_next"] - z[2]) < 1e-8 * abs(z[2])


# ----------------------------------------------------------------------------- complex Hessians (non-quadratic losses)


def _phi_cut(z):
    """log(1 - z)/z with the cut of log on the negative imaginary axis: log(-i w) + i pi/2 (numpy's principal log)."""
    z = np.asarray(z, complex)
    return (np.log(-1j * (1 - z)) + 0.5j * np.pi) / z


def _phi_eig(Z, v):
    """phi(Z) v by numpy's general eigendecomposition (CPU only; the independent reference), and cond(V)."""
    lam, V = np.linalg.eig(Z)
    return V @ (_phi_cut(lam) * np.linalg.solve(V, v)), np.linalg.cond(V)


apply_phi = jax.jit(dy.processes.principal.principal_matrix_apply)


@pytest.mark.parametrize("seed, n", [(0, 6), (1, 6), (2, 6), (3, 40)])
def test_matrix_phi_against_eig(seed, n):
    """Random n x n complex-symmetric Z (not Hermitian; h lambda spread over about [-3, 3]): the matrix-logarithm
    route against eig + scalar logs. Both are backward stable, so they agree to ~eps cond(V) ||.|| (times a
    modest growth in n); 1e-12 cond(V) leaves two decades at n = 6 and one at n = 40."""
    rng = np.random.default_rng(seed)
    Z = (0.5 / np.sqrt(n / 6)) * (rng.normal(size=(n, n)) + 0.3j * rng.normal(size=(n, n)))
    Z = Z + Z.T
    v = rng.normal(size=n) + 1j * rng.normal(size=n)
    expected, cond = _phi_eig(Z, v)
    out, ok = apply_phi(jnp.asarray(Z), jnp.asarray(v))
    assert bool(ok)
    assert np.linalg.norm(out - expected) <= 1e-12 * cond * np.linalg.norm(expected)


def test_matrix_phi_continuous_across_negative_real_axis():
    """1 - z = -0.5 -+ i eps (z = 1.5 +- i eps): the principal log jumps by 2 pi i there; the cut on the negative
    imaginary axis keeps phi continuous, with the principal value (ln 0.5 + i pi)/1.5 on the axis itself."""
    on_axis = (np.log(0.5) + 1j * np.pi) / 1.5
    for eps in (1e-3, 1e-8, 0.0, -1e-8, -1e-3):
        Z = jnp.asarray([[1.5 + 1j * eps, 0.0], [0.0, 0.2 - 0.1j]])
        out, ok = apply_phi(Z, jnp.asarray([1.0 + 0j, 0.0]))
        assert bool(ok)
        assert abs(complex(out[0]) - _phi_cut(1.5 + 1j * eps)) <= 1e-13
        # |phi'(1.5)| = |3 + ln 2 - i pi| / 2.25 = 2.155; the eps^2 term is ~1e-6 at eps = 1e-3
        assert abs(complex(out[0]) - on_axis) <= 2.2 * abs(eps) + 1e-13


def test_matrix_phi_at_zero():
    """Z = 0 (a zero Hessian direction): phi(0) = -1, the gradient-flow limit, no division by Z."""
    out, ok = apply_phi(jnp.zeros((3, 3), complex), jnp.asarray([1.0, -2.0, 0.5], complex))
    assert bool(ok)
    np.testing.assert_allclose(np.asarray(out), -np.array([1.0, -2.0, 0.5]), rtol=1e-13, atol=0)


def _toy(th):
    return (th[0] * th[1] - 1) ** 2 / 2


def test_complex_field_on_non_quadratic_loss():
    """(th0 th1 - 1)^2/2 at a complex state: H = [[b^2, 2ab - 1], [2ab - 1, a^2]] is complex-symmetric; the field is
    phi_h(H) g by numpy eig (closed-form H and g), in the oscillating regime (h Re lambda_max ~ 1.5)."""
    h = 0.35
    a, b = 2.0 + 0.01j, 0.45 - 0.02j
    H = np.array([[b * b, 2 * a * b - 1], [2 * a * b - 1, a * a]])
    g = (a * b - 1) * np.array([b, a])
    expected, cond = _phi_eig(h * H, g)
    assert 1 < (h * np.linalg.eigvals(H)).real.max() < 2
    field = _field(dy.PrincipalFlow(_toy, h), jnp.asarray([a, b]))
    assert np.linalg.norm(field - expected) <= 1e-12 * cond * np.linalg.norm(expected)


def test_real_y0_promoted():
    """promote(y0): real leaves -> complex128 for the complex variant (unchanged for the real one); the promoted run
    on a quadratic equals GD (plain loop) at t = k h in its real part, and the imaginary part vanishes there."""
    h, steps = 0.4, 6
    A = _with_spectrum([4.5, 1.0], seed=11)  # h lambda = 1.8 (oscillating), 0.4
    flow = dy.PrincipalFlow(_quadratic(A), h)
    th0 = np.array([1.0, -0.3])
    y0 = flow.promote(jnp.asarray(th0))
    assert y0.dtype == jnp.complex128 and np.all(np.asarray(y0).imag == 0)
    assert dy.PrincipalFlow(_quadratic(A), h, variant="real").promote(jnp.asarray(th0)).dtype == jnp.float64
    gd = [th0]
    for _ in range(steps):
        gd.append(gd[-1] - h * A @ gd[-1])
    ys = np.asarray(dy.simulate(flow, y0, h * np.arange(steps + 1), rtol=1e-12, atol=1e-12).ys)
    assert np.max(np.abs(ys.real - np.array(gd))) <= 1e-8 and np.max(np.abs(ys.imag)) <= 1e-8


def test_complex_hessian_singular_point_is_regularized():
    """E = th0^2 + (0.3 + 0.2i) th1^2 (holomorphic, complex Hessian diag(2, 0.6 + 0.4i)) with h = 0.5: h lambda = 1
    exactly on the matrix-logarithm route. The plain logarithm fails there; the flow retries with |1 - h lambda|
    floored at 1e-12 and matches the closed forms: th0(t) = (1e-12)^(t/h) th0(0) (GD: 0 after one step) and th1 =
    GD's (1 - h lambda_1)^k th1(0) at t = k h. Tolerance 1e-4: the shifted logarithm is accurate to ~4e-6 relative
    (measured against eig), times |phi| t / h <= 5 over these 4 steps."""
    E = lambda th: th[0] ** 2 + (0.3 + 0.2j) * th[1] ** 2
    out, ok = apply_phi(jnp.diag(jnp.asarray([1.0 + 0j, 0.3 + 0.2j])), jnp.ones(2, complex))
    assert not bool(ok)
    h, steps = 0.5, 4
    ys = np.asarray(dy.simulate(dy.PrincipalFlow(E, h), jnp.asarray([1.0 + 0j, 1.0]), h * np.arange(steps + 1),
                                rtol=1e-12, atol=1e-14).ys)
    k = np.arange(steps + 1)
    np.testing.assert_allclose(ys[:, 1], (1 - h * (0.6 + 0.4j)) ** k, rtol=1e-4)
    np.testing.assert_allclose(ys[:, 0], 1e-12 ** k, rtol=1e-4, atol=1e-14)


# ----------------------------------------------------------------------------- errors


E2 = _quadratic(np.diag([1.0, 2.0]))


def test_variant_state_mismatch():
    with pytest.raises(dy.InputError, match="promote"):
        dy.PrincipalFlow(E2, 0.1).field(0.0, jnp.ones(2))
    with pytest.raises(dy.InputError, match="real state"):
        dy.PrincipalFlow(E2, 0.1, variant="real").field(0.0, jnp.ones(2, complex))


@pytest.mark.parametrize("kwargs, word", [({"variant": "imaginary"}, "variant"), ({"method": "eig"}, "method"),
                                          ({"method": "topk"}, "real")])
def test_bad_options(kwargs, word):
    with pytest.raises(dy.InputError, match=word):
        dy.PrincipalFlow(E2, 0.1, **kwargs)


def test_non_holomorphic_losses():
    state = jnp.array([1.0 + 0.5j, 2.0])
    with pytest.raises(dy.InputError, match="not holomorphic"):
        dy.PrincipalFlow(lambda th: jnp.sum(jnp.abs(th) ** 2), 0.1).field(0.0, state)
    with pytest.raises(Exception, match="not holomorphic"):  # caught at run time (equinox error)
        _field(dy.PrincipalFlow(lambda th: jnp.sum(th * jnp.conj(th)), 0.1), state)


@pytest.mark.parametrize("variant", ["complex", "real"])
def test_singular_point_is_regularized(variant):
    """h lambda = 1 exactly (lambda = 2, h = 0.5): phi_h(1) = ln(1e-12) (|1 - h lambda| floored), so the field is
    ln(1e-12) g = ln(1e-12) 2 theta, finite, and continuous with its neighbours at h lambda = 1 -+ 1e-9."""
    state = jnp.ones(2, complex) if variant == "complex" else jnp.ones(2)
    E = lambda th: jnp.sum(th**2)
    field = np.asarray(_field(dy.PrincipalFlow(E, 0.5, variant=variant), state))
    np.testing.assert_allclose(field, np.log(1e-12) * 2 * np.ones(2), rtol=1e-14)
    for h in (0.5 - 5e-10, 0.5 + 5e-10):
        near = np.asarray(_field(dy.PrincipalFlow(E, h, variant=variant), state))
        assert np.all(np.abs(near.real / field.real - 1) < 0.3) and np.all(np.isfinite(near))


# ----------------------------------------------------------------------------- spectrum


@pytest.mark.parametrize("bottom", [-3.0, -20.0])
def test_lanczos_and_sharpness_against_eigh(bottom):
    """200 x 200 symmetric A (top 10, 7, 5; bulk in [-3, 3]; bottom eigenvalue -3 or -20): Lanczos returns the
    largest *algebraic* eigenvalues, also when the most negative one is larger in magnitude."""
    rng = np.random.default_rng(9)
    eigenvalues = np.concatenate([[10.0, 7.0, 5.0, bottom], rng.uniform(-3, 3, size=196)])
    A = _with_spectrum(eigenvalues, seed=10)
    exact, vectors = np.linalg.eigh(A)
    exact, vectors = exact[::-1], vectors[:, ::-1]
    E, th = _quadratic(A), jnp.asarray(rng.normal(size=200))
    (values, ritz), lanczos, dense = jax.jit(lambda x: (dy.measure.top_eigenpairs(E, x, 3),
                                                         dy.sharpness(E, x, method="lanczos"),
                                                         dy.sharpness(E, x, method="dense")))(th)
    np.testing.assert_allclose(values, exact[:3], rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.sum(np.asarray(ritz) * vectors[:, :3], axis=0)), 1.0, atol=1e-8)
    assert abs(lanczos - exact[0]) < 1e-8 * exact[0]
    assert abs(dense - exact[0]) < 1e-12 * exact[0]
