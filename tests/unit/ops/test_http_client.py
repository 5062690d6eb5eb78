import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aml.ops import http_client as serving


class Handler(BaseHTTPRequestHandler):
    """POST: echo the JSON body (500 when it has "fail"); GET: a plain-text page."""

    protocol_version = "HTTP/1.1"  # keep-alive

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"null")
        status = 500 if isinstance(body, dict) and body.get("fail") else 200
        self._send(status, json.dumps({"got": body}).encode(), "application/json")

    def do_GET(self):
        self._send(200, b"hello", "text/plain")

    def _send(self, status, data, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class ClosingHandler(Handler):
    protocol_version = "HTTP/1.0"  # closes the connection after every response, like gunicorn's sync workers


@pytest.fixture(params=[Handler, ClosingHandler], ids=["keep-alive", "closing"])
def server(request):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_call_json_and_raw(server):
    resp = serving.http_call("POST", server + "/echo", json_body={"text": "hi"})
    assert resp.status == 200 and resp.json == {"got": {"text": "hi"}}
    assert resp.content_type == "application/json"
    raw = serving.http_call("POST", server + "/echo", data='{"a": 1}')
    assert raw.json == {"got": {"a": 1}}
    failed = serving.http_call("POST", server + "/echo", json_body={"fail": 1})
    assert failed.status == 500  # no exception for an error status
    page = serving.http_call("GET", server + "/?q=1")
    assert page.body == b"hello" and page.content_type == "text/plain"
    with pytest.raises(ValueError):
        _ = page.json


def test_http_call_bad_arguments():
    with pytest.raises(ValueError, match="not both"):
        serving.http_call("POST", "http://127.0.0.1:1/", json_body={}, data="x")
    with pytest.raises(ValueError, match="http://host:port/path"):
        serving.http_call("GET", "https://example.org/")


def test_load_test_counts_requests_and_latency(server):
    result = serving.load_test(server + "/echo", [{"text": "a"}, {"text": "b"}], clients=4, max_requests=60, warmup=1)
    assert result.requests == 60 and result.errors == 0 and result.statuses == {"200": 60}
    assert result.requests_per_s > 0 and 0 < result.p50_ms <= result.p99_ms
    assert result.as_dict()["clients"] == 4


def test_load_test_counts_errors(server):
    result = serving.load_test(server + "/echo", [{"fail": 1}, {"ok": 1}], clients=1, max_requests=10)
    assert result.errors == 5 and result.statuses == {"500": 5, "200": 5}
    strict = serving.load_test(server + "/echo", [{"ok": 1}], max_requests=4, ok=lambda status, body: b"nope" in body)
    assert strict.errors == 4 and strict.p50_ms != strict.p50_ms  # NaN: no successful request


def test_load_test_is_bounded_in_time(server):
    start = time.perf_counter()
    result = serving.load_test(server + "/echo", [{"a": 1}], clients=2, max_requests=10**9, max_seconds=0.5)
    assert time.perf_counter() - start < 5 and 0 < result.requests < 10**9 and result.seconds < 2


def test_load_test_refuses_other_hosts_and_bad_bounds():
    with pytest.raises(ValueError, match="loopback"):
        serving.load_test("http://10.0.0.1:80/score", [{}])
    with pytest.raises(ValueError, match="loopback"):
        serving.load_test("http://example.org/score", [{}])
    with pytest.raises(ValueError, match=">= 1"):
        serving.load_test("http://127.0.0.1:1/", [{}], clients=0)
    with pytest.raises(ValueError, match="empty"):
        serving.load_test("http://127.0.0.1:1/", [])


def test_load_test_counts_connection_failures():
    from aml.ops import procs

    result = serving.load_test(f"http://127.0.0.1:{procs.free_port()}/", [{}], max_requests=3, timeout=1)
    assert result.errors == 3 and result.statuses == {"ConnectionRefusedError": 3}


def test_call_rate():
    calls = []
    rate = serving.call_rate(calls.append, [(1,), (2,)], max_calls=10)
    assert calls == [1, 2] * 5 and rate > 0
    with pytest.raises(ValueError):
        serving.call_rate(calls.append, [], max_calls=10)


def test_http_status_answers_any_status(server):
    assert serving.http_status(server + "/") == 200
    failed_page = serving.http_call("POST", server + "/echo", json_body={"fail": 1})
    assert failed_page.status == 500


def test_http_status_of_nothing_or_not_http_is_none():
    from aml.ops import procs

    assert serving.http_status(f"http://127.0.0.1:{procs.free_port()}/") is None  # refused
    with socket.socket() as listener:  # accepts, then closes without answering
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def close_at_once():
            conn, _ = listener.accept()
            conn.close()

        thread = threading.Thread(target=close_at_once, daemon=True)
        thread.start()
        assert serving.http_status(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=2) is None
        thread.join(5)


def test_loopback_target():
    assert serving.loopback_target("http://127.0.0.1:8000/score?x=1") == ("127.0.0.1", 8000, "/score?x=1")
    assert serving.loopback_target("http://localhost") == ("localhost", 80, "/")
    for url in ("http://example.com/", "https://127.0.0.1/", "127.0.0.1:80"):
        with pytest.raises(ValueError):
            serving.loopback_target(url)
