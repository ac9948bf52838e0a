"""Hessian spectral density by stochastic Lanczos quadrature (SLQ), with its error estimate
(docs/stability-sam-geometry.md section 9).

The spectral measure of the n x n Hessian H = sum_k lambda_k u_k u_k^T is mu = (1/n) sum_k delta(lambda - lambda_k),
so int f dmu = tr f(H) / n. For a probe v with E[v v^T] = I (Rademacher or standard Gaussian entries),
E[v^T f(H) v] / n = tr f(H) / n (Hutchinson), and v^T f(H) v / n = int f dmu_v with mu_v = sum_k (u_k.v)^2 / n
delta(lambda - lambda_k). m Lanczos steps from v (`dynamics.linalg.lanczos`, full reorthogonalization) give the
tridiagonal T = S diag(theta) S^T; the m-point Gauss quadrature of mu_v has nodes theta_j (the Ritz values) and
weights tau_j = S_{1j}^2 ||v||^2 / n, and it is exact for polynomials of degree <= 2m - 1 (Golub & Meurant 2010,
ch. 6; Ubaru, Chen & Saad 2017). The SLQ estimate of mu is the average over n_v probes of these quadratures
(Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019).

Error estimate (what `SpectralDensity` reports):

- moments tr(H^p)/n, p <= 2m - 1: the quadrature is exact per probe, so the only error is the probe average's:
  the standard error std_i(q_i) / sqrt(n_v) over the per-probe values q_i = v_i^T H^p v_i / n (an estimate from
  the same probes; the t-distribution with n_v - 1 degrees of freedom is its sampling law for Gaussian q_i);
- the smoothed density phi(x) = int g_sigma(x - lambda) dmu(lambda) (g_sigma: the Gaussian of width sigma): the
  pointwise standard error over probes, plus a bound on the quadrature bias: for each probe
  |sum_j tau_j f(theta_j) - int f dmu_v| <= 2 (||v||^2/n) E_{2m-1}(f) (Gauss quadrature is exact on polynomials of
  degree 2m - 1 and its weights are positive), E_{2m-1}(f) <= ||f - p_cheb||_inf on an interval holding the
  spectrum, p_cheb the degree-(2m - 1) Chebyshev interpolant of f = g_sigma(x - .). The interval is the range of
  the Ritz values widened by their residual estimates; the extreme Ritz values converge first, but a probe nearly
  orthogonal to an extreme eigenvector could miss it, which the bound does not cover.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..derivatives import hvp
from ..errors import InputError, SolverBudgetError
from ..linalg import flat_loss, lanczos
from ..validation import partition_parameters

__all__ = ["SpectralDensity", "spectral_density"]

DISTRIBUTIONS = ("rademacher", "gaussian")
#: points of the default density grid.
GRID_POINTS = 401
#: default kernel width: WIDTH_STEPS / m times the Ritz-value range. The bias bound scales like exp(-(c m width /
#: range)^2): on a 1,443-parameter tanh MLP (tests/test_density.py) its L1 norm was 0.58 at width = range / 50 with
#: m = 30, 1.6e-3 at range / m and 1.8e-7 at 1.5 range / m (m = 30, 60, 90 alike), against a probe error ~5e-3.
WIDTH_STEPS = 1.5
#: points on which the Chebyshev interpolation error of the kernel is measured (the bias bound).
_BIAS_SAMPLES = 2001


class SpectralDensity(NamedTuple):
    """SLQ estimate of a Hessian's spectral measure mu = (1/n) sum_k delta(lambda - lambda_k) and its errors.

    nodes (n_v, m), weights (n_v, m): the Gauss quadrature of each probe (weights sum to ||v||^2/n, 1 for
    Rademacher probes); powers (P,), moments (P,) and moment_stderr (P,): estimates of tr(H^p)/n and their
    standard errors over probes (NaN with one probe); probe_moments (n_v, P); grid (G,), density (G,): the density
    smoothed by a Gaussian of standard deviation ``width``; density_stderr (G,): its pointwise standard error over
    probes; density_bias (G,): a bound on the quadrature bias at each grid point (see the module docstring);
    residuals (n_v, m): Lanczos residual estimates of the Ritz pairs; probes, steps (the Lanczos steps used,
    min(steps, n)), n (parameters), hvps (Hessian-vector products spent).
    """

    nodes: np.ndarray
    weights: np.ndarray
    powers: np.ndarray
    moments: np.ndarray
    moment_stderr: np.ndarray
    probe_moments: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    density_stderr: np.ndarray
    density_bias: np.ndarray
    width: float
    residuals: np.ndarray
    probes: int
    steps: int
    n: int
    hvps: int


def _quadratures(loss, params, V, steps):
    """Ritz values, Gauss weights and residuals of each probe (rows of V): one compiled loop over the probes."""
    E, flat, _ = flat_loss(loss, params)
    matvec = lambda v: hvp(E)(flat, v)
    n = flat.shape[0]

    def one(v):
        result = lanczos(matvec, v, steps)
        first = result.vectors.T @ (v / jnp.linalg.norm(v))  # S_{1j}: V_m^T v_hat = e_1, V_m orthonormal
        return result.values, first**2 * jnp.vdot(v, v) / n, result.residuals

    return jax.lax.map(one, V), jnp.all(jnp.isfinite(flat))


#: `_quadratures` compiled once per (loss object, parameter shapes, number of probes, steps).
_quadratures_compiled = eqx.filter_jit(_quadratures)


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or not float(value).is_integer() \
            or int(value) < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _kernel(x, width):
    return np.exp(-0.5 * (x / width) ** 2) / (width * np.sqrt(2 * np.pi))


def _chebyshev_error(grid, width, low, high, degree):
    """max over [low, high] of |g(x - .) - its degree-``degree`` Chebyshev interpolant|, for each x in ``grid``."""
    k = np.arange(degree + 1)
    nodes = np.cos(np.pi * (k + 0.5) / (degree + 1))                   # Chebyshev points of the first kind
    to_interval = lambda t: 0.5 * (high + low) + 0.5 * (high - low) * t
    samples = np.linspace(-1.0, 1.0, _BIAS_SAMPLES)
    values = _kernel(grid[:, None] - to_interval(nodes)[None], width)  # (G, degree + 1)
    coefficients = np.polynomial.chebyshev.chebfit(nodes, values.T, degree)  # (degree + 1, G), exact interpolation
    interpolant = np.polynomial.chebyshev.chebvander(samples, degree) @ coefficients  # (samples, G)
    exact = _kernel(to_interval(samples)[:, None] - grid[None], width)
    return np.max(np.abs(interpolant - exact), axis=0)


def spectral_density(loss, params, probes=16, steps=40, key=None, *, distribution="rademacher", powers=(1, 2, 3),
                     grid=None, width=None, tol=None):
    """Hessian spectral density of ``loss`` at ``params`` by stochastic Lanczos quadrature: `SpectralDensity`.

    probes: number of random probe vectors n_v (entries Rademacher +-1 or standard Gaussian, ``distribution``,
    drawn from ``key``, default PRNGKey(0)); steps: Lanczos steps m per probe (m HVPs each; min(m, n) are used).
    powers: the p of the moment estimates tr(H^p)/n; each needs p <= 2m - 1 (exact quadrature) unless m >= n,
    else `SolverBudgetError`. grid: points of the smoothed density (default 401 points over the Ritz range
    widened by 4 widths); width: the Gaussian kernel's standard deviation (default 1.5 / m times the Ritz range:
    wide enough for a negligible quadrature bias bound; narrower kernels need more steps, see ``density_bias``).
    tol: requested accuracy of the moments, relative to the scale tr(|H|^p)/n: when a moment's standard error
    exceeds tol times that scale (or cannot be estimated, one probe), `SolverBudgetError` states the moments and
    errors reached and the probes needed. Cost: probes * m HVPs + O(probes n m^2); the Lanczos loop is compiled
    once per (loss object, parameter shapes, probes, steps): new keys and parameter values do not recompile.
    Errors: `InputError` for probes or steps < 1, an unknown distribution, width <= 0, non-finite parameters.
    """
    probes, steps = _count(probes, "probes (the number of SLQ probe vectors)"), _count(steps, "steps (Lanczos)")
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    powers = np.asarray(powers, int).reshape(-1)
    if powers.size == 0 or np.any(powers < 0):
        raise InputError(f"powers must be one or more integers >= 0, got {powers.tolist()}")
    if width is not None and not (np.isfinite(width) and width > 0):
        raise InputError(f"width (the kernel's standard deviation) must be finite and > 0, got {width!r}")
    if tol is not None and not (np.isfinite(tol) and tol > 0):
        raise InputError(f"tol (relative accuracy of the moments) must be finite and > 0, got {tol!r}")
    leaves = jax.tree_util.tree_leaves(partition_parameters(params, "params")[0])
    n = sum(leaf.size for leaf in leaves)
    dtype = jnp.result_type(*leaves)
    m = min(steps, n)
    key = jax.random.PRNGKey(0 if key is None else key) if key is None or isinstance(key, (int, np.integer)) else key
    if distribution == "rademacher":
        V = jax.random.rademacher(key, (probes, n), dtype)
    else:
        V = jax.random.normal(key, (probes, n), dtype)
    (theta, tau, residuals), finite = _quadratures_compiled(loss, params, V, m)
    if not bool(finite):
        raise InputError("params contain NaN or Inf: the Hessian spectrum is undefined there")
    theta, tau, residuals = np.asarray(theta), np.asarray(tau), np.asarray(residuals)
    if not np.all(np.isfinite(theta)):
        raise InputError("the Hessian-vector products are not finite at params: no spectral density")

    exact_degree = np.inf if m >= n else 2 * m - 1
    too_high = powers[powers > exact_degree]
    if too_high.size:
        raise SolverBudgetError(
            f"moments of degree {too_high.tolist()} need more Lanczos steps: m = {m} steps give Gauss quadrature "
            f"exact up to degree {2 * m - 1}; use steps >= {int((too_high.max() + 2) // 2)}")
    probe_moments = np.stack([np.sum(tau * theta**p, axis=1) for p in powers], axis=1)  # (n_v, P)
    scale = np.array([np.mean(np.sum(tau * np.abs(theta) ** p, axis=1)) for p in powers])  # ~ tr(|H|^p)/n
    moments = probe_moments.mean(axis=0)
    stderr = (probe_moments.std(axis=0, ddof=1) / np.sqrt(probes) if probes > 1
              else np.full(powers.shape, np.nan))
    if tol is not None:
        short = ~(stderr <= tol * scale)
        if np.any(short):
            needed = [int(np.ceil(probes * (s / (tol * c)) ** 2)) if np.isfinite(s) and c > 0 else None
                      for s, c in zip(stderr[short], scale[short])]
            raise SolverBudgetError(
                f"SLQ moments tr(H^p)/n for p = {powers[short].tolist()} reached {moments[short].tolist()} with "
                f"standard errors {stderr[short].tolist()} over {probes} probes, above the requested {tol:g} x "
                f"scale tr(|H|^p)/n = {scale[short].tolist()}; the standard error falls like 1/sqrt(probes): about "
                f"{needed} probes would do (at least 2 to estimate an error)")

    spread = float(theta.max() - theta.min())
    width = float(width) if width is not None else WIDTH_STEPS / m * (spread if spread > 0 else max(
        abs(float(theta.max())), 1.0))
    if grid is None:
        grid = np.linspace(theta.min() - 4 * width, theta.max() + 4 * width, GRID_POINTS)
    grid = np.asarray(grid, float).reshape(-1)
    per_probe = np.einsum("ij,gij->ig", tau, _kernel(grid[:, None, None] - theta[None], width))  # (n_v, G)
    density = per_probe.mean(axis=0)
    density_stderr = (per_probe.std(axis=0, ddof=1) / np.sqrt(probes) if probes > 1
                      else np.full(grid.shape, np.nan))
    if m >= n:
        bias = np.zeros_like(grid)
    else:
        pad = float(np.max(residuals[:, [0, -1]]))
        low, high = float(theta.min()) - pad, float(theta.max()) + pad
        high = high if high > low else low + width
        bias = 2 * float(np.mean(tau.sum(axis=1))) * _chebyshev_error(grid, width, low, high, 2 * m - 1)
    return SpectralDensity(theta, tau, powers, moments, stderr, probe_moments, grid, density, density_stderr, bias,
                           width, residuals, probes, m, n, probes * m)
