import pytest

from aml.core import modelstore
from aml.devtools import fixtures
from aml.spam import MODEL_NAME, models


def test_examples_are_obvious():
    assert len(fixtures.SPAM_EXAMPLES) >= 2 and len(fixtures.HAM_EXAMPLES) >= 2
    rule = models.KeywordHeuristic().fit(None)
    assert all(p > 0.5 for p in rule.predict_proba(fixtures.SPAM_EXAMPLES)[:, 1])
    assert all(p < 0.5 for p in rule.predict_proba(fixtures.HAM_EXAMPLES)[:, 1])


def test_ensure_model_loads_what_is_there(tmp_path, monkeypatch):
    model = models.tfidf_naive_bayes().fit(["win cash now", "see you later"], [1, 0])
    modelstore.save_model(model, modelstore.store_path(MODEL_NAME, tmp_path), {"threshold": 0.4})
    from aml.spam import selection

    monkeypatch.setattr(selection, "build_spam_filter", lambda *a, **k: pytest.fail("must not rebuild"))
    loaded, meta = fixtures.ensure_model(store=tmp_path)
    assert meta["threshold"] == 0.4 and loaded.predict(["win cash now"])[0] == 1


def test_ensure_model_never_rebuilds_over_a_broken_artefact(tmp_path):
    model = models.tfidf_naive_bayes().fit(["win cash now", "see you later"], [1, 0])
    path = modelstore.save_model(model, modelstore.store_path(MODEL_NAME, tmp_path), {"threshold": 0.4})
    (path / modelstore.ARTEFACT).write_bytes(b"swapped")
    with pytest.raises(modelstore.ChecksumError):
        fixtures.ensure_model(store=tmp_path)


def test_ensure_model_builds_with_the_selection_code_when_absent(tmp_path, monkeypatch):
    """The build goes through ``build_spam_filter`` (no transformer), into the given store, under a lock file. (The
    real build runs wherever the store is empty: ``assignment3/test.py``'s fixtures on a fresh clone, as in CI.)"""
    from aml.spam import selection

    calls = []

    def fake_build(data_dir, seed=42, store=None, include_transformer=True):
        calls.append((str(data_dir), seed, store, include_transformer))
        model = models.tfidf_naive_bayes().fit(["win cash now", "see you later"], [1, 0])
        modelstore.save_model(model, modelstore.store_path(MODEL_NAME, store), {"threshold": 0.5})

    monkeypatch.setattr(selection, "build_spam_filter", fake_build)
    model, meta = fixtures.ensure_model(store=tmp_path / "store", data_dir=tmp_path / "data", seed=7)
    assert calls == [(str(tmp_path / "data"), 7, tmp_path / "store", False)]
    assert meta["name"] == MODEL_NAME and (tmp_path / "store" / f".{MODEL_NAME}.lock").is_file()
