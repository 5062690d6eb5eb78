"""Every notebook run through papermill with a non-default value of its main parameter, and the effect checked.

Why: a parameter that a notebook ignores runs green and reports the default's figures (``-p SEED 7`` once trained on
the seed-42 splits it found on disk). So each row of :data:`ROWS` names a notebook, the parameters papermill injects
and a check of what they changed in the executed copy or in the metrics the run recorded (its own metrics file).

One run per notebook in ``make test``: these runs *are* the notebooks' test there. They use the kernel and the cells
that nbmake would, on the smoke budget, and a budget that a notebook takes as a parameter is given as ``BUDGET``
(``"smoke"``) while ``AML_BUDGET`` says ``full``, so a value still read from the environment shows. When nbmake's
item of a notebook and its row here are collected in the same session, the root ``conftest.py`` deselects the nbmake
item and puts this test in its place (same position, same xdist ``loadfile`` group as the notebook): running each
notebook twice would not fit the 15-minute budget. ``pytest --nbmake assignment1/`` alone (a grader) still runs
nbmake's items; without ``--nbmake`` (``make test-fast``) these tests are skipped like the notebooks.

Adding a notebook is adding a row: the notebook, ``{parameter: non-default value}``, a check taking the :class:`Run`.
Papermill must know every injected parameter (a warning such as "Passed unknown parameter" fails the test), and
every figure a cell draws must be in the executed copy (:func:`aml.devtools.notebooks.missing_figures`).
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aml.core import config
from aml.core.hashing import md5
from aml.devtools import notebooks

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """What a check gets: the executed copy, its outputs as text, the metrics the run recorded, when it started."""

    executed: Path
    text: str
    metrics: dict
    started: float


@dataclass(frozen=True)
class Row:
    """A notebook, the non-default parameters papermill injects, and the check of their effect."""

    notebook: str  # path from the repository root
    parameters: dict = field(default_factory=dict)
    check: Callable[[Run], None] = lambda run: None


@functools.cache
def seed42_manifest() -> dict:
    """The manifest of the default (seed 42) split of the real collection, made here: what a seed-7 run must differ
    from."""
    from aml.spam import stages

    with tempfile.TemporaryDirectory(prefix="aml-seed42-") as tmp:
        stages.prepare(tmp, seed=42)
        manifest = json.loads((Path(tmp) / "splits.json").read_text())
        manifest["train_md5"] = md5(Path(tmp) / "train.csv")
    return manifest


def check_assignment1_prepare(run: Run) -> None:
    from aml.spam import stages

    manifest = stages.split_manifest(ROOT / "assignment1" / "data", 7)  # seed 7, files unchanged since written
    assert (stages.split_dir(ROOT / "assignment1" / "data", 7) / "splits.json").stat().st_mtime >= run.started - 1
    assert manifest["files"]["train.csv"] != seed42_manifest()["files"]["train.csv"]
    assert manifest["rows"] == seed42_manifest()["rows"]  # stratified: the same sizes whatever the seed
    assert "manifest" in run.text and "seed 7" in run.text


def check_assignment1_train(run: Run) -> None:
    result = run.metrics["assignment1"]
    assert result["split"]["seed"] == 7
    assert result["split"]["files"]["train.csv"] != seed42_manifest()["files"]["train.csv"]
    assert result["budget"] == "smoke" and result["seed_study"]["seeds"] == [0, 1]  # smoke by the parameter alone
    assert "minilm_embedding_logreg" not in result["test_by_model"]  # the transformer is left out on smoke
    assert set(result["out_of_domain"]) == set(result["test_by_model"])  # every benchmark on the out-of-domain set
    assert result["out_of_domain"][result["best_model"]]["messages"] >= 150
    assert "budget smoke; splits of seed 7" in run.text


def check_assignment2_prepare(run: Run) -> None:
    versions = run.metrics["assignment2"]["data_versions"]
    assert versions["v1"]["seed"] == 42 and versions["v2"]["seed"] == 11
    assert versions["v2"]["train_md5"] != versions["v1"]["train_md5"]
    assert versions["v1"]["train_md5"] == seed42_manifest()["train_md5"]  # v1 is the default split, byte for byte
    assert "version 2 (seed 11)" in run.text


def check_assignment2_train(run: Run) -> None:
    result = run.metrics["assignment2"]
    assert result["split_seed"] == 7
    assert result["train_data_version"] == md5(ROOT / "assignment2" / "data" / "seed-7" / "train.csv")
    assert result["train_data_version"] != seed42_manifest()["train_md5"]


def check_assignment5_image(run: Run) -> None:
    result = run.metrics["assignment5"]["image"]
    assert result["seed"] == 7 and result["budget"] == "smoke" and result["image_size"] == 128
    assert set(result["epochs_run"].values()) == {1}


def check_assignment5_text(run: Run) -> None:
    result = run.metrics["assignment5"]["text"]
    assert result["seed"] == 7 and result["budget"] == "smoke"
    assert result["train_tweets"] == 2000 and result["epochs_run"] == 1


def check_project_system(run: Run) -> None:
    from aml.mlops.datastore import DataStore

    store = DataStore(config.build_dir() / "project-walkthrough" / "data")
    models = [store.read_lineage("training", r)["config"]["model"] for r in store.runs("training")]
    assert models and set(models) == {"tfidf_logreg"}, models  # /train fitted the model the parameter names


def lecture_check(name: str, seeds_key: str = "seed", seeds=7) -> Callable[[Run], None]:
    """A lecture's check: it ran on the smoke budget by the parameter alone and recorded the injected seed(s)."""

    def check(run: Run) -> None:
        result = run.metrics["lectures"][name]
        assert result["budget"] == "smoke" and result[seeds_key] == seeds, {
            k: result.get(k) for k in ("budget", seeds_key)
        }

    check.__name__ = f"check_lectures_{name}"
    return check


#: one row per notebook: its main parameter at a non-default value (and the budget as a parameter where it has one)
ROWS = [
    Row("project/system.ipynb", {"MODEL": "tfidf_logreg"}, check_project_system),
    Row("assignment5/image_transfer_learning.ipynb", {"SEED": 7, "BUDGET": "smoke"}, check_assignment5_image),
    Row("assignment5/text_transfer_learning.ipynb", {"SEED": 7, "BUDGET": "smoke"}, check_assignment5_text),
    Row("assignment1/prepare.ipynb", {"SEED": 7}, check_assignment1_prepare),
    Row("assignment1/train.ipynb", {"SEED": 7, "BUDGET": "smoke"}, check_assignment1_train),
    Row("assignment2/prepare.ipynb", {"SEED_V2": 11}, check_assignment2_prepare),
    Row("assignment2/train.ipynb", {"SEED": 7}, check_assignment2_train),
    *(
        Row(f"lectures/{name}.ipynb", {"SEED": 7, "BUDGET": "smoke"}, lecture_check(name))
        for name in ("neural_network_basics", "architectures", "stable_diffusion_building_blocks", "language_models")
    ),
    Row(
        "lectures/transfer_learning_principles.ipynb",
        {"SEEDS": [7], "BUDGET": "smoke"},
        lecture_check("transfer_learning_principles", "seeds", [7]),
    ),
]


def _outputs_text(executed: Path) -> str:
    cells = json.loads(executed.read_text())["cells"]
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.notebook
@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"notebook={row.notebook}")
def test_notebook_with_a_non_default_parameter(row, tmp_path, monkeypatch, caplog, request):
    if not request.config.getoption("nbmake", default=False):
        pytest.skip("executes a notebook: run with --nbmake (make test)")
    monkeypatch.setenv(config.METRICS_FILE_ENV, str(tmp_path / "metrics.json"))  # this run's figures only
    if "BUDGET" in row.parameters:
        monkeypatch.setenv(config.BUDGET_ENV, "full")  # the parameter alone must make the run smoke
    started = time.time()
    with caplog.at_level(logging.WARNING, logger="papermill"):
        executed = notebooks.execute(
            ROOT / row.notebook,
            config.build_dir() / "notebooks",
            row.parameters,
            root=ROOT,
            timeout=request.config.getoption("nbmake_timeout", default=None),
        )
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("papermill")]
    assert not warnings, f"papermill: {warnings}"
    assert notebooks.missing_figures(executed) == [], "cells that draw a figure hold no image"
    metrics = json.loads((tmp_path / "metrics.json").read_text()) if (tmp_path / "metrics.json").is_file() else {}
    row.check(Run(executed=executed, text=_outputs_text(executed), metrics=metrics, started=started))


def test_every_notebook_has_a_row():
    """A new notebook gets a row (or an entry here saying why not)."""
    without_row = {str(p.relative_to(ROOT)) for p in notebooks.discover(ROOT)} - {row.notebook for row in ROWS}
    assert not without_row, f"add a row to ROWS for {sorted(without_row)}"


def _collected(*args: str) -> list[str]:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if "ipynb" in line and "::" in line]


def test_each_notebook_runs_once_where_its_row_is_collected():
    """With its row in the session, a notebook's nbmake item is deselected and the row takes its place; nbmake alone
    (a grader) keeps it."""
    row = "tests/test_notebook_parameters.py::test_notebook_with_a_non_default_parameter[notebook=assignment1/train.ipynb]"
    both = _collected("--nbmake", "assignment1/train.ipynb", "tests/test_notebook_parameters.py")
    assert row in both and not [line for line in both if line.startswith("assignment1/train.ipynb")], both
    alone = _collected("--nbmake", "assignment1/train.ipynb")
    assert len(alone) == 1 and alone[0].startswith("assignment1/train.ipynb::"), alone
