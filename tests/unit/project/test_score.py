"""Batch scoring of :mod:`aml.project.score`: the drift report of a batch, monitoring that never fails the
scoring, shadow and A/B experiments."""

from __future__ import annotations

import numpy as np
import pytest

from aml.project import evaluate, run, score, settings
from aml.spam import stages
from aml.spam.sms import DataValidationError


def test_score_batch_stores_the_drift_report_of_the_batch(store, two_versions):
    result = score.score_batch(store, two_versions["1"], store.run_path("split", store.latest("split"), "test.csv"))
    assert result["monitoring"]["drift"] in (True, False) and "error" not in result["monitoring"]
    record = store.read_json(result["monitoring"]["report"])
    assert record["model_version"] == "1" and record["batch_size"] == result["count"]
    assert {s["name"] for s in record["stats"]} >= {"chars:ks", "propensity:psi", "text:domain_auc"}
    assert result["monitoring_seconds"] > 0 and result["experiment"] is None
    off = score.score_batch(
        store,
        two_versions["1"],
        "scoring/" + store.latest("scoring") + "/messages.csv",
        settings.ScoreConfig(monitoring=False),
    )
    assert off["monitoring"] is None and not store.exists(off["output"].replace("predictions.csv", "drift.json"))


def test_a_failing_monitor_never_fails_the_scoring(store, two_versions, monkeypatch):
    from aml.project import monitoring

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(monitoring, "batch_report", broken)
    result = score.score_batch(store, two_versions["1"], "scoring/" + store.latest("scoring") + "/messages.csv")
    assert result["monitoring"] == {"error": "RuntimeError: disk on fire"} and store.exists(result["output"])


def test_shadow_scores_the_challenger_beside_the_champion(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    config = settings.ScoreConfig(challenger="2", mode="shadow")
    result = score.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    df = store.read_csv(result["output"], dtype={"id": "string"})
    texts = stages.prepare_scoring_data(run.read_frame(store, test))["text"]
    assert np.allclose(df["propensity"], two_versions["1"].propensities(texts))  # the champion answers
    assert np.allclose(df["challenger_propensity"], two_versions["2"].propensities(texts))
    assert (df["model_version"].astype(str) == "1").all() and (df["challenger_version"].astype(str) == "2").all()
    assert result["experiment"]["mode"] == "shadow" and 0 <= result["experiment"]["agreement"] <= 1
    lineage = store.read_lineage("predictions", result["run"])
    assert lineage["challenger"]["version"] == "2" and lineage["model"]["version"] == "1"
    evaluation = evaluate.evaluate(store, result["output"], models=two_versions.get)
    experiment = evaluation["monitoring"]["experiment"]
    assert experiment["mode"] == "shadow" and experiment["recommendation"] in ("promote", "keep")
    assert (experiment["champion_version"], experiment["challenger_version"]) == ("1", "2")
    assert store.exists(evaluation["output"].replace("metrics.json", "monitoring.json"))


def test_ab_serves_the_challengers_share_by_id(store, two_versions):
    from aml.mlops import experiments

    test = store.run_path("split", store.latest("split"), "test.csv")
    config = settings.ScoreConfig(challenger="2", mode="ab", share=0.5)
    result = score.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    df = store.read_csv(result["output"], dtype={"id": "string", "model_version": "string"})
    to_challenger = experiments.assign(df["id"], 0.5)
    assert (df["arm"] == np.where(to_challenger, "challenger", "champion")).all()
    assert (df["model_version"] == np.where(to_challenger, "2", "1")).all()
    assert result["experiment"]["challenger_rows"] == int(to_challenger.sum()) > 0
    texts = stages.prepare_scoring_data(run.read_frame(store, test))["text"]
    expected = np.where(to_challenger, two_versions["2"].propensities(texts), two_versions["1"].propensities(texts))
    assert np.allclose(df["propensity"], expected)
    again = score.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    assert store.read_csv(again["output"])["arm"].tolist() == df["arm"].tolist()  # sticky
    evaluation = evaluate.evaluate(store, result["output"], models=two_versions.get)
    champion_rows = df[~to_challenger]
    assert evaluation["metrics"]["confusion_matrix"][0][0] + evaluation["metrics"]["confusion_matrix"][1][1] <= len(
        champion_rows
    )  # the champion arm's metrics
    assert evaluation["monitoring"]["experiment"]["mode"] == "ab"


def test_a_challenger_that_is_the_champion_is_no_experiment(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    config = settings.ScoreConfig(challenger="1")
    result = score.score_batch(store, two_versions["1"], test, config, challenger=two_versions["1"])
    assert result["experiment"] is None
    assert "challenger_propensity" not in store.read_csv(result["output"]).columns


def test_an_empty_batch_is_refused_before_anything_is_written(store, two_versions):
    store.write_text("scoring/empty.csv", "id,text\n")
    before = store.runs("predictions")
    with pytest.raises(DataValidationError, match="scoring/empty.csv holds no messages to score"):
        score.score_batch(store, two_versions["1"], "scoring/empty.csv")
    assert store.runs("predictions") == before
