"""The jobs' PostgreSQL lock (:mod:`aml.mlops.jobs`, ``AML_JOBS_LOCK_URL``) against a real PostgreSQL cluster
(:func:`aml.ops.teamstack.postgres`, a few seconds to start): the lock holds across :class:`Jobs` that share
nothing on disk (separate lock folders, as two hosts), names the running job, is freed by ``kill -9`` of the holder
(its session ends), whose record then reads interrupted; two stores never block each other. Under ``CI=true`` a
PostgreSQL that cannot start fails the module."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from aml.devtools import testenv
from aml.mlops import jobs as jobs_module
from aml.mlops.datastore import DataStore
from aml.mlops.jobs import INTERRUPTED, LOCK_URL_ENV, BusyError, Jobs
from aml.ops import teamstack
from tests.unit.mlops.test_jobs import blocker, start_child


@pytest.fixture(scope="module")
def lock_url():
    if teamstack.postgres_bin() is None:
        testenv.skip_or_fail("the PostgreSQL job lock needs PostgreSQL's initdb (apt-get install postgresql)")
    with teamstack.postgres() as cluster:
        yield cluster.create_database("aml_locks").replace("postgresql+psycopg2://", "postgresql://")


@pytest.fixture
def store(tmp_path):
    return DataStore(tmp_path / "store")


def host(store, tmp_path, name, lock_url):
    """A :class:`Jobs` as one host would have it: the shared store and database, a lock folder of its own."""
    return Jobs(store, tmp_path / f"{name}-locks", progress_interval=0, lock_url=lock_url)


def test_one_job_of_a_kind_across_hosts_that_share_no_folder(store, tmp_path, lock_url):
    first, second = host(store, tmp_path, "a", lock_url), host(store, tmp_path, "b", lock_url)
    assert first.locks == second.locks == "postgresql" and first.lock_dir != second.lock_dir
    fn, started, release = blocker()
    running = first.submit("train", fn)
    assert started.wait(10)
    with pytest.raises(BusyError) as info:
        second.submit("train", lambda report: {})
    assert info.value.job_id == running["id"]  # the holder's session names its job
    assert second.running("train")["id"] == running["id"]
    assert second.get(running["id"])["status"] == "running"  # not mistaken for an interrupted job
    with pytest.raises(BusyError):  # another thread of the same process: its own session, excluded too
        first.submit("train", lambda report: {})
    other = second.submit("prepare", lambda report: {})  # other kinds are not blocked
    assert second.wait(other["id"], timeout=10)["status"] == "succeeded"
    elsewhere = host(DataStore(tmp_path / "other-store"), tmp_path, "c", lock_url)  # nor other stores
    assert elsewhere.wait(elsewhere.submit("train", lambda report: {})["id"], timeout=10)["status"] == "succeeded"
    release.set()
    assert first.wait(running["id"], timeout=10)["status"] == "succeeded"
    assert second.running("train") is None
    assert second.wait(second.submit("train", lambda report: {"b": 1})["id"], timeout=10)["result"] == {"b": 1}


def test_concurrent_submissions_on_two_hosts_start_exactly_one(store, tmp_path, lock_url):
    hosts = [host(store, tmp_path, name, lock_url) for name in "ab"]
    fn, started, release = blocker()
    outcomes: list = []
    barrier = threading.Barrier(2)

    def submit(jobs):
        barrier.wait()
        try:
            outcomes.append(jobs.submit("train", fn)["id"])
        except BusyError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=submit, args=(jobs,)) for jobs in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    release.set()
    accepted = [o for o in outcomes if isinstance(o, str)]
    assert len(accepted) == 1 and len(outcomes) == 2, outcomes
    assert hosts[0].wait(accepted[0], timeout=10)["status"] == "succeeded"


def test_a_killed_holder_frees_the_lock_and_reads_interrupted(store, tmp_path, lock_url, monkeypatch):
    monkeypatch.setenv(LOCK_URL_ENV, lock_url)  # the child (another host) takes its lock URL from the setting
    other_host = Jobs(store, tmp_path / "child-locks")
    assert other_host.locks == "postgresql"
    child, job_id = start_child(other_host, "sleep")
    here = host(store, tmp_path, "here", lock_url)
    with pytest.raises(BusyError):
        here.submit("train", lambda report: {})
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 15  # the backend notices the closed socket at once; allow a loaded machine
    while here.running("train") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    record = here.get(job_id)
    assert record["status"] == "failed" and record["error"] == INTERRUPTED
    assert store.read_json(f"jobs/{job_id}.json")["error"] == INTERRUPTED  # persisted
    assert here.wait(here.submit("train", lambda report: {})["id"], timeout=10)["status"] == "succeeded"


def test_the_setting_chooses_the_backend_and_bad_urls_are_refused(store, tmp_path, lock_url, monkeypatch):
    monkeypatch.delenv(LOCK_URL_ENV, raising=False)
    assert Jobs(store, tmp_path / "locks").locks == "flock"  # the laptop default
    monkeypatch.setenv(LOCK_URL_ENV, "")
    assert Jobs(store, tmp_path / "locks").locks == "flock"
    monkeypatch.setenv(LOCK_URL_ENV, lock_url.replace("postgresql://", "postgresql+psycopg2://"))
    assert Jobs(store, tmp_path / "locks").locks == "postgresql"  # SQLAlchemy's form, as MLflow takes it
    with pytest.raises(ValueError, match="must be a PostgreSQL URL"):
        Jobs(store, lock_url="mysql://u:p@127.0.0.1/db")
    unreachable = f"postgresql://aml:secret-word@127.0.0.1:{teamstack.procs.free_port()}/aml_locks"
    with pytest.raises(RuntimeError, match="cannot be reached") as info:
        Jobs(store, lock_url=unreachable)
    assert "secret-word" not in str(info.value)


def test_keys_differ_by_store_and_kind_and_fit_postgres_bigint(lock_url):
    a, b = jobs_module._PgLocks(lock_url, "s3://a/data"), jobs_module._PgLocks(lock_url, "s3://b/data")
    keys = {a.key("train"), a.key("prepare"), b.key("train")}
    assert len(keys) == 3 and all(-(2**63) <= k < 2**63 for k in keys)
    assert a.key("train") == jobs_module._PgLocks(lock_url, "s3://a/data").key("train")  # stable across hosts


def test_exclusive_sections_across_hosts_in_postgresql(store, tmp_path, lock_url):
    """:func:`aml.mlops.jobs.exclusive` on the database: a second host (another lock folder) waits for the section,
    times out while it is held, enters once it is free; the waits back off, so a waiter opens a few connections a
    second, not a hundred."""
    attempts = []
    real = jobs_module._PgKindLock.try_acquire

    def counted(self):
        attempts.append(time.monotonic())
        return real(self)

    with jobs_module.exclusive(store, "ingest_raw", lock_dir=tmp_path / "a", lock_url=lock_url):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(jobs_module._PgKindLock, "try_acquire", counted)
            with pytest.raises(TimeoutError, match="'ingest_raw' lock is still held"):
                with jobs_module.exclusive(
                    store, "ingest_raw", timeout=1.0, lock_dir=tmp_path / "b", lock_url=lock_url
                ):
                    pass
        assert 3 <= len(attempts) <= 12, len(attempts)  # 10, 20, 40, ... 250 ms apart: 8 or so in one second
    with jobs_module.exclusive(store, "ingest_raw", timeout=10, lock_dir=tmp_path / "b", lock_url=lock_url):
        pass
