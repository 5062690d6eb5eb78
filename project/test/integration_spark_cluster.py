"""Batch scoring on a real Spark standalone cluster (:mod:`aml.ops.sparkcluster`): a master and two one-core
workers, separate JVMs on loopback, each stopped by its PID; the job submitted to ``spark://127.0.0.1:<port>``
scores a generated table of 20,000 messages with the served lean scorer (:func:`aml.project.spark.score_table`),
and every prediction equals the lean scorer run in this process and, on a sample, the registered pipeline's
``predict_proba`` within the compile check's 1e-9. The master's own status shows the application holding a core of
each worker. The long measurement (1,000,000 messages, 1 and 2 workers against one process) is ``make
bench-scale``. Without Java the test skips (fails under ``CI=true``)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from aml.core import datasets
from aml.devtools import testenv
from aml.mlops import registry, tracking
from aml.mlops.datastore import DataStore
from aml.ops import sparkcluster
from aml.project import spark as aml_spark
from aml.project import system
from aml.spam import MODEL_NAME, sms

pytestmark = pytest.mark.slow

ROWS = 20_000
RAW_LINES = 1000


def test_a_table_is_scored_on_a_two_worker_standalone_cluster(tmp_path):
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        testenv.skip_or_fail("no Java runtime for Spark (apt-get install openjdk-17-jre-headless)")
    raw = tmp_path / sms.FILENAME
    lines = (datasets.fetch("sms_spam") / sms.FILENAME).read_bytes().splitlines(keepends=True)
    raw.write_bytes(b"".join(lines[:RAW_LINES]))
    env = testenv.project_environment(tmp_path, "unused-token")
    with tracking.using(env["MLFLOW_TRACKING_URI"], "test-spark-cluster"):
        store = DataStore(env["AML_DATA_STORE"])
        system.prepare(store, system.PrepareConfig(source=str(raw)))
        trained = system.train(store, system.TrainConfig())
        registry.promote(MODEL_NAME, trained["model_version"])  # champion whatever the gate said of a small model
        with sparkcluster.standalone(workers=2, cores=1, memory="1g") as cluster:
            daemons = [cluster.master, *cluster.workers]
            assert len({d.pid for d in daemons}) == 3 and all(d.alive() for d in daemons)
            with aml_spark.running(cluster.url, conf=cluster.conf()) as spark:
                assert spark.sparkContext.master == cluster.url
                generated = aml_spark.generate_messages(spark, store, rows=ROWS, seed=11)
                scored = aml_spark.score_table(spark, store, generated["output"])
                workers = cluster.status()["workers"]
                checked = aml_spark.check_sample(spark, store, scored["output"], rows=500, seed=0)
            apps = cluster.status()["completedapps"]
        assert not any(d.alive() for d in daemons)  # every JVM stopped by its PID
        lean = system.load_serving_model(MODEL_NAME)  # the service's scorer, in this process
    assert [w["state"] for w in workers] == ["ALIVE", "ALIVE"]
    assert [w["coresused"] for w in workers] == [1, 1]  # the application holds a core on each worker
    assert [a["name"] for a in apps] == [aml_spark.APP_NAME]
    assert scored["count"] == ROWS and scored["scorer"] == "lean" and scored["master"] == cluster.url
    assert scored["partitions"] >= 2
    assert checked["passed"] and checked["max_abs_diff"] <= aml_spark.TOLERANCE
    out = pd.read_parquet(store.local_path(scored["output"])).merge(
        pd.read_parquet(store.local_path(generated["output"]))[["id", "text"]], on="id", validate="one_to_one"
    )
    assert lean.lean and len(out) == ROWS
    expected = lean.propensities(out["text"].tolist())
    assert float(np.abs(out["propensity"].to_numpy() - expected).max()) <= aml_spark.TOLERANCE
    assert (out["prediction"] == (expected >= lean.threshold)).all()
    assert store.read_lineage("bulk_predictions", scored["run"])["spark"]["master"] == cluster.url
