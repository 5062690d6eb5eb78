"""The spam filter as a web service: a Flask app factory, its settings, and the two servers that run it.

Why in the library: ``assignment3/app.py`` (``python app.py``, ``gunicorn app:app``, ``flask --app app run``), the
container of Assignment 4, the tests and the load benchmark all serve the same app; one implementation here keeps
them from drifting. Like :mod:`aml.spam.scoring` it imports neither pandas nor the training code: the serving image
carries NumPy, SciPy, scikit-learn, joblib, Flask and gunicorn only.

Endpoints: ``GET /`` (a short usage description as JSON; to a browser, ``Accept: text/html``, a page with a form,
rendered from ``aml/core/templates/score_page.html``, whose posts to ``/`` or ``/score`` answer the page with the
result), ``POST /score`` (``text`` and an optional ``threshold``, as JSON or form-encoded; answers ``{"prediction":
bool, "propensity": float}``) and ``GET /health``. Every answer the app produces for clients is JSON, errors included
(``{"error", "message", "status"}``, :mod:`aml.core.web`): 400 malformed or incomplete requests (deeply nested JSON
and 400-digit thresholds included), 404, 405, 408 a body that stalls, 413 a body over the limit (chunked or not),
414/431 a URL or header block over the app's limits (set below the servers' own, so the app answers them), 500 a
failure inside the model. Requests the servers reject before the app runs get the servers'
own pages; ``assignment3/README.md`` says which.

Settings (:func:`parse_settings`; options override the environment, bad values are a one-line error and exit code
2, never a traceback): ``--host``/``HOST``, ``--port``/``PORT``, ``--model-store``/``AML_MODEL_STORE``,
``--model-name``/``AML_MODEL_NAME`` (default :data:`aml.spam.MODEL_NAME`), ``--max-bytes``/``AML_MAX_BODY_BYTES``,
``--server``/``AML_SERVER`` (``flask``: the development server, the default; ``gunicorn``: the production server),
``--workers``/``AML_WORKERS``, ``--threads``/``AML_THREADS``.

The model is loaded once, before serving: a missing or broken artefact, or one whose ``meta.json`` has no valid
``threshold``, refuses to start with one line naming the file (a silent default threshold would be a wrong model).
Under gunicorn the app is built in the master process before the workers fork (preload), so a replacement worker
never re-reads the artefact: a model file deleted or replaced after start changes nothing that is served, and
``/health`` says so.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import BadRequest

from aml.core import modelstore, pages
from aml.core.hashing import sha256
from aml.core.web import (
    ABSENT,
    DEFAULT_MAX_BYTES,
    EXIT_BAD_SETTINGS,
    FORM_TYPES,
    MAX_HEADER_FIELDS,
    MAX_URL_BYTES,
    READ_TIMEOUT_S,
    SERVERS,
    ConfigError,
    add_server_options,
    form_number,
    gunicorn_options,
    harden,
    integer,
    is_form,
    json_object,
    picker,
    read_body,
    run_development,
    run_gunicorn,
    run_main,
    server_settings,
    wants_html,
    with_read_timeout,
)
from aml.spam import MODEL_NAME
from aml.spam.scoring import check_threshold, score_text

HEALTH_PROBE = "health check"
PAGE_INTRO = "Paste a message to see what the spam filter says."
#: the web layer's names this module served before :mod:`aml.core.web` existed (importers keep working)
__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXIT_BAD_SETTINGS",
    "FORM_TYPES",
    "MAX_HEADER_FIELDS",
    "MAX_URL_BYTES",
    "READ_TIMEOUT_S",
    "SERVERS",
    "ConfigError",
    "Settings",
    "create_app",
    "gunicorn_options",
    "harden",
    "load_served_model",
    "main",
    "parse_settings",
    "read_body",
    "run_development",
    "run_gunicorn",
    "served_threshold",
    "with_read_timeout",
]

log = logging.getLogger("aml.spam.service")


# -- settings ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The service's settings, from the command line and the environment: where to listen, the model to serve
    (store folder and name), the request-body limit and the server (``flask`` or ``gunicorn`` with workers and
    threads)."""

    host: str = "127.0.0.1"
    port: int = 5000
    model_store: str | None = None
    model_name: str = MODEL_NAME
    max_bytes: int = DEFAULT_MAX_BYTES
    server: str = "flask"
    workers: int = 2
    threads: int = 8


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The service's settings from command-line options and the environment; :class:`~aml.core.web.ConfigError` for a bad value."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Serve the SMS spam filter: GET /, POST /score, GET /health.")
    add_server_options(parser, port=5000, workers="CPU cores")
    parser.add_argument("--model-store", help="model store folder (AML_MODEL_STORE)")
    parser.add_argument("--model-name", help=f"model name (AML_MODEL_NAME, default {MODEL_NAME})")
    parser.add_argument("--max-bytes", help=f"request body limit (AML_MAX_BODY_BYTES, default {DEFAULT_MAX_BYTES})")
    args = parser.parse_args(argv)
    pick = picker(args, env)
    server = server_settings(args, env, port=5000, workers=os.cpu_count() or 1)
    max_bytes = integer(*pick("--max-bytes", "AML_MAX_BODY_BYTES", DEFAULT_MAX_BYTES), 1)
    store = pick("--model-store", "AML_MODEL_STORE", None)[1]
    name = pick("--model-name", "AML_MODEL_NAME", MODEL_NAME)[1]
    return Settings(
        server.host, server.port, store, str(name), max_bytes, server.server, server.workers, server.threads
    )


# -- the model -----------------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_served_model(model_store: str | Path | None = None, model_name: str | None = None) -> tuple[Any, dict]:
    """``(model, meta)`` of the artefact to serve, checksum verified; :class:`~aml.core.web.ConfigError` (one line, naming the file)
    when it is missing or broken or when its ``meta.json`` has no valid ``threshold``."""
    path = modelstore.store_path(model_name or MODEL_NAME, model_store)
    try:
        model, meta = modelstore.load(path)
    except (modelstore.ModelNotFoundError, modelstore.MetadataError, modelstore.ChecksumError) as exc:
        raise ConfigError(_one_line(exc)) from None
    except Exception as exc:  # an unpicklable artefact: a missing class, a version mismatch
        raise ConfigError(f"cannot load {path / modelstore.ARTEFACT}: {type(exc).__name__}: {_one_line(exc)}") from None
    served_threshold(meta, where=str(path / modelstore.META))
    meta["_path"] = str(path)
    return model, meta


def served_threshold(meta: Mapping, where: str = "the model's metadata") -> float:
    """The threshold saved with the model; :class:`~aml.core.web.ConfigError` when it is missing or invalid (never a default)."""
    if "threshold" not in meta:
        raise ConfigError(
            f"{where} has no 'threshold': refusing to serve without the threshold chosen on validation "
            "(save the model with its threshold, e.g. rerun assignment1/train.ipynb)"
        )
    try:
        return check_threshold(meta["threshold"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid 'threshold': {exc}") from None


def _artefact_state(folder: str | None, sha: str | None, seen: dict) -> str:
    """Whether the artefact on disk is still the one loaded: ``as loaded``, ``missing`` or ``changed``."""
    if not folder:
        return "in memory"
    artefact = Path(folder) / modelstore.ARTEFACT
    try:
        stat = artefact.stat()
    except OSError:
        return "missing"
    key = (stat.st_size, stat.st_mtime_ns)
    if seen.get("key") != key:  # hash only when the file looks different from the last check
        try:
            seen["same"] = sha256(artefact) == sha
        except OSError:
            return "missing"
        seen["key"] = key
    return "as loaded" if seen["same"] else "changed"


# -- the app -------------------------------------------------------------------------------------------------------


MISSING_TEXT = '"text" is missing: send {"text": "the message to score"} or text=... as a form'


def _parse_request() -> tuple[Any, Any]:
    """``(text, threshold)`` as sent (``threshold`` is ``ABSENT`` when not sent), from a form or a JSON object."""
    if is_form():
        read_body()
        threshold = form_number(request.form, "threshold")
        if "text" not in request.form:
            raise BadRequest(MISSING_TEXT)
        return request.form["text"], threshold
    payload = json_object('; send {"text": "..."}')
    if payload is None or not read_body().strip():
        raise BadRequest('the body must be a JSON object such as {"text": "..."} or a form with a text field')
    if "text" not in payload:
        raise BadRequest(MISSING_TEXT)
    return payload["text"], payload.get("threshold", ABSENT)


def create_app(
    model_store: str | Path | None = None,
    model_name: str | None = None,
    max_bytes: int | None = None,
    model: Any = None,
    meta: dict | None = None,
) -> Flask:
    """Build the Flask app, loading the model once.

    By default the model comes from the model store (``model_store``/``model_name``, else ``AML_MODEL_STORE`` /
    ``AML_MODEL_NAME``); ``max_bytes`` else ``AML_MAX_BODY_BYTES``. Passing ``model`` and ``meta`` (with a
    ``threshold``) serves an in-memory model instead, for tests. Raises :class:`~aml.core.web.ConfigError` for a bad setting or
    artefact.
    """
    name = model_name or os.environ.get("AML_MODEL_NAME") or MODEL_NAME
    if model is None:
        model, meta = load_served_model(model_store, name)
    meta = dict(meta or {})
    default_threshold = served_threshold(meta)
    if max_bytes is None:
        max_bytes = integer("AML_MAX_BODY_BYTES", os.environ.get("AML_MAX_BODY_BYTES") or DEFAULT_MAX_BYTES, 1)
    if max_bytes <= 0:
        raise ConfigError(f"max_bytes must be positive, got {max_bytes}")
    folder, sha = meta.pop("_path", None), meta.get("sha256")
    seen: dict = {}

    app = Flask(__name__)
    harden(app, max_bytes)
    about = {
        "model": meta.get("name", name),
        "version": str(sha or "unknown")[:12],
        "saved_at": meta.get("saved_at"),
        "model_type": meta.get("model"),
        "threshold": default_threshold,
    }

    def page(text: str = "", result: dict | None = None, error: str | None = None) -> str:
        links = [("health", "/health")]
        return pages.render(
            "score_page.html", title="SMS spam filter", intro=PAGE_INTRO, action="/", text=text, result=result,
            error=error, links=links,
        )  # fmt: skip

    @app.get("/")
    def usage():
        if wants_html():
            return page()
        base = request.host_url.rstrip("/")
        return jsonify(
            {
                "service": "SMS spam filter",
                "model": about["model"],
                "endpoints": {
                    "POST /score": 'score one SMS: "text" (required) and "threshold" (optional, in [0, 1]; default '
                    "the model's), as JSON or form-encoded; answers prediction (true = spam) and propensity",
                    "GET /health": "the served model's name, version and threshold; 503 when it cannot score",
                    "GET /": "this description; a browser (Accept: text/html) gets a page with a form, posted to / or "
                    "/score",
                },
                "example": {
                    "request": {"text": "WINNER! Claim your free prize now", "threshold": default_threshold},
                    "json": f"curl -s -X POST {base}/score -H 'Content-Type: application/json' "
                    '-d \'{"text": "WINNER! Claim your free prize now"}\'',
                    "form": f"curl -s {base}/score -d text='see you at lunch'",
                },
                "limits": {"body_bytes": max_bytes, "url_bytes": MAX_URL_BYTES, "header_fields": MAX_HEADER_FIELDS},
            }
        )

    @app.get("/health")
    def get_health():
        artefact = _artefact_state(folder, sha, seen)
        body = {"status": "ok", **about, "artefact": artefact}
        if artefact in ("missing", "changed"):
            body["warning"] = (
                f"the artefact on disk is {artefact} since start; still serving the loaded version {about['version']}"
                " (restart to load the new one)"
            )
        try:
            score_text(HEALTH_PROBE, model, default_threshold)
        except Exception as exc:
            log.exception("health probe failed")
            body.update(status="failing", error=f"the model cannot score: {type(exc).__name__}: {_one_line(exc)}")
            return jsonify(body), 503
        return jsonify(body)

    def scored(text: Any, threshold: Any) -> dict:
        """``{"prediction", "propensity", "threshold"}`` of a request's text at its threshold; 400 when invalid."""
        if not isinstance(text, str):
            raise BadRequest(f'"text" must be a string, got {type(text).__name__}')
        if not text.strip():
            raise BadRequest('"text" must not be empty')
        try:
            threshold = default_threshold if threshold is ABSENT else check_threshold(threshold)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'"threshold": {exc}') from None
        prediction, propensity = score_text(text, model, threshold)
        return {"prediction": prediction, "propensity": propensity, "threshold": threshold}

    def page_result():
        """A form posted from the page: the page again, with the answer or the error."""
        text = request.form.get("text", "")
        try:
            return page(text, result=scored(text, form_number(request.form, "threshold")))
        except BadRequest as exc:
            return page(text, error=exc.description)

    @app.post("/")
    def post_page():
        read_body()
        return page_result()

    @app.post("/score")
    def post_score():
        if is_form() and wants_html():  # a browser posting the page's form
            read_body()
            return page_result()
        result = scored(*_parse_request())
        return jsonify({"prediction": result["prediction"], "propensity": result["propensity"]})

    return app


# -- the front end ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: read the settings, load the model, serve. A bad setting or artefact: one line on stderr
    and exit code 2."""

    def start():
        settings = parse_settings(argv)
        app = create_app(settings.model_store, settings.model_name, settings.max_bytes)
        log.info("model loaded; serving with %s on http://%s:%d", settings.server, settings.host, settings.port)
        return lambda: (run_gunicorn if settings.server == "gunicorn" else run_development)(app, settings)

    return run_main(start)
