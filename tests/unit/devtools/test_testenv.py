"""The machine checks and set-ups shared by the tests (skip or fail, engine, browser, project stores)."""

from __future__ import annotations

import sqlite3

import pytest

from aml.devtools import testenv


def test_skip_or_fail_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert not testenv.in_ci()
    with pytest.raises(pytest.skip.Exception, match="no tool"):
        testenv.skip_or_fail("no tool")
    monkeypatch.setenv("CI", "true")
    assert testenv.in_ci()
    with pytest.raises(pytest.fail.Exception, match="no tool .*CI=true"):
        testenv.skip_or_fail("no tool")


def test_missing_browser_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(testenv, "CHROMIUM", str(tmp_path / "no-chromium"))
    assert str(tmp_path / "no-chromium") in testenv.missing_browser()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium"):
        testenv.browser_or_skip()


def test_headless_chrome_renders_a_page(tmp_path):
    testenv.browser_or_skip()
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>hello</title></head><body><h1>Rendered</h1></body></html>")
    with testenv.headless_chrome(window=(800, 600)) as driver:
        driver.get(page.as_uri())
        assert driver.title == "hello"
        assert driver.execute_script("return [window.innerWidth, document.querySelector('h1').textContent]") == [
            800,
            "Rendered",
        ]


def test_project_environment_gives_fresh_isolated_stores(tmp_path):
    env = testenv.project_environment(tmp_path, "secret")
    assert env["AML_DATA_STORE"] == str(tmp_path / "data") and env["AML_MODEL_STORE"] == str(tmp_path / "models")
    assert env["AML_API_TOKEN"] == "secret"
    db = tmp_path / "mlflow" / "mlflow.db"
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{db.resolve()}"
    tables = {row[0] for row in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert "registered_models" in tables  # migrated, ready for the service
    with pytest.raises(FileExistsError):
        testenv.project_environment(tmp_path, "again")  # never overwrites a store


def test_container_engine_or_skip(monkeypatch):
    from aml.ops import containers

    def unavailable(*args, **kwargs):
        raise containers.EngineUnavailable("none here")

    monkeypatch.setattr(containers, "detect_engine", unavailable)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="none here"):
        testenv.container_engine()


def test_serve_in_thread_serves_the_app_on_loopback_and_stops_it():
    import requests
    from flask import Flask

    app = Flask("t")
    app.get("/ping")(lambda: "pong")
    with testenv.serve_in_thread(app) as url:
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/ping", timeout=5).text == "pong"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ping", timeout=2)


def test_serving_thread_serves_a_plain_http_server_and_closes_it(tmp_path):
    import functools
    import http.server

    import requests

    (tmp_path / "page.txt").write_text("hello")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with testenv.serving_thread(server) as url:
        assert requests.get(f"{url}/page.txt", timeout=5).text == "hello"
    assert server.socket.fileno() == -1  # closed, not only stopped
