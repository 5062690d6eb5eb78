"""The take-down list of :mod:`aml.project.takedown`: only predicted spam, most likely first, ids kept as strings."""

from __future__ import annotations

import pytest

from aml.mlops.datastore import StoreNotFoundError
from aml.project import settings, takedown

# -- take-down list --------------------------------------------------------------------------------------------------

PREDICTIONS = """id,propensity,prediction,threshold,model_version
007,0.2,False,0.5,3
b,0.97,True,0.5,3
c,0.6,True,0.5,3
d,0.49,False,0.5,3
e,0.99,True,0.5,3
"""


def test_takedown_lists_only_predicted_spam_sorted_by_propensity(store, write_predictions):
    path = write_predictions(store, PREDICTIONS)
    result = takedown.takedown(store, path)
    assert result["count"] == 3 and result["output"] == store.run_path("actions", result["run"], takedown.TAKEDOWN_FILE)
    table = store.read_csv(result["output"], dtype={"id": "string"})
    assert list(table.columns) == ["id", "propensity", "threshold", "model_version"]
    assert table.id.tolist() == ["e", "b", "c"] and table.propensity.tolist() == [0.99, 0.97, 0.6]
    assert store.latest("actions") == result["run"]
    lineage = store.read_lineage("actions", result["run"])
    assert lineage["inputs"]["predictions"] == {"path": path, "sha256": store.sha256(path)}
    assert lineage["outputs"]["takedown"]["rows"] == 3


def test_takedown_defaults_to_the_latest_predictions_and_keeps_ids_as_strings(store, write_predictions):
    write_predictions(store, PREDICTIONS)
    newest = write_predictions(store, PREDICTIONS.replace("007,0.2,False", "007,0.8,True"))
    result = takedown.takedown(store)
    lineage = store.read_lineage("actions", result["run"])
    assert lineage["inputs"]["predictions"]["path"] == newest
    table = store.read_csv(result["output"], dtype={"id": "string"})
    assert table.id.tolist() == ["e", "b", "007", "c"]  # "007" stays "007"


def test_takedown_with_no_spam_writes_an_empty_list(store, write_predictions):
    path = write_predictions(store, "id,propensity,prediction,threshold,model_version\n1,0.1,0,0.5,1\n")
    result = takedown.takedown(store, path)
    assert result["count"] == 0
    assert store.read_text(result["output"]).strip() == "id,propensity,threshold,model_version"


def test_takedown_refuses_a_file_that_is_not_predictions(store, write_predictions):
    path = write_predictions(store, "id,propensity\n1,0.5\n")
    with pytest.raises(settings.StageError, match=r"\['prediction', 'threshold', 'model_version'\] are missing"):
        takedown.takedown(store, path)
    assert store.latest("actions") is None


def test_takedown_without_predictions_says_so(store):
    with pytest.raises(StoreNotFoundError, match="no predictions run"):
        takedown.takedown(store)
    with pytest.raises(StoreNotFoundError):
        takedown.takedown(store, "predictions/none/predictions.csv")
