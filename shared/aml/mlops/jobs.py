"""Background jobs for the long-running stages: an endpoint answers ``202 Accepted`` with a job id at once, the work
runs in a thread, and ``GET /jobs/<id>`` reports its status, progress and result.

Why hand-written: a task queue (Celery, RQ) needs a broker service; the project needs far less, and two guarantees
that an in-memory job table cannot give under gunicorn's several worker processes:

- **One job of a kind at a time, across processes and threads.** :meth:`Jobs.submit` takes a non-blocking exclusive
  ``flock`` on ``<lock_dir>/<kind>.lock`` through a file descriptor of its own (so it also excludes other threads of
  the same process), or raises :class:`BusyError` naming the running job. The lock is held until the job's final
  record is written; the kernel releases it when the holding process dies, however it dies. The holder writes its job
  id into the lock file, so a refused caller learns which job is running.
- **Records that survive the service.** Each job is a JSON file ``jobs/<id>.json`` in the :class:`~aml.mlops.datastore.DataStore`
  (``queued`` -> ``running`` -> ``succeeded`` with ``result`` or ``failed`` with ``error``), so a restarted service
  still answers for it. A record that says ``queued``/``running`` while no process holds its kind's lock (or another
  job holds it) belongs to a dead process: :meth:`Jobs.get`, :meth:`Jobs.list` and :meth:`Jobs.recover` report and
  persist it as ``failed`` ("interrupted: ..."). Probing the lock holds it for microseconds only; :meth:`Jobs.submit`
  retries for a moment before it reports busy, so a probe never makes a submission fail.

The same locks serve short critical sections that are not jobs: :func:`exclusive` waits for a named lock of the
store (raw-data ingestion takes one, so that twenty concurrent ``/prepare`` on an empty store ingest the data once),
and :func:`current_job` tells code running inside a job which job it is (training tags its MLflow run with it, so a
run whose job died can be found and ended).

The locks are local files, so every process that shares the store's ``jobs/`` must share ``lock_dir`` (one host, or
one container with its worker processes); they are POSIX ``flock`` locks (Linux, macOS; gunicorn is POSIX-only too).
By default (:func:`default_lock_dir`) the folder follows the store: ``<store>/.locks`` for a local store, and for a
remote one (``s3://...``) a folder named after the store's URL under ``~/.cache/aml/locks``, so every replica on one
host that serves the same store shares the lock, and two stores never block each other. Replicas on several hosts
would each hold a lock of their own: they need a lock all of them see.

**Across hosts: PostgreSQL.** With :data:`LOCK_URL_ENV` (``AML_JOBS_LOCK_URL``) set to a database URL
(``postgresql://user:password@host:5432/db``; the team stack's database), or ``lock_url`` given, the kind's lock
is a PostgreSQL *session-level advisory lock* instead of a file (``_PgKindLock``): ``pg_try_advisory_lock``
on a 64-bit key derived from the store's URL and the kind (two stores never block each other), taken on a
connection of its own that the job holds until its final record is written. The database releases the lock when
that session ends, however it ends: the holder's process killed with ``kill -9`` closes its socket and its backend
exits at once; a host that vanishes without closing it is noticed by the server's TCP keepalives
(``tcp_keepalives_idle``/``_interval``/``_count`` on the server: its lease). The holder's job id is the session's
``application_name``, so a refused caller learns which job runs, read from ``pg_stat_activity``, and it vanishes
with the session (no rows to clean up). Why an advisory lock and not a lease row: the lease is then the session
itself, with no clock, renewal thread or expiry to tune, and PostgreSQL is already the team's shared component (the
MLflow database). The laptop default stays the ``flock`` folder: nothing to run.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from aml.core.reporting import jsonable
from aml.mlops.datastore import DataStore, StoreError, StoreNotFoundError, utc_now

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

FOLDER = "jobs"
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
ACTIVE = (QUEUED, RUNNING)
DONE = (SUCCEEDED, FAILED)
INTERRUPTED = "interrupted: the service stopped while the job was running (no process holds its lock)"
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: the setting that puts the job locks in PostgreSQL (a database URL): replicas on several hosts share them
LOCK_URL_ENV = "AML_JOBS_LOCK_URL"
#: the application name of a lock session before it holds a job (a job id afterwards)
_PG_APP = "aml-jobs"
#: ``<kind>-<YYYYMMDDTHHMMSSZ>-<8 hex>``
JOB_ID = re.compile(r"^(?P<kind>[a-z][a-z0-9_]{0,31})-(?P<time>\d{8}T\d{6}Z)-(?P<token>[0-9a-f]{8})$")

Report = Callable[[float, str], None]

#: the id of the job the current thread runs (set by :meth:`Jobs._run` for the job function's duration)
_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("aml_current_job", default=None)


def current_job() -> str | None:
    """The id of the job whose function is running in this thread (``None`` outside a job): lets a stage that runs
    as a job label what it writes elsewhere (an MLflow run) with the job that wrote it."""
    return _current_job.get()


class JobNotFoundError(LookupError):
    """No job with that id (or the id is not a job id)."""


class BusyError(RuntimeError):
    """A job of the same kind is running; ``job_id`` names it (``None`` in the instant before it has an id)."""

    def __init__(self, kind: str, job_id: str | None):
        self.kind = kind
        self.job_id = job_id
        super().__init__(f"a {kind} job is already running: {job_id or '(starting)'}")


class _KindLock:
    """A non-blocking exclusive ``flock`` on a fresh descriptor of ``path``; the file also names the holder's job."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held through another descriptor: another process, or another thread here
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def claim(self, job_id: str) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, job_id.encode(), 0)

    def holder(self) -> str | None:
        """The job id the holder wrote, or ``None`` (none yet, or half written)."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        return text if JOB_ID.match(text) else None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


class _PgKindLock:
    """A PostgreSQL session-level advisory lock on ``key``, taken on a connection of its own (so it also excludes
    other threads of the same process: advisory locks are re-entrant only within one session); the session's
    ``application_name`` names the holder's job."""

    def __init__(self, backend: _PgLocks, key: int):
        self.backend = backend
        self.key = key
        self._conn = None

    def try_acquire(self) -> bool:
        conn = self.backend.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                got = bool(cur.fetchone()[0])
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def claim(self, job_id: str) -> None:
        with self._conn.cursor() as cur:
            cur.execute("SELECT set_config('application_name', %s, false)", (job_id,))

    def holder(self) -> str | None:
        """The job id of the session holding the lock, or ``None`` (none, or not claimed yet)."""
        names = self.backend.query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database()) AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            _split_key(self.key),
        )
        text = names[0][0] if names else None
        return text if text and JOB_ID.match(text) else None

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # the session is gone: so is its lock
                log.warning("could not unlock job lock %d (the session ended: the lock went with it)", self.key)
            finally:
                conn.close()


def _split_key(key: int) -> tuple[int, int]:
    """A bigint advisory key as ``pg_locks`` shows it: ``classid`` (high 32 bits) and ``objid`` (low 32 bits)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


class _PgLocks:
    """The job locks of one store in the PostgreSQL database at ``url`` (see the module's docstring)."""

    def __init__(self, url: str, namespace: str):
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError(
                f"{LOCK_URL_ENV} must be a PostgreSQL URL such as postgresql://user:password@host:5432/db, "
                f"got one starting {scheme!r}"
            )
        self.dsn = f"postgresql://{rest}"  # SQLAlchemy's driver suffix (postgresql+psycopg2://) dropped
        self.namespace = namespace
        self.where = _redacted(self.dsn)
        self.query("SELECT 1")  # a database that cannot be reached stops the start, not the first /train

    def connect(self):
        import psycopg2

        try:
            conn = psycopg2.connect(
                self.dsn, connect_timeout=10, application_name=_PG_APP, keepalives=1, keepalives_idle=30
            )
        except psycopg2.Error as exc:
            raise RuntimeError(f"the job lock database {self.where} cannot be reached: {exc}".strip()) from None
        conn.autocommit = True
        return conn

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()

    def key(self, kind: str) -> int:
        """A signed 64-bit key of the store and the kind (the first 8 bytes of a SHA-256)."""
        digest = hashlib.sha256(f"aml.mlops.jobs\0{self.namespace}\0{kind}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def lock(self, kind: str) -> _PgKindLock:
        return _PgKindLock(self, self.key(kind))


def _redacted(dsn: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", dsn)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not KIND.match(kind):
        raise ValueError(f"job kind must be lower-case letters, digits and '_' (up to 32), got {kind!r}")
    return kind


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def default_lock_dir(store: DataStore) -> Path:
    """Where the locks of ``store``'s jobs live by default: ``<store>/.locks`` for a local store, else
    ``~/.cache/aml/locks/<first 16 hex digits of the SHA-256 of the store's URL>`` (one folder per store, shared by
    every process of this host)."""
    if store.root is not None:
        return store.root / ".locks"
    return Path.home() / ".cache" / "aml" / "locks" / hashlib.sha256(store.url.encode()).hexdigest()[:16]


def _make_lock(store: DataStore, name: str, lock_dir: str | Path | None, lock_url: str | None):
    """The lock ``name`` of ``store``: PostgreSQL's when a lock URL is given or set in :data:`LOCK_URL_ENV`, else a
    file in ``lock_dir`` (default :func:`default_lock_dir`)."""
    url = os.environ.get(LOCK_URL_ENV, "") if lock_url is None else lock_url
    if url.strip():
        return _PgLocks(url, store.url).lock(_check_kind(name))
    if fcntl is None:  # pragma: no cover - Windows
        raise RuntimeError("store locks need POSIX file locks (fcntl): run the service on Linux or macOS")
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    return _KindLock(folder / f"{_check_kind(name)}.lock")


@contextlib.contextmanager
def exclusive(
    store: DataStore,
    name: str,
    timeout: float = 120.0,
    lock_dir: str | Path | None = None,
    lock_url: str | None = None,
    poll: float = 0.01,
    max_poll: float = 0.25,
) -> Iterator[None]:
    """Hold the store's lock ``name`` for the ``with`` block, waiting up to ``timeout`` seconds for it: one holder
    at a time across the threads and processes that share the lock folder (``lock_dir``, default
    :func:`default_lock_dir`) or the PostgreSQL lock database (``lock_url``, default :data:`LOCK_URL_ENV`), as for
    :class:`Jobs`. The locks share one namespace with the job kinds: do not name a section after a kind of job.
    Raises :class:`TimeoutError` when the lock stays held (its holder is alive: a dead holder's lock is freed by the
    kernel or the database). The waits between attempts double from ``poll`` to ``max_poll`` seconds: each attempt
    on PostgreSQL is a connection of its own, so many waiters must not hammer the database."""
    lock = _make_lock(store, name, lock_dir, lock_url)
    deadline = time.monotonic() + timeout
    wait = poll
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the data store's {name!r} lock is still held by another process after {timeout:g} s")
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        wait = min(wait * 2, max_poll)
    try:
        yield
    finally:
        lock.release()


class Jobs:
    """Background jobs whose records live in ``store`` (``jobs/<id>.json``) and whose locks live in ``lock_dir``
    (default :func:`default_lock_dir`), or in the PostgreSQL database ``lock_url`` (default the environment's
    :data:`LOCK_URL_ENV`; unset or empty: the folder). ``locks`` says which: ``"flock"`` or ``"postgresql"``.

    ``progress_interval`` is the shortest time between two progress writes (default 0.5 s, i.e. at most 2 a second;
    the status changes are always written). Raises ``ValueError`` for a lock URL that is not PostgreSQL's and
    ``RuntimeError`` when its database cannot be reached."""

    def __init__(
        self,
        store: DataStore,
        lock_dir: str | Path | None = None,
        progress_interval: float = 0.5,
        lock_url: str | None = None,
    ):
        self.store = store
        url = os.environ.get(LOCK_URL_ENV, "") if lock_url is None else lock_url
        self._pg = _PgLocks(url, store.url) if url.strip() else None
        self.locks = "postgresql" if self._pg else "flock"
        if self._pg is None and fcntl is None:  # pragma: no cover - Windows
            raise RuntimeError("background jobs need POSIX file locks (fcntl): run the service on Linux or macOS")
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir(store)
        if self._pg is None:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.progress_interval = progress_interval
        self.busy_retry = 0.1  # seconds submit retries a held lock (a status probe holds it for microseconds)

    # -- storage -----------------------------------------------------------------------------------------------------

    def _lock(self, kind: str) -> _KindLock | _PgKindLock:
        if self._pg is not None:
            return self._pg.lock(_check_kind(kind))
        return _KindLock(self.lock_dir / f"{_check_kind(kind)}.lock")

    def _path(self, job_id: str) -> str:
        return f"{FOLDER}/{job_id}.json"

    def _save(self, record: dict) -> None:
        self.store.write_json(self._path(record["id"]), record)

    def _load(self, job_id: str) -> dict:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobNotFoundError(f"not a job id: {job_id!r}")
        try:
            return self.store.read_json(self._path(job_id))
        except StoreNotFoundError:
            raise JobNotFoundError(f"no job {job_id} (no {self._path(job_id)} in the data store)") from None

    # -- submitting --------------------------------------------------------------------------------------------------

    def submit(self, kind: str, fn: Callable[[Report], dict], params: dict | None = None) -> dict:
        """Run ``fn(report)`` in a background thread as a job of ``kind`` and return its first record (``queued``).

        ``report(fraction, message)`` records progress (0..1). ``fn`` returns a JSON-able dict, the job's
        ``result``; an exception fails the job with ``error`` ``"<ExceptionType>: message"`` (traceback logged).
        Raises :class:`BusyError` when a job of ``kind`` is running, in this or another process."""
        lock = self._lock(kind)
        params = jsonable(dict(params or {}))
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job params must be JSON-able: {exc}") from None
        deadline = time.monotonic() + self.busy_retry
        while not lock.try_acquire():
            if time.monotonic() >= deadline:
                raise BusyError(kind, lock.holder())
            time.sleep(0.005)
        try:
            job_id = f"{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
            lock.claim(job_id)
            record = {
                "id": job_id,
                "kind": kind,
                "status": QUEUED,
                "params": params,
                "created_at": utc_now(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "progress": 0.0,
                "message": "",
            }
            self._save(record)
            thread = threading.Thread(
                target=self._run, args=(dict(record), fn, lock), name=f"job-{job_id}", daemon=True
            )
            thread.start()
        except BaseException:
            lock.release()
            raise
        log.info("job %s submitted", job_id)
        return record

    def _run(self, record: dict, fn: Callable[[Report], dict], lock: _KindLock | _PgKindLock) -> None:
        guard = threading.Lock()  # fn may report from threads of its own
        state = {"last": time.monotonic(), "open": True}

        def save(what: str) -> None:
            try:
                self._save(record)
            except Exception:  # a store hiccup must not kill the job; the final write is retried below
                log.warning("job %s: could not write its %s record", record["id"], what, exc_info=True)

        def report(fraction: float, message: str = "") -> None:
            with guard:
                if not state["open"]:
                    return
                record["progress"] = min(max(float(fraction), 0.0), 1.0)
                record["message"] = str(message)
                now = time.monotonic()
                if now - state["last"] >= self.progress_interval:
                    state["last"] = now
                    save("progress")

        token = _current_job.set(record["id"])
        try:
            with guard:
                record.update(status=RUNNING, started_at=utc_now())
                save("running")
            try:
                result = fn(report)
                if result is None:
                    result = {}
                if not isinstance(result, dict):
                    raise TypeError(f"the job function returned {type(result).__name__}, not a dict")
                result = jsonable(result)
                json.dumps(result)
                outcome = {"status": SUCCEEDED, "result": result, "progress": 1.0}
                log.info("job %s succeeded", record["id"])
            except BaseException as exc:
                log.exception("job %s failed", record["id"])
                outcome = {"status": FAILED, "error": _error_text(exc)}
            with guard:
                state["open"] = False
                record.update(outcome, finished_at=utc_now())
                try:
                    self._save(record)
                except Exception:
                    log.exception(
                        "job %s: could not write its final record (it will read as interrupted)", record["id"]
                    )
        finally:
            _current_job.reset(token)
            lock.release()  # only now: a reader that finds the lock free knows the final record is written

    # -- reading -----------------------------------------------------------------------------------------------------

    def _lock_free(self, kind: str) -> tuple[bool, str | None]:
        """(whether no process holds ``kind``'s lock, the holder's job id if one is held). The probe takes and drops
        the lock at once, holding it across no I/O."""
        lock = self._lock(kind)
        if lock.try_acquire():
            lock.release()
            return True, None
        return False, lock.holder()

    def _checked(self, record: dict) -> dict:
        """``record``, or, when it says queued/running but its process is gone, the record marked failed (saved)."""
        if record.get("status") not in ACTIVE:
            return record
        free, holder = self._lock_free(record["kind"])
        if not free and (holder is None or holder == record["id"]):
            return record  # its own process holds the lock (or a new holder is still writing its id)
        # The lock was free (or held by another job) after the record said active. A live job holds the lock until
        # its final record is written, so a fresh read that still says active means the process died.
        fresh = self._load(record["id"])
        if fresh.get("status") not in ACTIVE:
            return fresh
        fresh.update(status=FAILED, error=INTERRUPTED, finished_at=utc_now())
        self._save(fresh)
        log.warning("job %s: %s", fresh["id"], INTERRUPTED)
        return fresh

    def get(self, job_id: str) -> dict:
        """The record of ``job_id``; :class:`JobNotFoundError` when there is none or ``job_id`` is not a job id."""
        return self._checked(self._load(job_id))

    def list(self, kind: str | None = None) -> list[dict]:
        """All job records (of ``kind``), oldest first."""
        if kind is not None:
            _check_kind(kind)
        records = []
        for name in self.store.list(FOLDER):
            match = JOB_ID.match(name.removesuffix(".json")) if name.endswith(".json") else None
            if match is None or (kind is not None and match["kind"] != kind):
                continue
            try:
                records.append(self.get(match.group(0)))
            except (JobNotFoundError, StoreError) as exc:  # removed or corrupt meanwhile: list the others
                log.warning("job record %s skipped: %s", name, exc)
        return sorted(records, key=lambda r: (r.get("created_at", ""), r["id"]))

    def running(self, kind: str) -> dict | None:
        """The queued or running job of ``kind``, or ``None``."""
        free, holder = self._lock_free(kind)
        if free:
            return None
        if holder is not None:
            with_id = self.get(holder)
            return with_id if with_id["status"] in ACTIVE else None
        return next((r for r in self.list(kind) if r["status"] in ACTIVE), None)

    def wait(self, job_id: str, timeout: float = 60.0, poll: float = 0.05) -> dict:
        """Poll until ``job_id`` has finished and return its record; :class:`TimeoutError` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record["status"] in DONE:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {record['status']} after {timeout:g} s")
            time.sleep(poll)

    def recover(self) -> list[dict]:
        """Mark every interrupted job failed (call on start-up); returns the records it marked."""
        marked = []
        for name in self.store.list(FOLDER):
            job_id = name.removesuffix(".json")
            if not name.endswith(".json") or not JOB_ID.match(job_id):
                continue
            try:
                record = self._load(job_id)
                if record.get("status") in ACTIVE:
                    checked = self._checked(record)
                    if checked["status"] == FAILED and checked.get("error") == INTERRUPTED:
                        marked.append(checked)
            except (JobNotFoundError, StoreError) as exc:
                log.warning("job record %s skipped: %s", name, exc)
        return marked
