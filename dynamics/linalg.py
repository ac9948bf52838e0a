"""Eigensolvers for Hessian spectra: dense eigh for tiny models; Lanczos and warm-started block LOBPCG on HVPs above.

Eigenvalues are *algebraic*: the top-k are the k most positive, not the k largest in magnitude. Parameters may be
any pytree, an Equinox module included: its inexact-array leaves are flattened with `jax.flatten_util.ravel_pytree`
(`flat_loss`) and eigenvectors are flat (n, k) columns. Called outside jit, `solve_eigenpairs` compiles once per
loss object and shapes and then reuses the code (~5 ms per call at 1,300 parameters, benchmarks/interactive.py).

Every iterative solve returns an `Eigenpairs` result stating what it reached: the residual norms
r_i = ||H v_i - lambda_i v_i||_2, the tolerance they were held to (tol * rho, rho = the largest |Ritz value|
seen, an under-estimate of ||H||_2), the HVPs spent and a converged flag. For a symmetric H, each lambda_i lies
within r_i of an eigenvalue (within r_i^2 / gap once isolated by a gap), and the angle between the returned
k-dimensional subspace and the exact one obeys sin(angle) <= ||[r_1..r_k]||_F / gap (Davis-Kahan), gap =
lambda_k - lambda_{k+1}. `require_converged` (or ``strict=True``) turns non-convergence into `SolverBudgetError`.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .derivatives import hessian, hvp
from .errors import InputError, SolverBudgetError
from .validation import partition_parameters

#: models with at most this many parameters use the dense Hessian by default (LOBPCG above). Measured on tanh MLPs
#: (benchmarks/interactive.py): warm, dense is faster up to n ~ 60 (n = 37: 1.1 vs 1.5 ms), 1.5-2x slower at
#: n = 121 and 50-100x at n ~ 1,000-1,300; it compiles 3-4x faster and is exact.
DENSE_LIMIT = 64
#: LOBPCG's default iteration budget (each iteration costs one HVP per block column).
LOBPCG_STEPS = 100
METHODS = ("dense", "lanczos", "lobpcg")
#: LOBPCG leaves out residuals below max(tol, LOCK_FLOOR eps) rho: below that they are rounding noise.
LOCK_FLOOR = 1e3


class Eigenpairs(NamedTuple):
    """Top eigenpairs of a symmetric operator and what the solver reached (a pytree: jit/vmap friendly).

    values (k,) descending (largest algebraic first); vectors (n, k) orthonormal columns; residuals (k,)
    ||H v_i - lambda_i v_i||_2 (Lanczos: the estimate |beta_m s_mi|, exact in exact arithmetic); tolerance: the
    absolute residual bound tol * rho; hvps: Hessian-vector products used; iterations and max_iterations (the
    budget; Lanczos: steps); converged: all k residuals <= tolerance; block: every vector the solver computed,
    guard vectors included (n, c) -- the warm start for the next solve along a trajectory.
    """

    values: jax.Array
    vectors: jax.Array
    residuals: jax.Array
    tolerance: jax.Array
    hvps: jax.Array
    iterations: jax.Array
    max_iterations: jax.Array
    converged: jax.Array
    block: jax.Array


def default_tol(dtype):
    """Relative residual tolerance: 1e-8 in float64, 1e3 eps (1.2e-4) in float32."""
    return max(1e-8, 1e3 * float(jnp.finfo(dtype).eps))


def _required(values, floor):
    """The pairs that must converge: all, or (``floor`` given) the pairs down to the first whose Ritz value is at or
    below the floor: pair 1 always, pair i when lambda_{i-1} > floor. (A Ritz value plus its residual bounds some
    eigenvalue, not the largest: a cold block may hold only low Ritz values, so pair 1 must converge first.)"""
    if floor is None:
        return jnp.ones(values.shape, bool)
    return jnp.concatenate([jnp.ones(1, bool), values[:-1] > floor])


def _result(values, vectors, residuals, rho, tol, hvps, iterations, max_iterations, k=None, floor=None):
    """`Eigenpairs` of the first k pairs (all when k is None), converged when their residuals are <= tol * rho (only
    the pairs `_required` by ``floor``)."""
    block = vectors
    values, vectors, residuals = values[:k], vectors[:, :k], residuals[:k]
    tolerance = tol * rho
    converged = jnp.all((residuals <= tolerance) | ~_required(values, floor))
    as_int = lambda x: jnp.asarray(x, jnp.int32)
    return Eigenpairs(values, vectors, residuals, tolerance, as_int(hvps), as_int(iterations),
                      as_int(max_iterations), converged, block)


def _nan_unless(ok, *arrays):
    """``arrays``, or NaN arrays when not ``ok``: LAPACK's eigh of a non-finite matrix may return finite garbage."""
    return tuple(jnp.where(ok, a, jnp.nan) for a in arrays)


def flat_loss(loss, params):
    """(E on flat vectors, flat params, unravel) for a loss of a pytree, an Equinox module included.

    The flat vector is the `ravel_pytree` of the inexact-array leaves (``eqx.partition(params,
    eqx.is_inexact_array)``, `partition_parameters`); the other leaves (functions, integers) stay fixed, and
    unravel(v) is the whole pytree with v in place of those leaves. `InputError` when there are no inexact-array
    leaves."""
    dynamic, static = partition_parameters(params, "params")
    flat, unravel = ravel_pytree(dynamic)
    rebuild = lambda v: eqx.combine(unravel(v), static)
    return (lambda v: loss(rebuild(v))), flat, rebuild


# ----------------------------------------------------------------------------- Lanczos


def lanczos(matvec, v0, steps, k=None, tol=None, floor=None):
    """Lanczos tridiagonalization with full (twice-repeated) reorthogonalization: `Eigenpairs`, descending.

    Ritz pairs of the symmetric ``matvec`` on the Krylov space K_m(A, v0), m = min(steps, n); the first k (all
    m when None). Residual estimate r_i = |beta_m s_{m,i}| (s_i the eigenvector of the tridiagonal T): with
    A V_m = V_m T + beta_m v_{m+1} e_m^T it equals ||A V_m s_i - theta_i V_m s_i|| in exact arithmetic; far below
    eps ||A|| it only says the Krylov space is numerically invariant (the computed residual is at rounding level).
    On breakdown (an invariant Krylov space, e.g. v0 an eigenvector) the basis restarts from a fixed random vector
    orthogonal to it, so eigenvalues outside that space are still found. Cost: m matvecs + O(n m^2).
    """
    n = v0.shape[0]
    steps = min(steps, n)
    tol = default_tol(v0.dtype) if tol is None else tol
    restart = jax.random.normal(jax.random.PRNGKey(1), v0.shape, v0.dtype)
    V = jnp.zeros((steps + 1, n), v0.dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    floor = 64 * jnp.finfo(v0.dtype).eps

    def orthogonalize(w, Vm):
        w = w - Vm.T @ (Vm @ w)
        return w - Vm.T @ (Vm @ w)

    def body(i, carry):
        V, alpha, beta = carry
        w = matvec(V[i])
        a = jnp.vdot(V[i], w)
        Vm = jnp.where((jnp.arange(steps + 1) <= i)[:, None], V, 0.0)
        scale = jnp.linalg.norm(w)
        w = orthogonalize(w, Vm)
        b = jnp.linalg.norm(w)
        broke = b <= floor * scale
        z = orthogonalize(restart, Vm)
        z_norm = jnp.linalg.norm(z)
        fresh = jnp.where(z_norm > 0, z / jnp.where(z_norm > 0, z_norm, 1.0), 0.0)
        nxt = jnp.where(broke, fresh, w / jnp.where(broke, 1.0, b))
        return V.at[i + 1].set(nxt), alpha.at[i].set(a), beta.at[i].set(jnp.where(broke, 0.0, b))

    zeros = jnp.zeros(steps, v0.dtype)
    V, alpha, beta = jax.lax.fori_loop(0, steps, body, (V, zeros, zeros))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    theta, S = _nan_unless(jnp.all(jnp.isfinite(T)), theta[::-1], S[:, ::-1])
    residuals = jnp.abs(beta[-1] * S[-1])
    return _result(theta, V[:steps].T @ S, residuals, jnp.max(jnp.abs(theta)), tol, steps, steps, steps, k, floor)


# ----------------------------------------------------------------------------- LOBPCG


def _orthonormalize(Y, S, AY=None, AS=None):
    """Columns of S made orthonormal and orthogonal to the orthonormal (or zero) columns of Y; AS = A S, when
    given, is carried along (A linear, AY = A Y).

    Two passes of: project out Y, normalize columns, SVQB (S <- S U mu^{-1/2} from eigh(S^T S) = U mu U^T).
    Directions with mu <= 1e4 eps max(mu) (numerically dependent, e.g. more columns than n allows) become zero
    columns. Returns (S, AS, mask of the nonzero columns)."""
    cutoff = 1e4 * jnp.finfo(S.dtype).eps
    for _ in range(2):
        M = Y.T @ S
        S = S - Y @ M
        AS = None if AS is None else AS - AY @ M
        norms = jnp.linalg.norm(S, axis=0)
        inv = jnp.where(norms > 0, 1.0 / jnp.where(norms > 0, norms, 1.0), 0.0)
        mu, U = jnp.linalg.eigh((S * inv).T @ (S * inv))
        keep = mu > cutoff * mu[-1]
        D = inv[:, None] * U * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, mu, 1.0)), 0.0)
        S = S @ D
        AS = None if AS is None else AS @ D
    return S, AS, keep


def _rayleigh_ritz(B, AB, valid, b):
    """Top-b Ritz pairs of A on the orthonormal basis B (invalid columns are zero and excluded):
    (theta desc (b,), coefficients (cols, b), rho = largest |Ritz value|)."""
    T = B.T @ AB
    T = 0.5 * (T + T.T)
    both = valid[:, None] & valid[None, :]
    T = jnp.where(both, T, 0.0)
    low = -2.0 * (jnp.linalg.norm(T) + 1.0)  # below every valid Ritz value: excluded columns sort last
    w, U = jnp.linalg.eigh(T + jnp.diag(jnp.where(valid, 0.0, low)))
    rho = jnp.max(jnp.abs(jnp.where(w > 0.5 * low, w, 0.0)))
    return w[::-1][:b], U[:, ::-1][:, :b], rho


def lobpcg(matvec, X0, k=None, tol=None, steps=LOBPCG_STEPS, floor=None):
    """Top-k (largest algebraic) eigenpairs of the symmetric ``matvec`` by block LOBPCG from the block X0 (n, b).

    Each iteration: residuals R = A X - X Theta, basis [X, R, P] (P: the previous update direction)
    orthonormalized (SVQB; dependent directions dropped, so any n >= b works, n = 3 included), Rayleigh-Ritz on
    it, top-b Ritz vectors become X. A X and A P are updated by the same linear combinations, so one iteration
    costs b HVPs (A R) + O(n b^2). Columns b - k beyond k are guard vectors: they speed up convergence when
    lambda_k is close to lambda_{k+1}. Stops when the first k residuals are <= tol * rho (rho: the largest
    |Ritz value| seen), after ``steps`` iterations, or on a non-finite residual; the reported residuals are then
    recomputed from fresh HVPs. HVPs: b (start) + b per iteration + b (final check). Warm start: pass the
    previous result's vectors (plus guard columns) as X0 along a trajectory. ``steps`` may be traced. ``floor``
    (optional, may be traced): only the pairs down to the first Ritz value at or below the floor must converge
    (`_required`; `CentralFlow` tracks the eigenvalues above a threshold, and pairs deep in the bulk converge slowly
    and are not needed).
    """
    n, b = X0.shape
    k = b if k is None else k
    if not 1 <= k <= b <= n:
        raise InputError(f"LOBPCG needs 1 <= k <= block size <= n, got k = {k}, block {b}, n = {n}")
    tol = default_tol(X0.dtype) if tol is None else tol
    block = jax.jit(jax.vmap(matvec, in_axes=1, out_axes=1))  # one compiled block HVP for the three call sites
    X = jnp.linalg.qr(X0)[0]
    AX = block(X)
    theta, C, rho = _rayleigh_ritz(X, AX, jnp.ones(b, bool), b)
    X, AX = X @ C, AX @ C
    residual = lambda X, AX, theta: jnp.linalg.norm(AX - X * theta, axis=0)

    def unfinished(state):
        X, AX, P, AP, theta, res, rho, i = state
        needed = _required(theta[:k], floor)
        return (i < steps) & jnp.any((res[:k] > tol * rho) & needed) & jnp.all(jnp.isfinite(res))

    def iterate(state):
        X, AX, P, AP, theta, res, rho, i = state
        # soft locking: residuals already below the tolerance are left out (they are mostly rounding noise)
        active = res > jnp.maximum(tol, LOCK_FLOOR * jnp.finfo(X.dtype).eps) * rho
        W, _, w_keep = _orthonormalize(X, jnp.where(active, AX - X * theta, 0.0))
        AW = block(W)
        XW, AXW = jnp.concatenate([X, W], 1), jnp.concatenate([AX, AW], 1)
        P, AP, p_keep = _orthonormalize(XW, P, AXW, AP)
        B, AB = jnp.concatenate([XW, P], 1), jnp.concatenate([AXW, AP], 1)
        valid = jnp.concatenate([jnp.ones(b, bool), w_keep, p_keep])
        theta, C, rho_now = _rayleigh_ritz(B, AB, valid, b)
        X, AX, P, AP = B @ C, AB @ C, B[:, b:] @ C[b:], AB[:, b:] @ C[b:]
        return X, AX, P, AP, theta, residual(X, AX, theta), jnp.maximum(rho, rho_now), i + 1

    zeros = jnp.zeros_like(X)
    state = (X, AX, zeros, zeros, theta, residual(X, AX, theta), rho, jnp.zeros((), jnp.int32))
    X, _, _, _, _, _, rho, iterations = jax.lax.while_loop(unfinished, iterate, state)
    AX = block(X)
    theta = jnp.sum(X * AX, axis=0)
    order = jnp.argsort(-theta)
    X, AX, theta = X[:, order], AX[:, order], theta[order]
    return _result(theta, X, residual(X, AX, theta), rho, tol, b * (iterations + 2), iterations, steps, k, floor)


# ----------------------------------------------------------------------------- entry points


def _start_block(start, n, k, dtype):
    """The start block (n, c): ``start`` (None, a vector or an (n, c) block) completed to k columns with fixed
    Gaussian columns (key 0); more than k columns are kept (LOBPCG's guard vectors)."""
    gaussian = lambda c: jax.random.normal(jax.random.PRNGKey(0), (n, c), dtype)
    if start is None:
        return gaussian(k)
    columns = jnp.asarray(start, dtype).reshape(n, -1)
    missing = k - columns.shape[1]
    return jnp.concatenate([columns, gaussian(missing)], 1) if missing > 0 else columns


def require_converged(result, what="eigensolver"):
    """Return ``result`` if converged, else raise `SolverBudgetError` naming what was reached (host-side).

    The reached values are Rayleigh quotients, so each is a lower bound of the top eigenvalue it approximates
    (lambda_1 >= v^T H v for a unit v), and some eigenvalue lies within its residual; without a gap at the top
    that eigenvalue need not be lambda_1, so the value alone is no estimate of it to better than the bound."""
    if not isinstance(result, Eigenpairs):
        raise InputError(f"require_converged takes the Eigenpairs result of eigenpairs/solve_eigenpairs, got "
                         f"{type(result).__name__}")
    if bool(result.converged):
        return result
    residuals = ", ".join(f"{float(r):.3g}" for r in result.residuals)
    raise SolverBudgetError(
        f"{what} did not converge: residuals ||H v - lambda v|| = [{residuals}] for eigenvalues "
        f"{[round(float(v), 10) for v in result.values]} (Rayleigh quotients: lower bounds of the top eigenvalues, "
        f"not accurate estimates), tolerance {float(result.tolerance):.3g}, after "
        f"{int(result.iterations)} of {int(result.max_iterations)} iterations ({int(result.hvps)} HVPs). Advice: "
        "raise the budget (steps), use a larger block (guard vectors: a start block with more columns than k), "
        "or warm-start from the previous eigenvectors; non-finite residuals mean a non-finite Hessian.")


def _first_nonfinite_leaf(params):
    """The path (`jax.tree_util.keystr`) of the first parameter leaf holding NaN or Inf."""
    leaves = jax.tree_util.tree_flatten_with_path(partition_parameters(params, "params")[0])[0]
    return next((jax.tree_util.keystr(path) or "params" for path, leaf in leaves
                 if not bool(jnp.all(jnp.isfinite(leaf)))), "?")


def _solve(loss, params, k, method, start, steps, tol, floor=None):
    """`solve_eigenpairs` on validated arguments: (`Eigenpairs`, whether every parameter is finite)."""
    E, flat, _ = flat_loss(loss, params)
    matvec = lambda v: hvp(E)(flat, v)
    if method == "dense":
        H = hessian(E)(flat)
        values, vectors = _nan_unless(jnp.all(jnp.isfinite(H)), *jnp.linalg.eigh(H))
        rho = jnp.max(jnp.abs(values))
        values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k]
        residuals = jnp.linalg.norm(H @ vectors - vectors * values, axis=0)
        result = _result(values, vectors, residuals, rho, tol, flat.size, 1, 1, floor=floor)
    elif method == "lanczos":
        result = lanczos(matvec, start, steps, k, tol, floor)
    else:
        result = lobpcg(matvec, start, k, tol, steps, floor)
    finite = jnp.all(jnp.isfinite(flat))  # inside jit a non-finite point gives NaN values (no Hessian there)
    return result._replace(values=jnp.where(finite, result.values, jnp.nan)), finite


#: `_solve` compiled once per (loss object, parameter structure and shapes, k, method, start shape, steps).
_solve_compiled = eqx.filter_jit(_solve)


def solve_eigenpairs(loss, params, k=1, method=None, start=None, steps=None, tol=None, strict=False, floor=None):
    """Top-k (largest algebraic) Hessian eigenpairs of ``loss`` at ``params`` as `Eigenpairs` (flat vectors).

    params: any pytree, an Equinox module included; the vectors are flat over its inexact-array leaves (see
    `flat_loss`). method: "dense" (eigh of the full Hessian: n HVPs, n^2 memory, O(n^3); default up to
    DENSE_LIMIT parameters), "lobpcg" (default above; ``steps`` = iteration budget, default LOBPCG_STEPS; stops
    at residuals <= tol * rho; ``start`` = a vector or an (n, c) block, e.g. the previous result's vectors: warm
    start; c > k adds guard vectors) or "lanczos" (``steps`` HVPs, default max(3k, 30); ``start`` = a vector; as
    good cold, see benchmarks/README.md, but its budget is fixed rather than driven by the residual). tol:
    relative residual tolerance (`default_tol`). strict=True raises `SolverBudgetError` when not converged
    (inside jit: an equinox runtime error with the tolerance and budget, unless a parameter is non-finite);
    strict=None means strict for "lobpcg" only. Non-finite parameters raise `InputError` naming the leaf (outside
    jit; inside jit the values are NaN). steps must be an integer >= 1 (`InputError`). floor (optional): only the
    pairs down to the first Ritz value at or below it must converge (pair 1 always, pair i when lambda_{i-1} >
    floor; LOBPCG stops on them and ``converged`` reports on them).

    Outside jit the solve is compiled once per (loss object, parameter shapes, k, method, start shape, steps) and
    reused: new parameter values, tolerances and warm starts do not recompile (a new loss object, e.g. a fresh
    lambda, does). Inside jit or vmap it is traced into the caller.
    """
    leaves = jax.tree_util.tree_leaves(partition_parameters(params, "params")[0])
    n = sum(leaf.size for leaf in leaves)
    method = method or ("dense" if n <= DENSE_LIMIT else "lobpcg")
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if k is not None and not 1 <= k <= n:
        raise InputError(f"k must satisfy 1 <= k <= n = {n} (the number of parameters), got {k}")
    if method == "lanczos" and start is not None and jnp.shape(start) != (n,):
        raise InputError(f"the Lanczos start must be a vector of shape {(n,)}, got {jnp.shape(start)}")
    if method == "lobpcg" and start is not None and (jnp.ndim(start) not in (1, 2) or jnp.shape(start)[0] != n):
        raise InputError(f"the LOBPCG start must be a vector ({n},) or a block ({n}, c), got {jnp.shape(start)}")
    dtype = jnp.result_type(*leaves)
    tol = default_tol(dtype) if tol is None else tol
    if steps is None:
        steps = {"dense": 1, "lanczos": max(3 * (k or 1), 30), "lobpcg": LOBPCG_STEPS}[method]
    elif not isinstance(steps, jax.core.Tracer) and (
            isinstance(steps, bool) or not float(steps).is_integer() or int(steps) < 1):
        raise InputError(f"steps (the {method} iteration budget) must be an integer >= 1, got {steps!r}")
    else:
        steps = steps if isinstance(steps, jax.core.Tracer) else int(steps)
    traced = any(isinstance(leaf, jax.core.Tracer)
                 for leaf in leaves + jax.tree_util.tree_leaves((start, tol, floor)))
    solve = _solve if traced else _solve_compiled
    if method != "dense":  # the default start is an argument too: cold and warm starts share one compilation
        start = _start_block(start, n, 1 if method == "lanczos" else k or 1, dtype)
        start = start[:, 0] if method == "lanczos" else start
    floor = None if floor is None else jnp.asarray(floor, jnp.finfo(dtype).dtype)
    result, finite = solve(loss, params, k, method, start, steps, jnp.asarray(tol, jnp.finfo(dtype).dtype), floor)
    concrete = not isinstance(finite, jax.core.Tracer)
    if concrete and not bool(finite):
        raise InputError(f"params contain NaN or Inf (leaf {_first_nonfinite_leaf(params)}): the Hessian spectrum "
                         "is undefined there")
    if not (method == "lobpcg" if strict is None else strict):
        return result
    if not concrete:
        message = (f"{method} eigensolver did not converge: a residual exceeds the tolerance {tol} (relative) "
                   f"within the budget of {steps} steps; raise steps, use a larger block or a warm start")
        return eqx.error_if(result, ~result.converged & finite, message)
    return require_converged(result, f"{method} eigensolver (k = {k}, n = {n})")


def hessian_eigenpairs(E, flat, k, method="lanczos", steps=None, start=None):
    """Top-k (largest algebraic) Hessian eigenpairs of E at the flat point ``flat``: (values desc, vectors (n, k)).

    method="dense": eigh of the full Hessian (n HVPs + O(n^3)); "lanczos": ``steps`` HVPs (default max(3k, 30))
    from ``start`` (default a fixed Gaussian vector, key 0); "lobpcg": see `lobpcg` (``start`` a vector or a
    block). Returns all computed values when k is None (dense, lanczos). `solve_eigenpairs` also returns residuals,
    HVP counts and a converged flag.
    """
    result = solve_eigenpairs(E, flat, k, method, start, steps)
    return result.values, result.vectors


