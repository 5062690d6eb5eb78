"""Benchmark of batch scoring on Spark (not a test): ``make bench-scale`` or ``python project/scale/spark_bench.py``.

In one run, over fresh stores in a temporary folder (prepare + one training first, as ``project/benchmark.py``):

1. Spark (:mod:`aml.project.spark`) on ``--master`` (default ``local[2]``): start a session, generate ``--rows``
   messages (default 1,000,000: the prepared SMS corpus resampled with a seed) into the data store as Parquet, score
   them with the champion through ``mlflow.pyfunc.spark_udf`` (read, score, write Parquet predictions, count), and
   check a random sample of 2,000 predictions against in-process ``predict_proba`` of the same version;
2. in process, on the 5,160 prepared messages: :meth:`aml.project.system.ServingModel.propensities` with the lean
   scorer and with the full scikit-learn pipeline (messages/s, best of ``--repeats``);
3. the service's batch ``POST /score`` of the same 5,160 messages (gunicorn; one request is served by one worker
   process, so this is one process's rate end to end: read the CSV, score, write predictions and the take-down
   list), through ``project/benchmark.py``'s ``served`` (which also runs wrk for ``--wrk-seconds``; not reported
   here).

The Spark figure is wall time for the whole job on a cold session, Python workers and model load included. Results
are printed as a Markdown table (for ``project/README.md``) and recorded in ``build/metrics.json`` under
``project.spark_benchmark``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # project/: its benchmark module

import benchmark  # noqa: E402  (project/benchmark.py: batch_rate, served)

from aml.core import reporting  # noqa: E402
from aml.devtools import testenv  # noqa: E402
from aml.mlops import registry, tracking  # noqa: E402
from aml.mlops.datastore import DataStore  # noqa: E402
from aml.project import spark as aml_spark  # noqa: E402
from aml.project import system  # noqa: E402
from aml.spam import MODEL_NAME  # noqa: E402

CHECK_ROWS = 2000


def in_process(store: DataStore, processed: str, repeats: int) -> dict:
    """Batch rates of the champion in this process: the lean scorer the service runs, and the full pipeline."""
    texts = system.read_frame(store, processed).text.tolist()
    lean = system.load_serving_model(MODEL_NAME)
    full = system.ServingModel(registry.load_version(MODEL_NAME, lean.version), lean.threshold, lean=False)
    return {
        "messages": len(texts),
        "lean_msg_s": benchmark.batch_rate(lean.propensities, texts, repeats),
        "full_msg_s": benchmark.batch_rate(full.propensities, texts, repeats),
    }


def on_spark(store: DataStore, master: str, rows: int, driver_memory: str) -> dict:
    """Session start, generation of ``rows`` messages, scoring them, and the in-process check of a sample."""
    start = time.perf_counter()
    with aml_spark.running(master, conf={"spark.driver.memory": driver_memory}) as spark:
        started = time.perf_counter() - start
        generated = aml_spark.generate_messages(spark, store, rows=rows, seed=0)
        scored = aml_spark.score_table(spark, store, generated["output"])
        checked = aml_spark.check_sample(spark, store, scored["output"], rows=CHECK_ROWS, seed=0)
        cores = spark.sparkContext.defaultParallelism
    return {
        "master": master,
        "cores": cores,
        "session_start_s": started,
        "generate_s": generated["seconds"],
        "generate_files": generated["files"],
        "rows": scored["count"],
        "spam": scored["spam"],
        "score_s": scored["seconds"],
        "score_msg_s": scored["count"] / scored["seconds"],
        "check": checked,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module's docstring); prints the table, records ``project.spark_benchmark``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default=aml_spark.DEFAULT_MASTER, help="Spark master URL (default %(default)s)")
    parser.add_argument("--rows", type=int, default=aml_spark.DEFAULT_ROWS, help="messages to generate and score")
    parser.add_argument("--repeats", type=int, default=3, help="in-process and service batch repeats (best of)")
    parser.add_argument("--wrk-seconds", type=float, default=1.0, help="wrk duration inside benchmark.served")
    parser.add_argument("--driver-memory", default="2g", help="spark.driver.memory (local masters run in the driver)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aml-spark-bench-") as tmp:
        env = testenv.project_environment(Path(tmp), benchmark.TOKEN)
        store = DataStore(env["AML_DATA_STORE"])
        with tracking.using(env["MLFLOW_TRACKING_URI"], "sms-spam-filter-project"):
            prepared = system.prepare(store)
            trained = system.train(store, system.TrainConfig(params={"C": 1.0}))
            if not trained["promoted"]:  # the benchmark measures scoring, not the gate: the version serves anyway
                registry.promote(MODEL_NAME, trained["model_version"])
            processed = prepared["outputs"]["processed"]
            local = in_process(store, processed, args.repeats)
            remote = benchmark.served({**os.environ, **env}, processed, args.repeats, args.wrk_seconds)
            spark = on_spark(store, args.master, args.rows, args.driver_memory)
    load = os.getloadavg()[0]
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average_before": load_before,
        "load_average_after": load,
        "spark": spark,
        "in_process": local,
        "service_batch_msg_s": remote["batch_msg_s"],
        "service_batch_count": remote["batch_count"],
    }
    check = spark["check"]
    rows = [
        (f"Spark session start ({spark['master']})", f"{spark['session_start_s']:.1f} s"),
        (
            f"generate {spark['rows']:,} messages (Parquet, {spark['generate_files']} files)",
            f"{spark['generate_s']:.1f} s",
        ),
        (
            f"score {spark['rows']:,} messages on Spark `{spark['master']}` (read, `spark_udf`, write, count)",
            f"{spark['score_msg_s']:,.0f} msg/s ({spark['score_s']:.1f} s, {spark['spam']:,} spam)",
        ),
        (
            f"sample of {check['rows']:,} Spark predictions vs in-process `predict_proba`",
            f"max abs difference {check['max_abs_diff']:.1e}, predictions agree: {check['predictions_agree']}",
        ),
        (f"in process, lean scorer, batch of {local['messages']:,}", f"{local['lean_msg_s']:,.0f} msg/s"),
        (f"in process, full pipeline, batch of {local['messages']:,}", f"{local['full_msg_s']:,.0f} msg/s"),
        (
            f"service batch `POST /score` of {remote['batch_count']:,} (one worker process)",
            f"{remote['batch_msg_s']:,.0f} msg/s",
        ),
    ]
    print(f"\n{figures['date']}, {figures['machine']}, load average {load_before:.1f} before, {load:.1f} after\n")
    print("| measurement | result |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    reporting.record_metrics("project", {"spark_benchmark": figures})
    return 0 if check["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
