"""Slow clients and malformed HTTP against the project's service as it runs in production: ``python src/app.py
--server gunicorn`` (two workers, nginx in front: :mod:`aml.core.nginx`) over stores with a trained model.

- ``test_slow_clients_do_not_starve_online_scoring``: 200 connections trickling their headers and 200 trickling
  their bodies (:class:`aml.ops.slowclients.SlowClients`) for ~8 s, while two normal clients score SMS online: every
  probe answers 200 and the slow connections stay open (nginx holds them, not gunicorn's 2 × 8 threads; without the
  proxy, 16 header tricklers stop the service: issue 22). The 60-s, 200-connection figures with and without the
  proxy are ``project/bench_slow_clients.py``'s (``make bench``);
- ``test_malformed_http_gets_json``: raw requests nginx refuses (bad or negative ``Content-Length``, a 9 KB header,
  ``Content-Length`` with ``Transfer-Encoding``, an unknown ``Transfer-Encoding``, ``HTTP/2.0`` in the request
  line, a TLS hello, a body over the app's limit, a request line over 8 KiB, the proxy's internal error page) each
  get the services' JSON error, and the app's own limits (a URL over 2,048 bytes) still answer as the app
  does, and a chunked body reaches the app whole.

A port nginx cannot take, and ``--no-proxy``, are tested in ``tests/unit/core/test_web.py``.

Without nginx these tests skip, and fail under ``CI=true`` (:func:`aml.devtools.testenv.skip_or_fail`).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path

import pytest

from aml.core import nginx
from aml.devtools import testenv
from aml.ops import procs, slowclients
from aml.ops.http_client import http_call

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "src/app.py", "--server", "gunicorn", "--port", "{port}", "--workers", "2"]
SPAM = {"text": "WINNER! Claim your £1000 prize, call 09061701461"}
SLOW, SECONDS = 200, 8.0


@pytest.fixture(scope="module")
def service(trained):
    if nginx.binary() is None:
        testenv.skip_or_fail(f"--server gunicorn serves behind nginx ({nginx.INSTALL_HINT})")
    with procs.serve(COMMAND, cwd=PROJECT, env=trained["env"], timeout=90) as server:
        yield server


def test_slow_clients_do_not_starve_online_scoring(service):
    started = time.perf_counter()
    result = slowclients.probe_under_slow_clients(
        f"{service.url}/score", SPAM, connections=SLOW, seconds=SECONDS, probe_clients=2, timeout=5.0
    )
    print(f"under {SLOW} + {SLOW} slow clients ({time.perf_counter() - started:.1f} s, loaded machine):", result)
    assert result["errors"] == 0 and set(result["statuses"]) == {"200"}, result
    assert result["requests"] >= 50, result  # answered all along, not once at the end
    assert result["p99_ms"] < 2000, result  # loose here; the < 100 ms aim is the benchmark's (a loaded machine)
    for mode, held in result["slow"].items():
        # nginx keeps every slow connection open (headers: until its 10-s header timeout, then they reconnect)
        assert held["refused"] == 0 and held["open"] >= 0.9 * SLOW, (mode, held)
    assert "worker timeout" not in service.log().lower()


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send ``data`` on a new connection and read one answer: (status, headers with lower-case names, body)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        while True:
            head, _, body = answer.partition(b"\r\n\r\n")
            if _ and len(body) >= _length(head):
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    return int(lines[0].split()[1]), headers, body


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


REQUEST = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
MALFORMED = {
    "Content-Length not a number": (REQUEST + b"Content-Length: abc\r\n\r\n{}", 400),
    "negative Content-Length": (REQUEST + b"Content-Length: -5\r\n\r\n{}", 400),
    "two Content-Lengths": (REQUEST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    "Content-Length and Transfer-Encoding": (
        REQUEST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "a 9 KB header": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "a request line over 8 KiB": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "a TLS hello": (bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00" * 40, 400),
    "a body over the limit": (REQUEST + b"Content-Length: 200000\r\n\r\n" + b"{" * 1000, 413),
    "not HTTP": (b"hello\r\n\r\n", 400),
    "an unknown Transfer-Encoding": (REQUEST + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    "HTTP/2.0 in the request line": (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "the proxy's internal error page": (b"GET /_aml_error/400 HTTP/1.1\r\nHost: x\r\n\r\n", 404),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_http_gets_json(service, case):
    data, expected = MALFORMED[case]
    status, headers, body = raw(service.port, data)
    assert status == expected, (case, status, body)
    assert headers["content-type"] == "application/json", (case, headers)
    answer = json.loads(body)
    assert answer["status"] == expected and answer["error"] and answer["message"], answer
    # no server details: no name or version of the proxy, no absolute path
    assert "nginx" not in body.decode().lower() and not re.search(r"(^|[\s(])/\w", answer["message"]), answer
    assert headers.get("server") == "nginx", headers  # and no version in the header (server_tokens off)


def test_the_apps_own_limits_and_answers_pass_through(service):
    too_long = http_call("GET", f"{service.url}/{'a' * 3000}")
    assert too_long.status == 414 and too_long.json["message"] == "the URL has 3001 bytes; the limit is 2048"
    scored = http_call("POST", f"{service.url}/score", json_body=SPAM)
    assert scored.status == 200 and scored.json["prediction"] is True, scored.json
    body = json.dumps(SPAM).encode()
    chunked = REQUEST + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, headers, answer = raw(service.port, chunked)  # nginx passes a chunked body on whole
    assert status == 200 and json.loads(answer)["prediction"] is True, answer
