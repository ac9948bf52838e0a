"""Classification data for the separable-data and implicit-bias theorems. Registered with `register`.

Every generator returns ``(X, y)``: X of shape (N, d) and labels y in {-1, +1}, both NumPy float64, so that
z_n = y_n x_n are the rows of Z (docs/implicit-bias.md section 0). Fixed hand-made sets ignore ``seed``; random
sets draw only from ``numpy.random.default_rng(seed)``.
"""

import numpy as np

from . import register


@register("axis_closed_form")
def axis_closed_form(seed=0, extra=True):
    """Axis-aligned support z_1 = e_1, z_2 = 2 e_2 (docs/implicit-bias.md section 2, reference case 1):
    w_hat = (1, 0.5), alpha = (1, 0.25), w_tilde = (0, log 2). With ``extra`` two off-margin points (2, 2) and
    (3, -0.5) (margins 3 and 2.75) are added; they change no limit. Fixed data: ``seed`` is unused. Labels all +1."""
    X = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [3.0, -0.5]])[: 4 if extra else 2]
    return X, np.ones(len(X))


@register("degenerate_support")
def degenerate_support(seed=0):
    """z_1 = (1, 0), z_2 = (1, 1) (docs/implicit-bias.md section 2, reference case 3): w_hat = (1, 0) and z_2 lies on
    the margin with alpha_2 = 0, so the refined limit does not exist and w_2 grows like log log t. Fixed data."""
    return np.array([[1.0, 0.0], [1.0, 1.0]]), np.ones(2)


@register("gaussian_hyperplane")
def gaussian_hyperplane(seed=0, n=30, d=3):
    """Gaussian points x_n ~ N(0, I_d) labelled by a random hyperplane through 0: with rng = default_rng(seed),
    X = rng.normal(size=(n, d)), y = sign(X @ rng.normal(size=d))."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sign(X @ rng.normal(size=d))


@register("shifted_plane")
def shifted_plane(seed=0, n=16, shift=3.0):
    """Points in R^3 whose third feature is identically 0 (span(Z) is the plane x3 = 0): with rng = default_rng(seed),
    y = rng.choice([-1, 1], n), then x_n = y_n (shift e_1 + xi_n), xi_n = rng.normal(size=(n, 2)) in the plane, so
    z_n = shift e_1 + xi_n. For small supports (|S| < d) and initializations with a component outside span(Z)."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    planar = y[:, None] * (rng.normal(size=(n, 2)) + np.array([shift, 0.0]))
    return np.c_[planar, np.zeros(n)], y


@register("wedge_2d")
def wedge_2d(seed=0, n=10, half_angle=60.0, r_min=0.2):
    """Random 2-d data in a wedge: z_n = r_n (cos phi_n, sin phi_n), phi ~ U(-half_angle, half_angle) degrees,
    r ~ U(r_min, 1), random labels. rng = default_rng(seed) draws phi, then r, then y = rng.choice([-1, 1], n);
    x_n = y_n z_n. Separable through 0 (every z_n lies in an open half-plane)."""
    rng = np.random.default_rng(seed)
    phi = np.deg2rad(rng.uniform(-half_angle, half_angle, n))
    r = rng.uniform(r_min, 1.0, n)
    y = rng.choice([-1.0, 1.0], n)
    return y[:, None] * r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1), y
