"""What the model stage (:mod:`aml.project.train`) checks before a training job is queued, and what a caller of
``GET /jobs/<id>`` sees of its result (the training itself runs through the API in ``test_api.py``)."""

from __future__ import annotations

import pytest

from aml.mlops.datastore import StoreNotFoundError
from aml.project import prepare, train
from aml.project.settings import PrepareConfig, StageError, TrainConfig


def test_check_inputs_names_the_split_or_says_to_prepare_first(store, tmp_path, raw_file):
    with pytest.raises(StoreNotFoundError, match="no split run .*call POST /prepare first"):
        train.check_inputs(store, TrainConfig())
    prepared = prepare.prepare(store, PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    assert train.check_inputs(store, TrainConfig()) == prepared["run"]
    assert train.check_inputs(store, TrainConfig(split=prepared["run"])) == prepared["run"]
    missing = "20200101T000000000000Z-abcdef"
    with pytest.raises(StageError, match=f"split: the data store has no split run '{missing}'") as caught:
        train.check_inputs(store, TrainConfig(split=missing))
    assert prepared["run"] in str(caught.value) and str(store.root) not in str(caught.value)


def test_check_inputs_refuses_a_transformer_model_where_torch_is_missing(store, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(StageError, match="'minilm_finetuned' fine-tunes a transformer, which needs torch;"):
        train.check_inputs(store, TrainConfig(model="minilm_finetuned"))
    with pytest.raises(StoreNotFoundError):  # a TF-IDF model goes on to the split check
        train.check_inputs(store, TrainConfig(model="tfidf_linear_svm"))


def test_public_result_keeps_figures_and_drops_texts_and_server_paths():
    result = {
        "run": "20260101T000000000000Z-abcdef",
        "model_version": "3",
        "export": "/srv/aml/models/sms-spam-filter_3",
        "mlflow_run_id": "0123abcd",
        "gate": {
            "passed": True,
            "checks": {"overfit": {"passed": True, "value": 0.01, "limit": 0.05}},
            "samples": [{"text": "WIN a prize", "correct": True}, {"text": "see you", "correct": False}],
            "behaviour": {
                "bank_pass_rate": 0.9,
                "bank_failures": [{"category": "promotion", "text": "half price", "propensity": 0.9}],
            },
        },
    }
    public = train.public_result(result)
    assert public["export"] == "sms-spam-filter_3" and public["report"] == f"training/{result['run']}/report.json"
    assert public["gate"]["samples"] == {"count": 2, "correct": 1}
    assert public["gate"]["behaviour"] == {
        "bank_pass_rate": 0.9,
        "bank_failures": {"count": 1, "by_category": {"promotion": 1}},
    }
    assert public["gate"]["checks"] == result["gate"]["checks"] and public["mlflow_run_id"] == "0123abcd"
    assert "WIN a prize" not in str(public) and "half price" not in str(public) and "/srv" not in str(public)
    assert result["gate"]["samples"][0]["text"] == "WIN a prize"  # the stored report is untouched
