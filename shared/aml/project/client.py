"""A Python client of the project's service (:mod:`aml.project.api`): one method per endpoint, errors raised with the
service's JSON message.

Why: the walkthrough notebook and the benchmarks call the service the way any client program would — over HTTP,
with the bearer token — and a notebook cell should read ``client.train()``, not a polling loop. Built on
``requests`` (a session: one connection kept alive).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


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
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code not in expect:
            raise ServiceError(response.status_code, body)
        return body

    def health(self) -> dict:
        """``GET /health``: the service's status and what model serves."""
        return self.call("GET", "/health")

    def models(self) -> dict:
        """``GET /models``: the registered versions, the champion, and which version serves and why."""
        return self.call("GET", "/models")

    def reload(self) -> dict:
        """``POST /models/reload``: make the service load the champion now instead of at its next poll."""
        return self.call("POST", "/models/reload", {})

    def prepare(self, **overrides) -> dict:
        """``POST /prepare`` with configuration ``overrides``: validate, deduplicate and split the raw data."""
        return self.call("POST", "/prepare", overrides)

    def job(self, job_id: str) -> dict:
        """``GET /jobs/<job_id>``: a background job's status, progress, result or error."""
        return self.call("GET", f"/jobs/{job_id}")

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

    def monitoring(self) -> dict:
        """``GET /monitoring``: the latest batch drift report and evaluation monitoring, with the ``drift`` flag."""
        return self.call("GET", "/monitoring")

    def monitoring_page(self, part: str = "batch") -> str:
        """``GET /monitoring/<part>.html`` (``batch`` or ``evaluation``): the report's HTML with its plots."""
        response = self.session.get(f"{self.url}/monitoring/{part}.html", timeout=self.timeout)
        if response.status_code != 200:
            raise ServiceError(response.status_code, response.json())
        return response.text

    def metrics(self) -> str:
        """The Prometheus metrics text."""
        response = self.session.get(self.url + "/metrics", timeout=self.timeout)
        response.raise_for_status()
        return response.text
