"""Assignment 3 tests: ``score()`` (unit), the Flask app in-process (unit, every error path) and ``test_flask``, the
integration test that launches ``python app.py`` as a separate process and talks HTTP to it.

The model is the saved spam filter of Assignment 1 from the model store (``AML_MODEL_STORE``; the test
configuration points it at ``build/test/models``). If the store has none, the ``model`` fixture builds it (~15 s).

Coverage, the server process included: ``python -m aml.covreport assignment3`` (``make coverage``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression

from aml import procs, serving

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(
        0, str(HERE)
    )  # score.py and app.py live beside this file (pytest runs with --import-mode=importlib)

import app as service  # noqa: E402
from score import score  # noqa: E402

TEXTS = [*serving.SPAM_EXAMPLES, *serving.HAM_EXAMPLES, "", "   ", "ok", "😀 see you 2moro!!", "x" * 5000]


@pytest.fixture(scope="module")
def saved():
    """(model, meta) of the saved spam filter; built into the model store first if it is not there."""
    return serving.ensure_model()


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
    result = score(serving.SPAM_EXAMPLES[0], model, threshold)
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
    propensity = score(serving.HAM_EXAMPLES[0], model, 0.5)[1]
    assert score(serving.HAM_EXAMPLES[0], model, propensity)[0] is True
    assert score(serving.HAM_EXAMPLES[0], model, float(np.nextafter(propensity, 1.0)))[0] is False
    # the one case threshold 1 predicts spam: a propensity of exactly 1
    assert score("anything", constant_model(1), 1.0) == (True, 1.0)
    assert score("anything", constant_model(0), 0.0) == (True, 0.0)


@pytest.mark.parametrize("text", serving.SPAM_EXAMPLES)
def test_obvious_spam_is_spam(model, threshold, text):
    prediction, propensity = score(text, model, threshold)
    assert prediction is True and propensity > 0.9


@pytest.mark.parametrize("text", serving.HAM_EXAMPLES)
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


def test_model_name_matches_the_library():
    from aml import spam_filter

    assert service.DEFAULT_MODEL_NAME == spam_filter.MODEL_NAME


def test_health_reports_model_name_and_version(client, saved):
    body = client.get("/health").get_json()
    meta = saved[1]
    assert body["status"] == "ok" and body["model"] == meta["name"] == "sms-spam-filter"
    assert body["version"] == meta["sha256"][:12] and body["threshold"] == pytest.approx(meta["threshold"])


def test_app_scores_spam_and_ham(client, model, threshold):
    for text, expected in [(serving.SPAM_EXAMPLES[0], True), (serving.HAM_EXAMPLES[0], False)]:
        resp = client.post("/score", json={"text": text})
        assert resp.status_code == 200 and resp.is_json
        body = resp.get_json()
        assert set(body) == {"prediction", "propensity"}
        assert body["prediction"] is expected
        assert body["propensity"] == pytest.approx(score(text, model, threshold)[1])


def test_app_threshold_from_the_request(client):
    assert client.post("/score", json={"text": serving.HAM_EXAMPLES[0], "threshold": 0}).get_json()["prediction"]
    assert not client.post("/score", json={"text": serving.SPAM_EXAMPLES[0], "threshold": 1}).get_json()["prediction"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data": "not json", "content_type": "application/json"}, "JSON object"),
        ({"data": "{broken", "content_type": "application/json"}, "JSON object"),
        ({"data": ""}, "JSON object"),
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


def test_create_app_options(tmp_path, saved):
    app = service.create_app(model=saved[0], meta={"threshold": 0.3}, max_bytes=100)
    client = app.test_client()
    assert client.get("/health").get_json()["model"] == service.DEFAULT_MODEL_NAME
    assert client.post("/score", json={"text": "a" * 200}).status_code == 413
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        service.create_app(model=saved[0], meta={}, max_bytes=0)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        service.create_app(model=saved[0], meta={"threshold": 2})
    with pytest.raises(FileNotFoundError, match="no model"):
        service.create_app(model_store=str(tmp_path))


def test_parse_args_reads_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "6123")
    monkeypatch.setenv("HOST", "0.0.0.0")
    args = service.parse_args([])
    assert (args.host, args.port, args.model_store) == ("0.0.0.0", 6123, None)
    args = service.parse_args(["--port", "7000", "--model-store", "/x", "--max-bytes", "10"])
    assert (args.port, args.model_store, args.max_bytes) == (7000, "/x", 10)


# -- the integration test: a real server process -----------------------------------------------------------------


def test_flask(saved, threshold):
    """Launch ``python app.py`` on a free port, POST texts to /score, check the JSON, always stop the server."""
    command = [sys.executable, "app.py", "--port", "{port}", "--host", "127.0.0.1"]
    with procs.serve(command, cwd=HERE, timeout=60) as server:
        health = serving.http_call("GET", server.url + "/health")
        assert health.status == 200 and health.json["version"] == saved[1]["sha256"][:12]
        for text, expected in [
            *((t, True) for t in serving.SPAM_EXAMPLES),
            *((t, False) for t in serving.HAM_EXAMPLES),
        ]:
            resp = serving.http_call("POST", server.url + "/score", json_body={"text": text})
            assert resp.status == 200 and resp.content_type == "application/json"
            body = resp.json
            assert set(body) == {"prediction", "propensity"}
            assert isinstance(body["prediction"], bool) and isinstance(body["propensity"], float)
            assert body["prediction"] is expected and 0.0 <= body["propensity"] <= 1.0
        at_zero = serving.http_call("POST", server.url + "/score", json_body={"text": "hi", "threshold": 0})
        assert at_zero.json["prediction"] is True
        bad = serving.http_call("POST", server.url + "/score", data="no json", headers={"Content-Type": "text/plain"})
        assert bad.status == 400 and bad.json["status"] == 400
        big = serving.http_call("POST", server.url + "/score", json_body={"text": "x" * 70_000})
        assert big.status == 413 and big.json["status"] == 413
        wrong = serving.http_call("GET", server.url + "/score")
        assert wrong.status == 405 and wrong.json["status"] == 405
        process = server.proc
    assert process.poll() is not None, "the server process must be stopped after the test"


def test_flask_server_is_stopped_when_the_test_fails():
    """The shutdown is in a ``finally``: an assertion failing inside the block still stops the server."""
    command = [sys.executable, "app.py", "--port", "{port}"]
    with pytest.raises(AssertionError, match="deliberate"):
        with procs.serve(command, cwd=HERE, timeout=60) as server:
            process = server.proc
            raise AssertionError("deliberate")
    assert process.poll() is not None


def test_benchmark_runs_against_gunicorn(capsys):
    """``make bench`` in miniature: the production server (gunicorn) starts, answers a bounded load without errors."""
    import benchmark

    assert benchmark.main(["--workers", "2", "--requests", "20", "--seconds", "3", "--no-record"]) == 0
    out = capsys.readouterr().out
    assert "| 16 |" in out and "in-process `score()`" in out and "errors: 0" in out
