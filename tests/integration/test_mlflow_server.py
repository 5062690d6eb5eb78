"""The real MLflow tracking server on a free loopback port: register a model, read it back over the REST API."""

import sys

import requests

from aml import models, procs, tracking

from ..unit.test_evaluation import toy_frame


def test_registered_models_through_rest_api(tmp_path):
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.configure(db, experiment="server-test", artifact_root=tmp_path / "artifacts")
    splits = {"train": toy_frame(60, 0), "validation": toy_frame(30, 1)}
    out = tracking.train("tfidf_naive_bayes", models.tfidf_naive_bayes(), splits)
    tracking.set_champion({out.version: out.metrics["aucpr"]})

    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        db,
        "--default-artifact-root",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
    ]
    with procs.serve(command, path="/health", timeout=120) as server:
        reply = requests.get(f"{server.url}/api/2.0/mlflow/registered-models/search", timeout=10)
        assert reply.status_code == 200
        found = reply.json()["registered_models"]
        assert [m["name"] for m in found] == [tracking.REGISTERED_MODEL]
        assert found[0]["aliases"] == [{"alias": "champion", "version": out.version}]
        version = requests.get(
            f"{server.url}/api/2.0/mlflow/model-versions/get",
            params={"name": tracking.REGISTERED_MODEL, "version": out.version},
            timeout=10,
        ).json()
        run = requests.get(
            f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": version["model_version"]["run_id"]}, timeout=10
        ).json()["run"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert abs(metrics["aucpr"] - out.metrics["aucpr"]) < 1e-12
