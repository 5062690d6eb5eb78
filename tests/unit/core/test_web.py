"""The web layer both services share (:mod:`aml.core.web`): errors as JSON, content negotiation, the server settings,
and the front end's ``main`` (one line and exit code 2 for a bad setting, logging through :mod:`aml.core.logs`)."""

from __future__ import annotations

import argparse
import logging

import pytest
from flask import Flask, jsonify
from werkzeug.exceptions import NotFound

from aml.core import web


@pytest.fixture
def app():
    app = web.harden(Flask(__name__), max_bytes=8192)

    @app.post("/echo")
    def echo():
        payload = web.json_object()
        return jsonify({"payload": payload, "html": web.wants_html(), "form": web.is_form()})

    @app.get("/missing")
    def missing():
        raise NotFound("nothing here")

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    return app


def test_every_error_is_json_and_leaks_nothing(app):
    client = app.test_client()
    assert client.get("/missing").get_json() == {"error": "Not Found", "message": "nothing here", "status": 404}
    boom = client.get("/boom")
    assert boom.status_code == 500 and "secret" not in boom.get_data(as_text=True)
    big = client.post("/echo", data="x" * 9000)
    assert big.status_code == 413 and "limit of 8192 bytes" in big.get_json()["message"]
    wrong = client.get("/echo")
    assert wrong.status_code == 405 and wrong.headers["Allow"] and wrong.is_json


def test_bodies_and_negotiation(app):
    client = app.test_client()
    assert client.post("/echo", json={"a": 1}).get_json()["payload"] == {"a": 1}
    assert client.post("/echo", data="").get_json()["payload"] == {}
    assert client.post("/echo", data="[1]", content_type="application/json").get_json()["payload"] is None
    deep = client.post("/echo", data="[" * 5000, content_type="application/json")
    assert deep.status_code == 400 and "nested too deeply" in deep.get_json()["message"]
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert client.post("/echo", data={"t": "x"}, headers=browser).get_json()["html"] is True
    for accept in ({}, {"Accept": "*/*"}, {"Accept": "application/json, text/html;q=0.5"}):
        assert client.post("/echo", json={}, headers=accept).get_json()["html"] is False, accept


def test_server_settings_name_the_bad_setting():
    parser = argparse.ArgumentParser()
    web.add_server_options(parser, port=8000)
    settings = web.server_settings(parser.parse_args(["--threads", "3"]), {"PORT": "9000"}, port=8000, workers=2)
    assert settings == web.ServerSettings("127.0.0.1", 9000, "flask", 2, 3)
    with pytest.raises(web.ConfigError, match=r"^--port must be an integer from 1 to 65535, got 'x'$"):
        web.server_settings(parser.parse_args(["--port", "x"]), {}, port=8000, workers=2)
    with pytest.raises(web.ConfigError, match="AML_SERVER must be one of flask, gunicorn"):
        web.server_settings(parser.parse_args([]), {"AML_SERVER": "uwsgi"}, port=8000, workers=2)
    assert web.gunicorn_options(settings)["bind"] == "127.0.0.1:9000"


def test_run_main_sets_up_logging_and_reports_bad_settings_in_one_line(capsys):
    def bad():
        raise web.ConfigError("PORT must be an integer")

    assert web.run_main(bad) == web.EXIT_BAD_SETTINGS
    assert capsys.readouterr().err == "error: PORT must be an integer\n"
    served = []
    assert web.run_main(lambda: lambda: served.append(True)) == 0 and served == [True]
    handlers = [h for h in logging.getLogger("aml").handlers if getattr(h, "_aml", False)]
    assert len(handlers) == 1  # aml.core.logs.setup_logging, not logging.basicConfig
