"""The spam filter as an ML system over HTTP: ``/prepare``, ``/train``, ``/score``, ``/evaluate`` (the project's
service; ``project/src/app.py`` builds it from its configuration files).

Why in the library: the project's ``src/app.py``, its tests, the walkthrough notebook and the benchmarks serve the
same app. It composes what exists: the stage modules (:mod:`aml.project.prepare`, ...), the data store, background
jobs (:mod:`aml.mlops.jobs`) and the serving model's holder (:mod:`aml.project.serving`).

The endpoints are the rows of :data:`aml.project.endpoints.ENDPOINTS`, each served by a module-level handler of
:mod:`aml.project.handlers`: the one table this app's routes, auth marks and ``GET /api``, the client's methods and
the README's table come from. The HTTP hardening, JSON errors, server settings and servers are :mod:`aml.core.web`'s,
shared with the Assignment 3 service.

🔒: ``Authorization: Bearer <token>`` (Flask-HTTPAuth). The token comes from ``AML_API_TOKEN``, else from the file
``AML_API_TOKEN_FILE``, else from ``<store>/.secrets/api_token``, generated on first start with mode 0600 and its
location logged (as Jupyter does); a token file readable by others is refused. A missing token answers 401, a
wrong one 403.

Only predictions leave the API: no endpoint returns a model or a data file. Store paths in requests are relative
to the store root and must lie in one of the data folders (:data:`aml.project.run.KINDS`): absolute paths, ``..``,
hidden folders (the token, the job records) are refused with 400.

Each gunicorn worker loads the model from the registry lazily on its first request (nothing of MLflow runs in the
master before the fork), then a background thread polls the registry every ``refresh_s`` seconds and reloads when
the champion changes, so every replica picks up a promotion without a restart.
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from flask import Flask, Response, g, request

from aml.core import web
from aml.mlops import experiments
from aml.mlops.datastore import DataStore, StoreError
from aml.mlops.jobs import Jobs
from aml.project import endpoints, handlers
from aml.project import train as train_stage
from aml.project.handlers import Service, ServiceUnavailable, Unprocessable, json_body, store_path
from aml.project.serving import NO_MODEL, REFRESH_S, ModelHolder, Router
from aml.project.settings import CONFIGS, StageError, make_config
from aml.spam import MODEL_NAME

log = logging.getLogger("aml.project.api")

TOKEN_ENV, TOKEN_FILE_ENV = "AML_API_TOKEN", "AML_API_TOKEN_FILE"
SECRETS_DIR, TOKEN_NAME = ".secrets", "api_token"
DEFAULT_PORT = 8000
__all__ = [
    "NO_MODEL",
    "REFRESH_S",
    "ConfigError",
    "ModelHolder",
    "ServiceUnavailable",
    "Unprocessable",
    "create_app",
    "json_body",
    "main",
    "parse_settings",
    "resolve_token",
    "serve",
    "start_worker",
    "store_path",
]


class ConfigError(web.ConfigError):
    """The service cannot start as configured (one line)."""


# -- the token -------------------------------------------------------------------------------------------------------


def _check_private(path: Path) -> None:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {oct(info.st_mode & 0o777)}): chmod 600 it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user (uid {info.st_uid})")


def resolve_token(store: DataStore, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(token, where it came from)``: ``AML_API_TOKEN``, else the file ``AML_API_TOKEN_FILE`` (owner-only), else
    ``<store>/.secrets/api_token``, generated with mode 0600 on first start (local stores only)."""
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    if env.get(TOKEN_FILE_ENV):
        path = Path(env[TOKEN_FILE_ENV])
        if not path.is_file():
            raise ConfigError(f"{TOKEN_FILE_ENV}={path}: no such file")
    else:
        if store.root is None:
            raise ConfigError(f"set {TOKEN_ENV} or {TOKEN_FILE_ENV}: the data store {store.url} is not a local folder")
        path = store.root / SECRETS_DIR / TOKEN_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            token = secrets.token_urlsafe(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another worker created it first
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(token + "\n")
                log.warning("generated an API token in %s (mode 0600): send 'Authorization: Bearer <token>'", path)
    _check_private(path)
    token = path.read_text().strip()
    if not token:
        raise ConfigError(f"{path} is empty: put the API token in it")
    return token, str(path)


# -- the app ---------------------------------------------------------------------------------------------------------


def _metrics(holder: ModelHolder):
    """The Prometheus registry of one app and its counters (``requests``, ``shadow``, ``arms``)."""
    import prometheus_client as prom

    metrics = prom.CollectorRegistry()
    counters = {
        "requests": prom.Counter(
            "aml_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=metrics
        ),
        "shadow": prom.Counter(
            "aml_shadow_scores", "online messages the shadow challenger scored, by agreement", ["agree"],
            registry=metrics,
        ),
        "arms": prom.Counter("aml_ab_requests", "online A/B requests by arm", ["arm"], registry=metrics),
    }  # fmt: skip
    gauges = {
        ("aml_model_fallback", "1 when an older version serves because newer ones failed"): lambda: float(
            bool(holder.model and holder.model.served and holder.model.served.fallback)
        ),
        ("aml_model_ready", "1 when a model serves"): lambda: float(holder.model is not None),
        ("aml_model_version", "the serving registry version (0: none)"): lambda: (
            float(holder.model.version) if holder.model and holder.model.version.isdigit() else 0.0
        ),
        ("aml_model_load_failures", "versions that failed to load or smoke-test"): lambda: float(holder.load_failures),
    }
    for (name, help_text), value in gauges.items():
        prom.Gauge(name, help_text, registry=metrics).set_function(value)
    metrics.register(_CascadeCollector(holder))
    return metrics, counters


class _CascadeCollector:
    """``aml_cascade_messages_total{stage="all"|"second"}``: the messages the serving cascade scored in this worker
    and those its band sent to the second stage (their ratio: the share the transformer sees). Read from the
    cascade's own counts (:attr:`aml.spam.cascade.Cascade.counts`) at each scrape, so they restart at 0 when another
    version loads (Prometheus' ``rate()`` treats that as a counter reset); no samples when a plain model serves."""

    NAME, HELP = "aml_cascade_messages", "messages the serving cascade scored (stage=all) and routed (stage=second)"

    def __init__(self, holder: ModelHolder):
        self.holder = holder

    def describe(self):
        from prometheus_client.core import CounterMetricFamily

        return [CounterMetricFamily(self.NAME, self.HELP, labels=["stage"])]

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.NAME, self.HELP, labels=["stage"])
        scorer = getattr(self.holder.model, "scorer", None)
        if hasattr(scorer, "band_"):
            counts = scorer.counts
            family.add_metric(["all"], counts["scored"])
            family.add_metric(["second"], counts["routed"])
        yield family


def _auth(token: str):
    """Flask-HTTPAuth's bearer-token check: 401 without a token, 403 with a wrong one (JSON either way)."""
    from flask_httpauth import HTTPTokenAuth

    auth = HTTPTokenAuth(scheme="Bearer")

    @auth.verify_token
    def verify_token(sent: str) -> str | None:
        g.token_sent = bool(sent)
        return "client" if sent and hmac.compare_digest(sent.encode(), token.encode()) else None

    @auth.error_handler
    def auth_error(status: int):
        if status == 401 and g.get("token_sent"):
            return web.error_response(403, "Forbidden", "the bearer token is not valid for this service")
        return web.error_response(
            status, "Unauthorized", "this endpoint needs 'Authorization: Bearer <token>' (see the service's log)"
        )

    return auth


def register(app: Flask, table: Iterable[endpoints.Endpoint], auth) -> None:
    """Route every row of ``table`` to its handler (a name in :mod:`aml.project.handlers` or a function), behind
    the token where the row says so."""
    for row in table:
        view = getattr(handlers, row.handler) if isinstance(row.handler, str) else row.handler
        if row.auth == endpoints.TOKEN:
            view = auth.login_required(view)
        app.add_url_rule(row.rule, endpoint=row.name, view_func=view, methods=[row.method])


def create_app(
    store: DataStore | str | None = None,
    defaults: Mapping[str, Mapping] | None = None,
    model_name: str = MODEL_NAME,
    token: str | None = None,
    lock_dir: str | Path | None = None,
    max_bytes: int = web.DEFAULT_MAX_BYTES,
    refresh_s: float = REFRESH_S,
    shadow_flush_every: int = 500,
    table: Iterable[endpoints.Endpoint] | None = None,
) -> Flask:
    """The project's Flask app over ``store`` (a :class:`~aml.mlops.datastore.DataStore` or URL; default
    ``AML_DATA_STORE``) and the MLflow registry MLflow is configured for. ``defaults``: each stage's configuration
    file (``{"prepare": {...}, "train": {...}, ...}``), which request bodies override field by field. ``token``:
    default :func:`resolve_token`. ``shadow_flush_every``: online shadow scores per written batch
    (:class:`aml.mlops.experiments.ShadowLog`). ``table``: the endpoints (default
    :data:`aml.project.endpoints.ENDPOINTS`; a test app adds its own rows).
    """
    if not isinstance(store, DataStore):
        store = DataStore(store) if store else DataStore.from_env(None)
    defaults = {stage: dict((defaults or {}).get(stage) or {}) for stage in CONFIGS}
    for stage, values in defaults.items():  # a bad configuration file stops the start, not the first request
        make_config(stage, values)
    if token is None:
        token, where = resolve_token(store)
        log.info("API token from %s", where)
    jobs = Jobs(store, lock_dir)  # lock_dir None: aml.mlops.jobs.default_lock_dir (shared by replicas on one host)
    jobs.recover()
    holder = ModelHolder(model_name, refresh_s)
    metrics, counters = _metrics(holder)
    shadow_log = experiments.ShadowLog(store, "shadow", flush_every=shadow_flush_every)
    atexit.register(shadow_log.flush)  # a worker's last batch of shadow scores, on a graceful stop
    table = tuple(endpoints.ENDPOINTS if table is None else table)
    auth = _auth(token)
    context = Service(
        store=store,
        jobs=jobs,
        holder=holder,
        defaults=defaults,
        router=Router.from_config(make_config("score", defaults["score"])),
        shadow=shadow_log,
        auth=auth,
        endpoints=table,
        counters=counters,
        metrics=metrics,
        model_name=model_name,
    )
    app = Flask(__name__)
    web.harden(app, max_bytes)
    app.extensions["aml"] = {"store": store, "jobs": jobs, "holder": holder, "shadow": shadow_log, "service": context}

    @app.after_request
    def count(response: Response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        counters["requests"].labels(endpoint, str(response.status_code)).inc()
        return response

    register(app, table, auth)
    return app


# -- the servers -----------------------------------------------------------------------------------------------------


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> web.ServerSettings:
    """``python src/app.py`` options: ``--host``/``HOST``, ``--port``/``PORT`` (default 8000), ``--server``/
    ``AML_SERVER`` (flask or gunicorn), ``--workers``/``AML_WORKERS`` (2), ``--threads``/``AML_THREADS`` (8),
    ``--no-proxy``/``AML_NO_PROXY`` (gunicorn without nginx in front, see :func:`aml.core.web.run_gunicorn`)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Serve the spam filter's ML system: /prepare /train /score /evaluate.")
    web.add_server_options(parser, port=DEFAULT_PORT, proxy=True)
    try:
        return web.server_settings(parser.parse_args(argv), env, port=DEFAULT_PORT, workers=2)
    except web.ConfigError as exc:
        raise ConfigError(str(exc)) from None


def start_worker(app: Flask) -> None:
    """What a serving process does before its first request: end the MLflow runs of trainings whose job died and
    tag the versions they registered (:func:`aml.project.train.recover_crashed`; a failure is logged, the process
    serves anyway), then load the model (so a crashed version is never among the candidates)."""
    parts = app.extensions["aml"]
    try:
        recovered = train_stage.recover_crashed(parts["jobs"], parts["service"].model_name)
        if recovered["runs"] or recovered["versions"]:
            log.warning("crashed trainings cleaned up: %s", recovered)
    except Exception:
        log.exception("could not clean up after crashed trainings")
    parts["holder"].get()


def serve(app: Flask, settings: web.ServerSettings) -> None:
    """Serve with gunicorn (production: behind nginx unless ``--no-proxy``, see :func:`aml.core.web.run_gunicorn`)
    or the development server."""
    log.info("serving on http://%s:%d with %s", settings.host, settings.port, settings.server)
    if settings.server == "gunicorn":
        # each worker cleans up and loads the model before it takes its first request (the master never touches
        # MLflow); a worker busy loading or training in a thread may miss heartbeats for a while: 120 s before the
        # master replaces it
        web.run_gunicorn(app, settings, timeout=120, post_worker_init=lambda worker: start_worker(app))
    else:
        start_worker(app)
        web.run_development(app, settings)


def main(build_app, argv: list[str] | None = None) -> int:
    """Entry point for ``python src/app.py``: ``build_app()`` makes the app (the project's constructors); a bad
    setting is one line on stderr and exit code 2."""

    def start():
        settings = parse_settings(argv)
        app = build_app()
        return lambda: serve(app, settings)

    return web.run_main(start, (StageError, StoreError))
