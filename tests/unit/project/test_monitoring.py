"""Monitoring of the served model (:mod:`aml.project.monitoring`) on the real SMS collection with a known answer:
held-out SMS batches do not drift, tweets-like and phishing texts do; a model that got worse raises a performance
alert, one as good does not; slices name their worst; shadow and A/B files get a champion-vs-challenger verdict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aml.mlops.datastore import DataStore
from aml.project import monitoring
from aml.spam import models, sms, stages


@pytest.fixture(scope="module")
def sms_reference():
    raw, _ = sms.load_sms()
    train, validation, test = stages.prepare_train_validation_test_split(raw)
    model = stages.fit(models.tfidf_logreg(), train)
    threshold = 0.5
    reference = monitoring.Reference.build(
        "7", "split-run", threshold, train["text"], validation["y"], stages.predict_propensity(model, validation)
    )
    return {"reference": reference, "model": model, "test": test, "threshold": threshold}


PHISHING = [
    "Royal Mail: your parcel RM{i:06d} is on hold, pay the 1.99 fee at https://parcel-{i}.top/x",
    "Your Coinbase wallet received 0.{i} ETH. Withdraw before Friday: https://wallet-{i}.xyz",
    "ALERT: unusual sign-in to your bank account from Lagos. Verify now https://secure-{i}.app/login",
]


def test_reference_keeps_features_texts_and_validation_scores(sms_reference):
    reference = sms_reference["reference"]
    assert {"chars", "words", "urls", "text"} <= set(reference.features.columns)
    assert reference.validation_y.shape == reference.validation_propensity.shape
    expected = reference.expected(300)
    assert set(expected) == set(monitoring.WATCHED)
    for metric in monitoring.WATCHED:
        assert expected[metric]["low"] <= expected[metric]["mean"] <= expected[metric]["high"]
    assert reference.expected(300) is expected  # cached per size
    with pytest.raises(ValueError, match="must match"):
        monitoring.Reference.build("1", "r", 0.5, ["a"], [0, 1], [0.5])


def test_a_held_out_sms_batch_does_not_drift(sms_reference):
    test, model = sms_reference["test"], sms_reference["model"]
    report = monitoring.batch_report(sms_reference["reference"], test["text"], stages.predict_propensity(model, test))
    assert not report.drift, report.summary()
    names = {s.name for s in report.stats}
    assert {"chars:ks", "chars:psi", "propensity:ks", "text:oov_ratio", "text:domain_auc"} <= names
    assert report.n_current == monitoring.SAMPLE  # a sample of the 836 messages
    as_list = monitoring.batch_report(  # the batch's index and container do not matter
        sms_reference["reference"], test["text"].tolist(), stages.predict_propensity(model, test)
    )
    assert [s.to_dict() for s in as_list.stats] == [s.to_dict() for s in report.stats]


def test_a_phishing_campaign_drifts(sms_reference):
    texts = [PHISHING[i % 3].format(i=i) for i in range(300)]
    propensity = sms_reference["model"].predict_proba(texts)[:, 1]
    report = monitoring.batch_report(sms_reference["reference"], texts, propensity)
    assert report.drift and "text:domain_auc" in report.drifted() and "urls:ks" in report.drifted()
    record = json.loads(json.dumps(monitoring.batch_record(report, sms_reference["reference"], 300)))
    assert record["drift"] and record["model_version"] == "7" and record["batch_size"] == 300
    for stat in record["stats"]:
        assert {"name", "value", "threshold", "drifted"} <= set(stat)


def test_batch_report_refuses_a_mismatch_or_an_empty_batch(sms_reference):
    with pytest.raises(ValueError, match="2 texts but propensities"):
        monitoring.batch_report(sms_reference["reference"], ["a", "b"], [0.5])
    with pytest.raises(ValueError, match="empty batch"):
        monitoring.batch_report(sms_reference["reference"], [], [])


def test_slices_and_the_worst_slice():
    df = pd.DataFrame(
        {
            "text": ["hi", "call 0906 now!!", "x" * 200, "see www.a.com", "£100 WIN", "ok"],
            "y": [0, 1, 0, 1, 1, 0],
            "prediction": [False, True, True, False, True, False],  # wrong on the long one and the link
        }
    )
    masks = monitoring.slices(df["text"])
    assert masks["long (>150 chars)"].tolist() == [False, False, True, False, False, False]
    assert masks["has a link"].tolist() == [False, False, False, True, False, False]
    assert masks["has a currency sign"].tolist() == [False, False, False, False, True, False]
    bias = monitoring.bias_report(df)
    assert bias["worst"] in ("long (>150 chars)", "has a link", "medium (50-150 chars)")
    rows = {r["slice"]: r for r in bias["slices"]}
    assert rows["all"]["accuracy"] == pytest.approx(4 / 6) and rows["long (>150 chars)"]["accuracy"] == 0.0
    assert rows["long (>150 chars)"]["recall"] is None  # no spam in the slice: undefined, not 0
    json.dumps(bias)


def test_a_worse_model_raises_a_performance_alert_and_the_same_one_does_not(sms_reference):
    test, model, reference = sms_reference["test"], sms_reference["model"], sms_reference["reference"]
    propensity = stages.predict_propensity(model, test)
    same = monitoring.performance_report(reference, test["y"], propensity, reference.threshold)
    assert not same["drift"], same["alerts"]
    noisy = np.clip(propensity + np.random.default_rng(0).normal(0, 0.4, propensity.size), 0, 1)
    worse = monitoring.performance_report(reference, test["y"], noisy, reference.threshold)
    assert worse["drift"] and any(a["drifted"] and a["detail"]["side"] == "below" for a in worse["alerts"])


def scored(test, propensity, threshold, version="7"):
    return pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(len(test))],
            "y": test["y"].to_numpy(),
            "propensity": propensity,
            "prediction": propensity >= threshold,
            "threshold": threshold,
            "model_version": version,
        }
    )


def test_evaluation_report_with_a_shadow_and_an_ab_experiment(sms_reference):
    test, model, reference = sms_reference["test"], sms_reference["model"], sms_reference["reference"]
    propensity = stages.predict_propensity(model, test)
    df = scored(test, propensity, 0.5).assign(text=test["text"].to_numpy())
    plain = monitoring.evaluation_report(
        reference, df, history=[{"run": "r1", "aucpr": 0.9, "precision": 1, "recall": 1}]
    )
    assert plain["experiment"] is None and not plain["drift"] and plain["bias"]["worst"]
    assert [h["run"] for h in plain["history"]] == ["r1", "this evaluation"]
    noise = np.random.default_rng(1).random(len(test))
    shadow = df.assign(
        challenger_propensity=noise,
        challenger_prediction=noise >= 0.5,
        challenger_threshold=0.5,
        challenger_version="8",
    )
    verdict = monitoring.evaluation_report(reference, shadow)["experiment"]
    assert verdict["mode"] == "shadow" and verdict["recommendation"] == "keep" and verdict["high"] < 0
    assert (verdict["champion_version"], verdict["challenger_version"]) == ("7", "8")
    arm = np.where(np.arange(len(test)) % 2, "challenger", "champion")
    ab = df.assign(arm=arm, model_version=np.where(arm == "challenger", "8", "7"))
    assert monitoring.evaluation_report(reference, ab)["experiment"]["mode"] == "ab"
    no_reference = monitoring.evaluation_report(None, df.drop(columns="text"))
    assert no_reference["performance"] is None and no_reference["bias"] is None and not no_reference["drift"]


def test_latest_page_and_history_read_the_store(tmp_path, sms_reference):
    store = DataStore(tmp_path / "store")
    assert monitoring.latest(store) == {"batch": None, "evaluation": None, "shadow": None, "drift": False}
    with pytest.raises(FileNotFoundError, match="no batch monitored yet"):
        monitoring.page(store, "batch")
    with pytest.raises(KeyError, match="no monitoring page"):
        monitoring.page(store, "dashboard")
    texts = [PHISHING[i % 3].format(i=i) for i in range(100)]
    report = monitoring.batch_report(sms_reference["reference"], texts, np.full(100, 0.9))
    run = store.new_run("predictions")
    store.write_json(
        store.run_path("predictions", run, monitoring.BATCH_FILE),
        monitoring.batch_record(report, sms_reference["reference"], 100),
    )
    store.set_latest("predictions", run)
    for i, aucpr in enumerate((0.99, 0.97)):
        evaluation = store.new_run("evaluations")
        record = {
            "history": [{"run": "this evaluation", "aucpr": aucpr, "precision": 0.9, "recall": 0.9}],
            "drift": i == 1,
        }
        store.write_json(store.run_path("evaluations", evaluation, monitoring.EVALUATION_FILE), record)
        store.set_latest("evaluations", evaluation)
    state = monitoring.latest(store)
    assert state["drift"] and state["batch"]["run"] == run and state["batch"]["drift"]
    assert [h["aucpr"] for h in monitoring.history(store)] == [0.99, 0.97]
    assert monitoring.history(store)[-1]["run"] == evaluation
    page = monitoring.page(store, "batch")
    assert "DRIFT" in page and page.count("data:image/png") == len(report.samples)


def test_evaluation_page_shows_alerts_slices_and_the_experiment(sms_reference):
    test, model, reference = sms_reference["test"], sms_reference["model"], sms_reference["reference"]
    df = scored(test, stages.predict_propensity(model, test), 0.5).assign(text=test["text"].to_numpy())
    record = json.loads(json.dumps(monitoring.evaluation_report(reference, df)))
    page = monitoring.evaluation_page(record)
    assert "within the validated range" in page and "Bias by slice (worst:" in page
    assert page.count("data:image/png;base64,") == 1 and "no experiment" in page
