"""l1-type max-margin and min-norm programs with their dual certificates (host-side NumPy/SciPy HiGHS, float64).

For a norm N with dual norm N_* and z_n = y_n x_n, the max-margin program and its dual are

    P:  min N(w)  s.t.  Z w >= 1,        D:  max 1^T lam  s.t.  N_*(Z^T lam) <= 1,  lam >= 0,

gamma* = 1/min N. For w feasible in P and lam feasible in D the gap splits into two nonnegative parts,

    N(w) - 1^T lam = [N(w) - <Z^T lam, w>]  +  sum_n lam_n (z_n.w - 1),
                      alignment (Z^T lam in the subdifferential of N at w)   complementary slackness

both zero iff (w, lam) is optimal (`margin_certificate`).

- l1: N = ||.||_1, N_* = ||.||_inf; one LP over w = p - q (HiGHS), lam = its constraint multipliers.
- DFT-l1: N(w) = sum_k |(F w)_k| with F the unitary DFT and w real, so (F w)_{d-k} = conj((F w)_k) and both
  members of a conjugate pair count; N_*(g) = max_k |(F g)_k| (Parseval: <g, w> = Re <F g, F w>). A
  second-order cone program, solved by outer approximation (Kelley's cutting planes) on the half spectrum.
- l1 interpolation (regression): min ||b||_1 s.t. X b = y, dual max y.nu s.t. ||X^T nu||_inf <= 1.
- l_{2/L} quasi-norm margin (L >= 3, deep diagonal/ODeCo nets, Yun, Krishnan, Mobahi ICLR 2021): not convex, so
  no certificate; `lq_kkt_vertices` enumerates its strict vertex KKT points (docs/implicit-bias.md section 6).
"""

import dataclasses
import itertools
import math
from typing import NamedTuple

import numpy as np
import scipy.optimize

from ..errors import DynamicsError, InputError, PrecisionError, SolverBudgetError
from ..validation import finite_array
from .implicit_norms import require_interpolant
from .max_margin import HIGHS, labelled_real, power_of_two, require_separable


def dft_l1_norm(w):
    """sum_k |(F w)_k| over all d frequencies (unitary DFT, batched over leading axes)."""
    return np.abs(np.fft.fft(np.asarray(w, float), norm="ortho", axis=-1)).sum(axis=-1)


def _dft_linf_norm(g):
    return np.abs(np.fft.fft(g, norm="ortho", axis=-1)).max(axis=-1)



#: name -> (N, N_*): the norms `margin_certificate` knows.
NORMS = {"l1": (lambda w: np.abs(w).sum(axis=-1), lambda g: np.abs(g).max(axis=-1)),
         "dft_l1": (dft_l1_norm, _dft_linf_norm)}


@dataclasses.dataclass(frozen=True)
class MarginCertificate:
    """Optimality residuals of a pair (w, lam) for min N(w) s.t. Z w >= 1 (all zero at an optimum).

    infeasibility: max(0, 1 - min_n z_n.w). dual_infeasibility: max(0, N_*(Z^T lam) - 1, -min lam).
    alignment: (N(w) - <Z^T lam, w>) / N(w). slackness: sum_n lam_n (z_n.w - 1) / N(w).
    gap: (N(w) - 1^T lam) / N(w) = alignment + slackness.
    """

    infeasibility: float
    dual_infeasibility: float
    alignment: float
    slackness: float
    gap: float


def margin_certificate(X, y, w, dual, norm="l1"):
    """`MarginCertificate` of a candidate w and dual weights (N,) for norm "l1" or "dft_l1". Cost O(N d + d log d)."""
    _, _, Z = labelled_real(X, y)
    if norm not in NORMS:
        raise InputError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    primal, dual_norm = NORMS[norm]
    w, lam = np.asarray(w, float), np.asarray(dual, float)
    if w.shape != (Z.shape[1],) or lam.shape != (Z.shape[0],):
        raise InputError(f"w must have shape ({Z.shape[1]},) and dual ({Z.shape[0]},); got {w.shape}, {lam.shape}")
    if not np.all(np.isfinite(w)) or not np.all(np.isfinite(lam)):
        raise InputError("w and dual must be finite")
    value, g, m = primal(w), Z.T @ lam, Z @ w
    if not value > 0:
        raise InputError("w = 0 is not a candidate separator: the relative residuals divide by N(w)")
    return MarginCertificate(
        infeasibility=float(max(0.0, 1.0 - m.min())),
        dual_infeasibility=float(max(0.0, dual_norm(g) - 1.0, -lam.min())),
        alignment=float((value - g @ w) / value), slackness=float(lam @ (m - 1.0) / value),
        gap=float((value - lam.sum()) / value))


def _l1_program(A, b, equality, name):
    """min ||w||_1 s.t. A w >= b (equality: A w = b), as the HiGHS LP min c^T (p + q) over w = diag(c) (p - q), p, q >= 0.

    c: power-of-two column scales (`max_margin.power_of_two`) that bring every column of A to max |entry| ~ 1, and
    the costs are c / max c: HiGHS's tolerances are absolute and it drops matrix entries below 1e-9 and refuses
    entries above 1e15, so data of scale 1e-9 or 1e15, or a small separating feature, must be scaled (exactly).
    Returns (w, multipliers): lam >= 0 (inequality) or nu (equality), an optimal point of the dual
    max b.lam s.t. ||A^T lam||_inf <= 1 (HiGHS marginals are d(objective)/d(right-hand side), times max c)."""
    d = A.shape[1]
    c = power_of_two(np.abs(A).max(axis=0))
    top = c.max()
    split = np.hstack([A * c, -A * c])
    constraints = {"A_eq": split, "b_eq": b} if equality else {"A_ub": -split, "b_ub": -b}
    res = scipy.optimize.linprog(np.tile(c / top, 2), bounds=(0, None), method="highs", options=HIGHS, **constraints)
    if res.status != 0:
        raise PrecisionError(f"{name}: HiGHS failed on the column-scaled program: {res.message} (the data's "
                             "entries within a column or row differ too much in scale for its tolerances)")
    multipliers = res.eqlin.marginals if equality else np.maximum(-res.ineqlin.marginals, 0.0)
    return c * (res.x[:d] - res.x[d:]), multipliers * top


@dataclasses.dataclass(frozen=True)
class L1MaxMarginSolution:
    """argmin ||w||_1 s.t. Z w >= 1: w (possibly non-unique), margin gamma_1* = 1/||w||_1.

    dual: the LP multipliers lam >= 0 (N,), an optimal dual point. subgradient: Z^T lam, with
    ||Z^T lam||_inf <= 1 and (Z^T lam)_j = sign(w_j) on the support of every l1 solution; off it,
    |(Z^T lam)_j| < 1 is the strict certificate the slow l1 rates depend on. certificate: `MarginCertificate`.
    """

    w: np.ndarray
    margin: float
    dual: np.ndarray
    subgradient: np.ndarray
    certificate: MarginCertificate


def l1_max_margin(X, y):
    """l1 max margin by the LP min 1^T(p + q) s.t. Z(p - q) >= 1, p, q >= 0 (HiGHS), with its dual certificate.

    The LP may be degenerate (several optimal w); compare margins or objectives, not vectors.
    Raises `NonSeparableError` (with a Farkas certificate) when no separator exists.
    """
    _, _, Z = labelled_real(X, y)
    require_separable(Z)
    w, lam = _l1_program(Z, np.ones(len(Z)), False, "l1_max_margin")
    return L1MaxMarginSolution(w=w, margin=1.0 / np.abs(w).sum(), dual=lam, subgradient=Z.T @ lam,
                               certificate=margin_certificate(X, y, w, lam, "l1"))


@dataclasses.dataclass(frozen=True)
class DFTL1MaxMarginSolution:
    """argmin sum_k |(F w)_k| s.t. Z w >= 1 (F the unitary DFT, w real), certified to a relative gap.

    w: the best primal point found, rescaled so that min_n z_n.w = 1. value = upper = N(w) >= optimum >= lower
    (lower = 1^T dual, a dual-feasible point: weak duality). margin: 1/value (gamma_F*, to the gap).
    dual: lam (N,) with max_k |(F Z^T lam)_k| <= 1. subgradient: Z^T lam. lp_solves: LPs solved.
    """

    w: np.ndarray
    value: float
    lower: float
    upper: float
    margin: float
    dual: np.ndarray
    subgradient: np.ndarray
    certificate: MarginCertificate
    lp_solves: int

    @property
    def gap(self):
        """Relative gap (upper - lower) / upper of the bracket around the optimum."""
        return (self.upper - self.lower) / self.upper


def _half_spectrum(d):
    """Rows of Re F and Im F for k = 0..d//2, the pair weights (2, or 1 for the real k = 0 and d/2), real mask."""
    k = np.arange(d // 2 + 1)
    F = np.fft.fft(np.eye(d), norm="ortho")[k]
    real = (k == 0) | (2 * k == d)
    return F.real, F.imag, np.where(real, 1.0, 2.0), real


def dft_l1_max_margin(X, y, tol=1e-10, max_lp=200, initial_angles=8):
    """DFT-l1 max margin: min sum_k |(F w)_k| s.t. Z w >= 1, solved to relative gap <= tol (Kelley cutting planes).

    Epigraph on the half spectrum: min sum_k c_k t_k over (w, t) with |z_k| <= t_k, z_k = (F w)_k, c_k = 2 for
    conjugate pairs and 1 for the real frequencies 0 and d/2 (whose |z_k| <= t_k is exactly +-z_k <= t_k). The
    cone is outer-approximated by cuts Re(exp(-i theta) z_k) <= t_k, starting from ``initial_angles`` angles per
    complex frequency; each LP solve adds a cut at the phase of every z_k with |z_k| > t_k (the angular error
    of the active cuts halves, the LP's error quarters per solve). Bracket: upper = N(w)/min_n z_n.w (a feasible
    point, exact modulus); lower = 1^T lam / max(1, N_*(Z^T lam)) with lam the LP's margin multipliers (the LP
    dual puts (F Z^T lam)_k in the convex hull of the cut directions, inside the unit disk, so lam is dual
    feasible up to rounding). Z is scaled to max |Z_nj| = 1 for the LPs (HiGHS tolerances 1e-10 are absolute).
    Stops when (upper - lower)/upper <= tol; raises `SolverBudgetError` after ``max_lp`` LPs and
    `PrecisionError` when three LPs in a row improve neither bound (tol below the LP tolerance floor, ~1e-11).
    Cost: ~15-20 LPs with d + d//2 + 1 columns and N + O(d (initial_angles + solves)) rows (ms each, d ~ 10).
    """
    _, _, Z = labelled_real(X, y)
    require_separable(Z)
    if not 0 < tol < 1:
        raise InputError(f"tol must lie in (0, 1), got {tol}")
    if int(max_lp) < 1 or int(initial_angles) < 3:
        raise InputError(f"need max_lp >= 1 and initial_angles >= 3, got {max_lp}, {initial_angles}")
    n, d = Z.shape
    scale = 1.0 / power_of_two(np.abs(Z).max())  # a power of two: exact
    re, im, weights, real = _half_spectrum(d)
    K = len(weights)
    cuts_w, cuts_k = [], []

    def add_cuts(ks, thetas):
        cuts_w.extend(np.cos(thetas)[:, None] * re[ks] + np.sin(thetas)[:, None] * im[ks])
        cuts_k.extend(ks)

    complex_k, real_k = np.flatnonzero(~real), np.flatnonzero(real)
    grid = 2 * np.pi * np.arange(initial_angles) / initial_angles
    add_cuts(np.repeat(complex_k, initial_angles), np.tile(grid, complex_k.size))
    add_cuts(np.repeat(real_k, 2), np.tile([0.0, np.pi], real_k.size))
    margin_rows = np.hstack([-Z / scale, np.zeros((n, K))])
    upper, lower, best_w, best_lam, stalled = np.inf, -np.inf, None, None, 0
    for solve in range(1, int(max_lp) + 1):
        A_cut = np.hstack([np.array(cuts_w), -np.eye(K)[cuts_k]])
        res = scipy.optimize.linprog(np.r_[np.zeros(d), weights], A_ub=np.vstack([A_cut, margin_rows]),
                                     b_ub=np.r_[np.zeros(len(cuts_k)), -np.ones(n)],
                                     bounds=[(None, None)] * d + [(0, None)] * K, method="highs", options=HIGHS)
        if res.status != 0:
            raise PrecisionError(f"dft_l1_max_margin: HiGHS failed at LP {solve}: {res.message}. The data is "
                                 "separable (checked), so the LP lost entries: HiGHS drops matrix entries below 1e-9 "
                                 "(after scaling to max |z_nj| = 1), e.g. a separating feature 1e9 times smaller "
                                 "than the others; the DFT norm mixes coordinates, so they cannot be rescaled apart")
        w_s, t = res.x[:d], res.x[d:]
        w, lam = w_s / scale, np.maximum(-res.ineqlin.marginals[-n:], 0.0) / scale
        lam = lam / max(1.0, _dft_linf_norm(Z.T @ lam))
        improved = False
        if lam.sum() > lower:
            lower, best_lam, improved = lam.sum(), lam, True
        if dft_l1_norm(w) / (Z @ w).min() < upper:
            upper, best_w, improved = dft_l1_norm(w) / (Z @ w).min(), w / (Z @ w).min(), True
        gap = (upper - lower) / upper
        if gap <= tol:
            return DFTL1MaxMarginSolution(
                w=best_w, value=float(upper), lower=float(lower), upper=float(upper), margin=float(1.0 / upper),
                dual=best_lam, subgradient=Z.T @ best_lam,
                certificate=margin_certificate(X, y, best_w, best_lam, "dft_l1"), lp_solves=solve)
        stalled = 0 if improved else stalled + 1
        z = re @ w_s + 1j * (im @ w_s)
        violated = np.flatnonzero(~real & (np.abs(z) > t))
        if stalled == 3 or violated.size == 0:
            raise PrecisionError(f"dft_l1_max_margin: stalled at relative gap {gap:.3g} > tol = {tol:g} after {solve} "
                                 f"LPs (bracket [{lower:.17g}, {upper:.17g}]): the LP tolerances (1e-10, absolute on "
                                 "the scaled problem) set the floor; ask for a larger tol")
        add_cuts(violated, np.angle(z[violated]))
    raise SolverBudgetError(f"dft_l1_max_margin: relative gap {gap:.3g} > tol = {tol:g} after {max_lp} LP solves "
                            f"(bracket [{lower:.17g}, {upper:.17g}]); raise max_lp or initial_angles, or loosen tol")


def min_l1_interpolant(X, y):
    """argmin ||beta||_1 s.t. X beta = y (HiGHS LP on beta = p - q)."""
    X, y = require_interpolant(X, y)
    return _l1_program(X, y, True, "min_l1_interpolant")[0]


@dataclasses.dataclass(frozen=True)
class L1InterpolantCertificate:
    """Strict dual certificate of min ||beta||_1 s.t. X beta = y.

    beta: the LP solution. nu: dual optimum (N,). correlation: c = X^T nu (|c_j| = 1 on the support, < 1 off it).
    support: boolean mask |beta_j| > 1e-9 max|beta|. gap: relative duality gap |(||beta||_1 - y.nu)| / ||beta||_1.
    """

    beta: np.ndarray
    nu: np.ndarray
    correlation: np.ndarray
    support: np.ndarray
    gap: float


def l1_interpolant_certificate(X, y, margin=1e-6):
    """min-l1 interpolant with its LP dual; raises `InputError` unless the certificate is strict:
    zero duality gap (<= 1e-9), |c_j| = 1 on the support (to 1e-9), |c_j| < 1 - margin off it
    (the alpha -> 0 rates of diagonal networks need it)."""
    X, y = require_interpolant(X, y)
    beta, nu = _l1_program(X, y, True, "l1_interpolant_certificate")
    c = X.T @ nu
    support = np.abs(beta) > 1e-9 * np.abs(beta).max()
    gap = abs(np.abs(beta).sum() - y @ nu) / np.abs(beta).sum()
    off = np.abs(c[~support]).max() if (~support).any() else 0.0
    if gap > 1e-9 or np.any(np.abs(np.abs(c[support]) - 1) > 1e-9) or off >= 1 - margin:
        raise InputError(f"no strict l1 dual certificate (gap {gap:.2g}, off-support max |c| {off:.6f}, "
                         f"margin {margin:g}): the alpha -> 0 rates need one")
    return L1InterpolantCertificate(beta=beta, nu=nu, correlation=c, support=support, gap=float(gap))


# ----------------------------------------------------------------------------- l_{2/L} quasi-norm margin


class QuasiNormVertex(NamedTuple):
    """A strict vertex KKT point of min sum_j |rho_j|^(2/L) s.t. Z rho >= 1."""

    objective: float  #: sum_j |rho_j|^(2/L)
    rho: np.ndarray  #: (d,), zero off the support
    multipliers: np.ndarray  #: lam_I > 0 on the active rows
    active: tuple  #: active rows I
    support: tuple  #: support J, |J| = |I|


def lq_kkt_vertices(Z, depth, tol=1e-9):
    """The strict vertex KKT points of min sum_j |rho_j|^(2/L) s.t. Z rho >= 1 (L = depth >= 3), by objective.

    On each orthant the objective is concave, so its local minimizers over the polyhedron are vertices: a support J
    and |J| active rows I with rho_J = Z_IJ^{-1} 1 (feasible); the quasi-norm's infinite slope at 0 blocks moves off
    J, so the vertex is a KKT point iff lam_I = Z_IJ^{-T} (2/L) |rho_J|^(2/L - 1) sign(rho_J) >= 0 (strict: > 0).
    Exhaustive: sum_k C(d, k) C(n, k) solves of k x k systems, k <= min(n, d); meant for small problems
    (`InputError` above 10^6 systems). Returns a list of `QuasiNormVertex` (empty when Z rho >= 1 is infeasible)."""
    Z = finite_array("Z", Z, ndim=2).astype(np.float64)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 3:
        raise InputError(f"depth must be an integer >= 3 (2/L < 1: a quasi-norm), got {depth!r}; for L = 2 the "
                         "problem is the convex l1 margin, use l1_max_margin")
    n, d = Z.shape
    systems = sum(math.comb(d, k) * math.comb(n, k) for k in range(1, min(n, d) + 1))
    if systems > 10**6:
        raise InputError(f"enumerating the vertices of a {n} x {d} problem solves {systems:.2e} linear systems; "
                         "lq_kkt_vertices is exhaustive and meant for small problems (at most 10^6)")
    q = 2.0 / depth
    out = []
    for k in range(1, min(n, d) + 1):
        for J in itertools.combinations(range(d), k):
            for I in itertools.combinations(range(n), k):
                A = Z[np.ix_(I, J)]
                if abs(np.linalg.det(A)) < 1e-12:
                    continue
                rho_J = np.linalg.solve(A, np.ones(k))
                rho = np.zeros(d)
                rho[list(J)] = rho_J
                if np.min(Z @ rho) < 1 - tol or np.min(np.abs(rho_J)) < tol:
                    continue
                lam = np.linalg.solve(A.T, q * np.abs(rho_J) ** (q - 1) * np.sign(rho_J))
                if np.all(lam > tol):
                    out.append(QuasiNormVertex(float(np.sum(np.abs(rho_J) ** q)), rho, lam, I, J))
    return sorted(out, key=lambda v: v.objective)
