"""Serving helpers shared by the scoring service's tests, its container test and the load benchmark.

- :func:`ensure_model`: the saved spam filter, built (in ~15 s, without the transformer model) when the store has
  none yet — test fixtures and the benchmark call it, so they never depend on a hard-coded path or on ``make run``;
- :func:`http_call`: one HTTP request, answering status, headers and the decoded JSON body (errors included);
- :data:`SPAM_EXAMPLES` / :data:`HAM_EXAMPLES`: obvious messages every served model must get right;
- :func:`load_test`: a bounded, threaded load generator (loopback only) with requests/s, p50/p99 latency, errors;
- :func:`call_rate`: calls per second of a function in-process, the yardstick for the served rate.
"""

from __future__ import annotations

import fcntl
import http.client
import itertools
import json
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aml import config, modelstore

SPAM_EXAMPLES = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward! "
    "To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt the word: CLAIM to No: 81010",
)
HAM_EXAMPLES = (
    "Hi mum, I'll be home for dinner around seven, do you need anything from the shop?",
    "Ok lar... see you at the cinema tomorrow then",
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


# -- the model -----------------------------------------------------------------------------------------------------


def ensure_model(
    name: str | None = None,
    store: str | Path | None = None,
    data_dir: str | Path | None = None,
    seed: int = 42,
) -> tuple[Any, dict]:
    """Load the spam filter from the model store, building it first if the store has none.

    The build (``aml.spam_filter.build_spam_filter`` without the slow transformer model) prepares the splits in
    ``data_dir`` (default: a temporary folder) from the dataset ``aml.datasets.fetch`` finds (``AML_DATA_DIR``). A
    lock file in the store keeps parallel test processes from building the same model twice.
    """
    from aml import spam_filter  # training code: imported only when needed

    name = name or spam_filter.MODEL_NAME
    store = Path(store or config.model_store_dir())
    try:
        return modelstore.load_model(name, store=store)
    except modelstore.ModelNotFoundError:
        pass
    store.mkdir(parents=True, exist_ok=True)
    with open(store / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return modelstore.load_model(name, store=store)  # built by another process meanwhile
        except modelstore.ModelNotFoundError:
            pass
        if name != spam_filter.MODEL_NAME:
            raise modelstore.ModelNotFoundError(
                f"no model {name!r} in {store}, and only {spam_filter.MODEL_NAME!r} can be built here"
            )
        with tempfile.TemporaryDirectory(prefix="aml-splits-") as tmp:
            spam_filter.build_spam_filter(data_dir or tmp, seed=seed, store=store, include_transformer=False)
    return modelstore.load_model(name, store=store)


# -- HTTP ----------------------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
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
        return asdict(self)


def _check_loopback(host: str) -> None:
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"load tests only target this machine's loopback addresses, not {host!r}")


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
