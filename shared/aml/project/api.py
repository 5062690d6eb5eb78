"""The spam filter as an ML system over HTTP: ``/prepare``, ``/train``, ``/score``, ``/evaluate`` (the project's
service; ``project/src/app.py`` builds it from its configuration files).

Why in the library: the project's ``src/app.py``, its tests, the walkthrough notebook and the benchmarks serve the
same app. It composes what exists: the stage functions of :mod:`aml.project.system`, the data store, background jobs
(:mod:`aml.mlops.jobs`), the registry's fallback policy, and the HTTP hardening, error format and servers of the
Assignment 3 service (:func:`aml.spam.service.harden`, :func:`aml.spam.service.run_gunicorn`).

===========================  ==========================================================================================
``GET /``                    a page for people: paste a message, see prediction, propensity and the serving version
``GET /api``                 this list as JSON
``POST /prepare`` 🔒         raw data → validated, deduplicated splits in the data store (synchronous, about a second)
``POST /train`` 🔒           202 + ``Location: /jobs/<id>``: train, track, register, validate, promote (one at a time)
``GET /jobs/<id>``           a job's status, progress and result
``POST /score``              ``{"text"}`` → ``{"prediction", "propensity", "model_version"}``; 🔒 ``{"input": path}`` →
                             batch scoring into ``predictions/`` (with its drift report) and the take-down list into
                             ``actions/``; a challenger in ``config/score.yaml`` shadows the champion or takes an A/B
                             share (online: ``arm`` in the answer; shadow scores written in batches to ``shadow/``)
``POST /evaluate`` 🔒        scored, labelled data → metrics and their monitoring (performance alert, bias by slice,
                             champion vs challenger) into ``evaluations/``
``GET /monitoring``          the latest batch drift and evaluation monitoring, with one overall ``drift`` flag
``GET /monitoring/*.html``   their reports (``batch``, ``evaluation``) with plots
``GET /health``              liveness, the serving version and the fallback state
``GET /models``              registered versions, the champion, which version serves and why
``POST /models/reload`` 🔒   reload the champion now (it is also polled every ``refresh_s`` seconds)
``GET /metrics``             Prometheus metrics: requests, model loads, fallback, shadow agreement, A/B arms
===========================  ==========================================================================================

🔒: ``Authorization: Bearer <token>`` (Flask-HTTPAuth). The token comes from ``AML_API_TOKEN``, else from the file
``AML_API_TOKEN_FILE``, else from ``<store>/.secrets/api_token``, generated on first start with mode 0600 and its
location logged (as Jupyter does); a token file readable by others is refused. A missing token answers 401, a
wrong one 403.

Only predictions leave the API: no endpoint returns a model or a data file. Store paths in requests are relative
to the store root and must lie in one of the data folders (:data:`aml.project.system.KINDS`): absolute paths, ``..``,
hidden folders (the token, the job records) are refused with 400.

Each gunicorn worker loads the model from the registry lazily on its first request (nothing of MLflow runs in the
master before the fork), then a background thread polls the registry every ``refresh_s`` seconds and reloads when
the champion changes, so every replica picks up a promotion without a restart.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, render_template_string, request, url_for
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

from aml.mlops import experiments, registry
from aml.mlops.datastore import DataStore, StoreError, StoreNotFoundError, StorePathError
from aml.mlops.jobs import BusyError, JobNotFoundError, Jobs
from aml.project import monitoring, system
from aml.spam import MODEL_NAME, service
from aml.spam.scoring import check_threshold
from aml.spam.sms import DataValidationError

log = logging.getLogger("aml.project.api")

TOKEN_ENV, TOKEN_FILE_ENV = "AML_API_TOKEN", "AML_API_TOKEN_FILE"
SECRETS_DIR, TOKEN_NAME = ".secrets", "api_token"
DEFAULT_PORT = 8000
REFRESH_S = 5.0
#: configuration fields only the service's configuration files set: a request may not name a local file for the
#: server to read or log, a folder for it to write, or another registered model
SERVER_ONLY = {"prepare": ("source",), "train": ("registered_model", "exports", "dockerfile")}
NO_MODEL = "no model is registered yet: call POST /prepare, then POST /train, and wait for its job to succeed"


class ConfigError(ValueError):
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


# -- the model holder ------------------------------------------------------------------------------------------------


@dataclass
class ModelHolder:
    """The serving model of one process, loaded lazily, reloaded when the champion changes, with its fallback
    state (what ``/health``, ``/models`` and ``/metrics`` report)."""

    name: str = MODEL_NAME
    refresh_s: float = REFRESH_S
    model: system.ServingModel | None = None
    error: str | None = None
    failures: list = field(default_factory=list)
    loads: int = 0
    load_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pid: int | None = None
    _seen: tuple | None = None
    _attempted: float = 0.0
    _versions: dict = field(default_factory=dict)

    def get(self) -> system.ServingModel | None:
        """The model, loading it on the first call in this process (and starting the poller)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self.model, self._seen = None, None
                    self._load()
                    if self.refresh_s > 0:
                        threading.Thread(target=self._poll, name="model-poller", daemon=True).start()
        elif self.model is None and time.monotonic() - self._attempted > 1.0:
            self.reload(force=False)  # no model yet: look again (at most once a second) rather than wait for the poller
        return self.model

    def _state(self) -> tuple:
        return registry.champion_version(self.name), tuple(registry.versions(self.name)[:1])

    def _load(self) -> None:
        self._attempted = time.monotonic()
        try:
            self._seen = self._state()
            model = system.load_serving_model(self.name)
        except registry.NoModelError:
            self.model, self.error, self.failures = None, NO_MODEL, []
            return
        except registry.NoServableVersionError as exc:
            self.load_failures += len(exc.failures)
            self.model, self.error, self.failures = None, str(exc), exc.failures
            log.error("%s", exc)
            return
        except Exception as exc:  # the registry itself is unreachable: keep what serves
            self.error = f"cannot reach the model registry: {type(exc).__name__}: {exc}"
            log.exception("model load failed")
            return
        self.loads += 1
        self.load_failures += len(model.served.failures)
        self.model, self.error, self.failures = model, None, model.served.failures
        if model.served.fallback:
            log.warning("serving version %s as a FALLBACK: %s", model.version, model.served.failures)
        else:
            log.info("serving %s version %s (%s)", self.name, model.version, model.served.source)

    def reload(self, force: bool = True) -> None:
        """Reload now (``force``) or when the champion or the newest version changed since the last load."""
        with self._lock:
            self._pid = os.getpid()
            if not force:
                self._attempted = time.monotonic()
                try:
                    if self._state() == self._seen:
                        return
                except Exception as exc:  # the registry is unreachable: keep serving what is loaded
                    log.warning("cannot check the model registry: %s", exc)
                    return
            self._load()

    def _poll(self) -> None:
        while True:
            time.sleep(self.refresh_s)
            try:
                self.reload(force=False)
            except Exception:
                log.exception("polling the registry failed")

    def version_model(self, version: str) -> system.ServingModel:
        """Registered ``version`` ready to serve: the serving model when it is that version, else loaded once and
        kept (:func:`aml.project.system.load_version_model`; the challenger of an experiment, or the model an
        evaluation's rows were scored with). Raises :class:`~aml.project.system.StageError` for an unknown
        version."""
        model = self.get()
        if model is not None and model.version == str(version):
            return model
        with self._lock:
            if str(version) not in self._versions:
                if len(self._versions) >= 2:  # a challenger and one older version at most
                    self._versions.pop(next(iter(self._versions)))
                self._versions[str(version)] = system.load_version_model(self.name, str(version))
            return self._versions[str(version)]

    def describe(self) -> dict:
        """What ``/health`` reports about the model: ``ready``, what serves (version, source, threshold, scorer),
        whether it is a fallback, and the load failures and error seen."""
        model = self.get()
        return {
            "ready": model is not None,
            "serving": model.describe() if model else None,
            "fallback": bool(model and model.served and model.served.fallback),
            "failures": self.failures,
            "error": self.error,
        }


# -- request helpers -------------------------------------------------------------------------------------------------


def json_body() -> dict:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    data = service.read_body()
    if not data.strip():
        return {}
    try:
        payload = json.loads(data)
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply") from None
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


def store_path(store: DataStore, payload: Mapping, key: str = "input") -> str:
    """A store path from a request, confined to the data folders; 400 otherwise."""
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f'"{key}" must be a store path such as "split/<run>/test.csv", got {value!r}')
    try:
        path = store.check_path(value)
    except StorePathError as exc:
        raise BadRequest(str(exc)) from None
    first = path.split("/", 1)[0]
    if first not in system.KINDS or any(part.startswith(".") for part in path.split("/")):
        raise BadRequest(f'"{key}" must lie in one of the data folders {list(system.KINDS)}, got {value!r}')
    return path


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SMS spam filter</title>
<style>
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
textarea{width:100%;font:inherit;padding:.5rem} button{font:inherit;padding:.4rem 1.2rem;margin-top:.5rem}
.result{margin-top:1.5rem;padding:1rem;border-radius:.4rem;background:#f3f3f3} .spam{background:#fde2e2}
.ham{background:#e2f5e6} .error{background:#fff3cd} nav a{margin-right:1rem} dt{font-weight:600}
</style></head>
<body>
<h1>SMS spam filter</h1>
<p>Paste a message to see what the serving model says.</p>
<form method="post" action="{{ url_for('page') }}">
<label for="text">Message</label>
<textarea id="text" name="text" rows="4" maxlength="2000" required>{{ text }}</textarea>
<button id="submit" type="submit">Score</button>
</form>
{% if error %}<div class="result error" id="result"><p id="error">{{ error }}</p></div>{% endif %}
{% if result %}
<div class="result {{ 'spam' if result.prediction else 'ham' }}" id="result"><dl>
<dt>Prediction</dt><dd id="prediction">{{ 'spam' if result.prediction else 'ham' }}</dd>
<dt>Propensity</dt><dd id="propensity">{{ '%.4f' % result.propensity }}</dd>
<dt>Threshold</dt><dd id="threshold">{{ '%.4f' % result.threshold }}</dd>
<dt>Model version</dt><dd id="model-version">{{ result.model_version }}</dd>
</dl></div>
{% endif %}
<nav><p><a href="{{ url_for('health') }}">health</a><a href="{{ url_for('models') }}">models</a>
<a href="{{ url_for('api_description') }}">API</a></p></nav>
</body></html>
"""


# -- the app ---------------------------------------------------------------------------------------------------------


def create_app(
    store: DataStore | str | None = None,
    defaults: Mapping[str, Mapping] | None = None,
    model_name: str = MODEL_NAME,
    token: str | None = None,
    lock_dir: str | Path | None = None,
    max_bytes: int = service.DEFAULT_MAX_BYTES,
    refresh_s: float = REFRESH_S,
    shadow_flush_every: int = 500,
) -> Flask:
    """The project's Flask app over ``store`` (a :class:`~aml.mlops.datastore.DataStore` or URL; default ``AML_DATA_STORE``) and the
    MLflow registry MLflow is configured for. ``defaults``: each stage's configuration file (``{"prepare": {...},
    "train": {...}, ...}``), which request bodies override field by field. ``token``: default :func:`resolve_token`.
    ``shadow_flush_every``: online shadow scores per written batch (:class:`aml.mlops.experiments.ShadowLog`).
    """
    import prometheus_client as prom

    if not isinstance(store, DataStore):
        store = DataStore(store) if store else DataStore.from_env(None)
    defaults = {stage: dict((defaults or {}).get(stage) or {}) for stage in system.CONFIGS}
    for stage, values in defaults.items():  # a bad configuration file stops the start, not the first request
        system.make_config(stage, values)
    if token is None:
        token, where = resolve_token(store)
        log.info("API token from %s", where)
    jobs = Jobs(store, lock_dir)  # lock_dir None: aml.mlops.jobs.default_lock_dir (shared by replicas on one host)
    jobs.recover()
    holder = ModelHolder(model_name, refresh_s)

    metrics = prom.CollectorRegistry()
    requests_total = prom.Counter(
        "aml_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=metrics
    )
    prom.Gauge(
        "aml_model_fallback", "1 when an older version serves because newer ones failed", registry=metrics
    ).set_function(lambda: float(bool(holder.model and holder.model.served and holder.model.served.fallback)))
    prom.Gauge("aml_model_ready", "1 when a model serves", registry=metrics).set_function(
        lambda: float(holder.model is not None)
    )
    prom.Gauge("aml_model_version", "the serving registry version (0: none)", registry=metrics).set_function(
        lambda: float(holder.model.version) if holder.model and holder.model.version.isdigit() else 0.0
    )
    prom.Gauge("aml_model_load_failures", "versions that failed to load or smoke-test", registry=metrics).set_function(
        lambda: float(holder.load_failures)
    )
    shadow_total = prom.Counter(
        "aml_shadow_scores", "online messages the shadow challenger scored, by agreement", ["agree"], registry=metrics
    )
    arm_total = prom.Counter("aml_ab_requests", "online A/B requests by arm", ["arm"], registry=metrics)
    online_experiment = system.make_config("score", defaults["score"])
    shadow_log = experiments.ShadowLog(store, "shadow", flush_every=shadow_flush_every)
    atexit.register(shadow_log.flush)  # a worker's last batch of shadow scores, on a graceful stop

    app = Flask(__name__)
    service.harden(app, max_bytes)
    app.extensions["aml"] = {"store": store, "jobs": jobs, "holder": holder, "shadow": shadow_log}

    from flask_httpauth import HTTPTokenAuth

    auth = HTTPTokenAuth(scheme="Bearer")

    @auth.verify_token
    def verify_token(sent: str) -> str | None:
        g.token_sent = bool(sent)
        return "client" if sent and hmac.compare_digest(sent.encode(), token.encode()) else None

    @auth.error_handler
    def auth_error(status: int):
        if status == 401 and g.get("token_sent"):
            return service._error(403, "Forbidden", "the bearer token is not valid for this service")
        return service._error(
            status, "Unauthorized", "this endpoint needs 'Authorization: Bearer <token>' (see the service's log)"
        )

    @app.after_request
    def count(response: Response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        requests_total.labels(endpoint, str(response.status_code)).inc()
        return response

    def serving() -> system.ServingModel:
        model = holder.get()
        if model is None:
            raise ServiceUnavailable(holder.error or NO_MODEL)
        return model

    def online_score(payload: Mapping) -> dict:
        text, threshold = payload.get("text", service._ABSENT), payload.get("threshold", service._ABSENT)
        if text is service._ABSENT:
            raise BadRequest(service.MISSING_TEXT)
        if not isinstance(text, str):
            raise BadRequest(f'"text" must be a string, got {type(text).__name__}')
        if not text.strip():
            raise BadRequest('"text" must not be empty')
        model = serving()
        answer: dict[str, Any] = {}
        challenger = experiment_model(model)
        if challenger is not None and online_experiment.mode == "ab":
            key = payload.get("id", text)  # sticky by message id (the text itself when the caller sends none)
            arm = experiments.arm(key, online_experiment.share)
            arm_total.labels(arm).inc()
            answer["arm"] = arm
            if arm == experiments.CHALLENGER:
                model = challenger
        prediction, propensity = model.score_one(text)
        if challenger is not None and online_experiment.mode == "shadow":
            shadow_prediction, shadow_propensity = challenger.score_one(text)  # scored, kept, never returned
            shadow_total.labels(str(shadow_prediction == prediction).lower()).inc()
            key = payload.get("id") or "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]  # never the text
            try:
                shadow_log.add(
                    key,
                    (model.version, propensity, prediction),
                    (challenger.version, shadow_propensity, shadow_prediction),
                )
            except Exception:  # the store failed: the answer must not
                log.exception("writing the shadow scores failed")
        if threshold is not service._ABSENT:
            try:
                prediction = propensity >= check_threshold(threshold)
            except (TypeError, ValueError) as exc:
                raise BadRequest(f'"threshold": {exc}') from None
        return {"prediction": bool(prediction), "propensity": propensity, "model_version": model.version, **answer}

    def experiment_model(model: system.ServingModel) -> system.ServingModel | None:
        """The online experiment's challenger (``config/score.yaml``), or ``None`` when there is none, it is the
        serving version itself, or it cannot load (logged: the champion keeps answering)."""
        version = online_experiment.challenger
        if version is None or version == model.version:
            return None
        try:
            return holder.version_model(version)
        except Exception as exc:
            log.warning("the challenger (version %s) cannot serve: %s", version, exc)
            return None

    def stage_errors(fn, *args, **kwargs):
        """Run a stage, turning its errors into HTTP answers (never a 500 for the caller's mistakes)."""
        try:
            return fn(*args, **kwargs)
        except StorePathError as exc:
            raise BadRequest(str(exc)) from None
        except (StoreNotFoundError, FileNotFoundError) as exc:
            raise NotFound(" ".join(str(exc).split())) from None
        except DataValidationError as exc:
            raise Unprocessable(" ".join(str(exc).split())) from None
        except system.StageError as exc:
            raise BadRequest(str(exc)) from None
        except StoreError as exc:
            raise Unprocessable(str(exc)) from None

    def config(stage: str, overrides: Mapping):
        refused = sorted(set(overrides) & set(SERVER_ONLY.get(stage, ())))
        if refused:
            raise BadRequest(f"{refused} can only be set in the service's configuration files, not by a request")
        try:
            return system.make_config(stage, defaults[stage], overrides)
        except system.StageError as exc:
            raise BadRequest(str(exc)) from None

    @app.route("/", methods=["GET", "POST"], endpoint="page")
    def page():
        text, result, error = "", None, None
        if request.method == "POST":
            text = request.form.get("text", "")
            try:
                result = {**online_score({"text": text}), "threshold": serving().threshold}
            except HTTPException as exc:
                error = exc.description
        return render_template_string(PAGE, text=text, result=result, error=error)

    @app.get("/api")
    def api_description():
        return jsonify(
            {
                "service": "SMS spam filter (project)",
                "endpoints": {
                    "POST /prepare": "{} or config overrides → {run, outputs} (token)",
                    "POST /train": "{} or config overrides → 202 {job} + Location (token)",
                    "GET /jobs/<id>": "{status, progress, result}",
                    "POST /score": '{"text"} → {prediction, propensity, model_version}; {"input": path} → batch (token)',
                    "POST /evaluate": '{"input": path of scored, labelled data} → {metrics, output} (token)',
                    "GET /health": "liveness and the serving model",
                    "GET /models": "registered versions and the serving one",
                    "POST /models/reload": "reload the champion now (token)",
                    "GET /metrics": "Prometheus metrics",
                    "GET /monitoring": "the latest batch drift and evaluation monitoring, overall drift flag",
                    "GET /monitoring/<batch|evaluation>.html": "their reports with plots",
                },
                "store": store.url,
            }
        )

    @app.get("/health")
    def health():
        state = holder.describe()
        body = {"status": "ok" if state["ready"] else "no_model", **state}
        if state["fallback"]:
            body["warning"] = (
                f"serving version {state['serving']['version']} as a fallback: newer versions failed {state['failures']}"
            )
        return jsonify(body)

    @app.get("/models")
    def models():
        try:
            every = registry.versions(model_name)
            champion = registry.champion_version(model_name)
        except Exception as exc:
            raise ServiceUnavailable(f"cannot reach the model registry: {type(exc).__name__}") from None
        return jsonify({"registered_model": model_name, "versions": every, "champion": champion, **holder.describe()})

    @app.post("/models/reload")
    @auth.login_required
    def reload_models():
        holder.get()
        holder.reload(force=True)
        return jsonify(holder.describe())

    @app.get("/metrics")
    def prometheus():
        return Response(prom.generate_latest(metrics), mimetype=prom.CONTENT_TYPE_LATEST)

    @app.post("/prepare")
    @auth.login_required
    def prepare():
        payload = json_body()
        if payload.get("raw") is not None:
            payload["raw"] = store_path(store, payload, "raw")
        return jsonify(stage_errors(system.prepare, store, config("prepare", payload)))

    @app.post("/train")
    @auth.login_required
    def train():
        cfg = config("train", json_body())

        def job(report):
            result = system.train(store, cfg, report)
            holder.reload(force=True)
            return result

        try:
            record = jobs.submit("train", job, {"model": cfg.model, "params": cfg.params, "split": cfg.split})
        except BusyError as exc:
            response = service._error(409, "Conflict", f"a training job is already running: {exc.job_id}")
            response.headers["Location"] = url_for("job_status", job_id=exc.job_id)
            return response
        response = jsonify({"job": record["id"], "status": record["status"]})
        response.status_code = 202
        response.headers["Location"] = url_for("job_status", job_id=record["id"])
        return response

    @app.get("/jobs/<job_id>")
    def job_status(job_id: str):
        try:
            return jsonify(jobs.get(job_id))
        except JobNotFoundError as exc:
            raise NotFound(str(exc)) from None

    @app.post("/score")
    def score():
        payload = json_body() if request.mimetype not in service.FORM_TYPES else request.form.to_dict()
        if request.mimetype in service.FORM_TYPES and "threshold" in payload:
            try:
                payload["threshold"] = float(payload["threshold"])
            except ValueError:
                raise BadRequest(f'"threshold" must be a number in [0, 1], got {payload["threshold"][:40]!r}') from None
        if "input" not in payload:
            return jsonify(online_score(payload))
        return batch_score(payload)

    @auth.login_required
    def batch_score(payload):
        path = store_path(store, payload)
        options = {k: v for k, v in payload.items() if k != "input"}
        cfg = config("score", options)
        model = serving()
        # the serving version as its own challenger is no experiment: score_batch ignores it
        challenger = stage_errors(holder.version_model, cfg.challenger) if cfg.challenger is not None else None
        return jsonify(stage_errors(system.score_batch, store, model, path, cfg, challenger))

    @app.post("/evaluate")
    @auth.login_required
    def evaluate():
        payload = json_body()
        path = store_path(store, payload)
        options = {k: v for k, v in payload.items() if k != "input"}
        cfg = config("evaluate", options)
        return jsonify(stage_errors(system.evaluate, store, path, cfg, models=holder.version_model))

    @app.get("/monitoring")
    def monitoring_state():
        state = stage_errors(monitoring.latest, store)
        state["pages"] = {
            "batch": url_for("monitoring_page", part="batch"),
            "evaluation": url_for("monitoring_page", part="evaluation"),
        }
        return jsonify(state)

    @app.get("/monitoring/<part>.html")
    def monitoring_page(part: str):
        try:
            return Response(monitoring.page(store, part), mimetype="text/html")
        except KeyError as exc:
            raise NotFound(exc.args[0]) from None
        except FileNotFoundError as exc:
            raise NotFound(str(exc)) from None

    return app


class ServiceUnavailable(HTTPException):
    """503: no model can serve yet (the message says to call ``/prepare`` then ``/train``)."""

    code = 503
    name = "Service Unavailable"


class Unprocessable(HTTPException):
    """422: the request is well formed but its data fails validation (a bad line, an unknown label, empty
    texts)."""

    code = 422
    name = "Unprocessable Content"


# -- the servers -----------------------------------------------------------------------------------------------------


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> service.Settings:
    """``python src/app.py`` options: ``--host``/``HOST``, ``--port``/``PORT`` (default 8000), ``--server``/
    ``AML_SERVER`` (flask or gunicorn), ``--workers``/``AML_WORKERS``, ``--threads``/``AML_THREADS``."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Serve the spam filter's ML system: /prepare /train /score /evaluate.")
    parser.add_argument("--host", default=env.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", default=env.get("PORT") or DEFAULT_PORT)
    parser.add_argument("--server", default=env.get("AML_SERVER") or "flask", choices=service.SERVERS)
    parser.add_argument("--workers", default=env.get("AML_WORKERS") or 2)
    parser.add_argument("--threads", default=env.get("AML_THREADS") or 8)
    args = parser.parse_args(argv)
    try:
        return service.Settings(
            host=args.host,
            port=service._integer("PORT", args.port, 1, 65535),
            server=args.server,
            workers=service._integer("AML_WORKERS", args.workers, 1, 64),
            threads=service._integer("AML_THREADS", args.threads, 1, 256),
        )
    except service.ConfigError as exc:
        raise ConfigError(str(exc)) from None


def serve(app: Flask, settings: service.Settings) -> None:
    """Serve with gunicorn (production) or the development server."""
    log.info("serving on http://%s:%d with %s", settings.host, settings.port, settings.server)
    holder: ModelHolder = app.extensions["aml"]["holder"]
    if settings.server == "gunicorn":
        # each worker loads the model before it takes its first request (the master never touches MLflow); a worker
        # busy loading or training in a thread may miss heartbeats for a while: 120 s before the master replaces it
        service.run_gunicorn(app, settings, timeout=120, post_worker_init=lambda worker: holder.get())
    else:
        holder.get()
        service.run_development(app, settings)


def main(build_app, argv: list[str] | None = None) -> int:
    """Entry point for ``python src/app.py``: ``build_app()`` makes the app (the project's constructors); a bad
    setting is one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = parse_settings(argv)
        app = build_app()
    except (ConfigError, system.StageError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return service.EXIT_BAD_SETTINGS
    serve(app, settings)
    return 0
