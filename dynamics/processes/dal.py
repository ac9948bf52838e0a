"""Drift-adjusted learning rate (DAL; Rosca, Wu, Qin, Dherin 2023): GD with a curvature-aware step.

    h_k = min( scale / (||H g|| / ||g||)^p , max_lr ),   theta_{k+1} = theta_k - h_k g.

p = 0 is GD with the static rate ``scale``; at p = 1 (scale 2) the curvature along the gradient is held at
the stability edge h ||Hg||/||g|| = 2. Hg by an HVP (hg="hvp") or by the finite difference
[g(theta + eps g) - g(theta)] / eps with a step of length 0.01 along g (hg="finite_difference", as in the
authors' code). Step sizes vary, so iterate k sits at step time t = k (``time_unit = "step"``).

At a critical point (g = 0) the ratio ||Hg||/||g|| is 0/0; it is read as 0 there, so h = max_lr (scale at p = 0)
and the step h g is 0: a critical point is a fixed point, as for GD. ``power`` must be finite and >= 0 and
``scale``, ``max_lr`` finite and > 0 (`InputError` otherwise).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..derivatives import gradient, hvp, scalar_loss
from ..errors import InputError
from .base import AbstractDiscrete, StepCost, TimeUnit, real_parameter

HG_METHODS = ("hvp", "finite_difference")


def _nonzero(norm):
    """||g||, or 1 where g = 0 (where the numerator is 0 too: the 0/0 is then read as 0)."""
    return jnp.where(norm > 0, norm, 1.0)


class DriftAdjustedGD(AbstractDiscrete):
    loss: callable = eqx.field(static=True)
    power: object
    scale: object
    max_lr: object
    hg: str = eqx.field(static=True)
    time_unit = TimeUnit.STEP

    def __init__(self, loss, power=1.0, scale=2.0, max_lr=5.0, hg="hvp"):
        if hg not in HG_METHODS:
            raise InputError(f"hg must be one of {HG_METHODS}, got {hg!r}")
        self.power = real_parameter(power, "power", 0.0)
        self.scale, self.max_lr = real_parameter(scale, "scale"), real_parameter(max_lr, "max_lr")
        concrete = not any(isinstance(x, jax.core.Tracer) for x in (self.scale, self.max_lr))  # traced: unchecked
        if concrete and not (self.scale > 0 and self.max_lr > 0):
            raise InputError(f"scale and max_lr must be > 0, got {scale}, {max_lr}")
        self.loss = loss
        self.hg = hg

    @property
    def cost(self):
        """1 gradient + 1 HVP per step (hg=\"hvp\"), or 2 gradients (finite difference)."""
        return StepCost(1.0, 1.0) if self.hg == "hvp" else StepCost(2.0)

    def curvature_product(self, theta, g):
        """H g by an HVP or by the finite difference along g (step 0.01 / ||g||; 0 at g = 0)."""
        if self.hg == "hvp":
            return hvp(scalar_loss(self.loss))(theta, g)
        eps = 0.01 / _nonzero(jnp.linalg.norm(g))
        return (gradient(self.loss)(theta + eps * g) - g) / eps

    def _rate(self, theta, g):
        ratio = jnp.linalg.norm(self.curvature_product(theta, g)) / _nonzero(jnp.linalg.norm(g))  # 0 at g = 0
        return jnp.minimum(self.scale / ratio**self.power, self.max_lr)

    def learning_rate(self, theta):
        """h(theta) = min(scale / (||Hg||/||g||)^p, max_lr)."""
        return self._rate(theta, gradient(self.loss)(theta))

    def step(self, theta, k):
        g = gradient(self.loss)(theta)
        return theta - self._rate(theta, g) * g


