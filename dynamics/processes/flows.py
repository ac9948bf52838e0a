"""Continuous flows (vector fields integrated by `simulate` through diffrax)."""

import jax.numpy as jnp

from ..models.losses import as_objective
from .base import AbstractFlow


class GradientFlow(AbstractFlow):
    """Gradient flow dtheta/dt = -grad L(theta), in physical time t.

    In log time tau = log(1 + t): dtheta/dtau = -(1 + t) grad L = -e^tau grad L, evaluated as
    ``loss.descent_direction(theta, log_scale=tau)`` so that for a `MarginLoss` the factor e^tau
    enters each example's weight exp(tau + log(-l'(q_n))) and never overflows (reaching
    t = e^400 and beyond). Cost: one gradient per field evaluation.
    """

    loss: object

    def __init__(self, loss):
        self.loss = as_objective(loss)

    def field(self, t, theta):
        return self.loss.descent_direction(theta)

    def log_time_field(self, tau, theta):
        return self.loss.descent_direction(theta, log_scale=jnp.asarray(tau))
