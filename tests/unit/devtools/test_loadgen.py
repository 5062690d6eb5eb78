"""wrk's report parsed into numbers, its request script, and one real run against a loopback server."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import sys
import threading

import pytest

from aml.devtools import loadgen

REPORT = """Running 1s test @ http://127.0.0.1:8765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   344.00us    2.38ms  11.32ms   73.36%
    Req/Sec   591.60    112.23   747.00     70.00%
  Latency Distribution
     50%    2.90ms
     75%    4.74ms
     90%    1.20s
     99%    9.82ms
  592 requests in 1.01s, 239.50KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:    588.83
Transfer/sec:    238.21KB
"""


def test_parse_wrk_reads_every_number_in_milliseconds():
    result = loadgen.parse_wrk(REPORT)
    assert result["requests"] == 592 and result["seconds"] == pytest.approx(1.01)
    assert result["requests_per_s"] == pytest.approx(588.83)
    assert result["latency_ms"] == pytest.approx({"mean": 0.344, "p50": 2.9, "p75": 4.74, "p90": 1200.0, "p99": 9.82})
    assert result["non_2xx"] == 7 and result["socket_errors"] == 3


def test_parse_wrk_refuses_what_is_not_a_report():
    with pytest.raises(loadgen.WrkError, match="not a wrk report"):
        loadgen.parse_wrk("command not found")
    without_latency = "\n".join(line for line in REPORT.splitlines() if "%  " not in line and "%    " not in line)
    with pytest.raises(loadgen.WrkError, match="--latency"):
        loadgen.parse_wrk(without_latency)


def test_request_script_quotes_body_and_headers():
    script = loadgen.request_script("post", '{"text": "it\'s \\"quoted\\""}', {"Content-Type": "application/json"})
    assert 'wrk.method = "POST"' in script
    assert json.dumps('{"text": "it\'s \\"quoted\\""}') in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script


def test_run_wrk_only_against_loopback():
    with pytest.raises(ValueError, match="loopback"):
        loadgen.run_wrk("http://example.com/")


class _Echo(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Echo.seen.append((self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # wrk hangs up mid-answer when its time is up
            super().handle_error(request, client_address)


@pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("CI"), reason="wrk is not installed")
def test_run_wrk_measures_a_real_server():
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/score"
        result = loadgen.run_wrk(
            url,
            connections=2,
            threads=1,
            seconds=1,
            method="POST",
            body='{"text": "hi"}',
            headers={"Content-Type": "application/json"},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result["requests"] > 10 and result["non_2xx"] == 0
    assert result["requests_per_s"] > 0 and result["latency_ms"]["p99"] >= result["latency_ms"]["p50"]
    assert _Echo.seen[0] == ("application/json", b'{"text": "hi"}')


def test_request_script_refuses_non_ascii_bodies():
    with pytest.raises(ValueError, match="ASCII"):
        loadgen.request_script("post", '{"text": "£5"}')
    script = loadgen.request_script("post", bodies=[json.dumps({"text": "£5"}), "b"])
    assert "local bodies = {" in script and "\\\\u00a3" in script


@pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("CI"), reason="wrk is not installed")
def test_run_wrk_sends_the_bodies_in_turn():
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Echo.seen.clear()
    bodies = [json.dumps({"text": f"message {i}"}) for i in range(5)]
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/score"
        result = loadgen.run_wrk(url, connections=2, threads=2, seconds=1, method="POST", bodies=bodies)
    finally:
        server.shutdown()
        server.server_close()
    assert result["requests"] > 10 and result["non_2xx"] == 0
    seen = [body.decode() for _, body in _Echo.seen]
    assert set(seen) == set(bodies)  # every body sent, nothing else
