"""Function-space measures of one-hidden-layer univariate ReLU networks (docs/stability-sam-geometry.md section 3).

The network is a dict of float arrays ``{"w": (K,), "b": (K,), "v": (K,), "c": ()}``:

    f(x) = sum_k v_k relu(w_k x + b_k) + c,       x a real number.

Its second derivative is a sum of Dirac masses at the knots x_k = -b_k / w_k (neurons with w_k != 0): with H the
Heaviside step, d/dx relu(w x + b) = w H(w x + b) and d^2/dx^2 relu(w x + b) = w^2 delta(w x + b) = |w| delta(x - x_k),
so

    f''(x) = sum_k v_k |w_k| delta(x - x_k),      int |f''(x)| g(x) dx = sum_knots |sum_{k at the knot} v_k |w_k|| g(knot),

coincident knots merged before the absolute value (a cancelling pair contributes nothing). Neurons with w_k = 0 are
constant and add nothing. Mulayoff, Michaeli & Soudry (NeurIPS 2021) weight f'' by a function g of the input
distribution (here the empirical distribution of the training inputs X):

    g(x) = min(g_-(x), g_+(x)),
    g_+(x) = P(X > x)^2 E[X - x | X > x] sqrt(1 + E[X | X > x]^2),
    g_-(x) = P(X < x)^2 E[x - X | X < x] sqrt(1 + E[X | X < x]^2),

(0 where the conditioning event is empty, so g = 0 outside the data's hull). With the loss (1/2n) sum_i (f(x_i) - y_i)^2,
at a minimum that interpolates, lambda_max(Hessian) >= 1 + 2 sum_k |v_k w_k| g(x_k) >= 1 + 2 int |f''| g, so a minimum
that GD with step lr can stay at (lambda_max <= 2/lr) has int |f''| g <= 1/lr - 1/2 [derived in the docs section].

Multivariate nets (Nacson, Mulayoff, Ongie, Michaeli & Soudry, ICLR 2023): ``{"w": (K, d), "b": (K,), "v": (K,),
"c": ()}`` with d >= 2, f(x) = sum_k v_k relu(w_k . x + b_k) + c. With u_k = w_k/||w_k|| and t_k = -b_k/||w_k||,
Laplacian(relu(w . x + b)) = ||w||^2 delta(w . x + b) = ||w|| delta_{u . x = t} (the surface measure of the hyperplane),
so the distributional Laplacian of f is a finite sum of hyperplane measures,

    Laplacian f = sum_H m_H delta_H,      m_H = sum over neurons k on H of v_k ||w_k||,

a hyperplane H = {u . x = t} = {-u . x = -t} merged over both orientations (relu(z) - relu(-z) = z adds m = 0). The
stability quantity weights each hyperplane by g(H) = min(g~(u, t), g~(-u, -t)) of the training inputs X (n, d),

    g~(u, t) = P(u . X > t)^2 E[u . X - t | u . X > t] sqrt(1 + ||E[X | u . X > t]||^2),

and sums |m_H| g(H) (`relu_laplacian_norm`); for d = 1 this is `relu_curvature_norm`. The same Jensen argument bounds
lambda_max >= 1 + 2 sum_H |m_H| g(H) - ||R|| (docs/stability-sam-geometry.md section 3).

Host-side NumPy (float64), exact up to rounding; cost O(K log K + K n) for K neurons and n data points (O(K^2 + K n d)
for multivariate nets).
"""

import jax.numpy as jnp
import numpy as np

from ..errors import InputError

__all__ = ["radon_stability_weight", "relu_curvature_norm", "relu_hyperplanes", "relu_knots", "relu_laplacian_norm",
           "relu_net", "stability_weight"]

_KEYS = ("w", "b", "v", "c")
_FIX = ('pass a one-hidden-layer univariate ReLU net as {"w": (K,), "b": (K,), "v": (K,), "c": ()} float arrays, '
        "f(x) = sum_k v_k relu(w_k x + b_k) + c")
_FIX_ND = ('pass a one-hidden-layer multivariate ReLU net as {"w": (K, d), "b": (K,), "v": (K,), "c": ()} float arrays '
           "with d >= 2, f(x) = sum_k v_k relu(w_k . x + b_k) + c")


def _network(params, multivariate=False):
    """The four parameter arrays as float64 NumPy (w, b, v, c), or `InputError` naming what is wrong and the fix.
    ``multivariate``: w must be (K, d) with d >= 2 (else (K,))."""
    fix = _FIX_ND if multivariate else _FIX
    if not isinstance(params, dict):
        raise InputError(f"expected a dict of parameters, got {type(params).__name__}; {fix}")
    keys = set(params)
    if keys != set(_KEYS):
        missing, extra = sorted(set(_KEYS) - keys), sorted(keys - set(_KEYS))
        raise InputError(f"not a one-hidden-layer ReLU net: missing keys {missing}, unexpected keys {extra} "
                         f"(deeper nets are not supported); {fix}")
    arrays = {}
    for key in _KEYS:
        value = np.asarray(params[key])
        if not np.issubdtype(value.dtype, np.floating):
            raise InputError(f"params[{key!r}] must be a float array, got dtype {value.dtype}; {fix}")
        if not np.all(np.isfinite(value)):
            raise InputError(f"params[{key!r}] contains NaN or Inf; {fix}")
        arrays[key] = value.astype(np.float64)
    w, b, v, c = (arrays[key] for key in _KEYS)
    if multivariate:
        if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] < 2:
            hint = " (a univariate net: use relu_curvature_norm)" if w.ndim == 1 or w.shape[-1:] == (1,) else ""
            raise InputError(f"params['w'] must have shape (K, d) with K >= 1 and d >= 2, got {w.shape}{hint}; {fix}")
    elif w.ndim != 1 or w.size == 0:
        hint = (" (a multivariate first layer, (K, d) with d > 1, is not univariate: use relu_laplacian_norm)"
                if w.ndim == 2 else "")
        raise InputError(f"params['w'] must have shape (K,) with K >= 1, got {w.shape}{hint}; {fix}")
    for key, value in (("b", b), ("v", v)):
        if value.shape != w.shape[:1]:
            hint = " (multiple outputs are not supported)" if key == "v" and value.ndim == 2 else ""
            raise InputError(f"params[{key!r}] must have shape (K,) = {w.shape[:1]} (K = the number of neurons), got "
                             f"{value.shape}{hint}; {fix}")
    if c.shape != ():
        raise InputError(f"params['c'] must be a scalar (shape ()), got shape {c.shape}; {fix}")
    return w, b, v, c


def _inputs(X):
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1 or X.size == 0 or not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise InputError(f"X must be a non-empty finite 1-D array of training inputs (or shape (n, 1)), got shape "
                         f"{X.shape} dtype {X.dtype}")
    return X.astype(np.float64)


def relu_net(params, x):
    """f(x) = sum_k v_k relu(w_k x + b_k) + c at the points ``x``, in JAX (traceable, differentiable in params and x):
    any shape for a univariate net (w: (K,)); shape (..., d) for a multivariate one (w: (K, d), w_k . x). No input
    checks (it runs inside jit); validate once with `relu_knots` / `relu_hyperplanes`."""
    x = jnp.asarray(x)
    w = params["w"]
    pre = (x @ w.T if jnp.ndim(w) == 2 else x[..., None] * w) + params["b"]
    return jnp.maximum(pre, 0.0) @ params["v"] + params["c"]


def relu_knots(params, atol=1e-12):
    """(knots, masses): the merged Dirac masses of f'' in increasing order of knot, f'' = sum_j masses_j
    delta(x - knots_j), masses_j = sum over neurons k with knot x_k = -b_k/w_k equal to knots_j of v_k |w_k|.

    Neurons with w_k = 0 are dropped (constant). Knots closer than ``atol`` max(1, |x|) to their sorted neighbour are
    merged (a chain of close knots forms one group, placed at the mean of its members). Raises `InputError`
    for parameters that are not a one-hidden-layer univariate ReLU net."""
    w, b, v, _ = _network(params)
    live = w != 0
    knots, masses = -b[live] / w[live], v[live] * np.abs(w[live])
    order = np.argsort(knots, kind="stable")
    knots, masses = knots[order], masses[order]
    if knots.size == 0:
        return knots, masses
    new_group = np.r_[True, np.diff(knots) > atol * np.maximum(1.0, np.abs(knots[1:]))]
    labels = np.cumsum(new_group) - 1
    count = np.bincount(labels)
    return np.bincount(labels, knots) / count, np.bincount(labels, masses)


def stability_weight(X, x):
    """g(x) = min(g_-(x), g_+(x)) of Mulayoff, Michaeli & Soudry (2021) for the empirical distribution of the 1-D
    training inputs ``X`` (n,), at the points ``x`` (any shape); see the module docstring. Strict inequalities
    (X > x, X < x); g = 0 where either side holds no data. Units: those of x^2 (P is dimensionless, E[X - x] and
    E[X] carry units of x; with E[X] dimensionless in the paper's sqrt(1 + E[X]^2)). Cost O(n size(x))."""
    X = _inputs(X)
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1, 1)

    def side(mask, sign):
        count = mask.sum(axis=1)
        p = count / X.size
        safe = np.maximum(count, 1)
        mean = (mask * X).sum(axis=1) / safe
        gap = sign * (mean - flat[:, 0])
        return np.where(count > 0, p**2 * gap * np.sqrt(1.0 + mean**2), 0.0)

    above, below = side(X[None, :] > flat, 1.0), side(X[None, :] < flat, -1.0)
    return np.minimum(above, below).reshape(x.shape)


def relu_curvature_norm(params, X, weight=None, atol=1e-12):
    """int |f''(x)| g(x) dx for the one-hidden-layer ReLU net ``params`` (dict w, b, v: (K,), c: ()), exactly:
    sum over merged knots of |mass| g(knot) (`relu_knots`), with g = `stability_weight` of the training inputs ``X``
    (n,) unless ``weight`` (a callable x -> g(x), vectorized over a 1-D array) is given; ``X`` is then unused (pass
    None). weight=lambda x: np.ones_like(x) gives the total variation of f'. The bound of Mulayoff et al. (2021) for
    GD with step lr is <= 1/lr - 1/2 at linearly stable interpolating minima (module docstring). Cost O(K n)."""
    knots, masses = relu_knots(params, atol)
    if weight is None:
        g = stability_weight(X, knots)
    else:
        g = np.asarray(weight(knots), np.float64)
        if g.shape != knots.shape or not np.all(np.isfinite(g)) or np.any(g < 0):
            raise InputError(f"weight must map the {knots.size} knots to as many finite nonnegative values, got shape "
                             f"{g.shape}")
    return float(np.sum(np.abs(masses) * g))


def _inputs_nd(X, d):
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise InputError(f"X must be a non-empty finite (n, d) array of training inputs, got shape {X.shape} dtype "
                         f"{X.dtype}")
    if X.shape[1] != d:
        raise InputError(f"X has input dimension {X.shape[1]} but the net's first layer params['w'] has d = {d} "
                         f"columns; pass inputs of shape (n, {d})")
    return X.astype(np.float64)


def relu_hyperplanes(params, atol=1e-12):
    """(normals, offsets, masses): the merged hyperplane measures of the Laplacian of a one-hidden-layer multivariate
    ReLU net (module docstring), Laplacian f = sum_j masses_j delta_{normals_j . x = offsets_j}, normals (m, d) unit
    vectors, offsets (m,), masses_j = sum of v_k ||w_k|| over the neurons on hyperplane j.

    Each neuron's hyperplane u . x = t (u = w/||w||, t = -b/||w||) is oriented so that the first component of u
    larger than 1e-12 in modulus is positive (both orientations are one hyperplane). Neurons with w = 0 are dropped
    (constant). Hyperplanes with ||u - u'|| + |t - t'| <= ``atol`` max(1, |t|) merge (into the first of the group).
    Raises `InputError` for parameters that are not a one-hidden-layer net with d >= 2 inputs. Cost O(K^2 d)."""
    w, b, v, _ = _network(params, multivariate=True)
    norms = np.linalg.norm(w, axis=1)
    live = norms > 0
    u, t, m = w[live] / norms[live, None], -b[live] / norms[live], v[live] * norms[live]
    lead = np.argmax(np.abs(u) > 1e-12, axis=1)
    sign = np.sign(u[np.arange(len(u)), lead])
    u, t = u * sign[:, None], t * sign
    normals, offsets, masses = [], [], []
    for uk, tk, mk in zip(u, t, m):
        for j, (uj, tj) in enumerate(zip(normals, offsets)):
            if np.linalg.norm(uk - uj) + abs(tk - tj) <= atol * max(1.0, abs(tj)):
                masses[j] += mk
                break
        else:
            normals.append(uk)
            offsets.append(tk)
            masses.append(mk)
    d = w.shape[1]
    return np.reshape(normals, (-1, d)), np.asarray(offsets, np.float64), np.asarray(masses, np.float64)


def radon_stability_weight(X, normals, offsets):
    """g(H) = min(g~(u, t), g~(-u, -t)) for the hyperplanes H = {u . x = t} (``normals`` (m, d) unit vectors,
    ``offsets`` (m,)), with g~(u, t) = P(u . X > t)^2 E[u . X - t | u . X > t] sqrt(1 + ||E[X | u . X > t]||^2) over
    the empirical distribution of the training inputs ``X`` (n, d) (module docstring); strict inequalities, g = 0
    where either side holds no data. For d = 1 (normal +1) this is `stability_weight`. Cost O(m n d)."""
    normals = np.asarray(normals, np.float64)
    offsets = np.asarray(offsets, np.float64)
    if normals.ndim != 2 or offsets.shape != normals.shape[:1]:
        raise InputError(f"normals must be (m, d) and offsets (m,), got shapes {normals.shape} and {offsets.shape}")
    X = _inputs_nd(X, normals.shape[1])
    proj = normals @ X.T - offsets[:, None]                          # (m, n): u . x_i - t

    def side(sign):
        mask = sign * proj > 0
        count = mask.sum(axis=1)
        safe = np.maximum(count, 1)
        gap = (mask * sign * proj).sum(axis=1) / safe
        mean = (mask @ X) / safe[:, None]
        return np.where(count > 0, (count / X.shape[0]) ** 2 * gap * np.sqrt(1.0 + np.sum(mean**2, axis=1)), 0.0)

    return np.minimum(side(1.0), side(-1.0))


def relu_laplacian_norm(params, X, weight=None, atol=1e-12):
    """sum_H |m_H| g(H) for the one-hidden-layer multivariate ReLU net ``params`` (w: (K, d), d >= 2; b, v: (K,);
    c: ()), exactly: the hyperplane masses of its Laplacian (`relu_hyperplanes`) weighted by g =
    `radon_stability_weight` of the training inputs ``X`` (n, d), unless ``weight`` (a callable (normals, offsets) ->
    (m,) nonnegative values) is given; ``X`` is then unused (pass None). With weight = the integral of a density rho
    over each hyperplane this is int |Laplacian f| rho dx. The stability bound of Nacson et al. (2023) for GD with step
    lr is <= 1/lr - 1/2 at linearly stable interpolating minima (module docstring). Cost O(K^2 d + K n d)."""
    normals, offsets, masses = relu_hyperplanes(params, atol)
    if weight is None:
        g = radon_stability_weight(X, normals, offsets)
    else:
        g = np.asarray(weight(normals, offsets), np.float64)
        if g.shape != offsets.shape or not np.all(np.isfinite(g)) or np.any(g < 0):
            raise InputError(f"weight must map the {offsets.size} hyperplanes to as many finite nonnegative values, "
                             f"got shape {g.shape}")
    return float(np.sum(np.abs(masses) * g))
