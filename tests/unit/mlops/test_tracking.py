import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from aml.core.hashing import md5
from aml.mlops import tracking
from aml.spam import models, selection, stages

REGISTERED = "toy-filter"


@pytest.fixture
def store(mlflow_store):
    return mlflow_store


@pytest.fixture
def splits(toy_splits):
    return toy_splits


def track(name, estimator, parts, **kwargs):
    """The spam filter's training stage, tracked (as assignment2/train.ipynb composes it)."""
    train = tracking.tracked(REGISTERED, figures=selection.pr_figures)(stages.train)
    return train(estimator, parts["train"], parts["validation"], name=name, **kwargs)


@dataclass
class Outcome:
    name: str
    model: object
    metrics: dict
    params: dict = field(default_factory=dict)
    input_example: tuple = ("a", "b")


def test_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tracking.store_dir() / 'mlflow.db'}"
    assert tracking.store_dir() == Path(tracking.config.REPO_ROOT) / "mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_flat_metrics():
    flat = tracking.flat_metrics({"validation": {"aucpr": np.float64(0.9), "confusion_matrix": [[1]]}, "n": 3})
    assert flat == {"validation_aucpr": 0.9, "n": 3.0}


def test_new_store_is_migrated_and_never_overwritten(tmp_path):
    uri = tracking.new_store(tmp_path / "a")
    db = tmp_path / "a" / "mlflow.db"
    assert uri == f"sqlite:///{db.resolve()}"
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables
    with pytest.raises(FileExistsError, match="never overwrites"):
        tracking.new_store(tmp_path / "a")
    scratch = tracking.scratch_uri()
    assert scratch.startswith("sqlite:///") and Path(scratch.removeprefix("sqlite:///")).is_file()


def test_configure_creates_artifact_folder_beside_db(store, tmp_path):
    import mlflow

    exp = mlflow.get_experiment_by_name("test")
    assert exp.artifact_location == (tmp_path / "artifacts").resolve().as_uri()
    assert tracking.configure(store, experiment="test") == exp.experiment_id  # idempotent
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == store


def test_configure_uses_an_experiment_another_process_just_created(store, monkeypatch):
    import mlflow

    created = mlflow.create_experiment("raced")
    real, calls = mlflow.get_experiment_by_name, []

    def not_yet_the_first_time(name):  # the other replica created it between our look-up and our create
        calls.append(name)
        return None if len(calls) == 1 else real(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", not_yet_the_first_time)
    assert tracking.configure(store, experiment="raced") == created
    assert calls == ["raced", "raced"]


def test_using_puts_the_environment_back(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/else.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    uri = tracking.new_store(tmp_path)
    with tracking.using(uri, experiment="inside") as experiment_id:
        assert os.environ["MLFLOW_TRACKING_URI"] == uri and mlflow.get_tracking_uri() == uri
        assert os.environ["MLFLOW_EXPERIMENT_ID"] == experiment_id
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////somewhere/else.db"
    assert "MLFLOW_REGISTRY_URI" not in os.environ and "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert mlflow.get_tracking_uri() == "sqlite:////somewhere/else.db"


def test_code_version(tmp_path):
    assert len(tracking.code_version().split("+")[0]) == 40
    assert tracking.code_version(tmp_path) == "unknown"


def test_model_requirements():
    pinned = tracking.model_requirements()
    assert [r.split("==")[0] for r in pinned] == list(tracking.MODEL_PACKAGES)
    assert all(len(r.split("==")[1]) > 0 for r in pinned)
    with pytest.raises(ValueError, match="not installed"):
        tracking.model_requirements(("surely-not-a-package-xyz",))
    with pytest.raises(TypeError, match="tuple"):
        tracking.model_requirements("numpy")


def test_decorated_train_logs_everything(store, splits, tmp_path):
    import mlflow

    out = track("tfidf_naive_bayes", models.tfidf_naive_bayes(), splits, data_dir=tmp_path)
    assert out.version == "1" and out.run_id and out.registered_model == REGISTERED
    run = mlflow.get_run(out.run_id)
    assert run.info.run_name == "tfidf_naive_bayes" and run.info.status == "FINISHED"
    val = out.metrics["validation"]
    assert run.data.metrics["validation_aucpr"] == pytest.approx(val["aucpr"])
    assert run.data.metrics["train_aucpr"] == pytest.approx(out.metrics["train"]["aucpr"])
    assert {"validation_precision", "validation_recall", "validation_threshold"} <= set(run.data.metrics)
    assert run.data.metrics["validation_threshold"] == pytest.approx(out.threshold)
    assert run.data.params["model"] == "tfidf_naive_bayes" and "clf__alpha" in run.data.params
    assert run.data.params["min_precision"] == "0.9"
    assert run.data.tags["data_version"] == md5(tmp_path / "train.csv")
    assert run.data.tags["data_file"] == "train.csv"
    assert len(run.data.tags["code_version"].split("+")[0]) == 40
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(out.run_id)]
    assert "precision_recall.png" in artifacts
    logged = mlflow.models.get_model_info(f"runs:/{out.run_id}/model")
    assert logged.signature is not None and logged.saved_input_example_info is not None
    # a 1-d array of texts in, (ham, spam) probabilities out
    assert logged.signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "object", "shape": (-1,)}
    assert logged.signature.outputs.to_dict()[0]["tensor-spec"] == {"dtype": "float64", "shape": (-1, 2)}
    # the pinned requirements, not MLflow's inference (which would list torch for a TF-IDF model)
    requirements = mlflow.pyfunc.get_model_dependencies(f"runs:/{out.run_id}/model")
    pinned = Path(requirements).read_text().split()
    assert set(tracking.model_requirements()) <= set(pinned) and not any(p.startswith("torch") for p in pinned)
    version = mlflow.MlflowClient().get_model_version(REGISTERED, out.version)
    assert version.run_id == out.run_id and version.tags["model_type"] == "tfidf_naive_bayes"
    # the pyfunc flavour scores with predict_proba, as the signature says
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/{out.version}")
    texts = np.array(splits["test"]["text"].head(4).tolist(), dtype=object)
    assert np.allclose(pyfunc.predict(texts), out.model.predict_proba(texts))


def test_decorator_wraps_any_train_function(store, splits):
    calls = []

    @tracking.tracked(registered_model=None)
    def my_train(name, estimator, parts):
        """My docstring."""
        calls.append(name)
        model = estimator.fit(parts["train"]["text"], parts["train"]["y"])
        return Outcome(name, model, {"aucpr": 0.9}, {"alpha": 1})

    out = my_train("x", models.KeywordHeuristic(), splits)
    assert calls == ["x"] and out.version is None and out.run_id
    assert my_train.__name__ == "my_train" and my_train.__doc__ == "My docstring."
    import mlflow

    run = mlflow.get_run(out.run_id)
    assert "data_version" not in run.data.tags and run.data.params == {"model": "x", "alpha": "1"}
    assert run.data.metrics == {"aucpr": 0.9}


def test_decorator_tags_the_run_before_the_function_runs(store, splits):
    import mlflow

    seen = {}

    @tracking.tracked(registered_model=None, tags={"job_id": "train-20260101T000000Z-0123abcd", "attempt": 2})
    def tagged(name, estimator, parts):
        seen.update(mlflow.get_run(mlflow.active_run().info.run_id).data.tags)  # already on the run
        return Outcome(name, estimator.fit(parts["train"]["text"], parts["train"]["y"]), {"aucpr": 0.9})

    out = tagged("t", models.KeywordHeuristic(), splits)
    assert seen["job_id"] == "train-20260101T000000Z-0123abcd" and seen["attempt"] == "2"
    assert mlflow.get_run(out.run_id).data.tags["job_id"] == "train-20260101T000000Z-0123abcd"


def test_decorator_rejects_a_wrong_return_and_fails_the_run(store, splits):
    import mlflow

    @tracking.tracked(registered_model=None)
    def bad(name, estimator, parts):
        return {"aucpr": 1.0}

    with pytest.raises(TypeError, match="returns an outcome with name, model"):
        bad("bad", None, splits)
    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.status == "FAILED" and mlflow.active_run() is None


def test_registry_champion_readback_and_load(store, splits, tmp_path):
    outs = [
        track(n, m, splits, data_dir=tmp_path)
        for n, m in [
            ("nb", models.tfidf_naive_bayes()),
            ("rule", models.KeywordHeuristic()),
            ("rf", models.tfidf_random_forest(20)),
        ]
    ]
    aucpr = {o.version: o.metrics["validation"]["aucpr"] for o in outs}
    best = tracking.set_champion(aucpr, REGISTERED)
    assert best == max(aucpr, key=aucpr.get)
    table = tracking.registered_aucpr(REGISTERED)
    assert list(table.index) == [1, 2, 3] and table.loc[int(best), "aliases"] == "champion"
    assert table["model_type"].tolist() == ["nb", "rule", "rf"]
    assert table["validation_aucpr"].tolist() == pytest.approx(list(aucpr.values()))
    model = tracking.load_champion(REGISTERED)
    winner = next(o for o in outs if o.version == best)
    x = splits["test"]["text"].tolist()
    assert np.allclose(model.predict_proba(x), winner.model.predict_proba(x))
    # a second round adds versions and moves the alias; nothing breaks
    again = track("nb", models.tfidf_naive_bayes(), splits, data_dir=tmp_path)
    tracking.set_champion({again.version: 1.0}, REGISTERED)
    table = tracking.registered_aucpr(REGISTERED)
    assert table.loc[4, "aliases"] == "champion" and table.loc[int(best), "aliases"] == ""
    assert tracking.registered_aucpr(REGISTERED, versions=["1"]).index.tolist() == [1]


def test_registry_bad_input(store):
    with pytest.raises(ValueError, match="at least one"):
        tracking.set_champion({}, REGISTERED)
    with pytest.raises(LookupError, match="no version of registered model 'nope'"):
        tracking.registered_aucpr("nope")


def test_register_and_latest_versions(store, splits, capfd):
    outs = [track(n, m, splits) for n, m in [("nb", models.tfidf_naive_bayes()), ("rule", models.KeywordHeuristic())]]
    capfd.readouterr()
    served = tracking.register(outs[1].model_uri, "served", model_type="rule")
    assert served == "1"
    printed = capfd.readouterr()
    assert "registered" not in printed.err + printed.out  # a report shows no registration chatter
    tracking.set_champion({served: 1.0}, "served")
    table = tracking.latest_versions([REGISTERED, "served"])
    assert table.loc[REGISTERED, "version"] == 2 and table.loc[REGISTERED, "model_type"] == "rule"
    assert table.loc["served", "aliases"] == "champion" and table.loc["served", "run_id"] == outs[1].run_id
    assert table.loc["served", "validation_aucpr"] == pytest.approx(outs[1].metrics["validation"]["aucpr"])


def test_decorator_logs_cloudpickle_when_asked_and_refuses_unknown_formats(store, splits, caplog):
    import logging

    import mlflow

    @tracking.tracked(registered_model=REGISTERED, serialization_format="cloudpickle")
    def fast(parts):
        model = models.tfidf_naive_bayes().fit(parts["train"]["text"], parts["train"]["y"])
        return Outcome("nb", model, {"aucpr": 0.9})

    with caplog.at_level(logging.WARNING, logger="mlflow.sklearn"):
        out = fast(splits)
    files = {a.path for a in mlflow.artifacts.list_artifacts(f"models:/{REGISTERED}/{out.version}")}
    assert "model.pkl" in files and not any(f.endswith(".skops") for f in files)
    assert not [r for r in caplog.records if "pickle" in r.getMessage()]  # chosen knowingly: no warning per save
    assert logging.getLogger("mlflow.sklearn").level == logging.NOTSET  # and the logger is put back
    loaded = mlflow.sklearn.load_model(f"models:/{REGISTERED}/{out.version}")
    texts = list(splits["validation"]["text"])
    np.testing.assert_array_equal(loaded.predict_proba(texts), out.model.predict_proba(texts))
    with pytest.raises(ValueError, match="serialization_format"):
        tracking.tracked(REGISTERED, serialization_format="pickle")
