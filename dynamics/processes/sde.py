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
import numpy as np

from ..derivatives import scalar_loss
from ..errors import DivergenceError, InputError
from .arguments import callable_argument, integer_parameter, prng_key
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


def flat_state(x, owner):
    """Trace-time check that an SDE state is a 1-D array (the drift and M(x) act on a flat vector)."""
    if not isinstance(x, jax.Array) or x.ndim != 1:
        got = f"shape {x.shape}" if isinstance(x, jax.Array) else f"a {type(x).__name__}"
        raise InputError(f"{owner} runs on a flat state: y0 must be a 1-D array, got {got}; flatten a pytree with "
                         "jax.flatten_util.ravel_pytree and write the loss and noise factor of the flat vector")
    return x


def nonfinite_path_error(process, ts, ys, trajectory=None):
    """The `DivergenceError` for the first saved time at which some path is non-finite (``ys`` leaves of shape
    (T, paths, ...), as `simulate` returns them), or None when every saved value is finite. Host-side.

    The error names the path index and the first non-finite save (``error.path``; ``error.time`` is the last save
    at which every path was still finite, as for flows, None if none was)."""
    bad = np.zeros((len(ts), process.paths), bool)
    for leaf in jax.tree_util.tree_leaves(ys):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.inexact) and leaf.size:
            bad |= ~np.isfinite(leaf).reshape(len(ts), process.paths, -1).all(axis=2)
    if not bad.any():
        return None
    save = int(np.argmax(bad.any(axis=1)))
    path = int(np.argmax(bad[save]))
    last = float(ts[save - 1]) if save > 0 else None
    error = DivergenceError(
        f"{type(process).__name__}: path {path} (of {process.paths}) is non-finite at the save "
        f"t = {float(ts[save]):.6g} ({int(bad[save].sum())} paths are; last save with every path finite: t = {last}). The drift or the noise "
        "blew up (or the loss is NaN) along that path: lower dt or the learning rate, or check the loss there.",
        time=last, trajectory=trajectory)
    error.path = path
    return error


class StochasticModifiedEquation(AbstractSDE):
    """Li-Tai-E stochastic modified equation of SGD (module docstring): order 1 or 2, learning rate ``lr`` (eta),
    ``noise_factor(x)`` -> M (n x m) with M M^T = Sigma(x), one PRNG ``key`` for ``paths`` >= 1 Brownian paths, fixed
    Euler-Maruyama step ``dt`` > 0 (default eta/20). The state is a 1-D array; M must be an (n, m) matrix (for
    independent coordinates with standard deviations s pass jnp.diag(s)). `InputError` names a wrong key, paths,
    noise factor or state; `simulate` raises `DivergenceError` naming the first non-finite path and time."""

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
        self.noise_factor = callable_argument(noise_factor, "noise_factor",
                                              "a function x -> M (n x m) with M M^T = Sigma(x)")
        self.order = order
        self.key = prng_key(key)
        self.dt = positive_lr(self.lr / 20.0 if dt is None else dt, "SDE step dt")
        self.paths = integer_parameter(paths, "paths")

    def drift(self, t, x):
        flat_state(x, type(self).__name__)
        potential = igr_loss(self.loss, self.lr) if self.order == 2 else scalar_loss(self.loss)
        return -jax.grad(potential)(x)

    def diffusion(self, t, x):
        M = self.noise_factor(flat_state(x, type(self).__name__))
        M = jnp.asarray(M) if isinstance(M, np.ndarray) else M
        if not (isinstance(M, jax.Array) and M.ndim == 2 and M.shape[0] == x.shape[0]):
            got = f"shape {M.shape}" if hasattr(M, "shape") else f"a {type(M).__name__}"
            raise InputError(f"noise_factor(x) must return an (n, m) matrix M with M M^T = Sigma(x), n = {x.shape[0]} "
                             f"(the state's size), got {got}; for independent coordinates with standard deviations "
                             "s pass jnp.diag(s)")
        return jnp.sqrt(self.lr) * M


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
