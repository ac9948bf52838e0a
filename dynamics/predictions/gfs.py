"""GFS sharpness (Kreisler, Nacson, Soudry, Carmon 2023): the sharpness of the gradient-flow solution.

S_GF(w) = lim_{t -> inf} of gradient flow dw/dt = -grad L(w) started at w, and phi(w) = lambda_max(Hessian of L at
S_GF(w)) (largest algebraic eigenvalue). phi is constant along GF by construction; the paper shows GD does not
increase it on scalar networks and reports that it decreases empirically on networks.

General models: `gfs_limit` integrates GF in one diffrax solve with an event that stops it once
||grad L|| <= gtol; `gfs_sharpness` is `spectrum.sharpness` there. Scalar networks pi(w) = prod_i w_i with
L = (pi - y)^2 / 2: closed form (`gfs_point_scalar`, `gfs_sharpness_scalar`), the independent check.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from .. import kernel
from ..derivatives import scalar_loss
from ..errors import InputError, SolverBudgetError, StepSizeError
from ..measure.spectrum import sharpness
from ..processes import GradientFlow


class GFSLimit(NamedTuple):
    """The end of a gradient-flow solve: params ~ S_GF(w), the loss and ||grad L|| there, the physical GF time
    integrated and the solver's accepted steps."""

    params: object
    loss: float
    grad_norm: float
    time: float
    steps: int


class GFSPath(NamedTuple):
    """`gfs_sharpness_batch` over T checkpoints: each field an array of shape (T,) (see `GFSLimit`)."""

    phi: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    time: np.ndarray
    steps: np.ndarray


def _grad_norm(loss, params):
    g = jax.grad(scalar_loss(loss))(params)  # any pytree of real leaves
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(g)))


@eqx.filter_jit
def _loss_and_grad_norm(loss, params):
    return scalar_loss(loss)(params), _grad_norm(loss, params)


_jit_sharpness = eqx.filter_jit(sharpness)


class _GradientBelow(eqx.Module):
    """The stopping rule ||grad L(w)|| <= gtol (gtol an array: a new value reuses the compiled solve)."""

    loss: object
    gtol: jax.Array

    def __call__(self, params):
        return _grad_norm(self.loss, params) <= self.gtol


def gfs_limit(loss, params, *, gtol=1e-10, max_time=1e6, max_steps=100_000, rtol=1e-12, atol=1e-14, solver=None,
              interpolating=False, ltol=1e-8):
    """S_GF(params): integrate dw/dt = -grad L(w) until ||grad L(w)|| <= ``gtol`` (Euclidean norm over all leaves).

    One adaptive diffrax solve over GF time [0, max_time] with an event that stops it at the end of the first step
    where the gradient norm is <= gtol (compiled once per loss; new numbers reuse it). Near a minimizer with
    smallest positive Hessian eigenvalue mu, the distance to the limit is ~ ||grad L|| / mu, so gtol sets the
    accuracy of S_GF (and of phi, to first order) together with the solve error (``rtol``, ``atol``). ``solver``
    defaults to Tsit5 (explicit: about lambda_max / 3 steps per unit time, fine for well-conditioned limits); pass
    diffrax.Kvaerno5() with rtol >= 1e-9 when lambda_max / mu is large (stiff).

    Raises `SolverBudgetError` (with the gradient norm reached and advice) when GF time ``max_time`` is spent or the
    solve needs more than ``max_steps`` steps. GF ends at a stationary point, not necessarily a minimizer: with
    ``interpolating=True`` (a model whose minimum loss is 0) a limit with loss > ``ltol`` raises `InputError`; a
    non-finite loss or gradient at ``params`` raises `InputError`. Cost: (steps x stages) gradients for the field
    and as many for the stopping rule.
    """
    for name, value in (("gtol", gtol), ("max_time", max_time)):
        if not value > 0:
            raise InputError(f"{name} must be > 0, got {value}")
    params = jax.tree_util.tree_map(jnp.asarray, params)
    value, gnorm = (float(v) for v in _loss_and_grad_norm(loss, params))
    if not (np.isfinite(value) and np.isfinite(gnorm)):
        raise InputError(f"the loss or its gradient is not finite at the starting point (L = {value}, "
                         f"||grad L|| = {gnorm}): gradient flow cannot start there")
    stop = _GradientBelow(loss, jnp.asarray(gtol))
    solver = diffrax.Tsit5() if solver is None else solver
    options = kernel.flow_options(rtol, atol, None, 0.0, 1.0)
    end, time, result, stats, _ = kernel.run_flow_until(
        GradientFlow(loss), params, jnp.asarray(float(max_time)), stop, solver, options["rtol"], options["atol"],
        max_steps)
    value, gnorm = (float(v) for v in _loss_and_grad_norm(loss, end))
    steps, time = int(stats["num_accepted_steps"]), float(time)
    if not gnorm <= gtol:
        if result == diffrax.RESULTS.max_steps_reached:
            why = f"the solve used all {max_steps} steps"
        elif np.isfinite(gnorm):
            why = f"the GF time budget max_time = {max_time:.3g} is spent"
        else:
            why = "the state became non-finite"
        raise SolverBudgetError(
            f"gradient flow did not converge: ||grad L|| = {gnorm:.3e} > gtol = {gtol:.1e} after GF time {time:.4g} "
            f"({steps} accepted steps): {why}. Advice: raise max_time/max_steps or gtol; for stiff limits (lambda_max "
            "much larger than the smallest positive Hessian eigenvalue) pass solver=diffrax.Kvaerno5() with "
            "rtol ~ 1e-9; losses without a finite minimizer (cross-entropy on separable data) have no GF limit.")
    if interpolating and value > ltol:
        raise InputError(f"gradient flow ends at a stationary point with loss {value:.6g} > ltol = {ltol:.1e} "
                         f"(||grad L|| = {gnorm:.2e}), not at a global minimizer of this interpolating model: "
                         "its sharpness is not the GFS sharpness of a minimizer")
    return GFSLimit(end, value, gnorm, time, steps)


def gfs_sharpness(loss, params, *, method=None, **gf_options):
    """phi(params) = lambda_max(Hessian of L at S_GF(params)) (`spectrum.sharpness` at `gfs_limit`; ``method``:
    "dense", "lanczos" or "lobpcg"; the default is that of `dynamics.sharpness`). For a model that does not interpolate, it is
    the sharpness at the stationary point where GF ends (a saddle's is still its largest eigenvalue); pass
    ``interpolating=True`` to refuse limits with loss > ltol. ``gf_options``: see `gfs_limit`."""
    return float(_jit_sharpness(loss, gfs_limit(loss, params, **gf_options).params, method))


def gfs_sharpness_batch(loss, checkpoints, *, method=None, **gf_options):
    """phi at each of T checkpoints (a pytree whose leaves have a leading axis T), with each limit's loss, gradient
    norm, GF time and steps, as a `GFSPath`. A loop of `gfs_limit` solves (they stop at different times, so they
    are not vmapped); all share one compiled segment solver."""
    count = {np.shape(leaf)[0] for leaf in jax.tree_util.tree_leaves(checkpoints)}
    if len(count) != 1:
        raise InputError(f"checkpoints must share one leading axis (the checkpoint index), got lengths {count}")
    rows = []
    for i in range(count.pop()):
        limit = gfs_limit(loss, jax.tree_util.tree_map(lambda leaf: leaf[i], checkpoints), **gf_options)
        rows.append((float(_jit_sharpness(loss, limit.params, method)), limit.loss, limit.grad_norm, limit.time,
                     limit.steps))
    return GFSPath(*(np.array(col) for col in zip(*rows)))


# ----------------------------------------------------------------------------- scalar networks (closed form)


def gfs_point_scalar(w, y=1.0):
    """S_GF(w) for L(w) = (prod_i w_i - y)^2 / 2, y != 0. GF conserves w_i^2 - w_j^2 (d w_i^2/dt = -2 (pi - y) pi
    for every i), so S_GF(w)_i = s_i sqrt(w_i^2 + c) with c > -min_i w_i^2 the root of sum_i log(w_i^2 + c) = log y^2.
    Signs s_i = sign(w_i), except when sign(prod w) != sign(y): then the coordinate of smallest |w_i| crosses zero
    in finite time (its speed |(pi - y) prod_{j != i} w_j| stays positive there) and takes the sign that makes
    sign(prod) = sign(y). If that smallest |w_i| is attained twice, GF ends at pi = 0 (a saddle): `InputError`."""
    w = np.asarray(w, float)
    if y == 0 or not np.all(np.isfinite(w)):
        raise InputError(f"gfs_point_scalar needs finite w and y != 0, got y = {y}")
    magnitude = np.abs(w)
    signs = np.where(w < 0, -1.0, 1.0)
    if np.prod(signs) != np.sign(y) or np.any(w == 0):
        smallest = np.flatnonzero(magnitude == magnitude.min())
        if smallest.size > 1:
            raise InputError("gradient flow from w ends at pi = 0, not at a minimizer: sign(prod w) != sign(y) and "
                             f"the smallest |w_i| = {magnitude.min():.6g} is attained {smallest.size} times "
                             "(those coordinates reach 0 together, a stationary point)")
        signs[smallest[0]] = 1.0
        signs[smallest[0]] = np.sign(y) * np.prod(signs)
    f = lambda c: np.sum(np.log(w**2 + c)) - np.log(y**2)  # increasing; -> -inf as c -> -min w^2
    lo = np.nextafter(-np.min(w**2) * (1.0 - 1e-14), np.inf)
    hi = max(1.0, -lo)
    while f(hi) < 0:
        hi *= 2
    c = scipy.optimize.brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return signs * np.sqrt(w**2 + c)


def gfs_sharpness_scalar(w, y=1.0):
    """phi(w) = lambda_max of the Hessian at S_GF(w) = y^2 sum_i 1/(w_i^2 + c): at a minimizer the Hessian is
    grad pi grad pi^T, whose only nonzero eigenvalue is ||grad pi||^2 = y^2 sum_i 1/S_GF(w)_i^2."""
    limit = gfs_point_scalar(w, y)
    return float(y**2 * np.sum(1.0 / limit**2))


def balanced_sharpness(depth, y=1.0):
    """Smallest sharpness over all minimizers of the depth-D scalar net: D |y|^(2 - 2/D) (balanced point; D >= 1)."""
    if isinstance(depth, bool) or not depth >= 1 or not np.isfinite(y):
        raise InputError(f"need depth >= 1 and a finite target y, got depth = {depth!r}, y = {y!r}")
    return depth * abs(y) ** (2.0 - 2.0 / depth)


def require_stable_minimizer(lr, depth, y=1.0):
    """Raise StepSizeError when 2/lr is below every minimizer's sharpness (GD cannot converge to any minimizer)."""
    if not (np.isscalar(lr) and np.isreal(lr) and np.isfinite(lr) and lr > 0):
        raise InputError(f"the learning rate lr must be a finite real number > 0, got {lr!r}")
    floor = balanced_sharpness(depth, y)
    if 2.0 / lr < floor:
        raise StepSizeError(f"no minimizer of the depth-{depth} scalar network is stable at lr = {lr:.6g}: "
                            f"2/lr = {2.0 / lr:.6g} < {floor:.6g} = D |y|^(2-2/D), the smallest sharpness of any "
                            "minimizer; GD cannot converge (it ends on a cycle or diverges)")
