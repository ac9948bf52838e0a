"""Rate fits: slopes with uncertainty, and 1/T extrapolation of asymptotic constants."""

import dataclasses

import numpy as np

from ..errors import InputError
from ..validation import finite_array


@dataclasses.dataclass(frozen=True)
class LinearFit:
    """y ~ intercept + slope x by least squares, with standard errors (inf with two points: no residual
    degrees of freedom to estimate the noise from)."""

    slope: float
    intercept: float
    slope_stderr: float
    intercept_stderr: float


def fit_line(x, y):
    """Least-squares line through (x_i, y_i): finite 1-D x, y of equal length with at least 2 distinct x.
    Standard errors sigma^2 (A^T A)^-1 with sigma^2 = RSS / (n - 2); inf for n = 2."""
    x = finite_array("x", x, ndim=1).astype(float)
    y = finite_array("y", y, ndim=1).astype(float)
    if x.shape != y.shape or np.unique(x).size < 2:
        raise InputError(f"fit_line needs x, y of one length with at least 2 distinct x; got shapes {x.shape}, "
                         f"{y.shape} with {np.unique(x).size} distinct x")
    A = np.stack([np.ones_like(x), x], axis=1)
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    dof = len(x) - 2
    sigma2 = float(np.sum((y - A @ coef) ** 2)) / dof if dof > 0 else np.inf
    cov = sigma2 * np.linalg.inv(A.T @ A)
    return LinearFit(slope=float(coef[1]), intercept=float(coef[0]),
                     slope_stderr=float(np.sqrt(cov[1, 1])), intercept_stderr=float(np.sqrt(cov[0, 0])))


def _positive(name, values):
    values = finite_array(name, values, ndim=1).astype(float)
    if np.any(values <= 0):
        raise InputError(f"{name} must be positive (a log or 1/{name} is taken), got {name}"
                         f"[{int(np.argmax(values <= 0))}] = {values[values <= 0][0]}")
    return values


def loglog_slope(x, y):
    """Slope of log y against log x (e.g. log error vs log log t); x, y > 0."""
    return fit_line(np.log(_positive("x", x)), np.log(_positive("y", y)))


def extrapolate_inverse(T, values):
    """Fit values(T) = c0 + c1/T and return the fit: c0 (intercept) is the T -> inf limit (T > 0)."""
    return fit_line(1.0 / _positive("T", T), values)
