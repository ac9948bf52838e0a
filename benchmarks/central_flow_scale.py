"""Cost of one central-flow step at 1e3, 1e4 and 1e5 parameters (docs/flows.md section 10.1).

Problem: tanh MLPs (10, h, h, 1) via `dynamics.models.mlp` on N = 64 Gaussian inputs with targets sin(x_1), h = 27,
94, 311 (1.1e3, 1.0e4, 9.9e4 parameters), eta = ETA_LAMBDA / lambda_1(w0) = 1.98 / lambda_1(w0), so the top
eigenvalue is critical (above 1.95/eta, below 2/eta) from the start: the third-derivative products and the SDCP run
every substep. `CentralFlow` with its defaults (k = 3, track 1.5/eta, threshold 1.95/eta, 4 Euler substeps; the
eigensolver chosen by size: warm LOBPCG with 2 guard vectors at all three sizes) run by `simulate` from w0 (its init
analyses w0 from a random block; the steps then warm-start).

Columns: ms per step (the difference of the medians of REPEATS warm runs of 1 and 1 + STEPS steps, over STEPS: one
compilation, the init's cold eigensolve cancels; first call s = trace + compile + run), eigensolver HVPs and
third-derivative products per step (`traj.stats` of the long run over its steps), the state's critical count and
converged flag at the end (`flow.observe`), and ratios of ms/step: against the dense path (`method="dense"`: n HVPs +
an n x n eigh per substep; run where it fits, 1e3) and against the same flow with its SDCP solved on the host by SciPy
L-BFGS-B through `jax.pure_callback` every substep (`benchmarks.central_flow_sdcp.HostSDCPCentralFlow`, the authors'
design; at 1e3 and 1e5). A cvxpy host SDCP (the authors' solver) is timed the same way when cvxpy is installed; it
is not a dependency.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from dynamics import CentralFlow, sharpness, simulate  # noqa: E402
from dynamics.models.mlp import mlp_init, mlp_loss  # noqa: E402

from .central_flow_sdcp import HostSDCPCentralFlow, critical_block  # noqa: E402
from .common import si, table, time_calls  # noqa: E402

WIDTHS = (27, 94, 311)       # (10, h, h, 1) MLPs: 1.1e3, 1.0e4, 9.9e4 parameters
DENSE_UP_TO = 2_000          # the dense path is timed up to this many parameters
SAMPLES = 64
ETA_LAMBDA = 1.98            # eta lambda_1(w0): critical (> 1.95) from the start, below 2
STEPS = 3
REPEATS = 1
HOST_AT = (27, 311)         # widths where the host-QP flow is timed too (its overhead per substep does not grow with n)


def problem(width):
    """(E on flat parameters, w0 flat, eta) for the (10, width, width, 1) tanh MLP."""
    X = jax.random.normal(jax.random.PRNGKey(1), (SAMPLES, 10))
    loss = mlp_loss(X, jnp.sin(X[:, 0]), "tanh")
    flat, unravel = ravel_pytree(mlp_init(jax.random.PRNGKey(0), (10, width, width, 1)))
    E = lambda v: loss(unravel(v))
    return E, flat, ETA_LAMBDA / float(sharpness(E, flat))


def cvxpy_flow():
    """A `CentralFlow` whose SDCP is cvxpy's (min 1/2 <X, B[X]> + <A, X> over PSD X on the critical block, via
    pure_callback), or None when cvxpy is not installed."""
    try:
        import cvxpy as cp
    except ImportError:
        return None

    def host(A, gram, mask):
        c, a, B = critical_block(np.asarray(A), np.asarray(gram), np.asarray(mask))
        X = np.zeros(np.shape(A))
        if c.size:
            m = c.size
            Y = cp.Variable((m, m), PSD=True)
            s, U = np.linalg.eigh(B)
            F = U * np.sqrt(np.maximum(s, 0.0))                   # B = F F^T (a PSD Gram matrix)
            # Y is symmetric, so its column- and row-major vectorizations agree
            cp.Problem(cp.Minimize(0.5 * cp.sum_squares(F.T @ cp.vec(Y)) + cp.sum(cp.multiply(a, Y)))).solve()
            X[np.ix_(c, c)] = Y.value
        return X

    class CvxpyCentralFlow(CentralFlow):
        def _sdcp(self, A, gram, mask):
            return jax.pure_callback(host, jax.ShapeDtypeStruct(A.shape, A.dtype), A, gram, mask)

    return CvxpyCentralFlow


def per_step(flows, w0):
    """{name: (Timing of the short run, Timing of the long run)}, and the long runs' observed diagnostics. A step's
    cost is the difference of the two runs' medians over STEPS steps: both runs save twice (ts = [0, 1] and
    [0, 1 + STEPS]), so they share one compilation and the init's cold solve cancels."""
    runs = {}
    for name, flow in flows.items():
        for length in (1, 1 + STEPS):
            runs[(name, length)] = (lambda f=flow, t=np.array([0.0, length]):
                                    simulate(f, w0, t, observe_state=True, observe=f.observe))
    timings, results = time_calls(runs, REPEATS)
    ms = {name: 1e3 * (timings[(name, 1 + STEPS)].median_s - timings[(name, 1)].median_s) / STEPS for name in flows}
    return ms, timings, {name: results[(name, 1 + STEPS)] for name in flows}


def report():
    rows = []
    cvxpy_class = cvxpy_flow()
    for width in WIDTHS:
        E, w0, eta = problem(width)
        n = w0.size
        flows = {"default": CentralFlow(E, eta)}
        if width in HOST_AT:
            flows["host QP"] = HostSDCPCentralFlow(E, eta)
        if cvxpy_class is not None:
            flows["cvxpy"] = cvxpy_class(E, eta)
        if n <= DENSE_UP_TO:
            flows["dense"] = CentralFlow(E, eta, method="dense")
        ms, timings, results = per_step(flows, w0)
        out, default = results["default"], flows["default"]
        ratio = lambda name: f"{ms[name] / ms['default']:.2f}" if name in ms else "-"
        end = {name: np.asarray(value)[-1] for name, value in out.ys.items()}
        steps = 1 + STEPS
        rows.append([si(n), default.eigensolver(n), f"{ms['default']:.0f}",
                     f"{timings[('default', 1)].first_s:.1f}", f"{out.stats['hvps'] / steps:.0f}",
                     f"{out.stats['third'] / steps:.1f}", int(end["critical"]), bool(end["converged"]),
                     f"{eta * end['eigenvalues'][0]:.4f}", ratio("dense"), ratio("host QP"), ratio("cvxpy")])
    print(f"\nCentral flow per GD step (k = 3, 4 substeps, eta lambda_1(w0) = {ETA_LAMBDA}; ms/step = difference of "
          f"runs of 1 and {1 + STEPS} steps, medians of {REPEATS} warm runs; MLP (10, h, h, 1), N = {SAMPLES})")
    print(table(["n", "eigensolver", "ms/step", "first call s", "HVPs/step", "thirds/step", "critical", "converged",
                 "eta lambda_1 end", "dense / default", "host QP / default", "cvxpy / default"], rows))
    if cvxpy_class is None:
        print("cvxpy is not installed: the cvxpy host SDCP column is skipped (host QP = SciPy L-BFGS-B)")


if __name__ == "__main__":
    report()
