import json

import numpy as np

from aml.core import reporting


def test_record_merges_and_converts(tmp_path):
    path = tmp_path / "m.json"
    reporting.record_metrics("a1", {"test": {"aucpr": np.float64(0.9)}, "cm": np.array([[1, 2], [3, 4]])}, path)
    reporting.record_metrics("a1", {"test": {"recall": 0.8}}, path)
    reporting.record_metrics("a2", {"n": np.int64(3), "p": tmp_path}, path)
    data = json.loads(path.read_text())
    assert data["a1"]["test"] == {"aucpr": 0.9, "recall": 0.8}
    assert data["a1"]["cm"] == [[1, 2], [3, 4]] and data["a2"] == {"n": 3, "p": str(tmp_path)}
    assert reporting.read_metrics(path) == data
    assert reporting.read_metrics(tmp_path / "absent.json") == {}


def test_default_path_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_METRICS_FILE", str(tmp_path / "x" / "metrics.json"))
    assert reporting.record_metrics("k", {"v": 1}) == tmp_path / "x" / "metrics.json"
    assert reporting.read_metrics() == {"k": {"v": 1}}


def test_flatten_and_table():
    assert reporting.flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}
    table = reporting.summary_table({"assignment1": {"test": {"aucpr": 0.98765}, "best": "svm", "seeds": [0, 1]}})
    lines = table.splitlines()
    assert lines[0].split() == ["assignment", "metric", "value"]
    assert any("test.aucpr" in line and "0.9877" in line for line in lines)
    assert any("[0, 1]" in line for line in lines)
    assert reporting.summary_table({}) == "(no metrics recorded)"
