"""The project service's endpoint table: the one source for its routing (:func:`aml.project.api.create_app` registers
each row's handler), its auth marks, ``GET /api``, the client's methods (:mod:`aml.project.client`) and the endpoint
tables of ``project/README.md`` (:func:`markdown_table`; a test compares them) and of this page (below, generated).

Why a table: a new endpoint is one handler in :mod:`aml.project.handlers` plus one row here; nothing else is kept by
hand. This module imports nothing heavy (no Flask, no MLflow), so the client can read it.

``python -m aml.project.endpoints`` prints the README's table (paste it between the README's markers).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: the auth marks: anyone; the bearer token; the token only when the body names a stored file (batch ``/score``)
PUBLIC, TOKEN, TOKEN_FOR_BATCH = "public", "token", "token for a batch"
LOCK = "🔒"
#: the type of a request field that names a path inside the data store
#: (:meth:`aml.mlops.datastore.DataStore.check_path`)
STORE_PATH = "store path"
#: the types of request fields: JSON's, and :data:`STORE_PATH`
FIELD_TYPES = ("string", "number", "integer", "boolean", "array", "object", "string or null", STORE_PATH)


@dataclass(frozen=True)
class Endpoint:
    """One row: ``method`` and Flask ``rule``, the ``handler`` (a function's name in :mod:`aml.project.handlers`,
    or the function), ``summary`` (``GET /api``, the client's docstring), the ``auth`` mark, the ``client``
    method names, the README's ``contract`` rows ``(request, answer)`` (default one row from the summary), and the
    request's fields: ``fields`` ``(name, type)`` pairs (types from :data:`FIELD_TYPES`) sent as ``body`` (``json``
    or ``form``), plus every field of the stage configuration ``config`` names (:func:`request_fields`)."""

    method: str
    rule: str
    handler: str | Callable
    summary: str
    auth: str = PUBLIC
    client: tuple = ()  # of str
    contract: tuple = ()  # of (request, answer) pairs
    fields: tuple = ()  # of (name, type) pairs
    config: str | None = None
    body: str = "json"

    def __post_init__(self):
        if self.auth not in (PUBLIC, TOKEN, TOKEN_FOR_BATCH):
            raise ValueError(f"auth must be one of {PUBLIC!r}, {TOKEN!r}, {TOKEN_FOR_BATCH!r}, got {self.auth!r}")
        unknown = [kind for _, kind in self.fields if kind not in FIELD_TYPES]
        if unknown or self.body not in ("json", "form"):
            raise ValueError(
                f"field types must be among {FIELD_TYPES} and body json or form, got {unknown}, {self.body}"
            )

    @property
    def parameters(self) -> tuple[str, ...]:
        """The rule's path parameters (``("job_id",)`` for ``/jobs/<job_id>``)."""
        return tuple(re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", self.rule))

    @property
    def path(self) -> str:
        """The rule as people write it: ``/jobs/<id>`` (converters dropped)."""
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"<\1>", self.rule)

    @property
    def key(self) -> str:
        """``"METHOD /path"``, the key of ``GET /api``."""
        return f"{self.method} {self.path}"

    @property
    def name(self) -> str:
        """The Flask endpoint name: the handler's name."""
        return self.handler if isinstance(self.handler, str) else self.handler.__name__

    def rows(self) -> tuple:
        """The README's rows for this endpoint."""
        if self.contract:
            return self.contract
        lock = f" {LOCK}" if self.auth == TOKEN else ""
        return ((f"`{self.key}`{lock}", self.summary),)


#: the service's endpoints, in the order ``GET /api`` and the README list them (the table above)
#:
#: :meta hide-value:
ENDPOINTS = (
    Endpoint("GET", "/", "page", "the HTML page for people: paste a message, see prediction, propensity and version"),
    Endpoint(
        "POST",
        "/",
        "page",
        "the page's form posted: the page with the result",
        fields=(("text", "string"),),
        body="form",
    ),
    Endpoint("GET", "/api", "api_description", "the endpoint list as JSON"),
    Endpoint(
        "POST",
        "/prepare",
        "prepare",
        "{} or config overrides → {run, outputs}: raw data → validated, deduplicated splits in the data store",
        TOKEN,
        ("prepare",),
        (
            (
                f"`POST /prepare` `{{}}` or config fields {LOCK}",
                '`200 {"run", "outputs": {processed, train, validation, test, scoring}, "rows", "duplicates_removed"}`',
            ),
        ),
        fields=(("raw", STORE_PATH),),
        config="prepare",
    ),
    Endpoint(
        "POST",
        "/train",
        "train",
        "{} or config overrides → 202 {job} + Location: train, track, register, validate, promote (one at a time)",
        TOKEN,
        ("train",),
        (
            (
                f"`POST /train` `{{}}` or config fields {LOCK}",
                '`202 {"job", "status"}` + `Location: /jobs/<id>`; `409` while a training runs',
            ),
        ),
        config="train",
    ),
    Endpoint(
        "GET",
        "/jobs/<job_id>",
        "job_status",
        "{status, progress}: a job's status and progress; with the token also its parameters, result or error",
        client=("job",),
        contract=(
            ("`GET /jobs/<id>`", '`{"id", "kind", "status": queued/running/succeeded/failed, "progress", …_at}`'),
            (
                f"`GET /jobs/<id>` {LOCK}",
                '`{…, "params", "message", "result": {…, "model_version", "report"}, "error"}`',
            ),
        ),
    ),
    Endpoint(
        "POST",
        "/score",
        "score",
        '{"text"} → {prediction, propensity, model_version}; {"input": path} → batch scoring into predictions/ '
        "and the take-down list into actions/ (token)",
        TOKEN_FOR_BATCH,
        ("score", "score_batch"),
        (
            (
                '`POST /score` `{"text"}` (optional `"threshold"`)',
                '`{"prediction": bool, "propensity": float, "model_version": str}`',
            ),
            (
                f'`POST /score` `{{"input": "<store path>"}}` {LOCK}',
                '`{"output": "predictions/<run>/predictions.csv", "count", "spam", "actions", "model_version"}`',
            ),
        ),
        fields=(("text", "string"), ("threshold", "number"), ("id", "string"), ("input", STORE_PATH)),
        config="score",
    ),
    Endpoint(
        "POST",
        "/evaluate",
        "evaluate",
        '{"input": path of scored, labelled data} → {metrics, output} and their monitoring',
        TOKEN,
        ("evaluate",),
        (
            (
                f'`POST /evaluate` `{{"input": "<store path>"}}` {LOCK}',
                '`{"metrics": {"aucpr", "precision", "recall", …}, "output": "evaluations/<run>/metrics.json"}`',
            ),
        ),
        fields=(("input", STORE_PATH),),
        config="evaluate",
    ),
    Endpoint(
        "GET",
        "/health",
        "health",
        "liveness and the serving model",
        client=("health",),
        contract=(
            (
                "`GET /health`",
                '`{"status": ok/no_model, "serving": {version, source, fallback, …}, "fallback", "failures", '
                '"warning"}`',
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/models",
        "models",
        "registered versions, the champion, which version serves and why",
        client=("models",),
    ),
    Endpoint(
        "POST",
        "/models/reload",
        "reload_models",
        "reload the champion now (it is also polled every refresh_s seconds)",
        TOKEN,
        ("reload",),
        (
            (
                f"`POST /models/reload` {LOCK}",
                "reload now (the registry is also polled every 5 s, so a new champion is picked up without a restart)",
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/metrics",
        "prometheus",
        "Prometheus metrics: requests, model loads, fallback, shadow agreement, A/B arms, the cascade's routing",
        client=("metrics",),
        contract=(
            (
                "`GET /metrics`",
                "Prometheus: `aml_requests_total`, `aml_model_ready`, `aml_model_version`, `aml_model_fallback`, "
                '`aml_model_load_failures`, `aml_cascade_messages_total` (`stage="all"` or `"second"`: a serving '
                "cascade's messages scored and routed to its transformer)",
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/monitoring",
        "monitoring_state",
        "the latest batch drift and evaluation monitoring, with one overall drift flag",
        client=("monitoring",),
    ),
    Endpoint(
        "GET",
        "/monitoring/<part>.html",
        "monitoring_page",
        "the reports of GET /monitoring (batch, evaluation) with plots",
        client=("monitoring_page",),
    ),
)


def _json_type(default, annotation: str) -> str:
    """The request type of a configuration field from its default (and annotation when the default is None)."""
    for python, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (dict, "object")):
        if isinstance(default, python):
            return name
    if isinstance(default, (list, tuple)):
        return "array"
    return "string or null" if "str" in str(annotation) else "object"


def request_fields(endpoint: Endpoint) -> dict[str, str]:
    """``{name: type}`` of every field a request to ``endpoint`` may send: its own ``fields``, then the fields of
    its stage ``config`` (``aml.project.settings.CONFIGS``, typed by their defaults) that a request may set (not
    :data:`aml.project.settings.SERVER_ONLY`). What a hostile-input sweep generates its cases from."""
    fields = dict(endpoint.fields)
    if endpoint.config:
        import dataclasses

        from aml.project.settings import CONFIGS, SERVER_ONLY

        for f in dataclasses.fields(CONFIGS[endpoint.config]):
            if f.name in SERVER_ONLY.get(endpoint.config, ()) or f.name in fields:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            fields[f.name] = _json_type(default, f.type)
    return fields


def describe(endpoints: Iterable[Endpoint] | None = None) -> dict[str, str]:
    """``{"METHOD /path": summary}`` of ``endpoints`` (default :data:`ENDPOINTS`) for ``GET /api``, a token mark
    added where one is needed."""
    endpoints = ENDPOINTS if endpoints is None else endpoints
    marks = {TOKEN: " (token)", TOKEN_FOR_BATCH: "", PUBLIC: ""}
    return {e.key: e.summary + marks[e.auth] for e in endpoints}


def markdown_table(endpoints: Iterable[Endpoint] | None = None) -> str:
    """The README's contract table (``| request | answer |``) of ``endpoints`` (default :data:`ENDPOINTS`), one or
    more rows per endpoint, in table order."""
    endpoints = ENDPOINTS if endpoints is None else endpoints
    lines = ["| request | answer |", "| --- | --- |"]
    lines += [f"| {request} | {answer} |" for e in endpoints for request, answer in e.rows()]
    return "\n".join(lines) + "\n"


def rst_table(endpoints: Iterable[Endpoint] | None = None) -> str:
    """The table of ``endpoints`` (default :data:`ENDPOINTS`) as reStructuredText (a list table) for this module's
    documentation page."""
    endpoints = ENDPOINTS if endpoints is None else endpoints
    out = [".. list-table::", "   :header-rows: 1", "", "   * - endpoint", "     - auth", "     - what it does"]
    for e in endpoints:
        out += [f"   * - ``{e.key}``", f"     - {e.auth}", f"     - {e.summary}"]
    return "\n".join(out) + "\n"


#: the markers between which ``project/README.md`` holds :func:`markdown_table`
README_START = "<!-- endpoint table: generated by `python -m aml.project.endpoints` from aml.project.endpoints -->"
README_END = "<!-- end of the endpoint table -->"


def readme_table(text: str) -> str:
    """The endpoint table between the README's markers (what a test compares with :func:`markdown_table`)."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[start:end].strip("\n") + "\n"


__doc__ += "\nThe endpoints:\n\n" + rst_table()  # the documentation's table, generated from the same rows


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
