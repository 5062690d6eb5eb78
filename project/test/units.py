"""Unit tests of the project's stages — ``prepare()``, ``train()``, ``score()``, ``evaluate()``, the take-down
action, the configuration files and the data store as the stages use it — each with good and bad input.

Real data (the SMS collection), a real MLflow registry (a fresh SQLite store per test or module) and a real data
store folder; the fixtures are in ``project/conftest.py``. The service over HTTP is ``integration.py``'s.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from src import constructors, evaluate, helpers, prepare, score, takedown, train

from aml.mlops import registry
from aml.mlops.datastore import StoreNotFoundError, StorePathError
from aml.project import system
from aml.spam import MODEL_NAME, behaviour, stages
from aml.spam.sms import DataValidationError

# -- configuration ---------------------------------------------------------------------------------------------------


def test_every_config_file_is_valid():
    for stage in helpers.STAGES:
        assert system.make_config(stage, helpers.defaults(stage)) is not None
    assert constructors.defaults()["train"]["dockerfile"].endswith("Dockerfile")


def test_model_store_none_turns_the_joblib_exports_off(monkeypatch, tmp_path):
    monkeypatch.setenv("AML_MODEL_EXPORTS", str(tmp_path / "exports"))
    assert constructors.exports_enabled() and constructors.defaults()["train"]["exports"] == str(tmp_path / "exports")
    monkeypatch.setenv("AML_MODEL_EXPORTS", "none")  # team scale: the registry is the model store
    assert not constructors.exports_enabled() and constructors.defaults()["train"]["exports"] is None


@pytest.mark.parametrize(
    ("stage", "overrides", "message"),
    [
        ("prepare", {"seed": -1}, "seed"),
        ("prepare", {"fractions": [0.5, 0.5, 0.5]}, "sum to 1"),
        ("prepare", {"colour": "red"}, "unknown"),
        ("train", {"model": "no_such_model"}, "unknown model"),
        ("train", {"params": {"no_such_param": 1}}, "params: unknown parameter .no_such_param."),
        ("train", {"min_aucpr": 2}, "min_aucpr"),
        ("evaluate", {"metrics": ["aucpr", "luck"]}, "unknown metrics"),
        ("score", {"takedown": True, "extra": 1}, "unknown"),
    ],
)
def test_bad_configuration_is_refused_with_the_field_named(stage, overrides, message):
    with pytest.raises(system.StageError, match=message):
        constructors.stage_config(stage, overrides)


# -- prepare ---------------------------------------------------------------------------------------------------------


def test_prepare_writes_splits_with_lineage_and_moves_latest(stores):
    store = constructors.data_store()
    result = prepare.prepare()
    run = result["run"]
    assert set(result["outputs"]) == {"processed", "train", "validation", "test", "scoring"}
    assert result["rows"]["processed"] == sum(result["rows"][s] for s in ("train", "validation", "test"))
    assert result["duplicates_removed"] > 0
    for kind in ("processed", "split", "scoring"):
        assert store.latest(kind) == run
    frames = {s: stages.load_data(store.local_path(result["outputs"][s])) for s in ("train", "validation", "test")}
    assert not set(frames["train"].text) & set(frames["test"].text)  # deduplicated before splitting
    lineage = store.read_lineage("split", run)
    raw = lineage["inputs"]["raw"]
    assert raw["sha256"] == store.sha256(raw["path"])
    assert lineage["outputs"]["train"]["sha256"] == store.sha256(result["outputs"]["train"])
    assert lineage["config"]["seed"] == 42 and lineage["code_version"]


def test_prepare_is_reproducible_and_ingests_raw_once(stores):
    store = constructors.data_store()
    first, second = prepare.prepare(), prepare.prepare()
    assert first["run"] != second["run"]
    for name in ("train", "validation", "test"):
        assert store.sha256(first["outputs"][name]) == store.sha256(second["outputs"][name])
    assert len(store.runs("raw")) == 1
    other = prepare.prepare({"seed": 7})
    assert store.sha256(other["outputs"]["train"]) != store.sha256(first["outputs"]["train"])


def test_prepare_refuses_invalid_raw_data_and_keeps_the_previous_latest(stores):
    store = constructors.data_store()
    good = prepare.prepare()
    store.write_bytes("raw/broken/SMSSpamCollection", b"ham\tfine\nthis line has no label column\n")
    with pytest.raises(DataValidationError, match="tab-separated"):
        prepare.prepare({"raw": "raw/broken/SMSSpamCollection"})
    store.write_bytes("raw/eggs/SMSSpamCollection", b"ham\tfine\neggs\tnot a label\n")
    with pytest.raises(DataValidationError):
        prepare.prepare({"raw": "raw/eggs/SMSSpamCollection"})
    assert store.latest("split") == good["run"]
    assert stages.load_data(store.local_path(good["outputs"]["train"])).shape[0] == good["rows"]["train"]


def test_prepare_names_a_missing_raw_file_and_refuses_escapes(stores):
    with pytest.raises(FileNotFoundError, match="raw/nothing/here"):
        prepare.prepare({"raw": "raw/nothing/here"})
    for hostile in ("../outside", "/etc/passwd", "raw/../../x"):
        with pytest.raises(StorePathError):
            prepare.prepare({"raw": hostile})


# -- train -----------------------------------------------------------------------------------------------------------


def test_train_tracks_registers_validates_and_promotes(trained):
    result = trained["train"]
    assert result["model_version"] == "1" and result["promoted"] and result["champion"] == "1"
    gate = result["gate"]
    assert gate["passed"] and set(gate["checks"]) == {"overfit", "min_aucpr"} | {
        f"behaviour:{k}" for k in behaviour.GATE
    }
    assert gate["champion_aucpr"] is None and gate["behaviour"]["bank_size"] >= 60  # no champion yet; the bank ran
    ood = gate["out_of_domain"]  # the out-of-domain figures are reported; with no champion they gate nothing
    assert 0 <= ood["ham_kept"] <= 1 and 0 <= ood["spam_caught"] <= 1 and "ham_lost" not in ood
    samples = gate["samples"]
    assert [s["prediction"] for s in samples] == [1] * system.VALIDATION_SAMPLES + [0] * system.VALIDATION_SAMPLES
    assert result["metrics"]["validation"]["aucpr"] > 0.97
    client = mlflow.MlflowClient()
    run = client.get_run(result["mlflow_run_id"])
    store = constructors.data_store()
    train_split = store.run_path("split", result["split_run"], "train.csv")
    assert run.data.tags["data_version"] == store.sha256(train_split)
    assert run.data.tags["code_version"]
    assert float(run.data.params["threshold"]) == pytest.approx(result["threshold"])
    assert {"Dockerfile", "validation"} <= {a.path for a in client.list_artifacts(result["mlflow_run_id"])}
    logged = mlflow.artifacts.load_dict(f"runs:/{result['mlflow_run_id']}/validation/report.json")
    assert logged["checks"] == json.loads(json.dumps(gate["checks"])) and logged["samples"] == samples
    assert run.data.metrics["gate_behaviour:spam"] == gate["checks"]["behaviour:spam"]["value"]
    assert client.get_model_version(MODEL_NAME, "1").tags["split_run"] == result["split_run"]
    assert registry.champion_version(MODEL_NAME) == "1"
    tags = client.get_model_version(MODEL_NAME, "1").tags
    assert float(tags["threshold"]) == pytest.approx(result["threshold"])
    export = json.loads((trained["root"] / "models" / f"{MODEL_NAME}_1" / "meta.json").read_text())
    assert export["version"] == "1" and export["threshold"] == pytest.approx(result["threshold"])
    report = store.read_json(store.run_path("training", result["run"], "report.json"))
    assert report["model_version"] == "1"


def test_train_without_prepared_data_says_what_to_run_first(stores):
    with pytest.raises(StoreNotFoundError, match="split"):
        train.train()


def test_gate_keeps_the_champion_when_a_worse_model_is_trained(trained):
    result = train.train({"model": "tfidf_naive_bayes", "params": {}})
    assert not result["promoted"] and result["champion"] == "1"
    assert not result["gate"]["checks"]["champion"]["passed"]
    lost = result["gate"]["checks"]["out_of_domain:ham_lost"]  # compared with the champion's out-of-domain ham
    assert lost["value"] == len(result["gate"]["out_of_domain"]["ham_lost"]) and lost["limit"] == 2
    assert result["gate"]["out_of_domain"]["champion_ham_kept"] == trained["train"]["gate"]["out_of_domain"]["ham_kept"]
    assert registry.champion_version(MODEL_NAME) == "1"
    assert mlflow.MlflowClient().get_model_version(MODEL_NAME, result["model_version"]).tags["gate_passed"] == "False"


# -- score and the downstream action ---------------------------------------------------------------------------------


def test_batch_score_writes_predictions_and_the_takedown_list(trained):
    store = constructors.data_store()
    batch = trained["prepared"]["outputs"]["scoring"]
    result = score.score(batch)
    assert result["count"] == trained["prepared"]["rows"]["scoring"] and result["model_version"] == "1"
    predictions = pd.read_csv(store.local_path(result["output"]), dtype={"id": "string"})
    assert list(predictions.columns) == ["id", "propensity", "prediction", "threshold", "model_version"]
    assert predictions.propensity.between(0, 1).all()
    assert (predictions.prediction == (predictions.propensity >= predictions.threshold)).all()
    actions = pd.read_csv(store.local_path(result["actions"]), dtype={"id": "string"})
    assert list(actions.columns) == ["id", "propensity", "threshold", "model_version"]
    assert set(actions.id) == set(predictions.id[predictions.prediction])
    assert result["spam"] == len(actions) > 0
    again = takedown.takedown(result["output"])
    assert again["count"] == len(actions)


def test_the_served_scorer_equals_the_registered_model(trained):
    served = system.load_serving_model(MODEL_NAME)
    assert served.lean and served.version == "1" and not served.served.fallback
    full = registry.load_version(MODEL_NAME, "1")
    test = stages.load_data(constructors.data_store().local_path(trained["prepared"]["outputs"]["test"]))
    np.testing.assert_allclose(served.propensities(test.text), full.predict_proba(list(test.text))[:, 1], atol=1e-9)
    for text in test.text.head(20):
        assert served.score_one(text)[1] == pytest.approx(full.predict_proba([text])[0, 1], abs=1e-9)


def test_batch_score_refuses_bad_input(trained):
    store = constructors.data_store()
    model = system.load_serving_model(MODEL_NAME)
    with pytest.raises(FileNotFoundError, match="scoring/none.csv"):
        score.score("scoring/none.csv", model=model)
    store.write_bytes("scoring/bad/no_text.csv", b"id,message\n1,hello\n")
    with pytest.raises(DataValidationError, match="text"):
        score.score("scoring/bad/no_text.csv", model=model)
    store.write_bytes("scoring/bad/empty.csv", b"id,text\n1,hello\n2,\n3,   \n")
    with pytest.raises(DataValidationError, match="empty text"):
        score.score("scoring/bad/empty.csv", model=model)
    with pytest.raises(StorePathError):
        score.score("../../etc/passwd", model=model)


def test_fallback_to_the_previous_version_when_the_newest_is_broken(stores):
    prepare.prepare()
    fast = {"model": "tfidf_naive_bayes", "params": {}, "min_aucpr": 0.9, "max_gap": 0.1}
    first = train.train(fast)
    assert first["promoted"], first["gate"]
    assert train.train(fast)["champion"] == "2"  # same data, same model: as good as the champion
    registry.corrupt_version(MODEL_NAME, "2")
    served = system.load_serving_model(MODEL_NAME)
    assert served.version == "1" and served.served.fallback
    assert [f["version"] for f in served.served.failures] == ["2"]
    registry.corrupt_version(MODEL_NAME, "1")
    with pytest.raises(registry.NoServableVersionError):
        system.load_serving_model(MODEL_NAME)


def test_no_model_registered_yet(stores):
    with pytest.raises(registry.NoModelError):
        system.load_serving_model(MODEL_NAME)


# -- evaluate --------------------------------------------------------------------------------------------------------


def test_evaluate_scored_labelled_data(trained):
    store = constructors.data_store()
    scored = score.score(trained["prepared"]["outputs"]["test"], {"takedown": False})
    result = evaluate.evaluate(scored["output"])
    metrics = result["metrics"]
    assert metrics["aucpr"] > 0.97 and 0 < metrics["recall"] <= 1 and metrics["precision"] >= 0.85
    assert store.read_json(result["output"])["metrics"]["aucpr"] == pytest.approx(metrics["aucpr"])
    assert store.latest("evaluations") == result["run"]
    lineage = store.read_lineage("evaluations", result["run"])
    assert lineage["inputs"]["scored"]["sha256"] == store.sha256(scored["output"])


def test_evaluate_refuses_unlabelled_or_unscored_data(trained):
    unlabelled = score.score(trained["prepared"]["outputs"]["scoring"], {"takedown": False})
    with pytest.raises(system.StageError, match="labelled"):
        evaluate.evaluate(unlabelled["output"])
    with pytest.raises(system.StageError, match="propensity"):
        evaluate.evaluate(trained["prepared"]["outputs"]["test"])
    with pytest.raises(StoreNotFoundError):
        evaluate.evaluate("predictions/none/predictions.csv")
