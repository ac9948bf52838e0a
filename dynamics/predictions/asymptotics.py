"""Soudry et al. (2018) asymptotics of gradient flow/descent on separable data, exponential tails.

With T = log t (physical time; GD iterate k sits at t = k lr) and generic data whose support
vectors span the data:  w(t) = w_hat T + w_tilde + O(t^-kappa), where w_tilde solves

    z_n.w_tilde = -log alpha_n + offset   (n in S),     P_perp (w_tilde - w(0)) = 0,

P_perp projecting onto span{z_n : n in S}^perp and offset = -log N for a mean loss (0 for sum).
In iteration count k (Soudry's GD statement, lr exp(-z_n.w_tilde_k) = alpha_n) the same limit
reads w_tilde_k = w_tilde + w_hat log lr. Consequences (docs/implicit-bias.md section 2):
direction error ~ C / T, margin gap ~ G / T, t L(w(t)) -> ||w_hat||^2 (sum loss).
"""

import dataclasses

import numpy as np

from ..errors import DynamicsError, InputError
from ..validation import finite_array
from .max_margin import MaxMarginSolution


@dataclasses.dataclass(frozen=True)
class SeparableAsymptotics:
    """w_tilde and the rate constants C (direction), G (margin gap), kappa (residual decay)."""

    w_hat: np.ndarray
    w_tilde: np.ndarray
    direction_constant: float
    margin_constant: float
    kappa: float

    def predict(self, t):
        """w_hat log t + w_tilde: the predicted iterate at physical times t (shape (T, d))."""
        return np.log(np.asarray(t, dtype=float))[..., None] * self.w_hat + self.w_tilde


def separable_asymptotics(solution: MaxMarginSolution, Z, w0=None, reduction="sum"):
    """The refined limit w_tilde of Soudry et al. and the constants C, G, kappa.

    Requires non-degenerate data (every support vector has alpha_n > 0 and the support vectors
    span the data); otherwise w_tilde is trajectory-dependent and this raises `DynamicsError`.
    """
    if solution.degenerate:
        raise DynamicsError(
            "the refined limit w_tilde needs non-degenerate data: support vectors "
            f"{solution.degenerate_support.tolist()} have zero dual weight or the support does not "
            f"span the data (spans_data={solution.spans_data}); only the O(log log t) bound applies.")
    if reduction not in ("sum", "mean"):
        raise InputError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    Z = finite_array("Z", Z, ndim=2)
    d = Z.shape[1]
    if np.shape(solution.w) != (d,) or np.max(solution.support, initial=-1) >= len(Z):
        raise InputError(f"Z ({Z.shape}) is not the data of this max-margin solution (w has shape "
                         f"{np.shape(solution.w)}, support {solution.support.tolist()}): pass Z = y[:, None] * X")
    w0 = np.zeros(d) if w0 is None else finite_array("w0", w0, ndim=1)
    if w0.shape != (d,):
        raise InputError(f"w0 must have shape ({d},) (one entry per feature), got {w0.shape}")
    S, alpha = solution.support, solution.dual[solution.support]
    ZS = Z[S]
    offset = -np.log(len(Z)) if reduction == "mean" else 0.0
    coeffs = np.linalg.lstsq(ZS @ ZS.T, -np.log(alpha) + offset, rcond=None)[0]
    projector_span = ZS.T @ np.linalg.pinv(ZS @ ZS.T) @ ZS
    w_tilde = ZS.T @ coeffs + (np.eye(d) - projector_span) @ w0
    w_hat = solution.w
    norm2 = w_hat @ w_hat
    perp_hat = w_tilde - (w_tilde @ w_hat) / norm2 * w_hat
    direction_constant = np.linalg.norm(perp_hat) / np.sqrt(norm2)
    sv_margins = ZS @ w_tilde
    margin_constant = (alpha / norm2 @ sv_margins - sv_margins.min()) / np.sqrt(norm2)
    curvature = np.linalg.eigvalsh(ZS.T @ np.diag(alpha) @ ZS)
    positive = curvature[curvature > 1e-12 * curvature.max()]
    kappa = min(positive.min(), solution.gap - 1.0)
    return SeparableAsymptotics(w_hat=w_hat, w_tilde=w_tilde, direction_constant=float(direction_constant),
                                margin_constant=float(margin_constant), kappa=float(kappa))
