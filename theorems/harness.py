"""Executable theorems: metadata, run(budget) -> evidence, check(evidence) -> claims, figure(evidence).

A verdict is worth something only if it could have come out the other way, so every `Claim` states its role and,
where it has a tolerance, why the tolerance is what it is:

- role "theorem": a quantitative prediction of the paper (or of the mathematics it rests on) measured on a run;
  these decide whether the theorem holds here;
- role "consistency": a check of the instrument itself (a solver residual, two independent algorithms agreeing).

A claim that holds by construction of the code it tests is not a claim (it belongs in a unit test). A claim known
to fail for a stated, understood reason carries `expected_failure(reason, budgets)`: it is reported as XFAIL where
it fails as expected, and as XPASS -- which fails the run -- where it passes unexpectedly, so the reason is
re-examined instead of kept by habit.
"""

import dataclasses
import math
import time
import warnings

import numpy as np

BUDGETS = ("quick", "full")
ROLES = ("theorem", "consistency")
KINDS = ("abs", "rel", "max", "min", "range", "true")


@dataclasses.dataclass(frozen=True)
class ExpectedFailure:
    """Why a claim is expected to fail, and at which budgets (elsewhere it must pass)."""

    reason: str
    budgets: tuple = BUDGETS

    def applies(self, budget):
        return budget in self.budgets


def expected_failure(reason, budgets=BUDGETS):
    """An `ExpectedFailure` with a non-empty reason, scoped to ``budgets`` (a subset of `BUDGETS`)."""
    budgets = (budgets,) if isinstance(budgets, str) else tuple(budgets)
    if not reason or not budgets or any(b not in BUDGETS for b in budgets):
        raise ValueError(f"expected_failure needs a reason and budgets among {BUDGETS}, got {reason!r}, {budgets}")
    return ExpectedFailure(reason, budgets)


@dataclasses.dataclass(frozen=True)
class Claim:
    """One measurable statement. ``passed`` is computed from measured/expected/tolerance by ``kind``:

    "abs": |measured - expected| <= tolerance;  "rel": |measured - expected| <= tolerance |expected|;
    "max": measured <= expected (tolerance unused);  "min": measured >= expected;
    "range": expected[0] <= measured <= expected[1];  "true": bool(measured).
    ``role``: "theorem" or "consistency" (see the module docstring). ``why``: one line justifying the tolerance or
    threshold from the theory or from a measured error of an independent computation. ``expected_failure``: an
    `ExpectedFailure` (the claim's status then depends on the budget, see `status`).
    """

    name: str
    measured: object
    expected: object
    tolerance: float = 0.0
    kind: str = "abs"
    note: str = ""
    role: str = "theorem"
    why: str = ""
    expected_failure: ExpectedFailure = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown claim kind {self.kind!r}; one of {KINDS}")
        if self.role not in ROLES:
            raise ValueError(f"unknown claim role {self.role!r}; one of {ROLES}")

    @property
    def passed(self):
        return bool(self._passed())

    def _passed(self):
        m, e, tol = self.measured, self.expected, self.tolerance
        if self.kind == "true":
            return bool(m)
        if m is None or (isinstance(m, (float, np.floating)) and not math.isfinite(m)):
            return False
        if self.kind == "abs":
            return abs(m - e) <= tol
        if self.kind == "rel":
            return abs(m - e) <= tol * abs(e)
        if self.kind == "max":
            return m <= e
        if self.kind == "min":
            return m >= e
        return e[0] <= m <= e[1]

    def expects_failure(self, budget):
        return self.expected_failure is not None and self.expected_failure.applies(budget)

    def status(self, budget="quick"):
        """PASS, FAIL, XFAIL (failed as expected at this budget) or XPASS (passed where a failure was expected)."""
        if self.expects_failure(budget):
            return "XPASS" if self.passed else "XFAIL"
        return "PASS" if self.passed else "FAIL"

    def ok(self, budget="quick"):
        return self.status(budget) in ("PASS", "XFAIL")

    def expected_text(self):
        e, tol = self.expected, self.tolerance
        if self.kind == "range":
            return f"in [{_fmt(e[0])}, {_fmt(e[1])}]"
        return {"abs": f"{_fmt(e)} ± {_fmt(tol)}", "rel": f"{_fmt(e)} ± {tol:.0e} rel",
                "max": f"<= {_fmt(e)}", "min": f">= {_fmt(e)}", "true": "true"}[self.kind]

    def as_dict(self, budget="quick"):
        ef = self.expected_failure
        return {"name": self.name, "measured": _jsonable(self.measured), "expected": _jsonable(self.expected),
                "tolerance": self.tolerance, "kind": self.kind, "role": self.role, "why": self.why,
                "passed": self.passed, "status": self.status(budget), "note": self.note,
                "expected_failure": None if ef is None else {"reason": ef.reason, "budgets": list(ef.budgets)}}


def _fmt(x):
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, float)):
        return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
    return str(x)


def _jsonable(x):
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, str) or x is None:
        return x
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


class Theorem:
    """Base class. Subclasses set the metadata and implement run, check and figure.

    id: short identifier ("soudry2018"); reference: authors, title, venue, year; statement: one
    paragraph; hypotheses: list of assumptions the experiment must satisfy (checked in run); seed: the
    PRNG seed of its data and runs (recorded with saved evidence). ``check`` must work on evidence saved
    and loaded back (`theorems.evidence`): NumPy arrays, numbers, strings, lists, tuples and dicts.
    """

    id = ""
    reference = ""
    statement = ""
    hypotheses = ()
    seed = None

    def run(self, budget="quick"):
        raise NotImplementedError

    def check(self, evidence):
        raise NotImplementedError

    def figure(self, evidence):
        raise NotImplementedError


@dataclasses.dataclass
class Verdict:
    id: str
    reference: str
    claims: list
    seconds: float
    figure: str = None
    budget: str = "quick"
    warnings: tuple = ()   # "Category: message" of each distinct warning raised while the theorem ran

    @property
    def passed(self):
        """Every claim passes, or fails as expected at this budget (no FAIL, no XPASS)."""
        return all(c.ok(self.budget) for c in self.claims)

    def counts(self):
        statuses = [c.status(self.budget) for c in self.claims]
        return {s: statuses.count(s) for s in ("PASS", "FAIL", "XFAIL", "XPASS")}

    def as_dict(self):
        return {"id": self.id, "reference": self.reference, "budget": self.budget, "passed": self.passed,
                "seconds": self.seconds, "figure": self.figure, "warnings": list(self.warnings),
                "claims": [c.as_dict(self.budget) for c in self.claims]}


def draw(theorem, evidence, figures_dir):
    """Save the theorem's figure as figures_dir/<id>.png; returns the path."""
    import os

    import matplotlib.pyplot as plt

    os.makedirs(figures_dir, exist_ok=True)
    fig = theorem.figure(evidence)
    path = os.path.join(figures_dir, f"{theorem.id}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def judge(theorem, evidence, budget, seconds, figures_dir=None, run_warnings=()):
    """The `Verdict` of ``theorem`` on ``evidence`` (check, and draw when figures_dir is given); ``run_warnings``
    are the warnings its run raised, kept with the verdict."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    claims = list(theorem.check(evidence))
    path = None if figures_dir is None else draw(theorem, evidence, figures_dir)
    return Verdict(id=theorem.id, reference=theorem.reference, claims=claims, seconds=seconds, figure=path,
                   budget=budget, warnings=tuple(run_warnings))


def run_recording_warnings(theorem, budget):
    """(evidence, warnings): ``theorem.run(budget)`` with the warnings it raises (the library's run-time warnings:
    an unconverged eigensolver, a crowded central-flow block, ...) recorded as distinct "Category: message"
    strings, in order, instead of printed: they belong to the theorem's verdict and report."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evidence = theorem.run(budget)
    return evidence, tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))


def verify(theorem, budget="quick", figures_dir=None, evidence_dir=None):
    """Run, check and (optionally) draw one theorem and save its evidence; returns its `Verdict`."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    start = time.perf_counter()
    evidence, run_warnings = run_recording_warnings(theorem, budget)
    seconds = time.perf_counter() - start
    if evidence_dir is not None:
        from .evidence import save_evidence

        save_evidence(evidence_dir, theorem, evidence, budget, seconds)
    return judge(theorem, evidence, budget, seconds, figures_dir, run_warnings)
