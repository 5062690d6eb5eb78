"""Workspace rules checked on every test run (nbdev-style): notebooks committed without outputs, each with a Colab
setup cell and a papermill ``parameters`` cell that papermill can read; no dataset copies committed; code passes ruff.

The parameters-cell convention (every notebook, lectures included): the cell holds ``NAME = literal  # help`` lines
only: no imports, calls or expressions, one ``=`` per line (papermill's reader skips a line with two, so no ``=`` in
the help text either). A value that depends on the environment is ``None`` there and resolved in the next cell, e.g.
``BUDGET = None`` then ``BUDGET = config.budget(BUDGET)``; every value sized by the budget is derived from that variable
(``config.by_budget(full, smoke, BUDGET)``), never re-read from the environment. Then ``papermill --help-notebook``
lists every parameter with its default, and ``-p NAME value`` means the same thing everywhere in the notebook.
"""

import ast
import json
import logging
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


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _python(source: str) -> str:
    """A cell's source without IPython magics and shell lines (``%matplotlib inline``, ``!pip``), for ``ast``."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_parameters_cell_holds_literals_that_papermill_lists(path, caplog):
    """What ``papermill --help-notebook NOTEBOOK`` shows: every parameter, its default, no parse warning."""
    import papermill

    cell = next(c for c in _code_cells(path) if "parameters" in c.get("metadata", {}).get("tags", []))
    defaults = {}
    for node in ast.parse("".join(cell["source"])).body:
        line = ast.unparse(node)
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{path.name}: the parameters cell holds `NAME = literal` lines only, found `{line}`"
        )
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pytest.fail(f"{path.name}: `{line}` is not a literal: set it to None and resolve it in the next cell")
    with caplog.at_level(logging.WARNING, logger="papermill"):
        listed = papermill.inspect_notebook(str(path))
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("papermill")], "papermill: parse warnings"
    assert list(listed) == list(defaults), "papermill lists other parameters than the cell assigns"
    assert {name: ast.literal_eval(p["default"]) for name, p in listed.items()} == defaults


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_budget_sized_values_derive_from_the_budget_parameter(path):
    """``config.by_budget(full, smoke)`` without the notebook's budget re-reads the environment: ``-p BUDGET smoke``
    would then shrink part of the run only."""
    source = "\n".join(_python("".join(c["source"])) for c in _code_cells(path))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "by_budget":
            assert len(node.args) + len(node.keywords) >= 3, (
                f"{path.name}: `{ast.unparse(node)}` must be given the budget: config.by_budget(full, smoke, BUDGET)"
            )


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
