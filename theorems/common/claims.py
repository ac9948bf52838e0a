"""Claim constructors: each states what it compares, with its role and the one-line reason for its tolerance.

Roles: "theorem" (a prediction of the paper measured on a run) or "consistency" (a check of the instrument).
``why`` is required: a tolerance comes from the theory or from a measured error of an independent computation,
never from the prediction's own residual.
"""

import numpy as np

from ..harness import Claim
from dynamics.measure import fit_line


def _need(why):
    if not why:
        raise ValueError("a claim needs `why`: the reason for its tolerance or threshold")


def identity(name, measured, expected, tolerance, why, *, relative=False, role="theorem", note="", xfail=None):
    """|measured - expected| <= tolerance (times |expected| when ``relative``)."""
    _need(why)
    return Claim(name, measured, expected, tolerance, "rel" if relative else "abs", note, role, why, xfail)


def bound(name, measured, limit, why, *, upper=True, role="theorem", note="", xfail=None):
    """measured <= limit (``upper``) or measured >= limit."""
    _need(why)
    return Claim(name, measured, limit, 0.0, "max" if upper else "min", note, role, why, xfail)


def within(name, measured, low, high, why, *, role="theorem", note="", xfail=None):
    """low <= measured <= high."""
    _need(why)
    return Claim(name, measured, (low, high), 0.0, "range", note, role, why, xfail)


def holds(name, condition, why, *, role="theorem", note="", xfail=None):
    """A yes/no statement (e.g. a set equality, a sign pattern)."""
    _need(why)
    return Claim(name, bool(condition), True, 0.0, "true", note, role, why, xfail)


def monotone(name, values, why, *, increasing=False, slack=0.0, role="theorem", note="", xfail=None):
    """Every step of ``values`` moves the stated way up to ``slack`` (absolute); measured = the worst violation."""
    _need(why)
    steps = np.diff(np.asarray(values, float))
    worst = float(np.max(-steps if increasing else steps)) if steps.size else 0.0
    text = f"worst step against the {'increase' if increasing else 'decrease'}: {worst:.3g}"
    return Claim(name, worst, slack, 0.0, "max", f"{note}; {text}" if note else text, role, why, xfail)


def slope(name, x, y, expected, tolerance, why, *, loglog=True, role="theorem", note="", xfail=None):
    """The least-squares slope of log y on log x (or y on x) equals ``expected`` within ``tolerance``; the fit's
    standard error and the window are stated in the note. The window must be fixed before the run (by the budget
    or the theory), not chosen from it."""
    _need(why)
    x, y = np.asarray(x, float), np.asarray(y, float)
    fx, fy = (np.log(x), np.log(y)) if loglog else (x, y)
    fit = fit_line(fx, fy)
    text = (f"slope {fit.slope:.4f} +- {fit.slope_stderr:.2g} (1 s.e.) over x in [{x.min():.3g}, {x.max():.3g}], "
            f"{x.size} points")
    return Claim(name, float(fit.slope), expected, tolerance, "abs", f"{note}; {text}" if note else text, role, why,
                 xfail)


def z_test(name, samples, expected, why, *, z=4.0, axis=0, role="theorem", note="", xfail=None):
    """A Monte Carlo mean agrees with ``expected``: |mean - expected| <= z s.e. (s.e. = sample std / sqrt(n));
    measured = the largest |z| over the components."""
    _need(why)
    samples = np.asarray(samples, float)
    n = samples.shape[axis]
    mean = samples.mean(axis=axis)
    se = samples.std(axis=axis, ddof=1) / np.sqrt(n)
    scores = np.abs(mean - np.asarray(expected, float)) / np.where(se > 0, se, np.inf)
    text = f"n = {n}, max |mean - expected| / s.e. over {np.size(scores)} component(s)"
    return Claim(name, float(np.max(scores)), z, 0.0, "max", f"{note}; {text}" if note else text, role, why, xfail)


def sign_test_critical(n, level):
    """The smallest k with P(Binomial(n, 1/2) >= k) <= level: the one-sided sign test's critical count, fixed from
    the number of paired comparisons n before any run (n + 1 when no count reaches the level)."""
    from scipy import stats

    return next((k for k in range(n + 1) if stats.binom.sf(k - 1, n, 0.5) <= level), n + 1)


def slope_why(expected, steps, scale, what):
    """The one-line reason for a +-0.15 slope tolerance: a relative correction c h to the leading error C h^p shifts
    the least-squares slope of log error on log h over ``steps`` by s c h_max, s = the least-squares slope of
    h / h_max on log h over the same ladder (0.41 for a factor-8 ladder of 4 points); ``scale`` is ``what``
    (= c h, c taken as the curvature scale) at the largest step."""
    steps = np.asarray(steps, float)
    shift = np.polyfit(np.log(steps), steps / steps.max(), 1)[0] * scale
    return (f"the leading error carries an O({what}) relative correction, {what} = {scale:.2f} at the largest step, "
            f"which shifts the log-log slope over this ladder by ~{shift:.2f}; 0.15 covers that and excludes orders "
            f"{expected:g} +- 1")
