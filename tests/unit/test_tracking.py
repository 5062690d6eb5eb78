import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aml import models, tracking

from .test_evaluation import toy_frame


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory):
    """Migrate one SQLite store once; each test copies it (much faster than migrating anew)."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow-template")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def store(tmp_path, migrated_db):
    import mlflow

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(uri, experiment="test")
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def splits(tmp_path):
    parts = {"train": toy_frame(60, 0), "validation": toy_frame(30, 1), "test": toy_frame(30, 2)}
    parts["train"].to_csv(tmp_path / "train.csv", index=False)
    return parts


def test_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tracking.store_dir() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_configure_creates_artifact_folder_beside_db(store, tmp_path):
    import mlflow

    exp = mlflow.get_experiment_by_name("test")
    assert exp.artifact_location == (tmp_path / "artifacts").resolve().as_uri()
    assert tracking.configure(store, experiment="test") == exp.experiment_id  # idempotent


def test_code_version(tmp_path):
    assert len(tracking.code_version().split("+")[0]) == 40
    assert tracking.code_version(tmp_path) == "unknown"


def test_decorated_train_logs_everything(store, splits, tmp_path):
    import mlflow

    out = tracking.train("tfidf_naive_bayes", models.tfidf_naive_bayes(), splits, data_dir=tmp_path)
    assert out.version == "1" and out.run_id
    run = mlflow.get_run(out.run_id)
    assert list(out.metrics)[0] == "aucpr" and run.data.metrics["aucpr"] == pytest.approx(out.metrics["aucpr"])
    assert {"precision", "recall", "threshold"} <= set(run.data.metrics)
    assert run.data.params["model"] == "tfidf_naive_bayes" and "clf__alpha" in run.data.params
    assert run.data.tags["data_version"] == tracking.md5(tmp_path / "train.csv")
    assert len(run.data.tags["code_version"].split("+")[0]) == 40
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(out.run_id)]
    assert "precision_recall.png" in artifacts
    logged = mlflow.models.get_model_info(f"runs:/{out.run_id}/model")
    assert logged.signature is not None and logged.saved_input_example_info is not None


def test_decorator_wraps_any_train_function(store, splits):
    calls = []

    @tracking.tracked(registered_model=None)
    def my_train(name, estimator, parts):
        calls.append(name)
        model = estimator.fit(parts["train"]["text"], parts["train"]["y"])
        return tracking.TrainOutcome(name, model, 0.5, {"aucpr": 0.9}, {"alpha": 1})

    out = my_train("x", models.tfidf_naive_bayes(), splits)
    assert calls == ["x"] and out.version is None and out.run_id


def test_registry_champion_readback_and_load(store, splits, tmp_path):
    outs = [
        tracking.train(n, m, splits, data_dir=tmp_path)
        for n, m in [
            ("nb", models.tfidf_naive_bayes()),
            ("rule", models.KeywordHeuristic()),
            ("rf", models.tfidf_random_forest(20)),
        ]
    ]
    best = tracking.set_champion({o.version: o.metrics["aucpr"] for o in outs})
    assert best == max(outs, key=lambda o: o.metrics["aucpr"]).version
    table = tracking.registered_aucpr()
    assert list(table.index) == [1, 2, 3] and table.loc[int(best), "aliases"] == "champion"
    assert table["model_type"].tolist() == ["nb", "rule", "rf"]
    model = tracking.load_champion()
    winner = next(o for o in outs if o.version == best)
    x = splits["test"]["text"].tolist()
    assert np.allclose(model.predict_proba(x), winner.model.predict_proba(x))
    # a second round moves the alias; nothing breaks
    again = tracking.train("nb", models.tfidf_naive_bayes(), splits, data_dir=tmp_path)
    tracking.set_champion({again.version: 1.0})
    assert tracking.registered_aucpr().loc[4, "aliases"] == "champion"
    assert tracking.registered_aucpr(versions=["1"]).index.tolist() == [1]


def test_scratch_uri():
    uri = tracking.scratch_uri()
    assert uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).parent.is_dir()
    assert isinstance(pd.DataFrame(), pd.DataFrame)
