"""Exact max-margin predictions for linear classifiers (host-side NumPy/SciPy, float64).

l2:  w_hat = argmin ||w||^2  s.t.  Z w >= 1   (z_n = y_n x_n, no bias), gamma* = 1/||w_hat||,
     KKT: w_hat = sum_{n in S} alpha_n z_n, alpha >= 0, and sum alpha = ||w_hat||^2.
l1 and DFT-l1 max margin: see `l1_margin`.
"""

import dataclasses

import numpy as np
import scipy.optimize

from ..errors import NonSeparableError, DynamicsError
from ..validation import labelled_data

#: relative tolerance deciding which margins equal 1 after polishing (|z.w - 1| <= tol).
ACTIVE_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class MaxMarginSolution:
    """The l2 max-margin separator.

    w: min-norm w with y_n x_n.w >= 1. support: indices with z_n.w = 1. dual: alpha (length N,
    zero off the support). margin: gamma* = 1/||w||. gap: theta = min_{n not in S} z_n.w (> 1;
    inf if every point is a support vector). degenerate_support: support indices with alpha_n = 0
    (data on the margin that carries no dual weight). spans_data: rank(Z_S) == rank(Z).
    """

    w: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    margin: float
    gap: float
    degenerate_support: np.ndarray
    spans_data: bool

    @property
    def degenerate(self):
        """True when some support vector has zero dual weight or the support misses span(Z)."""
        return self.degenerate_support.size > 0 or not self.spans_data

    @property
    def direction(self):
        return self.w / np.linalg.norm(self.w)


def separability_certificate(Z):
    """Farkas weights a >= 0, sum a = 1, Z^T a = 0 if no w has Z w >= 1; None if separable."""
    n, d = Z.shape
    feasible = scipy.optimize.linprog(np.zeros(d), A_ub=-Z, b_ub=-np.ones(n), bounds=[(None, None)] * d,
                                      method="highs")
    if feasible.status == 0:
        return None
    farkas = scipy.optimize.linprog(np.zeros(n), A_eq=np.vstack([Z.T, np.ones((1, n))]),
                                    b_eq=np.r_[np.zeros(d), 1.0], bounds=[(0, None)] * n, method="highs")
    return farkas.x if farkas.status == 0 else np.full(n, np.nan)


def require_separable(Z, y=None):
    """Raise `NonSeparableError` (with the Farkas certificate) unless some w has Z w > 0. With the labels
    ``y`` (z_n = y_n x_n), the message also says whether an intercept would separate the data."""
    certificate = separability_certificate(Z)
    if certificate is not None:
        top = np.argsort(-certificate)[:5]
        hint = ""
        if y is not None and separability_certificate(np.column_stack([Z, y])) is None:
            hint = (" The data IS separable with an intercept, y_n (x_n.w + b) > 0: append a column of ones to X "
                    "(e.g. max_margin(np.c_[X, np.ones(len(X))], y)) and train linear_classifier(..., bias=True).")
        raise NonSeparableError(
            "the data is not linearly separable through the origin: the convex combination "
            f"sum_n a_n y_n x_n = 0 with weights a = {np.round(certificate[top], 6).tolist()} on points "
            f"{top.tolist()} (certificate a >= 0, sum a = 1) rules out every separator without a bias." + hint,
            certificate=certificate)


def _rough_dual(Z):
    """Dual weights from the least-distance program min ||w|| s.t. Z w >= 1 solved by NNLS
    (Lawson & Hanson 1974, ch. 23): u = argmin_{u >= 0} ||[Z^T; 1^T] u - e_{d+1}||, r = residual,
    w = -r[:d]/r[d] = Z^T alpha with alpha = u / (1 - sum u)."""
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, _ = scipy.optimize.nnls(E, f, maxiter=50 * (n + d))
    return u / (1.0 - u.sum())


def _polish(Z, active):
    """Active-set iteration: solve Z_S Z_S^T alpha = 1 on S, drop alpha < 0, add violated points."""
    n = Z.shape[0]
    active = set(active)
    for _ in range(10 * n + 10):
        S = np.array(sorted(active))
        alpha_S = np.linalg.lstsq(Z[S] @ Z[S].T, np.ones(len(S)), rcond=None)[0]
        w = Z[S].T @ alpha_S
        margins = Z @ w
        if alpha_S.min() < -ACTIVE_TOL * max(1.0, alpha_S.max()):
            active.discard(int(S[np.argmin(alpha_S)]))
            continue
        violated = np.flatnonzero(margins < 1.0 - ACTIVE_TOL)
        if violated.size:
            active.add(int(violated[np.argmin(margins[violated])]))
            continue
        alpha = np.zeros(n)
        alpha[S] = np.maximum(alpha_S, 0.0)
        return w, alpha
    raise DynamicsError("max_margin: the active-set polishing did not settle (cycling); report this data set")


def max_margin(X, y):
    """Exact l2 max-margin separator (no bias) of labelled data, y in {-1, +1}.

    An exact active-set NNLS solve of the least-distance program picks the support, then polishing solves
    Z_S Z_S^T alpha_S = 1 exactly, so w_hat is exact to machine precision (sum alpha = ||w||^2
    to ~1e-15). Raises `NonSeparableError` with an LP certificate when no separator exists.
    Cost: one N x N dual solve plus O(|S|^3) per polishing round.
    """
    _, y, Z = labelled_data(X, y)
    require_separable(Z, y)
    rough_margins = Z @ (Z.T @ _rough_dual(Z))
    start = np.flatnonzero(rough_margins <= 1.0 + 1e-6)
    w, alpha = _polish(Z, start if start.size else [int(np.argmin(rough_margins))])
    margins = Z @ w
    support = np.flatnonzero(np.abs(margins - 1.0) <= ACTIVE_TOL * 10)
    off = np.setdiff1d(np.arange(len(Z)), support)
    zero_dual = support[alpha[support] <= ACTIVE_TOL * max(1.0, alpha.max())]
    spans = np.linalg.matrix_rank(Z[support]) == np.linalg.matrix_rank(Z)
    return MaxMarginSolution(
        w=w, support=support, dual=alpha, margin=1.0 / np.linalg.norm(w),
        gap=float(margins[off].min()) if off.size else np.inf,
        degenerate_support=zero_dual, spans_data=bool(spans))
