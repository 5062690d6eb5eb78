"""The clean-up after a crashed training (:func:`aml.project.train.recover_crashed`) on a real MLflow store and
real job records: a child process runs a training job that registers a version and is then killed with SIGKILL
inside its MLflow run; the next start ends that run as KILLED and tags the version ``crashed``, and leaves a live
job's run and a finished job's version alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from aml.mlops import jobs, registry, tracking
from aml.mlops.datastore import DataStore
from aml.project import train

NAME = "crash-test"

#: a training job that registers a version inside its MLflow run, then dies with SIGKILL before it ends the run
CRASHING_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from aml.mlops import jobs, tracking
    from aml.mlops.datastore import DataStore

    store_url, locks, uri, name, job_tag = sys.argv[1:6]
    tracking.configure(uri, experiment="test")
    service_jobs = jobs.Jobs(DataStore(store_url), locks)

    def fit(report):
        with mlflow.start_run(tags={job_tag: jobs.current_job()}):
            model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=[], serialization_format="cloudpickle")
            tracking.register(info.model_uri, name)
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no exception, no finally, nothing more written

    record = service_jobs.submit("train", fit)
    print(record["id"], flush=True)
    service_jobs.wait(record["id"], timeout=120)
    """
)


def log_version(job_id: str | None) -> tuple[str, str]:
    """A tiny model logged in a finished run tagged with ``job_id``, registered under :data:`NAME`; returns
    ``(run id, version)``."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    with mlflow.start_run(tags={train.JOB_TAG: job_id} if job_id else None) as run:
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=[], serialization_format="cloudpickle")
    return run.info.run_id, tracking.register(info.model_uri, NAME)


def test_recover_crashed_ends_a_killed_trainings_run_and_tags_its_version(mlflow_store, tmp_path):
    import mlflow

    store, locks = DataStore(tmp_path / "store"), tmp_path / "locks"
    service_jobs = jobs.Jobs(store, locks)
    done = service_jobs.submit("train", lambda report: {})
    service_jobs.wait(done["id"], timeout=10)
    _, finished_version = log_version(done["id"])  # 1: a finished job's version, never promoted (gate failed)
    _, promoted = log_version(None)  # 2: registered outside the service, promoted
    registry.promote(NAME, promoted)

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, store.url, str(locks), mlflow_store, NAME, train.JOB_TAG],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    crashed_job = child.stdout.split()[0]
    (crashed_run,) = mlflow.search_runs(filter_string=f"tags.{train.JOB_TAG} = '{crashed_job}'", output_format="list")
    assert crashed_run.info.status == "RUNNING"  # the dead process could not end it
    crashed_version = registry.versions(NAME)[0]
    assert crashed_version == "3"

    started, release = threading.Event(), threading.Event()

    def live_training(report):  # a training under way in this process: its run must be left alone
        started.set()
        assert release.wait(60)
        return {}

    live = service_jobs.submit("train", live_training)  # holds the train lock the crashed job held
    assert started.wait(10)
    live_run = mlflow.MlflowClient().create_run(
        mlflow.get_experiment_by_name("test").experiment_id, tags={train.JOB_TAG: live["id"]}
    )
    try:
        recovered = train.recover_crashed(service_jobs, NAME)
        assert recovered == {"runs": [crashed_run.info.run_id], "versions": [crashed_version]}
        run = mlflow.get_run(crashed_run.info.run_id)
        assert run.info.status == "KILLED" and run.data.tags[registry.CRASHED] == "true"
        assert run.data.tags[registry.CRASHED_REASON] == jobs.INTERRUPTED
        tags = mlflow.MlflowClient().get_model_version(NAME, crashed_version).tags
        assert tags[registry.CRASHED] == "true" and crashed_job in tags[registry.CRASHED_REASON]
        assert registry.CRASHED not in mlflow.MlflowClient().get_model_version(NAME, finished_version).tags
        assert mlflow.get_run(live_run.info.run_id).info.status == "RUNNING"
        assert service_jobs.get(crashed_job)["status"] == jobs.FAILED
        assert train.recover_crashed(service_jobs, NAME) == {"runs": [], "versions": []}  # idempotent
        assert registry.candidates(NAME) == ("champion", ["2", "1"])  # the crashed version 3: never a candidate
    finally:
        release.set()
        service_jobs.wait(live["id"], timeout=10)


@pytest.mark.parametrize("job_id", [None, "", "train-20260101T000000Z-0123abcd", "not a job"])
def test_runs_without_a_dead_job_are_left_running(mlflow_store, tmp_path, job_id):
    import mlflow

    experiment = mlflow.get_experiment_by_name("test").experiment_id
    run = mlflow.MlflowClient().create_run(experiment, tags={train.JOB_TAG: job_id} if job_id is not None else None)
    assert train.recover_crashed(jobs.Jobs(DataStore(tmp_path / "store"), tmp_path / "locks"), NAME) == {
        "runs": [],
        "versions": [],
    }  # no record of that job in this store (another service's, or none): not this service's to end
    assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"
