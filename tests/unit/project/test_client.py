"""The service's Python client (:mod:`aml.project.client`) against the real app on a loopback port (werkzeug's
server in a thread, over empty stores): answers decoded, errors raised with their status and message."""

from __future__ import annotations

import pytest

from aml.devtools import testenv
from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.project import api
from aml.project.client import ServiceError, SystemClient

TOKEN = "client-token-" + "z" * 16


@pytest.fixture
def url(tmp_path):
    with tracking.using(tracking.new_store(tmp_path / "mlflow"), experiment="test-client"):
        app = api.create_app(DataStore(tmp_path / "data"), token=TOKEN, lock_dir=tmp_path / "locks", refresh_s=0)
        with testenv.serve_in_thread(app) as url:
            yield url


def broken_split(store: DataStore) -> str:
    """A split run whose files are there but hold no labelled data: a training passes the checks made before its
    job is queued, then fails in the job."""
    run = store.new_run("split")
    for name in ("train", "validation", "test"):
        store.write_text(store.run_path("split", run, f"{name}.csv"), "id,text\n1,hello\n")
    store.set_latest("split", run)
    return run


def test_answers_are_decoded(url):
    client = SystemClient(url + "/", TOKEN)
    assert client.url == url and client.health()["status"] == "no_model"
    assert client.models()["versions"] == []
    state = client.monitoring()
    assert (state["batch"], state["evaluation"], state["drift"]) == (None, None, False)
    assert "aml_model_ready 0.0" in client.metrics()


def test_errors_carry_the_status_and_the_message(url):
    client = SystemClient(url, TOKEN)
    with pytest.raises(ServiceError, match="HTTP 503: no model is registered yet") as caught:
        client.score("hello")
    assert caught.value.status == 503 and caught.value.body["status"] == 503
    with pytest.raises(ServiceError, match="HTTP 404: no batch monitored yet") as caught:
        client.monitoring_page("batch")
    assert caught.value.status == 404
    with pytest.raises(ServiceError, match="HTTP 401"):
        SystemClient(url).score_batch("scoring/x/messages.csv")  # no token
    with pytest.raises(ServiceError, match="HTTP 404: .*predictions/x/predictions.csv"):
        client.evaluate("predictions/x/predictions.csv")


def test_train_waits_for_the_job_and_a_failed_job_raises(url, tmp_path):
    client = SystemClient(url, TOKEN)
    with pytest.raises(ServiceError, match="HTTP 409: no split run .*call POST /prepare first"):
        client.train(wait=False)  # refused before a job is queued
    broken_split(DataStore(tmp_path / "data"))
    started = client.train(wait=False)
    assert started["status"] in ("queued", "running")
    seen = []
    with pytest.raises(ServiceError, match=f"job {started['job']} failed: KeyError") as caught:
        client.wait(started["job"], timeout=60, poll=0.1, progress=seen.append)
    assert caught.value.body["job"]["status"] == "failed" and seen[-1]["status"] == "failed"


def test_each_call_uses_a_fresh_connection(url):
    client = SystemClient(url, TOKEN)
    assert client.session.headers["Connection"] == "close"
    for _ in range(3):  # would reuse (and could race with the server's keep-alive close) without it
        assert client.health()["status"] == "no_model"
