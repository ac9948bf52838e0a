"""The central flow's SDCP solved in JAX (`solve_sdcp`) against a host-side QP called through `jax.pure_callback`,
which is how the authors' code calls cvxpy every substep (docs/flows.md section 10).

Problem: the CPU MLP of `theorems.cohen2021_eos` (433 parameters, eta = 0.1) and the central flow of
`theorems.cohen2025_central_flow` at its quick budget (k = 3, warm Lanczos with 15 HVPs, 4 Euler substeps), run by
`simulate` for WARMUP steps from the init into the edge-of-stability regime (onset at step ~400; eta lambda_1 = 2.000
after it, one critical eigenvalue).

SDCP (per substep, critical block c of the top-k eigenpairs): X >= 0, A + B[X] >= 0, <X, A + B[X]> = 0, equivalently
the convex QP min_{X PSD} (1/2)<X, B[X]> + <A, X>. Host solver (`host_sdcp`): the QP on the block in the Cholesky
parametrization X = (|A|/|B|) L L^T (A, B scaled to unit norm), L lower-triangular, by scipy L-BFGS-B with the exact
gradient 2 (B[X] + A) L, from L = I: a different algorithm from the in-JAX FISTA with eigenvalue clipping.

Table 1 (solver only): A and B = gram from the CF state's top-5 eigenpairs (`CentralFlow(k=5, dense).analyse`), its
D_ij = T[v_i, v_j] and gradient; the critical set is the first k_c of them, k_c = 1, 2, 3, 5; for k_c = 1 the problem
is the state's own, for k_c > 1 eta lambda_2..5 are replaced by SYNTHETIC_ETA_LAMBDA (2.01, 1.96, 2.02, 2.005:
1.96 lies between the 1.95 threshold and 2) so that the critical block is that large. Times per solve: the mean
over SOLVES back-to-back calls (dispatch included), median of REPEATS interleaved rounds, compile excluded. X from
both solvers is compared entrywise, and each is checked on its own by the complementarity residual
max(-lambda_min(X), -lambda_min(A + B[X]), |<X, A + B[X]>|) on the block, in NumPy.

Table 2 (whole flow): `simulate` of STEPS steps (4 substeps each) from the EoS state, the flow as is against
`HostSDCPCentralFlow` (the same flow, its SDCP replaced by the host callback); ms per step (median of REPEATS_FLOW
warm runs), ratio, and the largest gap between the two final states.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)


import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

from dynamics import CentralFlow, simulate  # noqa: E402
from dynamics.processes import eos  # noqa: E402
from theorems.cohen2021_eos import ETA, cpu_mlp  # noqa: E402
from theorems.cohen2025_central_flow import K, LANCZOS_STEPS_CF  # noqa: E402

from .common import table, time_calls  # noqa: E402

WARMUP = 600
STEPS = 100
K_FLOW = K["quick"]
K_SOLVER = 5
CRITICAL = (1, 2, 3, 5)
#: eta lambda_2..5 in the solver-only problems (eta lambda_1 is the state's own, 2.000).
SYNTHETIC_ETA_LAMBDA = (2.01, 1.96, 2.02, 2.005)
SOLVES = 50
REPEATS = 5
REPEATS_FLOW = 3
#: L-BFGS-B: run until the line search stalls (ftol 0) or the projected gradient is below GTOL (scaled problem).
GTOL = 1e-15
MAX_ITERATIONS = 20_000


def critical_qp(a, B):
    """(X, L-BFGS-B iterations) minimizing (1/2) vec X^T B vec X + <a, X> over PSD m x m X (B: m^2 x m^2, PSD).

    X = (|a| / |B|) L L^T with L lower-triangular (m(m+1)/2 unknowns) and the QP scaled to |a| = |B| = 1 (spectral
    norm of B, Frobenius of a); gradient in L: 2 G L, G = B[Y] + a (symmetric). Cost: O(m^4) flops per evaluation;
    at m <= 5 SciPy's overhead dominates (~55 us per iteration and ~0.2 ms per call here, README)."""
    m = a.shape[0]
    scale_b, scale_a = np.linalg.norm(B, 2), np.linalg.norm(a)
    if scale_a == 0.0:
        return np.zeros_like(a), 0
    B, a = B / scale_b, a.reshape(-1) / scale_a
    rows, cols = np.tril_indices(m)

    def objective(z):
        L = np.zeros((m, m))
        L[rows, cols] = z
        y = (L @ L.T).reshape(-1)
        G = (B @ y + a).reshape(m, m)
        return 0.5 * y @ (B @ y) + a @ y, (2.0 * (0.5 * (G + G.T)) @ L)[rows, cols]

    result = scipy.optimize.minimize(objective, np.eye(m)[rows, cols], jac=True, method="L-BFGS-B",
                                     options={"maxiter": MAX_ITERATIONS, "ftol": 0.0, "gtol": GTOL})
    L = np.zeros((m, m))
    L[rows, cols] = result.x
    return (scale_a / scale_b) * (L @ L.T), result.nit


def critical_block(A, gram, mask):
    """(indices c of the critical set, A on c x c, the gram rows/columns of the pairs (i, j) in c x c)."""
    c = np.flatnonzero(mask)
    pairs = (c[:, None] * A.shape[0] + c[None, :]).reshape(-1)
    return c, A[np.ix_(c, c)], gram[np.ix_(pairs, pairs)]


def host_sdcp(A, gram, mask):
    """`solve_sdcp`'s contract on the host: X (k x k, zero off the critical block ``mask``) by `critical_qp` on the
    block; X = 0 for an empty critical set."""
    c, a, B = critical_block(np.asarray(A), np.asarray(gram), np.asarray(mask))
    X = np.zeros(np.shape(A))
    if c.size:
        X[np.ix_(c, c)] = critical_qp(a, B)[0]
    return X


def host_sdcp_callback(A, gram, mask):
    """`host_sdcp` from traced code: one device-to-host round trip per call."""
    return jax.pure_callback(host_sdcp, jax.ShapeDtypeStruct(A.shape, A.dtype), A, gram, mask)


class HostSDCPCentralFlow(CentralFlow):
    """`CentralFlow` whose SDCP is `host_sdcp_callback` (the authors' design: a host QP every substep).

    Only the solver hook `CentralFlow._sdcp` changes."""

    def _sdcp(self, A, gram, mask):
        return host_sdcp_callback(A, gram, mask)


def complementarity(A, gram, mask, X):
    """max(-lambda_min(X), -lambda_min(S), |<X, S>|) on the critical block, S = A + B[X] (0 for an exact solution)."""
    c, Sc, _ = critical_block(A + (gram @ X.reshape(-1)).reshape(X.shape), gram, mask)
    Xc = X[np.ix_(c, c)]
    return max(0.0, -np.linalg.eigvalsh(Xc)[0], -np.linalg.eigvalsh(Sc)[0], abs(np.sum(Xc * Sc)))


def solver_problems(E, w):
    """{k_c: (A, gram, mask)} from the top-K_SOLVER eigenpairs at w (see the module docstring)."""
    flow = CentralFlow(E, ETA, k=K_SOLVER, method="dense")
    _, _, lam, _, D, g = (np.asarray(a) for a in jax.jit(lambda w: flow.analyse(w))(w))
    dt = 1.0 / flow.substeps
    flatD = D.reshape(K_SOLVER ** 2, -1)
    gram = dt * (ETA / 2.0) * flatD @ flatD.T
    synthetic = np.concatenate([lam[:1], np.asarray(SYNTHETIC_ETA_LAMBDA) / ETA])
    problems = {}
    for kc in CRITICAL:
        lam_c = np.where(np.arange(K_SOLVER) < kc, synthetic, lam)
        A = (2.0 / ETA) * np.eye(K_SOLVER) - np.diag(lam_c) - dt * (D @ (-ETA * g))
        problems[kc] = (A, gram, np.arange(K_SOLVER) < kc)
    return problems, ETA * lam[0]


def repeated(solve, args):
    """SOLVES back-to-back calls of solve(*args), the last result blocked on (per-solve time = call time / SOLVES)."""
    def call():
        for _ in range(SOLVES):
            X = solve(*args)
        return X
    return call


def measure_solvers(problems):
    in_jax, callback = jax.jit(eos.solve_sdcp), jax.jit(host_sdcp_callback)
    rows = []
    for kc, (A, gram, mask) in problems.items():
        args = tuple(jnp.asarray(a) for a in (A, gram, mask))
        timings, results = time_calls({"jax": repeated(in_jax, args), "callback": repeated(callback, args),
                                       "bare": repeated(host_sdcp, (A, gram, mask))}, REPEATS)
        X_jax, X_host = np.asarray(results["jax"]), np.asarray(results["callback"])
        iterations = critical_qp(*critical_block(A, gram, mask)[1:])[1]
        per = {name: 1e6 * t.median_s / SOLVES for name, t in timings.items()}
        rows.append([kc, np.linalg.matrix_rank(X_jax, tol=1e-8 * np.linalg.norm(X_jax)), f"{np.linalg.norm(X_jax):.4g}",
                     f"{per['jax']:.0f}", f"{per['callback']:.0f}", f"{per['bare']:.0f}",
                     f"{per['callback'] / per['jax']:.2f}", iterations, f"{np.max(np.abs(X_jax - X_host)):.1e}",
                     f"{complementarity(A, gram, mask, X_jax):.1e}", f"{complementarity(A, gram, mask, X_host):.1e}",
                     sum(t.warm_compiles for t in timings.values())])
    noop = jax.jit(lambda A, gram, mask: jax.pure_callback(lambda A, *_: np.asarray(A),
                                                           jax.ShapeDtypeStruct(A.shape, A.dtype), A, gram, mask))
    overhead = time_calls({"noop": repeated(noop, args)}, REPEATS)[0]["noop"].median_s / SOLVES
    return rows, overhead


def measure_flow(E, w_eos):
    options = dict(k=K_FLOW, method="lanczos", lanczos_steps=LANCZOS_STEPS_CF)
    flows = {"in-JAX solve_sdcp": CentralFlow(E, ETA, **options),
             "host QP via pure_callback": HostSDCPCentralFlow(E, ETA, **options)}
    ts = np.array([0.0, STEPS])
    timings, results = time_calls({name: (lambda f=flow: simulate(f, w_eos, ts).ys[-1])
                                   for name, flow in flows.items()}, REPEATS_FLOW)
    base = timings["in-JAX solve_sdcp"].median_s
    substeps = STEPS * flows["in-JAX solve_sdcp"].substeps
    rows = [[name, f"{1e3 * t.median_s / STEPS:.2f}", f"{t.median_s / base:.2f}",
             f"{1e6 * (t.median_s - base) / substeps:.0f}", f"{t.first_s:.1f}", t.warm_compiles]
            for name, t in timings.items()]
    finals = [np.asarray(w) for w in results.values()]
    moved = np.max(np.abs(finals[0] - np.asarray(w_eos)))
    return rows, np.max(np.abs(finals[0] - finals[1])), moved


def report():
    E, w0 = cpu_mlp()
    base = CentralFlow(E, ETA, k=K_FLOW, method="lanczos", lanczos_steps=LANCZOS_STEPS_CF)
    w_eos = simulate(base, w0, np.array([0.0, WARMUP])).ys[-1]
    problems, eta_lambda = solver_problems(E, w_eos)
    print(f"\nCentral-flow SDCP on the CPU MLP ({w0.size} parameters, eta = {ETA}) at the CF state after {WARMUP} "
          f"steps (eta lambda_1 = {eta_lambda:.6f}): in-JAX solve_sdcp (FISTA + eigen-clipping) vs a host L-BFGS-B "
          f"QP (Cholesky X = L L^T), per solve (mean of {SOLVES} calls, median of {REPEATS} rounds); k_c > 1 uses "
          f"eta lambda_2..5 = {SYNTHETIC_ETA_LAMBDA}")
    rows, overhead = measure_solvers(problems)
    print(table(["k_c", "rank X", "|X|_F", "in-JAX us", "callback us", "host bare us", "callback/in-JAX",
                 "L-BFGS-B its", "max|X_jax - X_host|", "compl. jax", "compl. host", "warm compiles"],
                rows))
    print(f"a no-op pure_callback with the same arguments (returns A): {1e6 * overhead:.0f} us per call")
    rows, gap, moved = measure_flow(E, w_eos)
    print(f"\nWhole central-flow step (k = {K_FLOW}, Lanczos {LANCZOS_STEPS_CF} HVPs, 4 substeps), {STEPS} steps from "
          f"the step-{WARMUP} state by simulate (median of {REPEATS_FLOW} warm runs)")
    print(table(["SDCP", "ms/step", "x in-JAX", "extra us/substep", "first call s", "warm compiles"], rows))
    print(f"max |w_in-JAX - w_host| after {STEPS} steps = {gap:.1e} (the flow moved each weight by up to "
          f"{moved:.2g} over them)")


if __name__ == "__main__":
    report()
