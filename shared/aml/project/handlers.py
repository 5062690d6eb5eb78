"""The project service's request handlers, one module-level function per endpoint of the table
(:data:`aml.project.endpoints.ENDPOINTS`), each named and testable on its own.

A handler turns the request into a stage call and the stage's answer into JSON: its parts (the store, the jobs, the
model holder, the stage defaults, the experiment router, the metrics) are the app's :class:`Service`
(:func:`service`), built once by :func:`aml.project.api.create_app`. The stages' errors become HTTP answers in
:func:`stage_errors` (never a 500 for the caller's mistake); the stages validate their settings before any work
starts (``/train`` before its job is queued: :func:`aml.project.train.check_inputs`).

Only predictions and health leave the API without the token: ``GET /jobs/<id>`` answers a caller without it the
job's status and progress only (:data:`PUBLIC_JOB_FIELDS`), and with it the record without the server's process id
and host name, a training's result without message texts or server paths (:func:`aml.project.train.public_result`)
and a failed job's error with absolute paths cut to their last component (:func:`redact_paths`). Stage messages name
store-relative paths only (:mod:`aml.mlops.datastore`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, NotFound

from aml.core import pages, web
from aml.mlops import experiments, registry
from aml.mlops.datastore import DataStore, StoreError, StoreNotFoundError, StorePathError
from aml.mlops.jobs import BusyError, JobNotFoundError, Jobs
from aml.project import endpoints, monitoring
from aml.project import evaluate as evaluate_stage
from aml.project import prepare as prepare_stage
from aml.project import score as score_stage
from aml.project import train as train_stage
from aml.project.run import KINDS
from aml.project.serving import NO_MODEL, ModelHolder, Router, ServingModel
from aml.project.settings import SERVER_ONLY, SERVER_ONLY_PARAMS, StageError, make_config
from aml.spam.scoring import check_threshold
from aml.spam.sms import DataValidationError

log = logging.getLogger("aml.project.handlers")

MISSING_TEXT = '"text" is missing: send {"text": "the message to score"} or text=... as a form'
#: what ``GET /jobs/<id>`` shows a caller without the token
PUBLIC_JOB_FIELDS = ("id", "kind", "status", "progress", "created_at", "started_at", "finished_at")
#: what it never shows (the stored record keeps them for the operator)
SERVER_JOB_FIELDS = ("pid", "host")
#: an absolute POSIX path (two components or more) inside a message: what :func:`redact_paths` cuts
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s'\"<>|,;:()\[\]{}/]+/)+([^\s'\"<>|,;:()\[\]{}/]*)")


class ServiceUnavailable(HTTPException):
    """503: no model can serve yet (the message says to call ``/prepare`` then ``/train``)."""

    code = 503
    name = "Service Unavailable"


class Unprocessable(HTTPException):
    """422: the request is well formed but its data fails validation (a bad line, an unknown label, empty
    texts)."""

    code = 422
    name = "Unprocessable Content"


@dataclass
class Service:
    """What the handlers work with, one per app: the data ``store``, the ``jobs``, the model ``holder``, each
    stage's configuration ``defaults``, the online experiment ``router``, the shadow log, the ``auth`` object, the
    endpoint table and the Prometheus ``counters`` (``requests``, ``shadow``, ``arms``)."""

    store: DataStore
    jobs: Jobs
    holder: ModelHolder
    defaults: Mapping[str, Mapping]
    router: Router
    shadow: experiments.ShadowLog
    auth: Any
    endpoints: tuple = ()
    counters: dict = field(default_factory=dict)
    metrics: Any = None
    model_name: str = ""

    def serving(self) -> ServingModel:
        """The serving model; 503 with what to call first when there is none."""
        model = self.holder.get()
        if model is None:
            raise ServiceUnavailable(self.holder.error or NO_MODEL)
        return model

    def config(self, stage: str, overrides: Mapping):
        """The stage's configuration: the service's defaults, then the request's ``overrides`` (400 when invalid or
        when they set a server-only field)."""
        refused = sorted(set(overrides) & set(SERVER_ONLY.get(stage, ())))
        params = overrides.get("params") if stage == "train" else None
        if isinstance(params, Mapping):
            refused += [f"params.{key}" for key in sorted(set(params) & set(SERVER_ONLY_PARAMS))]
        if refused:
            raise BadRequest(f"{refused} can only be set in the service's configuration files, not by a request")
        try:
            return make_config(stage, self.defaults[stage], overrides)
        except StageError as exc:
            raise BadRequest(str(exc)) from None


def service() -> Service:
    """The current app's :class:`Service`."""
    return current_app.extensions["aml"]["service"]


# -- request helpers -------------------------------------------------------------------------------------------------


def json_body() -> dict:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    payload = web.json_object()
    if payload is None:
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
    if first not in KINDS or any(part.startswith(".") for part in path.split("/")):
        raise BadRequest(f'"{key}" must lie in one of the data folders {list(KINDS)}, got {value!r}')
    return path


def redact_paths(text: str) -> str:
    """``text`` with every absolute path of the server cut to ``…/<last component>``: for messages that come from
    libraries the service does not control (a failed job's error), which must not show the server's folders."""
    return _ABSOLUTE_PATH.sub(lambda m: f"…/{m.group(1)}", text)


def public_job(record: Mapping, full: bool) -> dict:
    """What ``GET /jobs/<id>`` answers of a job's ``record``: with the token (``full``) everything but the process
    id and host name, a training's ``result`` through :func:`aml.project.train.public_result` and the ``error``
    through :func:`redact_paths`; without it, the status and progress fields (:data:`PUBLIC_JOB_FIELDS`)."""
    if not full:
        return {key: record[key] for key in PUBLIC_JOB_FIELDS if key in record}
    out = {key: value for key, value in record.items() if key not in SERVER_JOB_FIELDS}
    if out.get("kind") == "train" and isinstance(out.get("result"), dict):
        out["result"] = train_stage.public_result(out["result"])
    if isinstance(out.get("error"), str):
        out["error"] = redact_paths(out["error"])
    return out


def stage_errors(fn: Callable, *args, **kwargs):
    """Run a stage, turning its errors into HTTP answers (never a 500 for the caller's mistakes), their messages on
    one line with absolute server paths cut (:func:`redact_paths`; the stages name store paths relative to the
    store, but a file the service's configuration names, such as its raw data source, is the server's). The raw
    dataset missing or corrupt on the server is the operator's problem, not the caller's: a 503, with where it was
    looked for in the server's log."""
    from aml.core.datasets import DatasetError

    def message(exc: BaseException) -> str:
        return redact_paths(" ".join(str(exc).split()))

    try:
        return fn(*args, **kwargs)
    except DatasetError as exc:
        log.error("the raw dataset is unavailable: %s", exc)
        raise ServiceUnavailable(
            f"the service's raw dataset is unavailable (the server's log says where it looked): {message(exc)}"
        ) from None
    except StorePathError as exc:
        raise BadRequest(message(exc)) from None
    except (StoreNotFoundError, FileNotFoundError) as exc:
        raise NotFound(message(exc)) from None
    except DataValidationError as exc:
        raise Unprocessable(message(exc)) from None
    except StageError as exc:
        raise BadRequest(message(exc)) from None
    except StoreError as exc:
        raise Unprocessable(message(exc)) from None


# -- online scoring --------------------------------------------------------------------------------------------------


def _shadow(svc: Service, key: str, served: tuple, challenger: ServingModel, text: str) -> None:
    """Score ``text`` with the shadow ``challenger`` too: counted, written in batches to ``shadow/``, never
    returned."""
    shadow_prediction, shadow_propensity = challenger.score_one(text)
    svc.counters["shadow"].labels(str(shadow_prediction == served[2]).lower()).inc()
    try:
        svc.shadow.add(key, served, (challenger.version, shadow_propensity, shadow_prediction))
    except Exception:  # the store failed: the answer must not
        log.exception("writing the shadow scores failed")


def online_score(payload: Mapping) -> dict:
    """One text scored by the serving model (or, in an A/B test, by the arm its id routes to: ``arm`` in the
    answer); a shadow challenger scores it too. ``threshold`` overrides the model's for this answer only."""
    svc = service()
    text, threshold = payload.get("text", web.ABSENT), payload.get("threshold", web.ABSENT)
    if text is web.ABSENT:
        raise BadRequest(MISSING_TEXT)
    if not isinstance(text, str):
        raise BadRequest(f'"text" must be a string, got {type(text).__name__}')
    if not text.strip():
        raise BadRequest('"text" must not be empty')
    model = svc.serving()
    answer: dict[str, Any] = {}
    challenger = svc.router.challenger_model(svc.holder, model)
    if challenger is not None and not svc.router.shadow:
        arm = svc.router.arm(payload.get("id", text))  # sticky by message id (the text when the caller sends none)
        svc.counters["arms"].labels(arm).inc()
        answer["arm"] = arm
        if arm == experiments.CHALLENGER:
            model = challenger
    prediction, propensity = model.score_one(text)
    if challenger is not None and svc.router.shadow:
        key = payload.get("id") or "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]  # never the text
        _shadow(svc, key, (model.version, propensity, prediction), challenger, text)
    if threshold is not web.ABSENT:
        try:
            prediction = propensity >= check_threshold(threshold)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'"threshold": {exc}') from None
    return {"prediction": bool(prediction), "propensity": propensity, "model_version": model.version, **answer}


# -- the handlers, in the table's order ------------------------------------------------------------------------------


def page():
    """``GET /``: the page with a form; ``POST /`` (the form): the page with the serving model's answer."""
    svc = service()
    text, result, error = "", None, None
    if request.method == "POST":
        web.read_body()
        text = request.form.get("text", "")
        try:
            result = {**online_score({"text": text}), "threshold": svc.serving().threshold}
        except HTTPException as exc:
            error = exc.description
    links = [("health", url_for("health")), ("models", url_for("models")), ("API", url_for("api_description"))]
    intro = "Paste a message to see what the serving model says."
    html = pages.render(
        "score_page.html", title="SMS spam filter", intro=intro, action=url_for("page"), text=text, result=result,
        error=error, links=links,
    )  # fmt: skip
    return Response(html, mimetype="text/html")


def api_description():
    """``GET /api``: the endpoint table as JSON."""
    svc = service()
    return jsonify({"service": "SMS spam filter (project)", "endpoints": endpoints.describe(svc.endpoints)})


def prepare():
    """``POST /prepare``: the data stage, synchronously."""
    svc = service()
    payload = json_body()
    if payload.get("raw") is not None:
        payload["raw"] = store_path(svc.store, payload, "raw")
    return jsonify(stage_errors(prepare_stage.prepare, svc.store, svc.config("prepare", payload)))


def train():
    """``POST /train``: the model stage as a background job (202 + ``Location``; 409 while one runs)."""
    svc = service()
    cfg = svc.config("train", json_body())
    try:
        stage_errors(train_stage.check_inputs, svc.store, cfg)  # a bad split is a 400 now, not a failed job later
    except NotFound as exc:
        raise Conflict(exc.description) from None  # no split run yet: call /prepare first

    def job(report):
        train_stage.recover_crashed(svc.jobs, cfg.registered_model)  # under the train lock: earlier jobs are dead
        result = train_stage.train(svc.store, cfg, report)
        svc.holder.reload(force=True)
        return result

    try:
        record = svc.jobs.submit("train", job, {"model": cfg.model, "params": cfg.params, "split": cfg.split})
    except BusyError as exc:
        response = web.error_response(409, "Conflict", f"a training job is already running: {exc.job_id}")
        response.headers["Location"] = url_for("job_status", job_id=exc.job_id)
        return response
    response = jsonify({"job": record["id"], "status": record["status"]})
    response.status_code = 202
    response.headers["Location"] = url_for("job_status", job_id=record["id"])
    return response


def job_status(job_id: str):
    """``GET /jobs/<job_id>``: a job's status and progress; with the token, its record (:func:`public_job`)."""
    auth = service().auth
    return auth.login_required(optional=True)(_job_record)(job_id)


def _job_record(job_id: str):
    svc = service()
    try:
        record = svc.jobs.get(job_id)
    except JobNotFoundError as exc:
        raise NotFound(str(exc)) from None
    return jsonify(public_job(record, full=svc.auth.current_user() is not None))


def score():
    """``POST /score``: a ``text`` is scored online (no token); an ``input`` store path is a batch (token)."""
    if web.is_form():
        web.read_body()
        payload: dict = request.form.to_dict()
        if "threshold" in payload:
            payload["threshold"] = web.form_number(payload, "threshold")
    else:
        payload = json_body()
    if "input" not in payload:
        return jsonify(online_score(payload))
    return service().auth.login_required(batch_score)(payload)


def batch_score(payload: Mapping):
    """Batch ``POST /score`` (behind the token): :func:`aml.project.score.score_batch` with the request's options
    over the service's defaults, and the challenger they name."""
    svc = service()
    path = store_path(svc.store, payload)
    cfg = svc.config("score", {k: v for k, v in payload.items() if k != "input"})
    model = svc.serving()
    # the serving version as its own challenger is no experiment: score_batch ignores it
    challenger = stage_errors(svc.holder.version_model, cfg.challenger) if cfg.challenger is not None else None
    return jsonify(stage_errors(score_stage.score_batch, svc.store, model, path, cfg, challenger))


def evaluate():
    """``POST /evaluate``: the reward stage on a scored, labelled store file."""
    svc = service()
    payload = json_body()
    path = store_path(svc.store, payload)
    cfg = svc.config("evaluate", {k: v for k, v in payload.items() if k != "input"})
    return jsonify(stage_errors(evaluate_stage.evaluate, svc.store, path, cfg, models=svc.holder.version_model))


def health():
    """``GET /health``: liveness, what serves, the fallback state."""
    state = service().holder.describe()  # its "warning" says when a fallback or a never-promoted version serves
    return jsonify({"status": "ok" if state["ready"] else "no_model", **state})


def models():
    """``GET /models``: the registered versions, the champion, what serves and why."""
    svc = service()
    try:
        every = registry.versions(svc.model_name)
        champion = registry.champion_version(svc.model_name)
    except Exception as exc:
        raise ServiceUnavailable(f"cannot reach the model registry: {type(exc).__name__}") from None
    return jsonify(
        {"registered_model": svc.model_name, "versions": every, "champion": champion, **svc.holder.describe()}
    )


def reload_models():
    """``POST /models/reload``: load the champion now."""
    holder = service().holder
    holder.get()
    holder.reload(force=True)
    return jsonify(holder.describe())


def prometheus():
    """``GET /metrics``: the Prometheus text."""
    import prometheus_client as prom

    return Response(prom.generate_latest(service().metrics), mimetype=prom.CONTENT_TYPE_LATEST)


def monitoring_state():
    """``GET /monitoring``: the latest batch drift and evaluation monitoring, with links to their pages."""
    state = stage_errors(monitoring.latest, service().store)
    state["pages"] = {part: url_for("monitoring_page", part=part) for part in ("batch", "evaluation")}
    return jsonify(state)


def monitoring_page(part: str):
    """``GET /monitoring/<part>.html``: a monitoring report's page."""
    try:
        return Response(monitoring.page(service().store, part), mimetype="text/html")
    except KeyError as exc:
        raise NotFound(exc.args[0]) from None
    except FileNotFoundError as exc:
        raise NotFound(str(exc)) from None
