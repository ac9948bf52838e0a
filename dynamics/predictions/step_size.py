"""Step-size bounds the separable-data theorems assume (sum loss; divide by N for a mean loss)."""

import numpy as np

from ..errors import InputError, StepSizeError
from ..models.linear import tail_from
from ..models.losses import Exponential
from ..validation import finite_array


def gd_step_bound(Z, tail, reduction="sum", loss_at_start=None):
    """Largest learning rate the Soudry et al. theorem covers.

    beta-smooth tails (logistic, beta = 1/4): eta < 2 / (beta sigma_max(Z)^2).
    Exponential (not globally smooth; Hessian <= L(w) max_n ||z_n||^2): eta <= 1 / (L(w0) max ||z_n||^2),
    which needs ``loss_at_start``. A mean loss multiplies the bound by N. ``tail``: a tail or its name (`tail_from`).
    """
    Z = finite_array("Z", Z, ndim=2)
    tail = tail_from(tail)
    if reduction not in ("sum", "mean"):
        raise InputError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    scale = len(Z) if reduction == "mean" else 1.0
    if isinstance(tail, Exponential):
        if loss_at_start is None or not loss_at_start > 0:
            raise InputError(f"the exponential-loss bound needs loss_at_start = L(w0) > 0, got {loss_at_start}")
        return scale / (loss_at_start * np.max(np.sum(Z**2, axis=1)))
    if tail.smoothness is None:
        raise StepSizeError(f"no global step bound is known for {type(tail).__name__}")
    return scale * 2.0 / (tail.smoothness * np.linalg.norm(Z, 2) ** 2)


def require_step_below(lr, bound, what="GD"):
    """Raise `StepSizeError` when lr exceeds the theorem's bound."""
    if not lr < bound:
        raise StepSizeError(
            f"{what}: learning rate {lr:.6g} is not below the bound {bound:.6g} the theorem assumes; "
            "outside it the loss may oscillate or diverge (edge of stability) and the theorem says nothing.")
