"""The architecture, enforced: data flows one way, models -> processes -> simulate -> measure / predictions.

Reads every module's imports (AST, no execution) and checks that no module imports from a higher layer.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dynamics"

#: lowest first; a module may import from its own layer and the layers below it.
LAYERS = [
    {"errors", "validation", "derivatives", "linalg", "trajectory", "cache"},
    {"models"},
    {"processes"},
    {"kernel", "simulate", "sweeps"},
    {"measure", "predictions"},
]


def _layer(top):
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"dynamics.{top} is in no layer: add it to LAYERS in {__file__}")


def _top(path):
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_tops(path, source=None):
    """Top-level dynamics subpackages/modules imported by the module at ``path`` (or by ``source`` placed there)."""
    tree = ast.parse(path.read_text() if source is None else source)
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for dynamics/x.py, 1 for dynamics/pkg/x.py
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] == "dynamics" and len(parts) > 1:
                    found.add(parts[1])
                continue
            up = node.level - 1  # levels above the module's own package
            if up > depth:
                continue
            rel = list(path.relative_to(PACKAGE).parts[:depth - up]) + (node.module.split(".") if node.module else [])
            if rel:
                found.add(rel[0].removesuffix(".py"))
            else:  # "from .. import x" at the package root
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "dynamics" and len(parts) > 1:
                    found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    own = _layer(_top(path))
    for top in _imported_tops(path):
        assert _layer(top) <= own, (f"{path.relative_to(PACKAGE)} (layer {own}) imports dynamics.{top} "
                                    f"(layer {_layer(top)}): data flows models -> processes -> simulate -> "
                                    "measure/predictions")


def test_the_checker_sees_a_violation():
    """The checker itself: a model importing simulate and measure is found (source placed at a fake path)."""
    assert {"errors", "validation"} <= _imported_tops(PACKAGE / "models" / "linear.py")
    probe = "from ..simulate import simulate\nfrom ..measure import sharpness\nimport dynamics.sweeps\n"
    tops = _imported_tops(PACKAGE / "models" / "probe.py", probe)
    assert tops == {"simulate", "measure", "sweeps"}
    assert all(_layer(top) > _layer("models") for top in tops)
