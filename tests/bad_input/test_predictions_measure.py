"""Bad and edge inputs to every public entry point of `dynamics.predictions` and `dynamics.measure` (issue 11).

A table: each case is (id, call, expectation). The expectation is either `Raises(type, phrase)` (the library's own
exception naming the problem) or `Value(check)` (a correct value, checked against an independent computation: a
closed form, SLSQP, brute force, dense eigh or scale covariance). `classify` sorts an outcome into the issue's
categories (correct, clear error, silent wrong/NaN, false certificate, raw traceback); the test demands the
expected one.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import dynamics as dy
from dynamics import measure as ms
from dynamics import predictions as pr
from dynamics.errors import (DynamicsError, InputError, NonSeparableError, PrecisionError, SolverBudgetError,
                             StepSizeError)
from dynamics.models import tail_from

from .table import Raises, Value, classify


X4 = np.array([[1.0, 2.0], [2.0, 0.5], [-1.5, -1.0], [-0.5, -2.0]])
Y4 = np.array([1.0, 1.0, -1.0, -1.0])
Z4 = Y4[:, None] * X4


def _slsqp_l2_margin(Z):
    """1/||w|| for min ||w||^2/2 s.t. Z w >= 1 by SLSQP on data rescaled to max |Z| = 1 (independent of HiGHS/NNLS)."""
    s = np.abs(Z).max()
    w0 = np.linalg.lstsq(Z / s, np.ones(len(Z)), rcond=None)[0] * 2
    res = scipy.optimize.minimize(lambda w: (0.5 * w @ w, w), w0, jac=True, method="SLSQP",
                                  constraints=[{"type": "ineq", "fun": lambda w: Z / s @ w - 1, "jac": lambda w: Z / s}],
                                  options={"ftol": 1e-14, "maxiter": 500})
    return s / np.linalg.norm(res.x)


M_L2 = _slsqp_l2_margin(Z4)   # SLSQP reference of the unscaled l2 margin (agrees with max_margin to ~1e-9)
M_L1 = 1.25                   # l1: brute-force vertex value 1/0.8 (max_margin tests); checked below at scale 1
EPS_FEATURE = 1e-9
#: z_1 = (1, e), z_2 = (-1, e): separable only by the small second feature; closed forms l2 = l1 margin = e,
#: DFT-l1 margin = e / sqrt(2) (N(w) = sqrt(2) max(|w_1|, |w_2|) in d = 2).
X_SMALL = np.array([[1.0, EPS_FEATURE], [1.0, -EPS_FEATURE]])
Y_SMALL = np.array([1.0, -1.0])
#: not separable, badly scaled: z = (1e6, 1e-6), (-1e6, 1e-6), (1e6, -3e-6) (w_2 > 1e12 |w_1| and w_1 > 3e-12 w_2).
X_MIXED = np.array([[1e6, 1e-6], [1e6, -1e-6], [-1e6, 3e-6]])
Y_MIXED = np.array([1.0, -1.0, -1.0])


def rel(a, b, tol):
    return abs(a - b) <= tol * abs(b)


def _certificate_ok(Z):
    """A `NonSeparableError` whose certificate verifies: a >= 0, sum a = 1, |sum a_n z_nj| <= 1e-9 sum a_n |z_nj|."""
    def call():
        try:
            pr.require_separable(Z)
        except NonSeparableError as e:
            a = e.certificate
            return (np.all(a >= 0) and rel(a.sum(), 1.0, 1e-12)
                    and np.all(np.abs(Z.T @ a) <= 1e-9 * (np.abs(Z).T @ a)))
        return False
    return call


def _quadratic_spectrum(n, seed=0):
    """0.5 w^T H w with H = diag(linspace(0, 1, n)) in a random orthogonal basis: no gap at the top (spacing 1/n)."""
    lam = np.linspace(0.0, 1.0, n)
    Q = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]
    H = jnp.asarray((Q * lam) @ Q.T)
    return (lambda w: 0.5 * w @ (H @ w)), lam.max()


QUAD = lambda w: 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * w**2)  # noqa: E731  (spectrum 1, 2, 3)
MIRROR = pr.woodworth_map(1.0, 2, 3)
XI = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
YI = np.array([1.0, 2.0])
GD = lambda h: dy.GradientDescent(lambda w: 0.0 * jnp.sum(w**2), h)  # noqa: E731  (a constant loss: GD = GF exactly)
GF = lambda h: dy.GradientFlow(lambda w: 0.0 * jnp.sum(w**2))  # noqa: E731


def _nan_tree():
    return {"a": jnp.ones(3), "b": jnp.array([1.0, jnp.nan])}


def _warm_started_small_alpha():
    """implicit_norm_minimizer at alpha = 1e-12 with the continuation warm start its error message advises."""
    X = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]])
    y = np.array([1.0, 0.5])
    nu = None
    for alpha in np.geomspace(1.0, 1e-12, 13):
        nu = pr.implicit_norm_minimizer(X, y, pr.woodworth_map(alpha, 2, 3), nu0=nu).nu
    sol = pr.implicit_norm_minimizer(X, y, pr.woodworth_map(1e-12, 2, 3), nu0=nu)
    return sol, X, y


def _l1_reference(X, y):
    """Brute force l1 max margin: the LP optimum is at a vertex; in d = 2 it is min over the candidate directions
    +-e_j and the pairwise intersections of margin constraints of ||w||_1 / min_n z_n.w."""
    Z = y[:, None] * X
    cands = [np.eye(2)[j] * s for j in range(2) for s in (1, -1)]
    for i in range(len(Z)):
        for k in range(i + 1, len(Z)):
            A = Z[[i, k]]
            if abs(np.linalg.det(A)) > 0:
                cands.append(np.linalg.solve(A, np.ones(2)))
    best = min(np.abs(w).sum() / (Z @ w).min() for w in cands if (Z @ w).min() > 0)
    return 1.0 / best


CASES = [
    # --- item 1: no false certificate (scaled data, a small separating feature), verified certificates
    *[(f"max_margin_scale_{c:g}", lambda c=c: pr.max_margin(c * X4, Y4).margin,
       Value(lambda m, c=c: rel(m, c * M_L2, 1e-8))) for c in (1e-9, 1e-12, 1e15, 1e-200, 1e200)],
    *[(f"l1_max_margin_scale_{c:g}", lambda c=c: pr.l1_max_margin(c * X4, Y4).margin,
       Value(lambda m, c=c: rel(m, c * M_L1, 1e-9))) for c in (1e-9, 1e-12, 1e15, 1e-200, 1e200)],
    *[(f"dft_l1_max_margin_scale_{c:g}", lambda c=c: pr.dft_l1_max_margin(c * X4, Y4).margin,
       Value(lambda m, c=c: rel(m, c * pr.dft_l1_max_margin(X4, Y4).margin, 1e-9))) for c in (1e-9, 1e15, 1e200)],
    ("l1_max_margin_brute_force", lambda: pr.l1_max_margin(X4, Y4).margin,
     Value(lambda m: rel(m, _l1_reference(X4, Y4), 1e-12))),
    ("max_margin_small_feature", lambda: pr.max_margin(X_SMALL, Y_SMALL).margin,
     Value(lambda m: rel(m, EPS_FEATURE, 1e-6))),
    ("l1_max_margin_small_feature", lambda: pr.l1_max_margin(X_SMALL, Y_SMALL).margin,
     Value(lambda m: rel(m, EPS_FEATURE, 1e-6))),
    # the DFT norm mixes coordinates, so a feature 1e9 times smaller than the others cannot be rescaled apart and
    # HiGHS drops it: an honest PrecisionError (not a certificate); at 1e-6 the closed form e / sqrt(2) is met
    ("dft_l1_max_margin_small_feature", lambda: pr.dft_l1_max_margin(X_SMALL, Y_SMALL).margin,
     Raises(PrecisionError, "drops matrix entries")),
    ("dft_l1_max_margin_small_feature_1e-6", lambda: pr.dft_l1_max_margin(np.array([[1.0, 1e-6], [1.0, -1e-6]]),
                                                                          Y_SMALL).margin,
     Value(lambda m: rel(m, 1e-6 / np.sqrt(2), 1e-8))),
    ("separability_certificate_small_feature", lambda: pr.separability_certificate(Y_SMALL[:, None] * X_SMALL),
     Value(lambda c: c is None)),
    ("require_separable_mixed_scales_verified", _certificate_ok(Y_MIXED[:, None] * X_MIXED), Value(bool)),
    ("max_margin_mixed_scales_not_separable", lambda: pr.max_margin(X_MIXED, Y_MIXED),
     Raises(NonSeparableError, "certificate verified")),
    ("separability_certificate_nan", lambda: pr.separability_certificate(np.array([[np.nan, 1.0]])),
     Raises(InputError, "NaN")),
    ("require_separable_vector", lambda: pr.require_separable(np.ones(3)), Raises(InputError, "dimension")),
    # --- item 5 (max_margin family): complex data, labels, shapes, empty
    ("max_margin_complex_X", lambda: pr.max_margin(X4 + 1j, Y4), Raises(InputError, "complex")),
    ("l1_max_margin_complex_X", lambda: pr.l1_max_margin(X4 + 1j, Y4), Raises(InputError, "complex")),
    ("dft_l1_max_margin_complex_X", lambda: pr.dft_l1_max_margin(X4 + 1j, Y4), Raises(InputError, "complex")),
    ("max_margin_labels_0_1", lambda: pr.max_margin(X4, np.array([1.0, 1.0, 0.0, 0.0])), Raises(InputError, "labels")),
    ("max_margin_empty", lambda: pr.max_margin(np.zeros((0, 2)), np.zeros(0)), Raises(InputError, "empty")),
    ("max_margin_mismatched", lambda: pr.max_margin(X4, Y4[:3]), Raises(InputError, "rows")),
    ("max_margin_inf", lambda: pr.max_margin(X4 * np.inf, Y4), Raises(InputError, "NaN or Inf")),
    ("margin_certificate_zero_w", lambda: pr.margin_certificate(X4, Y4, np.zeros(2), np.zeros(4)),
     Raises(InputError, "w = 0")),
    ("margin_certificate_bad_norm", lambda: pr.margin_certificate(X4, Y4, np.ones(2), np.zeros(4), "l2"),
     Raises(InputError, "norm must be")),
    ("dft_l1_norm_against_dft_matrix", lambda: pr.dft_l1_norm(np.array([1.0, -2.0, 0.5])),
     Value(lambda v: rel(v, np.abs(np.exp(-2j * np.pi * np.outer(range(3), range(3)) / 3) @ [1.0, -2.0, 0.5]).sum()
                         / np.sqrt(3), 1e-14))),
    ("lq_kkt_vertices_depth_2", lambda: pr.lq_kkt_vertices(Z4, 2), Raises(InputError, "depth")),
    ("lexicographic_max_margin_not_separable", lambda: pr.lexicographic_max_margin(np.vstack([X4, X4]), np.r_[Y4, -Y4]),
     Raises(NonSeparableError, "certificate verified")),
    ("lexicographic_max_margin_mismatched", lambda: pr.lexicographic_max_margin(X4, Y4[:3]),
     Raises(InputError, "rows")),
    ("lexicographic_max_margin_vs_l1", lambda: pr.lexicographic_max_margin(X4, Y4).margin,
     Value(lambda m: rel(m, pr.l1_max_margin(X4, Y4).margin, 1e-9))),
    # --- item 2: predictor_kkt on a predictor that does not separate
    ("predictor_kkt_not_separating", lambda: ms.predictor_kkt(np.array([1.0, -1.0]), Z4, np.full(4, 0.25), 2),
     Raises(InputError, "does not separate")),
    ("predictor_kkt_zero_margin", lambda: ms.predictor_kkt(np.array([1.0, 0.0]), np.eye(2), np.full(2, 0.5), 2),
     Raises(InputError, "does not separate")),
    ("predictor_kkt_p_shape", lambda: ms.predictor_kkt(np.array([1.0, 1.0]), Z4, np.ones(3) / 3, 2),
     Raises(InputError, "p must")),
    ("predictor_kkt_at_max_margin", lambda: ms.predictor_kkt(np.array([1.0, 1.0]), np.eye(2), np.full(2, 0.5), 2),
     Value(lambda r: abs(r[0]) < 1e-15 and abs(r[1]) < 1e-15)),
    ("predictor_kkt_path_nan_before_separation",  # row 0 does not separate: NaN, row 1 is the max-margin point
     lambda: ms.predictor_kkt_path(np.array([[1.0, 0.0], [1.0, 1.0]]), np.eye(2), np.full((2, 2), 0.5), 2),
     Value(lambda r: r.shape == (2, 2) and np.all(np.isnan(r[0])) and np.all(np.abs(r[1]) < 1e-15))),
    ("predictor_kkt_path_rows_mismatch",
     lambda: ms.predictor_kkt_path(np.ones((3, 2)), np.eye(2), np.full((2, 2), 0.5), 2),
     Raises(InputError, "one row per saved time")),
    ("parameter_kkt_not_separating",
     lambda: ms.parameter_kkt(lambda th, Z: Z @ th, jnp.array([1.0, -1.0]), jnp.asarray(Z4), np.full(4, 0.25), 1),
     Raises(InputError, "does not separate")),
    ("normalized_margin_homogeneous_zero", lambda: ms.normalized_margin_homogeneous(np.ones(2), jnp.zeros(3), 2),
     Raises(InputError, "zero")),
    ("smoothed_margin_zero", lambda: ms.smoothed_margin(np.ones(2), jnp.zeros(3), 2), Raises(InputError, "zero")),
    ("layer_alignment_zero_layer", lambda: ms.layer_alignment([np.zeros((2, 2)), np.ones(2)]),
     Raises(InputError, "zero")),
    ("layer_alignment_empty", lambda: ms.layer_alignment([]), Raises(InputError, "at least one")),
    # --- item 3: sharpness without a gap at the top (n = 2,500 > 2,000; the one slow case)
    ("sharpness_default_gapless_n2500", lambda: ms.sharpness(*_gapless_at(jnp.zeros(2500))),
     Raises(SolverBudgetError, "lower bound")),
    ("sharpness_along_default_gapless_n2500", lambda: ms.sharpness_along(_GAPLESS[0], jnp.zeros((1, 2500))),
     Raises(SolverBudgetError, "did not converge")),
    ("sharpness_converged_gapless_n2500", lambda: ms.sharpness(_GAPLESS[0], jnp.zeros(2500), steps=1000),
     Value(lambda s: rel(s, _GAPLESS[1], 1e-12))),
    ("eigenpairs_lanczos_flags_gapless", lambda: bool(ms.eigenpairs(_GAPLESS[0], jnp.zeros(2500), method="lanczos",
                                                                    steps=40).converged), Value(lambda c: c is False)),
    # --- item 4: NaN parameters, Lanczos steps
    ("sharpness_nan_leaf", lambda: ms.sharpness(lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(p["b"] ** 2), _nan_tree()),
     Raises(InputError, "'b'")),
    ("eigenpairs_nan", lambda: ms.eigenpairs(QUAD, jnp.array([1.0, jnp.nan, 0.0])), Raises(InputError, "NaN")),
    ("top_eigenpairs_inf", lambda: ms.top_eigenpairs(QUAD, jnp.array([1.0, jnp.inf, 0.0]), 1), Raises(InputError, "Inf")),
    ("sharpness_nan_inside_jit", lambda: jax.jit(lambda w: ms.sharpness(QUAD, w))(jnp.array([1.0, jnp.nan, 0.0])),
     Value(lambda s: np.isnan(s))),  # documented: inside jit a non-finite point gives NaN
    ("lanczos_steps_0", lambda: ms.sharpness(QUAD, jnp.ones(3), method="lanczos", steps=0), Raises(InputError, "steps")),
    ("lanczos_steps_negative", lambda: ms.eigenpairs(QUAD, jnp.ones(3), method="lanczos", steps=-3),
     Raises(InputError, "steps")),
    ("lobpcg_steps_float", lambda: ms.eigenpairs(QUAD, jnp.ones(3), method="lobpcg", steps=2.5),
     Raises(InputError, "steps")),
    ("sharpness_dense_value", lambda: ms.sharpness(QUAD, jnp.ones(3)), Value(lambda s: rel(s, 3.0, 1e-14))),
    ("require_converged_not_eigenpairs", lambda: ms.require_converged((1.0, 2.0)), Raises(InputError, "Eigenpairs")),
    ("sharpness_along_nan_row", lambda: ms.sharpness_along(QUAD, jnp.array([[1.0, 0, 0], [jnp.nan, 0, 0]])),
     Raises(InputError, "row 1")),
    ("sharpness_along_vector", lambda: ms.sharpness_along(QUAD, jnp.ones(3)), Raises(InputError, "(T, n)")),
    # --- item 5: geometry, rates, convergence_order
    ("direction_error_zero_w", lambda: ms.direction_error(np.zeros(2), np.ones(2)), Raises(InputError, "zero")),
    ("direction_error_zero_ref", lambda: ms.direction_error(np.ones(2), np.zeros(2)), Raises(InputError, "zero")),
    ("direction_error_mismatch", lambda: ms.direction_error(np.ones(3), np.ones(1)), Raises(InputError, "shape")),
    ("direction_error_batched", lambda: ms.direction_error(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 1.0])),
     Value(lambda e: np.allclose(e, np.sqrt(2 - np.sqrt(2)), rtol=1e-15))),
    ("angle_zero", lambda: ms.angle(np.zeros(2), np.ones(2)), Raises(InputError, "zero")),
    ("angle_value", lambda: ms.angle(np.array([1.0, 0.0]), np.array([1.0, 1.0])),
     Value(lambda a: rel(a, np.pi / 4, 1e-15))),
    ("normalized_margin_zero_w", lambda: ms.normalized_margin(np.zeros(2), Z4), Raises(InputError, "zero")),
    ("normalized_margin_mismatch", lambda: ms.normalized_margin(np.ones(3), Z4), Raises(InputError, "shape")),
    ("normalized_margin_nan", lambda: ms.normalized_margin(np.array([np.nan, 1.0]), Z4), Raises(InputError, "NaN")),
    ("margins_mismatch", lambda: ms.margins(np.ones(3), Z4), Raises(InputError, "shape")),
    ("fit_line_two_points_stderr", lambda: ms.fit_line([0.0, 1.0], [1.0, 3.0]),
     Value(lambda f: rel(f.slope, 2.0, 1e-15) and np.isinf(f.slope_stderr))),
    ("fit_line_nan", lambda: ms.fit_line([0.0, 1.0, 2.0], [1.0, np.nan, 2.0]), Raises(InputError, "NaN")),
    ("fit_line_one_x", lambda: ms.fit_line([1.0, 1.0], [1.0, 2.0]), Raises(InputError, "distinct")),
    ("loglog_slope_nonpositive", lambda: ms.loglog_slope([1.0, 2.0, 4.0], [1.0, 0.0, 2.0]),
     Raises(InputError, "positive")),
    ("extrapolate_inverse_T0", lambda: ms.extrapolate_inverse([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]),
     Raises(InputError, "T")),
    ("convergence_order_one_h", lambda: ms.convergence_order(GD, GF, jnp.ones(2), [0.1]),
     Raises(InputError, "at least two")),
    ("convergence_order_repeated_h", lambda: ms.convergence_order(GD, GF, jnp.ones(2), [0.1, 0.1]),
     Raises(InputError, "distinct")),
    ("convergence_order_negative_h", lambda: ms.convergence_order(GD, GF, jnp.ones(2), [0.1, -0.05]),
     Raises(InputError, "positive")),
    ("convergence_order_zero_errors", lambda: ms.convergence_order(GD, GF, jnp.ones(2), [0.1, 0.05]),
     Raises(InputError, "zero")),
    ("convergence_order_bad_kind", lambda: ms.convergence_order(GD, GF, jnp.ones(2), [0.1, 0.05], kind="mid"),
     Raises(InputError, "kind")),
    # --- item 8: the remaining measure entry points
    ("midpoints_one_row", lambda: ms.midpoints(np.ones((1, 2))), Raises(InputError, "T >= 1")),
    ("distance_to_gd_mismatch", lambda: ms.distance_to_gd(np.ones((3, 2)), np.ones((5, 2))), Raises(InputError, "match")),
    ("loss_oscillation_short", lambda: ms.loss_oscillation(np.ones(5), window=10), Raises(InputError, "window")),
    ("loss_oscillation_window_0", lambda: ms.loss_oscillation(np.ones(5), window=0), Raises(InputError, "window")),
    ("loss_oscillation_nan", lambda: ms.loss_oscillation(np.r_[np.ones(5), np.nan], window=2), Raises(InputError, "NaN")),
    ("balance_defect_mismatch", lambda: ms.balance_defect([np.ones((2, 3)), np.ones((2, 3))]),
     Raises(InputError, "shape")),
    ("balance_defect_value", lambda: ms.balance_defect([np.eye(2), 2 * np.eye(2)]), Value(lambda v: v == 3.0)),
    ("effective_rank_zero", lambda: ms.effective_rank(np.zeros((2, 2))), Raises(InputError, "zero")),
    ("effective_rank_nan", lambda: ms.effective_rank(np.array([[np.nan, 1.0]])), Raises(InputError, "NaN")),
    # --- item 6: separable_asymptotics, tail names
    ("separable_asymptotics_w0_length", lambda: pr.separable_asymptotics(pr.max_margin(np.eye(2), np.ones(2)),
                                                                         np.eye(2), w0=np.ones(3)),
     Raises(InputError, "w0")),
    ("separable_asymptotics_Z_columns", lambda: pr.separable_asymptotics(pr.max_margin(np.eye(2), np.ones(2)),
                                                                         np.eye(3)),
     Raises(InputError, "Z")),
    ("separable_asymptotics_reduction", lambda: pr.separable_asymptotics(pr.max_margin(np.eye(2), np.ones(2)),
                                                                         np.eye(2), reduction="avg"),
     Raises(InputError, "reduction")),
    ("tail_from_polyexp_text", lambda: tail_from("polyexp:abc"), Raises(InputError, "polyexp:abc")),
    ("tail_from_polyexp_nan", lambda: tail_from("polyexp:nan"), Raises(InputError, "polyexp:nan")),
    ("tail_from_unknown", lambda: tail_from("hinge"), Raises(InputError, "hinge")),
    ("gd_step_bound_tail_name", lambda: pr.gd_step_bound(Z4, "logistic"),
     Value(lambda b: rel(b, 2.0 / (0.25 * np.linalg.norm(Z4, 2) ** 2), 1e-15))),
    ("gd_step_bound_exp_no_loss", lambda: pr.gd_step_bound(Z4, "exp"), Raises(InputError, "loss_at_start")),
    ("require_step_below_nan", lambda: pr.require_step_below(np.nan, 1.0), Raises(StepSizeError, "not below")),
    # --- item 7: implicit-norm minimizer
    ("implicit_norm_small_alpha_message", lambda: pr.implicit_norm_minimizer(
        np.array([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]]), np.array([1.0, 0.5]), pr.woodworth_map(1e-12, 2, 3)),
     Raises(DynamicsError, "nu0")),
    ("implicit_norm_small_alpha_warm_start", _warm_started_small_alpha,
     Value(lambda s: max(pr.optimality_certificate(s[1], s[2], s[0].beta, pr.woodworth_map(1e-12, 2, 3))) < 1e-9)),
    ("implicit_norm_duplicate_rows", lambda: pr.implicit_norm_minimizer(np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]]),
                                                                        np.array([1.0, 1.0]), MIRROR),
     Raises(InputError, "dependent")),
    ("implicit_norm_inconsistent", lambda: pr.implicit_norm_minimizer(np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]]),
                                                                      np.array([1.0, 2.0]), MIRROR),
     Raises(InputError, "no solution")),
    ("optimality_certificate_y0", lambda: pr.optimality_certificate(XI, np.zeros(2), np.zeros(3), MIRROR),
     Value(lambda r: r == (0.0, 0.0))),
    ("optimality_certificate_beta_shape", lambda: pr.optimality_certificate(XI, YI, np.zeros(2), MIRROR),
     Raises(InputError, "beta")),
    ("min_l2_interpolant_complex", lambda: pr.min_l2_interpolant(XI + 1j, YI), Raises(InputError, "complex")),
    ("min_l1_interpolant_mismatch", lambda: pr.min_l1_interpolant(XI, np.ones(3)), Raises(InputError, "rows")),
    ("l1_interpolant_certificate_nan", lambda: pr.l1_interpolant_certificate(XI, np.array([1.0, np.nan])),
     Raises(InputError, "NaN")),
    ("require_interpolant_empty", lambda: pr.require_interpolant(np.zeros((0, 3)), np.zeros(0)),
     Raises(InputError, "empty")),
    ("woodworth_map_alpha_0", lambda: pr.woodworth_map(0.0, 2, 3), Raises(InputError, "alpha")),
    ("azulay_map_negative_kappa", lambda: pr.azulay_map(-1.0, 3), Raises(InputError, "kappa")),
    ("azulay_kappa_shape_1", lambda: pr.azulay_kappa(1.0, 1.0), Raises(InputError, "shape")),
    ("biased_uv_map_equal", lambda: pr.biased_uv_map(np.ones(2), np.ones(2)), Raises(InputError, "delta")),
    ("last_layer_zero_map_depth_5", lambda: pr.last_layer_zero_map(1.0, 5, 3), Raises(InputError, "depth")),
    # --- item 8: factorization and GFS predictions
    ("entropic_map_alpha_0", lambda: pr.entropic_map(0.0, 3), Raises(InputError, "alpha")),
    ("entropic_sensing_limit_alpha_nan", lambda: pr.entropic_sensing_limit(np.eye(2), np.ones(2), np.nan),
     Raises(InputError, "alpha")),
    ("min_trace_diagonal_nan", lambda: pr.min_trace_diagonal(np.array([[1.0, np.nan]]), np.ones(1)),
     Raises(InputError, "NaN")),
    ("min_trace_diagonal_mismatch", lambda: pr.min_trace_diagonal(np.eye(2), np.ones(3)), Raises(InputError, "rows")),
    ("singular_value_velocity_mismatch", lambda: pr.singular_value_velocity(np.eye(2), np.ones((3, 3)), 2),
     Raises(InputError, "shape")),
    ("singular_value_velocity_depth_0", lambda: pr.singular_value_velocity(np.eye(2), np.eye(2), 0),
     Raises(InputError, "depth")),
    ("gfs_point_scalar_y_nan", lambda: pr.gfs_point_scalar(np.ones(2), np.nan), Raises(InputError, "y")),
    ("gfs_sharpness_scalar_value", lambda: pr.gfs_sharpness_scalar(np.array([1.0, 1.0]), 1.0),
     Value(lambda s: rel(s, 2.0, 1e-15))),
    ("balanced_sharpness_depth_0", lambda: pr.balanced_sharpness(0), Raises(InputError, "depth")),
    ("require_stable_minimizer_lr_0", lambda: pr.require_stable_minimizer(0.0, 2), Raises(InputError, "lr")),
    ("gfs_limit_gtol_nan", lambda: pr.gfs_limit(QUAD, jnp.ones(3), gtol=np.nan), Raises(InputError, "gtol")),
    ("gfs_limit_nan_start", lambda: pr.gfs_limit(QUAD, jnp.array([np.nan, 1.0, 1.0])), Raises(InputError, "finite")),
    ("gfs_sharpness_max_time_0", lambda: pr.gfs_sharpness(QUAD, jnp.ones(3), max_time=0.0),
     Raises(InputError, "max_time")),
    ("gfs_sharpness_batch_mismatch", lambda: pr.gfs_sharpness_batch(lambda p: jnp.sum(p["a"] ** 2) + p["b"] ** 2,
                                                                    {"a": jnp.ones((2, 2)), "b": jnp.ones(3)}),
     Raises(InputError, "leading axis")),
]

_GAPLESS = _quadratic_spectrum(2500)


def _gapless_at(w):
    return _GAPLESS[0], w


@pytest.mark.parametrize("call, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(call, expect):
    category, detail = classify(call, expect)
    wanted = "clear error" if isinstance(expect, Raises) else "correct"
    assert category == wanted, f"{category}: {detail}"


def test_every_public_entry_point_has_a_case():
    import inspect

    source = inspect.getsource(inspect.getmodule(test_case))
    covered = {f"dynamics.predictions.{m}" for m in ("asymptotics", "factorization", "gfs", "implicit_norms",
                                                     "l1_margin", "max_margin", "step_size")}
    covered |= {f"dynamics.measure.{m}" for m in ("convergence", "eos", "factorization", "geometry", "kkt", "rates",
                                                  "spectrum")} | {"dynamics.linalg"}
    public = [name for module in (pr, ms) for name, obj in vars(module).items()
              if callable(obj) and not name.startswith("_") and not inspect.isclass(obj)
              and getattr(obj, "__module__", "") in covered]  # the modules of issue 11's scope
    missing = [name for name in public if f".{name}(" not in source]
    assert not missing, f"no case calls {missing}"
