"""The endpoint table (:mod:`aml.project.endpoints`) is the one source of the service's routes, auth marks,
``GET /api``, the client's methods and the README's table: the app serves exactly its rows, the README holds exactly
its table, and a dummy endpoint added to a test app shows up in all of them."""

from __future__ import annotations

import pytest
from flask import jsonify

from aml.core import config
from aml.devtools import testenv
from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.project import api, client, endpoints, handlers
from aml.project.endpoints import ENDPOINTS, STORE_PATH, Endpoint, request_fields

TOKEN = "endpoints-token-" + "q" * 16


def echo(word: str):
    """A dummy endpoint: the word and the JSON body back."""
    return jsonify({"echo": word, "body": handlers.json_body()})


DUMMY = Endpoint("POST", "/echo/<word>", echo, "echo a word and the body", endpoints.TOKEN, ("echo",))


@pytest.fixture
def dummy_url(tmp_path):
    """A test app whose table is the service's plus :data:`DUMMY`, served on a loopback port."""
    with tracking.using(tracking.new_store(tmp_path / "mlflow"), experiment="test-endpoints"):
        app = api.create_app(
            DataStore(tmp_path / "data"),
            token=TOKEN,
            lock_dir=tmp_path / "locks",
            refresh_s=0,
            table=[*ENDPOINTS, DUMMY],
        )
        with testenv.serve_in_thread(app) as url:
            yield url


def test_a_new_endpoint_is_one_handler_and_one_row(dummy_url):
    table = [*ENDPOINTS, DUMMY]
    Client = client.client_class(table)
    described = Client(dummy_url).call("GET", "/api")["endpoints"]
    assert described["POST /echo/<word>"] == "echo a word and the body (token)"
    assert Client(dummy_url, TOKEN).echo("hello", n=1) == {"echo": "hello", "body": {"n": 1}}
    with pytest.raises(client.ServiceError, match="HTTP 401"):
        Client(dummy_url).echo("hello")  # the row's auth mark routes it behind the token
    assert "| `POST /echo/<word>` 🔒 | echo a word and the body |" in endpoints.markdown_table(table)
    assert "``POST /echo/<word>``" in endpoints.rst_table(table)
    assert not hasattr(client.SystemClient, "echo")  # the service's own client is unchanged


def test_the_app_serves_exactly_the_table(tmp_path):
    with tracking.using(tracking.new_store(tmp_path / "mlflow"), experiment="test-endpoints"):
        app = api.create_app(DataStore(tmp_path / "data"), token=TOKEN, lock_dir=tmp_path / "locks", refresh_s=0)
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(row.method, row.rule) for row in ENDPOINTS}
    assert set(app.test_client().get("/api").json["endpoints"]) == {row.key for row in ENDPOINTS}


def test_every_row_has_its_handler_and_client_methods():
    for row in ENDPOINTS:
        assert callable(getattr(handlers, row.handler)), row
        for name in row.client:
            assert callable(getattr(client.SystemClient, name, None)), (row.key, name)
    named = {name for row in ENDPOINTS for name in row.client}
    public = {name for name in vars(client.SystemClient) if not name.startswith("_")}
    assert public - named == {"call", "wait"}  # every other method of the client is an endpoint's


def test_the_readme_table_is_the_endpoint_table():
    readme = (config.REPO_ROOT / "project" / "README.md").read_text(encoding="utf-8")
    assert endpoints.readme_table(readme) == endpoints.markdown_table(), (
        "project/README.md's endpoint table differs from aml.project.endpoints: paste the output of "
        "`python -m aml.project.endpoints` between its markers"
    )


def test_the_module_documentation_carries_the_table():
    assert endpoints.rst_table() in endpoints.__doc__
    assert all(f"``{row.key}``" in endpoints.__doc__ for row in ENDPOINTS)


def test_rows_are_checked():
    with pytest.raises(ValueError, match="auth must be one of"):
        Endpoint("GET", "/x", "x", "x", auth="admin")
    assert Endpoint("GET", "/jobs/<string:job_id>", "job_status", "").key == "GET /jobs/<job_id>"


def test_request_fields_come_from_the_rows_and_their_stage_configurations():
    rows = {row.key: row for row in ENDPOINTS}
    assert request_fields(rows["POST /prepare"]) == {
        "raw": STORE_PATH,
        "seed": "integer",
        "fractions": "array",
        "data_tests": "boolean",
    }  # "source" only the configuration files set
    train = request_fields(rows["POST /train"])
    assert train["params"] == "object" and train["split"] == "string or null" and train["min_aucpr"] == "number"
    assert not {"registered_model", "exports", "dockerfile"} & set(train)
    assert request_fields(rows["POST /score"])["input"] == STORE_PATH and request_fields(rows["GET /health"]) == {}
    assert rows["POST /"].body == "form" and rows["GET /jobs/<job_id>"].parameters == ("job_id",)


def test_field_types_are_checked():
    with pytest.raises(ValueError, match="field types"):
        Endpoint("POST", "/x", "x", "", fields=(("a", "str"),))
