"""Every registered theorem at the quick budget: all claims pass, a figure is drawn; the CLI contract."""

import json

import numpy as np
import pytest

import dynamics as dyn
from theorems import Claim, Theorem, verify
from theorems import __main__ as cli
from theorems import registry
from theorems.soudry2018 import gd_residuals, prediction


@pytest.mark.parametrize("theorem_id", list(registry.THEOREMS))
def test_theorem_passes_at_quick_budget(theorem_id, tmp_path):
    theorem = registry.THEOREMS[theorem_id]
    assert theorem.reference and theorem.statement and theorem.hypotheses
    verdict = verify(theorem, "quick", figures_dir=tmp_path)
    failed = [(c.name, c.measured, c.expected_text()) for c in verdict.claims if not c.passed and not c.known_failure]
    assert not failed, f"{theorem_id}: failing claims {failed}"
    assert (tmp_path / f"{theorem_id}.png").stat().st_size > 10_000


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
    assert data[0]["claims"][0]["measured"] == result
    assert (tmp_path / "figs" / "toy.png").exists()
    assert "toy" in (tmp_path / "report.md").read_text()
    assert ("FAIL" in capsys.readouterr().out) is (status == 1)


def test_cli_list_and_unknown_id(monkeypatch, capsys):
    monkeypatch.setattr(registry, "THEOREMS", {"toy": _Toy(2.0)})
    assert cli.main(["list"]) == 0
    assert "Nobody 2026" in capsys.readouterr().out
    with pytest.raises(KeyError, match="unknown theorem id"):
        cli.main(["verify", "nope"])


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
