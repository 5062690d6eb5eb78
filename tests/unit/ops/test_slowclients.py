"""Slow clients against real loopback servers: a plain threaded server whose threads they hold (what they are for),
one that answers at once (they reconnect and count the answer), and the probe that measures normal clients while
they last."""

from __future__ import annotations

import socketserver
import time

import pytest

from aml.devtools import testenv
from aml.ops import slowclients


class _Recorder(socketserver.BaseRequestHandler):
    """Reads until the client stops, recording what it got (a thread per connection, as gunicorn's gthread)."""

    def handle(self):
        self.request.settimeout(5)
        data = b""
        try:
            while chunk := self.request.recv(4096):
                data += chunk
        except OSError:
            pass
        self.server.got.append(data)


class _Answerer(socketserver.BaseRequestHandler):
    """Answers 408 to whatever arrives, then closes (nginx's header timeout, in short)."""

    def handle(self):
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")


def _server(handler):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.got = []
    return server


def test_slow_clients_hold_their_connections_and_trickle():
    with testenv.serving_thread(_server(_Recorder)) as url:
        for mode, first in (("headers", b"POST /score HTTP/1.1\r\nHost: "), ("body", b"POST /score HTTP/1.1\r\n")):
            clients = slowclients.SlowClients(f"{url}/score", connections=5, mode=mode, interval_s=0.1, body_bytes=100)
            with clients:
                held = clients.wait_open(10)
                time.sleep(0.5)
            stats = clients.snapshot()
            assert held.open == 5 and stats.opened == 5 and stats.closed == stats.answered == stats.refused == 0
            assert stats.bytes_sent > 5 * len(clients.opening()), stats
            assert clients.opening().startswith(first)
        assert clients.piece(3) == b"a" and b"Content-Length: 100\r\n\r\n" in clients.opening()
        assert slowclients.SlowClients(url, mode="headers").piece(3) == b"X-Slow-3: 1\r\n"


def test_answers_and_closes_are_counted_and_the_connections_reopened():
    with testenv.serving_thread(_server(_Answerer)) as url:
        with slowclients.SlowClients(url + "/", connections=3, mode="headers", interval_s=0.05) as clients:
            deadline = time.monotonic() + 10
            while clients.snapshot().answered < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
        stats = clients.snapshot()
    assert stats.answered >= 6 and stats.statuses.get("408", 0) == stats.answered, stats
    assert stats.opened >= 6  # every answered connection was opened again


def test_bad_arguments_and_other_hosts_are_refused():
    with pytest.raises(ValueError, match="mode must be one of headers, body"):
        slowclients.SlowClients("http://127.0.0.1:1/", mode="tls")
    with pytest.raises(ValueError, match="connections must be >= 1"):
        slowclients.SlowClients("http://127.0.0.1:1/", connections=0)
    with pytest.raises(ValueError, match="loopback"):
        slowclients.SlowClients("http://example.com/")
    with pytest.raises(ValueError, match="at least one mode"):
        slowclients.probe_under_slow_clients("http://127.0.0.1:1/", {}, modes=())


def test_a_thread_per_connection_server_starves_under_slow_clients():
    """What the probe shows of a server that gives each connection a thread from a small pool while it reads: the
    probes time out (the case the front proxy exists for)."""
    from concurrent.futures import ThreadPoolExecutor

    class Pooled(socketserver.TCPServer):
        pool = ThreadPoolExecutor(4)

        def process_request(self, request, client_address):
            self.pool.submit(self._work, request, client_address)

        def _work(self, request, client_address):
            try:
                self.finish_request(request, client_address)
            finally:
                self.shutdown_request(request)

    class Http(socketserver.StreamRequestHandler):
        def handle(self):
            self.request.settimeout(3)
            try:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            except OSError:
                pass

    server = Pooled(("127.0.0.1", 0), Http)
    with testenv.serving_thread(server) as url:
        result = slowclients.probe_under_slow_clients(
            url + "/", {}, connections=8, seconds=1.0, modes=("headers",), interval_s=0.2, timeout=1.0
        )
    Pooled.pool.shutdown(wait=False, cancel_futures=True)
    assert result["errors"] >= 1 and "200" not in result["statuses"], result
    assert result["slow"]["headers"]["open"] >= 4, result
