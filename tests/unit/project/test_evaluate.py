"""The reward stage of :mod:`aml.project.evaluate`: metrics at the threshold a file was scored with, labels from
``y`` or ``label``, refusals naming the missing columns, and the evaluation's monitoring."""

from __future__ import annotations

import pytest

from aml.mlops.datastore import StoreNotFoundError
from aml.project import evaluate, score, settings

# -- evaluate --------------------------------------------------------------------------------------------------------

SCORED = """id,y,propensity,prediction,threshold,model_version
1,1,0.9,True,0.5,2
2,1,0.7,True,0.5,2
3,1,0.4,False,0.5,2
4,0,0.6,True,0.5,2
5,0,0.2,False,0.5,2
6,0,0.1,False,0.5,2
"""


def test_evaluate_a_scored_file_at_its_threshold_column(store, write_predictions):
    path = write_predictions(store, SCORED)
    result = evaluate.evaluate(store, path)
    metrics = result["metrics"]
    assert metrics["threshold"] == 0.5  # the column, not the lowest propensity flagged (0.6)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["ham_blocked"] == pytest.approx(1 / 3) and 0 < metrics["aucpr"] <= 1
    assert result["count"] == 6 and store.latest("evaluations") == result["run"]
    saved = store.read_json(result["output"])
    assert saved["metrics"] == metrics and saved["model_versions"] == ["2"] and saved["count"] == 6
    assert store.read_lineage("evaluations", result["run"])["inputs"]["scored"]["sha256"] == store.sha256(path)


def test_evaluate_without_a_threshold_column_or_with_several_thresholds(store, write_predictions):
    no_column = "\n".join(",".join(line.split(",")[:4]) for line in SCORED.strip().splitlines()) + "\n"
    assert evaluate.evaluate(store, write_predictions(store, no_column))["metrics"]["threshold"] == 0.6
    mixed = SCORED.replace("6,0,0.1,False,0.5,2", "6,0,0.1,False,0.3,1")
    assert evaluate.evaluate(store, write_predictions(store, mixed))["metrics"]["threshold"] == 0.6


def test_evaluate_labels_from_the_label_column_and_selected_metrics(store, write_predictions):
    labelled = SCORED.replace("id,y,", "id,label,").replace(",1,0.", ",spam,0.").replace(",0,0.", ",ham,0.")
    result = evaluate.evaluate(store, write_predictions(store, labelled), settings.EvaluateConfig(metrics=("recall",)))
    assert result["metrics"] == {"recall": pytest.approx(2 / 3)}


def test_evaluate_refuses_unlabelled_or_unscored_data(store, write_predictions):
    unlabelled = SCORED.replace("id,y,", "id,z,")
    with pytest.raises(settings.StageError, match=r"labelled.*\['y'\] are missing"):
        evaluate.evaluate(store, write_predictions(store, unlabelled))
    with pytest.raises(settings.StageError, match="propensity"):
        evaluate.evaluate(store, write_predictions(store, "id,y\n1,1\n2,0\n"))
    inconsistent = SCORED.replace("3,1,0.4,False", "3,1,0.4,True")
    with pytest.raises(ValueError, match="propensity >= threshold"):
        evaluate.evaluate(store, write_predictions(store, inconsistent))
    with pytest.raises(StoreNotFoundError):
        evaluate.evaluate(store, "predictions/none/predictions.csv")
    assert store.latest("evaluations") is None


def test_evaluate_monitors_performance_history_and_slices(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    first = evaluate.evaluate(
        store, score.score_batch(store, two_versions["1"], test)["output"], models=two_versions.get
    )
    second = evaluate.evaluate(
        store, score.score_batch(store, two_versions["1"], test)["output"], models=two_versions.get
    )
    monitoring = second["monitoring"]
    assert monitoring["performance"]["metrics"]["aucpr"] == pytest.approx(second["metrics"]["aucpr"])
    assert [h["run"] for h in monitoring["history"]] == [first["run"], "this evaluation"]
    assert monitoring["bias"]["worst"] and monitoring["bias"]["slices"][0]["slice"] == "all"  # texts via lineage
    assert isinstance(monitoring["drift"], bool)
    unknown = evaluate.evaluate(store, score.score_batch(store, two_versions["1"], test)["output"], models=None)
    assert unknown["monitoring"]["performance"] is None and unknown["monitoring"]["bias"]["worst"]
