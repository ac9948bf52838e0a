"""Toy objectives of the papers: quadratics and small closed-form losses whose critical points, Hessians and
flows are known, so a process run on them can be checked against exact answers.

Each loss maps a parameter vector theta (a player pair for games) to a scalar; its first two entries theta[0],
theta[1] are written (theta_1, theta_2), (a, b) or (x, y), as in the paper that uses the loss.
"""

import equinox as eqx
import jax
import jax.numpy as jnp


class Quadratic(eqx.Module):
    """E(w) = w^T H w / 2 - b^T w, H symmetric (n, n), or a vector of its eigenvalues for diagonal H; b = None
    drops the linear term.

    Gradient H w - b, Hessian H (diag(H) for a vector); critical points solve H w = b, the unique minimizer
    H^{-1} b when H > 0. GD with step h multiplies each eigencomponent of the gradient by 1 - h lambda_i, so GD
    and its continuous models have closed forms here (Barrett & Dherin 2021, Implicit gradient regularization;
    Rosca, Wu, Qin, Dherin 2023, On a continuous time model of gradient descent dynamics and instability in deep
    learning; Regis & Chewi 2026, Rod Flow: a continuous-time model for gradient descent at the edge of stability).
    H and b are array leaves, traced under jit: one compilation per shape.
    """

    H: jax.Array
    b: jax.Array | None = None

    def __call__(self, w):
        quadratic = 0.5 * jnp.sum(self.H * w**2) if self.H.ndim == 1 else 0.5 * w @ (self.H @ w)
        return quadratic if self.b is None else quadratic - self.b @ w


def product_loss(theta):
    """E(a, b) = (1 - a b)^2 / 2: the one-point model (y - a b x)^2 / 2 with x = y = 1 (Barrett & Dherin 2021,
    Implicit gradient regularization), also the non-quadratic loss on which the order of the principal flow of
    Rosca, Wu, Qin, Dherin 2023 is tested.

    g = -(1 - a b) (b, a); H = [[b^2, 2 a b - 1], [2 a b - 1, a^2]]. Minimizers: the hyperbola a b = 1, where
    H = [[b^2, 1], [1, a^2]] has eigenvalues 0 and a^2 + b^2 (flattest at a = b = +-1); the origin is a saddle.
    Gradient flow conserves a^2 - b^2.
    """
    return 0.5 * (1.0 - theta[0] * theta[1]) ** 2


def corridor_loss(theta):
    """E(x, y) = x + y^2 / 2: the line y = 0 is a corridor (H g = 0) in the sense of Dherin & Rosca 2024,
    Corridor geometry in gradient-based optimization.

    g = (1, y), H = diag(0, 1), H g = (0, y). No critical points (E is unbounded below); on the corridor GD and
    gradient flow both move along the straight line theta_0 - t (1, 0) and E decreases at rate ||g||^2 = 1.
    """
    return theta[0] + 0.5 * theta[1] ** 2


def sine_valley(theta):
    """E(theta) = log cosh(theta_1 - 1) + (theta_2 - sin theta_1)^2 / 2, a curved valley along theta_2 = sin
    theta_1; the first task of the continual-learning test of Dherin 2023, Implicit biases in multitask and
    continual learning from a backward error analysis perspective.

    Unique critical point, the global minimizer (1, sin 1), where H = [[1 + cos^2 1, -cos 1], [-cos 1, 1]].
    """
    return jnp.log(jnp.cosh(theta[0] - 1.0)) + 0.5 * (theta[1] - jnp.sin(theta[0])) ** 2


def quartic_product(theta):
    """E(theta) = (theta_1 theta_2 - 1/2)^2 / 2 + theta_2^4 / 10, the second task of the continual-learning test
    of Dherin 2023 (see `sine_valley`).

    g = ((theta_1 theta_2 - 1/2) theta_2, (theta_1 theta_2 - 1/2) theta_1 + 2 theta_2^3 / 5). The only critical
    point is the saddle at the origin (E = 1/8, H = [[0, -1/2], [-1/2, 0]]); inf E = 0 is not attained (it is
    approached along theta_1 theta_2 = 1/2, theta_2 -> 0).
    """
    return 0.5 * (theta[0] * theta[1] - 0.5) ** 2 + 0.1 * theta[1] ** 4


def bilinear_game(phi, theta):
    """E(phi, theta) = phi theta, the bilinear zero-sum game (player phi minimizes E, theta maximizes it) of
    Rosca, Wu, Dherin, Barrett 2021, Discretization drift in two-player games.

    The fields (-d_phi E, d_theta E) = (-theta, phi) rotate about the unique equilibrium (0, 0); the Hessian of E
    in (phi, theta) is [[0, 1], [1, 0]].
    """
    return phi * theta


def two_point_quadratic(spread):
    """(example_loss, mean_loss) of f_i(x) = ||x - gamma_i||^2 / 2, gamma = (+s, -s) (broadcast over x) equally
    likely, s = ``spread``: the exactly solvable SGD test problem for the stochastic modified equations of Li,
    Tai, E 2017, Stochastic modified equations and adaptive stochastic gradient algorithms.

    example_loss(x, i) = f_i(x) (i an integer, possibly traced); mean_loss(x) = (f_0 + f_1)(x) / 2 =
    (||x||^2 + n s^2) / 2 for x in R^n, minimized at 0 with Hessian I; the per-example gradients x - gamma_i have
    the constant covariance s^2 1 1^T (s^2 for n = 1).
    """

    def example_loss(x, i):
        return 0.5 * jnp.sum((x - spread * jnp.array([1.0, -1.0])[i]) ** 2)

    def mean_loss(x):
        return 0.5 * (example_loss(x, 0) + example_loss(x, 1))

    return example_loss, mean_loss
