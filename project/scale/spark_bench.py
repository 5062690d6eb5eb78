"""Benchmark of batch scoring on Spark against one process (not a test): ``make bench-scale`` or
``python project/scale/spark_bench.py``.

In one run, over fresh stores in a temporary folder (prepare + one training first, as ``project/benchmark.py``):

1. generate ``--rows`` messages (default 1,000,000: the prepared SMS corpus resampled with a seed) into the data
   store as Parquet (Spark ``local[2]``);
2. **one process, one core**: read that table with pyarrow, score it with the served lean scorer
   (:meth:`aml.project.system.ServingModel.propensities`), write the predictions as Parquet; the scoring thread is
   pinned to one core (``sched_setaffinity``);
3. **Spark** (:func:`aml.project.spark.score_table`: read, score with the broadcast lean scorer per Arrow batch,
   write, count) on ``local[1]``, ``local[2]``, and a standalone cluster (:mod:`aml.ops.sparkcluster`: a master and
   separate worker JVMs on loopback) with 1 and with 2 one-core workers; each run's every prediction is compared
   with the single process's (largest absolute difference), and a sample of 2,000 with the registered pipeline's
   ``predict_proba`` (:func:`aml.project.spark.check_sample`, the compile check's rule: 1e-9);
4. the hyper-parameter search of assignment 1 (``--search full``: :data:`aml.spam.selection.SEARCH_SPACE`;
   ``smoke``: its smoke budget) in process and on the 2-worker cluster (:func:`aml.project.spark.tune_on_spark`),
   wall time of both and whether the tables are equal (``fit_seconds`` aside).

Spark's figures are the wall time of the scoring job on a started session (its executors registered; the Python
workers and the broadcast scorer not yet: they start in the job). Where the time goes comes from Spark's own event log
(``spark.eventLog.enabled``): per run, the tasks' summed run time, JVM CPU time, deserialisation and GC time, and
the slowest task, against the job's wall time and cores. Results are printed as Markdown tables and recorded in
``build/metrics.json`` under ``project.spark_benchmark``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # project/: its benchmark module

import benchmark  # noqa: E402  (project/benchmark.py: TOKEN)

from aml.core import reporting  # noqa: E402
from aml.devtools import testenv  # noqa: E402
from aml.mlops import registry, tracking  # noqa: E402
from aml.mlops.datastore import DataStore  # noqa: E402
from aml.ops import sparkcluster  # noqa: E402
from aml.project import spark as aml_spark  # noqa: E402
from aml.project import system  # noqa: E402
from aml.spam import MODEL_NAME, selection, stages  # noqa: E402

CHECK_ROWS = 2000
#: (label, master or cluster workers): the Spark runs, in order
RUNS = (("local[1]", "local[1]"), ("local[2]", "local[2]"), ("standalone, 1 worker", 1), ("standalone, 2 workers", 2))


@contextlib.contextmanager
def one_core():
    """Pin the calling thread to one core for the block (the first it may run on), then restore."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def single_process(store: DataStore, table: str, out: Path) -> tuple[dict, pd.DataFrame]:
    """Read the table, score it with the lean scorer on one core, write the predictions: messages/s and the
    propensities by id (the reference of every Spark run)."""
    import pyarrow.parquet as pq

    model = system.load_serving_model(MODEL_NAME)
    with one_core():
        start = time.perf_counter()
        frame = pq.read_table(store.local_path(table), columns=[stages.ID, stages.TEXT]).to_pandas()
        read = time.perf_counter() - start
        propensity = model.propensities(frame[stages.TEXT].tolist())
        scored = time.perf_counter() - start - read
        result = pd.DataFrame({stages.ID: frame[stages.ID], stages.PROPENSITY: propensity})
        result[stages.PREDICTION] = propensity >= model.threshold
        result.to_parquet(out, index=False)
        seconds = time.perf_counter() - start
    figures = {"rows": len(frame), "seconds": seconds, "read_s": read, "score_s": scored, "msg_s": len(frame) / seconds}
    return figures, result[[stages.ID, stages.PROPENSITY]]


def event_summary(folder: Path) -> dict:
    """Spark's own timings from its event log (the newest application in ``folder``): tasks, their summed run
    time, JVM CPU time, deserialisation and GC time, the slowest task, per the last job's stages."""
    logs = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
    if not logs:
        return {}
    tasks, run_ms, cpu_ns, deser_ms, gc_ms, slowest = 0, 0, 0, 0, 0, 0
    executors = set()
    with open(logs[-1]) as fh:
        for line in fh:
            event = json.loads(line)
            if event.get("Event") != "SparkListenerTaskEnd":
                continue
            metrics = event.get("Task Metrics") or {}
            tasks += 1
            run_ms += metrics.get("Executor Run Time", 0)
            cpu_ns += metrics.get("Executor CPU Time", 0)
            deser_ms += metrics.get("Executor Deserialize Time", 0)
            gc_ms += metrics.get("JVM GC Time", 0)
            slowest = max(slowest, metrics.get("Executor Run Time", 0))
            executors.add((event.get("Task Info") or {}).get("Executor ID"))
    return {
        "tasks": tasks,
        "executors": len(executors),
        "task_run_s": run_ms / 1000,
        "jvm_cpu_s": cpu_ns / 1e9,
        "deserialize_s": deser_ms / 1000,
        "gc_s": gc_ms / 1000,
        "slowest_task_s": slowest / 1000,
    }


def wait_for_executors(spark, executors: int, timeout: float = 300.0) -> float:
    """Seconds until ``executors`` executors (besides the driver) have registered: a cluster's executor JVMs start
    after the session does, and the timing should not include their boot."""
    start = time.perf_counter()
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()  # driver + executors (no public Python API)
    while status.size() < executors + 1:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"only {status.size() - 1} of {executors} executors registered in {timeout:g} s")
        time.sleep(0.2)
        status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    return time.perf_counter() - start


def spark_run(
    store: DataStore, table: str, reference: pd.DataFrame, master: str, conf: dict, logs: Path, executors: int = 0
) -> dict:
    """Score ``table`` on ``master`` (a started session, its ``executors`` registered), compare every prediction
    with ``reference``, check a sample against the registered pipeline, summarise the event log."""
    logs.mkdir(parents=True, exist_ok=True)
    conf = {
        **conf,
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": logs.as_uri(),
        "spark.eventLog.rolling.enabled": "false",  # Spark 4's default: a folder of rolled files
        "spark.eventLog.compress": "false",  # Spark 4's default: zstd; plain JSON lines to read back
    }
    start = time.perf_counter()
    with aml_spark.running(master, conf=conf) as spark:
        wait_for_executors(spark, executors)
        started = time.perf_counter() - start
        scored = aml_spark.score_table(spark, store, table)
        checked = aml_spark.check_sample(spark, store, scored["output"], rows=CHECK_ROWS, seed=0)
        cores = spark.sparkContext.defaultParallelism
    got = pd.read_parquet(store.local_path(scored["output"]), columns=[stages.ID, stages.PROPENSITY])
    merged = got.merge(reference, on=stages.ID, suffixes=("", "_single"), validate="one_to_one")
    assert len(merged) == len(reference) == scored["count"], (len(merged), len(reference), scored["count"])
    diff = float(np.abs(merged[stages.PROPENSITY] - merged[f"{stages.PROPENSITY}_single"]).max())
    return {
        "master": master,
        "cores": executors or cores,  # a cluster's default parallelism is at least 2 whatever its cores
        "session_start_s": started,
        "rows": scored["count"],
        "partitions": scored["partitions"],
        "scorer": scored["scorer"],
        "score_s": scored["seconds"],
        "msg_s": scored["count"] / scored["seconds"],
        "max_abs_diff_vs_single": diff,
        "check": checked,
        "events": event_summary(logs),
    }


def search(splits: dict, budget: str, cluster_conf: dict, master: str) -> dict:
    """The hyper-parameter search in process and on ``master``: wall times and whether the tables are equal."""
    space = selection.search_space(budget)
    start = time.perf_counter()
    local = selection.tune_benchmarks(splits, space, seed=0)
    in_process = time.perf_counter() - start
    with aml_spark.running(master, conf=cluster_conf) as spark:
        start = time.perf_counter()
        remote = aml_spark.tune_on_spark(spark, splits, space, seed=0)
        on_spark = time.perf_counter() - start
    equal = list(remote) == list(local) and all(
        remote[name].drop(columns="fit_seconds").equals(table.drop(columns="fit_seconds"))
        for name, table in local.items()
    )
    candidates = sum(len(table) for table in local.values())
    return {"budget": budget, "candidates": candidates, "in_process_s": in_process, "spark_s": on_spark, "equal": equal}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module's docstring); prints the tables, records ``project.spark_benchmark``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=aml_spark.DEFAULT_ROWS, help="messages to generate and score")
    parser.add_argument("--driver-memory", default="2g", help="spark.driver.memory (local masters run in the driver)")
    parser.add_argument("--worker-memory", default="1g", help="memory of each standalone worker")
    parser.add_argument("--search", choices=("full", "smoke", "none"), default="full", help="search budget")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    runs: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="aml-spark-bench-") as tmp:
        env = testenv.project_environment(Path(tmp), benchmark.TOKEN)
        store = DataStore(env["AML_DATA_STORE"])
        with tracking.using(env["MLFLOW_TRACKING_URI"], "sms-spam-filter-project"):
            prepared = system.prepare(store)
            trained = system.train(store, system.TrainConfig(params={"C": 1.0}))
            if not trained["promoted"]:  # the benchmark measures scoring, not the gate: the version serves anyway
                registry.promote(MODEL_NAME, trained["model_version"])
            driver = {"spark.driver.memory": args.driver_memory}
            with aml_spark.running("local[2]", conf=driver) as spark:
                generated = aml_spark.generate_messages(spark, store, rows=args.rows, seed=0)
            table = generated["output"]
            single, reference = single_process(store, table, Path(tmp) / "single.parquet")
            print(f"single process: {single['msg_s']:,.0f} msg/s", flush=True)
            searched = None
            for label, where in RUNS:
                logs = Path(tmp) / "events" / label.replace(" ", "_").replace(",", "")
                if isinstance(where, str):
                    runs.append((label, spark_run(store, table, reference, where, driver, logs)))
                else:
                    with sparkcluster.standalone(workers=where, cores=1, memory=args.worker_memory) as cluster:
                        conf = {**driver, **cluster.conf()}
                        runs.append((label, spark_run(store, table, reference, cluster.url, conf, logs, where)))
                        if where == 2 and args.search != "none":
                            _, splits = system.load_split(store, prepared["run"])
                            searched = search(splits, args.search, conf, cluster.url)
                print(f"{label}: {runs[-1][1]['msg_s']:,.0f} msg/s", flush=True)
    load = os.getloadavg()[0]
    figures = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average_before": load_before,
        "load_average_after": load,
        "rows": args.rows,
        "generate_s": generated["seconds"],
        "single_process": single,
        "spark": dict(runs),
        "search": searched,
    }
    reporting.record_metrics("project", {"spark_benchmark": figures})  # first: the figures are kept whatever follows
    by = dict(runs)
    print(f"\n{figures['date']}, {figures['machine']}, load average {load_before:.1f} before, {load:.1f} after")
    print(f"{args.rows:,} messages (generated in {generated['seconds']:.1f} s)\n")
    print("| run | cores | msg/s | × single process | largest difference from the single process |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| one process, lean scorer | 1 | {single['msg_s']:,.0f} | 1.00 | (reference) |")
    for label, run in runs:
        print(
            f"| Spark {label} | {run['cores']} | {run['msg_s']:,.0f} | {run['msg_s'] / single['msg_s']:.2f} | "
            f"{run['max_abs_diff_vs_single']:.1e} |"
        )
    two, one = by["standalone, 2 workers"], by["standalone, 1 worker"]
    print(
        f"\n2 workers / single process: {two['msg_s'] / single['msg_s']:.2f} (aim ≥ 1.5); "
        f"2 workers / 1 worker: {two['msg_s'] / one['msg_s']:.2f} (aim ≥ 1.7)"
    )
    print("\nSpark's event log (scoring job, check and count included):\n")
    print("| run | wall s | tasks | executors | task run s (sum) | JVM CPU s | deserialise s | GC s | slowest task s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, run in runs:
        e = run["events"]
        print(
            f"| {label} | {run['score_s']:.1f} | {e.get('tasks')} | {e.get('executors')} | {e.get('task_run_s', 0):.1f} "
            f"| {e.get('jvm_cpu_s', 0):.1f} | {e.get('deserialize_s', 0):.1f} | {e.get('gc_s', 0):.1f} "
            f"| {e.get('slowest_task_s', 0):.1f} |"
        )
    checks = [run["check"] for _, run in runs]
    print(
        f"\nsamples of {CHECK_ROWS:,} vs the registered pipeline's predict_proba: largest difference "
        f"{max(c['max_abs_diff'] for c in checks):.1e}, all passed: {all(c['passed'] for c in checks)}"
    )
    if searched:
        print(
            f"\nhyper-parameter search ({searched['budget']}, {searched['candidates']} candidates): in process "
            f"{searched['in_process_s']:.1f} s, on the 2-worker cluster {searched['spark_s']:.1f} s "
            f"({searched['in_process_s'] / searched['spark_s']:.2f}×); tables equal: {searched['equal']}"
        )
    ok = all(c["passed"] for c in checks) and all(r["max_abs_diff_vs_single"] <= aml_spark.TOLERANCE for _, r in runs)
    return 0 if ok and (searched is None or searched["equal"]) else 1


if __name__ == "__main__":
    sys.exit(main())
