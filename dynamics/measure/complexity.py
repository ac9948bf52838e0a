"""Geometric complexity of a learned function (docs/stability-sam-geometry.md section 7).

Dherin, Munn, Rosca & Barrett (NeurIPS 2022, arXiv:2209.13083) measure the variability of a model function
f_theta: R^d -> R^k on a data set D = {x_1, ..., x_N} by the discrete Dirichlet energy

    GC(f_theta, D) = (1/N) sum_i ||d f_theta(x_i) / dx||_F^2      (units: (output / input)^2),

and, for d = k = 1, relate it to the arc length of the graph, int_a^b sqrt(1 + f'(x)^2) dx (Dherin, Munn &
Barrett 2021, arXiv:2111.15090). Both are computed here exactly (automatic differentiation in x), for any model
``f(params, x)`` taking ONE example x (params any pytree, Equinox modules included).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError, SolverBudgetError
from ..validation import finite_array


def _example_shape_error(X, x_shape, error):
    return InputError(
        f"f(params, x) failed on one example x of shape {x_shape} (X has shape {X.shape}: examples along axis 0, "
        f"each of shape X.shape[1:]): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}; "
        "pass X with shape (N, *input_shape) where f(params, x) takes x of shape input_shape "
        "(e.g. X[:, None] for N scalar inputs to a model that takes vectors of length 1)")


@eqx.filter_jit
def _gc(f, params, X, forward):
    """mean_i ||J_i||_F^2; one compiled program per (f, shapes, static leaves): new numbers reuse it."""
    jacobian = jax.jacfwd if forward else jax.jacrev

    def squared(x):
        J = jacobian(lambda x_: f(params, x_))(x)
        return jnp.sum(jnp.abs(J) ** 2)

    return jnp.mean(jax.vmap(squared)(X))


def geometric_complexity(f, params, X):
    """GC = (1/N) sum_i ||d f(params, x_i) / dx||_F^2, exact (automatic differentiation, no finite differences).

    f: f(params, x) -> scalar or array for ONE example x of shape input_shape; params: any pytree (arrays, an
    Equinox module); X: (N, *input_shape), finite. Returns a float64 scalar (a jax array).

    Cost: the input Jacobians of N examples in one vmapped, compiled call: min(d_in, d_out) forward (jacfwd)
    or reverse (jacrev) passes per example, whichever is fewer; memory N d_in d_out. The program is compiled
    once per (f, shapes) and reused for new parameter values (f should be the same Python object).
    A model that does not depend on x gives 0. A wrong example shape raises `InputError` naming the shapes.
    Traceable: it may be called inside jit (an ``observe`` function), where X is checked for shape only.
    """
    if not isinstance(X, jax.core.Tracer):                 # inside jit (e.g. an observe function): shapes only
        X = finite_array("X", X)
    if X.ndim < 1 or X.shape[0] < 1:
        raise InputError(f"X must hold N >= 1 examples along axis 0, got shape {X.shape}")
    X = jnp.asarray(X, jnp.result_type(float))
    try:
        out = eqx.filter_eval_shape(f, params, X[0])
    except (TypeError, ValueError, IndexError) as error:
        raise _example_shape_error(X, X.shape[1:], error) from None
    if not isinstance(out, jax.ShapeDtypeStruct) or not jnp.issubdtype(out.dtype, jnp.inexact):
        raise InputError(f"f(params, x) must return one floating-point array (scalar or vector), got {out}")
    d_in, d_out = int(np.prod(X.shape[1:])), int(np.prod(out.shape))
    return _gc(f, params, X, d_in <= d_out)


# ----------------------------------------------------------------------------- arc length in 1-D


@dataclasses.dataclass(frozen=True)
class ArcLength:
    """``value`` = int_a^b sqrt(1 + f'(x)^2) dx; ``error``: |Q_L - Q_(L-1)|, the difference of the last two
    quadrature levels (an estimate of the error of the coarser one, so conservative for ``value`` when the
    integrand is smooth on every panel; a kink inside a panel, e.g. an unlisted ReLU knot, makes it unreliable);
    ``panels``: panels of the last level; ``evaluations``: derivative evaluations in all levels."""

    value: float
    error: float
    panels: int
    evaluations: int


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)


def _scalar_input_shape(f, params):
    """The shape, () or (1,), in which f(params, x) takes its one input; the output must have one entry."""
    for shape in ((), (1,)):
        try:
            out = eqx.filter_eval_shape(f, params, jnp.zeros(shape))
        except (TypeError, ValueError, IndexError):
            continue
        if isinstance(out, jax.ShapeDtypeStruct) and int(np.prod(out.shape)) == 1:
            return shape
        raise InputError(f"arc_length needs a model with one output; f(params, x) returned shape "
                         f"{getattr(out, 'shape', out)} for x of shape {shape}")
    raise InputError("arc_length needs a model with one input: f(params, x) failed for x of shape () and (1,)")


@eqx.filter_jit
def _panel_sums(f, params, shape, edges):
    """sum over panels [edges_j, edges_j+1] of 16-point Gauss-Legendre quadrature of sqrt(1 + f'^2)
    (compiled once per (f, shape, panel count); new parameter values reuse it)."""
    derivative = jax.grad(lambda x: jnp.reshape(f(params, jnp.reshape(x, shape)), ()))
    lo, hi = edges[:-1], edges[1:]
    half = (hi - lo) / 2.0
    x = (lo + hi)[:, None] / 2.0 + half[:, None] * jnp.asarray(_NODES)[None, :]
    slope = jax.vmap(derivative)(x.reshape(-1)).reshape(x.shape)
    return jnp.sum(half * (jnp.sqrt(1.0 + slope**2) @ jnp.asarray(_WEIGHTS)))


def arc_length(f, params, a, b, *, breakpoints=(), rtol=1e-10, max_level=12):
    """Length of the graph of a 1-D model on [a, b]: int_a^b sqrt(1 + f'(x)^2) dx (f' by autodiff).

    Composite 16-point Gauss-Legendre on the panels between ``a``, the ``breakpoints`` inside (a, b) and ``b``,
    each split into 2^L equal parts, L = 0, 1, ..., until two successive levels agree to ``rtol`` (relative);
    returns an `ArcLength` with the estimate of the error. For a piecewise-linear model (a ReLU network) whose
    knots are passed as breakpoints the integrand is constant on every panel and the first level is exact
    (the one-hidden-layer net x -> sum_j v_j relu(w_j x + b_j) + c has its knots at -b_j / w_j); without the
    knots the kinks cost O(panel width^2) accuracy and more levels. Smooth models converge spectrally.
    Cost: 16 * panels derivative evaluations per level (one vmapped call each); raises `SolverBudgetError`
    with the reached estimate when ``max_level`` levels do not reach ``rtol``.
    """
    a, b = float(finite_array("a", a, ndim=0)), float(finite_array("b", b, ndim=0))
    if not a < b:
        raise InputError(f"arc_length needs a < b, got a = {a}, b = {b}")
    if not (0 < rtol < 1):
        raise InputError(f"rtol must be in (0, 1), got {rtol}")
    cuts = finite_array("breakpoints", np.ravel(np.asarray(breakpoints, float)))
    cuts = np.unique(cuts[(cuts > a) & (cuts < b)])
    base = np.r_[a, cuts, b]
    shape = _scalar_input_shape(f, params)
    previous, evaluations = None, 0
    for level in range(max_level + 1):
        parts = 2**level
        edges = np.concatenate([np.linspace(lo, hi, parts + 1)[:-1] for lo, hi in zip(base[:-1], base[1:])] + [[b]])
        value = float(_panel_sums(f, params, shape, jnp.asarray(edges)))
        evaluations += 16 * (len(edges) - 1)
        if previous is not None:
            error = abs(value - previous)
            if error <= rtol * value:
                return ArcLength(value, error, len(edges) - 1, evaluations)
        previous = value
    raise SolverBudgetError(
        f"arc_length did not reach rtol = {rtol:g} in {max_level} levels ({len(edges) - 1} panels, {evaluations} "
        f"derivative evaluations): last estimate {value!r}, last level difference {error:.3g}; pass the model's "
        "kinks as breakpoints (ReLU knots), raise max_level or loosen rtol")
