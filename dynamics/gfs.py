"""GFS sharpness (Kreisler, Nacson, Soudry, Carmon 2023): the sharpness of the gradient-flow solution.

S_GF(w) = lim_{t -> inf} of gradient flow dw/dt = -grad L(w) started at w, and phi(w) = lambda_max(Hessian of L at
S_GF(w)) (largest algebraic eigenvalue). phi is constant along GF by construction; the paper shows GD does not
increase it on scalar networks and reports that it decreases empirically on networks.

General models: `gfs_limit` integrates GF with `simulate` over a growing horizon and stops once
||grad L|| <= gtol; `gfs_sharpness` is `spectrum.sharpness` there. Scalar networks pi(w) = prod_i w_i with
L = (pi - y)^2 / 2: closed form (`gfs_point_scalar`, `gfs_sharpness_scalar`), the independent check.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from .derivatives import scalar_loss
from .errors import InputError, SolverBudgetError, StepSizeError
from .processes import GradientFlow
from .simulate import simulate
from .spectrum import sharpness


class GFSLimit(NamedTuple):
    """The end of a gradient-flow solve: params ~ S_GF(w), the loss and ||grad L|| there, the physical GF time
    integrated and the solver's accepted steps (all horizon segments)."""

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


@eqx.filter_jit
def _loss_and_grad_norm(loss, params):
    value, g = jax.value_and_grad(scalar_loss(loss))(params)  # any pytree of real leaves
    return value, jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(g)))


_jit_sharpness = eqx.filter_jit(sharpness)


def gfs_limit(loss, params, *, gtol=1e-10, t_first=1.0, max_time=1e6, max_steps=100_000, rtol=1e-12, atol=1e-14,
              solver=None, interpolating=False, ltol=1e-8):
    """S_GF(params): integrate dw/dt = -grad L(w) until ||grad L(w)|| <= ``gtol`` (Euclidean norm over all leaves).

    Growing horizon: segments of GF time t_first, 2 t_first, 4 t_first, ... (each one `simulate` call of
    `GradientFlow`, compiled once per loss), each started from the end of the last, until the gradient norm at a
    segment's end is <= gtol; the GF time spent is at most twice the time needed. Near a minimizer with smallest
    positive Hessian eigenvalue mu, the distance to the limit is ~ ||grad L|| / mu, so gtol sets the accuracy of
    S_GF (and of phi, to first order) together with the solve error (``rtol``, ``atol``). ``solver`` defaults to
    Tsit5 (explicit: about lambda_max / 3 steps per unit time, fine for well-conditioned limits); pass
    diffrax.Kvaerno5() with rtol >= 1e-9 when lambda_max / mu is large (stiff).

    Raises `SolverBudgetError` (with the gradient norm reached and advice) when GF time ``max_time`` is spent, or
    when one segment needs more than ``max_steps`` solver steps, or the accepted steps of all segments reach
    ``max_steps`` (checked between segments, so the total stays below 2 max_steps). GF ends at a stationary point,
    not necessarily a minimizer: with ``interpolating=True`` (a model whose minimum loss is 0) a limit with loss >
    ``ltol`` raises `InputError`; a non-finite loss or gradient at ``params`` raises `InputError`. Cost: (accepted
    steps x stages) gradients, plus one gradient per segment.
    """
    for name, value in (("gtol", gtol), ("t_first", t_first), ("max_time", max_time)):
        if not value > 0:
            raise InputError(f"{name} must be > 0, got {value}")
    process = GradientFlow(loss)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    value, gnorm = (float(v) for v in _loss_and_grad_norm(loss, params))
    if not (np.isfinite(value) and np.isfinite(gnorm)):
        raise InputError(f"the loss or its gradient is not finite at the starting point (L = {value}, "
                         f"||grad L|| = {gnorm}): gradient flow cannot start there")
    elapsed, steps, horizon = 0.0, 0, float(t_first)
    while gnorm > gtol:
        if elapsed >= max_time or steps >= max_steps:
            raise SolverBudgetError(
                f"gradient flow did not converge: ||grad L|| = {gnorm:.3e} > gtol = {gtol:.1e} after GF time "
                f"{elapsed:.4g} ({steps} accepted steps; budget max_time = {max_time:.3g}, max_steps = {max_steps}). "
                "Advice: raise max_time/max_steps or gtol; for stiff limits (lambda_max much larger than the "
                "smallest positive Hessian eigenvalue) pass solver=diffrax.Kvaerno5() with rtol ~ 1e-9; losses "
                "without a finite minimizer (cross-entropy on separable data) have no GF limit.")
        segment = min(horizon, max_time - elapsed)
        try:
            traj = simulate(process, params, np.array([0.0, segment]), rtol=rtol, atol=atol, solver=solver,
                            max_steps=max_steps)
        except SolverBudgetError as err:
            raise SolverBudgetError(
                f"gradient flow did not converge: one segment of GF time {segment:.4g} used all {max_steps} steps "
                f"after GF time {elapsed:.4g} (||grad L|| = {gnorm:.3e} > gtol = {gtol:.1e} there). Advice: the "
                "flow is stiff; pass solver=diffrax.Kvaerno5() with rtol ~ 1e-9, or raise max_steps.") from err
        params = jax.tree_util.tree_map(lambda leaf: leaf[-1], traj.ys)
        value, gnorm = (float(v) for v in _loss_and_grad_norm(loss, params))
        elapsed += segment
        steps += traj.stats.get("num_accepted_steps", 0)
        horizon *= 2.0
    if interpolating and value > ltol:
        raise InputError(f"gradient flow ends at a stationary point with loss {value:.6g} > ltol = {ltol:.1e} "
                         f"(||grad L|| = {gnorm:.2e}), not at a global minimizer of this interpolating model: "
                         "its sharpness is not the GFS sharpness of a minimizer")
    return GFSLimit(params, value, gnorm, elapsed, steps)


def gfs_sharpness(loss, params, *, method=None, **gf_options):
    """phi(params) = lambda_max(Hessian of L at S_GF(params)) (`spectrum.sharpness` at `gfs_limit`; ``method``:
    "dense" or "lanczos", dense up to spectrum.DENSE_LIMIT parameters). For a model that does not interpolate, it is
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
    """Smallest sharpness over all minimizers of the depth-D scalar net: D |y|^(2 - 2/D) (balanced point)."""
    return depth * abs(y) ** (2.0 - 2.0 / depth)


def require_stable_minimizer(lr, depth, y=1.0):
    """Raise StepSizeError when 2/lr is below every minimizer's sharpness (GD cannot converge to any minimizer)."""
    floor = balanced_sharpness(depth, y)
    if 2.0 / lr < floor:
        raise StepSizeError(f"no minimizer of the depth-{depth} scalar network is stable at lr = {lr:.6g}: "
                            f"2/lr = {2.0 / lr:.6g} < {floor:.6g} = D |y|^(2-2/D), the smallest sharpness of any "
                            "minimizer; GD cannot converge (it ends on a cycle or diverges)")
