import json
import socket

import pytest
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from aml.core import modelstore
from aml.spam import MODEL_NAME, service


@pytest.fixture(scope="module")
def model():
    texts = ["win cash prize now", "free prize claim", "see you at lunch", "call mum tonight"] * 3
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 1, 0, 0] * 3)


@pytest.fixture
def store(tmp_path, model):
    modelstore.save_model(model, modelstore.store_path(MODEL_NAME, tmp_path), {"threshold": 0.5, "model": "tiny"})
    return tmp_path


@pytest.fixture
def client(store):
    return service.create_app(model_store=store).test_client()


# -- settings ------------------------------------------------------------------------------------------------------


def test_parse_settings_defaults_environment_and_options():
    defaults = service.parse_settings([], {})
    assert (defaults.host, defaults.port, defaults.server, defaults.model_name) == (
        "127.0.0.1",
        5000,
        "flask",
        MODEL_NAME,
    )
    assert defaults.max_bytes == service.DEFAULT_MAX_BYTES and defaults.model_store is None
    env = {"HOST": "0.0.0.0", "PORT": "6123", "AML_SERVER": "gunicorn", "AML_WORKERS": "3", "AML_MAX_BODY_BYTES": "9"}
    from_env = service.parse_settings([], env)
    assert (from_env.host, from_env.port, from_env.server, from_env.workers, from_env.max_bytes) == (
        "0.0.0.0", 6123, "gunicorn", 3, 9,
    )  # fmt: skip
    options = service.parse_settings(["--port", "7000", "--model-store", "/x", "--threads", "2"], env)
    assert (options.port, options.model_store, options.threads) == (7000, "/x", 2)


@pytest.mark.parametrize(
    "argv, env, match",
    [
        ([], {"PORT": "abc"}, r"^PORT must be an integer from 1 to 65535, got 'abc'$"),
        ([], {"PORT": "70000"}, "PORT must be an integer from 1 to 65535"),
        ([], {"AML_MAX_BODY_BYTES": "abc"}, r"^AML_MAX_BODY_BYTES must be an integer of at least 1, got 'abc'$"),
        ([], {"AML_MAX_BODY_BYTES": "0"}, "AML_MAX_BODY_BYTES must be an integer of at least 1"),
        (["--port", "x"], {}, r"^--port must be an integer"),
        (["--workers", "0"], {}, "--workers must be an integer from 1 to 64"),
        ([], {"AML_SERVER": "uwsgi"}, "AML_SERVER must be one of flask, gunicorn"),
    ],
)
def test_parse_settings_bad_values_are_one_line_config_errors(argv, env, match):
    with pytest.raises(service.ConfigError, match=match):
        service.parse_settings(argv, env)


def test_main_reports_bad_settings_in_one_line_with_exit_code_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PORT", "abc")
    assert service.main([]) == service.EXIT_BAD_SETTINGS == 2
    assert capsys.readouterr().err == "error: PORT must be an integer from 1 to 65535, got 'abc'\n"
    monkeypatch.delenv("PORT")
    assert service.main(["--model-store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model artefact" in err and str(tmp_path) in err


# -- the model -----------------------------------------------------------------------------------------------------


def test_load_served_model_checks_the_threshold(store):
    model, meta = service.load_served_model(store)
    assert meta["threshold"] == 0.5 and hasattr(model, "predict_proba")
    meta_file = modelstore.store_path(MODEL_NAME, store) / modelstore.META
    data = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({k: v for k, v in data.items() if k != "threshold"}))
    with pytest.raises(service.ConfigError, match=f"{meta_file}.*no 'threshold': refusing"):
        service.load_served_model(store)
    meta_file.write_text(json.dumps({**data, "threshold": "high"}))
    with pytest.raises(service.ConfigError, match="invalid 'threshold'"):
        service.load_served_model(store)


@pytest.mark.parametrize("damage", ["meta", "artefact", "pickle"])
def test_load_served_model_names_the_broken_file_in_one_line(store, damage):
    folder = modelstore.store_path(MODEL_NAME, store)
    if damage == "meta":
        (folder / modelstore.META).write_text("{broken\n")
        match = f"{folder / modelstore.META} is not valid JSON"
    elif damage == "artefact":
        (folder / modelstore.ARTEFACT).write_bytes(b"swapped")
        match = "refusing to load"
    else:  # a valid checksum over bytes joblib cannot load
        modelstore.save_model(object.__new__(BrokenPickle), folder, {"threshold": 0.5})
        match = f"cannot load {folder / modelstore.ARTEFACT}"
    with pytest.raises(service.ConfigError, match=match) as info:
        service.load_served_model(store)
    assert "\n" not in str(info.value)


class BrokenPickle:
    def __reduce__(self):
        return (_raise, ())


def _raise():
    raise RuntimeError("cannot\nunpickle")


# -- the app -------------------------------------------------------------------------------------------------------


def test_score_json_and_form(client):
    spam = client.post("/score", json={"text": "win a free prize"})
    assert spam.status_code == 200 and spam.get_json()["prediction"] is True
    ham = client.post("/score", data={"text": "lunch with mum", "threshold": "0.9"})
    assert ham.status_code == 200 and ham.get_json()["prediction"] is False
    assert client.post("/score", data={"text": "lunch", "threshold": "0"}).get_json()["prediction"] is True


#: what a browser sends when it navigates or posts a form
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_a_page_with_a_form_and_clients_get_json(client):
    page = client.get("/", headers=BROWSER)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<form method="post" action="/">' in html and '<textarea id="text" name="text"' in html
    assert 'href="/health"' in html and 'id="result"' not in html
    for accept in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        assert client.get("/", headers=accept).is_json, accept


@pytest.mark.parametrize("path", ["/", "/score"])
def test_the_pages_form_shows_the_result(client, path):
    html = client.post(path, data={"text": "win a free prize"}, headers=BROWSER).get_data(as_text=True)
    assert '<dd id="prediction">spam</dd>' in html and 'id="propensity"' in html and 'id="threshold">0.5000' in html
    html = client.post(path, data={"text": "lunch with mum", "threshold": "0.99"}, headers=BROWSER).get_data(
        as_text=True
    )
    assert '<dd id="prediction">ham</dd>' in html and 'id="threshold">0.9900' in html
    html = client.post(path, data={"text": "   "}, headers=BROWSER).get_data(as_text=True)
    assert "must not be empty" in html and 'id="prediction"' not in html
    html = client.post(path, data={"text": "<script>alert(1)</script> prize"}, headers=BROWSER).get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; prize" in html


def test_score_keeps_its_json_contract_for_clients(client):
    form = client.post("/score", data={"text": "win a free prize"})  # curl -d text=...: Accept */*
    assert form.is_json and set(form.get_json()) == {"prediction", "propensity"}
    assert client.post("/score", json={"text": "hi"}, headers=BROWSER).is_json  # JSON in, JSON out


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data": "[" * 5000, "content_type": "application/json"}, "nested too deeply"),
        ({"data": '{"text": "x", "threshold": 1%s}' % ("0" * 399), "content_type": "application/json"}, "400 digits"),
        ({"data": '{"text": "x", "threshold": 1%s}' % ("0" * 5000), "content_type": "application/json"}, "JSON object"),
        ({"json": {"text": "x", "threshold": None}}, "real number"),
        ({"data": {"threshold": "0.5"}}, '"text" is missing'),
        ({"data": {"text": "x", "threshold": "high"}}, "must be a number"),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, "JSON object"),
    ],
)
def test_score_bad_requests_get_json_400(client, kwargs, match):
    resp = client.post("/score", **kwargs)
    assert resp.status_code == 400 and resp.is_json and match in resp.get_json()["message"]
    assert resp.headers["Connection"] == "close"


def test_truncated_and_malformed_bodies_are_not_scored(client):
    truncated = client.post("/score", data=b'{"text": "hi"}', environ_overrides={"CONTENT_LENGTH": "100"})
    assert truncated.status_code == 400 and "Content-Length announced" in truncated.get_json()["message"]
    malformed = client.post("/score", data=b'{"text": "hi"}', environ_overrides={"CONTENT_LENGTH": "1x"})
    assert malformed.status_code == 400 and "malformed Content-Length" in malformed.get_json()["message"]


def test_chunked_body_over_the_limit_gets_413(store):
    client = service.create_app(model_store=store, max_bytes=100).test_client()
    chunked = {"wsgi.input_terminated": True, "CONTENT_LENGTH": None}  # what servers set for Transfer-Encoding: chunked
    resp = client.post("/score", data=b"x" * 500, environ_overrides=chunked)
    assert resp.status_code == 413 and "limit of 100 bytes" in resp.get_json()["message"]
    small = client.post("/score", data=b'{"text": "hi"}', environ_overrides=chunked)
    assert small.status_code == 200


def test_url_and_header_limits_answer_json(client):
    url = client.get("/?q=" + "a" * service.MAX_URL_BYTES)
    assert url.status_code == 414 and url.is_json
    headers = client.get("/", headers={f"X-{i}": "1" for i in range(service.MAX_HEADER_FIELDS + 1)})
    assert headers.status_code == 431 and headers.is_json


def test_stalled_body_gets_408(client, monkeypatch):
    from flask import Request

    def stalled(self, *args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(Request, "get_data", stalled)
    resp = client.post("/score", json={"text": "hi"})
    assert resp.status_code == 408 and resp.is_json and "did not arrive" in resp.get_json()["message"]


def test_usage_and_health(client, store):
    usage = client.get("/").get_json()
    assert set(usage["endpoints"]) == {"POST /score", "GET /health", "GET /"} and "text=" in usage["example"]["form"]
    health = client.get("/health").get_json()
    assert health["status"] == "ok" and health["artefact"] == "as loaded" and health["model_type"] == "tiny"
    artefact = modelstore.store_path(MODEL_NAME, store) / modelstore.ARTEFACT
    artefact.write_bytes(b"replaced")
    changed = client.get("/health").get_json()
    assert changed["status"] == "ok" and changed["artefact"] == "changed" and "still serving" in changed["warning"]
    artefact.unlink()
    assert client.get("/health").get_json()["artefact"] == "missing"
    assert client.post("/score", json={"text": "win a free prize"}).status_code == 200  # the loaded model serves on


def test_health_is_503_and_score_500_when_the_model_fails():
    client = service.create_app(model=DummyClassifier(), meta={"threshold": 0.5}).test_client()
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["status"] == "failing"
    assert health.get_json()["artefact"] == "in memory"
    failed = client.post("/score", json={"text": "hi"})
    assert failed.status_code == 500 and failed.is_json


def test_create_app_refuses_bad_settings(model, monkeypatch):
    with pytest.raises(service.ConfigError, match="no 'threshold'"):
        service.create_app(model=model, meta={})
    with pytest.raises(service.ConfigError, match="max_bytes must be positive"):
        service.create_app(model=model, meta={"threshold": 0.5}, max_bytes=-1)
    monkeypatch.setenv("AML_MAX_BODY_BYTES", "abc")
    with pytest.raises(service.ConfigError, match="AML_MAX_BODY_BYTES must be an integer"):
        service.create_app(model=model, meta={"threshold": 0.5})


# -- the servers ---------------------------------------------------------------------------------------------------


def test_gunicorn_options_preload_gthread_and_no_control_socket():
    options = service.gunicorn_options(service.Settings(port=8123, workers=3, threads=5))
    assert options["bind"] == "127.0.0.1:8123" and options["workers"] == 3 and options["threads"] == 5
    assert options["worker_class"] == "gthread" and options["preload_app"] is True
    assert options["control_socket_disable"] is True
    from gunicorn.config import Config

    config = Config()
    for key, value in options.items():
        config.set(key, value)  # every name is a real gunicorn setting


def test_with_read_timeout_sets_the_client_socket_timeout():
    seen = []

    def app(environ, start_response):
        seen.append(environ["gunicorn.socket"].gettimeout())
        return [b""]

    a, b = socket.socketpair()
    with a, b:
        service.with_read_timeout(app, 3.0)({"gunicorn.socket": a}, None)
    assert seen == [3.0]
    assert service.with_read_timeout(lambda environ, start: [b"ok"])({}, None) == [b"ok"]  # not under gunicorn


def test_main_runs_the_chosen_server(monkeypatch, store):
    ran = []
    monkeypatch.setattr(service, "run_gunicorn", lambda app, settings: ran.append(("gunicorn", settings.port)))
    monkeypatch.setattr(service, "run_development", lambda app, settings: ran.append(("flask", settings.port)))
    assert service.main(["--model-store", str(store), "--port", "5001"]) == 0
    assert service.main(["--model-store", str(store), "--port", "5002", "--server", "gunicorn"]) == 0
    assert ran == [("flask", 5001), ("gunicorn", 5002)]
