import numpy as np
import pytest

from aml import models, modelstore
from aml.datasets import ChecksumError


def test_save_load_roundtrip(tmp_path):
    model = models.tfidf_naive_bayes().fit(["win cash now", "see you later"], [1, 0])
    path = modelstore.save_model(model, "m", {"threshold": np.float64(0.3)}, store=tmp_path)
    assert path == tmp_path / "m" / "model.joblib"
    loaded, meta = modelstore.load_model("m", store=tmp_path)
    assert meta["threshold"] == 0.3 and meta["name"] == "m" and len(meta["sha256"]) == 64
    assert meta["class"].endswith("Pipeline")
    assert np.allclose(loaded.predict_proba(["win"]), model.predict_proba(["win"]))
    assert not list((tmp_path / "m").glob(".model-*"))  # no temporary file left


def test_store_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_MODEL_STORE", str(tmp_path / "store"))
    modelstore.save_model({"a": 1}, "x")
    assert (tmp_path / "store" / "x" / "meta.json").is_file()
    assert modelstore.load_model("x")[0] == {"a": 1}


def test_corrupt_artefact_is_refused(tmp_path):
    modelstore.save_model({"a": 1}, "m", store=tmp_path)
    with open(tmp_path / "m" / "model.joblib", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(ChecksumError, match="refusing"):
        modelstore.load_model("m", store=tmp_path)


def test_missing_model_and_bad_names(tmp_path):
    with pytest.raises(modelstore.ModelNotFoundError, match="no model 'nope'"):
        modelstore.load_model("nope", store=tmp_path)
    modelstore.save_model({"a": 1}, "m", store=tmp_path)
    (tmp_path / "m" / "model.joblib").unlink()
    with pytest.raises(modelstore.ModelNotFoundError, match="missing"):
        modelstore.load_model("m", store=tmp_path)
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="invalid model name"):
            modelstore.model_dir(bad, tmp_path)
