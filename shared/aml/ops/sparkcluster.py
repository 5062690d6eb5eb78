"""A Spark standalone cluster on this machine's loopback: one master and N workers, each a separate JVM process
started with the ``spark-class`` launcher that ships with pyspark, each on free ``127.0.0.1`` ports, each stopped by
its PID.

Why: ``local[N]`` runs the driver and every task in one JVM; it shows that the code parallelises, not that it
distributes. A standalone cluster is Spark's own cluster manager, and the same one a team runs on real machines:
the master schedules, each worker offers its own cores and memory and launches executor JVMs (with their Python
workers) for the application. A job submitted here to ``spark://127.0.0.1:<port>`` crosses process boundaries
exactly as it would cross hosts: the scorer is broadcast, the tasks are serialised, the executors fetch both from
the driver over the network. The only change for a real cluster is the master URL (``spark://spark-master:7077``)
and where the workers run (``$SPARK_HOME/sbin/start-worker.sh spark://spark-master:7077 --cores 8 --memory 16g`` on
each machine, the same virtual environment on each).

What:

- :func:`spark_home` and :func:`spark_class`: pyspark's installation (``SPARK_HOME`` if set) and its launcher;
- :func:`master_command` and :func:`worker_command`: the two command lines (loopback host, RPC and web UI ports,
  a worker's cores, memory and work folder);
- :func:`standalone`: a master and ``workers`` workers until the block ends, yielding a :class:`Cluster` once the
  master reports every worker ``ALIVE``; :meth:`Cluster.conf` gives the driver's settings for it (driver on
  loopback, one executor per worker with that worker's cores and the memory that fits in it).

Ports and stopping come from :mod:`aml.ops.procs`; readiness is Spark's own: a Spark daemon is not an HTTP service
whose ``/health`` says it is ready, a worker is ready when the master lists it, which only the master's ``/json/``
tells.

Stopping: SIGTERM to each JVM's PID (a worker kills its executors; the master tells the application it is gone),
then SIGKILL to its process group after a timeout; workers first, then the master. Each daemon runs in its own
session, so a test's Ctrl-C does not reach it before the block's ``finally`` stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aml.ops.procs import free_port, stop_process

LOOPBACK = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: a worker's memory as Spark writes it: a number and a unit (``512m``, ``1g``)
MEMORY = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[mMgG])$")
#: what an executor may ask of a worker's memory: the rest is the JVM's own overhead outside the heap
EXECUTOR_SHARE = 0.75


class ClusterError(RuntimeError):
    """A part of the cluster did not start (the message names it and ends with its log)."""


def spark_home() -> Path:
    """Spark's installation: ``SPARK_HOME`` when set, else the installed ``pyspark`` package (which ships the jars
    and the launchers in ``bin/``). Raises :class:`ClusterError` when neither has ``bin/spark-class``."""
    if os.environ.get("SPARK_HOME"):
        home = Path(os.environ["SPARK_HOME"])
    else:
        import pyspark

        home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").is_file():
        raise ClusterError(f"no bin/spark-class in {home}: install pyspark, or set SPARK_HOME to a Spark distribution")
    return home


def spark_class() -> str:
    """The ``spark-class`` launcher (runs a Spark main class in a JVM with Spark's class path)."""
    return str(spark_home() / "bin" / "spark-class")


def memory_mb(memory: str) -> int:
    """``"512m"`` → 512, ``"2g"`` → 2048; :class:`ValueError` for anything else."""
    match = MEMORY.match(memory) if isinstance(memory, str) else None
    if match is None:
        raise ValueError(f"memory must be a number and m or g, such as '512m' or '2g', got {memory!r}")
    return int(match["n"]) * (1024 if match["unit"].lower() == "g" else 1)


def master_command(port: int, webui_port: int, host: str = LOOPBACK) -> list[str]:
    """The master's command line: RPC on ``host:port``, web UI (and its ``/json/`` status) on ``webui_port``."""
    return [spark_class(), MASTER_CLASS, "--host", host, "--port", str(port), "--webui-port", str(webui_port)]


def worker_command(
    master_url: str, port: int, webui_port: int, cores: int, memory: str, work_dir: str | Path, host: str = LOOPBACK
) -> list[str]:
    """A worker's command line: registers with ``master_url``, offers ``cores`` cores and ``memory`` to
    executors, keeps their files in ``work_dir``."""
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive integer, got {cores!r}")
    memory_mb(memory)
    return [
        spark_class(),
        WORKER_CLASS,
        master_url,
        "--host",
        host,
        "--port",
        str(port),
        "--webui-port",
        str(webui_port),
        "--cores",
        str(cores),
        "--memory",
        memory,
        "--work-dir",
        str(work_dir),
    ]


@dataclass
class Daemon:
    """One Spark daemon (the master or a worker): its command, its process, its log file."""

    name: str
    command: list[str]
    log_path: Path
    env: Mapping[str, str]
    proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The daemon's process id (``None`` before it started): what stops it."""
        return self.proc.pid if self.proc else None

    def start(self) -> Daemon:
        """Start the daemon in its own session (a Ctrl-C of the caller does not reach it), its output into its log file."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its log (for error messages when it fails to start)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to its PID, then SIGKILL to its process group after ``timeout`` s; its exit code."""
        # the process group's leftovers are a worker's executors and their Python workers
        return None if self.proc is None else stop_process(self.proc, timeout=timeout)


@dataclass
class Cluster:
    """A running standalone cluster (see :func:`standalone`)."""

    host: str
    port: int
    webui_port: int
    master: Daemon
    workers: list[Daemon]
    cores: int
    memory: str
    folder: Path

    @property
    def url(self) -> str:
        """The master URL to submit to: ``spark://127.0.0.1:<port>``."""
        return f"spark://{self.host}:{self.port}"

    @property
    def total_cores(self) -> int:
        """The cores the workers offer together (what the driver may use)."""
        return self.cores * len(self.workers)

    def status(self) -> dict:
        """The master's own view (its ``/json/``): workers, their state, cores, memory; applications."""
        with urllib.request.urlopen(f"http://{self.host}:{self.webui_port}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        """How many workers the master lists as ``ALIVE``."""
        return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")

    def conf(self) -> dict[str, str]:
        """The driver's Spark settings for this cluster: the driver on loopback (executors connect back to it), one
        executor per worker using all its cores and :data:`EXECUTOR_SHARE` of its memory, every core taken, and
        the driver's ``PYTHONPATH`` for the executors' Python workers (they import the ``aml`` the driver uses)."""
        conf = {
            "spark.driver.host": self.host,
            "spark.driver.bindAddress": self.host,
            "spark.executor.cores": str(self.cores),
            "spark.executor.memory": f"{int(memory_mb(self.memory) * EXECUTOR_SHARE)}m",
            "spark.cores.max": str(self.total_cores),
        }
        if os.environ.get("PYTHONPATH"):
            conf["spark.executorEnv.PYTHONPATH"] = os.environ["PYTHONPATH"]
        return conf

    def describe(self) -> dict[str, str]:
        """Where each part is, for people."""
        out = {"spark master": f"{self.url} (web UI :{self.webui_port}, pid {self.master.pid})"}
        for number, worker in enumerate(self.workers, 1):
            out[f"spark worker {number}"] = f"{self.cores} core(s), {self.memory} (pid {worker.pid})"
        return out


def _daemon_env(folder: Path, host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP=host,  # every socket of the daemons and their executors on loopback
        SPARK_LOG_DIR=str(folder / "logs"),
        SPARK_LOCAL_DIRS=str(folder / "local"),
        PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
    )
    return env


def _wait(what: str, ready, daemons: list[Daemon], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        dead = [d for d in daemons if not d.alive()]
        if dead or time.monotonic() >= deadline:
            culprit = dead[0] if dead else daemons[-1]
            why = f"{culprit.name} exited with {culprit.proc.returncode}" if dead else f"not within {timeout:g} s"
            raise ClusterError(
                f"{what}: {why}\ncommand: {' '.join(culprit.command)}\n--- {culprit.name} log (end) ---\n"
                f"{culprit.log()}"
            )
        time.sleep(0.25)


@contextlib.contextmanager
def standalone(
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    host: str = LOOPBACK,
    timeout: float = 120.0,
    parent: str | Path | None = None,
) -> Iterator[Cluster]:
    """A Spark standalone master and ``workers`` workers (each ``cores`` cores and ``memory``), separate JVMs on
    free ports of ``host``, until the block ends; yields the :class:`Cluster` once the master lists every worker
    ``ALIVE``. Everything is stopped by PID in ``finally`` (workers, then the master), and the cluster's folder
    (logs, work and scratch folders; under ``parent``, default the system's temporary folder) is removed. Raises
    :class:`ClusterError` naming the part that did not start, with the end of its log; ``RuntimeError`` without
    Java."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    memory_mb(memory)
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise RuntimeError("Spark needs a Java runtime (17 or newer): install openjdk-17-jre-headless or set JAVA_HOME")
    folder = Path(tempfile.mkdtemp(prefix="aml-spark-cluster-", dir=parent))
    env = _daemon_env(folder, host)
    port, webui = free_port(host), free_port(host)
    master = Daemon("the Spark master", master_command(port, webui, host), folder / "master.log", env)
    started: list[Daemon] = []
    try:
        started.append(master.start())
        cluster = Cluster(host, port, webui, master, [], cores, memory, folder)
        _wait("the Spark master did not start", lambda: cluster.status().get("status") == "ALIVE", [master], timeout)
        for number in range(1, workers + 1):
            work = folder / f"worker-{number}"
            work.mkdir()
            command = worker_command(cluster.url, free_port(host), free_port(host), cores, memory, work, host)
            worker = Daemon(f"Spark worker {number}", command, folder / f"worker-{number}.log", env)
            started.append(worker.start())
            cluster.workers.append(worker)
        _wait(
            f"the Spark workers did not all register ({workers} expected)",
            lambda: cluster.alive_workers() == workers,
            started,
            timeout,
        )
        yield cluster
    finally:
        for daemon in reversed(started):  # workers first: the master then sees them leave
            daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)
