"""Rod flows of momentum and adaptive methods: the rod of a one-step map on (params, optimizer state).

A method z_{k+1} = F(z_k) = z_k + D(z_k) on its whole state z = (params, optimizer state) is read as GD is in
`rod_edge`: the rod joining consecutive iterates has centre x_k = (z_k + z_{k+1})/2 and sign-corrected half-extent
d_k = (-1)^k (z_k - z_{k+1})/2, and (`rod_field`, docs/flows.md section 11.1)

    dx/dtau = (1/2)[D(x + d) + D(x - d)]              (the centre moves by the average of the map over the two ends)
    dd/dtau = -(1/2)[D(x + d) - D(x - d)] - 2 d       (the half-extent grows along the unstable direction)

whose Euler step dtau = 1 maps rod k to rod k + 1 exactly. At d = 0 the d-equation linearizes to
dd/dtau = -(J_F(x) + I) d: d opens iff J_F has an eigenvalue with real part below -1, the period-two (z = -1)
boundary of the method's linear stability; the heavy-ball and frozen-preconditioner Adam thresholds of
`dynamics.predictions.stability` follow (their other roots are complex of modulus < 1 or real in (-1, 1) below it).
d = 0 is invariant, and the rod at d = 0 is the method's stable flow dz/dtau = D(z) (whose Euler step is the
method; for GD it is `StableFlow`).

Sources. Regis & Chewi, "A rod flow model for Adam at the edge of stability", arXiv 2605.06821 (2026) [paper,
abstract]: rod flows for heavy ball, Nesterov, RMSProp, Adam and NAdam, built in the joint phase space of the
parameters and the first moment (w, m), with the second moment nu "a smooth auxiliary variable"; they track the
iterates through the edge of stability "significantly more accurately than the corresponding stable flow". Only the
abstract and introduction could be read here. The equations above are this project's reconstruction consistent with
that: the rod over (w, m) (heavy ball: (w, v)); nu and integer step counters kept off the rod (``smooth``: d = 0
there, moved by the average of the map, counters carried as real numbers so bias corrections are smooth in tau); the
second-order centre term (``order=2``) as for `RodFlow`. The paper's exact equations, initial conditions and stable
flows are unconfirmed.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from .arguments import like, same_structure, state_tuple
from .base import AbstractFlow, StepCost, TimeUnit, positive_lr, real_parameter
from .discrete import GradientDescent, HeavyBall, Nesterov
from .optax_method import OptaxMethod
from .rod_edge import centre_order, rod_field, rod_from_gd

__all__ = ["MethodRodFlow", "adam_rod", "heavy_ball_rod"]

#: which coordinates stay off the rod: "second_moment" (the follow-up paper's choice for Adam): integer leaves of the
#: method's state (step counters) and leaves under a field named ``nu`` (optax's second-moment estimate:
#: scale_by_adam, scale_by_rms, ...); "none": every coordinate is on the rod (the Euler identity is then exact)
SMOOTH = ("second_moment", "none")
METHODS = (GradientDescent, HeavyBall, Nesterov, OptaxMethod)
HINT = "start from flow.initial_state(w0), or flow.rod(z_k, z_next, k) for the rod of two consecutive method states"


@eqx.filter_jit
def _first_step(method, z0):
    """method.step(z0, 0), compiled once per method type and state shapes (hyper-parameters traced)."""
    return method.step(z0, 0)


def _is_nu(path):
    return any(getattr(key, "name", None) == "nu" for key in path)


def _real(tree):
    """Every leaf as a floating array (integer counters become float64 / the default float)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.result_type(float)) if not jnp.issubdtype(
        jnp.asarray(a).dtype, jnp.inexact) else jnp.asarray(a), tree)


class MethodRodFlow(AbstractFlow):
    """Rod flow in step time (tau = k) of ``method`` (`GradientDescent`, `HeavyBall`, `Nesterov` with a constant
    learning rate, or `OptaxMethod`), state (x, d) with x, d shaped like the method's state (real leaves):

        dx/dtau = (1/2)[D(x + d) + D(x - d)]   [order 2: - (1/8)(J_+ + J_-)(D_+ + D_-)]
        dd/dtau = -(1/2)[D(x + d) - D(x - d)] - 2 d          (0 on the ``smooth`` coordinates)

    D(z) = method.step(z, tau) - z, the map evaluated at the real step index tau (a constant learning rate, so only
    optax's own counters see tau; they are carried as real numbers; a schedule inside an optax transformation is not
    refused, since it cannot be seen from here, and is read at the centre's real-valued count). The rod's ends x +- d model consecutive method
    states; the centre's parameters ``method.params(x)`` model the midpoints (w_k + w_{k+1})/2 at tau = k.
    ``smooth`` (one of `SMOOTH`): "second_moment" (default) keeps step counters and optax second moments (``nu``)
    off the rod, as the follow-up paper treats nu; "none" puts every coordinate on it (then one Euler step dtau = 1
    from `rod` (z_k, z_{k+1}) is `rod` (z_{k+1}, z_{k+2}) exactly). ``order``: as for `RodFlow` (2 adds the
    second-order centre term). For GD this is `RodFlow`'s field. The stable flow is the same field at d = 0
    (`initial_state(w0, stable=True)`). Reconstruction of docs/flows.md section 11.1, see the module docstring.
    Cost per field evaluation: 2 gradients (2 method steps), plus 2 JVPs of the step (~2 HVPs) at order 2."""

    time_unit = TimeUnit.STEP
    cost = StepCost(2.0)
    method: object
    order: int = eqx.field(static=True)
    smooth: str = eqx.field(static=True)

    def __init__(self, method, order=1, smooth="second_moment"):
        if not isinstance(method, METHODS):
            names = ", ".join(m.__name__ for m in METHODS)
            raise InputError(f"MethodRodFlow needs a deterministic one-step method ({names}), got "
                             f"{type(method).__name__}")
        if not getattr(method, "constant_step", True) or callable(getattr(method, "lr", None)):
            raise InputError("MethodRodFlow needs a constant learning rate: the rod models a fixed map z -> F(z); "
                             "pass a number as lr (a schedule inside an optax transformation cannot be seen here: it "
                             "is evaluated at the real-valued step count of the rod's centre)")
        if smooth not in SMOOTH:
            raise InputError(f"smooth must be one of {SMOOTH}, got {smooth!r}")
        self.method, self.order, self.smooth = method, centre_order(order), smooth

    def step_cost(self, theta):
        return StepCost(2.0, 2.0) if self.order == 2 else self.cost

    def _template(self, z):
        """The method's own state structure and dtypes for the parameters held in z (shapes only)."""
        return jax.eval_shape(self.method.init, self.method.params(z))

    def smooth_mask(self, z):
        """A pytree like z: True on the coordinates kept off the rod (see ``smooth``)."""
        template = self._template(z)
        if self.smooth == "none":
            return jax.tree_util.tree_map(lambda t: jnp.zeros(t.shape, bool), template)
        return jax.tree_util.tree_map_with_path(
            lambda path, t: jnp.full(t.shape, _is_nu(path) or not jnp.issubdtype(t.dtype, jnp.inexact)), template)

    def _unpack(self, state):
        x, d = state_tuple(state, ("x", "d"), "MethodRodFlow", HINT)
        same_structure("the rod's centre x", x, "its half-extent d", d)
        try:
            template = self._template(x)
        except (AttributeError, TypeError, IndexError):
            template = None
        if template is None or jax.tree_util.tree_structure(template) != jax.tree_util.tree_structure(x):
            raise InputError(f"the rod's centre must be shaped like {type(self.method).__name__}'s state "
                             f"(method.init(params)), got {jax.tree_util.tree_structure(x)}; {HINT}")
        return x, d

    def field(self, tau, state):
        x, d = self._unpack(state)
        fx, unravel = ravel_pytree(x)
        fd = ravel_pytree(d)[0]
        mask = ravel_pytree(self.smooth_mask(x))[0]

        def displacement(z):
            return ravel_pytree(_real(self.method.step(unravel(z), tau)))[0] - z

        dx, dd = rod_field(displacement, fx, fd, self.order, None if self.smooth == "none" else mask)
        return like(state, (unravel(dx), unravel(dd)))

    def rod(self, z_k, z_next, k=0):
        """The rod (x, d) of consecutive method states z_k, z_{k+1} at tau = k: x = (z_k + z_{k+1})/2,
        d = (-1)^k (z_k - z_{k+1})/2, with d = 0 on the smooth coordinates."""
        x, d = rod_from_gd(_real(z_k), _real(z_next), k)
        mask = self.smooth_mask(x)
        return x, jax.tree_util.tree_map(lambda a, m: jnp.where(m, 0.0, a), d, mask)

    def initial_state(self, w0, stable=False):
        """The rod of the method's first two states, z_0 = method.init(w0) and z_1 = method.step(z_0, 0), at tau = 0
        (its centre models the midpoint k = 0); ``stable=True``: (z_0, 0), the stable flow from z_0 (at tau it models
        the state z_tau itself, so compare it with the midpoints at tau = k + 1/2)."""
        if any(jnp.iscomplexobj(leaf) for leaf in jax.tree_util.tree_leaves(w0)):
            raise InputError("MethodRodFlow runs on real states: its methods differentiate a real loss, and a complex "
                             "w0 would need a holomorphic loss and complex optimizer states; start from a real w0")
        z0 = self.method.init(w0)
        if stable:
            z0 = _real(z0)
            return z0, jax.tree_util.tree_map(jnp.zeros_like, z0)
        return self.rod(z0, _first_step(self.method, z0), 0)


def heavy_ball_rod(loss, lr, beta, order=1):
    """`MethodRodFlow` of `HeavyBall` (optax.sgd(lr, momentum=beta)) on the rod over (w, v). beta in [0, 1)."""
    return MethodRodFlow(HeavyBall(loss, lr, momentum=real_parameter(beta, "the momentum beta", 0.0, 1.0)), order)


def adam_rod(loss, lr, b1=0.9, b2=0.999, eps=1e-8, order=1, smooth="second_moment"):
    """`MethodRodFlow` of `OptaxMethod` (optax.adam(lr, b1, b2, eps)): the rod over (w, m), nu and the step counter
    smooth by default. b1, b2 in [0, 1) (`InputError`), eps > 0 (`InputError`), lr > 0 (`StepSizeError`)."""
    lr = positive_lr(lr)
    b1 = real_parameter(b1, "Adam's b1 (beta1)", 0.0, 1.0)
    b2 = real_parameter(b2, "Adam's b2 (beta2)", 0.0, 1.0)
    if isinstance(eps, (bool, str)) or not float(real_parameter(eps, "Adam's eps")) > 0:
        raise InputError(f"Adam's eps must be > 0 (it keeps the update m / (sqrt(nu) + eps) finite), got {eps!r}")
    return MethodRodFlow(OptaxMethod(loss, optax.adam(lr, b1=b1, b2=b2, eps=eps)), order, smooth)
