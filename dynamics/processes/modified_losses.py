"""Modified losses whose gradient flows model discrete methods (backward error analysis, first order).

Each returns a callable theta -> scalar to pass to `GradientFlow`. Learning rate h (or epsilon) in the
units of the discrete method; physical time t = k h.
"""

import jax
import jax.numpy as jnp

from ..derivatives import scalar_loss
from ..errors import InputError


def _sq_norm(tree):
    return sum(jnp.vdot(leaf, leaf).real for leaf in jax.tree_util.tree_leaves(tree))


def igr_loss(loss, lr):
    """E + (h/4) ||grad E||^2 (Barrett & Dherin 2021): GD with step h follows its gradient flow to O(h^2)."""
    loss = scalar_loss(loss)
    return lambda theta: loss(theta) + lr / 4.0 * _sq_norm(jax.grad(loss)(theta))


def reshuffling_modified_loss(batch_losses, lr):
    """SGD with random reshuffling over a fixed partition into m batches (Smith, Dherin, Barrett, De 2021):

        C_SGD = C + (epsilon / (4 m)) sum_k ||grad C_k||^2,   C = (1/m) sum_k C_k,

    C_k the batch-mean losses. The mean over epoch orders of the iterate after one epoch (m steps) equals
    the flow at t = m epsilon up to O(m^3 epsilon^3).
    """
    batch_losses = [scalar_loss(loss) for loss in batch_losses]
    if not batch_losses:
        raise InputError("reshuffling_modified_loss needs at least one batch loss")
    m = len(batch_losses)

    def modified(theta):
        full = sum(loss(theta) for loss in batch_losses) / m
        return full + lr / (4.0 * m) * sum(_sq_norm(jax.grad(loss)(theta)) for loss in batch_losses)

    return modified


def gradient_noise(example_loss, num_examples):
    """theta -> (mean gradient, Gamma) with Gamma(theta) = (1/N) sum_i ||grad C_i - grad C||^2.

    ``example_loss(theta, i)`` is the loss of example i (an integer array index)."""

    def stats(theta):
        grads = jax.vmap(lambda i: jax.grad(example_loss)(theta, i))(jnp.arange(num_examples))
        mean = jax.tree_util.tree_map(lambda g: g.mean(axis=0), grads)
        spread = jax.tree_util.tree_map(lambda g, m: g - m, grads, mean)
        gamma = sum(jnp.sum(jnp.abs(s) ** 2) for s in jax.tree_util.tree_leaves(spread)) / num_examples
        return mean, gamma

    return stats


def partition_averaged_modified_loss(example_loss, num_examples, batch_size, lr):
    """The reshuffling modified loss averaged over random partitions (Smith et al. 2021):

        E[C_SGD] = C + (epsilon/4) ||grad C||^2 + (epsilon/4) (N - B) / (B (N - 1)) Gamma,

    C = (1/N) sum_i C_i, Gamma = (1/N) sum_i ||grad C_i - grad C||^2 (the minibatch-variance penalty).
    """
    if not (isinstance(batch_size, int) and 1 <= batch_size <= num_examples and num_examples % batch_size == 0):
        raise InputError(f"batch_size must divide N = {num_examples}, got {batch_size!r}")
    noise = gradient_noise(example_loss, num_examples)
    factor = (num_examples - batch_size) / (batch_size * (num_examples - 1)) if num_examples > 1 else 0.0

    def modified(theta):
        full = jnp.mean(jax.vmap(lambda i: example_loss(theta, i))(jnp.arange(num_examples)))
        mean, gamma = noise(theta)
        return full + lr / 4.0 * (_sq_norm(mean) + factor * gamma)

    return modified


def multitask_modified_loss(losses, lr):
    """Joint GD on L = sum_i L_i (Dherin 2023): L + (h/4) sum_i ||g_i||^2 + (h/2) sum_{i<j} <g_i, g_j>;
    the last term is the conflict (gradient alignment) term. Equal to igr_loss(sum_i L_i, h)."""
    losses = [scalar_loss(loss) for loss in losses]

    def modified(theta):
        grads = [jax.grad(loss)(theta) for loss in losses]
        total = sum(loss(theta) for loss in losses)
        self_terms = sum(_sq_norm(g) for g in grads)
        conflict = sum(sum(jnp.vdot(a, b).real for a, b in zip(jax.tree_util.tree_leaves(gi), jax.tree_util.tree_leaves(gj)))
                       for i, gi in enumerate(grads) for gj in grads[i + 1:])
        return total + lr / 4.0 * self_terms + lr / 2.0 * conflict

    return modified


def corridor_learning_rate(loss, theta):
    """CLR h(theta) = E(theta) / ||grad E(theta)||^2 (Dherin & Rosca 2024): the Polyak step with E* = 0."""
    value, grad = jax.value_and_grad(scalar_loss(loss))(theta)
    return value / _sq_norm(grad)


def corridor_residual(loss, theta):
    """||H g|| / ||g||^2 (dimensionless in time): zero exactly on a corridor, where GD = GF and all BEA terms vanish."""
    loss = scalar_loss(loss)
    grad = jax.grad(loss)
    g = grad(theta)
    hg = jax.jvp(grad, (theta,), (g,))[1]
    return jnp.sqrt(_sq_norm(hg)) / _sq_norm(g)
