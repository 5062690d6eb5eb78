import json

import numpy as np
import pytest

from aml.core import modelstore
from aml.spam import models


def test_save_load_roundtrip(tmp_path):
    model = models.tfidf_naive_bayes().fit(["win cash now", "see you later"], [1, 0])
    path = modelstore.save_model(model, tmp_path / "m", {"threshold": np.float64(0.3)})
    assert path == tmp_path / "m" and (path / "model.joblib").is_file()
    loaded, meta = modelstore.load(path)
    assert meta["threshold"] == 0.3 and meta["name"] == "m" and len(meta["sha256"]) == 64
    assert meta["class"].endswith("Pipeline")
    assert np.allclose(loaded.predict_proba(["win"]), model.predict_proba(["win"]))
    assert np.allclose(modelstore.load_model(path).predict_proba(["win"]), model.predict_proba(["win"]))
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.joblib"]  # no temporary file left


def test_store_path_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_MODEL_STORE", str(tmp_path / "store"))
    assert modelstore.store_path("x") == tmp_path / "store" / "x"
    assert modelstore.store_path("x", tmp_path) == tmp_path / "x"
    for bad in ("", "a/b", ".hidden", "a\\b"):
        with pytest.raises(ValueError, match="invalid model name"):
            modelstore.store_path(bad, tmp_path)


def test_corrupt_artefact_is_refused(tmp_path):
    modelstore.save_model({"a": 1}, tmp_path / "m")
    with open(tmp_path / "m" / "model.joblib", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(modelstore.ChecksumError, match="refusing"):
        modelstore.load_model(tmp_path / "m")


def test_missing_artefact(tmp_path):
    with pytest.raises(modelstore.ModelNotFoundError, match="no model artefact in .*nope"):
        modelstore.load_model(tmp_path / "nope")
    modelstore.save_model({"a": 1}, tmp_path / "m")
    (tmp_path / "m" / "model.joblib").unlink()
    with pytest.raises(modelstore.ModelNotFoundError, match="missing"):
        modelstore.load_model(tmp_path / "m")


def test_broken_metadata_names_the_file(tmp_path):
    modelstore.save_model({"a": 1}, tmp_path / "m")
    (tmp_path / "m" / "meta.json").write_text("{not json")
    with pytest.raises(modelstore.MetadataError, match=r"meta\.json is not valid JSON"):
        modelstore.load_metadata(tmp_path / "m")
    (tmp_path / "m" / "meta.json").write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(modelstore.MetadataError, match="no 'sha256'"):
        modelstore.load_model(tmp_path / "m")


def test_failed_save_keeps_the_previous_artefact(tmp_path):
    modelstore.save_model({"a": 1}, tmp_path / "m", {"threshold": 0.4})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        modelstore.save_model(Unpicklable(), tmp_path / "m")
    model, meta = modelstore.load(tmp_path / "m")
    assert model == {"a": 1} and meta["threshold"] == 0.4
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["meta.json", "model.joblib"]
