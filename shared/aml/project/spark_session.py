"""The Spark session of the project's batch jobs: one place that starts Spark the same way everywhere.

Why apart from :mod:`aml.project.spark`: how Spark is started (the master URL, loopback for local and loopback
clusters, the interpreter the Python workers run, quiet logs, no web UI) is the same for scoring a table and for the
hyper-parameter search, and has nothing to do with either; the same code starts it on ``local[N]``, on the loopback
standalone cluster (:mod:`aml.ops.sparkcluster`) and on a real cluster (only the master URL changes).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("aml.project.spark")

#: the default master: two local cores (``spark://host:7077`` or ``yarn`` spread the same work over a cluster)
DEFAULT_MASTER = "local[2]"
#: the setting naming the master the command line submits to (``project/scale/stack.py --spark-workers`` sets it)
MASTER_ENV = "AML_SPARK_MASTER"
APP_NAME = "aml-spam-batch-scoring"
_PANDAS3 = "PySpark does not yet fully support"
_LOG4J2 = """\
# aml.project.spark: warnings and errors only, on stderr (Spark's default logs every stage at INFO)
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
"""


# -- the session ------------------------------------------------------------------------------------------------------


@functools.cache
def _log_config() -> Path:
    """Spark's log4j2 configuration (``_LOG4J2``), written once per process into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="aml-spark-log-"))
    path = folder / "log4j2.properties"
    path.write_text(_LOG4J2)
    import atexit

    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return path


def session(master: str = DEFAULT_MASTER, app_name: str = APP_NAME, conf: Mapping[str, str] | None = None):
    """A ``pyspark.sql.SparkSession`` on ``master`` (default ``local[2]``; ``spark://host:7077`` or ``yarn`` for a
    cluster), with the web UI and the console progress bar off, Spark's logs at WARN, and ``PYSPARK_PYTHON`` set to
    this interpreter unless the caller set it (workers would otherwise start the system ``python3``, without pandas
    or MLflow). Local masters bind to 127.0.0.1 (``SPARK_LOCAL_IP``). ``conf``: more Spark settings. PySpark's
    FutureWarning about pandas 3, raised on every conversion, is silenced for the process.

    Raises ``ValueError`` when a session on another master is already running in this process (Spark allows one
    per process: stop it first), ``RuntimeError`` when no Java runtime is found (``JAVA_HOME`` or ``java``)."""
    if not isinstance(master, str) or not master.strip():
        raise ValueError(f"master must be a Spark master URL such as 'local[2]' or 'spark://host:7077', got {master!r}")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise RuntimeError(
            "Spark needs a Java runtime (17 or newer) and none was found: install one (apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME"
        )
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master.startswith("local") or master.startswith(("spark://127.0.0.1:", "spark://localhost:")):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver on loopback, as the cluster's daemons
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # spark_udf's download bars, per call
    warnings.filterwarnings("ignore", _PANDAS3, FutureWarning)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        raise ValueError(
            f"a Spark session on {active.sparkContext.master!r} is already running in this process; stop it "
            f"(spark.stop()) before starting one on {master!r}"
        )
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_log_config().as_uri()}")
        .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{_PANDAS3}:FutureWarning")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, str(value))
    start = time.perf_counter()
    spark = builder.getOrCreate()
    log.info("Spark %s on %s started in %.1f s", spark.version, master, time.perf_counter() - start)
    return spark


@contextlib.contextmanager
def running(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None) -> Iterator[Any]:
    """:func:`session` for a ``with`` block, stopped when the block ends."""
    spark = session(master, conf=conf)
    try:
        yield spark
    finally:
        spark.stop()
