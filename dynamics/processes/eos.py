"""Continuous models of GD at the edge of stability, in step time tau = k (GD iterate k at tau = k).

StableFlow: dw/dtau = -eta grad L (gradient flow in step time).
CentralFlow (Cohen, Damian, Talwalkar, Kolter, Lee 2025): dw/dtau = -eta [grad L + (1/2) grad <Sigma, H>] with the
  oscillation covariance Sigma = V X V^T on the critical eigenspace chosen so that lambda_max <= 2/eta, X solving a
  semidefinite complementarity problem; integrated as in the authors' code by Euler substeps of dt = 1/substeps.
RodFlow, EdgeFlow (rod_edge.py) build on _StepTimeFlow.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, third
from ..errors import InputError
from ..linalg import solve_eigenpairs
from .arguments import integer_parameter
from .base import AbstractDiscrete, AbstractFlow, StepCost, TimeUnit, positive_lr, real_parameter


class _StepTimeFlow(AbstractFlow):
    """A flow of GD with learning rate eta in step time (GD iterate k <-> tau = k)."""

    loss: callable
    lr: object
    time_unit = TimeUnit.STEP

    def __init__(self, loss, lr):
        self.loss, self.lr = loss, positive_lr(lr)


class StableFlow(_StepTimeFlow):
    """dw/dtau = -eta grad L(w): gradient flow in step time. One gradient."""

    def field(self, tau, w):
        return jax.tree_util.tree_map(lambda g: -self.lr * g, jax.grad(self.loss)(w))


def solve_sdcp(A, gram, mask, iterations=2000, tol=1e-12):
    """X >= 0 (PSD, supported on ``mask``) with A + B[X] >= 0 and <X, A + B[X]> = 0, B[X] = reshape(gram vec X).

    B is a PSD Gram operator, so X minimizes the convex QP (1/2)<X, B[X]> + <A, X> over PSD X; solved by
    accelerated projected gradient (FISTA, step 1/||B|| on the critical block, eigenvalue clipping: a k x k eigh per
    iteration) until the projected-gradient step moves X by <= tol (1 + ||X||), at most ``iterations`` times.
    An empty critical set returns X = 0 without iterating. For one critical eigenvalue the answer is
    x = max(0, -A/B) in closed form (`central_flow_scalar`)."""
    k = A.shape[0]
    M = jnp.outer(mask, mask).astype(A.dtype)
    gram = gram * jnp.outer(M.reshape(-1), M.reshape(-1))   # B restricted to the critical block
    apply_b = lambda X: (gram @ X.reshape(-1)).reshape(k, k)
    step = 1.0 / (jnp.linalg.eigvalsh(gram)[-1] + 1e-300)

    def project(X):
        X = 0.5 * (X + X.T) * M
        lam, U = jnp.linalg.eigh(X)
        return (U * jnp.maximum(lam, 0.0)) @ U.T

    def moving(carry):
        i, X, _, _, change = carry
        return (i < iterations) & (change > tol * (1.0 + jnp.linalg.norm(X)))

    def body(carry):
        i, X, Y, t, _ = carry
        X_new = project(Y - step * (apply_b(Y) + A))
        t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t**2))
        return i + 1, X_new, X_new + (t - 1) / t_new * (X_new - X), t_new, jnp.linalg.norm(X_new - X)

    def solve(_):
        zero = jnp.zeros_like(A)
        one = jnp.ones((), A.dtype)
        return jax.lax.while_loop(moving, body, (0, zero, zero, one, jnp.inf * one))[1]

    return jax.lax.cond(jnp.any(mask), solve, jnp.zeros_like, A)


def central_flow_scalar(A, B):
    """k_c = 1: x = max(0, -A/B)."""
    return jnp.maximum(0.0, -A / B)


class CentralFlowState(NamedTuple):
    """State of `CentralFlow`: the parameters, the eigenvector block warm-starting the next solve, and the HVPs the
    eigensolver has used so far."""

    params: object
    block: jax.Array
    hvps: jax.Array


class CentralFlow(AbstractDiscrete):
    """Central flow of GD with learning rate eta, advanced by ``substeps`` Euler substeps per GD step.

    Per substep at w: top-k Hessian eigenpairs (Lambda, V); critical set lambda_i > threshold/eta; the gradients
    D_ij = grad_w(v_i^T H v_j) = T[v_i, v_j]; A = (2/eta) I - Lambda - dt D.(-eta g) and B[X]_ij =
    dt (eta/2) sum_kl <D_ij, D_kl> X_kl on the critical block; X = SDCP(A, B); then
    w <- w + dt (-eta g - (eta/2) sum_ij X_ij D_ij). Sigma = V X V^T.

    Eigensolver (``method``): "lobpcg" tracks the top-k eigenvectors (plus ``guard`` guard vectors) as a subspace,
    warm-started from the previous substep's block, to relative residual ``tol`` within ``max_iterations``;
    "lanczos" runs ``lanczos_steps`` HVPs from the previous top eigenvector; "dense" takes eigh of the full Hessian
    (n HVPs). Cost per substep: the eigensolve + 1 gradient + k(k+1)/2 third-derivative products (each ~2 HVPs) +
    the k x k SDCP. State: `CentralFlowState` (its HVP count covers the eigensolver only).
    GD iterate k sits at tau = k (``time_unit = "step"``).

    ``lr``, ``threshold`` and ``tol`` are float64 arrays (new values reuse the compiled code); ``k``, ``substeps``,
    ``guard``, ``lanczos_steps``, ``max_iterations`` and ``method`` are static: they set array shapes, loop lengths
    or the eigensolver's code.
    """

    loss: callable
    lr: object
    k: int = eqx.field(static=True)
    threshold: object
    substeps: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    lanczos_steps: int = eqx.field(static=True)
    guard: int = eqx.field(static=True)
    tol: object
    max_iterations: int = eqx.field(static=True)
    time_unit = TimeUnit.STEP

    def __init__(self, loss, lr, k=3, threshold=1.95, substeps=4, method="dense", lanczos_steps=30, guard=2,
                 tol=1e-9, max_iterations=50):
        if method not in ("dense", "lanczos", "lobpcg"):
            raise InputError(f"method must be 'dense', 'lanczos' or 'lobpcg', got {method!r}")
        self.loss, self.lr = loss, positive_lr(lr)
        self.k, self.substeps = integer_parameter(k, "k"), integer_parameter(substeps, "substeps")
        self.threshold = real_parameter(threshold, "threshold", 0.0)
        self.method = method
        self.lanczos_steps = integer_parameter(lanczos_steps, f"lanczos_steps (at least k = {self.k} Ritz pairs)",
                                               self.k if method == "lanczos" else 1)
        self.guard, self.tol = integer_parameter(guard, "guard", 0), real_parameter(tol, "tol", 0.0)
        self.max_iterations = integer_parameter(max_iterations, "max_iterations")

    def _flat(self, w):
        flat, unravel = ravel_pytree(w)
        return flat, unravel, (lambda v: self.loss(unravel(v)))

    def _eigen(self, E, flat, start, method=None):
        """Top-k eigenpairs at flat: (values, vectors (n, k), the block to warm-start the next solve, HVPs)."""
        method = method or self.method
        steps = {"dense": None, "lanczos": self.lanczos_steps, "lobpcg": self.max_iterations}[method]
        start = start[:, 0] if method == "lanczos" and start is not None else start
        result = solve_eigenpairs(E, flat, self.k, method, start, steps, self.tol)
        block = result.block if method == "lobpcg" else result.vectors
        return result.values, result.vectors, block, result.hvps

    def analyse(self, w, start=None):
        """(X, V, lambda, critical mask, D (k, k, n), g) at w for one substep dt = 1/substeps."""
        return self._analyse(w, start)[:6]

    def _analyse(self, w, start, method=None):
        flat, _, E = self._flat(w)
        eta, dt = self.lr, 1.0 / self.substeps
        lam, V, block, hvps = self._eigen(E, flat, start, method)
        critical = lam > self.threshold / eta
        g = gradient(E)(flat)
        rows, cols = jnp.triu_indices(self.k)
        upper = jax.vmap(lambda a, b: third(E)(flat, a, b))(V.T[rows], V.T[cols])   # k(k+1)/2 products
        D = jnp.zeros((self.k, self.k, flat.size), flat.dtype).at[rows, cols].set(upper).at[cols, rows].set(upper)
        A = (2.0 / eta) * jnp.eye(self.k) - jnp.diag(lam) - dt * (D @ (-eta * g))
        flatD = D.reshape(self.k * self.k, -1)
        gram = dt * (eta / 2.0) * flatD @ flatD.T
        X = self._sdcp(A, gram, critical)
        return X, V, lam, critical, D, g, block, hvps

    def _sdcp(self, A, gram, mask):
        """The substep's complementarity problem (`solve_sdcp`, in JAX); a subclass may swap the solver."""
        return solve_sdcp(A, gram, mask)

    def init(self, w0, k0=0):
        flat, _, _ = self._flat(w0)
        columns = self.k + (self.guard if self.method == "lobpcg" else 0)
        block = jax.random.normal(jax.random.PRNGKey(0), (flat.size, columns), flat.dtype)
        return CentralFlowState(w0, block, jnp.zeros((), jnp.int64))

    def step(self, state, k):
        def substep(i, carry):
            w, block, hvps = carry
            flat, unravel, _ = self._flat(w)
            X, V, lam, critical, D, g, block, used = self._analyse(w, block)
            velocity = -self.lr * (g + 0.5 * jnp.einsum("ij,ijn->n", X, D))
            return unravel(flat + velocity / self.substeps), block, hvps + used

        return CentralFlowState(*jax.lax.fori_loop(0, self.substeps, substep, tuple(state)))

    def params(self, state):
        return state.params

    @property
    def cost(self):
        """Per GD step: ``substeps`` x (1 gradient + k(k+1)/2 third-derivative products); the eigensolver's HVPs
        are counted in the state (`counts`)."""
        return StepCost(self.substeps, 0.0, self.substeps * self.k * (self.k + 1) / 2)

    def counts(self, state):
        return StepCost(0.0, state.hvps, 0.0)

    def predictions(self, w):
        """Central-flow predictions at w: predicted time-averaged GD loss L + (1/2)<Sigma, H> = L + (1/2) sum_i X_ii lambda_i,
        the covariance Sigma = V X V^T (n x n) and X itself. The eigenpairs come from a cold, tolerance-driven
        LOBPCG solve (``tol``; dense when the flow's method is dense), whatever the flow's own method."""
        X, V, lam, _, _, _, _, _ = self._analyse(w, None, "dense" if self.method == "dense" else "lobpcg")
        return {"predicted_loss": self.loss(w) + 0.5 * jnp.sum(jnp.diag(X) * lam), "X": X, "Sigma": V @ X @ V.T,
                "eta_lambda": self.lr * lam}

