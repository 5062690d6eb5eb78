"""The team-scale stack on one machine's loopback: PostgreSQL, an S3 server, an MLflow server on both, service
replicas and a load balancer, every one a real server on a free ``127.0.0.1`` port, stopped by its PID.

Why: the project runs on a laptop with a folder as data store and a SQLite registry; a team runs the same code
against shared stores (``project/README.md``, "Team scale"): a PostgreSQL database behind an MLflow tracking server
whose artifacts live in an S3 bucket, the data store in the same bucket, and several stateless replicas of the
service behind one address. This module starts those parts so that the change is proven, not promised: the
project's scale test (``project/test/integration_scale.py``) and its set-up script (``project/scale/stack.py``)
use it, and only URLs and credentials differ from the laptop configuration.

===========================  ============================================================================================
:func:`postgres`             a throwaway PostgreSQL cluster (Debian's ``postgresql``): ``initdb`` into a new folder
                             (as the ``postgres`` user when running as root: ``initdb`` refuses root), password
                             authentication on TCP, the socket in that folder, durability off (a test cluster)
:func:`s3_server`            moto's S3 server (``moto_server``) with the buckets asked for
:func:`mlflow_server`        ``mlflow server`` with a database backend store and artifacts proxied to a bucket
                             (``--artifacts-destination s3://...``): only the server holds the S3 credentials
:func:`team_stack`           the three together: yields a :class:`TeamStack` with the tracking URI, the S3 endpoint,
                             the data store URL ``s3://<bucket>/data`` and the service's environment
:func:`replicas`             N copies of a service command, each on its own port
:func:`balancer`             Debian's ``nginx`` in front of them, non-daemon, ``proxy_next_upstream`` on: a request a
                             dead replica did not answer is retried on another
:func:`failover_under_load`  online requests through the balancer while one replica is killed with SIGKILL
===========================  ============================================================================================

Every start waits until the part answers and raises :class:`StackError` naming the part and ending with its log
when it does not (a port lost to another process is retried on a new one); every stop happens in ``finally``:
SIGTERM (PostgreSQL: SIGINT, its fast shutdown) to the PID it was started with, SIGKILL to its process group after
a timeout (:func:`aml.ops.procs.stop_process`). Tests use :func:`missing` to skip on a machine without these
programs, and fail instead under ``CI=true`` (:func:`aml.devtools.testenv.skip_or_fail`).

Credentials: moto accepts any key; PostgreSQL checks passwords (SCRAM) on TCP, with random passwords generated per
cluster. Both are throwaway: a team's stack is a managed database and a real object store, reached with the same
variables.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aml.core import nginx
from aml.ops import procs

LOOPBACK = procs.LOOPBACK
#: the S3 credentials given to moto (it accepts any) and the region
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"
#: the default bucket of :func:`team_stack`: data store under ``data/``, MLflow artifacts under ``mlflow/``, DVC
#: remote under ``dvc/``
BUCKET = "aml-team"
#: the path the balancer answers itself (200), to know it is up
BALANCER_HEALTH = "/balancer-health"
#: the largest request body the balancer passes on (each replica enforces its own, smaller limit)
BALANCER_MAX_BODY_BYTES = 64 * 1024 * 1024
_PORT_RETRIES = 3


class StackError(RuntimeError):
    """A part of the stack did not start or stop (the message names it and ends with the end of its log)."""


# -- what the machine has --------------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder with PostgreSQL's ``initdb`` and ``postgres``: ``AML_PG_BIN``, else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian), else the folder of an ``initdb`` on ``PATH``; ``None`` when
    there is none."""
    if os.environ.get("AML_PG_BIN"):
        return Path(os.environ["AML_PG_BIN"])
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def nginx_binary() -> str | None:
    """The ``nginx`` executable (``AML_NGINX``, else ``PATH``, else ``/usr/sbin/nginx``), or ``None``
    (:func:`aml.core.nginx.binary`)."""
    return nginx.binary()


def missing(balancer: bool = True) -> list[str]:
    """What this machine lacks for the stack (with how to install it); empty when everything is there."""
    import importlib.util

    lacking = []
    if postgres_bin() is None:
        lacking.append("PostgreSQL's initdb (apt-get install postgresql)")
    if balancer and nginx_binary() is None:
        lacking.append("nginx (apt-get install nginx)")
    for module, package in (("moto.server", "moto[server]"), ("psycopg2", "psycopg2-binary"), ("s3fs", "s3fs")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            lacking.append(f"the Python package {package} (pip install -r requirements.txt)")
    return lacking


# -- helpers ---------------------------------------------------------------------------------------------------------


def _new_folder(prefix: str, parent: str | Path | None) -> Path:
    """A new folder that other local users can traverse (the ``postgres`` user, nginx's workers): in ``parent`` or
    the system's temporary folder (short paths: a Unix socket path has at most 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(0o755)
    return folder


def _as_postgres() -> list[str]:
    """The command prefix that runs PostgreSQL's programs: ``runuser -u postgres --`` as root, nothing otherwise."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _start_server(
    name: str, make: Callable[[int], tuple[list[str], dict]], path: str, timeout: float, stack: contextlib.ExitStack
) -> procs.ServerProcess:
    """Start ``make(port)`` (its command and environment) through :func:`aml.ops.procs.serve` on a free port
    chosen here, retried on a new port when it was taken meanwhile; the server stops when ``stack`` closes."""
    for attempt in range(1, _PORT_RETRIES + 1):
        port = procs.free_port()
        command, env = make(port)
        try:
            return stack.enter_context(procs.serve(command, path=path, env=env, port=port, timeout=timeout))
        except procs.ServerError as exc:
            if attempt < _PORT_RETRIES and "in use" in str(exc).lower():
                continue
            raise StackError(f"{name} did not start: {exc}") from None
    raise AssertionError("not reached")


# -- PostgreSQL ------------------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A running throwaway PostgreSQL cluster (see :func:`postgres`)."""

    folder: Path
    port: int
    password: str  # the superuser's (``postgres``)
    process: procs.ServerProcess
    host: str = LOOPBACK

    @property
    def pid(self) -> int | None:
        """The postmaster's PID (the first line of ``postmaster.pid``), or ``None`` before it wrote it."""
        try:
            return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def connect(self, database: str = "postgres", user: str = "postgres", password: str | None = None):
        """A psycopg2 connection over TCP (autocommit on)."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=self.password if password is None else password,
            dbname=database,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def url(self, database: str, user: str, password: str, driver: str = "postgresql+psycopg2") -> str:
        """The SQLAlchemy URL of ``database`` as ``user`` (what ``mlflow server --backend-store-uri`` takes)."""
        return f"{driver}://{user}:{password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, owner: str | None = None, password: str | None = None) -> str:
        """Create the login role ``owner`` (default ``name``) with ``password`` (default random) and the database
        ``name`` it owns; returns its :meth:`url`."""
        from psycopg2 import sql

        owner = owner or name
        password = password or secrets.token_hex(16)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(owner)), [password])
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        finally:
            conn.close()
        return self.url(name, owner, password)

    def ready(self) -> bool:
        """True when the cluster accepts a connection."""
        try:
            self.connect().close()
        except Exception:
            return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), then SIGKILL to what is left of its process group."""
        pid = self.pid
        if pid is not None and self.process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.proc.wait(timeout)
        self.process.stop(timeout=1.0)


@contextlib.contextmanager
def postgres(parent: str | Path | None = None, timeout: float = 60.0, durable: bool = False) -> Iterator[Postgres]:
    """A new PostgreSQL cluster on a free loopback port until the block ends, then stopped and its folder removed.

    The cluster lives in a new folder in ``parent`` (default: the system's temporary folder; as root it must be
    reachable by the ``postgres`` user). The superuser ``postgres`` logs in over TCP with a random password
    (``.password``; SCRAM); only its own socket, in the folder, trusts local users. ``durable=False`` turns fsync
    off: a throwaway cluster for tests, several times faster to migrate."""
    pg_bin = postgres_bin()
    if pg_bin is None:
        raise StackError("PostgreSQL did not start: initdb not found (apt-get install postgresql, or set AML_PG_BIN)")
    if not (pg_bin / "initdb").is_file() or not (pg_bin / "postgres").is_file():
        raise StackError(f"PostgreSQL did not start: no initdb and postgres in {pg_bin} (AML_PG_BIN?)")
    folder = _new_folder("aml-pg-", parent)
    password = secrets.token_hex(16)
    process = None
    try:
        fd = os.open(folder / "pwfile", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(folder / "pwfile", "postgres", "postgres")
        init = subprocess.run(
            [
                *_as_postgres(),
                str(pg_bin / "initdb"),
                "-D",
                str(folder / "data"),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={folder / 'pwfile'}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                *([] if durable else ["--no-sync"]),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        (folder / "pwfile").unlink()
        if init.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start: initdb failed ({init.returncode}):\n{init.stdout}{init.stderr}"
            )
        options = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        for attempt in range(1, _PORT_RETRIES + 1):
            port = procs.free_port()
            command = [
                *_as_postgres(),
                str(pg_bin / "postgres"),
                "-D",
                str(folder / "data"),
                "-p",
                str(port),
                "-k",
                str(folder),
                "-c",
                f"listen_addresses={LOOPBACK}",
                *([] if durable else options),
            ]
            process = procs.ServerProcess(command, port, log_path=folder / "postgres.log").start()
            cluster = Postgres(folder, port, password, process)
            deadline = time.monotonic() + timeout
            while process.alive() and not cluster.ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.alive() and cluster.ready():
                break
            log = process.log(30)
            cluster.stop()
            if attempt < _PORT_RETRIES and "in use" in log.lower():
                continue
            state = "exited" if not process.alive() else f"did not accept connections within {timeout:g} s"
            raise StackError(f"PostgreSQL did not start: it {state}\n--- postgres log (end) ---\n{log}")
        yield cluster
    finally:
        if process is not None:
            Postgres(folder, 0, password, process).stop()
            process.log_path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


# -- S3 --------------------------------------------------------------------------------------------------------------


@dataclass
class S3Server:
    """A running S3 server (see :func:`s3_server`) and the credentials it takes."""

    process: procs.ServerProcess
    key: str = S3_KEY
    secret: str = S3_SECRET
    region: str = S3_REGION

    @property
    def url(self) -> str:
        """The endpoint, ``http://127.0.0.1:<port>``."""
        return self.process.url

    def env(self) -> dict[str, str]:
        """The variables every S3 client here reads (boto3, s3fs and DVC through botocore): the endpoint
        (``AWS_ENDPOINT_URL``, honoured by botocore since 1.28), the key, the secret and the region."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
        }

    def storage_options(self) -> dict:
        """The same settings as fsspec/s3fs options, for a :class:`~aml.mlops.datastore.DataStore` in a process
        whose environment does not carry them."""
        return {
            "endpoint_url": self.url,
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"region_name": self.region},
        }

    def client(self):
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def create_bucket(self, name: str) -> None:
        """Create the bucket ``name``."""
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextlib.contextmanager
def s3_server(buckets: Sequence[str] = (), timeout: float = 30.0) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port with ``buckets`` created, until the block ends."""
    if isinstance(buckets, str):
        raise TypeError(f"buckets must be a list of names, not the string {buckets!r}")
    with contextlib.ExitStack() as stack:

        def command(port: int):
            return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)], {}

        server = S3Server(_start_server("the S3 server (moto)", command, "/moto-api/", timeout, stack))
        for bucket in buckets:
            server.create_bucket(bucket)
        yield server


# -- MLflow ----------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str, artifacts: str, s3: S3Server | None = None, timeout: float = 120.0
) -> Iterator[procs.ServerProcess]:
    """``mlflow server`` on a free loopback port with ``backend_uri`` as backend store (a database URL) and
    artifacts proxied to ``artifacts`` (``s3://bucket/prefix``, or a folder): clients log and load artifacts
    through the server (``mlflow-artifacts:/``) and need no S3 settings; only the server gets ``s3``'s. The first
    start on a new database migrates it (about 15 s here)."""
    # no job runner (MLflow's GenAI jobs: seven more processes here, unused by the project) and no telemetry (a
    # thread that unsets an environment variable while requests reads the environment: a KeyError, seen here)
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    if s3 is not None:
        env.update(s3.env(), MLFLOW_S3_ENDPOINT_URL=s3.url)
    with contextlib.ExitStack() as stack:

        def command(port: int):
            return [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend_uri,
                "--artifacts-destination",
                artifacts,
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--workers",
                "1",
            ], env

        yield _start_server("the MLflow server", command, "/health", timeout, stack)


# -- the stack -------------------------------------------------------------------------------------------------------


@dataclass
class TeamStack:
    """The running team stack (see :func:`team_stack`): where each store is and how to reach it."""

    postgres: Postgres
    s3: S3Server
    mlflow: procs.ServerProcess
    bucket: str
    backend_uri: str  # the MLflow database, with its credentials

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking (and registry) URI: the server's URL."""
        return self.mlflow.url

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint URL."""
        return self.s3.url

    @property
    def data_store_url(self) -> str:
        """The project's data store: ``s3://<bucket>/data``."""
        return f"s3://{self.bucket}/data"

    @property
    def dvc_url(self) -> str:
        """The DVC remote: ``s3://<bucket>/dvc``."""
        return f"s3://{self.bucket}/dvc"

    @property
    def artifacts_url(self) -> str:
        """Where the MLflow server keeps artifacts (model files): ``s3://<bucket>/mlflow``."""
        return f"s3://{self.bucket}/mlflow"

    def service_env(self, token: str | None = None) -> dict[str, str]:
        """The environment of the project's service at team scale: the data store on S3 (with the S3 endpoint and
        credentials), the tracking server, no joblib exports (``AML_MODEL_STORE=none``: the registry is the model
        store), the jobs' lock in PostgreSQL, MLflow's telemetry off (see the code) and, given ``token``, the API
        token."""
        env = {
            "AML_DATA_STORE": self.data_store_url,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "AML_MODEL_STORE": "none",
            **self.s3.env(),
            # MLflow's telemetry thread, failing to fetch its settings offline, deletes a variable from os.environ
            # while requests iterates os.environ for the first request to the tracking server: a KeyError (seen)
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # the background jobs' lock (aml.mlops.jobs.LOCK_URL_ENV): an advisory lock in the team's database, so
            # replicas on several hosts run one training at a time
            "AML_JOBS_LOCK_URL": self.backend_uri,
        }
        if token is not None:
            env["AML_API_TOKEN"] = token
        return env

    def describe(self) -> dict[str, str]:
        """The stack's addresses for people (no passwords)."""
        return {
            "postgres": f"{self.postgres.host}:{self.postgres.port} (pid {self.postgres.pid})",
            "s3": f"{self.s3_endpoint} (pid {self.s3.process.proc.pid})",
            "mlflow": f"{self.tracking_uri} (pid {self.mlflow.proc.pid})",
            "data store": self.data_store_url,
            "artifacts": self.artifacts_url,
            "dvc remote": self.dvc_url,
        }


@contextlib.contextmanager
def team_stack(
    parent: str | Path | None = None, bucket: str = BUCKET, timeout: float = 120.0, database: str = "mlflow"
) -> Iterator[TeamStack]:
    """PostgreSQL, the S3 server (with ``bucket``) and an MLflow server on both until the block ends; everything is
    stopped in reverse order, also when the block or a start fails. PostgreSQL and the S3 server start side by
    side, then MLflow (which needs both). ``parent``: where PostgreSQL's folder goes (see :func:`postgres`)."""
    with contextlib.ExitStack() as stack:
        started: dict[str, object] = {}
        starting = postgres(parent, timeout)

        def start_postgres():  # in a thread, while the S3 server starts here
            try:
                started["cluster"] = starting.__enter__()
            except BaseException as exc:
                started["error"] = exc

        thread = threading.Thread(target=start_postgres, name="start-postgres")
        thread.start()
        try:
            s3 = stack.enter_context(s3_server([bucket], timeout=min(timeout, 60.0)))
        finally:
            thread.join()
            if "cluster" in started:
                stack.push(starting.__exit__)  # stopped with the rest, whatever happens next
        if "error" in started:
            raise started["error"]
        cluster: Postgres = started["cluster"]
        backend = cluster.create_database(database)
        tracking = stack.enter_context(mlflow_server(backend, f"s3://{bucket}/mlflow", s3, timeout))
        yield TeamStack(cluster, s3, tracking, bucket, backend)


# -- replicas and the balancer ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def replicas(
    command: Sequence[str],
    count: int = 2,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    path: str = "/health",
    timeout: float = 90.0,
) -> Iterator[list[procs.ServerProcess]]:
    """``count`` copies of a server ``command`` (``{port}`` filled in), each on its own free port, started side by
    side; yields them once each answers ``GET path``, and stops every one (side by side) when the block ends."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    ports: list[int] = []
    while len(ports) < count:
        port = procs.free_port()
        if port not in ports:
            ports.append(port)
    servers = [procs.ServerProcess(command, port, cwd=cwd, env=env) for port in ports]
    try:
        for server in servers:
            server.start()
        for number, server in enumerate(servers, 1):
            try:
                server.wait_ready(path, timeout)
            except procs.ServerError as exc:
                raise StackError(f"replica {number} of {count} did not start: {exc}") from None
        yield servers
    finally:  # side by side: a gunicorn replica takes a few seconds to stop
        stoppers = [threading.Thread(target=server.stop, name=f"stop-{server.port}") for server in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper, server in zip(stoppers, servers, strict=True):
            stopper.join()
            server.log_path.unlink(missing_ok=True)


def nginx_config(
    port: int, upstreams: Sequence[str], folder: str | Path, user: str | None = None, read_timeout_s: int = 600
) -> str:
    """The balancer's ``nginx.conf`` (:func:`aml.core.nginx.config`): listen on ``127.0.0.1:<port>``, round robin
    over ``upstreams`` (``host:port``), answer :data:`BALANCER_HEALTH` itself, keep every file in ``folder``;
    requests read whole before they reach a replica, short client timeouts and JSON errors as in front of one
    service (slow clients are held by nginx, not by the replicas' threads).

    ``proxy_next_upstream error timeout non_idempotent``: a request whose replica refuses the connection, resets
    it or dies before answering is passed to the next replica, POSTs included. Safe for this service: every
    endpoint writes its outputs to a new run and moves ``latest`` only when complete, and a job dies with its
    replica, so a request a dead replica did not finish can be repeated. What no balancer can repeat is a response
    whose header it had already passed on when the replica died before the body: the client gets a cut response
    (measured here: 5 cut responses in 40,515 requests over 12 kills; ``project/README.md``, "Team scale"). A replica that failed is left alone for
    ``fail_timeout`` (2 s) before it is tried again. ``user``: the account of the worker processes when nginx
    starts as root."""
    return nginx.config(
        f"{LOOPBACK}:{port}",
        upstreams,
        folder,
        max_body_bytes=BALANCER_MAX_BODY_BYTES,
        user=user,
        health_path=BALANCER_HEALTH,
        read_timeout_s=read_timeout_s,
        keepalive=32,
        next_upstream=True,
        worker_connections=2048,
        comment="generated by aml.ops.teamstack: a loopback balancer for tests, not a production configuration",
    )


@dataclass
class Balancer:
    """A running load balancer (see :func:`balancer`)."""

    process: procs.ServerProcess
    upstreams: list[str] = field(default_factory=list)
    folder: Path | None = None

    @property
    def url(self) -> str:
        """The one address clients use, ``http://127.0.0.1:<port>``."""
        return self.process.url


@contextlib.contextmanager
def balancer(upstreams: Sequence[str], timeout: float = 30.0, parent: str | Path | None = None) -> Iterator[Balancer]:
    """Debian's ``nginx`` on a free loopback port in front of ``upstreams`` (URLs or ``host:port``), run as a
    non-daemon child (``-g 'daemon off;'``) with its configuration (:func:`nginx_config`), PID file and temporary
    files in a new folder, until the block ends; then stopped by its PID and the folder removed."""
    binary = nginx_binary()
    if binary is None:
        raise StackError("the balancer did not start: nginx not found (apt-get install nginx, or set AML_NGINX)")
    hosts = [u.split("://", 1)[-1].rstrip("/") for u in upstreams]
    folder = nginx.new_folder("aml-nginx-", parent)
    try:
        with contextlib.ExitStack() as stack:

            def command(port: int):
                conf = folder / "nginx.conf"
                conf.write_text(nginx_config(port, hosts, folder, nginx.worker_user()))
                return nginx.command(binary, folder, conf), {}

            server = _start_server("the balancer (nginx)", command, BALANCER_HEALTH, timeout, stack)
            yield Balancer(server, hosts, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def kill(server: procs.ServerProcess) -> None:
    """Kill a server and everything in its process group at once with SIGKILL (a crashed replica, not a stop)."""
    if server.proc is None:
        raise ValueError("the server was never started")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()


def failover_under_load(
    url: str,
    body: Mapping,
    victim: procs.ServerProcess,
    clients: int = 4,
    seconds: float = 6.0,
    kill_after: float = 2.0,
    ok: Callable[[int, bytes], bool] | None = None,
) -> dict:
    """POST ``body`` to ``url`` (the balancer) from ``clients`` threads for ``seconds``
    (:func:`aml.ops.http_client.load_test`) and :func:`kill` ``victim`` ``kill_after`` seconds in. Returns
    the load test's figures (``requests``, ``errors``, ``statuses``, ``requests_per_s``, ``p50_ms``, ``p99_ms``)
    plus ``killed_pid`` and ``killed_at_s``."""
    from aml.ops.http_client import load_test

    killed: dict = {}

    def killer():
        time.sleep(kill_after)
        killed["pid"], killed["at"] = victim.proc.pid, kill_after
        kill(victim)

    thread = threading.Thread(target=killer, name="kill-replica", daemon=True)
    thread.start()
    result = load_test(url, [dict(body)], clients=clients, max_requests=10**9, max_seconds=seconds, ok=ok)
    thread.join(kill_after + 10)
    return {**result.as_dict(), "killed_pid": killed.get("pid"), "killed_at_s": killed.get("at")}


__all__ = [
    "BALANCER_HEALTH",
    "BUCKET",
    "Balancer",
    "Postgres",
    "S3Server",
    "StackError",
    "TeamStack",
    "balancer",
    "failover_under_load",
    "kill",
    "missing",
    "mlflow_server",
    "nginx_binary",
    "nginx_config",
    "postgres",
    "postgres_bin",
    "replicas",
    "s3_server",
    "team_stack",
]
