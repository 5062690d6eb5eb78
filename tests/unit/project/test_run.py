"""One run in the data store (:class:`aml.project.run.StoreRun`): inputs recorded with their SHA-256, atomic writes,
one lineage record per folder with the code version, and ``latest`` moved only by :meth:`publish`."""

from __future__ import annotations

import pandas as pd
import pytest

from aml.project import run
from aml.project.run import StoreRun
from aml.spam.sms import DataValidationError


def test_a_run_records_inputs_writes_lineage_and_publishes_last(store):
    source = store.run_path("raw", store.new_run("raw"), "messages.csv")
    store.write_text(source, "id,text\n1,hello\n")
    first = StoreRun(store, "processed", "scoring")
    assert first.read_csv(source, record="data")["text"].tolist() == ["hello"]
    out = first.write_frame("messages.csv", pd.DataFrame({"id": ["1"], "text": ["hello"]}), kind="scoring")
    assert out["rows"] == 1 and out["path"] == f"scoring/{first.id}/messages.csv"
    first.write_lineage({"outputs": {"messages": out}})
    assert store.latest("scoring") is None  # written, not yet published
    assert first.publish() == first.id and store.latest("processed") == store.latest("scoring") == first.id
    lineage = store.read_lineage("scoring", first.id)
    assert lineage["inputs"]["data"] == {"path": source, "sha256": store.sha256(source)}
    assert lineage["code_version"] and lineage["outputs"]["messages"]["sha256"] == out["sha256"]
    assert store.read_lineage("processed", first.id)["inputs"] == lineage["inputs"]


def test_an_unpublished_run_leaves_latest_alone(store):
    done = StoreRun(store, "actions")
    done.write_json("x.json", {"n": 1})
    done.publish()
    failed = StoreRun(store, "actions")
    failed.write_json("x.json", {"n": 2})  # the stage fails before publish()
    assert store.latest("actions") == done.id != failed.id and repr(failed).startswith("StoreRun(actions/")


def test_reads_say_what_is_wrong(store):
    with pytest.raises(FileNotFoundError, match="not found in the data store"):
        run.read_frame(store, "raw/nothing/SMSSpamCollection")
    path = store.run_path("predictions", store.new_run("predictions"), "p.csv")
    store.write_bytes(path, b"\xff\xfe\x00garbage")
    with pytest.raises(DataValidationError, match="not a readable CSV"):
        run.read_csv(store, path)
    with pytest.raises(ValueError, match="at least one kind"):
        StoreRun(store)


def test_store_summary_lists_every_folder(store):
    summary = run.store_summary(store)
    assert list(summary.index) == [f"{kind}/" for kind in run.KINDS] and summary["runs"].sum() == 0


def test_read_messages_name_the_store_path_not_the_server_folder(store):
    run_id = store.new_run("split")
    bad = store.run_path("split", run_id, "bad.csv")
    store.write_bytes(bad, b"id,text\n1,a, b\n")
    for call, error in (
        (lambda: run.read_frame(store, f"split/{run_id}/missing.csv"), FileNotFoundError),
        (lambda: run.read_frame(store, bad), DataValidationError),
        (lambda: run.read_csv(store, bad), DataValidationError),
    ):
        with pytest.raises(error) as caught:
            call()
        assert f"split/{run_id}/" in str(caught.value) and str(store.root) not in str(caught.value)
