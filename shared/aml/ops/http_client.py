"""An HTTP client and a load generator for testing servers: the service's tests, its container test, the load
benchmark, and :mod:`aml.ops.procs` (which polls a starting server with :func:`http_status`).

Why not ``requests`` or ``urllib``: tests must see every answer as it is — 4xx/5xx included, without an exception —
and the load generator must keep one connection per client; ``http.client`` does both with the standard library.

- :func:`http_call`: one HTTP request, answering status, headers and the decoded JSON body (errors included);
- :func:`http_status`: the status of ``GET url``, or ``None`` when nothing answers (readiness polling);
- :func:`load_test`: a bounded, threaded load generator (loopback only: :func:`loopback_target`) with requests/s,
  p50/p99 latency, errors;
- :func:`call_rate`: calls per second of a function in-process, the yardstick for the served rate.

The spam filter and the example messages the tests use live in :mod:`aml.devtools.fixtures`.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


# -- HTTP ----------------------------------------------------------------------------------------------------------


@dataclass
class Response:
    """An HTTP answer as :func:`http_call` read it: the status, the headers (lower-case names) and the raw body,
    whatever the status (error answers are data to check, not exceptions)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, ``''`` when absent."""
        return self.headers.get("content-type", "")


def _split_url(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http://host:port/path URL, got {url!r}")
    return parts.hostname, parts.port or 80, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def http_call(
    method: str,
    url: str,
    json_body: Any = None,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """Send one request and return the response, whatever its status (no exception for 4xx/5xx).

    ``json_body`` is serialised with ``Content-Type: application/json``; ``data`` is sent as is (for malformed
    bodies in tests). Network failures raise ``OSError`` as usual.
    """
    if json_body is not None and data is not None:
        raise ValueError("give json_body or data, not both")
    host, port, path = _split_url(url)
    headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(data, str):
        data = data.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of ``GET url``, or ``None`` when nothing answers (refused, reset, timed out, not HTTP)."""
    try:
        return http_call("GET", url, timeout=timeout).status
    except (OSError, http.client.HTTPException):
        return None


# -- load ----------------------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What :func:`load_test` measured. Latencies are of successful requests, in milliseconds."""

    clients: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The result as a plain dict (for the metrics file and benchmark reports)."""
        return asdict(self)


def _check_loopback(host: str) -> None:
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"load tests only target this machine's loopback addresses, not {host!r}")


def loopback_target(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an ``http://`` URL on this machine's loopback; ``ValueError`` for another URL or
    host (load and slow-client tools aim only at one's own servers: :func:`load_test`,
    :mod:`aml.ops.slowclients`)."""
    host, port, path = _split_url(url)
    _check_loopback(host)
    return host, port, path


def load_test(
    url: str,
    bodies: Sequence[Any],
    clients: int = 1,
    max_requests: int = 1000,
    max_seconds: float = 10.0,
    timeout: float = 10.0,
    warmup: int = 0,
    ok: Callable[[int, bytes], bool] | None = None,
) -> LoadResult:
    """POST JSON ``bodies`` (cycled) to ``url`` from ``clients`` threads until ``max_requests`` are sent or
    ``max_seconds`` pass, whichever comes first; bounded on both, loopback only.

    Each client keeps one HTTP/1.1 connection open while the server allows it and reconnects when the server closes
    it (gunicorn's sync workers close after every response). A request is an error when it raises, times out or
    ``ok(status, body)`` is false (default: status 200). ``warmup`` requests per client run first and are not
    counted.
    """
    if clients < 1 or max_requests < 1 or max_seconds <= 0:
        raise ValueError("clients and max_requests must be >= 1 and max_seconds > 0")
    if not bodies:
        raise ValueError("bodies must not be empty")
    host, port, path = _split_url(url)
    _check_loopback(host)
    payloads = [json.dumps(b).encode() for b in bodies]
    ok = ok or (lambda status, body: status == 200)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    counter, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    deadline = [0.0]
    started = [0.0]

    def release() -> None:  # runs once, when every client has warmed up: the measured window starts
        started[0] = time.perf_counter()
        deadline[0] = started[0] + max_seconds

    start_barrier = threading.Barrier(clients + 1, action=release)

    def one(conn: http.client.HTTPConnection, body: bytes) -> tuple[http.client.HTTPConnection, str, bool]:
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.will_close:
                conn.close()
            return conn, str(resp.status), ok(resp.status, data)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return http.client.HTTPConnection(host, port, timeout=timeout), type(exc).__name__, False

    def client(k: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        for i in range(warmup):
            conn, _, _ = one(conn, payloads[(k + i) % len(payloads)])
        start_barrier.wait()
        mine, mine_status, mine_errors = [], {}, 0
        while True:
            with lock:
                i = next(counter)
            if i >= max_requests or time.perf_counter() >= deadline[0]:
                break
            t0 = time.perf_counter()
            conn, status, good = one(conn, payloads[i % len(payloads)])
            if good:
                mine.append(time.perf_counter() - t0)
            else:
                mine_errors += 1
            mine_status[status] = mine_status.get(status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += mine_errors
            for s, n in mine_status.items():
                statuses[s] = statuses.get(s, 0) + n

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start_barrier.wait(timeout=warmup * timeout + 60)
    for t in threads:
        t.join(max_seconds + timeout + 5)
    seconds = time.perf_counter() - started[0]
    done = len(latencies) + errors
    lat_ms = np.asarray(latencies) * 1000
    return LoadResult(
        clients=clients,
        requests=done,
        errors=errors,
        seconds=round(seconds, 3),
        requests_per_s=done / seconds if seconds > 0 else 0.0,
        p50_ms=float(np.percentile(lat_ms, 50)) if len(lat_ms) else float("nan"),
        p99_ms=float(np.percentile(lat_ms, 99)) if len(lat_ms) else float("nan"),
        statuses=statuses,
    )


def call_rate(fn: Callable[..., Any], args: Sequence[tuple], max_calls: int = 1000, max_seconds: float = 5.0) -> float:
    """Calls per second of ``fn(*args[i % len(args)])`` run back to back in this thread (bounded like
    :func:`load_test`)."""
    if max_calls < 1 or max_seconds <= 0 or not args:
        raise ValueError("max_calls must be >= 1, max_seconds > 0 and args non-empty")
    start = time.perf_counter()
    deadline = start + max_seconds
    n = 0
    while n < max_calls and time.perf_counter() < deadline:
        fn(*args[n % len(args)])
        n += 1
    return n / (time.perf_counter() - start)
