"""The spam filter as a web service: a Flask app factory, its settings, and the two servers that run it.

Why in the library: ``assignment3/app.py`` (``python app.py``, ``gunicorn app:app``, ``flask --app app run``), the
container of Assignment 4, the tests and the load benchmark all serve the same app; one implementation here keeps
them from drifting. Like :mod:`aml.spam.scoring` it imports neither pandas nor the training code: the serving image
carries NumPy, SciPy, scikit-learn, joblib, Flask and gunicorn only.

Endpoints: ``GET /`` (a short usage description), ``POST /score`` (``text`` and an optional ``threshold``, as JSON or
form-encoded; answers ``{"prediction": bool, "propensity": float}``) and ``GET /health``. Every answer the app
produces is JSON, errors included (``{"error", "message", "status"}``): 400 malformed or incomplete requests (deeply
nested JSON and 400-digit thresholds included), 404, 405, 408 a body that stalls, 413 a body over the limit
(chunked or not), 414/431 a URL or header block over the app's limits (set below the servers' own, so the app
answers them), 500 a failure inside the model. Requests the servers reject before the app runs get the servers'
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
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import (
    BadRequest,
    ClientDisconnected,
    HTTPException,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    RequestTimeout,
    RequestURITooLarge,
)

from aml.core import modelstore
from aml.core.hashing import sha256
from aml.spam import MODEL_NAME
from aml.spam.scoring import check_threshold, score_text

DEFAULT_MAX_BYTES = 64 * 1024  # an SMS is at most a few hundred characters; 64 KiB leaves room and bounds the work
#: the app's own limits, below gunicorn's (4094-byte request line, 100 header fields) and Werkzeug's (65536, 100),
#: so that the app, not the server, answers a too-long URL or too many headers: with JSON
MAX_URL_BYTES = 2048
MAX_HEADER_FIELDS = 50
#: seconds a client may take between two parts of its request body before it gets 408 (a slow client cannot hold a
#: server thread for longer)
READ_TIMEOUT_S = 10.0
SERVERS = ("flask", "gunicorn")
EXIT_BAD_SETTINGS = 2
_ABSENT = object()
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
HEALTH_PROBE = "health check"

log = logging.getLogger("aml.spam.service")


class ConfigError(ValueError):
    """A setting or the model artefact keeps the service from starting; the message is one line."""


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


def _integer(name: str, value: str | int, low: int, high: int | None = None) -> int:
    """``value`` (from an option or the environment variable ``name``) as an int in [low, high], else ConfigError."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")
    return number


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The service's settings from command-line options and the environment; :class:`ConfigError` for a bad value."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Serve the SMS spam filter: GET /, POST /score, GET /health.")
    parser.add_argument("--host", help="interface to listen on (HOST, default 127.0.0.1)")
    parser.add_argument("--port", help="TCP port (PORT, default 5000)")
    parser.add_argument("--model-store", help="model store folder (AML_MODEL_STORE)")
    parser.add_argument("--model-name", help=f"model name (AML_MODEL_NAME, default {MODEL_NAME})")
    parser.add_argument("--max-bytes", help=f"request body limit (AML_MAX_BODY_BYTES, default {DEFAULT_MAX_BYTES})")
    parser.add_argument("--server", help="flask (development, default) or gunicorn (production) (AML_SERVER)")
    parser.add_argument("--workers", help="gunicorn worker processes (AML_WORKERS, default: CPU cores)")
    parser.add_argument("--threads", help="gunicorn threads per worker (AML_THREADS, default 8)")
    args = parser.parse_args(argv)

    def pick(flag: str, variable: str, default) -> tuple[str, Any]:
        """(where the value came from, the value): the option, else the environment variable, else the default."""
        option = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if option is not None:
            return flag, option
        return variable, env.get(variable) or default

    host = pick("--host", "HOST", "127.0.0.1")[1]
    port = _integer(*pick("--port", "PORT", 5000), 1, 65535)
    max_bytes = _integer(*pick("--max-bytes", "AML_MAX_BODY_BYTES", DEFAULT_MAX_BYTES), 1)
    workers = _integer(*pick("--workers", "AML_WORKERS", os.cpu_count() or 1), 1, 64)
    threads = _integer(*pick("--threads", "AML_THREADS", 8), 1, 256)
    source, server = pick("--server", "AML_SERVER", "flask")
    if server not in SERVERS:
        raise ConfigError(f"{source} must be one of {', '.join(SERVERS)}, got {server!r}")
    store = pick("--model-store", "AML_MODEL_STORE", None)[1]
    name = pick("--model-name", "AML_MODEL_NAME", MODEL_NAME)[1]
    return Settings(str(host), port, store, str(name), max_bytes, str(server), workers, threads)


# -- the model -----------------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_served_model(model_store: str | Path | None = None, model_name: str | None = None) -> tuple[Any, dict]:
    """``(model, meta)`` of the artefact to serve, checksum verified; :class:`ConfigError` (one line, naming the file)
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
    """The threshold saved with the model; :class:`ConfigError` when it is missing or invalid (never a default)."""
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


def _error(status: int, name: str, message: str, close: bool = False):
    response = jsonify({"error": name, "message": message, "status": status})
    response.status_code = status
    if close:  # the rest of the request may still be on the connection: do not read it as the next request
        response.headers["Connection"] = "close"
    return response


def read_body() -> bytes:
    """The whole request body; 400 when it is shorter than its Content-Length (a truncated request is never
    scored), 408 when the client stalls, 413 over the limit (Werkzeug raises it while reading a chunked body)."""
    try:
        data = request.get_data(cache=True)
    except ClientDisconnected:
        raise BadRequest(
            f"the body ended before the {request.content_length} bytes its Content-Length announced: not scored"
        ) from None
    except OSError:  # socket timeout set by the server (READ_TIMEOUT_S)
        raise RequestTimeout(f"the request body did not arrive within {READ_TIMEOUT_S:g} s") from None
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # a chunked body: Werkzeug stops reading at the limit and returns what it has; more would have followed
        raise RequestEntityTooLarge()
    if request.content_length is not None and len(data) != request.content_length:
        raise BadRequest(f"the body has {len(data)} bytes but Content-Length says {request.content_length}")
    return data


MISSING_TEXT = '"text" is missing: send {"text": "the message to score"} or text=... as a form'


def _parse_request() -> tuple[Any, Any]:
    """``(text, threshold)`` as sent (``threshold`` is ``_ABSENT`` when not sent), from a form or a JSON object."""
    data = read_body()
    if request.mimetype in FORM_TYPES:
        form = request.form
        threshold = form.get("threshold", _ABSENT)
        if threshold is not _ABSENT:
            try:
                threshold = float(threshold)
            except ValueError:
                raise BadRequest(f'"threshold" must be a number in [0, 1], got {threshold[:40]!r}') from None
        if "text" not in form:
            raise BadRequest(MISSING_TEXT)
        return form["text"], threshold
    try:
        payload = json.loads(data)
    except RecursionError:
        raise BadRequest('the JSON body is nested too deeply; send {"text": "..."}') from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        payload = None
    if not isinstance(payload, dict):
        raise BadRequest('the body must be a JSON object such as {"text": "..."} or a form with a text field')
    if "text" not in payload:
        raise BadRequest(MISSING_TEXT)
    return payload["text"], payload.get("threshold", _ABSENT)


def harden(app: Flask, max_bytes: int) -> Flask:
    """Give ``app`` the service's HTTP hardening: a body limit of ``max_bytes`` (413), the URL and header-count
    limits (414/431, below the servers' own), a malformed ``Content-Length`` refused (400), and every error answered
    as JSON ``{"error", "message", "status"}`` (unexpected ones logged, 500). Shared by this service and the
    project's (:mod:`aml.project.api`)."""
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    app.json.sort_keys = False

    @app.before_request
    def check_limits():
        url_bytes = len(request.environ.get("PATH_INFO", "")) + len(request.environ.get("QUERY_STRING", ""))
        if url_bytes > MAX_URL_BYTES:
            raise RequestURITooLarge(f"the URL has {url_bytes} bytes; the limit is {MAX_URL_BYTES}")
        if len(request.headers) > MAX_HEADER_FIELDS:
            raise RequestHeaderFieldsTooLarge(
                f"the request has {len(request.headers)} header fields; the limit is {MAX_HEADER_FIELDS}"
            )
        length = request.headers.get("Content-Length")
        if length is not None and not (length.isascii() and length.strip().isdigit()):
            raise BadRequest(f"malformed Content-Length header {length[:40]!r}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        message = exc.description or exc.name
        if code == 413:
            message = f"the request body is larger than the limit of {max_bytes} bytes"
        response = _error(code, exc.name, message, close=code in (400, 408, 413, 414, 431))
        if code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error while serving %s %s", request.method, request.path)
        return _error(500, "Internal Server Error", "the server failed to handle this request; see its log")

    return app


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
    ``threshold``) serves an in-memory model instead, for tests. Raises :class:`ConfigError` for a bad setting or
    artefact.
    """
    name = model_name or os.environ.get("AML_MODEL_NAME") or MODEL_NAME
    if model is None:
        model, meta = load_served_model(model_store, name)
    meta = dict(meta or {})
    default_threshold = served_threshold(meta)
    if max_bytes is None:
        max_bytes = _integer("AML_MAX_BODY_BYTES", os.environ.get("AML_MAX_BODY_BYTES") or DEFAULT_MAX_BYTES, 1)
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

    @app.get("/")
    def usage():
        base = request.host_url.rstrip("/")
        return jsonify(
            {
                "service": "SMS spam filter",
                "model": about["model"],
                "endpoints": {
                    "POST /score": 'score one SMS: "text" (required) and "threshold" (optional, in [0, 1]; default '
                    "the model's), as JSON or form-encoded; answers prediction (true = spam) and propensity",
                    "GET /health": "the served model's name, version and threshold; 503 when it cannot score",
                    "GET /": "this description",
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

    @app.post("/score")
    def post_score():
        text, threshold = _parse_request()
        if not isinstance(text, str):
            raise BadRequest(f'"text" must be a string, got {type(text).__name__}')
        if not text.strip():
            raise BadRequest('"text" must not be empty')
        try:
            threshold = default_threshold if threshold is _ABSENT else check_threshold(threshold)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'"threshold": {exc}') from None
        prediction, propensity = score_text(text, model, threshold)
        return jsonify({"prediction": prediction, "propensity": propensity})

    return app


# -- the servers ---------------------------------------------------------------------------------------------------


def gunicorn_options(settings: Settings) -> dict:
    """gunicorn's settings for the service. ``gthread`` workers (8 threads each by default): a connection that sends
    nothing is moved to a poller after gunicorn's 5-s wait for its first bytes, and a body that stalls times out after :data:`READ_TIMEOUT_S` (see
    :func:`with_read_timeout`), so slow or idle clients cannot take every thread. ``preload_app``: the model is
    loaded once in the master; a replacement worker forks from it and never re-reads the artefact."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": 30,  # a worker that stops answering its master (e.g. stuck in native code) is replaced
        "graceful_timeout": 10,
        "keepalive": 2,
        "preload_app": True,
        "control_socket_disable": True,  # two servers on one machine would share ~/.gunicorn/gunicorn.ctl
        "loglevel": "info",
    }


def with_read_timeout(app, seconds: float = READ_TIMEOUT_S):
    """WSGI middleware for gunicorn: a timeout on the client socket (``gunicorn.socket``), so reading a stalled
    body raises after ``seconds`` (the app answers 408) instead of holding the thread forever."""

    def wrapped(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(seconds)
        return app(environ, start_response)

    return wrapped


def run_gunicorn(app: Flask, settings: Settings, **options) -> None:
    """Serve ``app`` (already built: the model is loaded) with gunicorn, through its Python application API;
    ``options`` add to or override :func:`gunicorn_options` (e.g. a ``post_worker_init`` hook)."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self):
            for key, value in {**gunicorn_options(settings), **options}.items():
                self.cfg.set(key, value)

        def load(self):
            return with_read_timeout(app)

    Application().run()


def run_development(app: Flask, settings: Settings) -> None:
    """Serve ``app`` with Werkzeug's development server (one thread per connection, idle ones closed after
    :data:`READ_TIMEOUT_S`)."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        timeout = READ_TIMEOUT_S  # socketserver sets it on each connection

    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False, request_handler=Handler)


def main(argv: list[str] | None = None) -> int:
    """``python app.py``: read the settings, load the model, serve. A bad setting or artefact: one line on stderr
    and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = parse_settings(argv)
        app = create_app(settings.model_store, settings.model_name, settings.max_bytes)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    log.info("model loaded; serving with %s on http://%s:%d", settings.server, settings.host, settings.port)
    if settings.server == "gunicorn":
        run_gunicorn(app, settings)
    else:
        run_development(app, settings)
    return 0
