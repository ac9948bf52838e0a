"""Every registered theorem at the quick budget: every claim passes or fails as expected, a figure is drawn, the
evidence saves and re-checks to the same verdict; the CLI contract (exit codes, usage errors before running).
`pytest -m full` runs every theorem at the full budget (not in CI)."""

import json

import numpy as np
import pytest

import dynamics as dyn
from theorems import Claim, Theorem, verify
from theorems.evidence import load_evidence
from theorems.harness import expected_failure, judge
from theorems import __main__ as cli
from theorems import registry
from theorems.soudry2018 import gd_residuals, prediction


def _unexpected(verdict):
    return [(c.name, c.measured, c.expected_text(), c.status(verdict.budget)) for c in verdict.claims
            if not c.ok(verdict.budget)]


@pytest.mark.parametrize("theorem_id", list(registry.THEOREMS))
def test_theorem_at_quick_budget(theorem_id, tmp_path, release_after_test):
    theorem = registry.THEOREMS[theorem_id]
    assert theorem.reference and theorem.statement and theorem.hypotheses
    verdict = verify(theorem, "quick", figures_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    assert not _unexpected(verdict), f"{theorem_id}: unexpected results {_unexpected(verdict)}"
    assert (tmp_path / f"{theorem_id}.png").stat().st_size > 10_000
    evidence, meta = load_evidence(tmp_path / "evidence", theorem_id)
    again = judge(theorem, evidence, meta["budget"], meta["wall_seconds"])
    assert [c.as_dict("quick") for c in again.claims] == [c.as_dict("quick") for c in verdict.claims]


@pytest.mark.full
@pytest.mark.parametrize("theorem_id", list(registry.THEOREMS))
def test_theorem_at_full_budget(theorem_id, release_after_test):
    verdict = verify(registry.THEOREMS[theorem_id], "full")
    assert not _unexpected(verdict), f"{theorem_id}: unexpected results at the full budget {_unexpected(verdict)}"


class _Toy(Theorem):
    id = "toy"
    reference = "Nobody 2026"
    statement = "1 + 1 = 2"
    hypotheses = ("arithmetic",)

    def __init__(self, result):
        self.result = result

    def run(self, budget="quick"):
        return {"sum": self.result}

    def check(self, evidence):
        return [Claim("sum", evidence["sum"], 2.0, 1e-12)]

    def figure(self, evidence):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.bar([0], [evidence["sum"]])
        return fig


@pytest.mark.parametrize("result, status", [(2.0, 0), (3.0, 1)])
def test_cli_json_figures_report_and_exit_status(monkeypatch, tmp_path, result, status, capsys):
    monkeypatch.setattr(registry, "THEOREMS", {"toy": _Toy(result)})
    out = tmp_path / "out.json"
    code = cli.main(["verify", "--json", str(out), "--figures", str(tmp_path / "figs"),
                     "--report", str(tmp_path / "report.md")])
    assert code == status
    data = json.loads(out.read_text())
    assert data[0]["id"] == "toy" and data[0]["reference"] == "Nobody 2026"
    assert data[0]["passed"] is (status == 0)
    claim = data[0]["claims"][0]
    assert claim["measured"] == result and claim["role"] == "theorem" and claim["expected_failure"] is None
    assert (tmp_path / "figs" / "toy.png").exists()
    assert "toy" in (tmp_path / "report.md").read_text()
    assert ("FAIL" in capsys.readouterr().out) is (status == 1)


class _Expected(_Toy):
    """A claim expected to fail at the quick budget only."""

    def check(self, evidence):
        return [Claim("sum", evidence["sum"], 2.0, 1e-12, why="exact arithmetic",
                      expected_failure=expected_failure("a known limit", budgets=("quick",)))]


@pytest.mark.parametrize("result, budget, status, code", [(3.0, "quick", "XFAIL", 0), (2.0, "quick", "XPASS", 1),
                                                          (2.0, "full", "PASS", 0), (3.0, "full", "FAIL", 1)])
def test_expected_failures_are_scoped_and_an_unexpected_pass_fails(monkeypatch, result, budget, status, code,
                                                                   capsys):
    monkeypatch.setattr(registry, "THEOREMS", {"toy": _Expected(result)})
    assert cli.main(["verify", "--budget", budget]) == code
    assert status in capsys.readouterr().out


class _Warns(_Toy):
    """A run that raises the same run-time warning twice and another once."""

    def run(self, budget="quick"):
        import warnings

        for _ in range(2):
            warnings.warn("solver did not converge: residual 1e-3", RuntimeWarning)
        warnings.warn("a crowded block", UserWarning)
        return super().run(budget)


def test_run_warnings_are_kept_in_the_verdict_table_and_report(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(registry, "THEOREMS", {"toy": _Warns(2.0)})
    assert cli.main(["verify", "--report", str(tmp_path / "report.md"), "--json", str(tmp_path / "out.json")]) == 0
    expected = ["RuntimeWarning: solver did not converge: residual 1e-3", "UserWarning: a crowded block"]
    assert json.loads((tmp_path / "out.json").read_text())[0]["warnings"] == expected
    out = capsys.readouterr().out
    assert "2 warning(s) during the run" in out and all(w in out for w in expected)
    assert all(f"- {w}" in (tmp_path / "report.md").read_text() for w in expected)


def test_usage_errors_exit_2_before_running(monkeypatch, tmp_path, capsys):
    ran = []

    class Counting(_Toy):
        def run(self, budget="quick"):
            ran.append(budget)
            return super().run(budget)

    monkeypatch.setattr(registry, "THEOREMS", {"toy": Counting(2.0)})
    assert cli.main(["list"]) == 0
    assert "Nobody 2026" in capsys.readouterr().out
    assert cli.main(["verify", "nope"]) == 2
    assert "unknown theorem id" in capsys.readouterr().err
    assert cli.main(["verify", "--json", str(tmp_path / "missing" / "out.json")]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["verify", "--figures", str(blocker / "figs")]) == 2
    assert cli.main(["check", "--evidence", str(tmp_path / "none")]) == 2
    assert not ran


def test_check_reproduces_saved_verdicts(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(registry, "THEOREMS", {"toy": _Toy(3.0)})
    evidence = tmp_path / "evidence"
    assert cli.main(["verify", "--evidence", str(evidence), "--json", str(tmp_path / "run.json")]) == 1
    assert cli.main(["check", "--evidence", str(evidence), "--json", str(tmp_path / "check.json")]) == 1
    run, check = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("run", "check"))
    assert run[0]["claims"] == check[0]["claims"]
    meta = json.loads((evidence / "toy.json").read_text())["metadata"]
    assert meta["budget"] == "quick" and meta["versions"]["numpy"] and meta["wall_seconds"] >= 0


@pytest.mark.parametrize("kind, measured, expected, tol, passed", [
    ("abs", 1.05, 1.0, 0.1, True), ("abs", 1.2, 1.0, 0.1, False), ("rel", 101.0, 100.0, 0.02, True),
    ("max", 1e-9, 1e-8, 0.0, True), ("min", 5.0, 10.0, 0.0, False), ("range", 2.0, (1.95, 2.1), 0.0, True),
    ("abs", float("nan"), 0.0, 1.0, False), ("true", False, True, 0.0, False)])
def test_claim_kinds(kind, measured, expected, tol, passed):
    assert Claim("c", measured, expected, tol, kind).passed is passed


def test_soudry_refuses_non_separable_data():
    X = np.array([[1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(dyn.NonSeparableError, match="not linearly separable"):
        prediction(X, np.array([1.0, -1.0]))


def test_soudry_refuses_step_above_bound():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.ones(2)
    _, asy = prediction(X, y)
    bound = 2.0 / (0.25 * np.linalg.norm(X, 2) ** 2)
    with pytest.raises(dyn.StepSizeError, match="not below the bound"):
        gd_residuals(X, y, "logistic", 1.01 * bound, np.zeros(2), 100, asy)


def test_claims_with_numpy_values_serialize_to_json():
    claim = Claim("numpy", np.float64(1.0), np.float64(1.05), 0.1, note="", kind="abs")
    flag = Claim("flag", np.bool_(True), True, kind="true")
    data = json.loads(json.dumps([claim.as_dict(), flag.as_dict()]))
    assert data[0]["passed"] is True and data[1]["measured"] is True
