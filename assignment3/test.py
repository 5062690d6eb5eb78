"""Assignment 3 tests: scoring (unit), the Flask app in-process (unit, every error path), ``test_flask`` (the
integration test that launches ``python app.py`` as a separate process and talks HTTP to it), the production server
(``python app.py --server gunicorn``) and the hardening of issue 10 part 5, reproduced with raw sockets.

Nothing here edits ``sys.path``: the tests import the library (``aml.spam.scoring``, ``aml.spam.service``) and run
this folder's ``app.py`` as a subprocess with ``cwd=assignment3``, the way a person runs it.

The model is the saved spam filter of Assignment 1 from the model store (``AML_MODEL_STORE``; the test
configuration points it at ``build/test/models``). If the store has none, the ``saved`` fixture builds it (~15 s).

Coverage, the server processes included: ``python -m aml.devtools.covreport assignment3`` (``make coverage``).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression

from aml.core import modelstore
from aml.devtools import fixtures
from aml.ops import procs
from aml.ops.http_client import http_call
from aml.spam import MODEL_NAME, service
from aml.spam.scoring import score_text as score

HERE = Path(__file__).resolve().parent

TEXTS = [*fixtures.SPAM_EXAMPLES, *fixtures.HAM_EXAMPLES, "", "   ", "ok", "😀 see you 2moro!!", "x" * 5000]


@pytest.fixture(scope="module")
def saved():
    """(model, meta) of the saved spam filter; built into the model store first if it is not there."""
    return fixtures.ensure_model()


@pytest.fixture(scope="module")
def model(saved):
    return saved[0]


@pytest.fixture(scope="module")
def threshold(saved) -> float:
    """The threshold chosen on validation in Assignment 1, saved with the model."""
    return float(saved[1]["threshold"])


def constant_model(propensity_of_spam: int):
    """A real fitted scikit-learn classifier that always answers propensity 0 or 1."""
    return DummyClassifier(strategy="constant", constant=propensity_of_spam).fit(["a", "b"], [0, 1])


# -- score() -------------------------------------------------------------------------------------------------------


def test_score_smoke(model, threshold):
    assert score("Hello, are we still on for lunch?", model, threshold) is not None


def test_score_input_output_types(model, threshold):
    result = score(fixtures.SPAM_EXAMPLES[0], model, threshold)
    assert isinstance(result, tuple) and len(result) == 2
    prediction, propensity = result
    assert type(prediction) is bool  # a real bool, not numpy.bool_
    assert type(propensity) is float


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_prediction_is_false_or_true(model, threshold, text):
    assert score(text, model, threshold)[0] in {False, True}


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_propensity_between_0_and_1(model, threshold, text):
    propensity = score(text, model, threshold)[1]
    assert 0.0 <= propensity <= 1.0 and math.isfinite(propensity)


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_threshold_0_always_spam(model, text):
    assert score(text, model, 0.0)[0] is True
    assert score(text, model, 0)[0] is True  # an int threshold is fine


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_threshold_1_never_spam(model, text):
    prediction, propensity = score(text, model, 1.0)
    assert propensity < 1.0 and prediction is False


def test_threshold_boundary_is_inclusive(model):
    """Spam when propensity >= threshold: at exactly the propensity it is spam, just above it is not."""
    propensity = score(fixtures.HAM_EXAMPLES[0], model, 0.5)[1]
    assert score(fixtures.HAM_EXAMPLES[0], model, propensity)[0] is True
    assert score(fixtures.HAM_EXAMPLES[0], model, float(np.nextafter(propensity, 1.0)))[0] is False
    # the one case threshold 1 predicts spam: a propensity of exactly 1
    assert score("anything", constant_model(1), 1.0) == (True, 1.0)
    assert score("anything", constant_model(0), 0.0) == (True, 0.0)


@pytest.mark.parametrize("text", fixtures.SPAM_EXAMPLES)
def test_obvious_spam_is_spam(model, threshold, text):
    prediction, propensity = score(text, model, threshold)
    assert prediction is True and propensity > 0.9


@pytest.mark.parametrize("text", fixtures.HAM_EXAMPLES)
def test_obvious_ham_is_ham(model, threshold, text):
    prediction, propensity = score(text, model, threshold)
    assert prediction is False and propensity < 0.1


@pytest.mark.parametrize(
    "text, threshold, error, match",
    [
        (None, 0.5, TypeError, "text must be a str"),
        (42, 0.5, TypeError, "text must be a str"),
        (b"win cash", 0.5, TypeError, "text must be a str"),
        (["win cash"], 0.5, TypeError, "text must be a str"),
        ("hi", None, TypeError, "threshold must be a real number"),
        ("hi", "0.5", TypeError, "threshold must be a real number"),
        ("hi", True, TypeError, "threshold must be a real number"),
        ("hi", -0.01, ValueError, r"threshold must be in \[0, 1\]"),
        ("hi", 1.01, ValueError, r"threshold must be in \[0, 1\]"),
        ("hi", float("nan"), ValueError, r"threshold must be in \[0, 1\]"),
        ("hi", float("inf"), ValueError, r"threshold must be in \[0, 1\]"),
    ],
)
def test_bad_inputs_raise(model, text, threshold, error, match):
    with pytest.raises(error, match=match):
        score(text, model, threshold)


@pytest.mark.parametrize("bad_model", [None, "model.joblib", LinearRegression().fit([[0], [1]], [0, 1])])
def test_model_without_predict_proba_raises(bad_model):
    with pytest.raises(TypeError, match="predict_proba"):
        score("hi", bad_model, 0.5)


def test_model_with_a_single_class_raises():
    one_class = DummyClassifier().fit(["a", "b"], [1, 1])  # predict_proba has one column
    with pytest.raises(ValueError, match=r"expected \(1, 2\)"):
        score("hi", one_class, 0.5)


class OutOfRangeModel:
    """A misbehaving model (no real classifier does this): its "probability" is 1.5."""

    def predict_proba(self, texts):
        return np.array([[-0.5, 1.5]] * len(texts))


def test_model_with_a_propensity_outside_0_1_raises():
    with pytest.raises(ValueError, match=r"expected a probability in \[0, 1\]"):
        score("hi", OutOfRangeModel(), 0.5)


def test_score_neither_refits_nor_changes_the_model(model, threshold):
    import hashlib
    import pickle

    def fingerprint(obj) -> str:
        return hashlib.sha256(pickle.dumps(obj, protocol=5)).hexdigest()

    score("warm-up", model, threshold)  # the first transform caches a private id in the vectoriser (_stop_words_id)
    before = fingerprint(model)
    for text in TEXTS:
        score(text, model, threshold)
    assert fingerprint(model) == before


# -- the app, in-process -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(saved):
    return service.create_app().test_client()


def test_health_reports_model_name_and_version(client, saved):
    body = client.get("/health").get_json()
    meta = saved[1]
    assert body["status"] == "ok" and body["model"] == meta["name"] == "sms-spam-filter"
    assert body["version"] == meta["sha256"][:12] and body["threshold"] == pytest.approx(meta["threshold"])


def test_app_scores_spam_and_ham(client, model, threshold):
    for text, expected in [(fixtures.SPAM_EXAMPLES[0], True), (fixtures.HAM_EXAMPLES[0], False)]:
        resp = client.post("/score", json={"text": text})
        assert resp.status_code == 200 and resp.is_json
        body = resp.get_json()
        assert set(body) == {"prediction", "propensity"}
        assert body["prediction"] is expected
        assert body["propensity"] == pytest.approx(score(text, model, threshold)[1])


def test_app_threshold_from_the_request(client):
    assert client.post("/score", json={"text": fixtures.HAM_EXAMPLES[0], "threshold": 0}).get_json()["prediction"]
    assert not client.post("/score", json={"text": fixtures.SPAM_EXAMPLES[0], "threshold": 1}).get_json()["prediction"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data": "not json", "content_type": "application/json"}, "JSON object"),
        ({"data": "{broken", "content_type": "application/json"}, "JSON object"),
        ({"data": ""}, "JSON object"),
        ({"data": "[" * 5000, "content_type": "application/json"}, "nested too deeply"),  # RecursionError
        ({"data": '{"text": "hi", "threshold": 1%s}' % ("0" * 399), "content_type": "application/json"}, "400 digits"),
        ({"data": {"threshold": "0.5"}}, '"text" is missing'),
        ({"data": {"text": " "}}, "must not be empty"),
        ({"data": {"text": "hi", "threshold": "high"}}, "must be a number"),
        ({"data": {"text": "hi", "threshold": "2"}}, r"\[0, 1\]"),
        ({"data": {"text": "hi", "threshold": "nan"}}, r"\[0, 1\]"),
        ({"json": ["a list"]}, "JSON object"),
        ({"json": "a string"}, "JSON object"),
        ({"json": {}}, '"text" is missing'),
        ({"json": {"message": "hi"}}, '"text" is missing'),
        ({"json": {"text": None}}, '"text" must be a string'),
        ({"json": {"text": 123}}, '"text" must be a string'),
        ({"json": {"text": ["hi"]}}, '"text" must be a string'),
        ({"json": {"text": ""}}, "must not be empty"),
        ({"json": {"text": "  \n "}}, "must not be empty"),
        ({"json": {"text": "hi", "threshold": 1.5}}, r"\[0, 1\]"),
        ({"json": {"text": "hi", "threshold": -1}}, r"\[0, 1\]"),
        ({"json": {"text": "hi", "threshold": "0.5"}}, "real number"),
        ({"json": {"text": "hi", "threshold": None}}, "real number"),
        ({"json": {"text": "hi", "threshold": True}}, "real number"),
        ({"data": '{"text": "hi", "threshold": NaN}', "content_type": "application/json"}, r"\[0, 1\]"),
    ],
)
def test_app_bad_requests_get_json_400(client, kwargs, match):
    import re

    resp = client.post("/score", **kwargs)
    assert resp.status_code == 400 and resp.is_json
    body = resp.get_json()
    assert body["status"] == 400 and body["error"] == "Bad Request" and re.search(match, body["message"])


def test_app_body_over_the_limit_gets_json_413(client):
    resp = client.post("/score", json={"text": "x" * (service.DEFAULT_MAX_BYTES + 1)})
    assert resp.status_code == 413 and resp.is_json
    assert str(service.DEFAULT_MAX_BYTES) in resp.get_json()["message"]


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_app_wrong_method_gets_json_405(client, method):
    resp = getattr(client, method)("/score")
    assert resp.status_code == 405 and resp.is_json and "POST" in resp.headers["Allow"]


def test_app_unknown_path_gets_json_404(client):
    resp = client.post("/nope", json={"text": "hi"})
    assert resp.status_code == 404 and resp.is_json and resp.get_json()["error"] == "Not Found"


def test_app_failure_inside_the_model_gets_json_500():
    unfitted = DummyClassifier()  # predict_proba raises NotFittedError
    app = service.create_app(model=unfitted, meta={"threshold": 0.5, "name": "broken"})
    resp = app.test_client().post("/score", json={"text": "hi"})
    assert resp.status_code == 500 and resp.is_json and "see its log" in resp.get_json()["message"]


def test_app_scores_form_encoded_text(client, model, threshold):
    """``curl -d text=...``: form-encoded text and threshold, as well as JSON."""
    resp = client.post("/score", data={"text": fixtures.SPAM_EXAMPLES[0]})
    assert resp.status_code == 200 and resp.get_json()["prediction"] is True
    assert resp.get_json()["propensity"] == pytest.approx(score(fixtures.SPAM_EXAMPLES[0], model, threshold)[1])
    assert client.post("/score", data={"text": fixtures.HAM_EXAMPLES[0], "threshold": "0"}).get_json()["prediction"]


def test_app_usage_lists_endpoints_and_an_example(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.is_json
    body = resp.get_json()
    assert {"POST /score", "GET /health", "GET /"} <= set(body["endpoints"])
    assert body["example"]["request"]["text"] and "curl" in body["example"]["form"]


def test_create_app_options(tmp_path, saved):
    app = service.create_app(model=saved[0], meta={"threshold": 0.3}, max_bytes=100)
    client = app.test_client()
    assert client.get("/health").get_json()["model"] == MODEL_NAME
    assert client.post("/score", json={"text": "a" * 200}).status_code == 413
    with pytest.raises(service.ConfigError, match="max_bytes must be positive"):
        service.create_app(model=saved[0], meta={"threshold": 0.3}, max_bytes=0)
    with pytest.raises(service.ConfigError, match=r"threshold must be in \[0, 1\]"):
        service.create_app(model=saved[0], meta={"threshold": 2})
    with pytest.raises(service.ConfigError, match="no 'threshold'"):
        service.create_app(model=saved[0], meta={})
    with pytest.raises(service.ConfigError, match="no model artefact"):
        service.create_app(model_store=str(tmp_path))


# -- real servers: python app.py (Flask's development server) and python app.py --server gunicorn ------------------


def app_command(*options: str) -> list[str]:
    return [sys.executable, "app.py", "--port", "{port}", "--host", "127.0.0.1", *options]


SERVERS = {"flask": app_command(), "gunicorn": app_command("--server", "gunicorn", "--workers", "2")}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request, saved):
    """Each real server, started once for the hardening tests below (``cwd=assignment3``, as a person runs it)."""
    with procs.serve(SERVERS[request.param], cwd=HERE, timeout=60) as running:
        running.kind = request.param
        yield running


def raw(port: int, data: bytes, half_close: bool = False, timeout: float = 10.0) -> http.client.HTTPResponse:
    """Send ``data`` as it is on a new connection and read the response: requests no HTTP library would send."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before reading everything: read its answer
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        resp.body = resp.read()
        return resp
    finally:
        sock.close()


def request_bytes(path: str = "/score", body: bytes = b'{"text": "hi"}', headers: dict | None = None) -> bytes:
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body))}
    head.update(headers or {})
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items() if v is not None), "", ""]
    return "\r\n".join(lines).encode() + body


def is_json(resp) -> bool:
    return resp.getheader("Content-Type", "").startswith("application/json") and "status" in json.loads(resp.body)


def test_server_deep_json_and_huge_threshold_get_json_400(server):
    deep = raw(server.port, request_bytes(body=b"[" * 5000 + b"]" * 5000))
    assert deep.status == 400 and is_json(deep) and "nested too deeply" in deep.body.decode()
    huge = raw(server.port, request_bytes(body=b'{"text": "hi", "threshold": 1' + b"0" * 399 + b"}"))
    assert huge.status == 400 and is_json(huge) and "400 digits" in huge.body.decode()


def test_server_form_encoded_and_usage(server):
    body = urllib.parse.urlencode({"text": fixtures.SPAM_EXAMPLES[0], "threshold": "0.5"}).encode()
    resp = raw(server.port, request_bytes(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert resp.status == 200 and json.loads(resp.body)["prediction"] is True
    usage = http_call("GET", server.url + "/")
    assert usage.status == 200 and "POST /score" in usage.json["endpoints"]


def test_server_long_url_and_many_headers(server):
    """Over the app's limits: JSON 414/431 from the app. Over the servers' own limits, the server answers before the
    app runs (the README's table): Werkzeug 414/431, gunicorn 400/431 — not JSON."""
    long_url = raw(server.port, request_bytes(path="/score?q=" + "a" * 3000))
    assert long_url.status == 414 and is_json(long_url)
    headers = raw(server.port, request_bytes(headers={f"X-Extra-{i}": "1" for i in range(60)}))
    assert headers.status == 431 and is_json(headers)
    too_long = raw(server.port, request_bytes(path="/score?q=" + "a" * 70_000))
    assert too_long.status == {"flask": 414, "gunicorn": 400}[server.kind] and not is_json_safe(too_long)
    too_many = raw(server.port, request_bytes(headers={f"X-Extra-{i}": "1" for i in range(120)}))
    assert too_many.status == 431 and not is_json_safe(too_many)


def is_json_safe(resp) -> bool:
    try:
        return is_json(resp)
    except ValueError:
        return False


def test_server_malformed_content_length(server):
    """The development server passes it to the app (JSON 400); gunicorn refuses it itself (400, its own page)."""
    resp = raw(server.port, request_bytes(headers={"Content-Length": "12abc"}), half_close=True)
    assert resp.status == 400
    assert is_json_safe(resp) is (server.kind == "flask")


def test_server_truncated_body_is_not_scored(server):
    """Content-Length larger than the body, then half-close: a complete-looking JSON object must not be scored."""
    resp = raw(server.port, request_bytes(headers={"Content-Length": "100"}), half_close=True)
    assert resp.status == 400 and is_json(resp), resp.body


def test_server_large_chunked_body_gets_413(server):
    chunk = b"x" * 65536
    head = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 16 + b"0\r\n\r\n"  # 1 MiB
    resp = raw(server.port, head + body)
    assert resp.status == 413 and is_json(resp)


def half_sent(port: int) -> socket.socket:
    """A client that sent the headers and half of its body, then went quiet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(request_bytes(headers={"Content-Length": "200"})[:-5])
    return sock


def test_server_two_idle_clients_do_not_stall_it(server):
    """Two connections holding half-sent bodies (and two idle ones): a third client is served at once."""
    holders = [half_sent(server.port), half_sent(server.port)]
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(2)]
    try:
        time.sleep(0.3)
        start = time.monotonic()
        resp = http_call("POST", server.url + "/score", json_body={"text": fixtures.SPAM_EXAMPLES[0]}, timeout=5)
        assert resp.status == 200 and resp.json["prediction"] is True and time.monotonic() - start < 3
    finally:
        for sock in holders + idle:
            sock.close()


def test_flask(saved, threshold):
    """Launch ``python app.py`` on a free port, POST texts to /score, check the JSON, always stop the server."""
    with procs.serve(app_command(), cwd=HERE, timeout=60) as server:
        health = http_call("GET", server.url + "/health")
        assert health.status == 200 and health.json["version"] == saved[1]["sha256"][:12]
        for text, expected in [
            *((t, True) for t in fixtures.SPAM_EXAMPLES),
            *((t, False) for t in fixtures.HAM_EXAMPLES),
        ]:
            resp = http_call("POST", server.url + "/score", json_body={"text": text})
            assert resp.status == 200 and resp.content_type == "application/json"
            body = resp.json
            assert set(body) == {"prediction", "propensity"}
            assert isinstance(body["prediction"], bool) and isinstance(body["propensity"], float)
            assert body["prediction"] is expected and 0.0 <= body["propensity"] <= 1.0
        at_zero = http_call("POST", server.url + "/score", json_body={"text": "hi", "threshold": 0})
        assert at_zero.json["prediction"] is True
        bad = http_call("POST", server.url + "/score", data="no json", headers={"Content-Type": "text/plain"})
        assert bad.status == 400 and bad.json["status"] == 400
        big = http_call("POST", server.url + "/score", json_body={"text": "x" * 70_000})
        assert big.status == 413 and big.json["status"] == 413
        wrong = http_call("GET", server.url + "/score")
        assert wrong.status == 405 and wrong.json["status"] == 405
        process = server.proc
    assert process.poll() is not None, "the server process must be stopped after the test"


def test_flask_server_is_stopped_when_the_test_fails():
    """The shutdown is in a ``finally``: an assertion failing inside the block still stops the server."""
    with pytest.raises(AssertionError, match="deliberate"):
        with procs.serve(app_command(), cwd=HERE, timeout=60) as server:
            process = server.proc
            raise AssertionError("deliberate")
    assert process.poll() is not None


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--no-control-socket", "app:app"],
        [sys.executable, "-m", "flask", "--app", "app", "run", "--port", "{port}"],
    ],
    ids=["gunicorn app:app", "flask --app app run"],
)
def test_app_module_serves_through_other_entry_points(command, saved):
    with procs.serve(command, cwd=HERE, timeout=60) as server:
        assert http_call("POST", server.url + "/score", json_body={"text": fixtures.SPAM_EXAMPLES[0]}).json[
            "prediction"
        ]


def test_importing_app_loads_no_model(tmp_path):
    """``import app`` is cheap and loads nothing; ``from app import app`` builds it from the environment."""
    code = "import app; assert 'app' not in vars(app); from app import app as a; print(type(a).__name__, a is app.app)"
    env = {**os.environ, "AML_MODEL_STORE": str(tmp_path)}
    empty = subprocess.run([sys.executable, "-c", "import app"], cwd=HERE, env=env, capture_output=True, text=True)
    assert empty.returncode == 0, empty.stderr  # an empty store does not matter until the app is asked for
    result = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["Flask", "True"], result.stderr


def test_score_py_names_the_library_function():
    """``from score import score`` (the assignment's name) is the library's ``score_text``."""
    code = "from score import check_threshold, score; print(score.__module__, score.__name__, check_threshold(1))"
    result = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["aml.spam.scoring", "score_text", "1.0"], result.stderr


def run_app(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", "--port", str(procs.free_port()), *args],
        cwd=HERE,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def copy_store(saved, tmp_path) -> Path:
    source = modelstore.store_path(MODEL_NAME)
    target = tmp_path / "store" / MODEL_NAME
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    "args, env, match",
    [
        ((), {"PORT": "abc"}, r"^error: PORT must be an integer from 1 to 65535, got 'abc'$"),
        ((), {"AML_MAX_BODY_BYTES": "abc"}, r"^error: AML_MAX_BODY_BYTES must be an integer of at least 1, got 'abc'$"),
        (("--server", "uwsgi"), {}, r"^error: --server must be one of flask, gunicorn, got 'uwsgi'$"),
    ],
)
def test_bad_settings_exit_2_with_one_line(args, env, match):
    result = subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=HERE,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.match(match, result.stderr.strip()), result.stderr


def test_missing_threshold_or_broken_meta_refuses_to_start(saved, tmp_path):
    folder = copy_store(saved, tmp_path)
    meta_file = folder / modelstore.META
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k != "threshold"}))
    result = run_app("--model-store", str(folder.parent))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == result.stderr.strip().splitlines()[-1]  # one line
    assert str(meta_file) in result.stderr and "no 'threshold'" in result.stderr
    meta_file.write_text("{broken")
    result = run_app("--model-store", str(folder.parent))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert str(meta_file) in result.stderr and "not valid JSON" in result.stderr


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_model_problem_after_start_keeps_the_service_up(saved, tmp_path):
    """gunicorn with preload: the artefact deleted after start and a worker killed — the replacement worker serves
    the loaded model without re-reading it, and ``/health`` says what is served and what is on disk."""
    folder = copy_store(saved, tmp_path)
    command = app_command("--server", "gunicorn", "--workers", "1", "--model-store", str(folder.parent))
    with procs.serve(command, cwd=HERE, timeout=60) as server:
        assert http_call("GET", server.url + "/health").json["artefact"] == "as loaded"
        (folder / modelstore.ARTEFACT).write_bytes(b"not a model any more")
        changed = http_call("GET", server.url + "/health").json
        assert changed["status"] == "ok" and changed["artefact"] == "changed" and "still serving" in changed["warning"]
        shutil.rmtree(folder)
        (worker,) = children(server.proc.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and children(server.proc.pid) in ([], [worker]):
            time.sleep(0.2)
        assert children(server.proc.pid) not in ([], [worker]), "gunicorn must replace the killed worker"
        procs.wait_for_http(server.url + "/health", timeout=30)
        health = http_call("GET", server.url + "/health").json
        assert health["status"] == "ok" and health["artefact"] == "missing"
        assert health["version"] == saved[1]["sha256"][:12]
        resp = http_call("POST", server.url + "/score", json_body={"text": fixtures.SPAM_EXAMPLES[0]})
        assert resp.status == 200 and resp.json["prediction"] is True


def test_health_is_503_when_the_model_cannot_score():
    unfitted = DummyClassifier()  # predict_proba raises NotFittedError
    client = service.create_app(model=unfitted, meta={"threshold": 0.5}).test_client()
    resp = client.get("/health")
    assert resp.status_code == 503 and resp.get_json()["status"] == "failing"
    assert client.get("/").status_code == 200  # the service itself is still up


def test_benchmark_runs_against_gunicorn(capsys):
    """``make bench`` in miniature: the production server starts and answers a bounded load without errors."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark", HERE / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--workers", "2", "--requests", "20", "--seconds", "3", "--no-record"]) == 0
    out = capsys.readouterr().out
    assert "| 16 |" in out and "in-process `score()`" in out and "errors: 0" in out
