"""The project's HTTP service (:mod:`aml.project.api`) through Flask's test client, over real stores: a data store folder
and a scratch MLflow registry per module (or per test, for the service before any model).

One real model is trained once for the module, through the API itself (``POST /prepare``, ``POST /train``, polling
``GET /jobs/<id>``): TF-IDF + naive Bayes (served as the full model) on the first 1000 messages of the SMS
collection, so it takes seconds. The last test trains a linear SVM (served by the lean scorer) as version 2, then
breaks it on purpose to see the service fall back to version 1. The same service as a real gunicorn process is
tested in ``project/test/integration.py``, its page in a real browser in ``project/test/integration_browser.py``.
"""

from __future__ import annotations

import contextlib
import json
import re
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from werkzeug.exceptions import BadRequest

from aml.core import datasets
from aml.devtools.fixtures import HAM_EXAMPLES, SPAM_EXAMPLES
from aml.mlops import experiments, registry, tracking
from aml.mlops.datastore import DataStore
from aml.project import api, handlers, system
from aml.spam import MODEL_NAME, sms

TOKEN = "unit-test-token-" + "z" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}
FAST = {"model": "tfidf_naive_bayes", "params": {}, "max_gap": 0.1, "min_aucpr": 0.9}
MAX_BYTES = 4096
RAW_LINES = 1000
HOSTILE = [
    "../x.csv",
    "/etc/passwd",
    ".secrets/api_token",
    "jobs/x.json",
    "C:\\x.csv",
    "s3://bucket/x.csv",
    "unknown/x.csv",
    "split/../.secrets/api_token",
    "split/.hidden/x.csv",
    "~/x.csv",
    "",
    5,
    None,
]


def sms_slice(path: Path, lines: int = RAW_LINES) -> Path:
    """The first ``lines`` messages of the SMS collection (the dataset registry's copy) as a raw file."""
    collection = datasets.fetch("sms_spam") / sms.FILENAME
    path.write_bytes(b"".join(collection.read_bytes().splitlines(keepends=True)[:lines]))
    return path


def wait_job(client, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 200, response.json
        if response.json["status"] in ("succeeded", "failed"):
            return response.json
        assert time.monotonic() < deadline, f"job {job_id} still {response.json['status']} after {timeout} s"
        time.sleep(0.2)


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.json
    assert body["status"] == status and body["error"] and body["message"]
    return body


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Stores where the data stage ran and version 1 (naive Bayes) was trained through the API, and its app
    (token :data:`TOKEN`, body limit :data:`MAX_BYTES`, no registry polling); MLflow points at the module's store
    while the module's tests run."""
    root = tmp_path_factory.mktemp("api")
    uri = tracking.new_store(root / "mlflow")
    with tracking.using(uri, experiment="test-api"):
        store = DataStore(root / "data")
        system.ingest_raw(store, sms_slice(root / "SMSSpamCollection"))
        app = api.create_app(
            store, {"train": FAST}, token=TOKEN, lock_dir=root / "locks", max_bytes=MAX_BYTES, refresh_s=0
        )
        client = app.test_client()
        prepared = client.post("/prepare", json={}, headers=AUTH)
        assert prepared.status_code == 200, prepared.json
        started = client.post("/train", json={}, headers=AUTH)
        assert started.status_code == 202, started.json
        job = wait_job(client, started.json["job"])
        assert job["status"] == "succeeded", job
        yield SimpleNamespace(
            app=app, client=client, store=store, root=root, prepared=prepared.json, started=started, job=job
        )


@pytest.fixture
def client(served):
    return served.client


@pytest.fixture
def fresh(tmp_path):
    """A service over empty stores of this test's own (nothing prepared, no model registered)."""
    uri = tracking.new_store(tmp_path / "mlflow")
    with tracking.using(uri, experiment="test-api-fresh"):
        store = DataStore(tmp_path / "data")
        app = api.create_app(store, {"train": FAST}, token=TOKEN, lock_dir=tmp_path / "locks", refresh_s=0)
        yield SimpleNamespace(app=app, client=app.test_client(), store=store, root=tmp_path)


# -- the token -------------------------------------------------------------------------------------------------------


def test_token_from_the_environment(tmp_path):
    store = DataStore(tmp_path / "store")
    assert api.resolve_token(store, {"AML_API_TOKEN": " secret-token \n"}) == ("secret-token", "$AML_API_TOKEN")
    assert not (tmp_path / "store").exists()  # nothing generated


def test_token_file_must_be_private_and_not_empty(tmp_path):
    store = DataStore(tmp_path / "store")
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    path.chmod(0o644)
    with pytest.raises(api.ConfigError, match="readable by others"):
        api.resolve_token(store, {"AML_API_TOKEN_FILE": str(path)})
    path.chmod(0o600)
    assert api.resolve_token(store, {"AML_API_TOKEN_FILE": str(path)}) == ("from-a-file", str(path))
    path.write_text("  \n")
    with pytest.raises(api.ConfigError, match="empty"):
        api.resolve_token(store, {"AML_API_TOKEN_FILE": str(path)})
    with pytest.raises(api.ConfigError, match="no such file"):
        api.resolve_token(store, {"AML_API_TOKEN_FILE": str(tmp_path / "absent")})


def test_token_generated_once_with_mode_0600_and_reused(tmp_path):
    store = DataStore(tmp_path / "store")
    token, where = api.resolve_token(store, {})
    path = tmp_path / "store" / ".secrets" / "api_token"
    assert where == str(path) and len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert api.resolve_token(store, {}) == (token, where)  # reused, not replaced
    path.chmod(0o640)
    with pytest.raises(api.ConfigError, match="readable by others"):
        api.resolve_token(store, {})
    path.chmod(0o600)
    path.write_text("")
    with pytest.raises(api.ConfigError, match="empty"):
        api.resolve_token(store, {})


def test_token_for_a_remote_store_must_be_given():
    with pytest.raises(api.ConfigError, match="AML_API_TOKEN"):
        api.resolve_token(DataStore("memory://aml-api-test"), {})


def test_create_app_uses_the_resolved_token(tmp_path, monkeypatch):
    monkeypatch.delenv("AML_API_TOKEN", raising=False)
    monkeypatch.delenv("AML_API_TOKEN_FILE", raising=False)
    store = DataStore(tmp_path / "store")
    client = api.create_app(store, lock_dir=tmp_path / "locks", refresh_s=0).test_client()
    token = (tmp_path / "store" / ".secrets" / "api_token").read_text().strip()
    right = client.post("/evaluate", json={"input": "nowhere"}, headers={"Authorization": f"Bearer {token}"})
    assert_json_error(right, 400)  # past auth (the path is refused)
    assert_json_error(client.post("/evaluate", json={"input": "nowhere"}, headers=AUTH), 403)


def test_a_bad_configuration_file_stops_the_start(tmp_path):
    with pytest.raises(system.StageError, match="unknown model"):
        api.create_app(DataStore(tmp_path), {"train": {"model": "nope"}}, token=TOKEN, lock_dir=tmp_path / "l")


# -- request helpers -------------------------------------------------------------------------------------------------


def test_json_body(tmp_path):
    app = api.create_app(DataStore(tmp_path), token=TOKEN, lock_dir=tmp_path / "locks", refresh_s=0)
    for body, expected in [(b"", {}), (b"  \n", {}), (b'{"a": [1]}', {"a": [1]})]:
        with app.test_request_context("/x", method="POST", data=body, content_type="application/json"):
            assert api.json_body() == expected
    for body in (b"[1, 2]", b'"text"', b"null", b"{bad", b"\xff\xfe", b"[" * 5_000):
        with app.test_request_context("/x", method="POST", data=body, content_type="application/json"):
            with pytest.raises(BadRequest):
                api.json_body()


def test_store_path(tmp_path):
    store = DataStore(tmp_path)
    assert api.store_path(store, {"input": "split/run/test.csv"}) == "split/run/test.csv"
    assert api.store_path(store, {"input": "./predictions/r/p.csv"}) == "predictions/r/p.csv"
    assert api.store_path(store, {"raw": "raw/r/SMSSpamCollection"}, key="raw") == "raw/r/SMSSpamCollection"
    for hostile in HOSTILE:
        with pytest.raises(BadRequest):
            api.store_path(store, {"input": hostile})
    with pytest.raises(BadRequest, match='"input" must be'):
        api.store_path(store, {})


# -- before any model ------------------------------------------------------------------------------------------------


def test_before_any_model_scoring_says_what_to_call_first(fresh):
    client = fresh.client
    body = assert_json_error(client.post("/score", json={"text": "hello"}), 503)
    assert "/prepare" in body["message"] and "/train" in body["message"]
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "no_model" and not health.json["ready"]
    assert "/train" in health.json["error"]
    models = client.get("/models").json
    assert models["versions"] == [] and models["champion"] is None and models["serving"] is None
    page = client.post("/", data={"text": "hello"})
    assert page.status_code == 200 and "/prepare" in page.get_data(as_text=True)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "aml_model_ready 0.0" in metrics and "aml_model_fallback 0.0" in metrics


def test_train_before_prepare_is_refused_before_a_job_is_queued(fresh):
    body = assert_json_error(fresh.client.post("/train", json={}, headers=AUTH), 409)
    assert "split" in body["message"] and "POST /prepare" in body["message"]
    assert fresh.store.list("jobs") == []  # no job queued to fail later


def test_start_worker_ends_a_dead_trainings_run_then_loads_the_model(fresh, monkeypatch, caplog):
    import logging

    import mlflow

    from aml.project import train

    dead = {"id": "train-20260101T000000Z-0123abcd", "kind": "train", "status": "running", "params": {}}
    fresh.store.write_json(f"jobs/{dead['id']}.json", dead)  # a training whose process died: no lock is held
    experiment = mlflow.get_experiment_by_name("test-api-fresh").experiment_id
    run = mlflow.MlflowClient().create_run(experiment, tags={train.JOB_TAG: dead["id"]})
    api.start_worker(fresh.app)
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"
    assert fresh.store.read_json(f"jobs/{dead['id']}.json")["status"] == "failed"
    assert fresh.app.extensions["aml"]["holder"].error == api.NO_MODEL  # loaded: nothing registered yet

    def unreachable(*args):
        raise RuntimeError("the registry is down")

    monkeypatch.setattr(train, "recover_crashed", unreachable)
    with caplog.at_level(logging.ERROR, logger="aml.project.api"):
        api.start_worker(fresh.app)  # logged; the process serves anyway
    assert "could not clean up after crashed trainings" in caplog.text


# -- auth ------------------------------------------------------------------------------------------------------------

PROTECTED = [
    ("/prepare", {}),
    ("/train", {}),
    ("/evaluate", {"input": "predictions/x/predictions.csv"}),
    ("/models/reload", {}),
    ("/score", {"input": "split/x/test.csv"}),  # batch scoring; online scoring needs no token
]


@pytest.mark.parametrize(("path", "body"), PROTECTED, ids=[p for p, _ in PROTECTED])
def test_protected_endpoints_need_the_token(served, path, body):
    jobs_before = served.store.list("jobs")
    runs_before = {kind: served.store.runs(kind) for kind in system.KINDS}
    for headers in (None, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        missing = served.client.post(path, json=body, headers=headers)
        assert_json_error(missing, 401)
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert_json_error(served.client.post(path, json=body, headers=WRONG), 403)
    assert served.store.list("jobs") == jobs_before  # nothing ran
    assert {kind: served.store.runs(kind) for kind in system.KINDS} == runs_before


def test_the_right_token_is_accepted(served):
    client, prepared = served.client, served.prepared
    assert client.post("/prepare", json={}, headers=AUTH).status_code == 200
    assert client.post("/models/reload", headers=AUTH).status_code == 200
    batch = client.post("/score", json={"input": prepared["outputs"]["scoring"]}, headers=AUTH)
    assert batch.status_code == 200, batch.json
    scored = client.post("/score", json={"input": prepared["outputs"]["test"], "takedown": False}, headers=AUTH)
    assert scored.status_code == 200 and "actions" not in scored.json
    evaluated = client.post("/evaluate", json={"input": scored.json["output"]}, headers=AUTH)
    assert evaluated.status_code == 200, evaluated.json
    assert evaluated.json["metrics"]["aucpr"] > 0.9 and evaluated.json["count"] == prepared["rows"]["test"]
    refused = client.post("/train", json={"model": "no_such_model"}, headers=AUTH)  # past auth, refused as a request
    assert "unknown model" in assert_json_error(refused, 400)["message"]


# -- train and jobs --------------------------------------------------------------------------------------------------


def test_train_answers_202_and_its_job_succeeds(served):
    started, job = served.started, served.job
    assert started.status_code == 202 and started.headers["Location"] == f"/jobs/{started.json['job']}"
    assert started.json["status"] == "queued"
    assert job["id"] == started.json["job"] and job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["result"]["model_version"] == "1" and job["result"]["promoted"] and job["result"]["champion"] == "1"
    assert job["params"]["model"] == "tfidf_naive_bayes"
    assert registry.champion_version(MODEL_NAME) == "1"


def test_a_second_training_while_one_runs_is_refused_with_409(served):
    jobs = served.app.extensions["aml"]["jobs"]
    started, release = threading.Event(), threading.Event()

    def hold(report):
        started.set()
        assert release.wait(60)
        return {}

    running = jobs.submit("train", hold)
    try:
        assert started.wait(30)
        refused = served.client.post("/train", json={}, headers=AUTH)
        body = assert_json_error(refused, 409)
        assert running["id"] in body["message"] and refused.headers["Location"] == f"/jobs/{running['id']}"
        assert served.client.get(f"/jobs/{running['id']}").json["status"] == "running"
    finally:
        release.set()
    assert jobs.wait(running["id"], timeout=30)["status"] == "succeeded"


@pytest.mark.parametrize("job_id", ["nonexistent", "train-20260101T000000Z-deadbeef", "..%2f..%2fetc"])
def test_unknown_job_is_404(client, job_id):
    assert_json_error(client.get(f"/jobs/{job_id}"), 404)


# -- online scoring --------------------------------------------------------------------------------------------------


def test_online_score_needs_no_token(client):
    for text in SPAM_EXAMPLES:
        response = client.post("/score", json={"text": text})
        assert response.status_code == 200, response.json
        assert set(response.json) == {"prediction", "propensity", "model_version"}
        assert response.json["prediction"] is True and response.json["model_version"] == "1"
        assert 0.5 < response.json["propensity"] <= 1
    for text in HAM_EXAMPLES:
        body = client.post("/score", json={"text": text}).json
        assert body["prediction"] is False and 0 <= body["propensity"] < 0.5
    form = client.post("/score", data={"text": SPAM_EXAMPLES[0]})
    assert form.status_code == 200 and form.json["prediction"] is True


def test_online_score_with_a_threshold(client):
    ham = HAM_EXAMPLES[0]
    assert client.post("/score", json={"text": ham, "threshold": 0}).json["prediction"] is True
    assert client.post("/score", json={"text": ham, "threshold": 1.0}).json["prediction"] is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{bad json", "JSON object"),
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ("null", "JSON object"),
        ("[" * (MAX_BYTES - 1), "nested too deeply"),
        ("{}", '"text" is missing'),
        ('{"text": 5}', '"text" must be a string'),
        ('{"text": null}', '"text" must be a string'),
        ('{"text": ["a"]}', '"text" must be a string'),
        ('{"text": ""}', "must not be empty"),
        ('{"text": " \\n\\t "}', "must not be empty"),
        ('{"text": "hi", "threshold": 2}', '"threshold"'),
        ('{"text": "hi", "threshold": -0.5}', '"threshold"'),
        ('{"text": "hi", "threshold": "0.5"}', '"threshold"'),
        ('{"text": "hi", "threshold": true}', '"threshold"'),
        ('{"text": "hi", "threshold": null}', '"threshold"'),
        ('{"text": "hi", "threshold": NaN}', '"threshold"'),
        ('{"text": "hi", "threshold": ' + "9" * 400 + "}", '"threshold"'),
    ],
)
def test_bad_score_requests_are_400_json(client, data, message):
    body = assert_json_error(client.post("/score", data=data, content_type="application/json"), 400)
    assert message in body["message"], body


def test_body_over_the_limit_is_413_json(client):
    body = assert_json_error(client.post("/score", json={"text": "x" * (MAX_BYTES + 1)}), 413)
    assert str(MAX_BYTES) in body["message"]
    assert_json_error(client.post("/", data={"text": "x" * (MAX_BYTES + 1)}), 413)


def test_unknown_route_and_wrong_method_are_json(client):
    assert_json_error(client.get("/no/such/route"), 404)
    wrong = client.get("/score")
    assert_json_error(wrong, 405)
    assert "POST" in wrong.headers["Allow"]
    wrong = client.delete("/health")
    assert_json_error(wrong, 405)
    assert "GET" in wrong.headers["Allow"] and "DELETE" not in wrong.headers["Allow"]
    assert_json_error(client.get("/train"), 405)


# -- batch scoring and evaluation: store paths -----------------------------------------------------------------------


@pytest.fixture
def reads(monkeypatch) -> list:
    """Every read the data store or a stage is asked to do (the calls are recorded, then carried out)."""
    calls = []

    def spy(owner, name):
        original = getattr(owner, name)

        def recorded(*args, **kwargs):
            calls.append((name, args[1:] if owner is DataStore else args[2:3]))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    for name in ("read_bytes", "open_read", "local_path", "exists"):
        spy(DataStore, name)
    for name in ("score_batch", "evaluate"):
        spy(system, name)
    return calls


@pytest.mark.parametrize("endpoint", ["/score", "/evaluate"])
@pytest.mark.parametrize("hostile", HOSTILE, ids=[repr(h) for h in HOSTILE])
def test_store_paths_are_confined_to_the_data_folders(client, reads, endpoint, hostile):
    body = assert_json_error(client.post(endpoint, json={"input": hostile}, headers=AUTH), 400)
    assert body["error"] == "Bad Request"
    assert reads == []  # refused before anything was read


def test_unknown_input_is_404_and_invalid_data_422(served):
    client, store = served.client, served.store
    for endpoint, path in [("/score", "scoring/none/messages.csv"), ("/evaluate", "predictions/none/p.csv")]:
        body = assert_json_error(client.post(endpoint, json={"input": path}, headers=AUTH), 404)
        assert path in body["message"]
    store.write_bytes("scoring/bad/empty.csv", b"id,text\n1,hello\n2,\n3,   \n")
    store.write_bytes("scoring/bad/no_text.csv", b"id,message\n1,hello\n")
    for path, message in [("scoring/bad/empty.csv", "empty text"), ("scoring/bad/no_text.csv", "text")]:
        body = assert_json_error(client.post("/score", json={"input": path}, headers=AUTH), 422)
        assert message in body["message"]
    unlabelled = client.post("/score", json={"input": served.prepared["outputs"]["scoring"]}, headers=AUTH)
    body = assert_json_error(client.post("/evaluate", json={"input": unlabelled.json["output"]}, headers=AUTH), 400)
    assert "labelled" in body["message"]
    assert_json_error(client.post("/score", json={"input": "scoring/none"}, headers=AUTH), 404)
    assert_json_error(client.post("/evaluate", json={"input": "predictions"}, headers=AUTH), 422)  # a folder


def test_evaluate_of_an_unparsable_file_is_422(served):
    served.store.write_bytes("predictions/bad/empty.csv", b"")
    served.store.write_bytes("predictions/bad/ragged.csv", b"id,y\n1,1\n2,0,3,4\n")
    served.store.write_bytes("predictions/bad/binary.csv", b"id,y\n\xff\xfe,1\n")
    for path in ("predictions/bad/empty.csv", "predictions/bad/ragged.csv", "predictions/bad/binary.csv"):
        assert_json_error(served.client.post("/evaluate", json={"input": path}, headers=AUTH), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/prepare", {"source": "/etc/hostname"}),
        ("/train", {"dockerfile": "/etc/hostname"}),
        ("/train", {"exports": "/tmp/aml-elsewhere"}),
        ("/train", {"registered_model": "another-model"}),
        ("/train", {"model": "minilm_embedding_logreg", "params": {"model": "/etc"}}),
        ("/train", {"model": "minilm_finetuned", "params": {"model_name": "/tmp/elsewhere"}}),
    ],
)
def test_requests_cannot_set_server_side_settings(fresh, path, body):
    response = fresh.client.post(path, json=body, headers=AUTH)
    if response.status_code == 202:  # the bug: a job started; let it end before the test does
        wait_job(fresh.client, response.json["job"], timeout=60)
    assert_json_error(response, 400)


@pytest.mark.parametrize("hostile", [".secrets/api_token", "jobs/x.json", "unknown/x"])
def test_prepare_raw_is_confined_to_the_data_folders(fresh, hostile):
    fresh.store.write_text(hostile, "ham\tnot raw data\n")
    fresh.store.write_text(".secrets/api_token", TOKEN + "\n")
    assert_json_error(fresh.client.post("/prepare", json={"raw": hostile}, headers=AUTH), 400)


def test_prepare_raw_names_a_store_path(served):
    body = assert_json_error(served.client.post("/prepare", json={"raw": "raw/none/x"}, headers=AUTH), 404)
    assert "raw/none/x" in body["message"]
    assert_json_error(served.client.post("/prepare", json={"raw": "../x"}, headers=AUTH), 400)
    assert_json_error(served.client.post("/prepare", json={"seed": -1}, headers=AUTH), 400)


# -- the page --------------------------------------------------------------------------------------------------------


def test_the_page_has_the_form_and_links(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<form method="post" action="/">' in html and '<textarea id="text" name="text"' in html
    assert 'href="/health"' in html and 'href="/models"' in html and 'id="result"' not in html


def dd(html: str, key: str) -> str:
    found = re.search(rf'<dd id="{key}">([^<]*)</dd>', html)
    assert found, f"no {key} on the page"
    return found.group(1)


def test_the_page_scores_a_message(client):
    html = client.post("/", data={"text": SPAM_EXAMPLES[0]}).get_data(as_text=True)
    assert dd(html, "prediction") == "spam" and dd(html, "model-version") == "1"
    assert 0.5 < float(dd(html, "propensity")) <= 1 and 0 <= float(dd(html, "threshold")) <= 1
    html = client.post("/", data={"text": HAM_EXAMPLES[1]}).get_data(as_text=True)
    assert dd(html, "prediction") == "ham" and float(dd(html, "propensity")) < 0.5
    html = client.post("/", data={"text": "   "}).get_data(as_text=True)
    assert "must not be empty" in html and 'id="prediction"' not in html


def test_the_page_escapes_the_message(client):
    text = '<script>alert("x")</script><img src=x onerror=alert(1)> WIN a £1000 prize, call 09061701461'
    html = client.post("/", data={"text": text}).get_data(as_text=True)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and dd(html, "prediction") in ("spam", "ham")


# -- health, models, metrics -----------------------------------------------------------------------------------------


def test_a_job_record_needs_the_token_beyond_status_and_progress(client, served):
    job = served.job["id"]
    public = client.get(f"/jobs/{job}").json
    assert set(public) <= set(handlers.PUBLIC_JOB_FIELDS) and public["status"] == "succeeded"
    assert client.get(f"/jobs/{job}", headers=WRONG).json == public  # a wrong token sees what anyone sees
    full = client.get(f"/jobs/{job}", headers=AUTH).json
    assert full["result"]["model_version"] == "1" and full["params"]["model"] == FAST["model"]
    assert "pid" not in full and "host" not in full and str(served.root) not in json.dumps(full)
    assert served.store.exists(full["result"]["report"])  # the texts of the gate's samples are there
    missing = assert_json_error(client.get("/jobs/train-20200101T000000Z-abcdef01"), 404)
    assert (
        "jobs/train-20200101T000000Z-abcdef01.json" in missing["message"] and str(served.root) not in missing["message"]
    )


def test_api_description_and_health(client):
    description = client.get("/api").json
    assert "store" not in description
    assert "POST /train" in description["endpoints"] and "POST /score" in description["endpoints"]
    health = client.get("/health").json
    assert health["status"] == "ok" and health["ready"] and health["serving"]["version"] in ("1", "2")
    assert json.loads(json.dumps(health)) == health


def test_metrics_count_requests(client):
    client.post("/score", json={"text": "hello there"})
    client.get("/no/such/route")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'aml_requests_total\{endpoint="/score",status="200"\} [1-9]', text)
    assert re.search(r'aml_requests_total\{endpoint="unmatched",status="404"\} [1-9]', text)
    assert "aml_model_ready 1.0" in text


# -- monitoring and experiments --------------------------------------------------------------------------------------


def test_monitoring_before_anything_was_scored(fresh):
    state = fresh.client.get("/monitoring")
    assert state.status_code == 200
    assert {k: state.json[k] for k in ("batch", "evaluation", "drift")} == {
        "batch": None,
        "evaluation": None,
        "drift": False,
    }
    assert state.json["pages"] == {"batch": "/monitoring/batch.html", "evaluation": "/monitoring/evaluation.html"}
    assert "POST /score" in assert_json_error(fresh.client.get("/monitoring/batch.html"), 404)["message"]
    assert "expected one of" in assert_json_error(fresh.client.get("/monitoring/dashboard.html"), 404)["message"]


def test_batch_score_and_evaluate_are_monitored(served):
    client = served.client
    test = served.prepared["outputs"]["test"]
    scored = client.post("/score", json={"input": test}, headers=AUTH)
    assert scored.status_code == 200, scored.json
    assert isinstance(scored.json["monitoring"]["drift"], bool) and scored.json["experiment"] is None
    evaluated = client.post("/evaluate", json={"input": scored.json["output"]}, headers=AUTH)
    assert evaluated.status_code == 200, evaluated.json
    watched = evaluated.json["monitoring"]["performance"]["alerts"]
    assert [a["name"] for a in watched] == ["aucpr", "precision", "recall"]
    state = client.get("/monitoring").json
    assert state["batch"]["run"] == scored.json["run"] and state["evaluation"]["run"] == evaluated.json["run"]
    assert state["drift"] == bool(state["batch"]["drift"] or state["evaluation"]["drift"])
    for check in state["batch"]["stats"]:
        assert isinstance(check["value"], float) and isinstance(check["threshold"], float), check
    assert state["evaluation"]["bias"]["worst"] in {row["slice"] for row in state["evaluation"]["bias"]["slices"]}
    for part in ("batch", "evaluation"):
        page = client.get(f"/monitoring/{part}.html")
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert "data:image/png;base64," in page.get_data(as_text=True)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Own stores with version 1 (naive Bayes) and version 2 (linear SVM, the champion), for the experiments; MLflow
    points at them only inside :func:`experiment_app` (the module's other tests use ``served``'s registry)."""
    root = tmp_path_factory.mktemp("experiments")
    uri = tracking.new_store(root / "mlflow")
    store = DataStore(root / "data")
    with tracking.using(uri, experiment="test-api-experiments"):
        system.ingest_raw(store, sms_slice(root / "SMSSpamCollection"))
        prepared = system.prepare(store)
        lenient = {"max_gap": 1.0, "min_aucpr": 0.0}
        system.train(store, system.make_config("train", {**FAST, **lenient}))
        second = system.train(store, system.make_config("train", {"model": "tfidf_linear_svm", **lenient}))
        registry.promote(MODEL_NAME, second["model_version"])
    return SimpleNamespace(root=root, uri=uri, store=store, prepared=prepared)


@contextlib.contextmanager
def experiment_app(two_versions, **score):
    """A test client of a service over :func:`two_versions`' stores with ``score`` as its ``config/score.yaml``."""
    with tracking.using(two_versions.uri, experiment="test-api-experiments"):
        app = api.create_app(
            two_versions.store,
            {"score": score},
            token=TOKEN,
            lock_dir=two_versions.root / "locks",
            refresh_s=0,
            shadow_flush_every=2,
        )
        yield app.test_client()


def test_online_ab_split_is_sticky_by_message_id(two_versions):
    with experiment_app(two_versions, challenger="1", mode="ab", share=0.5) as client:
        ab_checks(client)


def ab_checks(client):
    answers = [client.post("/score", json={"text": HAM_EXAMPLES[0], "id": f"user-{i}"}).json for i in range(40)]
    arms = [a["arm"] for a in answers]
    assert set(arms) == {"champion", "challenger"}
    for answer in answers:
        assert answer["model_version"] == ("1" if answer["arm"] == "challenger" else "2")
    again = [client.post("/score", json={"text": SPAM_EXAMPLES[0], "id": f"user-{i}"}).json["arm"] for i in range(40)]
    assert again == arms  # the same ids, the same arms, whatever the text
    metrics = client.get("/metrics").get_data(as_text=True)
    counts = {
        arm: float(re.search(rf'aml_ab_requests_total{{arm="{arm}"}} (\S+)', metrics).group(1)) for arm in set(arms)
    }
    assert sum(counts.values()) == 80 and counts["challenger"] == 2 * arms.count("challenger")


def test_online_shadow_is_scored_and_counted_never_returned(two_versions):
    with experiment_app(two_versions, challenger="1", mode="shadow") as client:
        shadow_checks(client)
        written_before = len(two_versions.store.runs("shadow"))
        for i in range(4):  # shadow_flush_every=2: two batches written to shadow/
            client.post("/score", json={"text": f"{SPAM_EXAMPLES[0]} {i}", "id": f"m{i}"})
        runs = two_versions.store.runs("shadow")
        assert len(runs) == written_before + 2
        scores = two_versions.store.read_csv(two_versions.store.run_path("shadow", runs[-1], "scores.csv"), dtype=str)
        assert list(scores.columns) == list(experiments.ShadowLog.COLUMNS) and scores["id"].tolist() == ["m2", "m3"]
        assert set(scores["champion_version"]) == {"2"} and set(scores["challenger_version"]) == {"1"}
        assert SPAM_EXAMPLES[0] not in two_versions.store.read_text(
            two_versions.store.run_path("shadow", runs[-1], "scores.csv")
        )
        shadow = client.get("/monitoring").json["shadow"]
        assert shadow["run"] == runs[-1] and shadow["rows"] == 2 and 0 <= shadow["agreement"] <= 1


def shadow_checks(client):
    texts = [*HAM_EXAMPLES, *SPAM_EXAMPLES]
    for text in texts:
        answer = client.post("/score", json={"text": text}).json
        assert answer["model_version"] == "2" and set(answer) == {"prediction", "propensity", "model_version"}
    metrics = client.get("/metrics").get_data(as_text=True)
    counted = sum(float(v) for v in re.findall(r'aml_shadow_scores_total{agree="(?:true|false)"} (\S+)', metrics))
    assert counted == len(texts), metrics


def test_batch_shadow_then_evaluate_recommends(two_versions):
    with experiment_app(two_versions) as client:
        batch_checks(client, two_versions.prepared["outputs"]["test"])


def batch_checks(client, test):
    scored = client.post("/score", json={"input": test, "challenger": "1", "mode": "shadow"}, headers=AUTH)
    assert scored.status_code == 200, scored.json
    assert scored.json["experiment"]["mode"] == "shadow" and scored.json["experiment"]["challenger_version"] == "1"
    evaluated = client.post("/evaluate", json={"input": scored.json["output"]}, headers=AUTH).json
    experiment = evaluated["monitoring"]["experiment"]
    assert experiment["recommendation"] in ("promote", "keep") and experiment["low"] <= experiment["high"]
    assert (experiment["champion_version"], experiment["challenger_version"]) == ("2", "1")
    unknown = client.post("/score", json={"input": test, "challenger": "9"}, headers=AUTH)
    assert "has no version '9'" in assert_json_error(unknown, 400)["message"]
    bad = client.post("/score", json={"input": test, "mode": "canary"}, headers=AUTH)
    assert "mode must be one of" in assert_json_error(bad, 400)["message"]


def test_fallback_after_the_newest_version_is_broken(served):
    """Version 2 (a linear SVM, served by the lean scorer) is promoted, then broken on purpose: after a reload the
    service serves version 1 and says so in /health, /models and /metrics. Last in the module: it changes the
    registry every other test reads."""
    client = served.client
    started = client.post("/train", json={"model": "tfidf_linear_svm", "params": {}}, headers=AUTH)
    assert started.status_code == 202
    assert_json_error(client.post("/train", json={}, headers=AUTH), 409)  # one at a time
    job = wait_job(client, started.json["job"])
    assert job["status"] == "succeeded", job
    assert job["result"]["model_version"] == "2" and job["result"]["promoted"], job["result"]["gate"]

    health = client.get("/health").json  # the job reloaded the model when it finished
    assert health["serving"]["version"] == "2" and health["serving"]["scorer"] == "lean" and not health["fallback"]
    assert client.post("/score", json={"text": SPAM_EXAMPLES[0]}).json["model_version"] == "2"
    models = client.get("/models").json
    assert models["versions"] == ["2", "1"] and models["champion"] == "2" and models["registered_model"] == MODEL_NAME
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "aml_model_fallback 0.0" in metrics and "aml_model_version 2.0" in metrics

    registry.corrupt_version(MODEL_NAME, "2")
    reloaded = client.post("/models/reload", headers=AUTH)
    assert reloaded.status_code == 200 and reloaded.json["fallback"]
    health = client.get("/health").json
    assert health["status"] == "ok" and health["fallback"] and health["serving"]["version"] == "1"
    assert health["serving"]["scorer"] == "Pipeline" and "fallback" in health["warning"]
    assert [f["version"] for f in health["failures"]] == ["2"]
    models = client.get("/models").json
    assert models["champion"] == "2" and models["serving"]["version"] == "1" and models["fallback"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "aml_model_fallback 1.0" in metrics and "aml_model_version 1.0" in metrics
    assert re.search(r"aml_model_load_failures [1-9]", metrics)
    assert re.search(r'aml_requests_total\{endpoint="/health",status="200"\} [1-9]', metrics)
    scored = client.post("/score", json={"text": SPAM_EXAMPLES[0]}).json
    assert scored["model_version"] == "1" and scored["prediction"] is True


def test_online_and_batch_route_an_id_to_the_same_arm(two_versions):
    """One router (:class:`aml.project.serving.Router`): the same challenger, online and in a batch, sends each
    message id to the same arm."""
    ids = [f"user-{i}" for i in range(30)]
    store = two_versions.store
    path = store.run_path("scoring", store.new_run("scoring"), "messages.csv")
    store.write_text(path, pd.DataFrame({"id": ids, "text": HAM_EXAMPLES[0]}).to_csv(index=False))
    with experiment_app(two_versions, challenger="1", mode="ab", share=0.5) as client:
        online = {i: client.post("/score", json={"text": SPAM_EXAMPLES[0], "id": i}).json["arm"] for i in ids}
        batch = client.post("/score", json={"input": path, "challenger": "1", "mode": "ab", "share": 0.5}, headers=AUTH)
    assert batch.status_code == 200, batch.json
    rows = store.read_csv(batch.json["output"], dtype=str)
    assert dict(zip(rows["id"], rows["arm"], strict=True)) == online
    assert set(online.values()) == {"champion", "challenger"}
