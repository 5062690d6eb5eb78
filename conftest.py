"""Test-session defaults for the whole workspace (also when a grader runs ``pytest --nbmake`` directly).

Set only where the caller has not set them, and inherited by the notebook kernels nbmake starts:
- ``AML_BUDGET=smoke``: notebooks shrink their work through their parameters cell (the real code paths still run);
- ``AML_PROGRESS=text``: plain-text progress bars in the executed notebooks;
- ``AML_BUILD_DIR=build/test``: test artefacts (metrics, model store, MLflow store) never overwrite the ``make run``
  results;
- ``AML_DATA_DIR``: ``../shared/data`` beside the checkout when it exists (CI's offline dataset copies);
- offline switches for Hugging Face, DVC analytics, and a non-interactive matplotlib backend;
- ``OMP_NUM_THREADS`` (and OpenBLAS's, MKL's) under pytest-xdist: the cores divided among the workers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

_defaults = {
    "AML_BUDGET": "smoke",
    "AML_PROGRESS": "text",
    "AML_BUILD_DIR": str(ROOT / "build" / "test"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "MPLBACKEND": "Agg",
}
if (ROOT.parent / "shared" / "data").is_dir():
    _defaults["AML_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
for _key, _value in _defaults.items():
    os.environ.setdefault(_key, _value)
# Parallel workers share the cores (make test: 3 on this 2-core machine, since most tests wait on servers): each gets
# cores / workers BLAS/OpenMP/torch threads (at least one), as do the notebook kernels and servers it starts; a thread
# pool per process sized to every core oversubscribes them as soon as two workers compute at once.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _workers > 1:
    for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_key, str(max(1, (os.cpu_count() or 1) // _workers)))
os.environ.setdefault("AML_MODEL_STORE", str(Path(os.environ["AML_BUILD_DIR"]) / "models"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path(os.environ['AML_BUILD_DIR']) / 'mlflow' / 'mlflow.db'}")


#: a test whose parameter id is ``notebook=<path>`` (``tests/test_notebook_parameters.py``) executes that notebook
_NOTEBOOK_PARAM = re.compile(r"\[notebook=(?P<notebook>[^\[\]]+\.ipynb)\]$")


def _notebook_of(item) -> Path | None:
    """The notebook a test item executes: nbmake's item's file, or the path a notebook-parametrised test names."""
    if str(item.path).endswith(".ipynb"):
        return Path(item.path).resolve()
    match = _NOTEBOOK_PARAM.search(item.nodeid)
    return (ROOT / match["notebook"]).resolve() if match and item.get_closest_marker("notebook") else None


def pytest_collection_modifyitems(config, items):
    """Mark nbmake's items ``notebook``. Each notebook runs once: where nbmake's item of a notebook and a
    notebook-parametrised test of it (the papermill parameter test) are both collected, the test takes the nbmake
    item's place in the order and the nbmake item is deselected (``pytest --nbmake`` on notebooks alone keeps it)."""
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
    replacing = {}
    for item in items:
        notebook = _notebook_of(item)
        if notebook is not None and not str(item.path).endswith(".ipynb"):
            replacing[notebook] = item
    covered = [item for item in items if str(item.path).endswith(".ipynb") and Path(item.path).resolve() in replacing]
    if not covered:
        return
    moved = {id(replacing[Path(item.path).resolve()]) for item in covered}
    kept = [item for item in items if id(item) not in moved]
    items[:] = [replacing[Path(item.path).resolve()] if item in covered else item for item in kept]
    config.hook.pytest_deselected(items=covered)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadfile``, a notebook-parametrised test is scheduled as its notebook's own file would be: one
    group per notebook (not one worker for the whole parametrised module), so the notebooks still run in parallel."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebookScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            match = _NOTEBOOK_PARAM.search(nodeid)
            return match["notebook"] if match else super()._split_scope(nodeid)

    return NotebookScheduling(config, log)


# -- shared fixtures (the one place for them: no test module imports another) ----------------------------------------


def toy_sms_frame(n: int = 60, seed: int = 0):
    """A small, clearly separable ``text``/``y`` frame: ``n`` ham messages and ``n // 3`` spam messages."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ham = [f"see you at {w} tonight" for w in rng.choice(["home", "work", "six", "the pub", "lunch"], n)]
    spam = [f"WIN a {w} prize call 0906{i:05d} now" for i, w in enumerate(rng.choice(["cash", "free", "£500"], n // 3))]
    return pd.DataFrame({"text": ham + spam, "y": [0] * len(ham) + [1] * len(spam)})


@pytest.fixture
def toy_frame():
    """The factory :func:`toy_sms_frame` (call it with ``n`` and ``seed``)."""
    return toy_sms_frame


@pytest.fixture
def toy_splits(tmp_path):
    """Toy train/validation/test frames; train is also written to ``tmp_path/train.csv`` (a data version to hash)."""
    parts = {"train": toy_sms_frame(60, 0), "validation": toy_sms_frame(30, 1), "test": toy_sms_frame(30, 2)}
    parts["train"].to_csv(tmp_path / "train.csv", index=False)
    return parts


@pytest.fixture
def toy(toy_splits):
    """:func:`toy_splits` by its short name (the stage and system tests' frames)."""
    return toy_splits


@pytest.fixture
def naive_bayes(toy):
    """A TF-IDF naive Bayes fitted on the toy train split."""
    from aml.spam import models, stages

    return stages.fit(models.make_model("tfidf_naive_bayes"), toy["train"])


@pytest.fixture
def mlflow_store(tmp_path):
    """An MLflow store of this test's own (a copy of the store migrated once per session), configured with the
    experiment ``test``, then everything put back."""
    from aml.mlops import tracking

    uri = tracking.new_store(tmp_path)
    with tracking.using(uri, experiment="test"):
        yield uri


@pytest.fixture(scope="session")
def built_spam_filter(tmp_path_factory):
    """``(result, folder)``: :func:`aml.spam.selection.build_spam_filter` run once per test session on the real
    collection (``AML_DATA_DIR``), seed 42, without the slow transformer; splits (with their manifest) in
    ``folder/data/seed-42``, the artefact in ``folder/store``."""
    from aml.core import config
    from aml.spam import selection

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set: the selected model is trained on the real collection")
    folder = tmp_path_factory.mktemp("spam_filter")
    result = selection.build_spam_filter(folder / "data", seed=42, store=folder / "store", include_transformer=False)
    return result, folder


@pytest.fixture(scope="session")
def selected_spam_filter(built_spam_filter):
    """``(model, threshold)`` of the spam filter that assignment 1 selects (see ``built_spam_filter``)."""
    result, _ = built_spam_filter
    return result.best_model, result.threshold
