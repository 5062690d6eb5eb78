"""Batch scoring on Spark: the registered champion over a Parquet table of millions of messages.

Why: the service's batch ``/score`` (:func:`aml.project.score.score_batch`) reads one CSV into one process and
scores it there (about 14,000 messages/s on 2 cores, bounded by one machine's memory and cores). A team that scores
the whole day's traffic needs the same model over a table too large for one process, spread over many cores or
machines: Spark splits the table into partitions and scores each in a Python worker, with exactly the scorer and
threshold the service serves.

**The served scorer, not the pipeline.** The service answers with :class:`aml.spam.lean.LeanScorer`, compiled from
the registered pipeline and checked equal to it within 1e-9 (:func:`aml.project.serving.serving_model`); it costs
about 1/70 of the full scikit-learn pipeline per message. Scoring a table with :func:`mlflow.pyfunc.spark_udf` runs
the full pipeline in every task, so Spark on two cores was slower than one process with the lean scorer (0.28×).
:func:`score_table` therefore compiles the scorer once on the driver (the same :func:`choose_model` the service's
loader runs), ships it once per executor as a broadcast variable, and applies it to each Arrow batch with
``DataFrame.mapInPandas``; :func:`check_sample` compares a sample with the registered version's ``predict_proba``
under the compile check's rule (1e-9). A version the lean compiler does not support (``NotCompilable``) is scored
as before, by ``spark_udf`` over the registered pipeline (``scorer="pipeline"`` forces that path).

What:

- :func:`aml.project.spark_session.session`: a Spark session (``local[2]`` by default, UI off, quiet logs, ``PYSPARK_PYTHON`` set to this
  interpreter so that workers import the same packages);
- :func:`generate_messages`: a large message table (``bulk/<run>/messages.parquet``: ``id``, ``text``, ``label``,
  ``y``), the prepared SMS corpus resampled with a seed (a hash of each row number), with unique ids;
- :func:`score_table`: a Parquet table → ``bulk_predictions/<run>/predictions.parquet`` (``id``, ``propensity``,
  ``prediction``, ``threshold``, ``model_version``, and ``label``/``y`` when the table has them), scored by the
  version :func:`aml.project.serving.load_serving_model` picks (the champion, with the service's fallback) at the
  version's ``threshold`` tag, with its lean scorer (fallback: the pipeline through ``spark_udf``);
- :func:`check_sample`: a random sample of the Spark output against in-process ``predict_proba`` of the same
  registered version (the maximum absolute difference: a few ulps, at most 1e-9);
- :func:`tune_on_spark`: assignment 1's hyper-parameter search with one Spark task per candidate, the same tables
  as in process.

Atomic, with lineage, as every stage of :mod:`aml.project` (:class:`aml.project.run.StoreRun`): Spark writes into a hidden staging folder (a
crashed job leaves only that), which is renamed into a new run folder; ``lineage.json`` (the input table's digest,
the model version and threshold, the Spark master) follows, and the kind's ``latest`` moves last. The two kinds are
new folders of the data store, so ``predictions/latest`` (the take-down list's default input) never points at a
Parquet run.

**A data store on an object store** (``s3://``): Spark would need ``s3a://`` and the hadoop-aws jars with the AWS SDK
bundle, which are not installed and cannot be fetched offline here. So Spark reads and writes local folders: a remote
input table is downloaded into a temporary folder first, and the output is written locally and then uploaded file by
file through :class:`aml.mlops.datastore.DataStore` (``latest`` still moves only after the last file is in place).

**On a cluster: the same code, with ``master`` changed.** ``running("spark://host:7077")`` (a standalone cluster) or
``session("yarn")`` (Hadoop's resource manager, with ``HADOOP_CONF_DIR`` set) runs the same functions: the table's
partitions are spread over the executors' cores (:mod:`aml.ops.sparkcluster` starts a standalone master and
workers, separate JVMs, on this machine's loopback: the path every test and benchmark of a cluster takes). The lean
scorer travels as a broadcast variable (fetched by each executor once, unpickled once per Python worker); the
fallback, :func:`mlflow.pyfunc.spark_udf`, downloads the registered version once, on the driver, and ships it as a
Spark file (``SparkContext.addFile``). For that the executors need (1) the same Python environment as the driver
(the same image, or ``PYSPARK_PYTHON`` pointing at the same virtual environment on every node, ``aml`` installed;
``env_manager="local"`` for the fallback), and (2) the data store
on storage every node sees at the same path (a shared mount, or HDFS/``s3a://`` with the jars above); the temporary
folders of a remote store are on the driver only, so that case is for ``local`` masters. From the shell::

    AML_DATA_STORE=/shared/store MLFLOW_TRACKING_URI=http://mlflow:5000 \\
        python -m aml.project.spark score bulk/<run>/messages.parquet --master spark://host:7077
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import logging
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aml.core import logs
from aml.core import metrics as _metrics
from aml.mlops import registry, tracking
from aml.mlops.datastore import RUN_ID, DataStore, StoreError, StoreNotFoundError
from aml.project import system
from aml.project.spark_session import APP_NAME, DEFAULT_MASTER, MASTER_ENV, running, session  # noqa: F401 (callers: spark.session)
from aml.spam import MODEL_NAME, sms, stages

log = logging.getLogger("aml.project.spark")

#: the data store's folders: generated message tables, and their predictions
TABLES, PREDICTIONS = "bulk", "bulk_predictions"
MESSAGES_TABLE, PREDICTIONS_TABLE = "messages.parquet", "predictions.parquet"
#: the columns of a predictions table, in order (``label`` and ``y`` follow when the input has them)
OUTPUT_COLUMNS = (stages.ID, stages.PROPENSITY, stages.PREDICTION, "threshold", "model_version")
PASSED_THROUGH = ("label", stages.TARGET)
DEFAULT_ROWS = 1_000_000
#: rows per Parquet file that :func:`generate_messages` aims at (at least one file per core)
ROWS_PER_FILE = 100_000
#: the check's tolerance: the lean compiler's own rule (:func:`aml.spam.lean.compile_scorer`; measured: a few ulps)
TOLERANCE = 1e-9
#: the scorers :func:`score_table` can apply: the served lean scorer (falling back to the pipeline), or the pipeline
SCORERS = ("lean", "pipeline")
# -- tables in the data store ----------------------------------------------------------------------------------------


def _data_files(names: list[str]) -> list[str]:
    """The files of a Parquet folder worth keeping elsewhere: no hidden checksums, no ``_temporary`` leftovers."""
    return [n for n in names if not n.startswith((".", "_temporary"))]


def table_sha256(store: DataStore, path: str) -> str:
    """A digest of the Parquet table (a folder) at ``path``: SHA-256 over the sorted names and SHA-256 of its data
    files, for the lineage of whatever is computed from it."""
    digest = hashlib.sha256()
    for name in _data_files(store.list(path)):
        digest.update(f"{name} {store.sha256(f'{path}/{name}')}\n".encode())
    return digest.hexdigest()


def _missing_table(store: DataStore, path: str) -> StoreNotFoundError:
    return StoreNotFoundError(
        f"no Parquet table at {store.location(path)}: give a table folder of the data store, e.g. "
        f"{TABLES}/<run>/{MESSAGES_TABLE} (written by generate_messages)"
    )


@contextlib.contextmanager
def _read_table(spark, store: DataStore, path: str) -> Iterator[Any]:
    """The Parquet table at store path ``path`` as a Spark DataFrame, valid inside the block: read in place from a
    local store, from a temporary download of its files otherwise. :class:`aml.mlops.datastore.StoreNotFoundError`
    when there is no table there, :class:`aml.project.settings.StageError` when ``path`` is a file."""
    rel = store.check_path(path)
    local = store.local_path(rel)
    if local is not None:
        if local.is_file():
            raise system.StageError(f"{store.location(rel)} is a file; a Parquet table is a folder of part files")
        if not local.is_dir() or not _data_files([p.name for p in local.iterdir()]):
            raise _missing_table(store, rel)
        yield spark.read.parquet(local.as_uri())
        return
    try:
        names = _data_files(store.list(rel))
    except StoreError:  # the listing of a file
        raise system.StageError(f"{store.location(rel)} is a file; a Parquet table is a folder of part files") from None
    if not names:
        raise _missing_table(store, rel)
    with tempfile.TemporaryDirectory(prefix="aml-spark-in-") as tmp:
        folder = Path(tmp) / Path(rel).name
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(store.read_bytes(f"{rel}/{name}"))
        yield spark.read.parquet(folder.as_uri())


def _write_run(store: DataStore, kind: str, name: str, write: Callable[[str], Any]) -> tuple[str, str, list[str], Any]:
    """A new run of ``kind`` holding the Parquet folder ``name``, written by ``write(uri)`` (which returns a summary
    computed from what it wrote): into a hidden staging folder, then renamed (local store) or uploaded (remote
    store) into ``<kind>/<run>/<name>``. Returns ``(run, store path, data files, summary)``; ``latest`` is the
    caller's to move, after the lineage."""
    run = store.new_run(kind)
    target = store.run_path(kind, run, name)
    if store.is_local:
        folder = store.local_path(kind)
        folder.mkdir(parents=True, exist_ok=True)
        # hidden from the store's listings; Spark writes into a sub-folder, as Hadoop ignores a hidden table folder
        staging = folder / f".aml-tmp-spark-{secrets.token_hex(8)}"
        try:
            summary = write((staging / name).as_uri())
            final = store.local_path(target)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / name, final)  # same folder tree, same file system: atomic
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return run, target, sorted(_data_files([p.name for p in final.iterdir()])), summary
    with tempfile.TemporaryDirectory(prefix="aml-spark-out-") as tmp:
        staging = Path(tmp) / name
        summary = write(staging.as_uri())
        files = sorted(_data_files([p.name for p in staging.iterdir()]))
        for file in files:
            store.write_bytes(f"{target}/{file}", (staging / file).read_bytes())
    return run, target, files, summary


def _lineage(store: DataStore, kind: str, run: str, record: Mapping[str, Any]) -> None:
    store.write_lineage(kind, run, {"code_version": tracking.code_version(), **record})


def _spark_info(spark) -> dict:
    return {"master": spark.sparkContext.master, "version": spark.version}


# -- generate --------------------------------------------------------------------------------------------------------


def generate_messages(
    spark,
    store: DataStore,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    source: str | None = None,
    files: int | None = None,
) -> dict:
    """A large message table for batch scoring: ``rows`` messages drawn with replacement from ``source`` (a store
    path of prepared messages; default the latest ``processed/`` run) → ``bulk/<run>/messages.parquet`` with
    ``id`` (unique: ``msg-`` and the row number), ``text``, and ``label`` and ``y`` when the source has them.

    Row ``i`` takes corpus row ``xxhash64(i, seed) mod n``: the same ``seed`` gives the same table however Spark
    partitions the work. ``files``: Parquet files to write (default one per :data:`ROWS_PER_FILE` rows, at least one
    per core). Returns ``{"output", "rows", "run", "source", "seed", "files", "seconds"}``."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise system.StageError(f"rows must be a positive integer, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise system.StageError(f"seed must be a non-negative integer, got {seed!r}")
    if files is not None and (isinstance(files, bool) or not isinstance(files, int) or files < 1):
        raise system.StageError(f"files must be a positive integer or None, got {files!r}")
    start = time.perf_counter()
    if source is None:
        run = store.resolve_latest("processed", "prepare the data first (POST /prepare or system.prepare)")
        source = store.run_path("processed", run, "messages.csv")
    corpus = system.read_frame(store, source)  # the stage's parsing and validation: label, text, y
    columns = {
        "k": pa.array(np.arange(len(corpus), dtype=np.int64)),
        stages.TEXT: pa.array(corpus[stages.TEXT].astype(str).tolist(), pa.string()),
    }
    if "label" in corpus:
        columns["label"] = pa.array(corpus["label"].astype(str).tolist(), pa.string())
    if stages.TARGET in corpus:
        columns[stages.TARGET] = pa.array(corpus[stages.TARGET].to_numpy(dtype=np.int32))
    texts = spark.createDataFrame(pa.table(columns))  # through Arrow, in the JVM: no Python worker starts for it
    files = files or max(spark.sparkContext.defaultParallelism, math.ceil(rows / ROWS_PER_FILE))
    picks = spark.range(0, rows, numPartitions=files).select(
        F.format_string("msg-%010d", F.col("id")).alias(stages.ID),
        F.pmod(F.xxhash64(F.col("id"), F.lit(seed)), F.lit(len(corpus))).alias("k"),
    )
    table = picks.join(F.broadcast(texts), "k").select(stages.ID, *[c for c in columns if c != "k"])

    def write(uri: str) -> None:
        table.write.mode("error").parquet(uri)

    run, output, written, _ = _write_run(store, TABLES, MESSAGES_TABLE, write)
    config = {"rows": rows, "seed": seed, "files": files}
    _lineage(
        store,
        TABLES,
        run,
        {
            "inputs": {"corpus": {"path": source, "sha256": store.sha256(source), "rows": len(corpus)}},
            "config": config,
            "outputs": {"table": {"path": output, "rows": rows, "files": written}},
            "spark": _spark_info(spark),
        },
    )
    store.set_latest(TABLES, run)
    return {"output": output, "run": run, "source": source, **config, "seconds": round(time.perf_counter() - start, 2)}


# -- score -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """The registered version a Spark job scores with: its ``name``, ``version``, ``threshold`` (the version's
    ``threshold`` tag), how it was chosen (``serving``: the registry record's summary, fallback included) and its
    compiled ``scorer`` (:class:`aml.spam.lean.LeanScorer`; ``None`` when the version cannot be compiled)."""

    name: str
    version: str
    threshold: float
    serving: dict
    scorer: Any = field(default=None, compare=False, repr=False)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: pinned, so the job scores with one version even if the champion moves."""
        return f"models:/{self.name}/{self.version}"


def choose_model(name: str = MODEL_NAME) -> ModelChoice:
    """The version the service would serve (:func:`aml.project.serving.load_serving_model`: the champion, else the
    latest, falling back to older versions that load and pass the smoke check) and its threshold. Raises
    :class:`aml.mlops.registry.NoModelError` when nothing is registered."""
    ready = system.load_serving_model(name)
    return ModelChoice(name, ready.version, ready.threshold, ready.describe(), ready.scorer if ready.lean else None)


def _check_columns(store: DataStore, path: str, df) -> None:
    missing = [c for c in (stages.ID, stages.TEXT) if c not in df.columns]
    if missing:
        raise system.StageError(
            f"{store.location(path)} cannot be scored: columns {missing} are missing (found {df.columns}); a "
            f"message table has {stages.ID!r} and {stages.TEXT!r}"
        )


def _check_texts(store: DataStore, path: str, df) -> None:
    """Refuse a table with missing or empty texts, naming some ids (as :func:`aml.spam.stages.prepare_scoring_data`
    does): a message that cannot be scored must not vanish silently."""
    from pyspark.sql import functions as F

    bad = df.filter(F.col(stages.TEXT).isNull() | (F.trim(F.col(stages.TEXT)) == ""))
    ids = [row[0] for row in bad.select(stages.ID).limit(5).collect()]
    if ids:
        raise sms.DataValidationError(f"{store.location(path)}: {bad.count()} message(s) with empty text, ids {ids}")


def _lean_batches(broadcast, threshold: float, version: str, kept: tuple[str, ...]):
    """The function ``mapInPandas`` runs in the executors' Python workers: each Arrow batch of ``id``, ``text``
    (and ``kept``) → the output columns, scored by the broadcast :class:`~aml.spam.lean.LeanScorer` (unpickled once
    per Python worker, which Spark reuses with its word cache for the later batches)."""
    id_, text, propensity_, prediction_ = stages.ID, stages.TEXT, stages.PROPENSITY, stages.PREDICTION

    def score(batches):
        import pandas as pd

        scorer = broadcast.value
        for batch in batches:
            texts = batch[text].tolist()
            propensity = scorer.predict_proba(texts)[:, 1] if texts else np.empty(0)
            columns = {
                id_: batch[id_].astype(str),
                propensity_: propensity,
                prediction_: _metrics.apply_threshold(propensity, threshold),
                "threshold": np.full(len(texts), threshold),
                "model_version": np.full(len(texts), version, dtype=object),
            }
            columns.update({column: batch[column] for column in kept})
            yield pd.DataFrame(columns, index=batch.index)

    return score


def _score_lean(spark, df, model: ModelChoice, kept: list[str]):
    """``df`` scored by the model's lean scorer: broadcast once, applied per Arrow batch (``mapInPandas``)."""
    from pyspark.sql import types as T

    fields = [
        T.StructField(stages.ID, T.StringType()),
        T.StructField(stages.PROPENSITY, T.DoubleType()),
        T.StructField(stages.PREDICTION, T.BooleanType()),
        T.StructField("threshold", T.DoubleType()),
        T.StructField("model_version", T.StringType()),
        *[df.schema[column] for column in kept],
    ]
    broadcast = spark.sparkContext.broadcast(model.scorer)
    batches = _lean_batches(broadcast, float(model.threshold), str(model.version), tuple(kept))
    return df.select(stages.ID, stages.TEXT, *kept).mapInPandas(batches, T.StructType(fields))


def _score_pipeline(spark, df, model: ModelChoice, kept: list[str]):
    """``df`` scored by the registered pipeline through :func:`mlflow.pyfunc.spark_udf` (its ``predict_proba``:
    the versions are logged with ``pyfunc_predict_fn="predict_proba"``): the fallback when no lean scorer compiles."""
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # spark_udf(env_manager="local") warns that the training environment is not recreated: here that is the point
    # (the executors run this environment; conda or virtualenv would need the network)
    with logs.quieted("mlflow.pyfunc"):
        predict = mlflow.pyfunc.spark_udf(
            spark, model.uri, result_type=T.ArrayType(T.DoubleType()), env_manager="local"
        )
    propensity = F.col("_proba")[1]
    return df.withColumn("_proba", predict(F.col(stages.TEXT))).select(
        F.col(stages.ID).cast("string").alias(stages.ID),
        propensity.alias(stages.PROPENSITY),
        (propensity >= F.lit(model.threshold)).alias(stages.PREDICTION),  # metrics.apply_threshold's rule
        F.lit(model.threshold).cast("double").alias("threshold"),
        F.lit(model.version).alias("model_version"),
        *kept,
    )


def score_table(
    spark,
    store: DataStore,
    table: str,
    name: str = MODEL_NAME,
    partitions: int | None = None,
    scorer: str = "lean",
) -> dict[str, Any]:
    """Batch scoring on Spark: the Parquet table at store path ``table`` (``id``, ``text``; ``label``/``y`` kept) →
    ``bulk_predictions/<run>/predictions.parquet`` with :data:`OUTPUT_COLUMNS`, scored by the registered version
    :func:`choose_model` picks, at that version's threshold.

    ``scorer``: ``"lean"`` (default) applies the service's compiled scorer (broadcast, ``mapInPandas``), or the
    pipeline when the version does not compile; ``"pipeline"`` always runs the registered pipeline through
    :func:`mlflow.pyfunc.spark_udf`. ``partitions``: repartition the table into that many tasks first (default:
    only when it has fewer partitions than Spark has cores). MLflow must point at the registry
    (:func:`aml.mlops.tracking.configure`). Written atomically with a ``lineage.json``; ``latest`` moves last.
    Returns ``{"output", "count", "spam", "run", "model_version", "threshold", "scorer", "partitions", "seconds",
    "master"}``. Raises :class:`aml.mlops.datastore.StoreNotFoundError` for a missing table,
    :class:`aml.project.settings.StageError` for a table without ``id``/``text`` or bad arguments, and
    :class:`aml.spam.sms.DataValidationError` for empty texts."""
    from pyspark.sql import functions as F

    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1):
        raise system.StageError(f"partitions must be a positive integer or None, got {partitions!r}")
    if scorer not in SCORERS:
        raise system.StageError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    start = time.perf_counter()
    with _read_table(spark, store, table) as df:  # a missing table fails before the model is loaded
        _check_columns(store, table, df)
        _check_texts(store, table, df)
        model = choose_model(name)
        cores = spark.sparkContext.defaultParallelism
        if partitions is not None:
            df = df.repartition(partitions)
        elif df.rdd.getNumPartitions() < cores:
            df = df.repartition(cores)
        tasks = df.rdd.getNumPartitions()
        kept = [c for c in PASSED_THROUGH if c in df.columns]
        used = "lean" if scorer == "lean" and model.scorer is not None else "pipeline"
        if used != scorer:
            log.info("version %s has no lean scorer: scoring with the pipeline (spark_udf)", model.version)
        out = (_score_lean if used == "lean" else _score_pipeline)(spark, df, model, kept)

        def write(uri: str) -> tuple[int, int]:
            out.write.mode("error").parquet(uri)
            done = spark.read.parquet(uri)  # counted from the files: counting `out` would score everything again
            row = done.agg(F.count(F.lit(1)), F.sum(F.col(stages.PREDICTION).cast("long"))).first()
            return int(row[0]), int(row[1] or 0)

        run, output, files, (count, spam) = _write_run(store, PREDICTIONS, PREDICTIONS_TABLE, write)
    _lineage(
        store,
        PREDICTIONS,
        run,
        {
            "inputs": {"table": {"path": table, "sha256": table_sha256(store, table)}},
            "model": {**model.serving, "name": name, "uri": model.uri, "scorer": used},
            "outputs": {"predictions": {"path": output, "rows": count, "files": files}},
            "spark": {**_spark_info(spark), "partitions": tasks},
        },
    )
    store.set_latest(PREDICTIONS, run)
    return {
        "output": output,
        "count": count,
        "spam": spam,
        "run": run,
        "model_version": model.version,
        "threshold": model.threshold,
        "scorer": used,
        "partitions": tasks,
        "seconds": round(time.perf_counter() - start, 2),
        "master": spark.sparkContext.master,
    }


# -- check -----------------------------------------------------------------------------------------------------------


def _predictions_run(store: DataStore, predictions: str) -> str:
    parts = store.check_path(predictions).split("/")
    if len(parts) != 3 or parts[0] != PREDICTIONS or not RUN_ID.match(parts[1]) or parts[2] != PREDICTIONS_TABLE:
        raise system.StageError(
            f"{predictions!r} is not a Spark predictions table: expected {PREDICTIONS}/<run>/{PREDICTIONS_TABLE}"
        )
    return parts[1]


def check_sample(
    spark, store: DataStore, predictions: str, rows: int = 1000, seed: int = 0, tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """Check a Spark predictions table against in-process scoring: a random sample of about ``rows`` of its rows
    (``seed``), joined by ``id`` with the scored table (named in its ``lineage.json``), scored again in this process
    by ``predict_proba`` of the same registered version. Returns ``{"rows", "max_abs_diff", "predictions_agree"
    (prediction = propensity ≥ threshold, the version's threshold and version on every row), "passed"
    (max_abs_diff ≤ tolerance and predictions_agree), "model_version"}``."""
    from pyspark.sql import functions as F

    run = _predictions_run(store, predictions)
    lineage = store.read_lineage(PREDICTIONS, run)
    table, model = lineage["inputs"]["table"]["path"], lineage["model"]
    with _read_table(spark, store, predictions) as out, _read_table(spark, store, table) as source:
        total = out.count()
        fraction = min(1.0, 1.2 * rows / total) if total else 1.0
        picked = out.sample(withReplacement=False, fraction=fraction, seed=seed).limit(rows)
        texts = source.select(F.col(stages.ID).cast("string").alias(stages.ID), stages.TEXT)
        sample = texts.join(F.broadcast(picked), stages.ID).collect()  # one scan of the table, no shuffle
    if not sample:
        raise system.StageError(f"{store.location(predictions)} has no rows to check")
    full = registry.load_version(model["name"], model["version"])
    expected = np.asarray(full.predict_proba([r[stages.TEXT] for r in sample]), dtype=float)[:, 1]
    got = np.array([r[stages.PROPENSITY] for r in sample], dtype=float)
    threshold = float(model["threshold"])
    agree = np.array_equal(
        np.array([r[stages.PREDICTION] for r in sample]), _metrics.apply_threshold(got, threshold)
    ) and all(r["threshold"] == threshold and r["model_version"] == str(model["version"]) for r in sample)
    diff = float(np.abs(got - expected).max())
    return {
        "rows": len(sample),
        "max_abs_diff": diff,
        "predictions_agree": bool(agree),
        "passed": bool(diff <= tolerance and agree),
        "model_version": str(model["version"]),
    }


# -- the hyper-parameter search ---------------------------------------------------------------------------------------


def tune_on_spark(
    spark,
    splits: Mapping[str, Any],
    space: Mapping[str, Mapping[str, list]] | None = None,
    seed: int = 0,
    min_precision: float = stages.MIN_PRECISION,
) -> dict[str, Any]:
    """:func:`aml.spam.selection.tune_benchmarks` with its candidates spread over Spark: one task per (model,
    combination) of ``space`` (default :data:`aml.spam.selection.SEARCH_SPACE`), each running
    :func:`aml.spam.stages.tune_row` on the train/validation splits (broadcast once per executor), the rows
    collected back in grid order into :func:`aml.spam.stages.tune_table`. Same seeds, same code: the tables equal the
    in-process search's except ``fit_seconds`` (wall time of each fit, measured where it ran). A task runs in one
    executor core; scikit-learn's own threads stay as the model asks (``n_jobs``). Returns ``{model: table}``."""
    import itertools

    from aml.spam import models, selection

    space = selection.SEARCH_SPACE if space is None else space
    candidates = [
        (name, dict(zip(grid, combo, strict=True)))
        for name, grid in space.items()
        for combo in itertools.product(*grid.values())
    ]
    if not candidates:
        return {}
    data = spark.sparkContext.broadcast((splits["train"], splits["validation"]))

    def run(candidate):
        name, params = candidate
        df_train, df_val = data.value
        make = functools.partial(models.make_model, name, seed)
        return name, stages.tune_row(make, params, df_train, df_val, min_precision)

    rows = spark.sparkContext.parallelize(candidates, len(candidates)).map(run).collect()  # in candidate order
    data.unpersist()
    return {
        name: stages.tune_table([row for model, row in rows if model == name], grid) for name, grid in space.items()
    }


# -- command line ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m aml.project.spark {generate,score} … [--master URL]`` over the data store ``AML_DATA_STORE`` and
    the registry ``MLFLOW_TRACKING_URI`` (as the project's service reads them), on ``--master`` (default
    ``AML_SPARK_MASTER``, else ``local[2]``): prints each result as one line."""
    import json

    import mlflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--master",
        default=os.environ.get(MASTER_ENV) or DEFAULT_MASTER,
        help=f"Spark master URL (default {MASTER_ENV}, else {DEFAULT_MASTER})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write a message table into bulk/")
    generate.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--source", help="store path of prepared messages (default the latest processed run)")
    score = commands.add_parser("score", help="score a table into bulk_predictions/, then check a sample")
    score.add_argument("table", help="store path of a Parquet table, e.g. bulk/<run>/messages.parquet")
    score.add_argument("--check", type=int, default=1000, help="rows to check in process (0: no check)")
    args = parser.parse_args(argv)
    store = DataStore.from_env()
    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with running(args.master) as spark:
        if args.command == "generate":
            print(json.dumps(generate_messages(spark, store, args.rows, args.seed, args.source)))
            return 0
        result = score_table(spark, store, args.table)
        print(json.dumps(result))
        if args.check:
            checked = check_sample(spark, store, result["output"], rows=args.check)
            print(json.dumps(checked))
            return 0 if checked["passed"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
