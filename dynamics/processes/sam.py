"""Sharpness-aware minimization (Foret, Kleiner, Mobahi, Neyshabur, ICLR 2021) and its variants
(docs/stability-sam-geometry.md section 1).

    SAM  (normalized=True):   theta_{k+1} = theta_k - lr_k grad L(theta_k + rho g_k / ||g_k||),   g_k = grad L(theta_k)
    USAM (normalized=False):  theta_{k+1} = theta_k - lr_k grad L(theta_k + rho g_k)

At g_k = 0 the normalized perturbation g/||g|| is undefined (a 0/0: public implementations return NaN there); here
the perturbation is then 0, so the step is the plain GD step (which at g_k = 0 leaves theta_k unchanged). ||g|| is
the Euclidean norm over all leaves of the parameter pytree, computed after scaling by max |g| (no underflow).

m-sharpness (Foret et al. 2021 section 4.1; Andriushchenko & Flammarion 2022): with ``group_size=m`` on a
per-example loss (``num_examples`` N, ``subset``, ``reduction``) the N examples are split into the N/m consecutive
groups {jm, ..., jm + m - 1}; each group loss L_j (the loss restricted to the group, with the loss's own reduction) is
perturbed by its own gradient, and the perturbed group gradients are combined with that reduction (the mean over groups
for a "mean" loss, the sum for a "sum" loss), so that at rho -> 0 the step is GD's:

    theta_{k+1} = theta_k - lr_k reduce_j grad L_j(theta_k + rho e_j),  e_j = grad L_j / ||grad L_j|| (SAM) or grad L_j

m = N is SAM itself; m = 1 is per-example ("1-SAM"). m must divide N.

``lr`` a positive scalar or a schedule k -> lr_k (as `GradientDescent`); iterate k sits at t_k = sum_{j<k} lr_j (k lr).
Cost: 2 gradients per step (the ascent gradient and the perturbed gradient; per group, 2 gradients of m/N of the data).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..errors import InputError
from ..models.losses import as_objective
from .arguments import flag, integer_parameter
from .base import StepCost, real_parameter
from .discrete import _Descent, learning_rate


def _leaves_norm_direction(tree):
    """(tree / ||tree||, ||tree|| > 0) with ||.|| the Euclidean norm over all leaves, computed after dividing by
    max |leaf| so that neither ||tree||^2 underflows nor 1/||tree|| overflows; the direction is 0 where tree = 0."""
    leaves = jax.tree_util.tree_leaves(tree)
    peak = jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))
    nonzero = peak > 0
    safe_peak = jnp.where(nonzero, peak, 1.0)
    scaled = jax.tree_util.tree_map(lambda leaf: leaf / safe_peak, tree)
    norm = jnp.sqrt(sum(jnp.vdot(leaf, leaf).real for leaf in jax.tree_util.tree_leaves(scaled)))
    inverse = jnp.where(nonzero, 1.0 / jnp.where(nonzero, norm, 1.0), 0.0)
    return jax.tree_util.tree_map(lambda leaf: leaf * inverse.astype(leaf.dtype), scaled)


class SAM(_Descent):
    """Sharpness-aware minimization, normalized (SAM) or not (USAM), full-batch or m-sharpness (see the module
    docstring for the update, the g = 0 convention, the groups and the time convention).

    loss: the objective (any callable of the parameters; a per-example loss for ``group_size``). lr: a positive scalar
    or a schedule. rho: the perturbation radius, finite and > 0 (`InputError` otherwise). normalized: SAM (True) or
    USAM (False). group_size: None (full batch) or m dividing N (`InputError` otherwise). Two gradients per step.
    """

    loss: object
    lr: object
    rho: object
    normalized: bool = eqx.field(static=True)
    group_size: int | None = eqx.field(static=True)

    cost = StepCost(2.0)

    def __init__(self, loss, lr, rho, normalized=True, group_size=None):
        if group_size is not None:
            if not (hasattr(loss, "num_examples") and hasattr(loss, "subset") and hasattr(loss, "reduction")):
                raise InputError(
                    f"m-sharpness SAM (group_size={group_size!r}) needs a per-example loss with num_examples, subset "
                    f"and reduction, got {type(loss).__name__}: wrap the model with dynamics.per_example(fn, data)")
            n = loss.num_examples
            group_size = integer_parameter(group_size, "group_size", 1, n, "N")
            if n % group_size:
                raise InputError(f"group_size must divide N = {n} (the examples are split into N/m groups of m), got "
                                 f"{group_size}")
            self.loss = loss
        else:
            self.loss = as_objective(loss)
        self.lr = learning_rate(lr)
        rho = real_parameter(rho, "rho", 0.0)
        if not isinstance(rho, jax.core.Tracer) and not float(rho) > 0:
            raise InputError(f"rho must be finite and > 0 (rho = 0 is gradient descent: use GradientDescent), got "
                             f"{float(rho):g}")
        self.rho = rho
        self.normalized = flag(normalized, "normalized")
        self.group_size = group_size

    def perturbation(self, gradient):
        """rho g / ||g|| (0 at g = 0) for SAM, rho g for USAM."""
        direction = _leaves_norm_direction(gradient) if self.normalized else gradient
        return jax.tree_util.tree_map(lambda leaf: jnp.asarray(self.rho, leaf.dtype) * leaf, direction)

    def _perturbed_descent(self, loss, theta):
        """-grad loss(theta + perturbation(grad loss(theta))): 2 gradients of ``loss``."""
        ascent = jax.tree_util.tree_map(jnp.negative, loss.descent_direction(theta))
        shifted = jax.tree_util.tree_map(jnp.add, theta, self.perturbation(ascent))
        return loss.descent_direction(shifted)

    def descent_direction(self, theta):
        """The step's direction: -grad L at the perturbed point (reduced over the groups for m-sharpness)."""
        if self.group_size is None:
            return self._perturbed_descent(self.loss, theta)
        groups = jnp.arange(self.loss.num_examples).reshape(-1, self.group_size)
        per_group = jax.vmap(lambda index: self._perturbed_descent(self.loss.subset(index), theta))(groups)
        reduce = jnp.mean if self.loss.reduction == "mean" else jnp.sum
        return jax.tree_util.tree_map(lambda leaf: reduce(leaf, axis=0), per_group)

    def step(self, theta, k):
        return self.descend(theta, self.descent_direction(theta), k)


class SAMModifiedLoss(eqx.Module):
    """E(theta) = L(theta) + a ||grad L(theta)|| + b ||grad L(theta)||^2, a module (not a closure) whose weights a, b
    are arrays, so a gradient flow on it reuses its compiled code for new (lr, rho). ||grad L|| is differentiated as
    H g / ||g|| where g != 0 and as 0 at g = 0. Its gradient costs 1 gradient + 1 HVP. Build it with
    `sam_modified_loss`."""

    loss: object
    norm_weight: object
    square_weight: object

    def __call__(self, theta):
        grad = jax.grad(lambda w: self.loss(w))(theta)
        square = sum(jnp.vdot(leaf, leaf).real for leaf in jax.tree_util.tree_leaves(grad))
        positive = square > 0
        norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, square, 1.0)), 0.0)
        return self.loss(theta) + self.norm_weight * norm + self.square_weight * square


def sam_modified_loss(loss, lr, rho, normalized=True):
    """The first-order backward-error modified loss of SAM / USAM with step lr and radius rho
    (docs/stability-sam-geometry.md section 1, derived there):

        SAM:   L + rho ||grad L|| + (lr/4) ||grad L||^2,      USAM:   L + (rho/2 + lr/4) ||grad L||^2.

    With rho = c lr the step of SAM / USAM matches the gradient flow of this loss at t = lr to O(lr^3) (local), where
    GF on L and IGR (L + (lr/4)||grad L||^2) are O(lr^2). rho = 0 gives IGR (`igr_loss`)."""
    lr = real_parameter(lr, "lr", 0.0)
    rho = real_parameter(rho, "rho", 0.0)
    loss = as_objective(loss)
    if normalized:
        return SAMModifiedLoss(loss, rho, lr / 4.0)
    return SAMModifiedLoss(loss, jnp.zeros_like(rho), rho / 2.0 + lr / 4.0)
