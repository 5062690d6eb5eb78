"""Slow HTTP clients ("slowloris"): many connections that trickle a request's header or body and never finish it,
to prove that a server keeps answering its normal clients while they last (issue 22: sixteen of them stopped the
project's service; :mod:`aml.core.nginx` is the fix).

- :class:`SlowClients`: ``connections`` sockets to one URL, each sending a few bytes every ``interval_s`` seconds
  from one thread (a selector: hundreds of connections cost this process almost nothing), reopened when the server
  closes them or answers; counts what the server did to them;
- :func:`probe_under_slow_clients`: normal clients (:func:`aml.ops.http_client.load_test`) POST to the service
  while slow clients of each mode hold their connections; returns the probes' figures and the slow clients'.

Why by hand: the tools that do this (slowhttptest, slowloris scripts) are not packaged for this machine's Python
or its offline apt mirror in a form a test can drive and read back; what they do is a loop over sockets. Loopback
only, as :func:`~aml.ops.http_client.load_test`: this is a test of one's own server, not a tool to aim elsewhere.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aml.ops import http_client

MODES = ("headers", "body")


@dataclass
class SlowStats:
    """What the slow clients saw: ``opened`` connections in all (reopens included), ``open`` now, the most open at
    once (``open_max``), ``closed`` by the server without an answer, ``answered`` by the server (``statuses``: the
    status lines' codes), ``refused`` connection attempts, ``bytes_sent``."""

    mode: str
    connections: int
    opened: int = 0
    open: int = 0
    open_max: int = 0
    closed: int = 0
    answered: int = 0
    refused: int = 0
    bytes_sent: int = 0
    statuses: dict | None = None

    def as_dict(self) -> dict:
        """The figures as a plain dict."""
        return asdict(self)


class SlowClients:
    """``connections`` slow clients of ``url`` (a ``POST``), run by a thread while the ``with`` block lasts.

    ``mode="headers"``: the request line and a ``Host`` header, then one more header line every ``interval_s``
    seconds, never the blank line that ends the header. ``mode="body"``: a complete header announcing
    ``body_bytes`` bytes of JSON, then one byte every ``interval_s`` seconds. A connection the server closes or
    answers is counted (:class:`SlowStats`) and opened again, so the pressure stays at ``connections``."""

    def __init__(
        self,
        url: str,
        connections: int = 200,
        mode: str = "headers",
        interval_s: float = 1.0,
        body_bytes: int = 60_000,
        connect_timeout: float = 2.0,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if connections < 1 or interval_s <= 0 or body_bytes < 2:
            raise ValueError("connections must be >= 1, interval_s > 0 and body_bytes >= 2")
        self.host, self.port, self.path = http_client.loopback_target(url)
        self.connections, self.mode, self.interval_s = connections, mode, interval_s
        self.body_bytes, self.connect_timeout = body_bytes, connect_timeout
        self.stats = SlowStats(mode, connections, statuses={})
        self._selector = selectors.DefaultSelector()
        self._sockets: dict[socket.socket, int] = {}  # socket → pieces sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what is sent ---------------------------------------------------------------------------------------------

    def opening(self) -> bytes:
        """The first bytes of each request."""
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.mode == "headers":
            return head.encode()
        return (
            head + f"Content-Type: application/json\r\nContent-Length: {self.body_bytes}\r\n\r\n" + '{"text": "'
        ).encode()

    def piece(self, n: int) -> bytes:
        """The ``n``-th trickled piece: a header line (``X-Slow-<n>: 1``) or one byte of the body."""
        return f"X-Slow-{n}: 1\r\n".encode() if self.mode == "headers" else b"a"

    # -- the loop -------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            data = self.opening()
            sock.sendall(data)
        except OSError:
            self.stats.refused += 1
            return
        sock.setblocking(False)
        self._sockets[sock] = 0
        self._selector.register(sock, selectors.EVENT_READ)
        self.stats.opened += 1
        self.stats.bytes_sent += len(data)

    def _close(self, sock: socket.socket, answer: bytes | None) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        self._sockets.pop(sock, None)
        sock.close()
        if answer:
            self.stats.answered += 1
            parts = answer.split(b" ", 2)
            code = parts[1].decode(errors="replace") if len(parts) > 1 and answer.startswith(b"HTTP/") else "?"
            self.stats.statuses[code] = self.stats.statuses.get(code, 0) + 1
        else:
            self.stats.closed += 1

    def _read_answers(self, wait: float) -> None:
        for key, _ in self._selector.select(timeout=wait):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self._close(sock, data)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                while len(self._sockets) < self.connections and not self._stop.is_set():
                    before = self.stats.refused
                    self._open()
                    if self.stats.refused > before:
                        break  # the server refuses: try again next tick
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.interval_s
                    for sock, sent in list(self._sockets.items()):
                        data = self.piece(sent)
                        try:
                            sock.send(data)
                        except BlockingIOError:
                            continue
                        except OSError:
                            self._close(sock, None)
                            continue
                        self._sockets[sock] = sent + 1
                        self.stats.bytes_sent += len(data)
                self.stats.open = len(self._sockets)
                self.stats.open_max = max(self.stats.open_max, self.stats.open)
            self._read_answers(max(0.0, min(0.2, next_tick - time.monotonic())))

    def snapshot(self) -> SlowStats:
        """A copy of the figures so far."""
        with self._lock:
            return SlowStats(**{**asdict(self.stats), "statuses": dict(self.stats.statuses)})

    def wait_open(self, timeout: float = 30.0) -> SlowStats:
        """Until every connection is open (:class:`TimeoutError` after ``timeout``); returns :meth:`snapshot`."""
        deadline = time.monotonic() + timeout
        while self.snapshot().open < self.connections:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.snapshot().open} of {self.connections} slow connections open after {timeout:g} s"
                )
            time.sleep(0.05)
        return self.snapshot()

    def start(self) -> SlowClients:
        """Start the thread (connections open from there); returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=f"slow-{self.mode}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> SlowStats:
        """Stop the thread, close every connection; returns the final figures."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                sock.close()
            self._sockets.clear()
            self._selector.close()
        return self.snapshot()

    def __enter__(self) -> SlowClients:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def probe_under_slow_clients(
    url: str,
    body: Any,
    connections: int = 200,
    seconds: float = 60.0,
    modes: Sequence[str] = MODES,
    probe_clients: int = 2,
    timeout: float = 5.0,
    interval_s: float = 1.0,
    ok: Callable[[int, bytes], bool] | None = None,
) -> dict:
    """POST ``body`` to ``url`` from ``probe_clients`` normal clients for ``seconds`` (closed loop,
    :func:`~aml.ops.http_client.load_test`, each request an error after ``timeout`` s) while ``connections`` slow
    clients of each of ``modes`` hold connections to the same URL (all open first, then one tick to reach the
    server's threads). Returns the probes' figures (``requests``, ``errors``, ``statuses``, ``requests_per_s``,
    ``p50_ms``, ``p99_ms``) and ``slow``: each mode's :class:`SlowStats` as a dict, taken as the probes end."""
    if not modes:
        raise ValueError("give at least one mode")
    with contextlib.ExitStack() as stack:
        slow = [stack.enter_context(SlowClients(url, connections, mode, interval_s)) for mode in modes]
        for clients in slow:
            clients.wait_open()
        time.sleep(interval_s + 0.5)
        result = http_client.load_test(
            url, [body], clients=probe_clients, max_requests=10**9, max_seconds=seconds, timeout=timeout, ok=ok
        )
        held = {clients.mode: clients.snapshot().as_dict() for clients in slow}
    return {**result.as_dict(), "slow": held}


__all__ = ["MODES", "SlowClients", "SlowStats", "probe_under_slow_clients"]
