"""Nacson, Gunasekar, Lee, Srebro, Soudry (ICML 2019, arXiv:1905.07325): lexicographic and depth-sensitive margins.

docs/implicit-bias.md section 12. Two experiments, every claim against an independent computation.

Homogeneous (degree 2): the diagonal net beta = u_+^2 - u_-^2 on six points z_n = y_n x_n in R^3 whose l1 max-margin
set is not a point: z_1 = (1, 1, 1) caps every unit-l1 margin at 1 and attains it on the whole face {b >= 0, sum b =
1}, so the max-margin set is that face cut by z_6.b >= 1 (b_3 <= 3/5), a quadrilateral (exact, by hand). The
lexicographic solution (sequential LPs, `lexicographic_max_margin`) is b* = (5/12, 1/4, 1/3) with margins (1, 5/3,
5/3, 11/6, 11/6, 7/3) (by hand, docs). The constrained path argmin L s.t. ||theta||^2 <= c (exp loss; the paper's
constrained path with B^2 = c) is computed by Newton's method on the face in coordinates aligned with the stages, so
the exponentially small terms that decide the later stages never cancel against the first (a plain Newton or SLSQP on
theta loses them below float64 resolution once c (5/6) > 36); SLSQP on theta checks it at small c. Derived expansion:
the stage balances are exact to O(e^{-c/6}), b(c) = b* + K/c with K = log 2 (-1/12, -1/4, 1/3). Gradient flow (log
time) from several initializations reaches the max-margin set but, in the tie, lands at an initialization-dependent
point: reported, not claimed (the paper's GD result is about the max margin, not the lexicographic refinement).

Ensemble (degree 1 + degree 2): f(x) = v.x + (u_+^2 - u_-^2) x_2, theta = (v, u_+, u_-), constrained path by SLSQP on
theta and by the KKT equations (convex in (v, beta): ||v||^2 + |beta| <= B^2), which give v_2 = 1/2 and
||v|| = ||g||/(2 |g_2|), g = sum_n e^{-q_n} z_n. Shallow part unnecessary (z = (1, 1), (-1, 2): x_2 alone separates):
|g_1| <= g_2, so ||v|| <= 1/sqrt 2 and the shallow share ||v||/B <= 1/(sqrt 2 B) -> 0. Necessary (z = (1, 0),
(0, 1): point 1 has no x_2): v_1^2 + v_1 + log(2 v_1) - 1/4 = B^2, so B (1 - ||v||/B) = 1/2 + (log 2B - 1/2)/(2B)
+ O(log B/B^2): the shallow part keeps the whole normalized parameter.
"""

import jax.numpy as jnp
import numpy as np
import scipy.optimize
from scipy.special import logsumexp, softmax

import dynamics as dyn
from dynamics.models import MarginLoss, tail_from

from .common import by_budget, claims, figures, runs
from .harness import Theorem

#: signed points z_n = y_n x_n of the homogeneous experiment (labels below), and the exact lexicographic answer.
Z_LEX = np.array([[1, 1, 1], [2, 2, 1], [1, 1, 3], [3, 1, 1], [1, 3, 2], [4, 4, -1]], float)
Y_LEX = np.array([1, -1, 1, -1, 1, -1], float)
B_STAR = np.array([5 / 12, 1 / 4, 1 / 3])
LEVELS = np.array([1, 5 / 3, 5 / 3, 11 / 6, 11 / 6, 7 / 3])
#: face directions aligned with the stages: E_A keeps z_1's margin, E_B keeps z_1, z_2, z_3 (and z_6) margins.
E_A, E_B = np.array([1.0, 1.0, -2.0]), np.array([1.0, -1.0, 0.0])
K_PATH = np.log(2.0) * np.array([-1 / 12, -1 / 4, 1 / 3])
#: ensemble data: the shallow part unnecessary (x_2 separates) and necessary (point 1 has x_2 = 0).
Z_UNNECESSARY = np.array([[1.0, 1.0], [-1.0, 2.0]])
Z_NECESSARY = np.array([[1.0, 0.0], [0.0, 1.0]])
#: GF initializations (u_+(0), u_-(0)) of the diagonal net.
INITS = {"uniform 0.1": ([0.1, 0.1, 0.1], [0.1, 0.1, 0.1]), "uniform 1e-3": ([1e-3] * 3, [1e-3] * 3),
         "skewed e1": ([0.3, 0.03, 0.03], [0.03] * 3), "skewed e2": ([0.03, 0.3, 0.03], [0.03] * 3),
         "skewed e3": ([0.1, 0.1, 0.3], [0.1] * 3), "uniform 1": ([1.0] * 3, [1.0] * 3)}
SLSQP = {"ftol": 1e-15, "maxiter": 1000}


def face_path(Z, c, start=(0.0, 0.0), iterations=60):
    """argmin_b log sum_n exp(-c z_n.b) on the face b = B_STAR + x E_A + y E_B, by Newton on the stationarity equations
    G_i = sum_n exp(-c (q_n - m_i)) D_ni = 0 (D = Z [E_A, E_B], m_i = min of q_n over the points with D_ni != 0): each
    equation is scaled by its own stage's weight, so a later stage's e^{-c gap} never underflows against the first.
    Returns b and the relative residual max_i |G_i| / sum_n exp(-c (q_n - m_i)) |D_ni|. Global over the l1 ball when
    b > 0 (the problem is convex in b; in the face interior its KKT condition is face stationarity)."""
    base, D = Z @ B_STAR, Z @ np.stack([E_A, E_B], axis=1)
    x = np.array(start, float)

    def equations(x):
        q = base + D @ x
        G, J, scale = np.zeros(2), np.zeros((2, 2)), np.zeros(2)
        for i in range(2):
            rows = D[:, i] != 0
            w = np.exp(-c * (q[rows] - q[rows].min()))
            G[i], scale[i] = w @ D[rows, i], w @ np.abs(D[rows, i])
            J[i] = -c * (w * D[rows, i]) @ D[rows]
        return G, J, scale

    for _ in range(iterations):
        G, J, _ = equations(x)
        x = x - np.linalg.solve(J, G)
    G, _, scale = equations(x)
    return B_STAR + x[0] * E_A + x[1] * E_B, float(np.max(np.abs(G) / scale))


def slsqp_path(Z, c, start):
    """The same constrained minimizer by SLSQP on theta = (u_+, u_-) with ||theta||^2 <= 1, beta = c (u_+^2 - u_-^2)."""
    d = Z.shape[1]

    def objective(u):
        q = -c * (Z @ (u[:d] ** 2 - u[d:] ** 2))
        p = softmax(q)
        g = -Z.T @ p
        return logsumexp(q) / c, np.r_[2 * u[:d] * g, -2 * u[d:] * g]

    res = scipy.optimize.minimize(objective, start, jac=True, method="SLSQP", options=SLSQP,
                                  constraints=[{"type": "ineq", "fun": lambda u: 1 - u @ u, "jac": lambda u: -2 * u}])
    return res.x[:d] ** 2 - res.x[d:] ** 2


def ensemble_slsqp(Z, B, start):
    """argmin log sum_n exp(-q_n) s.t. ||theta||^2 <= B^2 for q_n = z_n.v + (u_+^2 - u_-^2) z_n2, theta = (v, u_+, u_-).
    The objective is shifted by the constant B^2 (it is ~ -B^2): SLSQP's ftol is relative to |objective|."""
    def objective(t):
        q = -(Z @ t[:2] + Z[:, 1] * (t[2] ** 2 - t[3] ** 2))
        g = -Z.T @ softmax(q)
        return logsumexp(q) + B**2, np.r_[g, 2 * t[2] * g[1], -2 * t[3] * g[1]]

    norm = {"type": "ineq", "fun": lambda t: B**2 - t @ t, "jac": lambda t: -2 * t}
    return scipy.optimize.minimize(objective, start, jac=True, method="SLSQP", options=SLSQP, constraints=[norm]).x


def ensemble_kkt(case, B):
    """(v, beta) from the KKT equations of min L s.t. ||v||^2 + |beta| <= B^2 (module docstring); case "unnecessary"
    (data Z_UNNECESSARY) or "necessary" (Z_NECESSARY)."""
    if case == "unnecessary":
        def residual(v1):  # v_1 = (1 - r)/(2(1 + 2r)), r = e^{q_1 - q_2} = exp(2 v_1 - v_2 - beta)
            r = np.exp(2 * v1 - 0.5 - (B**2 - v1**2 - 0.25))
            return v1 - (1 - r) / (2 * (1 + 2 * r))
        v1 = scipy.optimize.brentq(residual, -0.25, 0.5, xtol=1e-15)
    else:
        v1 = scipy.optimize.brentq(lambda v: v * v + v + np.log(2 * v) - 0.25 - B**2, 1e-9, B + 1.0, xtol=1e-15)
    return np.array([v1, 0.5]), B**2 - v1**2 - 0.25


def _stacked_margins(params, Z):
    """Margins of S independent diagonal nets (leading axis S) on the same data, flattened: the sum loss of the
    stacked nets is the sum of their losses, so one flow runs S independent flows."""
    up, um = params
    return ((up**2 - um**2) @ Z.T).reshape(-1)


class Nacson2019Lexicographic(Theorem):
    id = "nacson2019_lexicographic"
    reference = ("Nacson, Gunasekar, Lee, Srebro, Soudry: Lexicographic and depth-sensitive margins in homogeneous "
                 "and non-homogeneous deep models, ICML 2019 (arXiv:1905.07325)")
    statement = (
        "The limit of loss minimization under a diverging norm constraint (the constrained path) is a max-margin "
        "solution; for homogeneous models it is the lexicographic max margin (maximize the smallest margin, then the "
        "next among the maximizers, ...), and for ensembles (sums of homogeneous sub-models of different degrees) it "
        "discards the shallowest sub-models when they are unnecessary. Gradient descent reaches a max-margin "
        "solution under the paper's conditions.")
    hypotheses = (
        "separable data (NonSeparableError with a Farkas certificate otherwise); exp loss, sum convention",
        "homogeneous case: degree-2 diagonal net, a data set whose l1 max-margin set is a quadrilateral (exact tie)",
        "ensemble: degree 1 (v.x) + degree 2 ((u_+^2 - u_-^2) x_2), constrained path ||theta|| <= B",
        "gradient flow in log time from six initializations, rtol 1e-10",
    )

    def run(self, budget="quick"):
        X = Y_LEX[:, None] * Z_LEX
        lex = dyn.lexicographic_max_margin(X, Y_LEX)
        lp = dyn.l1_max_margin(X, Y_LEX)
        cs = 2.0 ** np.arange(0, by_budget(budget, 12, 16))
        path, residual, x = [], [], (0.0, 0.0)
        for c in cs:
            b, r = face_path(Z_LEX, c, x)
            path.append(b)
            residual.append(r)
            x = np.array([(b - B_STAR) @ E_A / (E_A @ E_A), (b - B_STAR) @ E_B / (E_B @ E_B)]) / 2  # x ~ 1/c
        path = np.array(path)
        small = cs[:3]
        start = np.r_[np.sqrt(np.full(3, 1 / 3)), np.full(3, 1e-3)]
        slsqp = np.array([slsqp_path(Z_LEX, c, start / np.linalg.norm(start)) for c in small])

        taus = np.geomspace(0.01, by_budget(budget, 200.0, 800.0), 40)
        up0 = jnp.asarray([v[0] for v in INITS.values()])
        um0 = jnp.asarray([v[1] for v in INITS.values()])
        loss = MarginLoss(_stacked_margins, jnp.asarray(Z_LEX), tail_from("exp"))
        up, um = runs.gf_log_time(loss, (up0, um0), taus, rtol=1e-10, atol=1e-12, max_steps=200_000)
        beta_gf = up**2 - um**2  # (T, S, d)

        Bs = 2.0 ** np.arange(0, 6)  # B <= 32 at both budgets: SLSQP's norm constraint rounds at 1e-16 B^2
        ensembles = {}
        for name, Z in (("unnecessary", Z_UNNECESSARY), ("necessary", Z_NECESSARY)):
            theta = np.array([ensemble_slsqp(Z, B, B * np.array([0.1, 0.1, 0.5, 0.05])) for B in Bs])
            kkt = [ensemble_kkt(name, B) for B in Bs]
            ensembles[name] = {"theta": theta, "v_kkt": np.array([k[0] for k in kkt]),
                               "beta_kkt": np.array([k[1] for k in kkt])}
        return {"Z": Z_LEX, "lex_w": lex.w, "lex_margins": lex.margins, "lex_levels": lex.levels,
                "lex_stage_values": np.array([s.value for s in lex.stages]), "lex_certificate": lex.certificate,
                "lp_w": lp.w / np.abs(lp.w).sum(), "lp_margin": lp.margin, "cs": cs, "path": path,
                "path_residual": np.array(residual), "small_cs": small, "slsqp": slsqp, "taus": taus,
                "gf_beta": beta_gf, "inits": list(INITS), "Bs": Bs, "ensembles": ensembles}

    def check(self, ev):
        Z, cs, path = ev["Z"], ev["cs"], ev["path"]
        out = [
            claims.bound(
                "lexicographic LPs: max over stages of the duality gap and primal infeasibility", ev["lex_certificate"],
                1e-8, role="consistency",
                why="each stage is an LP solved by HiGHS to its feasibility tolerances (1e-10, absolute on data scaled "
                    "to max |z| ~ 1); 1e-8 allows 100 times them"),
            claims.identity(
                "lexicographic LPs vs the exact solution b* = (5/12, 1/4, 1/3) and levels (1, 5/3, 11/6, 7/3): max "
                "abs error", float(max(np.abs(ev["lex_w"] - B_STAR).max(), np.abs(ev["lex_levels"] - LEVELS).max())),
                0.0, 1e-8, role="consistency",
                why="b* and the levels are derived by hand (docs/implicit-bias.md section 12); the LPs are solved to "
                    "1e-10 per stage over 4 stages with O(1) coefficients"),
        ]
        vertices = np.eye(3)[:2]  # e_1 and e_2: unit l1, margins Z e_j >= 1 exactly (integer data)
        tie = bool(np.all(Z @ vertices.T >= 1) and np.all((Z @ vertices.T).min(axis=0) == 1)
                   and not np.allclose(np.sort(Z @ ev["lp_w"]), np.sort(LEVELS)))
        out.append(claims.holds(
            "the l1 max-margin set is not a point: e_1 and e_2 both attain gamma_1 = 1 (integer arithmetic) and the "
            "LP's own solution differs from the lexicographic one", tie, role="consistency",
            why="the data is built for an exact tie (z_1 = (1, 1, 1) attains ||b||_1 on the whole face); exact checks",
            note=f"LP solution {np.round(ev['lp_w'], 6).tolist()}, margin {ev['lp_margin']:.12g}; sorted margins "
                 f"{np.round(np.sort(Z @ ev['lp_w']), 4).tolist()} vs lexicographic {np.round(LEVELS, 4).tolist()}"))

        small = ev["small_cs"]
        out.append(claims.bound(
            f"constrained path: face Newton vs SLSQP on theta (c = {small.astype(int).tolist()}), max |b difference|",
            float(np.abs(ev["slsqp"] - path[:len(small)]).max()), 1e-6, role="consistency",
            why="two algorithms on two parametrizations (the face in b, the ball in theta); SLSQP stops at ftol 1e-15 "
                "on an objective of curvature O(c), so its b is good to ~sqrt(1e-15 c) ~ 1e-7 at c = 4"))
        out.append(claims.holds(
            "constrained path: Newton stationarity <= 1e-12 and b > 0 at every c (so it is the global minimizer over "
            "the l1 ball, the problem being convex in b)",
            bool(np.all(ev["path_residual"] <= 1e-12) and np.all(path > 0)), role="consistency",
            why="Newton converges quadratically to rounding; b > 0 puts the face point in the interior where face "
                "stationarity is the full KKT condition",
            note=f"max residual {ev['path_residual'].max():.2e}, min b {path.min():.4f}"))
        late = cs >= 128
        scaled = cs[late, None] * (path[late] - B_STAR)
        error = float(np.abs(scaled - K_PATH).sum(axis=1).max() / np.abs(K_PATH).sum())
        out.append(claims.bound(
            "constrained path -> lexicographic solution at rate K/c: max_{c >= 128} ||c (b(c) - b*) - K||_1 / ||K||_1",
            error, 1e-6,
            why="[derived] the stage balances give b* + K/c exactly up to terms O(e^{-c/6}) from the next stage "
                "(e^{-128/6} = 5e-10) and Newton rounding ~1e-16 c; 1e-6 is far above both and 2e5 times below "
                "||K||_1/c at c = 2048",
            note=f"K = log 2 (-1/12, -1/4, 1/3); ||b(c) - b*||_1 = {np.abs(path[-1] - B_STAR).sum():.3e} at c = "
                 f"{cs[-1]:.0f}; distance to the LP's solution {np.abs(path[-1] - ev['lp_w']).sum():.3f}"))

        beta = ev["gf_beta"][-1]
        b_gf = beta / np.abs(beta).sum(axis=1, keepdims=True)
        gamma = (b_gf @ Z.T).min(axis=1)
        distances = np.abs(b_gf - B_STAR).sum(axis=1)
        out.append(claims.bound(
            f"GF from {len(ev['inits'])} initializations: max over inits of gamma_1 - min_n z_n.beta/||beta||_1 at "
            f"tau = {ev['taus'][-1]:.0f}", float(np.max(1.0 - gamma)), 1e-12,
            why="paper: the GD limit is a max-margin solution; for GF on this net u_- = u_-(0) e^{-2v} decays like "
                "e^{-tau/2}, after which the margin is exactly 1 wherever b_3 <= 3/5: only rounding (1e-16) remains",
            note="where in the max-margin set (not claimed): ||b_GF - b*||_1 = " + ", ".join(
                f"{name} {dist:.3f}" for name, dist in zip(ev["inits"], distances))
                 + "; GF does not select the lexicographic point in the tie"))

        Bs = ev["Bs"]
        rel = []
        for e in ev["ensembles"].values():
            t = e["theta"]
            rel.append(np.abs(t[:, :2] - e["v_kkt"]).max(axis=1) / np.linalg.norm(e["v_kkt"], axis=1))
            rel.append(np.abs(t[:, 2] ** 2 - t[:, 3] ** 2 - e["beta_kkt"]) / e["beta_kkt"])
        out.append(claims.bound(
            "ensemble constrained path: SLSQP on theta vs the KKT equations, max relative error", float(np.max(rel)),
            1e-6, role="consistency",
            why="SLSQP (ftol 1e-15 on an O(1) objective of curvature O(1) in v), but the constraint ||theta||^2 = B^2 "
                "rounds at 1e-16 B^2 = 1e-13 (B = 32), which moves v by ~sqrt(1e-13) = 3e-7; the KKT roots are brentq "
                "to 1e-15 "
                "(the problem is convex in (v, beta), so KKT is the minimizer)"))
        un = ev["ensembles"]["unnecessary"]["theta"]
        share_un = np.linalg.norm(un[:, :2], axis=1) / np.linalg.norm(un, axis=1)
        out.append(claims.bound(
            "shallow part unnecessary: max_B B ||v(B)||/||theta(B)|| (share of the normalized parameter times B)",
            float(np.max(Bs * share_un)), 2**-0.5 * (1 + 1e-6),
            why="[derived] KKT: ||v|| = ||g||/(2|g_2|) <= 1/sqrt 2 when |z_n1| <= z_n2, so the share is <= "
                "1/(sqrt 2 B) -> 0; 1e-6 is the SLSQP error of the consistency claim",
            note="shares " + ", ".join(f"B={B:.0f}: {s:.4g}" for B, s in zip(Bs, share_un))))
        ne = ev["ensembles"]["necessary"]["theta"]
        share_ne = np.linalg.norm(ne[:, :2], axis=1) / np.linalg.norm(ne, axis=1)
        B = Bs[-1]
        out.append(claims.identity(
            f"shallow part necessary: B (1 - ||v||/||theta||) at B = {B:.0f} vs its limit 1/2",
            float(B * (1 - share_ne[-1])), 0.5, float(np.log(2 * B) / B),
            why="[derived] from v_1^2 + v_1 + log(2 v_1) - 1/4 = B^2: B(1 - share) = 1/2 + (log 2B - 1/2)/(2B) + "
                "O(log B/B^2), within log(2B)/B of 1/2: the shallow part keeps the normalized parameter (share -> 1)",
            note="shares " + ", ".join(f"B={b:.0f}: {s:.4g}" for b, s in zip(Bs, share_ne))))
        return out

    def figure(self, ev):
        fig, axes = figures.panels(self, 3, width=4.4, height=3.6, title="lexicographic and depth-sensitive margins")
        ax = axes[0]
        corners = np.array([[1, 0], [0, 1], [0, 0.4], [0.4, 0], [1, 0]])  # (b_1, b_2) vertices of b_3 <= 3/5
        ax.fill(corners[:, 0], corners[:, 1], color="0.9", label="max-margin set")
        ax.plot(*ev["path"][:, :2].T, "o-", ms=3, label="constrained path")
        beta = ev["gf_beta"][-1]
        b_gf = beta / np.abs(beta).sum(axis=1, keepdims=True)
        ax.plot(*b_gf[:, :2].T, "s", ms=5, label="GF limits (6 inits)")
        ax.plot(*B_STAR[:2], "k*", ms=12, label="lexicographic")
        ax.plot(*ev["lp_w"][:2], "rx", ms=8, label="LP vertex")
        figures.axes_style(ax, "b_1", "b_2", title="unit-l1 face (b_3 = 1 - b_1 - b_2)")
        ax.legend(fontsize=7)
        cs = ev["cs"]
        axes[1].loglog(cs, np.abs(ev["path"] - B_STAR).sum(axis=1), "o-", label=r"$\|b(c) - b^*\|_1$")
        axes[1].loglog(cs, np.abs(K_PATH).sum() / cs, "k--", label=r"$\|K\|_1/c$")
        figures.axes_style(axes[1], "c = B^2", None, title="constrained path -> lexicographic")
        axes[1].legend(fontsize=8)
        Bs = ev["Bs"]
        for name, e in ev["ensembles"].items():
            t = e["theta"]
            axes[2].loglog(Bs, np.linalg.norm(t[:, :2], axis=1) / np.linalg.norm(t, axis=1), "o-",
                           label=f"shallow {name}")
        axes[2].loglog(Bs, 2**-0.5 / Bs, "k--", label=r"$1/(\sqrt{2}B)$")
        figures.axes_style(axes[2], "B", r"$\|v\|/\|\theta\|$", title="ensemble: shallow share of theta/B")
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        return fig
