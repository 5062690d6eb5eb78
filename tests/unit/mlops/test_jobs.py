import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from aml.mlops import jobs as jobs_module
from aml.mlops.datastore import DataStore
from aml.mlops.jobs import INTERRUPTED, JOB_ID, BusyError, JobNotFoundError, Jobs


@pytest.fixture
def store(tmp_path):
    return DataStore(tmp_path / "store")


@pytest.fixture
def jobs(store, tmp_path):
    return Jobs(store, tmp_path / "locks", progress_interval=0)


def blocker():
    """A job function that runs until the test sets the event (no timing guesses)."""
    started, release = threading.Event(), threading.Event()

    def fn(report):
        started.set()
        assert release.wait(30)
        return {"done": True}

    return fn, started, release


def test_success_with_progress_and_result(jobs, store):
    seen = {}

    def train(report):
        report(0.25, "loading")
        seen["mid"] = jobs.running("train")  # the store already shows the progress
        report(0.75, "fitting")
        return {"aucpr": 0.9, "model": "v3"}

    job = jobs.submit("train", train, {"C": 1.0})
    assert JOB_ID.match(job["id"]) and job["id"].startswith("train-")
    assert job["status"] == "queued" and job["progress"] == 0.0 and job["message"] == ""
    assert job["params"] == {"C": 1.0} and job["pid"] == os.getpid() and job["host"] and job["created_at"]
    done = jobs.wait(job["id"], timeout=10)
    assert done["status"] == "succeeded" and done["result"] == {"aucpr": 0.9, "model": "v3"}
    assert done["progress"] == 1.0 and done["message"] == "fitting"
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert (
        seen["mid"]["status"] == "running" and seen["mid"]["progress"] == 0.25 and seen["mid"]["message"] == "loading"
    )
    assert "error" not in done


def test_records_are_json_files_in_the_store(jobs, store):
    job = jobs.submit("prepare", lambda report: {"rows": 5})
    jobs.wait(job["id"], timeout=10)
    assert store.list("jobs") == [f"{job['id']}.json"]
    on_disk = json.loads((store.root / "jobs" / f"{job['id']}.json").read_text())
    assert on_disk == jobs.get(job["id"]) and on_disk["result"] == {"rows": 5}


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_failure_records_the_error(jobs, monkeypatch):
    handler = Records()  # on the module's logger itself: another test may have stopped "aml" propagating
    monkeypatch.setattr(logging.getLogger("aml.mlops.jobs"), "handlers", [handler])

    def broken(report):
        report(0.5, "half")
        raise ValueError("no training data")

    job = jobs.submit("train", broken)
    done = jobs.wait(job["id"], timeout=10)
    assert done["status"] == "failed" and done["error"] == "ValueError: no training data"
    assert done["progress"] == 0.5 and "result" not in done and done["finished_at"]
    assert any(r.exc_info and "no training data" in str(r.exc_info[1]) for r in handler.records)  # traceback logged
    again = jobs.submit("train", lambda report: {})  # the lock was released
    assert jobs.wait(again["id"], timeout=10)["status"] == "succeeded"


def test_result_must_be_a_json_able_dict(jobs):
    job = jobs.submit("train", lambda report: [1, 2])
    assert jobs.wait(job["id"], timeout=10)["error"].startswith("TypeError: the job function returned list")
    job = jobs.submit("train", lambda report: {"model": object()})
    assert jobs.wait(job["id"], timeout=10)["error"].startswith("TypeError")
    with pytest.raises(ValueError, match="JSON-able"):
        jobs.submit("train", lambda report: {}, {"x": object()})


def test_progress_writes_are_rate_limited(store, tmp_path, monkeypatch):
    jobs = Jobs(store, tmp_path / "locks", progress_interval=60)
    saves = []
    real = jobs._save
    monkeypatch.setattr(jobs, "_save", lambda record: (saves.append(record["status"]), real(record)))

    def chatty(report):
        for i in range(100):
            report(i / 100, f"step {i}")
        return {}

    done = jobs.wait(jobs.submit("train", chatty)["id"], timeout=10)
    assert saves == ["queued", "running", "succeeded"]  # 100 reports, no progress write within 60 s
    assert done["message"] == "step 99"


def test_busy_in_the_same_process(jobs):
    fn, started, release = blocker()
    first = jobs.submit("train", fn)
    assert started.wait(10)
    assert jobs.running("train")["id"] == first["id"]
    errors = []

    def other_thread():
        try:
            jobs.submit("train", lambda report: {})
        except BusyError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert [e.job_id for e in errors] == [first["id"]] and first["id"] in str(errors[0])
    with pytest.raises(BusyError):  # a second Jobs object (another worker's) sees it too
        Jobs(jobs.store, jobs.lock_dir).submit("train", lambda report: {})
    other = jobs.submit("prepare", lambda report: {})  # other kinds are not blocked
    assert jobs.wait(other["id"], timeout=10)["status"] == "succeeded"
    assert jobs.get(first["id"])["status"] == "running"  # not mistaken for an interrupted job
    release.set()
    assert jobs.wait(first["id"], timeout=10)["status"] == "succeeded"
    assert jobs.running("train") is None
    after = jobs.submit("train", lambda report: {"again": 1})
    assert jobs.wait(after["id"], timeout=10)["result"] == {"again": 1}


CHILD = textwrap.dedent(
    """
    import sys, time
    from aml.mlops.datastore import DataStore
    from aml.mlops.jobs import Jobs
    jobs = Jobs(DataStore(sys.argv[1]), sys.argv[2])
    def fn(report):
        report(0.1, "waiting")
        if sys.argv[3] == "stdin":
            sys.stdin.readline()
        else:
            time.sleep(60)
        return {"child": True}
    job = jobs.submit("train", fn)
    while jobs.get(job["id"])["status"] == "queued":
        time.sleep(0.01)
    print(job["id"], flush=True)
    jobs.wait(job["id"], timeout=60)
    """
)


def start_child(jobs, mode):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, jobs.store.url, str(jobs.lock_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    job_id = child.stdout.readline().strip()
    assert JOB_ID.match(job_id), job_id
    return child, job_id


def test_busy_across_processes(jobs):
    child, job_id = start_child(jobs, "stdin")
    try:
        assert jobs.get(job_id)["status"] == "running" and jobs.get(job_id)["pid"] == child.pid
        with pytest.raises(BusyError) as info:
            jobs.submit("train", lambda report: {})
        assert info.value.job_id == job_id
        assert jobs.running("train")["id"] == job_id
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(30) == 0
    finally:
        child.kill()
        child.wait()
    assert jobs.get(job_id)["status"] == "succeeded" and jobs.get(job_id)["result"] == {"child": True}
    assert jobs.wait(jobs.submit("train", lambda report: {})["id"], timeout=10)["status"] == "succeeded"


def test_killed_job_reported_interrupted(jobs, store, tmp_path):
    child, job_id = start_child(jobs, "sleep")
    child.send_signal(signal.SIGKILL)
    child.wait()
    raw = store.read_json(f"jobs/{job_id}.json")
    assert raw["status"] == "running"  # the dead process could not write anything more
    fresh = Jobs(store, tmp_path / "locks")  # the restarted service
    record = fresh.get(job_id)
    assert record["status"] == "failed" and record["error"] == INTERRUPTED and record["finished_at"]
    assert store.read_json(f"jobs/{job_id}.json")["status"] == "failed"  # persisted
    assert [r["id"] for r in fresh.list("train")] == [job_id]
    assert fresh.running("train") is None
    assert fresh.wait(fresh.submit("train", lambda report: {})["id"], timeout=10)["status"] == "succeeded"


def test_recover_and_list(jobs, store):
    fn, started, release = blocker()
    live = jobs.submit("train", fn)
    assert started.wait(10)
    dead = {**live, "id": "prepare-20260101T000000Z-0123abcd", "kind": "prepare", "status": "running"}
    store.write_json(f"jobs/{dead['id']}.json", dead)  # a record whose process is gone
    stale = {**live, "id": "train-20260101T000000Z-89abcdef", "status": "queued", "created_at": "2026-01-01"}
    store.write_json(f"jobs/{stale['id']}.json", stale)  # its kind's lock is held by another (live) job
    store.write_text("jobs/notes.txt", "ignored")
    store.write_text("jobs/train-20260101T000000Z-00000000.json", "{broken")
    marked = jobs.recover()
    assert sorted(r["id"] for r in marked) == sorted([dead["id"], stale["id"]])
    assert all(r["error"] == INTERRUPTED for r in marked)
    assert jobs.get(live["id"])["status"] == "running"
    assert jobs.recover() == []
    assert [r["id"] for r in jobs.list("train")] == [stale["id"], live["id"]]  # oldest first
    assert {r["id"] for r in jobs.list()} == {live["id"], dead["id"], stale["id"]}
    release.set()
    jobs.wait(live["id"], timeout=10)


@pytest.mark.parametrize(
    "job_id",
    [
        "../x",
        "train-../../etc",
        "train-../../etc/passwd",
        "",
        "train",
        "jobs/train-20260101T000000Z-0123abcd",
        "train-20260101T000000Z-0123ABCD",
        "train-20260101T000000Z-0123abcd.json",
        "Train-20260101T000000Z-0123abcd",
        None,
        42,
    ],
)
def test_malformed_ids(jobs, job_id):
    with pytest.raises(JobNotFoundError, match="not a job id"):
        jobs.get(job_id)


def test_unknown_id(jobs, store):
    with pytest.raises(JobNotFoundError, match="no job train-20260101T000000Z-0123abcd") as info:
        jobs.get("train-20260101T000000Z-0123abcd")
    assert "jobs/train-20260101T000000Z-0123abcd.json" in str(info.value)  # the store path looked at
    assert store.root is None or str(store.root) not in str(info.value)  # never the server's folder (an API answer)
    with pytest.raises(JobNotFoundError):
        jobs.wait("train-20260101T000000Z-0123abcd", timeout=1)


def test_bad_kinds_and_wait_timeout(jobs):
    for kind in ("../x", "Train", "", "a-b", "x" * 40):
        with pytest.raises(ValueError, match="job kind"):
            jobs.submit(kind, lambda report: {})
    with pytest.raises(ValueError):
        jobs.list("../x")
    fn, started, release = blocker()
    job = jobs.submit("train", fn)
    with pytest.raises(TimeoutError, match="still"):
        jobs.wait(job["id"], timeout=0.05)
    release.set()
    jobs.wait(job["id"], timeout=10)


def test_a_status_probe_does_not_fail_a_submission(jobs, monkeypatch):
    # a probe (get/running) holds the lock for an instant; submit retries before it reports busy
    jobs.busy_retry = 10  # generous, so that a slow machine cannot make the test flaky
    probe = jobs_module._KindLock(Path(jobs.lock_dir) / "train.lock")
    assert probe.try_acquire()
    timer = threading.Timer(0.02, probe.release)
    timer.start()
    job = jobs.submit("train", lambda report: {})
    timer.join()
    assert jobs.wait(job["id"], timeout=10)["status"] == "succeeded"


def test_no_spam_import():
    assert "aml.spam" not in Path(jobs_module.__file__).read_text()


def test_the_default_lock_folder_follows_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    local = DataStore(tmp_path / "store")
    assert jobs_module.default_lock_dir(local) == local.root / ".locks"
    assert Jobs(local).lock_dir == local.root / ".locks"
    # a remote store: one folder per store URL in this host's cache, the same for every replica serving that store
    first, again, other = DataStore("memory://team/a"), DataStore("memory://team/a/"), DataStore("memory://team/b")
    folder = jobs_module.default_lock_dir(first)
    assert folder.parent == tmp_path / "home" / ".cache" / "aml" / "locks" and len(folder.name) == 16
    assert jobs_module.default_lock_dir(again) == folder != jobs_module.default_lock_dir(other)
    assert Jobs(first).lock_dir == folder and folder.is_dir()


# -- store locks and the current job ---------------------------------------------------------------------------------


def test_exclusive_admits_one_holder_at_a_time_across_threads_and_objects(store, tmp_path):
    inside, most = [], []
    guard = threading.Lock()

    def section(i: int) -> None:
        with jobs_module.exclusive(store, "section", lock_dir=tmp_path / "locks"):
            with guard:
                inside.append(i)
                most.append(len(inside))
            threading.Event().wait(0.01)
            with guard:
                inside.remove(i)

    threads = [threading.Thread(target=section, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(most) == 8 and max(most) == 1
    with jobs_module.exclusive(store, "section", lock_dir=tmp_path / "locks"):
        with pytest.raises(TimeoutError, match="'section' lock is still held"):
            with jobs_module.exclusive(store, "section", timeout=0.05, lock_dir=tmp_path / "locks"):
                pass
        with jobs_module.exclusive(store, "other", timeout=0.05, lock_dir=tmp_path / "locks"):
            pass  # another name is another lock
    with pytest.raises(ValueError, match="job kind"):
        with jobs_module.exclusive(store, "../x"):
            pass


def test_exclusive_waits_for_another_process_and_a_killed_holder_frees_it(store, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from aml.mlops.datastore import DataStore\n"
            "from aml.mlops import jobs\n"
            "with jobs.exclusive(DataStore(sys.argv[1]), 'section', lock_dir=sys.argv[2]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            store.url,
            str(tmp_path / "locks"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            with jobs_module.exclusive(store, "section", timeout=0.1, lock_dir=tmp_path / "locks"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with jobs_module.exclusive(store, "section", timeout=10, lock_dir=tmp_path / "locks"):
            pass  # the kernel released the dead holder's lock
    finally:
        holder.kill()
        holder.wait()


def test_current_job_names_the_job_inside_its_function_only(jobs):
    assert jobs_module.current_job() is None
    record = jobs.submit("train", lambda report: {"inside": jobs_module.current_job()})
    assert jobs.wait(record["id"], timeout=10)["result"] == {"inside": record["id"]}
    assert jobs_module.current_job() is None
