"""Fixtures of the unit tests of :mod:`aml.project`: a data store in a temporary folder, small raw collections,
and two served model versions over a prepared store."""

from __future__ import annotations

import pytest

from aml.mlops.datastore import DataStore
from aml.project import prepare, run, serving, takedown
from aml.project.settings import PrepareConfig
from aml.spam import models, stages


@pytest.fixture
def store(tmp_path) -> DataStore:
    return DataStore(tmp_path / "store")


def write_raw(path, n_ham: int = 90, n_spam: int = 30, offset: int = 0):
    """A raw collection (``label<TAB>text``) of distinct, clearly separable messages."""
    lines = [
        f"ham\tsee you at the {place} at {i + offset} o'clock"
        for i, place in zip(range(n_ham), "ab" * n_ham, strict=False)
    ]
    lines += [f"spam\tWIN a £{i + offset}00 cash prize! call 0906{i + offset:05d} now" for i in range(n_spam)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def raw_file():
    """:func:`write_raw`: writes a raw collection of distinct, clearly separable messages."""
    return write_raw


@pytest.fixture
def linear_svm(toy):
    return stages.fit(models.make_model("tfidf_linear_svm"), toy["train"])


@pytest.fixture
def two_versions(store, tmp_path, toy):
    """A prepared store and two served versions: "1" (linear SVM, lean) and "2" (naive Bayes, full model)."""
    from aml.mlops import registry

    prepare.prepare(store, PrepareConfig(source=str(write_raw(tmp_path / "raw", n_ham=300, n_spam=100))))
    _, frames = run.load_split(store)
    served = {}
    for version, name in (("1", "tfidf_linear_svm"), ("2", "tfidf_naive_bayes")):
        model = stages.fit(models.make_model(name), frames["train"])
        served[version] = serving.serving_model(
            model, 0.5, registry.Served("m", version, None, "champion", False, tags={})
        )
    return served


def store_predictions(store: DataStore, text: str, latest: bool = True) -> str:
    """Write ``text`` as a predictions file of a new run (and point ``latest`` at it); returns its path."""
    run = store.new_run("predictions")
    path = store.run_path("predictions", run, takedown.PREDICTIONS_FILE)
    store.write_text(path, text)
    if latest:
        store.set_latest("predictions", run)
    return path


@pytest.fixture
def write_predictions():
    """:func:`store_predictions`."""
    return store_predictions
