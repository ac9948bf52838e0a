"""Implicit-norm minimizers of linear-network regression (Woodworth et al. 2020; Azulay et al. 2021;
Yun, Krishnan, Mobahi 2021), computed independently of any run.

Gradient flow on (1/2)||X beta - y||^2 from a per-coordinate initialization keeps beta = Phi(m) with the
mirror coordinate m(t) = m(0) - X^T int r, so its interpolating limit is beta = Phi(m0 + X^T nu) for the nu
solving X Phi(m0 + X^T nu) = y, i.e. the minimizer of the separable strictly convex Q with
grad Q(beta) = Phi^{-1}(beta) - m0 on {X beta = y}. Solved here by damped Newton on nu (Jacobian
X diag(Phi') X^T), backtracking so that m stays in Phi's domain; certificate: beta is optimal iff
X beta = y and grad Q(beta) lies in range(X^T).
"""

import dataclasses

import numpy as np

from ..errors import DynamicsError, InputError
from ..validation import finite_array


@dataclasses.dataclass(frozen=True)
class MirrorMap:
    """beta = forward(m) elementwise, with derivative and inverse; m0 = inverse(beta(0)); domain |m| < bound."""

    name: str
    forward: callable
    derivative: callable
    inverse: callable
    m0: np.ndarray
    bound: float = np.inf


def _positive(name, value):
    value = np.asarray(value, float)
    if not np.all(value > 0):
        raise InputError(f"{name} must be > 0, got {value}")
    return value


def _h_depth(s, depth):
    p = -depth / (depth - 2.0)
    return (1 - s) ** p - (1 + s) ** p


def _h_depth_prime(s, depth):
    p = -depth / (depth - 2.0)
    return -p * (1 - s) ** (p - 1) - p * (1 + s) ** (p - 1)


def _invert_monotone(forward, derivative, target, lo, hi, iters=200):
    """Elementwise inverse of an increasing map on (lo, hi) by safeguarded Newton (bisection fallback)."""
    target = np.asarray(target, float)
    a = np.full_like(target, lo)
    b = np.full_like(target, hi)
    x = np.clip(np.zeros_like(target), np.nextafter(lo, hi), np.nextafter(hi, lo))
    for _ in range(iters):
        fx = forward(x) - target
        a = np.where(fx < 0, x, a)
        b = np.where(fx > 0, x, b)
        step = x - fx / derivative(x)
        inside = (step > a) & (step < b) & np.isfinite(step)
        new = np.where(inside, step, 0.5 * (a + b))
        if np.all(np.abs(new - x) <= 1e-15 * (1 + np.abs(x))):
            return new
        x = new
    return x


def woodworth_map(alpha, depth, d):
    """beta = w_+^D - w_-^D from w_+(0) = w_-(0) = alpha (beta(0) = 0).
    D = 2: beta = 2 alpha^2 sinh(m);  D > 2: beta = alpha^D h_D(m), h_D(s) = (1-s)^(-D/(D-2)) - (1+s)^(-D/(D-2)), |m| < 1."""
    alpha = np.broadcast_to(_positive("alpha", alpha), (d,))
    if depth == 2:
        return azulay_map(4 * alpha**2, d)
    if depth < 2:
        raise InputError(f"depth must be >= 2 for the +- diagonal model, got {depth}")
    scale = alpha**depth
    return MirrorMap(
        f"woodworth D={depth}", lambda m: scale * _h_depth(m, depth), lambda m: scale * _h_depth_prime(m, depth),
        lambda b: _invert_monotone(lambda s: scale * _h_depth(s, depth), lambda s: scale * _h_depth_prime(s, depth),
                                   b, -1.0, 1.0), np.zeros(d), 1.0)


def azulay_map(kappa, d):
    """Unbiased u*v model (and Woodworth D = 2 with kappa = 4 alpha^2): beta = (kappa/2) sinh(m)."""
    kappa = np.broadcast_to(_positive("kappa", kappa), (d,))
    return MirrorMap("u*v unbiased", lambda m: kappa / 2 * np.sinh(m), lambda m: kappa / 2 * np.cosh(m),
                     lambda b: np.arcsinh(2 * b / kappa), np.zeros(d))


def azulay_kappa(alpha, shape):
    """kappa = 2 (u0^2 + v0^2) = 4 alpha (1 + s^2)/(1 - s^2) for u0 = sqrt(alpha (1-s)/(1+s)), v0 = sqrt(alpha (1+s)/(1-s))."""
    shape = np.asarray(shape, float)
    if not np.all(np.abs(shape) < 1):
        raise InputError(f"the initialization shape s must lie in (-1, 1), got {shape}")
    return 4 * _positive("alpha", alpha) * (1 + shape**2) / (1 - shape**2)


def biased_uv_map(u0, v0):
    """Biased beta = u v from (u0, v0), delta = u0^2 - v0^2 != 0 conserved:
    beta = (|delta|/2) sinh(arcsinh(2 beta0/|delta|) + m)."""
    u0, v0 = np.asarray(u0, float), np.asarray(v0, float)
    delta = np.abs(u0**2 - v0**2)
    if np.any(delta == 0):
        raise InputError("the biased u*v map needs u0^2 != v0^2 in every coordinate (delta = 0 freezes the sign)")
    return MirrorMap("u*v biased", lambda m: delta / 2 * np.sinh(m), lambda m: delta / 2 * np.cosh(m),
                     lambda b: np.arcsinh(2 * b / delta), np.arcsinh(2 * u0 * v0 / delta))


def last_layer_zero_map(a, depth, d):
    """Scheme (ii): |rho_{l,j}(0)| = a_j for l < L, rho_{L,j}(0) = 0. L = 2: rho = (a^2/2) sinh(2m);
    L = 3: rho = z (z^2 + a^2), z = a tan(a m), |a m| < pi/2; L = 4: rho = a^4 mu (1 - mu^2)^-2, mu = a^2 m in (-1, 1)."""
    a = np.broadcast_to(_positive("a", a), (d,))
    if depth == 2:
        return MirrorMap("last-layer-zero L=2", lambda m: a**2 / 2 * np.sinh(2 * m), lambda m: a**2 * np.cosh(2 * m),
                         lambda r: np.arcsinh(2 * r / a**2) / 2, np.zeros(d))
    if depth == 3:
        fwd = lambda m: a * np.tan(a * m) * ((a * np.tan(a * m)) ** 2 + a**2)
        der = lambda m: a**4 * (1 + np.tan(a * m) ** 2) * (3 * np.tan(a * m) ** 2 + 1)
        bound = np.min(np.pi / (2 * a))
        return MirrorMap("last-layer-zero L=3", fwd, der,
                         lambda r: _invert_monotone(fwd, der, r, -bound, bound), np.zeros(d), bound)
    if depth == 4:
        fwd = lambda m: a**4 * (a**2 * m) / (1 - (a**2 * m) ** 2) ** 2
        der = lambda m: a**6 * (1 + 3 * (a**2 * m) ** 2) / (1 - (a**2 * m) ** 2) ** 3
        bound = np.min(1 / a**2)
        return MirrorMap("last-layer-zero L=4", fwd, der,
                         lambda r: _invert_monotone(fwd, der, r, -bound, bound), np.zeros(d), bound)
    raise InputError(f"the last-layer-zero closed forms exist for depth 2, 3, 4; got {depth}")


def require_interpolant(X, y, tol=1e-10):
    """Raise InputError unless X beta = y has a solution (the underdetermined regression setting)."""
    X = finite_array("X", X, ndim=2)
    y = finite_array("y", y, ndim=1)
    for name, value in (("X", X), ("y", y)):
        if np.iscomplexobj(value):
            raise InputError(f"{name} is complex: the implicit-norm programs are real regression problems")
    if X.shape[0] != y.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} entries")
    if X.size == 0:
        raise InputError(f"the system X beta = y is empty (X has shape {X.shape})")
    X, y = X.astype(float), y.astype(float)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    residual = np.linalg.norm(X @ beta - y) / max(np.linalg.norm(y), 1e-300)
    if residual > tol:
        raise InputError(f"X beta = y has no solution (least-squares relative residual {residual:.3g}); the "
                         "implicit-norm theorems need an interpolating (underdetermined, consistent) system")
    return X, y


def _warm_start(X, mirror, nu0):
    nu0 = finite_array("nu0", nu0, ndim=1).astype(float)
    if nu0.shape != (X.shape[0],):
        raise InputError(f"nu0 must have shape ({X.shape[0]},) (one dual variable per equation), got {nu0.shape}")
    m = mirror.m0 + X.T @ nu0
    if not np.all(np.abs(m) < mirror.bound):
        raise InputError(f"nu0 puts the mirror coordinate m0 + X^T nu0 outside the domain of {mirror.name} "
                         f"(max |m| = {np.abs(m).max():.6g} >= {mirror.bound:g})")
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.all(np.isfinite(mirror.forward(m))):
            raise InputError(f"nu0 overflows {mirror.name} (beta = Phi(m0 + X^T nu0) is not finite)")
    return nu0


@dataclasses.dataclass(frozen=True)
class ImplicitNormSolution:
    beta: np.ndarray
    nu: np.ndarray
    residual: float
    iterations: int


def implicit_norm_minimizer(X, y, mirror, tol=1e-13, max_iter=200, nu0=None):
    """argmin Q(beta) s.t. X beta = y for the mirror map ``mirror`` (damped Newton on the dual nu).

    Stops when ||X beta - y|| <= tol ||y||. ``nu0`` (N,): warm start for nu (default 0, i.e. beta = beta(0));
    m0 + X^T nu0 must lie in the map's domain. At extreme scales (alpha -> 0: nu ~ log(1/alpha)) the default
    start needs many damped steps; the nu of a nearby problem (continuation over alpha) cuts them to a few
    full Newton steps. Cost per iteration: one N x N solve plus O(N d) per backtracking trial.
    """
    X, y = require_interpolant(X, y)
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[0]:
        raise InputError(f"the rows of X are linearly dependent (rank {rank} < {X.shape[0]} equations, e.g. a "
                         "duplicate row): the dual nu is not unique and Newton's Jacobian X diag(Phi') X^T is "
                         "singular; drop the dependent equations (the minimizer is the same)")
    nu = np.zeros(X.shape[0]) if nu0 is None else _warm_start(X, mirror, nu0)
    scale = max(np.linalg.norm(y), 1e-300)
    for it in range(max_iter):
        m = mirror.m0 + X.T @ nu
        F = X @ mirror.forward(m) - y
        if np.linalg.norm(F) <= tol * scale:
            return ImplicitNormSolution(mirror.forward(m), nu, float(np.linalg.norm(F) / scale), it)
        J = (X * mirror.derivative(m)) @ X.T
        try:
            step = np.linalg.solve(J, F)
        except np.linalg.LinAlgError:  # Phi' spans more than float64's range: the least-squares Newton step
            step = np.linalg.lstsq(J, F, rcond=None)[0]
        t = 1.0
        with np.errstate(over="ignore", invalid="ignore"):  # trial steps may overflow; they are rejected
            while t > 1e-12:
                trial = mirror.m0 + X.T @ (nu - t * step)
                if np.all(np.abs(trial) < mirror.bound):
                    F_trial = X @ mirror.forward(trial) - y
                    if np.all(np.isfinite(F_trial)) and np.linalg.norm(F_trial) < (1 - 1e-4 * t) * np.linalg.norm(F):
                        break
                t /= 2
        if t <= 1e-12:
            raise DynamicsError(f"implicit_norm_minimizer ({mirror.name}): no Newton step decreases the residual "
                                f"(residual {np.linalg.norm(F) / scale:.3g} after {it} iterations) from "
                                f"{'nu = 0' if nu0 is None else 'the given nu0'}: the start is too far from the "
                                "solution for damped Newton (at small initialization scales nu ~ log(1/alpha)). "
                                "Warm-start with nu0: continue over the scale (e.g. alpha = 1, 0.1, ..., down to "
                                "yours, each solve started at the previous .nu); that reaches alpha = 1e-12 in float64")
        nu = nu - t * step
    raise DynamicsError(f"implicit_norm_minimizer ({mirror.name}): Newton did not reach {tol:g} in {max_iter} "
                        f"iterations (last residual {np.linalg.norm(F) / scale:.3g}); at extreme scales warm-start "
                        "with nu0 (continuation over the scale, see the docstring)")


def optimality_certificate(X, y, beta, mirror):
    """(feasibility ||X beta - y|| / ||y||, ||(I - P_{range X^T}) grad Q(beta)|| / ||grad Q(beta)||); each ratio is
    the absolute residual when its denominator is 0 (y = 0, or grad Q(beta) = 0 at beta = beta(0))."""
    X, y, beta = certificate_inputs(X, y, beta)
    return certificate_residuals(X, y, beta, mirror.inverse(beta) - mirror.m0)


def certificate_inputs(X, y, beta):
    """(X, y, beta) checked finite and of matching shapes, for a certificate of min Q s.t. X beta = y."""
    X = finite_array("X", X, ndim=2)
    y = finite_array("y", y, ndim=1)
    beta = finite_array("beta", beta, ndim=1)
    if y.shape != (X.shape[0],) or beta.shape != (X.shape[1],):
        raise InputError(f"X {X.shape} needs y of shape ({X.shape[0]},) and beta of shape ({X.shape[1]},); got "
                         f"{y.shape}, {beta.shape}")
    return X, y, beta


def certificate_residuals(X, y, beta, grad_q):
    """(||X beta - y|| / ||y||, ||(I - P_{range X^T}) grad_q|| / ||grad_q||), each absolute when its denominator is 0:
    the KKT residuals of min Q s.t. X beta = y at beta with grad Q(beta) = grad_q."""
    coef = np.linalg.lstsq(X.T, grad_q, rcond=None)[0]
    stationarity = np.linalg.norm(grad_q - X.T @ coef) / (np.linalg.norm(grad_q) or 1.0)
    return float(np.linalg.norm(X @ beta - y) / (np.linalg.norm(y) or 1.0)), float(stationarity)


def min_l2_interpolant(X, y):
    X, y = require_interpolant(X, y)
    return np.linalg.pinv(X) @ y
