"""The nginx configuration (read as text and checked by ``nginx -t``) and :class:`~aml.core.nginx.FrontProxy` started
for real in front of a small HTTP server on a Unix socket: buffering, JSON errors, stop by PID, a taken port, and
nginx's end when its parent is killed. Without nginx the live tests skip, and fail under ``CI=true``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aml.core import nginx
from aml.devtools import testenv
from aml.ops import procs
from aml.ops.http_client import http_call


def require_nginx() -> str:
    found = nginx.binary()
    if found is None:
        testenv.skip_or_fail(f"nginx is needed ({nginx.INSTALL_HINT})")
    return found


def test_binary_follows_aml_nginx(monkeypatch, tmp_path):
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AML_NGINX", str(fake))
    assert nginx.binary() == str(fake)
    fake.chmod(0o644)  # not executable: not an nginx
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert nginx.binary() in (None, "/usr/sbin/nginx") and nginx.binary() != str(fake)


def test_error_messages_are_the_services_json_format():
    messages = nginx.error_messages(max_body_bytes=1234, timeout_s=7)
    assert set(messages) == set(nginx.ERROR_STATUSES)
    assert messages[494][0] == 431 and messages[413][2] == "the request body is larger than the limit of 1234 bytes"
    assert "7 s" in messages[408][2]
    body = json.loads(nginx.error_body(*messages[502]))
    assert body == {"error": "Bad Gateway", "message": messages[502][2], "status": 502}
    for _, _, message in messages.values():  # nothing about the server: no paths, hosts or versions
        assert not re.search(r"(^|[\s(])/\w", message) and "nginx" not in message


def test_config_buffers_times_out_and_answers_json(tmp_path):
    conf = nginx.config("0.0.0.0:8000", ["unix:/tmp/x/service.sock"], tmp_path, max_body_bytes=65536)
    for line in (
        "listen 0.0.0.0:8000;",
        "server unix:/tmp/x/service.sock;",
        "client_max_body_size 65536;",
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "send_timeout 10s;",
        "proxy_request_buffering on;",
        "proxy_buffering on;",
        "proxy_next_upstream off;",
        "proxy_set_header Connection close;",
        "server_tokens off;",
        "error_page 494 =431 /_aml_error/494;",
        "error_page 400 /_aml_error/400;",
        f"pid {tmp_path / 'nginx.pid'};",
    ):
        assert line in conf, line
    assert "user " not in conf.split("worker_processes")[0] and "keepalive 32" not in conf
    balancer = nginx.config(
        "127.0.0.1:1",
        ["127.0.0.1:2", "http://127.0.0.1:3/"],
        tmp_path,
        max_body_bytes=10,
        user="nobody nogroup",
        health_path="/up",
        keepalive=32,
        next_upstream=True,
    )
    assert "user nobody nogroup;" in balancer and "keepalive 32;" in balancer and "location = /up {" in balancer
    assert "server 127.0.0.1:3 max_fails=1 fail_timeout=2s;" in balancer and "proxy_next_upstream_tries 2;" in balancer
    with pytest.raises(ValueError, match="at least one upstream"):
        nginx.config("127.0.0.1:1", [], tmp_path, max_body_bytes=10)
    with pytest.raises(ValueError, match="not an upstream address"):
        nginx.config("127.0.0.1:1", ["127.0.0.1:2; evil"], tmp_path, max_body_bytes=10)


def test_nginx_accepts_the_config(tmp_path):
    binary = require_nginx()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        nginx.config("127.0.0.1:1", ["unix:/tmp/x.sock"], tmp_path, max_body_bytes=10, user=nginx.worker_user())
    )
    checked = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr


class _Echo(BaseHTTPRequestHandler):
    """Answers every POST with the length of the body it got whole (it reads Content-Length bytes)."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"got": len(body), "chunked": "Transfer-Encoding" in self.headers}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_front_proxy_buffers_answers_json_and_stops():
    require_nginx()
    port = procs.free_port()
    front = nginx.FrontProxy("127.0.0.1", port, max_body_bytes=1000)  # in the system's temporary folder: nginx's
    # workers (nobody, when this runs as root) cannot traverse pytest's private tmp_path
    socket_path = front.prepare()
    assert oct(socket_path.parent.stat().st_mode & 0o777) == "0o700"
    server = _UnixServer(str(socket_path), _Echo)
    os.chmod(socket_path, 0o777)  # nginx's workers (nobody, when this runs as root) reach it through the folder
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        front.start()
        url = f"http://127.0.0.1:{port}/x"
        # a chunked body arrives whole, with a Content-Length: the service never reads a trickle
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            time.sleep(0.3)
            sock.sendall(b"2\r\nde\r\n0\r\n\r\n")
            answer = sock.recv(4096)
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"got": 5, "chunked": False}
        too_big = http_call("POST", url, data=b"x" * 2000)
        assert too_big.status == 413 and too_big.json["message"].endswith("limit of 1000 bytes")
        assert too_big.content_type == "application/json" and too_big.headers["server"] == "nginx"
        pid = front.proc.pid
    finally:
        server.shutdown()
        server.server_close()
    down = http_call("POST", url, data=b"{}")
    assert down.status == 502 and down.json["error"] == "Bad Gateway", down.body
    front.stop()
    assert front.proc.poll() is not None and not front.folder.exists() and not front.died.is_set()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_taken_port_is_an_error_and_nginx_dies_with_its_parent():
    require_nginx()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        front = nginx.FrontProxy("127.0.0.1", taken.getsockname()[1], max_body_bytes=10)
        with pytest.raises(nginx.NginxError, match="nginx exited with code 1 while starting"):
            front.start()
        assert not front.folder.exists()
    # a parent killed with SIGKILL takes nginx with it (PR_SET_PDEATHSIG): no orphan holding the port
    script = (
        "import sys, time\n"
        "from aml.core import nginx\n"
        "front = nginx.FrontProxy('127.0.0.1', int(sys.argv[1]), max_body_bytes=10).start()\n"
        "print(front.proc.pid, front.folder, flush=True)\n"
        "time.sleep(60)\n"
    )
    port = procs.free_port()
    folder = ""
    parent = subprocess.Popen([sys.executable, "-c", script, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        pid, folder = parent.stdout.readline().split()
        pid = int(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"nginx {pid} outlived its parent")
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # what a killed parent leaves: nginx's private folder
        parent.stdout.close()
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_remove_stale_takes_only_the_folders_of_gone_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {name: tmp_path / (nginx.FRONT_PREFIX + name) for name in ("dead", "alive", "new", "old", "other")}
    for folder in folders.values():
        folder.mkdir()
    (folders["dead"] / nginx.OWNER_FILE).write_text(f"{dead.pid}\n")
    (folders["alive"] / nginx.OWNER_FILE).write_text(f"{os.getpid()}\n")
    os.utime(folders["old"], (time.time() - 3600, time.time() - 3600))
    folders["other"].rename(tmp_path / "unrelated")
    removed = nginx.remove_stale(tmp_path)
    assert sorted(removed) == sorted([folders["dead"], folders["old"]])
    assert folders["alive"].is_dir() and folders["new"].is_dir() and (tmp_path / "unrelated").is_dir()


def test_no_proxy_unless_installed(monkeypatch, tmp_path, caplog):
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AML_NGINX", str(fake))
    assert nginx.no_proxy_unless_installed() == []
    monkeypatch.setenv("AML_NGINX", str(tmp_path / "none"))
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("os.path.isfile", lambda path: False)  # not even /usr/sbin/nginx
    with caplog.at_level("WARNING", logger="aml.core.nginx"):
        assert nginx.no_proxy_unless_installed() == ["--no-proxy"]
    assert "apt-get install nginx" in caplog.text
