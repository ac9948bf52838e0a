"""Cost per GD step of the continuous models of GD at the edge of stability (docs/flows.md section 0.2), on the
problems of `theorems.eos_comparison`: (A) the D = 3 scalar network (eta = 2.6/phi(w0)) and (B) the 433-parameter
swish MLP (eta = 0.1), over the first STEPS GD steps.

Models: GF (`StableFlow`), IGR (`ModifiedFlow(order=2)`), PF (`PrincipalFlow(variant="real")`, dense: n HVPs + an
n x n eigh per evaluation; on (A) only, over its first PF_STEPS steps, before it leaves the bounded region), central
(`CentralFlow`, Euler substeps: (A) k = 2 dense, (B) k = 1 warm Lanczos), rod (`RodFlow`), edge (`EdgeFlow`).

Columns, per unit of step time (one GD step = one gradient): gradients, HVPs and third-derivative products from
`traj.stats` (the process's declared `StepCost` times its field evaluations; the central flow's eigensolver HVPs are
counted in its state), HVP-equivalents = HVPs + 2 x thirds (a third-derivative product is the JVP of an HVP); for the
Tsit5 flows the field evaluations of `traj.stats` (the solver's formula: 6 per attempted step + 1, FSAL) against a
count taken at run time by a host callback in a thin wrapper flow (`Counted`), which checks the formula (diffrax's
initial step-size selection adds up to 2 evaluations the formula leaves out). Wall time is split into XLA compile
(jax.monitoring) and the rest. Not a test: it prints a table and asserts nothing.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before jax loads LAPACK (see README: eigh on shared cores)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import dynamics as dyn  # noqa: E402
from dynamics.processes.base import AbstractFlow  # noqa: E402
from theorems.eos_comparison import mlp_problem, scalar_problem  # noqa: E402

from .common import table, timed_call  # noqa: E402

STEPS = 1000                    # GD steps of step time per model
PF_STEPS = 30                   # the real PF on (A) leaves the bounded region at k ~ 36
THIRD_AS_HVPS = 2
SETTINGS = {"scalar": dict(central=dict(k=2, method="dense"), tol=dict(rtol=1e-10, atol=1e-12)),
            "mlp": dict(central=dict(k=1, method="lanczos", lanczos_steps=20), tol=dict(rtol=1e-8, atol=1e-10))}


class _Tally:
    evaluations = 0

    @classmethod
    def bump(cls):
        cls.evaluations += 1


class Counted(AbstractFlow):
    """``flow``'s field, each evaluation counted on the host (one callback per evaluation)."""

    flow: AbstractFlow

    @property
    def time_unit(self):
        return self.flow.time_unit

    def step_cost(self, theta):
        return self.flow.step_cost(theta)

    def field(self, t, y):
        jax.debug.callback(_Tally.bump)
        return self.flow.field(t, y)


def _models(E, w0, eta, central):
    """(name, process, y0, save times, time units per GD step, GD steps covered)."""
    half = np.arange(STEPS) + 0.5
    rod, edge = dyn.RodFlow(E, eta), dyn.EdgeFlow(E, eta)
    out = [("GF", dyn.StableFlow(E, eta), w0, np.r_[0.0, half], STEPS),
           ("IGR", dyn.ModifiedFlow(E, eta, 2), w0, eta * np.r_[0.0, half], STEPS)]
    if w0.size <= 10:
        out.append(("PF", dyn.PrincipalFlow(E, eta, variant="real"), w0, eta * np.r_[0.0, np.arange(PF_STEPS) + 0.5],
                    PF_STEPS))
    out += [("central", dyn.CentralFlow(E, eta, **central), w0, np.arange(STEPS + 1.0), STEPS),
            ("rod", rod, rod.initial_state(w0), np.arange(STEPS + 0.0), STEPS - 1),
            ("edge", edge, edge.initial_state(w0), np.arange(STEPS + 0.0), STEPS - 1)]
    return out


def measure(name):
    """One table row per model on problem ``name``."""
    E, w0, eta = {"scalar": scalar_problem, "mlp": mlp_problem}[name]()
    settings = SETTINGS[name]
    rows = []
    for model, process, y0, ts, covered in _models(E, w0, eta, settings["central"]):
        flow = isinstance(process, AbstractFlow)
        _Tally.evaluations = 0
        run = (lambda: dyn.simulate(Counted(process), y0, ts, **settings["tol"])) if flow else \
            (lambda: dyn.simulate(process, y0, ts))
        seconds, _, compile_seconds, traj = timed_call(run)
        jax.effects_barrier()
        stats = traj.stats
        per = lambda key: stats.get(key, 0) / covered
        formula = stats.get("field_evaluations")
        rows.append([name, model, f"{per('gradients'):.3g}", f"{per('hvps'):.3g}", f"{per('third'):.3g}",
                     f"{per('hvps') + THIRD_AS_HVPS * per('third'):.3g}",
                     "-" if formula is None else str(formula), str(_Tally.evaluations) if flow else "-",
                     "-" if formula is None else f"{_Tally.evaluations - formula:+d}",
                     f"{seconds - compile_seconds:.1f}", f"{compile_seconds:.1f}"])
    return rows


def report():
    print(f"\nCost per GD step of the EoS models (benchmarks/eos_cost.py), {STEPS} GD steps (PF: {PF_STEPS}, on (A) "
          "only); traj.stats totals / GD steps covered; evals: traj.stats field evaluations (Tsit5 formula) vs a "
          "run-time count")
    rows = measure("scalar") + measure("mlp")
    print(table(["problem", "model", "grad/step", "HVP/step", "3rd/step", "HVPeq/step", "evals (formula)",
                 "evals (counted)", "counted - formula", "run s", "jit s"], rows))


if __name__ == "__main__":
    report()
