"""Exact max-margin predictions for linear classifiers (host-side NumPy/SciPy, float64).

l2:  w_hat = argmin ||w||^2  s.t.  Z w >= 1   (z_n = y_n x_n, no bias), gamma* = 1/||w_hat||,
     KKT: w_hat = sum_{n in S} alpha_n z_n, alpha >= 0, and sum alpha = ||w_hat||^2.
l1 and DFT-l1 max margin: see `l1_margin`.
"""

import dataclasses

import numpy as np
import scipy.optimize

from ..errors import DynamicsError, InputError, NonSeparableError, PrecisionError
from ..validation import finite_array, labelled_data

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


#: a Farkas certificate is accepted when |sum_n a_n z_nj| <= CERTIFICATE_TOL sum_n a_n |z_nj| in every coordinate j.
#: Then every w has min_n z_n.w <= sum_n a_n z_n.w <= CERTIFICATE_TOL max_n sum_j |z_nj w_j|: no separator beyond
#: that relative rounding level. Polished certificates reach ~1e-16 on the test data; the LP tolerances 1e-10.
CERTIFICATE_TOL = 1e-9
#: HiGHS feasibility tolerances (its smallest; absolute, so the LPs are solved on equilibrated data).
HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def labelled_real(X, y):
    """`labelled_data` for real data: complex X or y raise `InputError` (a cast would drop the imaginary part)."""
    for name, value in (("X", X), ("y", y)):
        if np.iscomplexobj(value):
            raise InputError(f"{name} is complex ({np.asarray(value).dtype}): the margin programs are real; pass the "
                             f"real part explicitly if that is what you mean, or stack (Re, Im) as features")
    return labelled_data(X, y)


def power_of_two(x):
    """2^round(log2(1/x)) elementwise (1 where x = 0): a scale that multiplies without rounding."""
    x = np.asarray(x, float)
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, np.exp2(-np.round(np.log2(safe))), 1.0)


def equilibrate(Z, sweeps=12):
    """Power-of-two row and column scales (r, c) such that diag(r) Z diag(c) has every nonzero row and column
    maximum in [2^-1/2, 2^1/2] (Ruiz's alternating sqrt scaling, exact in floating point). Separability is invariant
    under both: Z w > 0 iff (r Z c)(w / c) > 0, and Z^T a = 0 iff (r Z c)^T (a / r) = 0."""
    A = np.abs(Z)
    r, c = np.ones(A.shape[0]), np.ones(A.shape[1])
    for _ in range(sweeps):
        r = r * np.sqrt(power_of_two((A * r[:, None] * c).max(axis=1))) if A.shape[1] else r
        c = c * np.sqrt(power_of_two((A * r[:, None] * c).max(axis=0)))
        r, c = np.exp2(np.round(np.log2(r))), np.exp2(np.round(np.log2(c)))
    return r, c


def _verify_farkas(Z, a):
    """a normalized to sum 1 when it is a >= 0 with |Z^T a| <= CERTIFICATE_TOL |Z|^T a per coordinate, else None."""
    if a is None or not np.all(np.isfinite(a)) or np.any(a < 0) or not a.sum() > 0:
        return None
    a = a / a.sum()
    return a if np.all(np.abs(Z.T @ a) <= CERTIFICATE_TOL * (np.abs(Z).T @ a)) else None


def _farkas(Z, r, Zs):
    """A verified Farkas certificate of Z from the LP on the equilibrated Zs = r Z c, or None.

    The LP's a_s is mapped back (a = r a_s) and also polished: on its support S, the least-squares solution of
    [Zs_S^T; 1^T] b = [0; 1] (exact cancellation to rounding when S is the right support)."""
    n, d = Zs.shape
    res = scipy.optimize.linprog(np.zeros(n), A_eq=np.vstack([Zs.T, np.ones((1, n))]), b_eq=np.r_[np.zeros(d), 1.0],
                                 bounds=[(0, None)] * n, method="highs", options=HIGHS)
    if res.status != 0:
        return None
    a_s = res.x
    S = np.flatnonzero(a_s > 1e-12 * a_s.max())
    b = np.linalg.lstsq(np.vstack([Zs[S].T, np.ones((1, S.size))]), np.r_[np.zeros(d), 1.0], rcond=None)[0]
    polished = np.zeros(n)
    polished[S] = b
    for candidate in (r * polished, r * a_s):
        verified = _verify_farkas(Z, candidate)
        if verified is not None:
            return verified
    return None


def separability_certificate(Z):
    """None if some w has Z w > 0 (checked in float64 on the original Z); else verified Farkas weights a >= 0,
    sum a = 1 with |sum_n a_n z_nj| <= CERTIFICATE_TOL sum_n a_n |z_nj| for every j (so no w separates beyond that
    relative rounding level). Both LPs run on power-of-two equilibrated data (`equilibrate`): HiGHS drops matrix
    entries below 1e-9 and refuses entries above 1e15, so unscaled data of scale 1e-9 or 1e15, or separated by a
    small feature, would give a false certificate. `PrecisionError` when neither a separator nor a certificate
    verifies (separability undecidable at float64)."""
    Z = finite_array("Z", Z, ndim=2).astype(np.float64)
    if Z.shape[0] == 0:
        raise InputError("Z is empty: no points to separate")
    n, d = Z.shape
    r, c = equilibrate(Z)
    Zs = r[:, None] * Z * c
    if d:
        res = scipy.optimize.linprog(np.zeros(d), A_ub=-Zs, b_ub=-np.ones(n), bounds=[(None, None)] * d,
                                     method="highs", options=HIGHS)
        if res.status == 0 and np.all(Z @ (c * res.x) > 0):
            return None
    certificate = _farkas(Z, r, Zs)
    if certificate is None:
        raise PrecisionError(
            "separability is undecided in float64: the LP on the equilibrated data found neither a w with Z w > 0 "
            f"(checked on the data) nor a Farkas certificate that verifies to {CERTIFICATE_TOL:g} relative; the data "
            "is separable at best at the level of rounding (e.g. features differing by more than 1e15 in scale)")
    return certificate


def require_separable(Z, y=None):
    """Raise `NonSeparableError` (with a verified Farkas certificate, `separability_certificate`) unless some w has
    Z w > 0. With the labels ``y`` (z_n = y_n x_n), the message also says whether an intercept would separate."""
    certificate = separability_certificate(Z)
    if certificate is not None:
        top = np.argsort(-certificate)[:5]
        hint = ""
        try:
            with_bias = y is not None and separability_certificate(np.column_stack([Z, y])) is None
        except PrecisionError:
            with_bias = False
        if with_bias:
            hint = (" The data IS separable with an intercept, y_n (x_n.w + b) > 0: append a column of ones to X "
                    "(e.g. max_margin(np.c_[X, np.ones(len(X))], y)) and train linear_classifier(..., bias=True).")
        raise NonSeparableError(
            "the data is not linearly separable through the origin: the convex combination "
            f"sum_n a_n y_n x_n = 0 with weights a = {np.round(certificate[top], 6).tolist()} on points "
            f"{top.tolist()} (certificate verified: a >= 0, sum a = 1, |sum_n a_n z_nj| <= {CERTIFICATE_TOL:g} "
            "sum_n a_n |z_nj| in every coordinate) rules out every separator without a bias." + hint,
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
    """Active-set iteration: the min-norm w with Z_S w = 1 (w = Z_S^T alpha_S) on S, drop alpha < 0, add violated points."""
    n = Z.shape[0]
    active = set(active)
    for _ in range(10 * n + 10):
        S = np.array(sorted(active))
        w = np.linalg.lstsq(Z[S], np.ones(len(S)), rcond=None)[0]  # min-norm: cond(Z_S), not cond(Z_S)^2
        alpha_S = np.linalg.lstsq(Z[S].T, w, rcond=None)[0]
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
    """Exact l2 max-margin separator (no bias) of labelled data, y in {-1, +1} (real).

    An exact active-set NNLS solve of the least-distance program picks the support, then polishing solves
    Z_S w = 1 for its min-norm w = Z_S^T alpha_S exactly, so w_hat is exact to machine precision (sum alpha =
    ||w||^2 to ~1e-15). The data is first scaled by a power of two s to max |z_nj| ~ 1 (exact; w(s Z) = w(Z) / s,
    alpha(s Z) = alpha(Z) / s^2; alpha under/overflows beyond scales ~1e+-154, w and the margin do not), so any scale from 1e-300 to 1e300 gives the same digits. Raises
    `NonSeparableError` with a verified certificate when no separator exists. Cost: one N x N dual solve plus
    O(|S|^2 d) per polishing round.
    """
    _, y, Z = labelled_real(X, y)
    require_separable(Z, y)
    s = float(power_of_two(np.abs(Z).max()))
    Zs = s * Z
    rough_margins = Zs @ (Zs.T @ _rough_dual(Zs))
    start = np.flatnonzero(rough_margins <= 1.0 + 1e-6)
    w, alpha = _polish(Zs, start if start.size else [int(np.argmin(rough_margins))])
    margins = Zs @ w
    support = np.flatnonzero(np.abs(margins - 1.0) <= ACTIVE_TOL * 10)
    off = np.setdiff1d(np.arange(len(Z)), support)
    zero_dual = support[alpha[support] <= ACTIVE_TOL * max(1.0, alpha.max())]
    spans = np.linalg.matrix_rank(Zs[support]) == np.linalg.matrix_rank(Zs)
    margin = 1.0 / (s * np.linalg.norm(w))  # before unscaling: ||w|| may underflow where 1/||w|| does not
    with np.errstate(over="ignore"):  # alpha ~ 1/scale^2 leaves float64 beyond scales of ~1e+-154 (then inf or 0)
        w, alpha = s * w, (s * alpha) * s
    return MaxMarginSolution(
        w=w, support=support, dual=alpha, margin=float(margin),
        gap=float(margins[off].min()) if off.size else np.inf,
        degenerate_support=zero_dual, spans_data=bool(spans))
