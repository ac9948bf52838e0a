"""Rate fits: slopes with uncertainty, and 1/T extrapolation of asymptotic constants."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LinearFit:
    """y ~ intercept + slope x by least squares, with standard errors."""

    slope: float
    intercept: float
    slope_stderr: float
    intercept_stderr: float


def fit_line(x, y):
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.shape != y.shape or np.unique(x).size < 2:
        raise ValueError(f"fit_line needs matching x, y with at least 2 distinct x; got {x.shape}, {y.shape}")
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, residual, *_ = np.linalg.lstsq(A, y, rcond=None)
    dof = max(len(x) - 2, 1)
    sigma2 = float(np.sum((y - A @ coef) ** 2)) / dof
    cov = sigma2 * np.linalg.inv(A.T @ A)
    return LinearFit(slope=float(coef[1]), intercept=float(coef[0]),
                     slope_stderr=float(np.sqrt(cov[1, 1])), intercept_stderr=float(np.sqrt(cov[0, 0])))


def loglog_slope(x, y):
    """Slope of log y against log x (e.g. log error vs log log t)."""
    return fit_line(np.log(x), np.log(y))


def extrapolate_inverse(T, values):
    """Fit values(T) = c0 + c1/T and return the fit: c0 (intercept) is the T -> inf limit."""
    return fit_line(1.0 / np.asarray(T, float), values)
