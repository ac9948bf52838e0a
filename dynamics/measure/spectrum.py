"""Hessian spectra of a run's parameters: sharpness and top eigenpairs (the solvers live in `dynamics.linalg`).

Eigenvalues are *algebraic*: the top-k are the k most positive. Units: an eigenvalue of the Hessian of E(theta) is
in loss units per squared parameter unit, 1/time for gradient descent (lr S is dimensionless: GD is stable on a
quadratic iff lr S < 2). Parameters may be any pytree, an Equinox module included (its non-array leaves are held
fixed); eigenvectors are flat (n, k) columns over the inexact-array leaves, in `jax.flatten_util.ravel_pytree` order.

Called outside jit, every function compiles once per (loss object, parameter shapes, method, static options) and
reuses that code (5-13 ms per later call at 1,329 parameters against 4-7 s for the first, benchmarks/interactive.py):
new parameter values, tolerances and warm starts do not recompile. Keep the same loss object across calls (a new
lambda per call re-traces); a loss that is an Equinox module or `eqx.Partial` holding its data as arrays does not
recompile for new data either. Inside jit or vmap they trace into the caller.
"""

from ..linalg import Eigenpairs, require_converged, solve_eigenpairs

__all__ = ["Eigenpairs", "eigenpairs", "require_converged", "sharpness", "top_eigenpairs"]


def eigenpairs(loss, params, k=1, method=None, start=None, steps=None, tol=None, strict=False):
    """Top-k (largest algebraic) Hessian eigenpairs of ``loss`` at ``params`` as `Eigenpairs` (flat vectors).

    method: "dense" (eigh of the full Hessian: n HVPs, n^2 memory, O(n^3); default up to `DENSE_LIMIT`
    parameters), "lobpcg" (default above: stops when every residual ||H v_i - lambda_i v_i|| <= tol rho, rho ~
    ||H||; 20-40 HVPs per column on MLPs, budget ``steps`` iterations, default LOBPCG_STEPS; ``start`` = a vector or an
    (n, c) block, e.g. the previous result's vectors: warm start; c > k adds guard vectors) or "lanczos" (``steps``
    HVPs, default max(3k, 30); ``start`` = a vector; its budget is fixed, not driven by the residual). tol:
    relative residual tolerance (`default_tol`: 1e-8 in float64). strict=True raises `SolverBudgetError` when
    not converged (inside jit: an equinox runtime error); otherwise read ``converged`` and ``residuals``.
    Non-finite parameters raise `InputError` naming the leaf (outside jit; inside jit the values are NaN).
    """
    return solve_eigenpairs(loss, params, k, method, start, steps, tol, strict)


def top_eigenpairs(loss, params, k, steps=None, start=None):
    """Top-k (largest algebraic) Hessian eigenpairs of a loss of a pytree by Lanczos on HVPs (``steps`` HVPs,
    default max(3k, 30), not checked): (values desc, vectors (n, k)); see `hessian_eigenpairs`."""
    result = solve_eigenpairs(loss, params, k, "lanczos", start, steps)
    return result.values, result.vectors


def sharpness(loss, params, method=None, steps=None, *, tol=None, strict=None):
    """S(theta) = lambda_max(Hessian of ``loss`` at ``params``), the largest algebraic eigenvalue (loss units per
    squared parameter unit; GD with step lr is stable on a quadratic iff lr S < 2).

    Default: dense eigh up to `DENSE_LIMIT` parameters (exact to rounding, ~1e-15 relative; n HVPs + O(n^3)),
    block LOBPCG above. LOBPCG returns a Rayleigh quotient S <= lambda_max whose residual r = ||H v - S v|| is
    <= tol rho (tol = 1e-8 in float64, rho ~ ||H||_2), else it raises `SolverBudgetError` stating the residual
    reached (inside jit: an equinox runtime error; strict=None: on for LOBPCG only). Some eigenvalue then lies
    within r of S, and within r^2 / gap when S is separated by ``gap`` from the rest of the spectrum: error
    <= tol rho even without a gap at the top, ~(tol rho)^2 / gap with one (1e-15 relative on MLPs,
    benchmarks/interactive.py). It is the top one unless the start vector (a fixed Gaussian) is nearly orthogonal
    to the top eigenvectors. Cost 20-40 HVPs on MLPs of 1e3-1e4 parameters (an HVP is 2-4 gradients), at most
    2 + LOBPCG_STEPS (``steps``); ``tol`` sets the tolerance. LOBPCG's while loop is not reverse-differentiable:
    differentiate S with method="dense". method="dense" or "lobpcg" forces one; "lanczos" runs ``steps`` HVPs
    (default 40) and is not checked unless strict=True: machine precision at 1e3-1e4 parameters with 20 on MLPs,
    whose top eigenvalue is separated (benchmarks/README.md; 8.7e-7 at 1e5), but 4.6e-4 relative (residual 3e-3)
    with 40 on a spectrum without a gap at the top (H = diag(linspace(0, 1, 2500)) rotated), where LOBPCG needs
    ~365 iterations and the default (100) raises `SolverBudgetError` rather than return such a value. For the
    eigenvector and the residual, call `eigenpairs`. Non-finite parameters raise `InputError` naming the leaf
    (outside jit; inside jit the value is NaN).
    """
    steps = 40 if steps is None and method == "lanczos" else steps
    return solve_eigenpairs(loss, params, 1, method, steps=steps, tol=tol, strict=strict).values[0]
