"""The project at team scale, on this machine's loopback: the same service, configured by URLs and credentials only,
over a PostgreSQL-backed MLflow server whose artifacts live in an S3 bucket (moto's server), with the data store
in the same bucket, two gunicorn replicas behind nginx, and DVC's remote in that bucket too
(:mod:`aml.ops.teamstack` starts every part; ``README.md``, "Team scale", has the set-up and the figures).

In order, sharing one stack: ``/prepare`` → ``/train`` (a job, polled through the balancer, so both replicas read
its record from S3) → batch ``/score`` → ``/evaluate``, with the data in S3, the registered versions in PostgreSQL
and the model files in the bucket; a new champion, then the operator's rollback to the previous version, reach both
replicas through their registry poll, with online scoring answering all along and no restart; 200 + 200 slow clients
at the balancer while online scoring answers; one replica killed
with SIGKILL under load, the failed requests counted (usually none; at most the responses cut mid-body); the
project's DVC pipeline (``dvc.yaml``'s profile stage) pushing to and pulling from ``s3://<bucket>/dvc``; the jobs'
lock in PostgreSQL across two replicas that share no folder (one training, the other 409; the holder killed with
SIGKILL frees it, its job reads interrupted). A part
that cannot start fails the tests under ``CI=true`` (skips elsewhere, when a program is missing).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from aml.core import datasets
from aml.devtools import testenv
from aml.mlops import registry, versioning
from aml.mlops.datastore import DataStore
from aml.ops import slowclients, teamstack
from aml.project import profile_stage
from aml.project.client import SystemClient
from aml.spam import MODEL_NAME

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
TOKEN = "scale-token-" + "z" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# --no-proxy: the balancer in front of the replicas already reads requests whole (aml.core.nginx)
COMMAND = [sys.executable, "src/app.py", "--server", "gunicorn", "--no-proxy", "--port", "{port}", "--workers", "1"]
SPAM = "WINNER! Claim your £1000 prize, call 09061701461"
#: online clients during the failover check
CLIENTS = 4
#: what the tests measured, printed by the last one (``pytest -s``) for the README's figures
FIGURES: dict = {}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    lacking = teamstack.missing()
    if lacking:
        testenv.skip_or_fail(f"the team stack needs {', '.join(lacking)}")
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # see TeamStack.service_env
        started = time.perf_counter()
        # a bucket of its own: the store's URL names the jobs' lock folder on this host (jobs.default_lock_dir), so
        # another stack running beside this one (another test worker) never holds this one's training lock
        team = stack.enter_context(teamstack.team_stack(bucket=f"aml-scale-{secrets.token_hex(4)}"))
        FIGURES["stack_start_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        servers = stack.enter_context(teamstack.replicas(COMMAND, 2, cwd=PROJECT, env=team.service_env(TOKEN)))
        lb = stack.enter_context(teamstack.balancer([s.url for s in servers]))
        FIGURES["replicas_start_s"] = round(time.perf_counter() - started, 1)
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=team.tracking_uri, registry_uri=team.tracking_uri)
        store = DataStore(team.data_store_url, storage_options=team.s3.storage_options())
        yield {"stack": team, "replicas": servers, "lb": lb, "client": client, "store": store, "state": {}}


def serving(replica) -> str | None:
    body = requests.get(f"{replica.url}/health", timeout=30).json()
    return (body.get("serving") or {}).get("version")


def wait_every_replica(servers, version: str, timeout: float = 60) -> float:
    """Seconds until every replica's ``/health`` reports ``version``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(serving(s) == version for s in servers):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(
        f"version {version} not served by every replica within {timeout} s: {[serving(s) for s in servers]}"
    )


def train(team, promote: bool = True) -> dict:
    """``POST /train`` through the balancer and wait for its job; the version gets the champion alias (from the
    gate, or from the operator when the gate held it back)."""
    url = team["lb"].url
    started = time.perf_counter()
    response = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=60)
    assert response.status_code == 202, response.text
    job = SystemClient(url, TOKEN).wait(response.json()["job"], timeout=300, poll=0.5)
    assert job["status"] == "succeeded", job
    FIGURES.setdefault("train_s", []).append(round(time.perf_counter() - started, 1))
    result = job["result"]
    if promote and not result["promoted"]:
        registry.promote(MODEL_NAME, result["model_version"], client=team["client"])
    return result


def test_the_flow_runs_on_postgres_and_s3(team):
    url, store, state, stack = team["lb"].url, team["store"], team["state"], team["stack"]
    started = time.perf_counter()
    prepared = requests.post(f"{url}/prepare", json={}, headers=AUTH, timeout=120)
    assert prepared.status_code == 200, prepared.text
    FIGURES["prepare_s"] = round(time.perf_counter() - started, 1)
    state["prepared"] = prepared.json()
    assert store.latest("split") == state["prepared"]["run"]  # the splits are in the bucket
    assert any(key.startswith("data/split/") for key in stack.s3.keys(stack.bucket, "data/"))

    result = train(team)
    assert result["model_version"] == "1" and result["export"] is None  # AML_MODEL_STORE=none: the registry only
    wait_every_replica(team["replicas"], "1")
    conn = stack.postgres.connect("mlflow")  # the registry's rows are in PostgreSQL ...
    with conn.cursor() as cur:
        cur.execute("select name, version from model_versions")
        assert cur.fetchall() == [(MODEL_NAME, 1)]
    conn.close()
    assert any(key.endswith("/model.pkl") for key in stack.s3.keys(stack.bucket, "mlflow/"))  # ... its files in S3

    online = requests.post(f"{url}/score", json={"text": SPAM}, timeout=30)
    assert online.status_code == 200 and online.json()["prediction"] is True and online.json()["model_version"] == "1"
    started = time.perf_counter()
    batch = requests.post(
        f"{url}/score", json={"input": state["prepared"]["outputs"]["test"]}, headers=AUTH, timeout=60
    )
    assert batch.status_code == 200, batch.text
    FIGURES["batch_score_s"] = round(time.perf_counter() - started, 2)
    scored = batch.json()
    assert scored["count"] == state["prepared"]["rows"]["test"] and store.exists(scored["output"])
    assert store.exists(scored["actions"])
    evaluated = requests.post(f"{url}/evaluate", json={"input": scored["output"]}, headers=AUTH, timeout=60)
    assert evaluated.status_code == 200, evaluated.text
    metrics = evaluated.json()["metrics"]
    assert metrics["aucpr"] > 0.97 and metrics["recall"] > 0.8
    assert store.read_json(evaluated.json()["output"])["metrics"]["aucpr"] == pytest.approx(metrics["aucpr"])
    FIGURES["test_aucpr"] = round(metrics["aucpr"], 4)


def test_a_new_champion_and_a_rollback_reach_every_replica_without_a_restart(team):
    if "prepared" not in team["state"]:
        pytest.skip("needs the data and the model of test_the_flow_runs_on_postgres_and_s3")
    url, servers = team["lb"].url, team["replicas"]
    pids = [s.proc.pid for s in servers]
    statuses: dict[int, int] = {}
    done = threading.Event()

    def online_scoring():  # through the balancer, all along the change
        with requests.Session() as session:
            while not done.is_set():
                code = session.post(f"{url}/score", json={"text": SPAM}, timeout=30).status_code
                statuses[code] = statuses.get(code, 0) + 1
                time.sleep(0.02)

    scorer = threading.Thread(target=online_scoring, daemon=True)
    scorer.start()
    try:
        result = train(team)  # on one replica; the other learns of it from the registry
        assert result["model_version"] == "2"
        assert registry.champion_version(MODEL_NAME, client=team["client"]) == "2"
        wait_every_replica(servers, "2")
        # the operator rolls back: the alias moves at a known moment, the replicas' poll (every 5 s) follows
        registry.promote(MODEL_NAME, "1", client=team["client"])
        FIGURES["rollback_on_every_replica_s"] = round(wait_every_replica(servers, "1"), 1)
    finally:
        done.set()
        scorer.join(30)
    assert [s.proc.pid for s in servers] == pids and all(s.alive() for s in servers)  # no restart
    assert set(statuses) == {200} and sum(statuses.values()) > 10, statuses
    FIGURES["online_scores_during_the_changes"] = statuses


def test_slow_clients_at_the_balancer_do_not_starve_the_replicas(team):
    """200 connections trickling headers and 200 trickling bodies at the balancer for 5 s, while online scoring
    through it answers 200 every time: nginx reads requests whole before a replica's threads (2 × 1 worker × 8,
    ``--no-proxy``) see them (:mod:`aml.core.nginx`)."""
    result = slowclients.probe_under_slow_clients(
        team["lb"].url + "/score", {"text": SPAM}, connections=200, seconds=5.0, timeout=5.0
    )
    print("through the balancer, under 200 + 200 slow clients:", result)
    assert result["errors"] == 0 and set(result["statuses"]) == {"200"} and result["requests"] >= 20, result
    assert all(held["open"] >= 180 for held in result["slow"].values()), result


def test_a_killed_replica_costs_at_most_a_cut_response_per_client(team):
    if "prepared" not in team["state"]:
        pytest.skip("needs the model of test_the_flow_runs_on_postgres_and_s3")
    lb, servers = team["lb"], team["replicas"]
    champion = registry.champion_version(MODEL_NAME, client=team["client"])
    wait_every_replica(servers, champion)
    victim, survivor = servers
    result = teamstack.failover_under_load(
        lb.url + "/score", {"text": SPAM}, victim, clients=CLIENTS, seconds=6.0, kill_after=2.0
    )
    FIGURES["failover"] = {k: result[k] for k in ("requests", "errors", "statuses", "requests_per_s", "p99_ms")}
    assert not victim.alive() and survivor.alive()
    assert result["requests"] > 100
    # nginx passes every request the dead replica refused, reset or left unanswered on to the other one
    # (proxy_next_upstream); what it cannot repeat is a response whose header it had already sent on when the replica
    # died before the body (a cut body: IncompleteRead here), at most the one request in flight per client
    lost = {status: n for status, n in result["statuses"].items() if status != "200"}
    report = f"{result}\n--- balancer log ---\n{lb.process.log(40)}"
    assert set(lost) <= {"IncompleteRead", "RemoteDisconnected"} and result["errors"] <= CLIENTS, report
    after = [requests.post(f"{lb.url}/score", json={"text": SPAM}, timeout=30).status_code for _ in range(20)]
    assert after == [200] * 20
    assert requests.get(f"{lb.url}/health", timeout=30).json()["serving"]["version"] == champion


def test_replicas_on_two_hosts_train_one_at_a_time_and_a_killed_holder_frees_the_lock(team, tmp_path):
    """Two more replicas that share nothing on disk (each its own home, so its own jobs' lock folder, as two hosts):
    concurrent ``/train`` through each → one 202, one 409 naming it; the holder killed with SIGKILL (its process
    group: gunicorn's master and the worker running the job) → PostgreSQL ends its session and the lock with it, the
    next ``/train`` on the other runs, and the killed job reads "interrupted"."""
    if "prepared" not in team["state"]:
        pytest.skip("needs the data of test_the_flow_runs_on_postgres_and_s3")
    env = team["stack"].service_env(TOKEN)
    assert env["AML_JOBS_LOCK_URL"].startswith("postgresql")  # the team's database holds the lock
    with contextlib.ExitStack() as stack:
        hosts = []
        for name in ("host-a", "host-b"):
            (tmp_path / name).mkdir()
            hosts += stack.enter_context(
                teamstack.replicas(COMMAND, 1, cwd=PROJECT, env={**env, "HOME": str(tmp_path / name)})
            )
        barrier = threading.Barrier(2)
        answers: dict[int, requests.Response] = {}

        def post(index: int) -> None:
            barrier.wait()
            answers[index] = requests.post(f"{hosts[index].url}/train", json={}, headers=AUTH, timeout=60)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        codes = sorted(a.status_code for a in answers.values())
        assert codes == [202, 409], {i: (a.status_code, a.text) for i, a in answers.items()}
        holder = next(i for i, a in answers.items() if a.status_code == 202)
        killed = answers[holder].json()["job"]
        assert killed in answers[1 - holder].json()["message"]  # the refused one names the running job
        victim, survivor = hosts[holder], hosts[1 - holder]
        started = time.perf_counter()
        teamstack.kill(victim)
        deadline = time.monotonic() + 30  # the backend sees the closed socket at once; room for a loaded machine
        while True:
            again = requests.post(f"{survivor.url}/train", json={}, headers=AUTH, timeout=60)
            if again.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert again.status_code == 202, again.text
        FIGURES["lock_free_after_kill_s"] = round(time.perf_counter() - started, 2)
        record = requests.get(f"{survivor.url}/jobs/{killed}", headers=AUTH, timeout=30).json()
        assert record["status"] == "failed" and record["error"].startswith("interrupted"), record
        done = SystemClient(survivor.url, TOKEN).wait(again.json()["job"], timeout=300, poll=0.5)
        assert done["status"] == "succeeded", done


def test_the_projects_dvc_pipeline_uses_the_same_bucket(team, tmp_path, monkeypatch):
    """project/dvc.yaml (the profile stage) in a scratch repository whose DVC remote is the team's bucket: the raw
    data and the profile are pushed there, and a clone without cache or files pulls them back."""
    stack = team["stack"]
    for key, value in stack.s3.env().items():  # the dvc commands' S3 credentials, as for any S3 client
        monkeypatch.setenv(key, value)
    started = time.perf_counter()
    raw = tmp_path / "SMSSpamCollection"
    collection = datasets.fetch("sms_spam") / "SMSSpamCollection"
    raw.write_bytes(b"".join(collection.read_bytes().splitlines(keepends=True)[:500]))
    remote = versioning.remote_settings("s3", stack.dvc_url, endpoint_url=stack.s3_endpoint)
    repo = profile_stage.init_repo(tmp_path / "scratch", raw=raw, remote=remote)  # raw data tracked and pushed
    profiled = profile_stage.reprofile(repo)  # dvc repro profile, commit dvc.lock, dvc push
    assert profiled.outcome == "ran" and profiled.rows == 500
    pushed = stack.s3.keys(stack.bucket, "dvc/")
    assert len(pushed) == 1 + len(profile_stage.REPORTS), pushed  # the raw file and the two profile files
    shutil.rmtree(repo / ".dvc" / "cache")
    for name in (profile_stage.RAW, *profile_stage.REPORTS):
        (repo / name).unlink()
    versioning.pull(repo)  # what a teammate's fresh clone does
    assert versioning.hashes(repo, list(profile_stage.REPORTS)) == profiled.profile_md5
    assert profile_stage.reprofile(repo).outcome == "skipped"  # the pulled data and profile are up to date
    FIGURES["dvc_init_push_pull_s"] = round(time.perf_counter() - started, 1)
    print("\nteam-scale figures:", json.dumps(FIGURES, sort_keys=True))
