"""Exact linear-stability thresholds of delayed gradient descent (`dynamics.DelayedGD`) on quadratics.

Along an eigenvalue lambda of the Hessian, with a = lr lambda, delayed GD with delay tau and heavy-ball momentum beta
is the linear recursion w_{k+1} = (1 + beta) w_k - beta w_{k-1} - a w_{k-tau}, characteristic polynomial
z^{tau+1} - (1 + beta) z^tau + beta z^{tau-1} + a (times z when tau = 0). It is stable iff every root lies in the open
unit disc (shifted momentum, v_{k+1} = beta v_{k-tau} - grad L(w_{k-tau}): (z - 1)(z^{tau+1} - beta) + a z). Without
momentum the roots cross the unit circle first at a = 2 sin(pi / (2 (2 tau + 1))), the closed form
of `delayed_gd_threshold` (derived in docs/stability-sam-geometry.md section 4; Giladi, Shpigel Nacson, Hoffer,
Soudry 2020, arXiv:1909.12340, state the lr ~ 1 / tau rule it implies). `delayed_threshold_companion` finds the
threshold for any beta from the spectral radius of the recursion's companion matrix, without the closed form.
Thresholds are returned as curvatures (the largest stable lambda, in units of 1 / lr). Bad lr: `StepSizeError`;
bad delay or momentum: `InputError`.
"""

import math

import numpy as np

from ..errors import SolverBudgetError
from ..processes.arguments import flag, integer_parameter
from ..processes.base import positive_lr, real_parameter

__all__ = ["delayed_companion", "delayed_gd_threshold", "delayed_spectral_radius", "delayed_threshold_companion"]


def delayed_gd_threshold(lr, delay):
    """2 sin(pi / (2 (2 delay + 1))) / lr: the largest curvature lambda at which delayed GD without momentum,
    w_{k+1} = w_k - lr lambda w_{k - delay}, is stable (stable iff lr lambda < 2 sin(pi / (4 delay + 2))).
    2 / lr at delay 0, 1 / lr at delay 1, ~ pi / (2 delay lr) for large delay. O(1) cost."""
    lr = float(positive_lr(lr))
    tau = integer_parameter(delay, "delay", 0)
    return 2.0 * math.sin(math.pi / (2 * (2 * tau + 1))) / lr


def delayed_companion(a, delay, momentum=0.0, shifted=False):
    """The companion matrix of delayed GD along one Hessian eigenvalue (a = lr lambda), written from the update rule.

    Heavy ball: (m+1) x (m+1), m = max(delay, 1), for w_{k+1} = (1 + beta) w_k - beta w_{k-1} - a w_{k-tau} on the
    state (w_k, ..., w_{k-m}). Shifted momentum: 2 (tau + 1) square, for u_{k+1} = beta u_{k-tau} - a w_{k-tau},
    w_{k+1} = w_k + u_{k+1} (u = lr v) on the state (w_k, ..., w_{k-tau}, u_k, ..., u_{k-tau})."""
    tau = integer_parameter(delay, "delay", 0)
    beta = float(real_parameter(momentum, "momentum", 0.0, 1.0))
    if flag(shifted, "shifted"):
        n = tau + 1
        C = np.zeros((2 * n, 2 * n))
        C[n, tau] -= float(a)                                     # u_{k+1} = beta u_{k-tau} - a w_{k-tau}
        C[n, n + tau] += beta
        C[0] = C[n]                                               # w_{k+1} = w_k + u_{k+1}
        C[0, 0] += 1.0
        for start in (0, n):                                      # shifts of the two histories
            C[np.arange(start + 1, start + n), np.arange(start, start + n - 1)] = 1.0
        return C
    m = max(tau, 1)
    C = np.zeros((m + 1, m + 1))
    C[0, 0] += 1.0 + beta
    C[0, 1] -= beta
    C[0, tau] -= float(a)
    C[np.arange(1, m + 1), np.arange(m)] = 1.0
    return C


def delayed_spectral_radius(a, delay, momentum=0.0, shifted=False):
    """max |eigenvalue| of `delayed_companion` (numpy eigvals; O(delay^3)): the per-step growth factor of the slowest
    mode of delayed GD at a = lr lambda."""
    return float(np.max(np.abs(np.linalg.eigvals(delayed_companion(a, delay, momentum, shifted)))))


def delayed_threshold_companion(lr, delay, momentum=0.0, shifted=False, *, rtol=1e-13):
    """The largest curvature lambda such that delayed GD (delay tau, heavy-ball or, with ``shifted``, shifted momentum
    beta) is stable for every
    curvature in (0, lambda): the smallest a = lr lambda at which the companion matrix's spectral radius reaches 1,
    divided by lr. Found without any closed form: a geometric scan (factor 1.25) from a = 1e-9 brackets the first
    unstable a, then bisection to relative width ``rtol``. Cost ~100 eigenvalue problems of size delay + 1.
    `SolverBudgetError` if no instability is found below a = 16 (none occurs for beta in [0, 1))."""
    lr = float(positive_lr(lr))
    tau = integer_parameter(delay, "delay", 0)
    beta = float(real_parameter(momentum, "momentum", 0.0, 1.0))
    shifted = flag(shifted, "shifted")
    stable = lambda a: delayed_spectral_radius(a, tau, beta, shifted) < 1.0
    lo = 1e-9
    if not stable(lo):
        raise SolverBudgetError(f"delayed_threshold_companion: a = lr lambda = {lo:g} is already unstable "
                                f"(delay {tau}, momentum {beta:g}); no stable interval to bracket")
    hi = lo * 1.25
    while stable(hi):
        lo, hi = hi, hi * 1.25
        if hi > 16.0:
            raise SolverBudgetError(f"delayed_threshold_companion: no instability found up to a = lr lambda = 16 "
                                    f"(delay {tau}, momentum {beta:g})")
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return 0.5 * (lo + hi) / lr
