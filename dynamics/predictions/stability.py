"""Exact linear-stability thresholds of momentum and frozen-preconditioner adaptive methods on quadratics.

On L(w) = w^T H w / 2 each method is a linear recursion that decouples along the eigenvectors of H (of
P^{-1/2} H P^{-1/2} for a fixed diagonal P); along an eigenvalue lambda with a = lr lambda the iterate obeys a
two-term recursion with characteristic polynomial z^2 - T(a) z + D(a). Both roots lie in the open unit disc iff
(Jury) |D| < 1, 1 - T + D > 0 and 1 + T + D > 0; for these methods the binding condition is the root z = -1
(1 + T + D = 0: period-two oscillation), so each is stable iff 0 < lambda < threshold, the number returned here
(the largest stable curvature, in 1/lr units). Derivations: docs/stability-sam-geometry.md section 2; the
thresholds are those of Cohen, Ghorbani, Krishnan et al. 2022 (Adaptive gradient methods at the edge of stability,
arXiv:2207.14484). Each function checks lr > 0 (`StepSizeError`) and beta in [0, 1) (`InputError`).
"""

from ..processes.base import positive_lr, real_parameter

__all__ = ["adam_frozen_threshold", "heavy_ball_threshold", "nesterov_threshold"]


def heavy_ball_threshold(lr, beta):
    """2 (1 + beta) / lr: `HeavyBall` (optax.sgd(lr, momentum=beta)), v_{k+1} = beta v_k - g_k,
    w_{k+1} = w_k + lr v_{k+1}, is stable on a quadratic iff lr lambda < 2 + 2 beta for every eigenvalue.

    w_{k+1} = (1 + beta - a) w_k - beta w_{k-1}: T = 1 + beta - a, D = beta; 1 - T + D = a > 0 and
    1 + T + D = 2 + 2 beta - a > 0. Also the threshold, in lambda(P^{-1} H), of any preconditioned method with
    momentum in this (trace) convention, v = beta v + g, w -= lr P^{-1} v (optax.trace)."""
    lr, beta = positive_lr(lr), real_parameter(beta, "beta", 0.0, 1.0)
    return 2 * (1 + beta) / lr


def nesterov_threshold(lr, beta):
    """(2 + 2 beta) / ((1 + 2 beta) lr): `Nesterov` (optax.sgd(lr, momentum=beta, nesterov=True)),
    v_{k+1} = beta v_k - g_k, w_{k+1} = w_k + lr (beta v_{k+1} - g_k), is stable on a quadratic iff
    lr lambda < (2 + 2 beta) / (1 + 2 beta).

    With u = lr v: (w, u)_{k+1} = [[1 - a (1 + beta), beta^2], [-a, beta]] (w, u)_k, T = (1 - a)(1 + beta),
    D = (1 - a) beta; 1 - T + D = a and 1 + T + D = 2 + 2 beta - a (1 + 2 beta); |D| < 1 holds below the
    threshold since (2 + 2 beta) / (1 + 2 beta) <= 1 + 1 / beta. beta = 0 gives GD's 2 / lr."""
    lr, beta = positive_lr(lr), real_parameter(beta, "beta", 0.0, 1.0)
    return (2 + 2 * beta) / ((1 + 2 * beta) * lr)


def adam_frozen_threshold(lr, beta1):
    """(2 + 2 beta1) / ((1 - beta1) lr) (38 / lr at beta1 = 0.9), in units of lambda(P^{-1} H): Adam with its
    preconditioner P frozen and no bias correction,

        m_{k+1} = beta1 m_k + (1 - beta1) g_k,   w_{k+1} = w_k - lr P^{-1} m_{k+1},   m_0 = 0,

    is stable on a quadratic iff every eigenvalue of P^{-1} H (equivalently of P^{-1/2} H P^{-1/2}) is below it
    (Cohen, Ghorbani, Krishnan et al. 2022). In u = P^{1/2} w, with v = -m / (1 - beta1), this is heavy ball
    (v_{k+1} = beta1 v_k - g_k) with step lr (1 - beta1) on P^{-1/2} H P^{-1/2}: `heavy_ball_threshold` at
    lr (1 - beta1). The EMA factor (1 - beta1) is what separates it from the trace convention (v = beta v + g,
    threshold 2 (1 + beta) / lr). Adam's bias correction m_hat = m / (1 - beta1^t) multiplies the step by
    1 / (1 - beta1^t) -> 1: the threshold is the late-time one."""
    lr, beta1 = positive_lr(lr), real_parameter(beta1, "beta1", 0.0, 1.0)
    return (2 + 2 * beta1) / ((1 - beta1) * lr)
