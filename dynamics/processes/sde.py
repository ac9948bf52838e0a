"""Stochastic modified equations of SGD (Li, Tai, E 2017/2019), integrated as Ito SDEs by diffrax.

SGD x_{k+1} = x_k - eta grad f_gamma(x_k) with Sigma(x) = Cov_gamma[grad f_gamma(x)] is approximated weakly
(for smooth test functions, max_{k eta <= T} |E psi(x_k) - E psi(X_{k eta})| <= C eta^order) by

    order 1:  dX = -grad f(X) dt + sqrt(eta) Sigma(X)^{1/2} dW
    order 2:  dX = -grad[f + (eta/4) ||grad f||^2](X) dt + sqrt(eta) Sigma(X)^{1/2} dW

in physical time t = k eta. ``noise_factor(x)`` returns M (n x m) with M M^T = Sigma(x).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from ..derivatives import scalar_loss
from ..errors import InputError
from .modified_losses import igr_loss
from .base import AbstractProcess, positive_lr


class AbstractSDE(AbstractProcess):
    """dX = drift(t, X) dt + diffusion(t, X) dW on a flat state; ``paths`` independent Brownian paths from
    ``key``, fixed step ``dt`` (Euler-Maruyama by default; the step must be << the time scales studied)."""

    key: eqx.AbstractVar[jax.Array]
    dt: eqx.AbstractVar[object]
    paths: eqx.AbstractVar[int]

    @abc.abstractmethod
    def drift(self, t, x):
        """The drift at (t, x)."""

    @abc.abstractmethod
    def diffusion(self, t, x):
        """The diffusion matrix M(t, x) (n x m): the noise increment is M dW with W m-dimensional."""


class StochasticModifiedEquation(AbstractSDE):
    key: jax.Array
    dt: object
    paths: int = eqx.field(static=True)
    loss: callable = eqx.field(static=True)
    lr: object
    noise_factor: callable = eqx.field(static=True)
    order: int = eqx.field(static=True)

    def __init__(self, loss, lr, noise_factor, key, order=1, dt=None, paths=1):
        if order not in (1, 2):
            raise InputError(f"stochastic modified equations exist here for order 1 or 2, got {order!r}")
        self.loss = loss  # wrapped by scalar_loss when traced: a fresh wrapper here would be a new static value
        self.lr = positive_lr(lr)
        self.noise_factor = noise_factor
        self.order = order
        self.key = key
        self.dt = positive_lr(float(lr) / 20.0 if dt is None else dt, "SDE step dt")
        self.paths = int(paths)

    def drift(self, t, x):
        potential = igr_loss(self.loss, self.lr) if self.order == 2 else scalar_loss(self.loss)
        return -jax.grad(potential)(x)

    def diffusion(self, t, x):
        return jnp.sqrt(self.lr) * self.noise_factor(x)


def minibatch_noise_factor(example_loss, num_examples, batch_size, replacement=True):
    """x -> M with M M^T = Cov_i(grad f_i(x)) / B (times (N - B)/(N - 1) without replacement).

    ``example_loss(x, i)``: loss of example i; Cov_i is the population covariance over the N examples."""
    scale = 1.0 if replacement else (num_examples - batch_size) / (num_examples - 1)
    return _MinibatchNoise(example_loss, int(num_examples), float(scale / (num_examples * batch_size)))


class _MinibatchNoise(eqx.Module):
    """`minibatch_noise_factor`'s M(x); equal (and hashed) by its arguments, so that a factor rebuilt from the same
    example loss and sizes reuses the compiled code of an SDE (a closure would be a new static value each time)."""

    example_loss: callable = eqx.field(static=True)
    num_examples: int = eqx.field(static=True)   # the number of per-example gradients: a shape
    variance: float = eqx.field(static=True)     # a constant of the sampling scheme, fixed by N and B

    def __call__(self, x):
        grads = jax.vmap(lambda i: jax.grad(self.example_loss)(x, i))(jnp.arange(self.num_examples))
        centred = grads - grads.mean(axis=0)
        return centred.T * jnp.sqrt(self.variance)
