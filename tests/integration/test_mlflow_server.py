"""The real MLflow tracking server on a free loopback port: register a model, read it back over the REST API."""

import sys

import pytest
import requests

from aml.mlops import tracking
from aml.ops import procs
from aml.spam import MODEL_NAME, models, stages


@pytest.fixture
def registered(tmp_path, toy_frame):
    """A temporary SQLite store holding one registered version with the alias ``champion``."""
    uri = tracking.new_store(tmp_path)
    with tracking.using(uri, experiment="server-test"):
        train = tracking.tracked(MODEL_NAME)(stages.train)
        out = train(models.tfidf_naive_bayes(), toy_frame(60, 0), toy_frame(30, 1), name="tfidf_naive_bayes")
        tracking.set_champion({out.version: out.metrics["validation"]["aucpr"]}, MODEL_NAME)
    return uri, out


def test_registered_models_through_rest_api(registered, tmp_path, monkeypatch):
    uri, out = registered
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
    ]
    # as aml.ops.teamstack.mlflow_server: no job runner (MLflow's GenAI jobs, seven more processes) or telemetry
    quiet = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with procs.serve(command, path="/health", timeout=120, env=quiet) as server:
        api = f"{server.url}/api/2.0/mlflow"
        reply = requests.get(f"{api}/registered-models/search", timeout=10)
        assert reply.status_code == 200
        found = reply.json()["registered_models"]
        assert [m["name"] for m in found] == [MODEL_NAME]
        assert found[0]["aliases"] == [{"alias": "champion", "version": out.version}]
        by_alias = requests.get(
            f"{api}/registered-models/alias",
            params={"name": MODEL_NAME, "alias": "champion"},
            timeout=10,
        ).json()["model_version"]
        assert by_alias["version"] == out.version and by_alias["run_id"] == out.run_id
        run = requests.get(f"{api}/runs/get", params={"run_id": by_alias["run_id"]}, timeout=10).json()["run"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert abs(metrics["validation_aucpr"] - out.metrics["validation"]["aucpr"]) < 1e-12

        # a team server works unchanged: MLFLOW_TRACKING_URI names it, the library reads the registry through it
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        assert tracking.tracking_uri() == server.url
        with tracking.using(tracking.tracking_uri(), experiment="server-test"):
            table = tracking.registered_aucpr(MODEL_NAME)
        assert table.loc[int(out.version), "aliases"] == "champion"
        assert table.loc[int(out.version), "validation_aucpr"] == pytest.approx(out.metrics["validation"]["aucpr"])
    assert not server.alive()
