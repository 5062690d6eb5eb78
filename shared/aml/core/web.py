"""The web layer both services stand on (the Assignment 3 service, :mod:`aml.spam.service`, and the project's,
:mod:`aml.project.api`): HTTP hardening with every error as JSON, request-body reading, the server settings, the two
servers (gunicorn and Werkzeug's development server) and the front end's ``main``.

Why here and public: the two Flask apps must answer malformed requests the same way (JSON 4xx, never a 500) and run
under the same servers; one implementation keeps them from drifting, and neither service reaches into the other's
private names. Importing this module imports Flask (the serving image carries it), never pandas or MLflow; gunicorn
is imported only when it serves. Flask's own error pages are HTML; every service built on :func:`harden` answers
with JSON instead.

Errors are ``{"error", "message", "status"}``: 400 malformed or incomplete requests (deeply nested JSON included),
404, 405 (with ``Allow``), 408 a body that stalls, 413 a body over the limit (chunked or not), 414/431 a URL or
header block over the app's limits (set below the servers' own, so the app answers them), 500 a failure inside the
app (logged, no detail leaked).

A service that takes ``--no-proxy`` (:func:`add_server_options` with ``proxy=True``: the project's) runs gunicorn
behind nginx (:mod:`aml.core.nginx`), which holds slow clients instead of gunicorn's threads and answers malformed
HTTP itself, in the same JSON format. The Assignment 3 service runs plain gunicorn, as its course material teaches.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

DEFAULT_MAX_BYTES = 64 * 1024  # an SMS is at most a few hundred characters; 64 KiB leaves room and bounds the work
#: the app's own limits, below gunicorn's (4094-byte request line, 100 header fields) and Werkzeug's (65536, 100),
#: so that the app, not the server, answers a too-long URL or too many headers: with JSON
MAX_URL_BYTES = 2048
MAX_HEADER_FIELDS = 50
#: seconds a client may take between two parts of its request body before it gets 408 (a slow client cannot hold a
#: server thread for longer)
READ_TIMEOUT_S = 10.0
SERVERS = ("flask", "gunicorn")
#: how a yes/no environment variable (``AML_NO_PROXY``) may be spelled
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
EXIT_BAD_SETTINGS = 2
#: gunicorn's exit code when its front proxy (nginx) died and it stopped
EXIT_PROXY_DIED = 3
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: the value of a request field that was not sent (``None`` may be sent: JSON ``null``)
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

log = logging.getLogger("aml.core.web")


class ConfigError(ValueError):
    """A setting keeps a service from starting; the message is one line."""


# -- settings --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """Where to listen and which server runs the app: ``flask`` (development) or ``gunicorn`` with its workers and
    threads per worker."""

    host: str = "127.0.0.1"
    port: int = 5000
    server: str = "flask"
    workers: int = 2
    threads: int = 8
    #: gunicorn behind nginx (``True``, :func:`run_gunicorn`), refused with ``--no-proxy`` (``False``: a warning),
    #: or a service without the option (``None``: plain gunicorn, the Assignment 3 service)
    proxy: bool | None = None


def integer(name: str, value: str | int, low: int, high: int | None = None) -> int:
    """``value`` (from an option or the environment variable ``name``) as an int in [low, high], else
    :class:`ConfigError` naming it."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigError(f"{name} must be an integer {bound}, got {value!r}")
    return number


def add_server_options(parser: argparse.ArgumentParser, port: int, workers: str = "2", proxy: bool = False) -> None:
    """The server options every service takes: ``--host``, ``--port``, ``--server``, ``--workers``, ``--threads``
    (each also an environment variable, read by :func:`server_settings`); with ``proxy``, ``--no-proxy``
    (``AML_NO_PROXY=1``): gunicorn is served behind nginx unless it is given."""
    parser.add_argument("--host", help="interface to listen on (HOST, default 127.0.0.1)")
    parser.add_argument("--port", help=f"TCP port (PORT, default {port})")
    parser.add_argument("--server", help="flask (development, default) or gunicorn (production) (AML_SERVER)")
    parser.add_argument("--workers", help=f"gunicorn worker processes (AML_WORKERS, default {workers})")
    parser.add_argument("--threads", help="gunicorn threads per worker (AML_THREADS, default 8)")
    if proxy:
        parser.add_argument(
            "--no-proxy",
            action="store_true",
            default=None,
            help="gunicorn without nginx in front (AML_NO_PROXY=1): slow clients can then hold every thread; for a "
            "machine without nginx or a service behind another buffering proxy (the team stack's balancer)",
        )


def picker(args: argparse.Namespace, env: Mapping[str, str]) -> Callable[[str, str, Any], tuple[str, Any]]:
    """``pick(flag, variable, default)`` → ``(where the value came from, the value)``: the option, else the
    environment variable, else the default (so an error names what the user set)."""

    def pick(flag: str, variable: str, default) -> tuple[str, Any]:
        option = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if option is not None:
            return flag, option
        return variable, env.get(variable) or default

    return pick


def server_settings(args: argparse.Namespace, env: Mapping[str, str], port: int, workers: int) -> ServerSettings:
    """The :class:`ServerSettings` of parsed options (:func:`add_server_options`) and the environment."""
    pick = picker(args, env)
    source, server = pick("--server", "AML_SERVER", "flask")
    if server not in SERVERS:
        raise ConfigError(f"{source} must be one of {', '.join(SERVERS)}, got {server!r}")
    proxy = None
    if hasattr(args, "no_proxy"):  # the service takes --no-proxy (add_server_options(proxy=True))
        source, refused = pick("--no-proxy", "AML_NO_PROXY", False)
        if isinstance(refused, str):
            if refused.strip().lower() not in ("", *TRUE, *FALSE):
                raise ConfigError(f"{source} must be 1 or 0 (true or false), got {refused!r}")
            refused = refused.strip().lower() in TRUE
        proxy = not refused
        if server == "gunicorn" and proxy:
            from aml.core import nginx

            if nginx.binary() is None:
                raise ConfigError(
                    "--server gunicorn serves behind nginx (slow clients cannot hold gunicorn's threads), and nginx "
                    "was not found: install nginx (apt-get install nginx; AML_NGINX=<path> if it is elsewhere) or "
                    "pass --no-proxy (AML_NO_PROXY=1)"
                )
    return ServerSettings(
        host=str(pick("--host", "HOST", "127.0.0.1")[1]),
        port=integer(*pick("--port", "PORT", port), 1, 65535),
        server=str(server),
        workers=integer(*pick("--workers", "AML_WORKERS", workers), 1, 64),
        threads=integer(*pick("--threads", "AML_THREADS", 8), 1, 256),
        proxy=proxy,
    )


# -- requests and errors ---------------------------------------------------------------------------------------------


def error_response(status: int, name: str, message: str, close: bool = False):
    """The JSON error answer ``{"error", "message", "status"}``; ``close``: the rest of the request may still be on
    the connection, so it must not be read as the next request."""
    response = jsonify({"error": name, "message": message, "status": status})
    response.status_code = status
    if close:
        response.headers["Connection"] = "close"
    return response


def read_body() -> bytes:
    """The whole request body; 400 when it is shorter than its Content-Length (a truncated request is never
    acted on), 408 when the client stalls, 413 over the limit (Werkzeug raises it while reading a chunked body)."""
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


def json_object(hint: str = "") -> dict | None:
    """The request's JSON object (an empty body is ``{}``); ``None`` when the body is not a JSON object (the
    caller says what it expected); 400 for JSON nested too deeply. ``hint`` ends that message."""
    data = read_body()
    if not data.strip():
        return {}
    try:
        payload = json.loads(data)
    except RecursionError:
        raise BadRequest(f"the JSON body is nested too deeply{hint}") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        return None
    return payload if isinstance(payload, dict) else None


def is_form() -> bool:
    """Whether the request body is a form (``text=...``) rather than JSON."""
    return request.mimetype in FORM_TYPES


def form_number(form: Mapping[str, str], key: str):
    """A form field that must be a number in [0, 1] (a threshold) as a float, :data:`ABSENT` when not sent; 400
    otherwise."""
    value = form.get(key, ABSENT)
    if value is ABSENT:
        return ABSENT
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f'"{key}" must be a number in [0, 1], got {value[:40]!r}') from None


def wants_html(default: bool = False) -> bool:
    """Whether the client asked for a page: ``Accept`` prefers ``text/html`` to JSON (a browser's navigation or
    form post). Without an ``Accept`` header (or ``*/*``): ``default``."""
    accept = request.accept_mimetypes
    if not accept or accept.best == "*/*":
        return default
    return accept.best_match(["application/json", "text/html"]) == "text/html"


def harden(app: Flask, max_bytes: int) -> Flask:
    """Give ``app`` the services' HTTP hardening: a body limit of ``max_bytes`` (413), the URL and header-count
    limits (414/431, below the servers' own), a malformed ``Content-Length`` refused (400), and every error answered
    as JSON ``{"error", "message", "status"}`` (unexpected ones logged, 500)."""
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
        response = error_response(code, exc.name, message, close=code in (400, 408, 413, 414, 431))
        if code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error while serving %s %s", request.method, request.path)
        return error_response(500, "Internal Server Error", "the server failed to handle this request; see its log")

    return app


# -- the servers -----------------------------------------------------------------------------------------------------


def gunicorn_options(settings: ServerSettings) -> dict:
    """gunicorn's settings for a service. ``gthread`` workers (8 threads each by default): a connection that sends
    nothing is moved to a poller after gunicorn's 5-s wait for its first bytes, and a body that stalls times out
    after :data:`READ_TIMEOUT_S` (see :func:`with_read_timeout`), so slow or idle clients cannot take every thread.
    ``preload_app``: the app is built once in the master; a replacement worker forks from it."""
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


def run_gunicorn(app: Flask, settings: ServerSettings, **options) -> None:
    """Serve ``app`` (already built) with gunicorn, through its Python application API; ``options`` add to or
    override :func:`gunicorn_options` (e.g. a ``post_worker_init`` hook).

    With ``settings.proxy`` (:class:`ServerSettings`; settings without the field serve plain gunicorn), nginx
    (:class:`aml.core.nginx.FrontProxy`) listens on the settings' address and gunicorn on a Unix socket behind it:
    nginx reads every request whole (up to the app's body limit) before a gunicorn thread sees it, so slow clients
    cannot hold the threads, and answers malformed HTTP with JSON. nginx starts once gunicorn listens
    (``when_ready``, before any worker) and stops when gunicorn's master exits; gunicorn stops when nginx dies. A
    port nginx cannot take is a :class:`ConfigError` (one line and exit code 2 through :func:`run_main`)."""
    from gunicorn.app.base import BaseApplication

    front = None
    proxy = getattr(settings, "proxy", None)  # a service's own settings class (Assignment 3's) has no such field
    if proxy:
        import os
        import signal

        from aml.core.nginx import FrontProxy, NginxError

        limit = app.config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BYTES
        front = FrontProxy(
            settings.host, settings.port, max_body_bytes=int(limit), client_timeout_s=int(READ_TIMEOUT_S)
        )
        master, user_ready = os.getpid(), options.pop("when_ready", None)

        def when_ready(arbiter):  # gunicorn listens on the socket: put nginx in front (before any worker starts)
            try:
                front.start(on_exit=lambda: os.kill(master, signal.SIGTERM))
            except NginxError as exc:
                raise ConfigError(
                    f"the front proxy (nginx) did not start on {settings.host}:{settings.port}: {exc}"
                ) from None
            if user_ready is not None:
                user_ready(arbiter)

        options = {
            "bind": f"unix:{front.prepare()}",
            "when_ready": when_ready,
            "on_exit": lambda a: front.stop(),
            **options,
        }
    elif proxy is False:
        log.warning(
            "gunicorn serves %s:%d without a buffering proxy in front (--no-proxy): %d slow clients can hold every "
            "thread unless another proxy (the team stack's balancer) buffers requests",
            settings.host,
            settings.port,
            settings.workers * settings.threads,
        )

    class Application(BaseApplication):
        def load_config(self):
            for key, value in {**gunicorn_options(settings), **options}.items():
                self.cfg.set(key, value)

        def load(self):
            return with_read_timeout(app)

    try:
        Application().run()
    finally:
        if front is not None:
            front.stop()  # a no-op in a forked worker: only the master stops nginx
            if front.died.is_set() and os.getpid() == master:
                raise SystemExit(EXIT_PROXY_DIED)  # not 0: a supervisor restarts a service whose proxy died


def run_development(app: Flask, settings: ServerSettings) -> None:
    """Serve ``app`` with Werkzeug's development server (one thread per connection, idle ones closed after
    :data:`READ_TIMEOUT_S`)."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        timeout = READ_TIMEOUT_S  # socketserver sets it on each connection

    app.run(host=settings.host, port=settings.port, threaded=True, use_reloader=False, request_handler=Handler)


def run_main(start: Callable[[], Callable[[], None]], errors: tuple = ()) -> int:
    """A service's ``main``: set up logging (:func:`aml.core.logs.setup_logging`), then ``start()`` — which reads
    the settings and builds the app, returning the function that serves it. A bad setting (:class:`ConfigError` or
    one of ``errors``, or a :class:`ConfigError` while starting to serve) is one line on stderr and exit code 2, never
    a traceback."""
    from aml.core.logs import setup_logging

    setup_logging()
    try:
        serve = start()
    except (ConfigError, *errors) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        serve()
    except ConfigError as exc:  # e.g. the front proxy could not take the port
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return 0
