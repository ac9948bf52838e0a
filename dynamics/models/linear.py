"""Models: parametrizations that turn data into losses.

Every model states its reduction; the default is the papers' sum loss.
"""

import jax.numpy as jnp
import numpy as np

from .losses import AbstractTail, Exponential, Logistic, MarginLoss, PolyExponential, Squared
from ..errors import InputError
from ..validation import labelled_data

TAILS = {"exp": Exponential, "exponential": Exponential, "logistic": Logistic, "squared": Squared}


def tail_from(spec):
    """A tail from a name ('exp', 'logistic', 'squared', 'polyexp:NU') or an `AbstractTail`."""
    if isinstance(spec, AbstractTail):
        return spec
    if isinstance(spec, str) and spec.startswith("polyexp:"):
        try:
            nu = float(spec.split(":", 1)[1])
        except ValueError:
            nu = None
        if nu is None or not np.isfinite(nu) or nu <= 0:
            raise InputError(f"cannot parse the tail {spec!r}: 'polyexp:NU' needs a finite number NU > 0, "
                             "e.g. 'polyexp:2'")
        return PolyExponential(nu)
    if spec in TAILS:
        return TAILS[spec]()
    raise InputError(f"unknown loss {spec!r}; use one of {sorted(TAILS)}, 'polyexp:NU' or a tail object")


def _linear_margins(w, Z):
    return Z @ w


def linear_classifier(X, y, loss="exp", reduction="sum", bias=False):
    """Linear predictor on (X, y), y in {-1, +1}: f(x) = w.x, or f(x) = w.x + b with ``bias=True``.

    Returns a `MarginLoss` with data z_n = y_n x_n (shape (N, d)) and margins q = Z w;
    L(w) = sum_n l(q_n) for reduction="sum" (default) or its mean. ``bias=True`` appends a column of ones
    to X: the parameter vector is (w_1, ..., w_d, b) with d + 1 entries, the intercept last, and
    q_n = y_n (x_n.w + b). Its max-margin prediction is then max_margin(np.c_[X, np.ones(N)], y), which
    penalizes b like the other weights.
    """
    _, y, Z = labelled_data(X, y)
    if bias:
        Z = np.column_stack([Z, y])
    return MarginLoss(_linear_margins, jnp.asarray(Z), tail_from(loss), reduction)
