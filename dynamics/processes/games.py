"""Two-player games (Rosca, Wu, Dherin, Barrett 2021): GD with simultaneous or alternating updates and the
modified flows that track them to O(h^2) globally.

Players phi and theta with update directions f(phi, theta) (= -grad_phi L_1) and g(phi, theta)
(= -grad_theta L_2) and learning rates alpha h and lambda h. With z = (phi, theta) and F = (alpha f, lambda g):

    simultaneous:  z' = z + h F(z)                         modified flow  z. = F - (h/2) F'F
    alternating:   phi first, theta sees the new phi       z. = F - (h/2) F'F + (0, alpha lambda h (d_phi g) f)

in physical time t = k h. The state is the pair (phi, theta).
"""

import equinox as eqx
import jax

from ..derivatives import scalar_loss
from .arguments import callable_argument, flag, like, state_tuple
from .base import AbstractDiscrete, AbstractFlow, positive_lr

STATE_HINT = "pass y0 = (phi, theta), the two players' parameters"


class _PlayerField(eqx.Module):
    """(phi, theta) -> -grad_player L(phi, theta); equal (and hashed) by (loss, player), so that fields rebuilt from
    the same losses reuse the compiled code of a game."""

    loss: callable = eqx.field(static=True)
    player: int = eqx.field(static=True)

    def __call__(self, phi, theta):
        return -jax.grad(scalar_loss(lambda z: self.loss(*z)))((phi, theta))[self.player]


def game_fields(loss_phi, loss_theta):
    """(f, g) = (-grad_phi L_1, -grad_theta L_2) for losses of (phi, theta); zero-sum: L_2 = -L_1."""
    return _PlayerField(loss_phi, 0), _PlayerField(loss_theta, 1)


class _Game(eqx.Module):
    """f, g: the players' update fields (phi, theta) -> -grad L_i (`game_fields`); lr: h > 0; alpha, lam: the players'
    rate factors, finite and > 0 (a negative factor would make that player ascend its loss); alternating: True/False.
    The state is the pair (phi, theta)."""

    f: callable = eqx.field(static=True)
    g: callable = eqx.field(static=True)
    lr: object
    alpha: object  # float64 arrays: new values reuse the compiled code
    lam: object
    alternating: bool = eqx.field(static=True)  # selects the update order (Python control flow)

    def __init__(self, f, g, lr, alpha=1.0, lam=1.0, alternating=False):
        what = "a function (phi, theta) -> the player's update direction, e.g. from dynamics.game_fields(L1, L2)"
        self.f, self.g = callable_argument(f, "f", what), callable_argument(g, "g", what)
        self.lr = positive_lr(lr)
        self.alpha, self.lam = positive_lr(alpha, "rate factor alpha"), positive_lr(lam, "rate factor lam")
        self.alternating = flag(alternating, "alternating")

    def players(self, z):
        """(phi, theta) from the state, checked at trace time."""
        return state_tuple(z, ("phi", "theta"), type(self).__name__, STATE_HINT)

    def scaled(self, z):
        phi, theta = self.players(z)
        return self.alpha * self.f(phi, theta), self.lam * self.g(phi, theta)


class GameGD(_Game, AbstractDiscrete):
    """phi' = phi + alpha h f(phi, theta); theta' = theta + lambda h g(phi or phi', theta)."""

    def step(self, z, k):
        phi, theta = self.players(z)
        new_phi = phi + self.lr * self.alpha * self.f(phi, theta)
        seen = new_phi if self.alternating else phi
        return like(z, (new_phi, theta + self.lr * self.lam * self.g(seen, theta)))


class GameModifiedFlow(_Game, AbstractFlow):
    """z. = F - (h/2) F'F (+ (0, alpha lambda h (d_phi g) f) for alternating updates); local error O(h^3)."""

    def field(self, t, z):
        phi, theta = self.players(z)
        F = self.scaled((phi, theta))
        drift = jax.jvp(self.scaled, ((phi, theta),), (F,))[1]
        dphi, dtheta = (a - self.lr / 2.0 * b for a, b in zip(F, drift))
        if self.alternating:
            f = self.f(phi, theta)
            dtheta = dtheta + self.alpha * self.lam * self.lr * jax.jvp(lambda p: self.g(p, theta), (phi,), (f,))[1]
        return like(z, (dphi, dtheta))
