"""Batch scoring on Spark (:mod:`aml.project.spark`) with a real local Spark session (``local[2]``) and a real
registered model: the data stage and one training (the default linear SVM) on the first 1,000 messages of the SMS
collection, made champion, in the module's own stores (:func:`aml.devtools.testenv.project_environment`: a data store folder and a
scratch SQLite registry). One Spark session serves the module (it takes about 10 s to start); the first scoring
starts the Python workers and loads the model (about 10 s more).

Checked: the generated table (size, unique ids, texts from the corpus, the same table for the same seed), the
predictions of the lean scorer (schema, every row equal to in-process ``predict_proba`` of the same registered
version within the compile check's 1e-9, prediction = propensity ≥ the version's threshold, lineage, ``latest``),
the pipeline path (``scorer="pipeline"``, and the fallback for a version without a lean scorer) giving the same
table, :func:`aml.project.spark.check_sample`, a remote
(``memory://``) data store, and the refusals: a missing table, a file instead of a table, a table without texts,
empty texts, bad arguments, a second session on another master.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from aml.core import datasets
from aml.devtools import testenv
from aml.mlops import registry, tracking
from aml.mlops.datastore import DataStore, StoreNotFoundError
from aml.project import spark as aml_spark
from aml.project import system
from aml.spam import MODEL_NAME, selection, sms, stages

ROWS = 2000
RAW_LINES = 1000


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Stores with prepared data and one registered version, made champion (the gate, tested elsewhere, may find a
    model of 1,000 messages too weak); a Spark session; a generated table."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        testenv.skip_or_fail("no Java runtime for Spark (apt-get install openjdk-17-jre-headless)")
    root = tmp_path_factory.mktemp("spark")
    raw = root / sms.FILENAME
    lines = (datasets.fetch("sms_spam") / sms.FILENAME).read_bytes().splitlines(keepends=True)
    raw.write_bytes(b"".join(lines[:RAW_LINES]))
    env = testenv.project_environment(root, "unused-token")
    with tracking.using(env["MLFLOW_TRACKING_URI"], "test-spark"):
        store = DataStore(env["AML_DATA_STORE"])
        prepared = system.prepare(store, system.PrepareConfig(source=str(raw)))
        trained = system.train(store, system.TrainConfig())
        registry.promote(MODEL_NAME, trained["model_version"])  # champion whatever the gate said of a small model
        with aml_spark.running() as spark:
            generated = aml_spark.generate_messages(spark, store, rows=ROWS, seed=7)
            yield {"store": store, "spark": spark, "prepared": prepared, "trained": trained, "generated": generated}


@pytest.fixture(scope="module")
def scored(ctx):
    return aml_spark.score_table(ctx["spark"], ctx["store"], ctx["generated"]["output"])


def read_parquet(store: DataStore, path: str) -> pd.DataFrame:
    return pd.read_parquet(store.local_path(path))


def test_generated_table_resamples_the_corpus_with_unique_ids(ctx):
    store, generated = ctx["store"], ctx["generated"]
    assert generated["output"] == f"bulk/{generated['run']}/messages.parquet" and generated["rows"] == ROWS
    assert store.latest("bulk") == generated["run"]
    table = read_parquet(store, generated["output"])
    assert list(table.columns) == ["id", "text", "label", "y"] and len(table) == ROWS
    assert table["id"].is_unique and set(table["id"]) == {f"msg-{i:010d}" for i in range(ROWS)}
    corpus = system.read_frame(store, ctx["prepared"]["outputs"]["processed"])
    assert set(table["text"]) <= set(corpus["text"]) and table["text"].nunique() > 0.5 * len(corpus)
    labels = dict(zip(corpus["text"], corpus["label"], strict=True))
    assert (table["label"] == table["text"].map(labels)).all() and set(table["y"]) == {0, 1}
    lineage = store.read_lineage("bulk", generated["run"])
    assert lineage["inputs"]["corpus"]["sha256"] == store.sha256(ctx["prepared"]["outputs"]["processed"])
    assert lineage["config"]["seed"] == 7 and lineage["spark"]["master"] == "local[2]"


def test_the_same_seed_gives_the_same_table_another_seed_another(ctx):
    spark, store = ctx["spark"], ctx["store"]
    first = read_parquet(store, ctx["generated"]["output"]).sort_values("id", ignore_index=True)
    again = aml_spark.generate_messages(spark, store, rows=ROWS, seed=7, files=3)  # other partitioning, same table
    other = aml_spark.generate_messages(spark, store, rows=ROWS, seed=8)
    pd.testing.assert_frame_equal(read_parquet(store, again["output"]).sort_values("id", ignore_index=True), first)
    assert (read_parquet(store, other["output"]).sort_values("id", ignore_index=True)["text"] != first["text"]).any()


def test_spark_predictions_equal_in_process_scoring_of_the_registered_version(ctx, scored):
    store = ctx["store"]
    version, threshold = ctx["trained"]["model_version"], ctx["trained"]["threshold"]
    assert scored["output"] == f"bulk_predictions/{scored['run']}/predictions.parquet"
    assert scored["count"] == ROWS and scored["model_version"] == version and scored["threshold"] == threshold
    assert scored["scorer"] == "lean"  # the served scorer, broadcast: not the pipeline through spark_udf
    out = read_parquet(store, scored["output"])
    assert list(out.columns) == [*aml_spark.OUTPUT_COLUMNS, "label", "y"]
    schema = ctx["spark"].read.parquet(store.local_path(scored["output"]).as_uri()).schema
    assert [(f.name, f.dataType.simpleString()) for f in schema] == [
        ("id", "string"),
        ("propensity", "double"),
        ("prediction", "boolean"),
        ("threshold", "double"),
        ("model_version", "string"),
        ("label", "string"),
        ("y", "int"),
    ]
    assert (out["threshold"] == threshold).all() and (out["model_version"] == version).all()
    table = read_parquet(store, ctx["generated"]["output"])
    merged = out.merge(table[["id", "text"]], on="id", validate="one_to_one")
    assert len(merged) == ROWS
    full = registry.load_version(MODEL_NAME, version)
    expected = full.predict_proba(merged["text"].tolist())[:, 1]
    assert float(np.abs(merged["propensity"].to_numpy() - expected).max()) <= aml_spark.TOLERANCE
    assert (merged["prediction"] == (expected >= threshold)).all() and scored["spam"] == int(out["prediction"].sum())
    assert store.latest("bulk_predictions") == scored["run"]
    lineage = store.read_lineage("bulk_predictions", scored["run"])
    assert lineage["inputs"]["table"] == {
        "path": ctx["generated"]["output"],
        "sha256": aml_spark.table_sha256(store, ctx["generated"]["output"]),
    }
    assert lineage["model"]["version"] == version and lineage["model"]["uri"] == f"models:/{MODEL_NAME}/{version}"
    assert lineage["model"]["scorer"] == "lean"
    assert lineage["outputs"]["predictions"]["rows"] == ROWS and lineage["spark"]["master"] == "local[2]"
    assert not [p.name for p in store.local_path("bulk_predictions").iterdir() if p.name.startswith(".")]


def test_check_sample_compares_a_random_sample_with_in_process_scoring(ctx, scored):
    checked = aml_spark.check_sample(ctx["spark"], ctx["store"], scored["output"], rows=300, seed=1)
    assert checked["passed"] and checked["predictions_agree"] and checked["max_abs_diff"] <= aml_spark.TOLERANCE
    assert 200 <= checked["rows"] <= 300 and checked["model_version"] == ctx["trained"]["model_version"]
    with pytest.raises(system.StageError, match="not a Spark predictions table"):
        aml_spark.check_sample(ctx["spark"], ctx["store"], ctx["generated"]["output"])


def test_the_pipeline_path_and_the_fallback_give_the_same_predictions(ctx, scored, monkeypatch):
    store, table = ctx["store"], ctx["generated"]["output"]
    lean = read_parquet(store, scored["output"]).sort_values("id", ignore_index=True)
    piped = aml_spark.score_table(ctx["spark"], store, table, scorer="pipeline")
    assert piped["scorer"] == "pipeline" and store.read_lineage("bulk_predictions", piped["run"])["model"][
        "scorer"
    ] == ("pipeline")
    full = read_parquet(store, piped["output"]).sort_values("id", ignore_index=True)
    assert list(full.columns) == list(lean.columns) and (full["id"] == lean["id"]).all()
    assert float(np.abs(full["propensity"] - lean["propensity"]).max()) <= aml_spark.TOLERANCE
    assert (full["prediction"] == lean["prediction"]).all()
    # a version the lean compiler refuses (choose_model gives no scorer): scored by the pipeline, not refused
    chosen = aml_spark.choose_model()
    monkeypatch.setattr(aml_spark, "choose_model", lambda name: dataclasses.replace(chosen, scorer=None))
    fallback = aml_spark.score_table(ctx["spark"], store, table, partitions=2)
    assert fallback["scorer"] == "pipeline" and fallback["count"] == ROWS
    with pytest.raises(system.StageError, match="scorer must be one of"):
        aml_spark.score_table(ctx["spark"], store, table, scorer="onnx")


def test_a_remote_store_is_read_and_written_through_local_copies(ctx, tmp_path):
    store = DataStore(f"memory://aml-spark-test-{tmp_path.name}")
    corpus = "processed/20260101T000000000000Z-abcdef/messages.csv"
    store.write_bytes(corpus, ctx["store"].read_bytes(ctx["prepared"]["outputs"]["processed"]))
    generated = aml_spark.generate_messages(ctx["spark"], store, rows=300, seed=3, source=corpus)
    assert store.latest("bulk") == generated["run"] and store.list(generated["output"])
    result = aml_spark.score_table(ctx["spark"], store, generated["output"], partitions=3)
    assert result["count"] == 300 and store.latest("bulk_predictions") == result["run"]
    assert not [n for n in store.list(result["output"]) if n.startswith(".")]
    assert aml_spark.check_sample(ctx["spark"], store, result["output"], rows=100)["passed"]


def test_a_missing_table_is_refused_before_anything_is_written(ctx):
    store, before = ctx["store"], ctx["store"].runs("bulk_predictions")
    missing = "bulk/20260101T000000000000Z-000000/messages.parquet"
    with pytest.raises(StoreNotFoundError, match=r"no Parquet table at .*bulk/20260101T000000000000Z-000000"):
        aml_spark.score_table(ctx["spark"], store, missing)
    with pytest.raises(system.StageError, match="is a file"):
        aml_spark.score_table(ctx["spark"], store, ctx["prepared"]["outputs"]["processed"])
    with pytest.raises(ValueError, match="colon in store path"):
        aml_spark.score_table(ctx["spark"], store, "s3://elsewhere/messages.parquet")
    assert store.runs("bulk_predictions") == before


def test_tables_without_texts_or_with_empty_texts_are_refused(ctx):
    spark, store = ctx["spark"], ctx["store"]
    no_text = "bulk/20260101T000000000000Z-000001/messages.parquet"
    store.local_path(no_text).mkdir(parents=True)
    pd.DataFrame({"id": ["a"], "body": ["hi"]}).to_parquet(store.local_path(no_text) / "part-0.parquet")
    with pytest.raises(system.StageError, match=r"columns \['text'\] are missing"):
        aml_spark.score_table(spark, store, no_text)
    empty = "bulk/20260101T000000000000Z-000002/messages.parquet"
    store.local_path(empty).mkdir(parents=True)
    pd.DataFrame({"id": ["a", "b", "c"], "text": ["hello", " ", None]}).to_parquet(
        store.local_path(empty) / "part-0.parquet"
    )
    with pytest.raises(sms.DataValidationError, match=r"2 message\(s\) with empty text"):
        aml_spark.score_table(spark, store, empty)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"rows": 0}, "rows"), ({"rows": 10, "seed": -1}, "seed"), ({"rows": True}, "rows"), ({"files": 0}, "files")],
)
def test_generate_refuses_bad_arguments(ctx, arguments, match):
    with pytest.raises(system.StageError, match=match):
        aml_spark.generate_messages(ctx["spark"], ctx["store"], **arguments)


def test_one_session_per_process(ctx):
    assert aml_spark.session() is ctx["spark"]  # the running session, on the same master
    with pytest.raises(ValueError, match="already running"):
        aml_spark.session("local[1]")


def test_the_hyper_parameter_search_on_spark_equals_the_in_process_search(ctx):
    _, splits = system.load_split(ctx["store"])
    space = {"tfidf_logreg": {"C": [30.0, 10.0]}, "tfidf_naive_bayes": {"alpha": [0.05, 0.01]}}
    on_spark = aml_spark.tune_on_spark(ctx["spark"], splits, space, seed=0)
    in_process = selection.tune_benchmarks(splits, space, seed=0)
    assert list(on_spark) == list(in_process)
    for name, table in in_process.items():  # fit_seconds: the wall time of each fit, wherever it ran
        pd.testing.assert_frame_equal(on_spark[name].drop(columns="fit_seconds"), table.drop(columns="fit_seconds"))
        assert on_spark[name].attrs["grid"] == table.attrs["grid"]
        assert stages.best_params(on_spark[name]) == stages.best_params(table)
