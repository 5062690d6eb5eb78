"""The service's handlers (:mod:`aml.project.handlers`) called on their own, inside a request of an app over empty
stores: each is a named function with its errors as HTTP exceptions (the routing is ``test_endpoints.py``'s, the
whole service over HTTP ``test_api.py``'s)."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import BadRequest, NotFound

from aml.mlops import tracking
from aml.mlops.datastore import DataStore, StoreError, StorePathError
from aml.project import api, handlers
from aml.project.settings import StageError
from aml.spam.sms import DataValidationError


@pytest.fixture
def app(tmp_path):
    with tracking.using(tracking.new_store(tmp_path / "mlflow"), experiment="test-handlers"):
        yield api.create_app(DataStore(tmp_path / "data"), token="t" * 32, lock_dir=tmp_path / "locks", refresh_s=0)


def test_handlers_answer_inside_a_request(app):
    with app.test_request_context("/health"):
        assert handlers.health().get_json()["status"] == "no_model"
    with app.test_request_context("/api"):
        assert "POST /prepare" in handlers.api_description().get_json()["endpoints"]
    with app.test_request_context("/score", method="POST", json={"text": "hello"}):
        with pytest.raises(handlers.ServiceUnavailable, match="call POST /prepare"):
            handlers.score()
    with app.test_request_context("/score", method="POST", json={"id": "m1"}):
        with pytest.raises(BadRequest, match='"text" is missing'):
            handlers.score()
    with app.test_request_context("/jobs/nope"):
        with pytest.raises(NotFound):
            handlers.job_status("nope")


def test_requests_cannot_set_server_side_fields(app):
    with app.test_request_context("/prepare", method="POST", json={"source": "/etc/passwd"}):
        with pytest.raises(BadRequest, match="only be set in the service's configuration files"):
            handlers.prepare()
    with app.test_request_context("/train", method="POST", json={"exports": "/tmp"}):
        with pytest.raises(BadRequest, match="exports"):
            handlers.train()


@pytest.mark.parametrize(
    ("error", "answer"),
    [
        (StorePathError("bad path"), BadRequest),
        (FileNotFoundError("no such file"), NotFound),
        (DataValidationError("bad line"), handlers.Unprocessable),
        (StageError("bad config"), BadRequest),
        (StoreError("store refused"), handlers.Unprocessable),
    ],
)
def test_stage_errors_become_http_answers(error, answer):
    def stage():
        raise error

    with pytest.raises(answer):
        handlers.stage_errors(stage)


def test_stage_errors_cut_server_paths_and_make_a_missing_dataset_a_503(caplog):
    from aml.core.datasets import ChecksumError, DatasetNotFoundError

    def missing_source():
        raise FileNotFoundError("raw data not found: /srv/aml/config/SMSSpamCollection")

    with pytest.raises(NotFound) as caught:
        handlers.stage_errors(missing_source)
    assert "/srv" not in caught.value.description and "SMSSpamCollection" in caught.value.description
    for error in (DatasetNotFoundError("/home/x/data does not hold dataset 'sms_spam'"), ChecksumError("bad /a/b")):

        def stage(error=error):
            raise error

        with (
            caplog.at_level("ERROR", logger="aml.project.handlers"),
            pytest.raises(handlers.ServiceUnavailable) as caught,
        ):
            handlers.stage_errors(stage)
        assert "raw dataset is unavailable" in caught.value.description and "/home/x" not in caught.value.description
        assert "/home/x" in caplog.text or "/a/b" in caplog.text  # where it looked: in the server's log


def test_redact_paths_cuts_absolute_paths_to_their_last_component():
    assert handlers.redact_paths("FileNotFoundError: /srv/aml/store/split/x/train.csv not found") == (
        "FileNotFoundError: …/train.csv not found"
    )
    assert handlers.redact_paths("OSError: [Errno 2] '/etc/passwd'") == "OSError: [Errno 2] '…/passwd'"
    kept = "split/x/test.csv, s3://bucket/data/x.csv, https://host/a/b, /train, 1/2"
    assert handlers.redact_paths(kept) == kept


def test_public_job_shows_status_without_the_token_and_no_server_details_with_it():
    record = {
        "id": "train-20260101T000000Z-0123abcd",
        "kind": "train",
        "status": "failed",
        "progress": 0.5,
        "message": "training on split x",
        "pid": 4242,
        "host": "server-7",
        "created_at": "t",
        "params": {"model": "m"},
        "error": "FileNotFoundError: /srv/store/split/x/train.csv",
    }
    public = handlers.public_job(record, full=False)
    assert public == {"id": record["id"], "kind": "train", "status": "failed", "progress": 0.5, "created_at": "t"}
    full = handlers.public_job(record, full=True)
    assert "pid" not in full and "host" not in full and full["params"] == {"model": "m"}
    assert full["error"] == "FileNotFoundError: …/train.csv" and record["pid"] == 4242  # the record is untouched


def test_api_description_does_not_show_the_store(app):
    with app.test_request_context("/api"):
        body = handlers.api_description().get_json()
    assert "store" not in body and str(app.extensions["aml"]["store"].root) not in str(body)
