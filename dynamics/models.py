"""Models: parametrizations that turn data into losses.

Every model states its reduction; the default is the papers' sum loss.
"""

import jax.numpy as jnp

from .losses import AbstractTail, Exponential, Logistic, MarginLoss, PolyExponential, Squared
from .errors import InputError
from .validation import labelled_data

TAILS = {"exp": Exponential, "exponential": Exponential, "logistic": Logistic, "squared": Squared}


def tail_from(spec):
    """A tail from a name ('exp', 'logistic', 'squared', 'polyexp:NU') or an `AbstractTail`."""
    if isinstance(spec, AbstractTail):
        return spec
    if isinstance(spec, str) and spec.startswith("polyexp:"):
        return PolyExponential(float(spec.split(":", 1)[1]))
    if spec in TAILS:
        return TAILS[spec]()
    raise InputError(f"unknown loss {spec!r}; use one of {sorted(TAILS)}, 'polyexp:NU' or a tail object")


def _linear_margins(w, Z):
    return Z @ w


def linear_classifier(X, y, loss="exp", reduction="sum"):
    """Homogeneous linear predictor f(x) = w.x on (X, y), y in {-1, +1}.

    Returns a `MarginLoss` with data Z = y x (shape (N, d)) and margins q = Z w;
    L(w) = sum_n l(z_n.w) for reduction="sum" (default) or its mean.
    """
    _, _, Z = labelled_data(X, y)
    return MarginLoss(_linear_margins, jnp.asarray(Z), tail_from(loss), reduction)
