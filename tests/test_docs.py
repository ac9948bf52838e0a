"""The mathematics lives in the repository: every `docs/<file>.md section N` cited by the code, the theorems, the
notebooks and the benchmarks exists, and nothing cites a file outside the repository."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("dynamics", "theorems", "tests", "notebooks", "benchmarks")
                 for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".ipynb", ".md")) + [ROOT / "README.md"]
CITATION = re.compile(r"docs/([a-z0-9_-]+\.md)(?: sections? (\d+(?:\.\d+)?))?")
OUTSIDE = re.compile(r"theory/[a-z0-9_-]+\.md|\.\./shared|/work/shared")


def _headings(doc):
    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)[. ]", (ROOT / "docs" / doc).read_text(), re.M))


def _citations():
    for path in SOURCES:
        if path == pathlib.Path(__file__):
            continue
        for doc, section in CITATION.findall(path.read_text()):
            yield path.relative_to(ROOT), doc, section


@pytest.mark.parametrize("path", [p for p in SOURCES if p != pathlib.Path(__file__)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_outside_the_repository(path):
    assert not OUTSIDE.findall(path.read_text()), f"{path.relative_to(ROOT)} cites files outside the repository"


def test_cited_docs_and_sections_exist():
    missing = [(str(path), doc, section) for path, doc, section in _citations()
               if not (ROOT / "docs" / doc).exists() or (section and section not in _headings(doc))]
    assert not missing, f"citations of missing docs or sections: {missing[:20]}"


def test_docs_index_lists_every_doc():
    index = (ROOT / "docs" / "README.md").read_text()
    for doc in (ROOT / "docs").glob("*.md"):
        if doc.name != "README.md":
            assert doc.name in index
