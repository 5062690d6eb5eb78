"""The web layer both services share (:mod:`aml.core.web`): errors as JSON, content negotiation, the server settings,
and the front end's ``main`` (one line and exit code 2 for a bad setting, logging through :mod:`aml.core.logs`)."""

from __future__ import annotations

import argparse
import logging
import os

import pytest
from flask import Flask, jsonify
from werkzeug.exceptions import NotFound

from aml.core import web
from aml.ops.http_client import http_call


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


def test_the_proxy_option_and_what_happens_without_nginx(monkeypatch, tmp_path):
    parser = argparse.ArgumentParser()
    web.add_server_options(parser, port=8000, proxy=True)
    gunicorn = ["--server", "gunicorn"]
    found = tmp_path / "nginx"  # what aml.core.nginx.binary() checks: an executable file
    found.write_text("#!/bin/sh\n")
    found.chmod(0o755)
    monkeypatch.setenv("AML_NGINX", str(found))

    def settings(argv, env=None):
        return web.server_settings(parser.parse_args(argv), env or {}, port=8000, workers=2)

    assert settings(gunicorn).proxy is True  # a service with the option serves behind nginx by default
    assert settings([*gunicorn, "--no-proxy"]).proxy is False
    assert settings(gunicorn, {"AML_NO_PROXY": "1"}).proxy is False
    assert settings(gunicorn, {"AML_NO_PROXY": "false"}).proxy is True
    with pytest.raises(web.ConfigError, match="AML_NO_PROXY must be 1 or 0"):
        settings(gunicorn, {"AML_NO_PROXY": "maybe"})
    # a service without the option (Assignment 3's) is plain gunicorn, without a warning
    plain = argparse.ArgumentParser()
    web.add_server_options(plain, port=8000)
    assert web.server_settings(plain.parse_args(gunicorn), {}, port=8000, workers=2).proxy is None
    # no nginx on this machine: --server gunicorn refuses and says what to do; --no-proxy and flask do not need it
    monkeypatch.setenv("AML_NGINX", str(tmp_path / "no-nginx"))
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(web.ConfigError, match=r"apt-get install nginx.* or pass --no-proxy \(AML_NO_PROXY=1\)$"):
        settings(gunicorn)
    assert settings([*gunicorn, "--no-proxy"]).proxy is False
    assert settings([]).server == "flask"


def test_a_taken_port_is_one_line_and_exit_code_2_and_no_proxy_is_a_warning_and_a_dead_proxy_stops_gunicorn():
    """Real gunicorn and nginx in a child process: the two ways ``run_gunicorn`` can start badly or half-safe."""
    import socket
    import subprocess
    import sys

    from aml.core import nginx
    from aml.devtools import testenv

    if nginx.binary() is None:
        testenv.skip_or_fail(f"the front proxy needs nginx ({nginx.INSTALL_HINT})")
    script = (
        "import sys\n"
        "from flask import Flask\n"
        "from aml.core import web\n"
        "def start():\n"
        "    parser = __import__('argparse').ArgumentParser()\n"
        "    web.add_server_options(parser, port=8000, proxy=True)\n"
        "    settings = web.server_settings(parser.parse_args(sys.argv[1:]), dict(), port=8000, workers=1)\n"
        "    return lambda: web.run_gunicorn(web.harden(Flask('t'), 1024), settings)\n"
        "sys.exit(web.run_main(start))\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-c", script, "--server", "gunicorn", "--port", port, "--workers", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == web.EXIT_BAD_SETTINGS, done.stderr[-2000:]
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: the front proxy (nginx) did not start on 127.0.0.1:{port}: nginx exited with code 1")
    ), done.stderr[-2000:]
    assert "Address already in use" in done.stderr and "Traceback" not in done.stderr

    from aml.ops import procs

    plain = procs.ServerProcess(
        [sys.executable, "-c", script, "--server", "gunicorn", "--port", "{port}", "--no-proxy"], procs.free_port()
    )
    with plain.start():
        assert procs.wait_for_http(plain.url + "/nothing", timeout=30, alive=plain.alive, ok_statuses=(404,)) == 404
        assert "without a buffering proxy in front (--no-proxy): 8 slow clients can hold every thread" in plain.log()
        assert "aml-front" not in plain.log()  # gunicorn on the port itself
    plain.log_path.unlink()

    # behind nginx; nginx killed: gunicorn stops too, with exit code 3 (a supervisor restarts the whole service)
    import re
    import signal

    fronted = procs.ServerProcess(
        [sys.executable, "-c", script, "--server", "gunicorn", "--port", "{port}"], procs.free_port()
    )
    with fronted.start():
        assert procs.wait_for_http(fronted.url + "/nothing", timeout=30, alive=fronted.alive, ok_statuses=(404,)) == 404
        assert http_call("GET", fronted.url + "/nothing").json["error"] == "Not Found"  # the app's 404, through nginx
        pid = int(re.search(r"aml.core.nginx: nginx \(pid (\d+)\) listens", fronted.log()).group(1))
        os.kill(pid, signal.SIGKILL)
        assert fronted.proc.wait(30) == web.EXIT_PROXY_DIED, fronted.log()
        assert "nginx (the front proxy, pid" in fronted.log() and "exited with code -9" in fronted.log()
    fronted.log_path.unlink()
