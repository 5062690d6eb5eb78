"""The project's service driven as an outside tester drives it (issue 22): a hostile-input sweep of every route and
a leak sweep of every answer.

The cases are generated from the endpoint table's request fields (:func:`aml.project.endpoints.request_fields`:
each endpoint's own fields and its stage configuration's, with their types), not listed by hand, so a new field is
swept as soon as it is in the contract. For every field: wrong types, huge and odd numbers (a 400-digit integer,
``1e400``, ``NaN``, ``Infinity``), lone surrogates, long strings, deep nesting; for store paths also traversal,
absolute paths, ``~``, URL schemes, hidden folders, a symlink loop and a symlink out, a 300-character name, a
2,500-level path, and files with odd contents (binary, empty, header only, empty texts, unquoted commas, not UTF-8,
a folder). Then whole-body cases for every route (not JSON, an array, invalid UTF-8, too large, a form where JSON is
expected), odd path parameters, wrong methods, and each protected route without and with a wrong token.

Every answer must be below 500, and every error JSON ``{"error", "message", "status"}``. The leak sweep scans every
answer of the hostile sweep and of a normal pass over every route (success answers, with and without the token) for
the store's folder, any absolute path of this machine, the host name, the process id, and message texts the caller
did not send (the raw collection's and the behavioural bank's). The summary table (cases and statuses per route) is
printed; ``-s`` shows it.

The sweep runs through Flask's test client (the handlers, the stages and the store answer these cases), then once
more through the production server, ``python src/app.py --server gunicorn`` with two workers over the same stores,
to show the answers are the same over real HTTP (the malformed-HTTP and slow-client cases, which are the server's,
have tests of their own). One real model is trained through the API first (naive Bayes on 600 messages, seconds).
"""

from __future__ import annotations

import collections
import html
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from aml.core import datasets, web
from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.ops import procs
from aml.project import api, endpoints, system
from aml.project.settings import StageError, make_config
from aml.spam import behaviour, sms

pytestmark = pytest.mark.slow

TOKEN = "hostile-sweep-token-" + "h" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"model": "tfidf_naive_bayes", "params": {}, "max_gap": 0.2, "min_aucpr": 0.8}
RAW_LINES = 600
PROJECT = Path(__file__).resolve().parents[1]
GUNICORN = [sys.executable, "src/app.py", "--server", "gunicorn", "--port", "{port}", "--workers", "2"]
MIN_CASES = 150

#: raw JSON texts any field is tried with, whatever its type
ANY_VALUE = {
    "null": "null",
    "true": "true",
    "zero": "0",
    "negative": "-1",
    "400-digit integer": "1" * 400,
    "negative 400-digit integer": "-" + "9" * 400,
    "1e400": "1e400",
    "-1e400": "-1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "fraction": "0.5",
    "string": '"abc"',
    "empty string": '""',
    "lone surrogate": '"\\ud800"',
    "10,000-character string": '"' + "x" * 10_000 + '"',
    "array": '[1, "a", null]',
    "object": '{"a": {"b": []}}',
    "deep array": "[" * 200 + "]" * 200,
}
#: more values by field type
BY_TYPE = {
    "object": {
        "C text": '{"C": "abc"}',
        "C negative": '{"C": -1}',
        "C 1e400": '{"C": 1e400}',
        "C NaN": '{"C": NaN}',
        "alpha 400 digits": '{"alpha": ' + "7" * 400 + "}",
        "unknown name": '{"nope": 1}',
        "seed inside": '{"seed": 1}',
        "nested": '{"alpha": {"x": [1]}}',
    },
    "array": {
        "empty": "[]",
        "two": "[0.5, 0.5]",
        "NaN": "[NaN, 0.5, 0.5]",
        "inf": "[1e400, 0, 0]",
        "strings": '["a", "b", "c"]',
        "nested": "[[0.7], [0.15], [0.15]]",
        "thousand": "[" + ", ".join(["0.001"] * 1000) + "]",
        "unknown names": '["nope", "aucpr"]',
        "unhashable": '[{"a": 1}]',
    },
    "number": {"just above 1": "1.0000001", "-0.0": "-0.0", "string number": '"0.5"'},
    "integer": {"2**32": str(2**32), "float": "1.5", "string number": '"7"'},
    "string or null": {
        "run id of nothing": '"20200101T000000000000Z-abcdef"',
        "run id lookalike": '"20200101T000000000000Z-ABCDEF"',
        "400 digits": '"' + "9" * 400 + '"',
        "version 0": '"0"',
        "version 999": '"999"',
    },
    "string": {"unknown name": '"nope"', "NUL": '"a\\u0000b"', "right-to-left": '"\\u202etxt.exe"'},
}
#: odd store paths (planted below: ``split/hostile/...``)
ODD_PATHS = {
    "traversal": "../x.csv",
    "traversal inside": "split/../../etc/passwd",
    "absolute": "/etc/passwd",
    "home": "~/x.csv",
    "encoded dots": "split/%2e%2e/%2e%2e/etc/passwd",
    "URL scheme": "file:///etc/passwd",
    "s3 URL": "s3://bucket/x.csv",
    "drive": "C:\\x.csv",
    "hidden folder": ".secrets/api_token",
    "job record": "jobs/x.json",
    "hidden inside": "split/.hidden/x.csv",
    "unknown folder": "unknown/x.csv",
    "missing file": "split/hostile/missing.csv",
    "symlink loop": "split/hostile/loop.csv",
    "symlink out": "split/hostile/out.csv",
    "300-character name": "split/" + "n" * 300 + ".csv",
    "2,500 levels": "split/" + "d/" * 2500 + "x.csv",
    "lone surrogate": "split/\ud800.csv",
    "NUL": "split/a\x00b.csv",
    "a folder": "split/hostile/folder.csv",
}
#: files with odd contents, planted under ``split/hostile/``
ODD_FILES = {
    "binary.csv": os.urandom(4096),
    "empty.csv": b"",
    "header-only.csv": b"label,text\n",
    "header-only-scoring.csv": b"id,text\n",
    "empty-texts.csv": b"label,text\nham,\nspam,\n",
    "unquoted-commas.csv": b"id,text\n"
    + b"".join(b"%d,hello, how are you, see you at %d\n" % (i, i) for i in range(20000)),
    "ragged.csv": b"id,text\n1,a\n2,b,c,d\n3\n",
    "latin-1.csv": "id,text\n1,caf\xe9 \xa3100\n".encode("latin-1"),
    "nul-bytes.csv": b"id,text\n1,a\x00b\n",
    "unlabelled-raw": b"just a line without a tab\n",
    "one-huge-line.csv": b"id,text\n1," + b"w" * 500_000 + b"\n",
    "scored-no-labels.csv": b"id,propensity,prediction\n1,0.5,1\n",
}


def sms_slice(path: Path, lines: int = RAW_LINES) -> Path:
    collection = datasets.fetch("sms_spam") / sms.FILENAME
    path.write_bytes(b"".join(collection.read_bytes().splitlines(keepends=True)[:lines]))
    return path


def wait_job(client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = client.get(f"/jobs/{job_id}", headers=AUTH).json
        if record["status"] in ("succeeded", "failed"):
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['status']}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A service over fresh stores, prepared and trained through its API, with the odd files planted; every
    answer it gives during the module is recorded in ``answers``."""
    root = tmp_path_factory.mktemp("hostile")
    uri = tracking.new_store(root / "mlflow")
    with tracking.using(uri, experiment="hostile-sweep"):
        store = DataStore(root / "data")
        raw = sms_slice(root / "SMSSpamCollection")
        system.ingest_raw(store, raw)
        app = api.create_app(store, {"train": FAST}, token=TOKEN, lock_dir=root / "locks", refresh_s=0)
        client = app.test_client()
        prepared = client.post("/prepare", json={}, headers=AUTH)
        assert prepared.status_code == 200, prepared.json
        started = client.post("/train", json={}, headers=AUTH)
        assert started.status_code == 202, started.json
        job = wait_job(client, started.json["job"])
        assert job["status"] == "succeeded", job
        scored = client.post("/score", json={"input": prepared.json["outputs"]["test"]}, headers=AUTH)
        assert scored.status_code == 200, scored.json
        folder = root / "data" / "split" / "hostile"
        folder.mkdir()
        for name, data in ODD_FILES.items():
            (folder / name).write_bytes(data)
        (folder / "loop.csv").symlink_to(folder / "loop.csv")
        (root / "outside.csv").write_text("id,text\n1,a secret outside the store\n")
        (folder / "out.csv").symlink_to(root / "outside.csv")
        (folder / "folder.csv").mkdir()
        texts = {line.split("\t", 1)[1].strip() for line in raw.read_text().splitlines() if "\t" in line}
        texts |= {case.text for case in behaviour.BANK}
        ns = SimpleNamespace(
            app=app,
            client=client,
            store=store,
            root=root,
            prepared=prepared.json,
            job=job,
            scored=scored.json,
            texts={t for t in texts if len(t) >= 25},
            env={
                "AML_DATA_STORE": str(root / "data"),
                "MLFLOW_TRACKING_URI": uri,
                "AML_MODEL_EXPORTS": str(root / "models"),
                "AML_MODEL_STORE": str(root / "models"),
                "AML_API_TOKEN": TOKEN,
            },
            answers=[],
        )
        yield ns
        for record in app.extensions["aml"]["jobs"].list():  # a training a case started ends before MLflow closes
            if record["status"] in ("queued", "running"):
                wait_job(client, record["id"])


def send(served, method: str, path: str, body: bytes | str | None = None, headers=None, content_type=None):
    """One request through the test client, recorded (with what was sent) for the leak sweep."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    response = served.client.open(
        path, method=method, data=data, headers=headers or {}, content_type=content_type or "application/json"
    )
    served.answers.append((method, path, data or b"", response))
    return response


def json_body(fields: dict[str, str]) -> str:
    """A JSON object written from raw JSON value texts (so NaN, 1e400 and lone surrogates go out as written)."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def valid(row, name: str, value: str) -> bool:
    """Whether the stage configuration of ``row`` accepts ``value`` (a raw JSON text) for ``name``."""
    try:
        make_config(row.config, None, {name: json.loads(value)})
    except (StageError, ValueError):
        return False
    return True


def field_cases(served) -> list[tuple]:
    """``(route key, label, method, path, body, headers, content type)`` for every request field of every endpoint."""
    scoring = served.prepared["outputs"]["scoring"]
    predictions = served.scored["output"]
    cases = []
    for row in endpoints.ENDPOINTS:
        for name, kind in endpoints.request_fields(row).items():
            values = {**ANY_VALUE, **BY_TYPE.get(kind, {})}
            if kind == endpoints.STORE_PATH:
                values |= {f"path: {k}": json.dumps(v) for k, v in ODD_PATHS.items()}
                values |= {f"file: {k}": json.dumps(f"split/hostile/{k}") for k in ODD_FILES}
            for label, value in values.items():
                if (
                    row.rule in ("/prepare", "/train")
                    and (kind != endpoints.STORE_PATH or value == "null")
                    and valid(row, name, value)
                ):
                    continue  # a valid setting is no hostile case (and would run a whole stage)
                base: dict[str, str] = {}
                if row.rule == "/score" and name not in ("text", "threshold", "id", "input"):
                    base = {"input": json.dumps(scoring)}  # a batch's settings
                elif row.rule == "/score" and name != "text" and name != "input":
                    base = {"text": '"hello, are we still on for tonight?"'}
                elif row.rule == "/evaluate" and name != "input":
                    base = {"input": json.dumps(predictions)}
                body = {**base, name: value}
                if row.body == "form":
                    text = json.loads(value) if value.startswith('"') else value
                    form = "text=" + (text if isinstance(text, str) else str(text))
                    cases.append(
                        (
                            row.key,
                            f"{name}: {label}",
                            row.method,
                            row.rule,
                            form,
                            AUTH,
                            "application/x-www-form-urlencoded",
                        )
                    )
                else:
                    cases.append((row.key, f"{name}: {label}", row.method, row.rule, json_body(body), AUTH, None))
    return cases


BODIES = {
    "not JSON": ("not json at all", None),
    "JSON array": ("[1, 2]", None),
    "JSON string": ('"hello"', None),
    "invalid UTF-8": (b'{"text": "\xff\xfe"}', None),
    "empty": ("", None),
    "too large": ("{" + '"text": "' + "x" * 200_000 + '"}', None),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, None),
    "a form": ("text=hello&input=split/x.csv", "application/x-www-form-urlencoded"),
    "text/plain": ('{"text": "hello"}', "text/plain"),
    "multipart": (
        "--b\r\nContent-Disposition: form-data; name=text\r\n\r\nhi\r\n--b--\r\n",
        "multipart/form-data; boundary=b",
    ),
}
PATH_PARAMETERS = {
    "job_id": [
        "nope",
        "train-20200101T000000Z-abcdef01",
        "..%2f..%2fetc%2fpasswd",
        "x" * 300,
        "%ff%fe",
        "%00",
        "%ed%a0%80",
    ],
    "part": ["nope", "..%2fx", "x" * 300, "%ff", "%00"],
}


def route_cases(served) -> list[tuple]:
    """Whole-body, path-parameter, method and auth cases of every endpoint."""
    cases = []
    for row in endpoints.ENDPOINTS:
        if row.parameters:
            for parameter in row.parameters:
                for value in PATH_PARAMETERS[parameter]:
                    path = row.rule.replace(f"<{parameter}>", value)
                    for label, headers in (("token", AUTH), ("no token", {})):
                        cases.append(
                            (row.key, f"{parameter}={value[:20]} ({label})", row.method, path, None, headers, None)
                        )
            continue
        cases.append((row.key, "DELETE", "DELETE", row.rule, None, AUTH, None))
        odd_query = row.rule + "?x=%ff&y=%00&" + "z" * 2000
        cases.append((row.key, "odd query", row.method, odd_query, "[]" if row.method == "POST" else None, AUTH, None))
        if row.method == "POST" and endpoints.request_fields(row):
            for label, (body, content_type) in BODIES.items():
                if row.rule in ("/prepare", "/train") and label == "empty":
                    continue  # {}: a valid request, a whole stage (the normal pass makes them)
                cases.append((row.key, f"body: {label}", "POST", row.rule, body, AUTH, content_type))
        if row.auth == endpoints.TOKEN:
            cases.append((row.key, "no token", row.method, row.rule, "{}", {}, None))
            cases.append((row.key, "wrong token", row.method, row.rule, "{}", {"Authorization": "Bearer nope"}, None))
            cases.append((row.key, "not bearer", row.method, row.rule, "{}", {"Authorization": f"Basic {TOKEN}"}, None))
    return cases


def test_hostile_sweep_of_every_route_answers_4xx_json_never_5xx(served):
    cases = field_cases(served) + route_cases(served)
    assert len(cases) >= MIN_CASES, len(cases)
    statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    timings = []
    for key, label, method, path, body, headers, content_type in cases:
        start = time.perf_counter()
        response = send(served, method, path, body, headers, content_type)
        timings.append((time.perf_counter() - start, key, label, response.status_code))
        statuses[key][response.status_code] += 1
        problem = None
        if response.status_code >= 500:
            problem = "5xx"
        elif response.status_code >= 400:
            payload = response.get_json(silent=True)
            if response.mimetype != "application/json" or not isinstance(payload, dict):
                problem = f"not JSON ({response.mimetype})"
            elif payload.get("status") != response.status_code or not payload.get("message"):
                problem = "no message"
        if problem:
            failures.append(
                f"{key} [{label}]: {response.status_code} {problem} {response.get_data(as_text=True)[:200]}"
            )
    rows = [f"{'route':<28} {'cases':>5}  statuses"]
    for key in sorted(statuses):
        counts = ", ".join(f"{code} × {n}" for code, n in sorted(statuses[key].items()))
        rows.append(f"{key:<28} {sum(statuses[key].values()):>5}  {counts}")
    total = collections.Counter()
    for counter in statuses.values():
        total.update(counter)
    rows.append(f"{'all routes':<28} {len(cases):>5}  " + ", ".join(f"{c} × {n}" for c, n in sorted(total.items())))
    print("\nhostile sweep\n" + "\n".join(rows))
    slowest = sorted(timings, reverse=True)[:8]
    print("slowest cases: " + "; ".join(f"{k} [{label[:30]}] {code} {t:.1f} s" for t, k, label, code in slowest))
    assert not failures, "\n".join(failures)
    assert set(statuses) == {row.key for row in endpoints.ENDPOINTS}  # every route swept


def normal_pass(served) -> None:
    """Every route used as intended (success answers), with and without the token."""
    job = served.job["id"]
    for headers in (AUTH, {}):
        send(served, "GET", "/", headers=headers)
        send(served, "POST", "/", "text=hello there", headers, "application/x-www-form-urlencoded")
        for path in ("/api", "/health", "/models", "/metrics", "/monitoring", f"/jobs/{job}"):
            send(served, "GET", path, headers=headers)
        send(served, "POST", "/score", '{"text": "WIN a prize, call now"}', headers)
    for part in ("batch", "evaluation"):  # public pages, the same with the token (seconds each: rendered once)
        send(served, "GET", f"/monitoring/{part}.html")
    send(served, "POST", "/score", json.dumps({"input": served.prepared["outputs"]["scoring"]}), AUTH)
    send(served, "POST", "/evaluate", json.dumps({"input": served.scored["output"]}), AUTH)
    send(served, "POST", "/prepare", "{}", AUTH)
    send(served, "POST", "/models/reload", "{}", AUTH)
    failed = send(served, "POST", "/train", json.dumps({"min_aucpr": 1.0}), AUTH)  # a gate that fails: a full record
    if failed.status_code == 202:
        wait_job(served.client, failed.json["job"])
        send(served, "GET", f"/jobs/{failed.json['job']}", headers=AUTH)
        send(served, "GET", f"/jobs/{failed.json['job']}")


def answer_strings(response) -> str:
    """The answer as the caller reads it: a JSON answer's strings and keys decoded, a page unescaped."""
    text = response.get_data(as_text=True)
    payload = response.get_json(silent=True)
    if payload is not None:
        return json.dumps(payload, ensure_ascii=False)
    return html.unescape(text)


def test_no_answer_leaks_paths_hosts_pids_or_texts_the_caller_did_not_send(served):
    if not served.answers:
        test_hostile_sweep_of_every_route_answers_4xx_json_never_5xx(served)
    normal_pass(served)
    statuses = collections.Counter(r.status_code for *_, r in served.answers)
    assert statuses[200] >= 20, statuses  # the success answers are swept too
    top_level = {name for name in os.listdir("/") if name}
    absolute = re.compile(r"(?<![\w.~:/-])/([\w.-]+)/[^\s'\"<>|,;()\[\]{}]*")
    host = socket.gethostname()
    marks = {
        "the store's folder": re.compile(re.escape(str(served.root))),
        "the host name": re.compile(rf"(?<![\w.-]){re.escape(host)}(?![\w-])"),
        "the process id": re.compile(rf"\"pid\"|(?<![\w.]){os.getpid()}(?![\w.])"),
    }
    leaks = []
    for method, path, sent, response in served.answers:
        text = answer_strings(response)
        found = [name for name, pattern in marks.items() if pattern.search(text)]
        sent_text = sent.decode("utf-8", "replace")
        found += [
            f"absolute path {m.group(0)[:60]!r}"
            for m in absolute.finditer(text)
            if m.group(1) in top_level and m.group(0) not in sent_text  # a path the caller sent may be echoed
        ]
        found += [f"a text it did not send: {t[:40]!r}" for t in served.texts if t in text and t not in sent_text]
        if found:
            leaks.append(f"{method} {path[:60]} → {response.status_code}: {sorted(set(found))[:3]}")
    print(f"\nleak sweep: {len(served.answers)} answers scanned ({dict(sorted(statuses.items()))}), {len(leaks)} leaks")
    assert not leaks, "\n".join(leaks[:30])


def test_jobs_without_the_token_show_status_and_progress_only(served):
    public = served.client.get(f"/jobs/{served.job['id']}").json
    assert set(public) <= {"id", "kind", "status", "progress", "created_at", "started_at", "finished_at"}
    assert public["status"] == "succeeded" and public["progress"] == 1.0
    full = served.client.get(f"/jobs/{served.job['id']}", headers=AUTH).json
    assert full["result"]["model_version"] and "pid" not in full and "host" not in full
    assert "samples" not in full["result"]["gate"] or isinstance(full["result"]["gate"]["samples"], dict)
    assert "store" not in served.client.get("/api").json


def test_the_sweep_through_gunicorn_answers_the_same(served):
    """The field and route cases once more over real HTTP (a fresh connection each, as the project's client makes
    them), through the production server over the same stores: 0 × 5xx, every error JSON, no leak."""
    # bodies over the service's 64 KiB limit are left out here: the app answers 413 before reading them, and without
    # a lingering close the server's socket may reset before the client reads that answer (the proxy in front of
    # gunicorn, issue 22's slow-client part, buffers them); the test client's pass above covers the app's 413
    cases = [c for c in field_cases(served) + route_cases(served) if len(c[4] or "") <= web.DEFAULT_MAX_BYTES]
    statuses: collections.Counter = collections.Counter()
    failures, started = [], []
    host = socket.gethostname()
    with procs.serve(GUNICORN, cwd=PROJECT, env=served.env, timeout=120) as server:
        session = requests.Session()
        for key, label, method, path, body, headers, content_type in cases:
            data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
            sent = {"Content-Type": content_type or "application/json", "Connection": "close", **headers}
            try:
                response = session.request(method, server.url + path, data=data, headers=sent, timeout=60)
            except requests.ConnectionError as exc:
                failures.append(f"{key} [{label}]: no answer ({type(exc).__name__})")
                continue
            statuses[response.status_code] += 1
            text = response.text
            problem = "5xx" if response.status_code >= 500 else None
            if 400 <= response.status_code < 500:
                try:
                    payload = response.json()
                except ValueError:
                    payload = None
                if not isinstance(payload, dict) or not payload.get("message"):
                    problem = "not a JSON error"
            if str(served.root) in text or re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", text):
                problem = "leak"
            if problem:
                failures.append(f"{key} [{label}]: {response.status_code} {problem} {text[:200]}")
            if response.status_code == 202:
                started.append(response.json()["job"])
        for job in started:  # a training a case started ends while the server that runs it is up
            deadline = time.monotonic() + 300
            while session.get(f"{server.url}/jobs/{job}", timeout=30).json()["status"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline, f"job {job} did not end"
                time.sleep(0.5)
    print(f"\nthrough gunicorn: {len(cases)} cases, {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:30])
