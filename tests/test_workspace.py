"""Workspace rules checked on every test run (nbdev-style): notebooks committed without outputs, each with a Colab
setup cell and a papermill ``parameters`` cell; no dataset copies committed; code passes ruff."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aml.devtools.notebooks import COLAB_CELL

ROOT = Path(__file__).resolve().parents[1]


def tracked(pattern: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).exists()]


NOTEBOOKS = tracked("*.ipynb")


def test_there_are_notebooks():
    assert any(p.parent.name == "assignment1" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stripped_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs: run `make strip`"
    assert "".join(code[0]["source"]) == COLAB_CELL, "the first code cell must be aml.devtools.notebooks.COLAB_CELL"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters` (papermill)"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "AML_BUDGET" not in source.replace("AML_BUDGET=smoke", ""), "read the budget with aml.core.config.budget()"
    assert f'config.enter_notebook_folder("{path.parent.name}")' in source, "Colab: enter the notebook's folder"
    if "matplotlib" in source or "plots." in source:
        assert "%matplotlib inline" in source, "figures must be drawn inline whatever MPLBACKEND says"
    assert "print(" not in "".join(code[0]["source"]) and "logging.basicConfig" not in source


def test_no_dataset_copies_committed():
    files = tracked("*")
    banned = [
        p
        for p in files
        if p.name == "SMSSpamCollection"
        or p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        and "data" in p.parts
        or p.suffix == ".csv"
        and p.stat().st_size > 1_000_000
    ]
    assert not banned, f"dataset files must not be committed: {banned[:5]}"


def test_ruff_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
