"""Stability thresholds and the quadratic cycle of SAM and USAM (docs/stability-sam-geometry.md section 1).

On L = w^T H w / 2 USAM is the linear map w -> (I - lr H - lr rho H^2) w, stable iff lr lambda (1 + rho lambda) < 2 for
every eigenvalue lambda, i.e. lambda < lambda* = (sqrt(1 + 8 rho / lr) - 1) / (2 rho) [derived]. Normalized SAM is USAM
with radius rho / ||g||, which gives the SAM-edge of Long & Bartlett (2023, arXiv:2309.12488),

    lambda*_SAM(||g||) = (||g|| / (2 rho)) (sqrt(1 + 8 rho / (lr ||g||)) - 1)    (< 2 / lr; -> 2 / lr as ||g|| -> inf),

and, for lr lambda_1 < 2, its period-2 cycle along the top eigenvector has amplitude A = lr rho lambda_1 / (2 - lr
lambda_1) [derived; Bartlett, Long & Bousquet, JMLR 2023], at which ||g|| = lambda_1 A puts lambda_1 exactly on the
SAM-edge.
"""

import numpy as np

from ..errors import InputError, StepSizeError


def _positive(name, value):
    value = np.asarray(value, float)
    if not np.all(np.isfinite(value) & (value > 0)):
        raise InputError(f"{name} must be finite and > 0, got {value}")
    return value


def usam_threshold(lr, rho):
    """lambda* = (sqrt(1 + 8 rho / lr) - 1) / (2 rho): USAM on a quadratic is linearly stable iff every curvature is
    below it (equivalently lr lambda (1 + rho lambda) < 2), written as 4 / (lr (1 + sqrt(1 + 8 rho / lr))) so it stays
    accurate as rho -> 0 (where it tends to 2 / lr)."""
    lr, rho = _positive("lr", lr), _positive("rho", rho)
    return 4.0 / (lr * (1.0 + np.sqrt(1.0 + 8.0 * rho / lr)))


def sam_threshold(lr, rho, grad_norm):
    """The SAM-edge of Long & Bartlett (2023): (||g|| / (2 rho)) (sqrt(1 + 8 rho / (lr ||g||)) - 1), the USAM
    threshold with radius rho / ||g|| (written stably as 4 / (lr (1 + sqrt(1 + 8 rho / (lr ||g||))))); 0 at g = 0."""
    lr, rho = _positive("lr", lr), _positive("rho", rho)
    grad_norm = np.asarray(grad_norm, float)
    if not np.all(np.isfinite(grad_norm) & (grad_norm >= 0)):
        raise InputError(f"grad_norm must be finite and >= 0, got {grad_norm}")
    with np.errstate(divide="ignore"):
        root = np.sqrt(1.0 + 8.0 * rho / (lr * grad_norm))
    return 4.0 / (lr * (1.0 + root))


def sam_cycle_amplitude(lr, rho, curvature):
    """A = lr rho lambda / (2 - lr lambda): the half-amplitude of normalized SAM's period-2 cycle along an
    eigenvector of curvature lambda on a quadratic (needs lr lambda < 2)."""
    lr, rho, curvature = _positive("lr", lr), _positive("rho", rho), _positive("curvature", curvature)
    if not np.all(lr * curvature < 2):
        raise StepSizeError(f"the SAM cycle needs lr lambda < 2, got lr lambda = {lr * curvature}")
    return lr * rho * curvature / (2.0 - lr * curvature)


def require_usam_stable(lr, rho, curvature, what="USAM"):
    """Raise `StepSizeError` unless lr lambda (1 + rho lambda) < 2 (USAM linearly stable at curvature lambda)."""
    value = float(lr) * float(curvature) * (1.0 + float(rho) * float(curvature))
    if not value < 2.0:
        raise StepSizeError(
            f"{what}: lr lambda (1 + rho lambda) = {value:.6g} >= 2 (lambda = {float(curvature):.6g}, lambda* = "
            f"{float(usam_threshold(lr, rho)):.6g}): USAM is linearly unstable there and the theorem assumes stability")
