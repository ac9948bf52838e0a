"""Lexicographic l1 max margin by sequential LPs (host-side NumPy/SciPy HiGHS, float64); docs/implicit-bias.md
section "Lexicographic margins".

For z_n = y_n x_n the margin vector of a unit-l1 predictor b is q(b) = Z b. The lexicographic max margin maximizes
the sorted margin vector (q_(1) <= q_(2) <= ...) in lexicographic order over the l1 ball (Nacson, Gunasekar, Lee,
Srebro, Soudry, ICML 2019, arXiv:1905.07325). The set {Z b : ||b||_1 <= 1} is a polytope, so the leximin margin
vector is unique and the classical progressive max-min computes it: stage k solves the LP

    gamma_k = max t  s.t.  z_n.b >= t (n free),  z_n.b = gamma_j(n) (n fixed at stage j < k),  ||b||_1 <= 1,

with b = p - m, p, m >= 0. By complementary slackness every free point with a positive dual weight lambda_n has
z_n.b = gamma_k in *every* stage-k optimum (it is blocked): those points are fixed at gamma_k (as equalities, which
is the same set) and the next stage maximizes the smallest margin of the rest. Each stage fixes at least one point
(sum lambda = 1), so at most N LPs.

Certificate of each stage: the dual point (lambda >= 0 on the free points, sum 1; mu of any sign on the fixed points)
has value ||Z^T (lambda + mu)||_inf - sum_fixed mu_n gamma_j(n) >= gamma_k (weak duality), equal at the optimum: the
`LexicographicStage` records the primal value, this dual value and their gap, recomputed here from the data.
"""

import dataclasses

import numpy as np
import scipy.optimize

from ..errors import PrecisionError
from .max_margin import HIGHS, labelled_real, power_of_two, require_separable

#: a free point is fixed when its dual weight exceeds this (the duals of a stage sum to 1).
BLOCK_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class LexicographicStage:
    """One LP of the progressive max-min: its value gamma, the points it fixes (dual weight > BLOCK_TOL), its dual
    weights (N,) (lambda on free points, mu on fixed ones; invariant under scaling the data), the dual objective
    recomputed from the data and the relative gap |dual - gamma| / max(1, |gamma|) (on data scaled to max |z| ~ 1)."""

    value: float
    fixed: np.ndarray
    dual: np.ndarray
    dual_value: float
    gap: float


@dataclasses.dataclass(frozen=True)
class LexicographicSolution:
    """Lexicographic l1 max margin of labelled data.

    w: a unit-l1 predictor attaining the leximin margins (the margin vector is unique, w need not be). margins: Z w
    (N,). levels: the margin each point is fixed at, gamma of its stage (N,). stages: the `LexicographicStage` list
    (stage 1 is the l1 max margin gamma_1 = 1/min ||w||_1 s.t. Z w >= 1). certificate: max over stages of the
    relative duality gap and of the primal infeasibility max(|levels - margins|, ||w||_1 - 1) (HiGHS: ~1e-10).
    """

    w: np.ndarray
    margins: np.ndarray
    levels: np.ndarray
    stages: list
    certificate: float

    @property
    def margin(self):
        """gamma_1, the l1 max margin."""
        return self.stages[0].value


def _stage(Zs, fixed_level):
    """Solve one stage on the scaled data; fixed_level: (N,) with NaN for free points. The fixed points enter as
    equalities z_n.b = gamma (equivalent: they are blocked), so the LP cannot exploit a one-sided tolerance.
    Returns (value, b, weights): lambda >= 0 on the free points, mu (any sign) on the fixed ones."""
    n, d = Zs.shape
    free = np.isnan(fixed_level)
    # variables (p, m, t); maximize t
    A_ub = np.vstack([np.hstack([-Zs[free], Zs[free], np.ones((free.sum(), 1))]), np.r_[np.ones(2 * d), 0.0][None, :]])
    b_ub = np.r_[np.zeros(free.sum()), 1.0]
    equalities = {}
    if (~free).any():
        equalities = {"A_eq": np.hstack([Zs[~free], -Zs[~free], np.zeros(((~free).sum(), 1))]),
                      "b_eq": fixed_level[~free]}
    res = scipy.optimize.linprog(np.r_[np.zeros(2 * d), -1.0], A_ub=A_ub, b_ub=b_ub,
                                 bounds=[(0, None)] * (2 * d) + [(None, None)], method="highs", options=HIGHS,
                                 **equalities)
    if res.status != 0:
        raise PrecisionError(f"lexicographic_max_margin: HiGHS failed at a stage with {int((~free).sum())} fixed "
                             f"points: {res.message} (data whose entries differ by more than ~1e9 in scale defeat "
                             "the LP tolerances, 1e-10 absolute after scaling to max |z_nj| ~ 1)")
    weights = np.zeros(n)
    weights[free] = np.maximum(-res.ineqlin.marginals[:free.sum()], 0.0)
    if (~free).any():
        weights[~free] = res.eqlin.marginals
    return -res.fun, res.x[:d] - res.x[d:2 * d], weights


def lexicographic_max_margin(X, y):
    """Lexicographic l1 max margin: maximize the smallest margin over ||w||_1 <= 1, fix the points that attain it
    in every optimum, maximize the next smallest, ... (module docstring), with a dual certificate per stage.

    X (N, d) real, y (N,) in {-1, +1}. Raises `NonSeparableError` (with a Farkas certificate) when no w has
    y_n x_n.w > 0 for all n, and `InputError` on malformed data. Cost: at most N LPs with 2d + 1 columns.
    """
    _, _, Z = labelled_real(X, y)
    require_separable(Z)
    n, d = Z.shape
    s = float(power_of_two(np.abs(Z).max()))  # exact scaling: gamma(s Z) = s gamma(Z)
    Zs = s * Z
    level = np.full(n, np.nan)
    stages, w = [], None
    while np.isnan(level).any():
        value, w, weights = _stage(Zs, level)
        free = np.isnan(level)
        newly = np.flatnonzero(free & (weights > BLOCK_TOL))
        if newly.size == 0:  # cannot happen in exact arithmetic (the free duals sum to 1)
            raise PrecisionError("lexicographic_max_margin: a stage fixed no point (all dual weights <= "
                                 f"{BLOCK_TOL:g}); the LP duals are not resolved at this data's scale")
        g = Zs.T @ weights
        fixed_before = ~free
        dual_value = np.abs(g).max() - weights[fixed_before] @ level[fixed_before]
        level[newly] = value
        stages.append(LexicographicStage(value=value / s, fixed=newly, dual=weights,
                                         dual_value=dual_value / s,
                                         gap=abs(dual_value - value) / max(1.0, abs(value))))
    margins = Zs @ w
    infeasible = max(0.0, float(np.max(np.abs(level - margins))), float(np.abs(w).sum() - 1.0))
    return LexicographicSolution(w=w, margins=margins / s, levels=level / s, stages=stages,
                                 certificate=max(infeasible, max(st.gap for st in stages)))

