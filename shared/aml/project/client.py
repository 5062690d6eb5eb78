"""A Python client of the project's service (:mod:`aml.project.api`): one method per endpoint, errors raised with the
service's JSON message.

The methods come from the service's endpoint table (:data:`aml.project.endpoints.ENDPOINTS`, each row's ``client``
names): a row's method is written here when it does more than one call (``train`` waits for its job, ``score``
takes a text), else generated from the row (:func:`client_class`: path parameters as arguments, keyword arguments
as the JSON body of a ``POST``), so a new endpoint needs no code here.

Why: the walkthrough notebook and the benchmarks call the service the way any client program would — over HTTP,
with the bearer token — and a notebook cell should read ``client.train()``, not a polling loop. Built on
``requests`` (a session: one connection kept alive).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from aml.project.endpoints import ENDPOINTS, Endpoint


class ServiceError(RuntimeError):
    """The service answered with an error status; ``status`` and ``body`` hold its answer."""

    def __init__(self, status: int, body: Any):
        message = body.get("message") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.body = status, body


class SystemClient:
    """Calls the service at ``url`` (``http://127.0.0.1:8000``) with ``token`` for the endpoints that need it."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0):
        import requests

        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        # one connection per call: gunicorn closes an idle kept-alive connection after 2 s, and a call that reuses
        # it just then fails with RemoteDisconnected (seen once in the walkthrough, under load); a loopback
        # handshake costs far less than any call here
        self.session.headers["Connection"] = "close"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, json: dict | None = None, expect: tuple = (200,)) -> Any:
        """``method path`` with a JSON body; the decoded answer, or :class:`ServiceError`."""
        response = self.session.request(method, self.url + path, json=json, timeout=self.timeout)
        body: Any = response.text
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = response.json()
            except ValueError:
                pass
        if response.status_code not in expect:
            raise ServiceError(response.status_code, body)
        return body

    def wait(self, job_id: str, timeout: float = 900.0, poll: float = 1.0, progress: Callable | None = None) -> dict:
        """Poll a job until it succeeds (its record) or fails (:class:`ServiceError` with the record)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job_id)
            if progress:
                progress(record)
            if record["status"] == "succeeded":
                return record
            if record["status"] == "failed":
                raise ServiceError(500, {"message": f"job {job_id} failed: {record.get('error')}", "job": record})
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {record['status']} after {timeout} s")
            time.sleep(poll)

    def train(self, wait: bool = True, **overrides) -> dict:
        """Start a training job; with ``wait``, its finished record (``result`` holds the training report)."""
        started = self.call("POST", "/train", overrides, expect=(202,))
        return self.wait(started["job"]) if wait else started

    def score(self, text: str, threshold: float | None = None) -> dict:
        """``POST /score`` one message (at the model's threshold, or ``threshold``): prediction, propensity,
        model version."""
        body = {"text": text} if threshold is None else {"text": text, "threshold": threshold}
        return self.call("POST", "/score", body)

    def score_batch(self, path: str, **options) -> dict:
        """``POST /score`` the stored CSV at ``path``: where the predictions were written, counts, actions."""
        return self.call("POST", "/score", {"input": path, **options})

    def evaluate(self, path: str, **options) -> dict:
        """``POST /evaluate`` the scored, labelled file at ``path``: the metrics and where they were written."""
        return self.call("POST", "/evaluate", {"input": path, **options})

    def monitoring_page(self, part: str = "batch") -> str:
        """``GET /monitoring/<part>.html`` (``batch`` or ``evaluation``): the report's HTML with its plots."""
        return self.call("GET", f"/monitoring/{part}.html")


def endpoint_method(endpoint: Endpoint, name: str = "call_endpoint") -> Callable:
    """A client method for ``endpoint``: its path parameters are the method's arguments, in order; keyword
    arguments are the JSON body of a ``POST``. Returns the decoded answer (JSON, else the text)."""
    params = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", endpoint.rule)

    def method(self, *args, **body):
        if len(args) != len(params):
            raise TypeError(f"{endpoint.key} takes {len(params)} argument(s) {params}, got {len(args)}")
        path = endpoint.rule
        for value in args:
            path = re.sub(r"<[^<>]+>", quote(str(value), safe=""), path, count=1)
        return self.call(endpoint.method, path, body if endpoint.method != "GET" else None)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{endpoint.key}``: {endpoint.summary}."
    return method


def client_class(table: Iterable[Endpoint] | None = None, base: type | None = None, name: str = "Client") -> type:
    """A client class for ``table`` (default the service's): ``base``'s methods (default :class:`SystemClient`'s), plus a generated one
    (:func:`endpoint_method`) for each ``client`` name of a row that ``base`` does not define."""
    base, table = base or SystemClient, ENDPOINTS if table is None else table
    methods = {
        method: endpoint_method(row, method)
        for row in table
        for method in row.client
        if not callable(getattr(base, method, None))
    }
    return type(name, (base,), methods)


for _row in ENDPOINTS:  # the methods of SystemClient written nowhere above come from the table
    for _name in _row.client:
        if not hasattr(SystemClient, _name):
            setattr(SystemClient, _name, endpoint_method(_row, _name))
