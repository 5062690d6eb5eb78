"""End-to-end tests of the project's service as it runs in production: ``python src/app.py --server gunicorn``
(two worker processes) on a loopback port, over its own data store, MLflow registry and export folder.

The tests of this module share one set of stores and run in order: the service before any model (503 with what
to call first), auth and path confinement, prepare (20 at once on the empty store: the raw data stored once) →
train → score → evaluate, one training at a time with online scoring answering during it, monitoring (held-out SMS
not flagged, tweets flagged) and a shadow test, the registry fallback on start-up with a deliberately broken newest
version, a ``kill -9`` of the whole service during a ``/prepare`` and a training (the previous ``latest`` intact and
readable, the interrupted job reported as failed after the restart), and a ``kill -9`` right after a training
registered its version (after the restart its MLflow run is ended and the version tagged ``crashed``; the fallback
never tries it and serves the previous champion; every version broken, the 503 says to retrain or restore a
backup). The container and the CD hook are tested in
``integration_container.py``, the page in a real browser in ``integration_browser.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

from aml.core import datasets
from aml.devtools import testenv
from aml.mlops import registry, tracking
from aml.mlops.datastore import DataStore
from aml.ops import procs
from aml.spam import MODEL_NAME

pytestmark = pytest.mark.slow
EXPERIMENT = "sms-spam-filter-project"

PROJECT = Path(__file__).resolve().parents[1]
TOKEN = "integration-token-" + "y" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMMAND = [sys.executable, "src/app.py", "--server", "gunicorn", "--port", "{port}", "--workers", "2"]
HOSTILE = ["../x.csv", "/etc/passwd", ".secrets/api_token", "jobs/x.json", "C:\\x.csv", "s3://bucket/x.csv", "etc/x"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("system")
    env = testenv.project_environment(root, TOKEN)
    uri = env["MLFLOW_TRACKING_URI"]
    return {"env": env, "root": root, "uri": uri, "store": DataStore(root / "data"), "state": {}}


@contextlib.contextmanager
def service(stores):
    with procs.serve(COMMAND, cwd=PROJECT, env=stores["env"], timeout=90) as server:
        yield server


CONCURRENT_PREPARES = 20


def prepare_request(url: str) -> requests.Response:
    return requests.post(f"{url}/prepare", json={}, headers=AUTH, timeout=300)


def wait_job(url: str, job: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = requests.get(f"{url}/jobs/{job}", headers=AUTH, timeout=60).json()  # the token: the whole record
        if record["status"] in ("succeeded", "failed"):
            return record
        time.sleep(0.5)
    raise TimeoutError(f"job {job} still {record['status']} after {timeout} s")


def wait_served(url: str, version: str, timeout: float = 120) -> None:
    """Until online scoring answers with ``version`` a few times in a row (every worker has loaded it)."""
    deadline, streak = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and streak < 6:
        response = requests.post(f"{url}/score", json={"text": "hello"}, timeout=60)
        streak = streak + 1 if response.status_code == 200 and response.json()["model_version"] == version else 0
        time.sleep(0.1)
    assert streak >= 6, f"version {version} not served by every worker within {timeout} s"


def test_before_any_model_scoring_says_what_to_call_first(stores):
    with service(stores) as server:
        health = requests.get(f"{server.url}/health", timeout=60)
        assert health.status_code == 200 and health.json()["status"] == "no_model"
        response = requests.post(f"{server.url}/score", json={"text": "hello"}, timeout=60)
        assert response.status_code == 503
        assert "/train" in response.json()["message"] and "/prepare" in response.json()["message"]


def test_auth_and_path_confinement(stores):
    with service(stores) as server:
        for method, path, body in [
            ("post", "/prepare", {}),
            ("post", "/train", {}),
            ("post", "/evaluate", {"input": "predictions/x/predictions.csv"}),
            ("post", "/score", {"input": "split/x/test.csv"}),
            ("post", "/models/reload", {}),
        ]:
            missing = requests.request(method, server.url + path, json=body, timeout=60)
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = requests.request(method, server.url + path, json=body, headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 403 and wrong.json()["status"] == 403
        for hostile in HOSTILE:
            for path in ("/score", "/evaluate"):
                response = requests.post(server.url + path, json={"input": hostile}, headers=AUTH, timeout=60)
                assert response.status_code == 400, (path, hostile, response.text)
                assert response.json()["error"] == "Bad Request"
        assert not (stores["root"] / "data" / "predictions").exists()


def test_prepare_train_score_evaluate(stores):
    store, state = stores["store"], stores["state"]
    with service(stores) as server:
        url = server.url
        # 20 concurrent /prepare on the empty store (16 threads in the 2 workers, 4 waiting): the raw data is
        # stored once (content-addressed, under the store's ingest lock), every run prepared from that one file
        with ThreadPoolExecutor(max_workers=CONCURRENT_PREPARES) as pool:
            answers = list(pool.map(lambda _: prepare_request(url), range(CONCURRENT_PREPARES)))
        assert [a.status_code for a in answers] == [200] * CONCURRENT_PREPARES, [a.text for a in answers]
        assert len(store.runs("raw")) == 1, store.runs("raw")
        raw = {store.read_lineage("split", a.json()["run"])["inputs"]["raw"]["path"] for a in answers}
        assert raw == {store.run_path("raw", store.latest("raw"), "SMSSpamCollection")}
        state["prepared"] = next(a.json() for a in answers if a.json()["run"] == store.latest("split"))

        started = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=30)
        assert started.status_code == 202 and started.headers["Location"].endswith(started.json()["job"])
        job = wait_job(url, started.json()["job"])
        assert job["status"] == "succeeded", job
        assert job["result"]["model_version"] == "1" and job["result"]["promoted"]
        wait_served(url, "1")

        online = requests.post(f"{url}/score", json={"text": "WINNER! Claim your £1000 prize, call 09061701461"})
        assert online.json()["prediction"] is True and online.json()["model_version"] == "1"
        assert set(online.json()) == {"prediction", "propensity", "model_version"}

        test_split = state["prepared"]["outputs"]["test"]
        batch = requests.post(f"{url}/score", json={"input": test_split}, headers=AUTH, timeout=60)
        assert batch.status_code == 200, batch.text
        scored = batch.json()
        assert scored["count"] == state["prepared"]["rows"]["test"] and scored["output"].startswith("predictions/")
        assert store.exists(scored["actions"]) and store.latest("actions")

        evaluated = requests.post(f"{url}/evaluate", json={"input": scored["output"]}, headers=AUTH, timeout=60)
        assert evaluated.status_code == 200, evaluated.text
        metrics = evaluated.json()["metrics"]
        assert metrics["aucpr"] > 0.97 and metrics["precision"] >= 0.85 and metrics["recall"] > 0.8
        assert store.read_json(evaluated.json()["output"])["metrics"]["aucpr"] == pytest.approx(metrics["aucpr"])

        missing = requests.post(f"{url}/score", json={"input": "split/none/test.csv"}, headers=AUTH, timeout=60)
        assert missing.status_code == 404 and "split/none/test.csv" in missing.json()["message"]


def test_one_training_at_a_time_while_online_scoring_answers(stores):
    with service(stores) as server:
        url = server.url
        wait_served(url, "1")
        first = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=30)
        second = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=30)
        assert first.status_code == 202
        assert second.status_code == 409 and first.json()["job"] in second.json()["message"]

        def one(i: int) -> int:
            return requests.post(f"{url}/score", json={"text": f"message number {i}"}, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(one, range(50)))
        assert requests.get(f"{url}/jobs/{first.json()['job']}").json()["status"] == "running"  # scored during it
        assert codes == [200] * 50
        job = wait_job(url, first.json()["job"])
        assert job["status"] == "succeeded" and job["result"]["model_version"] == "2", job
        assert job["result"]["promoted"]  # same data, same model: as good as the champion
        wait_served(url, "2")


def test_monitoring_and_a_shadow_test_through_the_service(stores):
    """Batches scored by the running service are monitored: held-out SMS do not drift, tweets do; the evaluation
    watches performance and slices; a shadow test of version 1 against the champion (2) gets a recommendation."""
    store, state = stores["store"], stores["state"]
    tweets = pd.read_csv(datasets.fetch("tweet_sentiment") / "test.csv", usecols=["text"]).dropna().head(400)
    arrived = store.new_run("scoring")
    path = store.run_path("scoring", arrived, "tweets.csv")
    store.write_bytes(path, tweets.assign(id=[f"t{i}" for i in range(len(tweets))]).to_csv(index=False).encode())
    test_split = state["prepared"]["outputs"]["test"]
    with service(stores) as server:
        url = server.url
        wait_served(url, "2")
        sms_batch = requests.post(f"{url}/score", json={"input": test_split}, headers=AUTH, timeout=120).json()
        assert sms_batch["monitoring"]["drift"] is False, sms_batch["monitoring"]
        assert requests.get(f"{url}/monitoring", timeout=60).json()["batch"]["drift"] is False

        tweet_batch = requests.post(f"{url}/score", json={"input": path}, headers=AUTH, timeout=120).json()
        assert tweet_batch["monitoring"]["drift"] is True and "text:domain_auc" in tweet_batch["monitoring"]["drifted"]
        state_now = requests.get(f"{url}/monitoring", timeout=60).json()
        assert state_now["drift"] is True and state_now["batch"]["run"] == tweet_batch["run"]
        page = requests.get(url + state_now["pages"]["batch"], timeout=60)
        assert page.status_code == 200 and page.text.count("data:image/png;base64,") >= 9

        shadow = requests.post(
            f"{url}/score", json={"input": test_split, "challenger": "1"}, headers=AUTH, timeout=120
        ).json()
        assert shadow["experiment"]["mode"] == "shadow" and shadow["experiment"]["agreement"] > 0.95
        evaluated = requests.post(f"{url}/evaluate", json={"input": shadow["output"]}, headers=AUTH, timeout=120)
        assert evaluated.status_code == 200, evaluated.text
        monitored = evaluated.json()["monitoring"]
        assert monitored["drift"] is False, monitored["performance"]  # the champion performs as validated
        assert monitored["bias"]["worst"] and monitored["experiment"]["recommendation"] in ("promote", "keep")
        assert (monitored["experiment"]["champion_version"], monitored["experiment"]["challenger_version"]) == (
            "2",
            "1",
        )
        final = requests.get(f"{url}/monitoring", timeout=60).json()
        assert final["evaluation"]["run"] == evaluated.json()["run"] and final["batch"]["run"] == shadow["run"]
        assert requests.get(url + final["pages"]["evaluation"], timeout=60).status_code == 200


def test_a_broken_newest_version_falls_back_to_the_previous_one(stores):
    with tracking.using(stores["uri"], EXPERIMENT):
        assert registry.champion_version(MODEL_NAME) == "2"
        registry.corrupt_version(MODEL_NAME, "2")
    with service(stores) as server:
        health = requests.get(f"{server.url}/health", timeout=30).json()
        assert health["status"] == "ok" and health["fallback"] is True
        assert health["serving"]["version"] == "1" and [f["version"] for f in health["failures"]] == ["2"]
        assert "fallback" in health["warning"]
        online = requests.post(f"{server.url}/score", json={"text": "see you at lunch"}, timeout=60).json()
        assert online["model_version"] == "1"
        metrics = requests.get(f"{server.url}/metrics", timeout=60).text
        assert "aml_model_fallback 1.0" in metrics
        models = requests.get(f"{server.url}/models", timeout=60).json()
        assert models["champion"] == "2" and models["serving"]["version"] == "1"
        assert "cannot serve" in server.log() or "FALLBACK" in server.log()


def kill_service(server: procs.ServerProcess) -> None:
    os.killpg(server.proc.pid, signal.SIGKILL)  # master and workers: no graceful anything
    server.proc.wait()


def test_kill_9_during_prepare_and_training_loses_nothing(stores):
    store = stores["store"]
    before = store.latest("split")
    with service(stores) as server:
        url = server.url
        job = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=30).json()["job"]
        outcome: dict = {}

        def prepare() -> None:
            try:
                outcome["response"] = requests.post(f"{url}/prepare", json={"seed": 3}, headers=AUTH, timeout=60)
            except requests.RequestException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=prepare)
        thread.start()
        time.sleep(0.4)  # the data stage is under way (it takes about a second)
        kill_service(server)
        thread.join()
    latest = store.latest("split")
    # the old run, or the new one if the kill came after its pointer moved (the answer may still have been lost):
    # either way a complete run, as the hashes below check
    assert latest == before or latest in store.runs("split")
    if "response" in outcome:
        assert outcome["response"].json()["run"] == latest
    lineage = store.read_lineage("split", latest)
    for name in ("train", "validation", "test"):
        output = lineage["outputs"][name]
        assert store.sha256(output["path"]) == output["sha256"]  # complete, the file the lineage describes
    with service(stores) as server:
        record = requests.get(f"{server.url}/jobs/{job}", headers=AUTH, timeout=60).json()
        assert record["status"] == "failed" and record["error"].startswith("interrupted")
        with tracking.using(stores["uri"], EXPERIMENT):  # the killed training's run, if it had begun, is ended
            assert registry_runs("RUNNING") == []
        again = requests.post(f"{server.url}/prepare", json={}, headers=AUTH, timeout=60)
        assert again.status_code == 200


def registry_runs(status: str) -> list[str]:
    """The ids of the runs of the active experiment in ``status``."""
    import mlflow

    runs = mlflow.search_runs(filter_string=f"attributes.status = '{status}'", output_format="list")
    return [run.info.run_id for run in runs]


def newer_version(known: int, timeout: float = 300) -> str:
    """Poll the registry (every 20 ms) until a version above ``known`` is registered; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = registry.versions(MODEL_NAME)
        if newest and int(newest[0]) > known:
            return newest[0]
        time.sleep(0.02)
    raise TimeoutError(f"no version above {known} registered within {timeout} s")


def test_a_training_killed_after_registering_is_ended_and_its_version_never_serves(stores):
    """``kill -9`` of the service right after its training registered a version: after the restart the MLflow run
    is ended (KILLED when the kill came inside it), the version tagged ``crashed`` and the job failed; a later
    champion broken, the fallback serves the previous champion and never tries the crashed version; every version
    broken, the 503 says what to do."""
    import mlflow

    uri, root = stores["uri"], str(stores["root"])
    with tracking.using(uri, EXPERIMENT):
        known = int(registry.versions(MODEL_NAME)[0])
        champion = registry.champion_version(MODEL_NAME)
    with service(stores) as server:
        # a gate no model passes: the version is never promoted, however late the kill lands after registration
        started = requests.post(f"{server.url}/train", json={"min_aucpr": 0.9999}, headers=AUTH, timeout=30)
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        with tracking.using(uri, EXPERIMENT):
            crashed = newer_version(known)
            kill_service(server)
            record = mlflow.MlflowClient().get_model_version(MODEL_NAME, crashed)
            run_at_kill = mlflow.get_run(record.run_id)
    assert run_at_kill.data.tags["job_id"] == job  # the run carries its job from its creation
    print(f"run of the killed training at the kill: {run_at_kill.info.status}")  # KILLED below if RUNNING here
    one_worker = [*COMMAND[:-1], "1"]  # --workers 1: /models/reload below reaches the one worker that serves
    with procs.serve(one_worker, cwd=PROJECT, env=stores["env"], timeout=90) as server:  # cleans up, then serves
        url = server.url
        failed = requests.get(f"{url}/jobs/{job}", headers=AUTH, timeout=60).json()
        assert failed["status"] == "failed" and failed["error"].startswith("interrupted")
        with tracking.using(uri, EXPERIMENT):
            run = mlflow.get_run(record.run_id)
            tags = mlflow.MlflowClient().get_model_version(MODEL_NAME, crashed).tags
            assert registry.champion_version(MODEL_NAME) == champion
        expected = "KILLED" if run_at_kill.info.status == "RUNNING" else run_at_kill.info.status
        assert run.info.status == expected != "RUNNING", (run_at_kill.info.status, run.info.status)
        assert tags["crashed"] == "true" and job in tags["crashed_reason"]
        assert registry_runs("RUNNING") == []
        trained = requests.post(f"{url}/train", json={}, headers=AUTH, timeout=30)
        result = wait_job(url, trained.json()["job"])
        assert result["status"] == "succeeded" and result["result"]["promoted"], result
        newest = result["result"]["model_version"]
        assert int(newest) == int(crashed) + 1

        with tracking.using(uri, EXPERIMENT):
            registry.corrupt_version(MODEL_NAME, newest)  # the champion breaks; the crashed version is older now
        assert requests.post(f"{url}/models/reload", headers=AUTH, timeout=60).status_code == 200
        health = requests.get(f"{url}/health", timeout=60).json()
        assert health["serving"]["version"] == "1" and health["serving"]["standing"] == "previous champion"
        assert [f["version"] for f in health["failures"]] == [newest, "2"]  # never the crashed one
        assert health["fallback"] and "fallback" in health["warning"]

        with tracking.using(uri, EXPERIMENT):
            registry.corrupt_version(MODEL_NAME, "1")  # every version broken or crashed
        assert requests.post(f"{url}/models/reload", headers=AUTH, timeout=60).status_code == 200
        refused = requests.post(f"{url}/score", json={"text": "see you at lunch"}, timeout=60)
        assert refused.status_code == 503
        message = refused.json()["message"]
        assert f"v{newest}: " in message and "v2: " in message and "v1: " in message
        assert f"left out as crashed trainings: v{crashed}" in message
        assert "POST /train" in message and "python -m src.backup restore BACKUP DEST" in message
        health = requests.get(f"{url}/health", timeout=60)
        assert health.json()["status"] == "no_model" and health.json()["error"] == message
        assert root not in message and root not in health.text  # store-relative: no absolute path leaves
