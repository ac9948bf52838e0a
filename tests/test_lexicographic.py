"""`lexicographic_max_margin` against independent computations: exact enumeration in rational arithmetic on a grid that
contains the answer, and a different LP algorithm (sequential maximization of the cumulative sums of the k smallest
margins, Ogryczak & Sliwinski 2003) on random small problems; bad input raises the library's errors."""

import fractions
import itertools

import numpy as np
import pytest
import scipy.optimize

import dynamics as dyn
from dynamics.errors import InputError, NonSeparableError
from theorems.nacson2019_lexicographic import B_STAR, LEVELS, Y_LEX, Z_LEX


def _grid_leximin(Z, denominator):
    """Exact leximin over the unit-l1 vectors with coordinates in (1/denominator) Z, in rational arithmetic."""
    d = Z.shape[1]
    best, best_b = None, None
    rows = [[fractions.Fraction(int(v)) for v in row] for row in Z]
    for parts in itertools.product(range(denominator + 1), repeat=d - 1):
        if sum(parts) > denominator:
            continue
        magnitudes = [*parts, denominator - sum(parts)]
        for signs in itertools.product((1, -1), repeat=d):
            b = [fractions.Fraction(s * m, denominator) for s, m in zip(signs, magnitudes)]
            key = sorted(sum(r * x for r, x in zip(row, b)) for row in rows)
            if best is None or key > best:
                best, best_b = key, b
    return best, best_b


def _cumulative_leximin(Z):
    """Leximin margins by maximizing S_k = (sum of the k smallest margins) for k = 1..N in turn, each S_j (j < k) held
    at its optimum: S_k(q) = max_r k r - sum_n max(r - q_n, 0) is an LP. Lexicographic on sorted vectors is the same
    order as lexicographic on their cumulative sums, so this is the leximin (no blocking sets, no duals)."""
    n, d = Z.shape
    done = []  # (k, value)
    for k in range(1, n + 1):
        ks = [j for j, _ in done] + [k]
        m = len(ks)
        # variables: p (d), q_neg (d), then per constraint j: r_j, s_j (n)
        nv = 2 * d + m * (1 + n)
        A, b = [], []
        A.append(np.r_[np.ones(2 * d), np.zeros(m * (1 + n))])
        b.append(1.0)
        for i in range(m):
            base = 2 * d + i * (1 + n)
            for t in range(n):  # s_t >= r - z_t.b  <=>  r - z_t.(p - q) - s_t <= 0
                row = np.zeros(nv)
                row[:d], row[d:2 * d], row[base], row[base + 1 + t] = -Z[t], Z[t], 1.0, -1.0
                A.append(row)
                b.append(0.0)
        for i, (j, value) in enumerate(done):  # j r_j - sum s >= value - 1e-9
            row = np.zeros(nv)
            base = 2 * d + i * (1 + n)
            row[base], row[base + 1:base + 1 + n] = -j, 1.0
            A.append(row)
            b.append(-(value - 1e-9))
        c = np.zeros(nv)
        base = 2 * d + (m - 1) * (1 + n)
        c[base], c[base + 1:base + 1 + n] = -k, 1.0
        bounds = [(0, None)] * (2 * d) + [(None, None), *[(0, None)] * n] * m
        res = scipy.optimize.linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
        assert res.status == 0
        done.append((k, -res.fun))
    sums = np.array([v for _, v in done])
    return np.diff(np.r_[0.0, sums])


def test_the_theorem_data_against_exact_enumeration():
    X = Y_LEX[:, None] * Z_LEX
    solution = dyn.lexicographic_max_margin(X, Y_LEX)
    key, b = _grid_leximin(Z_LEX, 12)  # b* = (5/12, 3/12, 4/12) lies on the grid
    assert [float(v) for v in key] == pytest.approx(np.sort(LEVELS), abs=1e-15)
    assert np.allclose([float(v) for v in b], B_STAR, atol=1e-15)
    assert np.allclose(solution.w, B_STAR, atol=1e-9)
    assert np.allclose(np.sort(solution.margins), np.sort(LEVELS), atol=1e-9)
    assert [len(s.fixed) for s in solution.stages] == [1, 2, 2, 1]
    assert solution.margin == pytest.approx(1.0, abs=1e-12)
    assert solution.certificate < 1e-9
    fixed_before = np.zeros(len(Z_LEX), bool)
    for stage in solution.stages:  # the dual certificate in the data's own units: weak duality with equality
        lam = stage.dual
        assert np.all(lam[~fixed_before] >= 0) and lam[~fixed_before].sum() == pytest.approx(1.0, abs=1e-12)
        dual_value = np.abs(Z_LEX.T @ lam).max() - lam[fixed_before] @ solution.levels[fixed_before]
        assert dual_value == pytest.approx(stage.value, abs=1e-12)
        fixed_before[stage.fixed] = True


@pytest.mark.parametrize("seed", range(6))
def test_random_small_integer_problems_against_cumulative_sums(seed):
    rng = np.random.default_rng(seed)
    n, d = rng.integers(3, 7), rng.integers(2, 4)
    Z = rng.integers(-1, 4, size=(n, d)).astype(float)
    Z[:, 0] = np.abs(Z[:, 0]) + 1  # separable by e_1; small integers make ties (blocked sets of several points) common
    y = rng.choice([-1.0, 1.0], size=n)
    solution = dyn.lexicographic_max_margin(y[:, None] * Z, y)
    expected = _cumulative_leximin(Z)
    assert np.allclose(np.sort(solution.margins), expected, atol=1e-7)
    assert np.abs(solution.w).sum() <= 1 + 1e-9
    for stage in solution.stages:
        assert stage.gap < 1e-9
        assert np.all(stage.dual[np.isin(np.arange(n), stage.fixed)] > 0)


def test_random_exact_ties_against_cumulative_sums():
    """z_1 = (1, ..., 1) and entries >= 1 elsewhere: gamma_1 = 1 on the whole face {b >= 0, sum b = 1}, so the l1
    max margin is not unique and the later stages decide; the LP's own vertex is (mostly) not the leximin point."""
    differs = 0
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        Z = rng.integers(1, 5, size=(6, 3)).astype(float)
        Z[0] = 1.0
        y = rng.choice([-1.0, 1.0], size=6)
        X = y[:, None] * Z
        solution = dyn.lexicographic_max_margin(X, y)
        assert np.allclose(np.sort(solution.margins), _cumulative_leximin(Z), atol=1e-7)
        assert solution.margin == pytest.approx(1.0, abs=1e-12)
        lp = dyn.l1_max_margin(X, y).w
        differs += not np.allclose(np.sort(Z @ lp) / np.abs(lp).sum(), np.sort(solution.margins), atol=1e-6)
    assert differs >= 2


def test_stage_one_is_the_l1_max_margin():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(8, 3))
    y = np.sign(X @ np.array([1.0, -0.5, 0.2]))
    assert dyn.lexicographic_max_margin(X, y).margin == pytest.approx(dyn.l1_max_margin(X, y).margin, rel=1e-9)


def test_scale_covariance():
    X = Y_LEX[:, None] * Z_LEX
    for scale in (1e-6, 3.0, 1e8):
        solution = dyn.lexicographic_max_margin(scale * X, Y_LEX)
        assert np.allclose(solution.levels / scale, LEVELS, rtol=1e-9)


def test_bad_input():
    X = Y_LEX[:, None] * Z_LEX
    with pytest.raises(NonSeparableError, match="not linearly separable"):
        dyn.lexicographic_max_margin(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, -1.0]))
    with pytest.raises(InputError, match="rows"):
        dyn.lexicographic_max_margin(X, Y_LEX[:-1])
    with pytest.raises(InputError, match="dimension"):
        dyn.lexicographic_max_margin(X[0], Y_LEX)
    with pytest.raises(InputError, match="labels"):
        dyn.lexicographic_max_margin(X, np.abs(Y_LEX) * 2)
    with pytest.raises(InputError, match="NaN"):
        dyn.lexicographic_max_margin(X * np.nan, Y_LEX)
    with pytest.raises(InputError, match="complex"):
        dyn.lexicographic_max_margin(X + 1j, Y_LEX)
