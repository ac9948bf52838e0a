"""Derivatives of a scalar loss E on a flat parameter vector, never materializing Hessians.

g = grad E;  H v = jvp(grad E)(v) (forward-over-reverse, ~2-4 gradients);
T[u, v] = grad_theta (u^T H(theta) v) with u, v held fixed (third-derivative product).
Complex (holomorphic) parameters are supported: derivatives are complex-linear (no conjugation).
"""

import jax
import jax.numpy as jnp

from .errors import InputError


def scalar_loss(loss):
    """Wrap ``loss`` so that a non-scalar output raises `InputError` at trace time."""

    def checked(theta):
        value = loss(theta)
        if jnp.ndim(value) != 0:
            raise InputError(f"the loss must return a scalar, got an output of shape {jnp.shape(value)}")
        return value

    return checked


def gradient(loss):
    """theta -> grad E(theta); the complex (holomorphic) derivative when theta is complex.

    A complex state needs a holomorphic loss: one returning a real value there (abs, real parts,
    norms) raises `InputError`; `holomorphy_defect` detects the subtler cases (conj)."""
    loss = scalar_loss(loss)

    def grad(theta):
        if jnp.iscomplexobj(theta):
            if not jnp.iscomplexobj(jax.eval_shape(loss, theta)):
                raise InputError("the loss returns a real value at a complex state, so it is not holomorphic "
                                 "(abs, real parts or norms break holomorphy); use a real state "
                                 "(e.g. PrincipalFlow(..., variant='real')).")
            return jax.grad(loss, holomorphic=True)(theta)
        return jax.grad(loss)(theta)

    return grad


def holomorphy_defect(loss, theta, grad=None):
    """|dE(theta)[i v] - i dE(theta)[v]| / (||grad E(theta)|| ||v||) for a fixed random direction v: 0 (to
    round-off) for a holomorphic E by the Cauchy-Riemann equations; O(1) for losses built with conj or abs.
    ``grad``: the holomorphic gradient if already known (its norm is the scale; else one gradient is taken)."""
    v = jax.random.normal(jax.random.PRNGKey(0), theta.shape, theta.real.dtype).astype(theta.dtype)
    d1 = jax.jvp(loss, (theta,), (v,))[1]
    d2 = jax.jvp(loss, (theta,), (1j * v,))[1]
    if grad is None:
        grad = jax.grad(lambda th: jnp.real(loss(th)))(theta)
    scale = jnp.linalg.norm(grad) * jnp.linalg.norm(v)
    return jnp.abs(d2 - 1j * d1) / (scale + 1e-300)


def hvp(loss):
    """(theta, v) -> H(theta) v by forward-over-reverse differentiation."""
    grad = gradient(loss)
    return lambda theta, v: jax.jvp(grad, (theta,), (v,))[1]


def third(loss):
    """(theta, u, v) -> T(theta)[u, v] = d/dtheta (u^T H(theta) v)."""
    hessian_vector = hvp(loss)
    return lambda theta, u, v: jax.jvp(lambda th: hessian_vector(th, v), (theta,), (u,))[1]


def hessian(loss):
    """theta -> dense Hessian (n x n) as the Jacobian of the gradient: n HVPs, n^2 memory."""
    grad = gradient(loss)
    return lambda theta: jax.jacfwd(grad, holomorphic=jnp.iscomplexobj(theta))(theta)
