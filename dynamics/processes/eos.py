"""Continuous models of GD at the edge of stability, in step time tau = k (GD iterate k at tau = k).

StableFlow: dw/dtau = -eta grad L (gradient flow in step time).
CentralFlow (Cohen, Damian, Talwalkar, Kolter, Lee 2025): dw/dtau = -eta [grad L + (1/2) grad <Sigma, H>] with the
  oscillation covariance Sigma = V X V^T on the critical eigenspace chosen so that lambda_max <= 2/eta, X solving a
  semidefinite complementarity problem; integrated as in the authors' code by Euler substeps of dt = 1/substeps.
RodFlow, EdgeFlow (rod_edge.py) build on _StepTimeFlow.
"""

import functools
import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..derivatives import gradient, third
from ..errors import InputError, SolverBudgetError, error_if
from ..linalg import DENSE_LIMIT, _start_block, solve_eigenpairs
from .arguments import flag, integer_parameter
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
    iteration, with adaptive restart: the momentum is reset when it points uphill, which makes the convergence
    linear on ill-conditioned B) until the projected-gradient step moves X by <= tol (1 + ||X||), at most
    ``iterations`` times.
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
        restart = jnp.sum((Y - X_new) * (X_new - X)) > 0     # momentum uphill: restart (O'Donoghue & Candes 2015)
        t_new = jnp.where(restart, 1.0, 0.5 * (1 + jnp.sqrt(1 + 4 * t**2)))
        Y_new = jnp.where(restart, X_new, X_new + (t - 1) / t_new * (X_new - X))
        return i + 1, X_new, Y_new, t_new, jnp.linalg.norm(X_new - X)

    def solve(_):
        zero = jnp.zeros_like(A)
        one = jnp.ones((), A.dtype)
        return jax.lax.while_loop(moving, body, (0, zero, zero, one, jnp.inf * one))[1]

    return jax.lax.cond(jnp.any(mask), solve, jnp.zeros_like, A)


def central_flow_scalar(A, B):
    """k_c = 1: x = max(0, -A/B)."""
    return jnp.maximum(0.0, -A / B)


class CentralFlowState(NamedTuple):
    """State of `CentralFlow` at parameters w (GD iterate k at tau = k), with the analysis done there.

    params: w; block: the eigenvector block (n, c) warm-starting the next solve (its first k columns are the top-k
    eigenvectors V at w); hvps, third: eigensolver HVPs and third-derivative products spent so far; velocity:
    dw/dtau at w (flat, (n,)), the next substep's direction; loss: L(w); eigenvalues: the top k (descending); X: the
    substep SDCP solution (k x k, zero off the critical block; Sigma = V X V^T); tracked, critical: how many
    eigenvalues lie above track/eta and threshold/eta; residuals: ||H v_i - lambda_i v_i|| (k,) and tolerance (the
    eigensolver's absolute bound); converged: the tracked pairs met it; unconverged, full, crowded: counts of the
    analyses (since init, init's included) whose solve did not converge, whose block was full (every eigenvalue
    tracked: lambda_k > track/eta), or all of whose eigenvalues were critical (lambda_k > threshold/eta).
    """

    params: object
    block: jax.Array
    hvps: jax.Array
    third: jax.Array
    velocity: jax.Array
    loss: jax.Array
    eigenvalues: jax.Array
    X: jax.Array
    tracked: jax.Array
    critical: jax.Array
    residuals: jax.Array
    tolerance: jax.Array
    converged: jax.Array
    unconverged: jax.Array
    full: jax.Array
    crowded: jax.Array


def _warn(event, step, values, residuals, tolerance, level, *, kind, k, advice, flow="CentralFlow",
          level_name="threshold/lr"):
    """Host side of `CentralFlow`'s run-time warnings (first occurrence per run, through jax.debug.callback; step:
    the GD step whose substep analysed the point, the initial iterate's for init). The
    event flag is checked here too: under vmap the guarding `jax.lax.cond` becomes a select that always calls back;
    batched arguments are then reported for the first lane where the event happened."""
    event = np.asarray(event)
    if not event.any():
        return
    if event.ndim:
        lane = int(np.argmax(event.reshape(-1)))
        pick = lambda a, dims: np.asarray(a).reshape((event.size,) + np.shape(a)[event.ndim:])[lane] \
            if np.ndim(a) > dims else a
        step, values, residuals, tolerance, level = (pick(step, 0), pick(values, 1), pick(residuals, 1),
                                                     pick(tolerance, 0), pick(level, 0))
    values = [round(float(v), 10) for v in values]
    if kind == "critical":
        message = (f"{flow}: all k = {k} tracked eigenvalues are critical (above {level_name} = "
                   f"{float(level):.6g}) in step {int(step)} (eigenvalues {values}): more critical eigenvalues may lie "
                   "outside the block, and the flow would miss them. Raise k (the maximum block size). The state's "
                   "`crowded` counts such analyses"
                   + (" (`full`: those with every eigenvalue above track/lr)." if flow == "CentralFlow" else "."))
    else:
        shown = ", ".join(f"{float(r):.3g}" for r in residuals)
        message = (f"{flow}: the eigensolver did not converge on the tracked eigenpairs in step {int(step)}: "
                   f"residuals ||H v - lambda v|| = [{shown}] for eigenvalues {values} (Rayleigh quotients: lower "
                   f"bounds), tolerance {float(tolerance):.3g}. Advice: {advice}. The state's `unconverged` counts "
                   "such analyses"
                   + ("; strict=True stops the run instead (SolverBudgetError)." if flow == "CentralFlow" else "."))
    warnings.warn(message, RuntimeWarning, stacklevel=2)


def _flat_objective(loss, w):
    """(flat w, unravel, E on flat vectors) for a loss of the pytree w."""
    flat, unravel = ravel_pytree(w)
    return flat, unravel, (lambda v: loss(unravel(v)))


def _default_eigensolver(method, n):
    """``method``, or "dense" up to DENSE_LIMIT parameters and "lobpcg" above (the central flows' rule)."""
    return method or ("dense" if n <= DENSE_LIMIT else "lobpcg")


def _advice(method, lanczos_steps, max_iterations, guard=None):
    """What to change when the central flows' ``method`` eigensolver misses its tolerance."""
    lobpcg = f"raise max_iterations (now {max_iterations})"
    if guard is not None:
        lobpcg += f" or guard (now {guard}), or warm-start (start=)"
    return {"dense": "the dense Hessian is non-finite or the tolerance is below rounding; raise tol",
            "lanczos": f"raise lanczos_steps (now {lanczos_steps}) or use method='lobpcg'",
            "lobpcg": lobpcg}[method]


def _warn_once(events, step, values, result, level, **labels):
    """For each (kind, event, count before) in ``events``: `_warn` through jax.debug.callback when the event happens
    for the first time in the run (count before = 0). ``labels``: `_warn`'s keywords (kind excluded)."""
    for kind, event, before in events:
        note = functools.partial(_warn, kind=kind, **labels)
        jax.lax.cond(event & (before == 0), lambda: jax.debug.callback(
            note, event, step, values, result.residuals, result.tolerance, level), lambda: None)


class CentralFlow(AbstractDiscrete):
    """Central flow of GD with learning rate eta, advanced by ``substeps`` Euler substeps per GD step.

    Per substep at w: top-k Hessian eigenpairs (Lambda, V); critical set lambda_i > threshold/eta (a prefix
    c = 1..k_c of the descending eigenvalues); the gradients D_ij = grad_w(v_i^T H v_j) = T[v_i, v_j] for i <= j in
    the critical block only (k_c(k_c+1)/2 third-derivative products); A = (2/eta) I - Lambda - dt D.(-eta g) and
    B[X]_ij = dt (eta/2) sum_kl <D_ij, D_kl> X_kl on that block; X = SDCP(A, B); then
    w <- w + dt (-eta g - (eta/2) sum_ij X_ij D_ij). Sigma = V X V^T. docs/flows.md sections 10 and 10.1.

    Tracking: ``k`` is the maximum block size (static shapes); the eigenvalues above ``track``/eta (default 1.5/eta)
    are tracked: the eigensolver must converge on them (pair 1, and pair i when lambda_{i-1} > track/eta); when all k
    are critical, more may lie outside the block and a warning (once per run) says to raise k (the state counts
    those analyses, and those with all k tracked: the block is full). ``track`` <= ``threshold`` <= 2
    is required where given as numbers (`InputError` otherwise: tracking above 2/eta would ignore eigenvalues GD
    cannot hold).

    Eigensolver (``method``): None (default) chooses by model size n (known at the first trace): "dense" for
    n <= linalg.DENSE_LIMIT (64; eigh of the full Hessian, n HVPs, n^2 memory), "lobpcg" above, so no dense
    Hessian is built for large models. "lobpcg" tracks the top-k eigenvectors (plus ``guard`` guard vectors) as a
    subspace, warm-started from the previous substep's block, to relative residual ``tol`` within
    ``max_iterations``; "lanczos" runs ``lanczos_steps`` HVPs from the previous top eigenvector. ``start``: an
    optional block (n, c) or vector for the first solve (warm start; the default is a fixed Gaussian block). Its
    residuals and converged flag are carried in the state; an unconverged solve warns once per run naming what
    was reached, or with ``strict=True`` stops the run with `SolverBudgetError` (the policy of
    `dynamics.linalg.solve_eigenpairs`).

    Cost per substep: the eigensolve + 1 gradient + k_c(k_c+1)/2 third-derivative products (each ~2 HVPs) + the
    k_c x k_c SDCP. State: `CentralFlowState`, analysed at its own parameters (init analyses w0), so per-step loss,
    eigenvalues, X and counts are read without recomputation: ``simulate(flow, w0, ts, observe_state=True,
    observe=flow.observe)``; ``traj.stats`` counts the eigensolver's HVPs and the third-derivative products.
    GD iterate k sits at tau = k (``time_unit = "step"``).

    ``lr``, ``threshold``, ``track`` and ``tol`` are float64 arrays (new values reuse the compiled code); ``k``,
    ``substeps``, ``guard``, ``lanczos_steps``, ``max_iterations``, ``method`` and ``strict`` are static.
    """

    loss: callable
    lr: object
    k: int = eqx.field(static=True)
    threshold: object
    substeps: int = eqx.field(static=True)
    method: object = eqx.field(static=True)
    lanczos_steps: int = eqx.field(static=True)
    guard: int = eqx.field(static=True)
    tol: object
    max_iterations: int = eqx.field(static=True)
    track: object
    strict: bool = eqx.field(static=True)
    start: object
    time_unit = TimeUnit.STEP

    def __init__(self, loss, lr, k=3, threshold=1.95, substeps=4, method=None, lanczos_steps=30, guard=2,
                 tol=1e-9, max_iterations=50, track=1.5, strict=False, start=None):
        if method not in (None, "dense", "lanczos", "lobpcg"):
            raise InputError(f"method must be None (chosen by model size), 'dense', 'lanczos' or 'lobpcg', got "
                             f"{method!r}")
        self.loss, self.lr = loss, positive_lr(lr)
        self.k, self.substeps = integer_parameter(k, "k"), integer_parameter(substeps, "substeps")
        self.threshold = real_parameter(threshold, "threshold", 0.0)
        self.track = real_parameter(track, "track", 0.0)
        if not isinstance(self.track, jax.core.Tracer) and float(self.track) > 2.0:
            raise InputError(f"track = {float(self.track):g} tracks eigenvalues above {float(self.track):g}/lr > 2/lr "
                             "only, so eigenvalues between 2/lr and that level, which GD cannot hold, would be missed; "
                             "pass track <= threshold <= 2 (default track = 1.5)")
        if not any(isinstance(x, jax.core.Tracer) for x in (self.track, self.threshold)) and \
                float(self.track) > float(self.threshold):
            raise InputError(f"track = {float(self.track):g} exceeds the critical threshold = "
                             f"{float(self.threshold):g}: critical eigenvalues must be tracked; pass "
                             "track <= threshold")
        self.method = method
        self.lanczos_steps = integer_parameter(lanczos_steps, f"lanczos_steps (at least k = {self.k} Ritz pairs)",
                                               self.k if method == "lanczos" else 1)
        self.guard, self.tol = integer_parameter(guard, "guard", 0), real_parameter(tol, "tol", 0.0)
        self.max_iterations = integer_parameter(max_iterations, "max_iterations")
        self.strict = flag(strict, "strict")
        self.start = start

    def eigensolver(self, n):
        """The eigensolver used on n parameters: ``method``, or "dense" up to DENSE_LIMIT parameters, "lobpcg" above."""
        return _default_eigensolver(self.method, n)

    def _flat(self, w):
        return _flat_objective(self.loss, w)

    def _eigen(self, E, flat, start, method=None, tracked=True):
        """Top-k eigenpairs at flat as `Eigenpairs`, and the block to warm-start the next solve. ``tracked``: only the
        tracked pairs must converge (along the flow); otherwise all k (`analyse`, `predictions`)."""
        method = method or self.eigensolver(flat.size)
        steps = {"dense": None, "lanczos": self.lanczos_steps, "lobpcg": self.max_iterations}[method]
        start = start[:, 0] if method == "lanczos" and start is not None else start
        floor = self.track / self.lr if tracked else None
        result = solve_eigenpairs(E, flat, self.k, method, start, steps, self.tol, floor=floor)
        return result, (result.block if method == "lobpcg" else result.vectors)

    def _block(self, E, flat, g, V, lam, mask, prefix=False):
        """The SDCP on the eigenpairs (V (n, k), lam (k,)) with critical ``mask``: (X (k, k), sum_ij X_ij D_ij (n,),
        the products D_ij for i <= j (k(k+1)/2, n) in `jnp.triu_indices` order). ``prefix``: the mask is a prefix
        of the pairs (descending eigenvalues) and only the products inside it are computed (a loop over the pairs,
        each skipped by `jax.lax.cond` outside the block; zeros there)."""
        m = V.shape[1]
        eta, dt = self.lr, 1.0 / self.substeps
        rows, cols = jnp.triu_indices(m)
        product = lambda a, b: third(E)(flat, V[:, a], V[:, b])
        if prefix:
            inside = mask[cols]                                   # rows <= cols: both critical
            skip = lambda: jnp.zeros_like(flat)
            upper = jax.lax.map(lambda p: jax.lax.cond(p[2], lambda: product(p[0], p[1]), skip), (rows, cols, inside))
        else:
            upper = jax.vmap(product)(rows, cols)
        pair = jnp.zeros((m, m), int).at[rows, cols].set(jnp.arange(rows.size)).at[cols, rows].set(
            jnp.arange(rows.size)).reshape(-1)                    # ordered pair (i, j) -> its i <= j product
        drift = (upper @ (-eta * g))[pair].reshape(m, m)
        A = (2.0 / eta) * jnp.eye(m) - jnp.diag(lam) - dt * drift
        gram = dt * (eta / 2.0) * (upper @ upper.T)[pair][:, pair]
        X = self._sdcp(A, gram, mask)
        weights = jnp.where(rows == cols, 1.0, 2.0)               # X_ij D_ij + X_ji D_ji for i < j
        return X, (weights * X[rows, cols]) @ upper, upper

    def _sdcp(self, A, gram, mask):
        """The substep's complementarity problem (`solve_sdcp`, in JAX); a subclass may swap the solver."""
        return solve_sdcp(A, gram, mask)

    def analyse(self, w, start=None):
        """(X, V, lambda, critical mask, D (k, k, n), g) at w for one substep dt = 1/substeps (all k(k+1)/2
        products; the eigensolver converges on all k pairs)."""
        return self._analyse(w, start)

    def _analyse(self, w, start, method=None):
        flat, _, E = self._flat(w)
        result, _ = self._eigen(E, flat, start, method, tracked=False)
        lam, V = result.values, result.vectors
        critical = lam > self.threshold / self.lr
        g = gradient(E)(flat)
        X, _, upper = self._block(E, flat, g, V, lam, critical)
        rows, cols = jnp.triu_indices(self.k)
        D = jnp.zeros((self.k, self.k, flat.size), flat.dtype).at[rows, cols].set(upper).at[cols, rows].set(upper)
        return X, V, lam, critical, D, g

    def _at(self, w, state, k):
        """``state`` advanced to parameters w: the analysis there (velocity, loss, eigenpairs, X, counts), warnings."""
        flat, _, E = self._flat(w)
        result, block = self._eigen(E, flat, state.block)
        lam, V = result.values, result.vectors
        loss, g = jax.value_and_grad(E)(flat)
        critical = lam > self.threshold / self.lr                 # a prefix of the descending eigenvalues
        count = jnp.sum(critical)
        X, correction, _ = self._block(E, flat, g, V, lam, critical, prefix=True)
        tracked = jnp.sum(lam > self.track / self.lr)
        converged = result.converged & jnp.all(jnp.isfinite(lam))  # pair 1, pair i when lambda_{i-1} > track/eta
        full = lam[-1] > self.track / self.lr
        method = self.eigensolver(flat.size)
        advice = _advice(method, self.lanczos_steps, self.max_iterations, self.guard)
        crowded = lam[-1] > self.threshold / self.lr             # every tracked eigenvalue is critical
        _warn_once((("unconverged", ~converged, state.unconverged), ("critical", crowded, state.crowded)), k, lam,
                   result, self.threshold / self.lr, k=self.k, advice=advice)
        new = CentralFlowState(
            w, block, state.hvps + result.hvps, state.third + count * (count + 1) // 2,
            -self.lr * (g + 0.5 * correction), loss, lam, X, tracked, count, result.residuals,
            result.tolerance, converged, state.unconverged + ~converged, state.full + full,
            state.crowded + crowded)
        if self.strict:
            new = error_if(new, ~converged, f"CentralFlow's {method} eigensolver did not converge on the tracked "
                           f"eigenpairs (pair 1, pair i when lambda_(i-1) > track/lr); advice: {advice}; the warning "
                           "before this error names the residuals reached", SolverBudgetError)
        return new

    def _start(self, flat):
        """The first solve's block: ``start`` completed with fixed Gaussian columns (key 0) to k (+ guard) columns."""
        method = self.eigensolver(flat.size)
        columns = self.k + (self.guard if method == "lobpcg" else 0)
        n = flat.size
        if self.start is not None and (jnp.ndim(self.start) not in (1, 2) or jnp.shape(self.start)[0] != n):
            raise InputError(f"start must be a vector ({n},) or a block ({n}, c) over the {n} parameters, got shape "
                             f"{jnp.shape(self.start)}")
        if self.start is None:
            return jax.random.normal(jax.random.PRNGKey(0), (n, columns), flat.dtype)
        block = _start_block(self.start, n, columns, flat.dtype)
        return block if method == "lobpcg" else block[:, :columns]

    def init(self, w0, k0=0):
        flat, _, _ = self._flat(w0)
        k, zero = self.k, jnp.zeros((), jnp.int64)
        empty = CentralFlowState(w0, self._start(flat), zero, zero, jnp.zeros_like(flat), jnp.zeros((), flat.dtype),
                                 jnp.zeros(k, flat.dtype), jnp.zeros((k, k), flat.dtype), zero, zero,
                                 jnp.zeros(k, flat.dtype), jnp.zeros((), flat.dtype), jnp.ones((), bool), zero, zero,
                                 zero)
        return self._at(w0, empty, k0)

    def step(self, state, k):
        def substep(i, state):
            flat, unravel, _ = self._flat(state.params)
            return self._at(unravel(flat + state.velocity / self.substeps), state, k)

        return jax.lax.fori_loop(0, self.substeps, substep, state)

    def params(self, state):
        return state.params

    @staticmethod
    def observe(t, state):
        """What `simulate(..., observe_state=True, observe=flow.observe)` saves: the state's analysis without the
        parameters, block and velocity (a dict: loss, eigenvalues, X, tracked, critical, residuals, tolerance,
        converged, unconverged, full, crowded, hvps, third)."""
        skip = ("params", "block", "velocity")
        return {name: value for name, value in state._asdict().items() if name not in skip}

    @property
    def cost(self):
        """Per GD step: ``substeps`` gradients; the eigensolver's HVPs and the third-derivative products (k_c(k_c+1)/2
        per substep, k_c critical) are counted in the state (`counts`)."""
        return StepCost(self.substeps, 0.0, 0.0)

    def counts(self, state):
        return StepCost(0.0, state.hvps, state.third)

    def predictions(self, w):
        """Central-flow predictions at w: predicted time-averaged GD loss L + (1/2)<Sigma, H> = L + (1/2) sum_i X_ii lambda_i,
        the covariance Sigma = V X V^T (n x n) and X itself. The eigenpairs come from a cold, tolerance-driven
        LOBPCG solve (``tol``; dense when the flow's eigensolver is dense), whatever the flow's own method. Along a
        run, the state already holds these (`CentralFlowState`, `dynamics.predictions.central_flow_time_average`)."""
        method = "dense" if self.eigensolver(ravel_pytree(w)[0].size) == "dense" else "lobpcg"
        X, V, lam, _, _, _ = self._analyse(w, None, method)
        return {"predicted_loss": self.loss(w) + 0.5 * jnp.sum(jnp.diag(X) * lam), "X": X, "Sigma": V @ X @ V.T,
                "eta_lambda": self.lr * lam}
