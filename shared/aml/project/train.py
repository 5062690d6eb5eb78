"""The model stage (``POST /train``): the latest splits → :func:`aml.spam.stages.train` in RAM, tracked in MLflow →
registered in the model store (MLflow registry) → model validation (:func:`aml.spam.stages.validate`: overfit gap,
minimum AUCPR, the current champion, the behavioural bank, the out-of-domain set — its figures, and no more than
:data:`aml.spam.behaviour.OOD_HAM_TOLERANCE` of the out-of-domain ham the champion keeps blocked; logged to MLflow) → ``champion`` moves only on a pass →
``training/<run>/report.json`` (one :class:`~aml.project.run.StoreRun`).

A training that runs as a job of the service (``POST /train``) tags its MLflow run with the job id
(:data:`JOB_TAG`) when the run is created. A training killed half-way (``kill -9``, a lost host) cannot end its run
or finish its version: :func:`recover_crashed`, called when a serving process starts and before each training,
ends the runs of dead jobs as ``KILLED`` and tags the versions they registered ``crashed``, so the fallback never
serves them (:mod:`aml.mlops.registry`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from aml.core import modelstore
from aml.mlops import jobs, registry, tracking
from aml.mlops.datastore import DataStore, StoreError
from aml.project.prepare import Report, no_report
from aml.project.run import StoreRun, load_split
from aml.project.settings import StageError, TrainConfig
from aml.spam import stages

log = logging.getLogger("aml.project.train")

#: predicted-spam and predicted-ham validation messages the training report shows for eyeballing
VALIDATION_SAMPLES = 5
#: the MLflow run tag naming the service job that ran the training
JOB_TAG = "job_id"


def champion_model(name: str):
    """``(model, version)`` of the current champion, ``(None, None)`` when there is none, ``(None, version)`` when
    it cannot be loaded (the gate then compares with nothing and says so in the log)."""
    version = registry.champion_version(name)
    if version is None:
        return None, None
    try:
        return registry.load_version(name, version), version
    except Exception as exc:
        log.warning("the champion (version %s) cannot be loaded for comparison: %s", version, exc)
        return None, version


def champion_threshold(name: str, version: str | None) -> float | None:
    """The champion's served threshold (its ``threshold`` tag), ``None`` without a champion or a valid tag (the
    out-of-domain comparison then has nothing to compare with)."""
    if version is None:
        return None
    try:
        return float(registry._client().get_model_version(name, str(version)).tags["threshold"])
    except Exception as exc:
        log.warning("the champion (version %s) has no usable threshold tag: %s", version, exc)
        return None


def _tracked_fit(config: TrainConfig, champion, champion_version, data: dict, report: Report):
    """The function :func:`aml.mlops.tracking.tracked` runs inside the MLflow run: fit, validate against the
    champion, log the gate, tags and the Dockerfile. ``data``: ``version``, ``file`` and ``split_run``."""

    def fit_and_validate(model, df_train, df_val) -> stages.Trained:
        import mlflow

        trained = stages.train(
            model, df_train, df_val, min_precision=config.min_precision, name=config.model, params=config.params
        )
        report(0.6, "validating the model")
        trained.gate = stages.validate(
            trained.model,
            df_train,
            df_val,
            max_gap=config.max_gap,
            min_aucpr=config.min_aucpr,
            champion=champion,
            threshold=trained.threshold,
            samples=VALIDATION_SAMPLES,
            seed=config.seed,
            out_of_domain=True,
            champion_threshold=champion_threshold(config.registered_model, champion_version) if champion else None,
        )
        mlflow.log_dict(trained.gate, "validation/report.json")  # the whole report: checks, bank, samples
        mlflow.set_tags(
            {
                "data_version": data["version"],
                "data_file": data["file"],
                "split_run": data["split_run"],
                "gate_passed": str(trained.gate["passed"]),
                "gate_failed": ",".join(k for k, v in trained.gate["checks"].items() if not v["passed"]) or "none",
                "champion_before": str(champion_version),
            }
        )
        mlflow.log_metrics({f"gate_{k}": float(v["value"]) for k, v in trained.gate["checks"].items()})
        mlflow.log_param("threshold", trained.threshold)
        if config.dockerfile:
            mlflow.log_artifact(config.dockerfile)  # the course's reproducibility row: the image recipe
        return trained

    return fit_and_validate


def check_inputs(store: DataStore, config: TrainConfig) -> str:
    """The split run a training with ``config`` would read, checked before a job is queued: ``config.split`` (a
    :class:`~aml.project.settings.StageError` naming the field when the store has no such run) or the latest one
    (:class:`~aml.mlops.datastore.StoreNotFoundError` saying to call ``POST /prepare`` first when there is none).
    Returns the run id. A transformer model on a server without torch (the lean image) is a
    :class:`~aml.project.settings.StageError` too."""
    from aml.spam.models import missing_packages

    missing = missing_packages(config.model)
    if missing:
        raise StageError(
            f"model: {config.model!r} fine-tunes a transformer, which needs {' and '.join(missing)}; this server "
            "has no such package (its image is kept lean): train it where they are installed (the workspace's "
            "venv), or choose a TF-IDF model"
        )
    if config.split is None:
        return store.resolve_latest("split", "call POST /prepare first")
    missing = [name for name in stages.SPLITS if not store.exists(store.run_path("split", config.split, f"{name}.csv"))]
    if missing:
        runs = store.runs("split")[-3:]
        raise StageError(
            f"split: the data store has no split run {config.split!r} (files {missing} missing); the latest runs "
            f"are {runs} (null: the latest)"
        )
    return config.split


def public_result(result: dict) -> dict:
    """What ``GET /jobs/<id>`` shows of a training's ``result``: everything but message texts and server paths.
    The gate's sample predictions and failed behavioural-bank messages become counts (the texts stay in the store's
    ``training/<run>/report.json`` and MLflow's ``validation/report.json``); the export is named by its folder's
    name, not its place on the server."""
    out = dict(result)
    gate = dict(out.get("gate") or {})
    if "samples" in gate:
        samples = gate.pop("samples") or []
        gate["samples"] = {"count": len(samples), "correct": sum(bool(s.get("correct")) for s in samples)}
    behaviour = dict(gate.get("behaviour") or {})
    if "bank_failures" in behaviour:
        failures = behaviour.pop("bank_failures") or []
        by_category: dict[str, int] = {}
        for failure in failures:
            category = str(failure.get("category", "unknown"))
            by_category[category] = by_category.get(category, 0) + 1
        behaviour["bank_failures"] = {"count": len(failures), "by_category": by_category}
        gate["behaviour"] = behaviour
    if gate:
        out["gate"] = gate
    if out.get("export"):
        out["export"] = Path(out["export"]).name
    out["report"] = f"training/{out['run']}/report.json" if out.get("run") else None
    return out


def train(store: DataStore, config: TrainConfig | None = None, report: Report = no_report) -> dict:
    """The model stage: the latest splits → :func:`aml.spam.stages.train` tracked in MLflow (params, metrics, data
    and code versions, the Dockerfile) and registered → model validation (:func:`aml.spam.stages.validate` against
    the current champion, with the behavioural bank and sample predictions; its report logged to MLflow as
    ``validation/``) → promoted when it passes, exported as a model-store artefact (joblib) →
    ``training/<run>/report.json``.

    MLflow must be configured by the caller (:func:`aml.mlops.tracking.configure`). Returns ``{"run",
    "model_version", "promoted", "champion", "gate", "metrics", "threshold", "mlflow_run_id", "export"}``."""
    from aml.spam.models import make_model

    config = config or TrainConfig()
    split_run, frames = load_split(store, config.split)
    train_path = store.run_path("split", split_run, "train.csv")
    data = {"version": store.sha256(train_path), "file": store.location(train_path), "split_run": split_run}
    champion, champion_version = champion_model(config.registered_model)
    report(0.1, f"training {config.model} on split {split_run}")
    model = make_model(config.model, seed=config.seed, **config.params)
    # cloudpickle, not skops: the service is the only writer of its registry, and skops takes about a minute to save
    # a TF-IDF pipeline (see aml.mlops.tracking.tracked)
    fit = _tracked_fit(config, champion, champion_version, data, report)
    job = jobs.current_job()  # on the run from its creation: a killed training's run can be found and ended
    tracked = tracking.tracked(
        config.registered_model, serialization_format="cloudpickle", tags={JOB_TAG: job} if job else None
    )
    trained = tracked(fit)(model, frames["train"], frames["validation"])
    version = str(trained.version)
    registry.set_tags(
        config.registered_model,
        version,
        {
            "threshold": repr(trained.threshold),
            "data_version": data["version"],
            "split_run": split_run,
            "gate_passed": trained.gate["passed"],
        },
    )
    report(0.9, f"registered version {version}")
    promoted = bool(trained.gate["passed"])
    if promoted:
        registry.promote(config.registered_model, version)
    export = None
    if config.exports:
        meta = {"threshold": trained.threshold, "version": version, "data_version": data["version"]}
        target = Path(config.exports) / f"{config.registered_model}_{version}"
        export = str(modelstore.save_model(trained.model, target, {**meta, "model": config.model}))
    run = StoreRun(store, "training")
    for name in stages.SPLITS:
        run.record_input(name, store.run_path("split", split_run, f"{name}.csv"))
    result = {
        "run": run.id,
        "model_version": version,
        "promoted": promoted,
        "champion": version if promoted else champion_version,
        "gate": trained.gate,
        "metrics": trained.metrics,
        "threshold": trained.threshold,
        "mlflow_run_id": trained.run_id,
        "export": export,
        "split_run": split_run,
        "fit_seconds": round(trained.fit_seconds, 2),
    }
    run.write_json("report.json", result)
    run.write_lineage({"config": dataclasses.asdict(config), "model_version": version, "mlflow_run_id": trained.run_id})
    run.publish()
    report(1.0, f"version {version} {'promoted to champion' if promoted else 'registered, not promoted'}")
    return result


def _dead_job(service_jobs: jobs.Jobs, job_id: str | None) -> dict | None:
    """The record of job ``job_id`` when it has finished without succeeding (failed, interrupted included: a live
    job's record says running), else ``None`` (no job, a live one, a success, or a record that cannot be read)."""
    if not job_id:
        return None
    try:
        record = service_jobs.get(job_id)
    except (jobs.JobNotFoundError, StoreError) as exc:
        log.warning("the training job %s of an MLflow run cannot be read: %s", job_id, exc)
        return None
    return record if record.get("status") == jobs.FAILED else None


def recover_crashed(service_jobs: jobs.Jobs, name: str) -> dict:
    """Clean up after trainings whose job died: each MLflow run of the active experiment still ``RUNNING`` whose
    job (its :data:`JOB_TAG`) has failed is ended as ``KILLED`` (its process can no longer end it), and each
    version of ``name`` never promoted whose run's job failed is tagged ``crashed``
    (:func:`aml.mlops.registry.mark_crashed`), with the job's error as the reason. A job still running (its
    process holds its lock) is left alone, so this is safe while other workers train. Idempotent; returns
    ``{"runs": [run ids ended], "versions": [versions tagged]}``."""
    import mlflow

    client = mlflow.MlflowClient()
    ended, tagged = [], []
    for run in mlflow.search_runs(filter_string="attributes.status = 'RUNNING'", output_format="list"):
        record = _dead_job(service_jobs, run.data.tags.get(JOB_TAG))
        if record is not None:
            client.set_tag(run.info.run_id, registry.CRASHED, "true")
            client.set_tag(run.info.run_id, registry.CRASHED_REASON, str(record.get("error", ""))[:500])
            client.set_terminated(run.info.run_id, status="KILLED")
            ended.append(run.info.run_id)
            log.warning("MLflow run %s of the dead job %s ended as KILLED", run.info.run_id, record["id"])
    for mv in client.search_model_versions(f"name = '{name}'"):
        tags = dict(mv.tags)
        if registry.is_crashed(tags) or registry.PROMOTED_AT in tags or not mv.run_id:
            continue
        try:
            job_id = client.get_run(mv.run_id).data.tags.get(JOB_TAG)
        except Exception as exc:  # a run deleted from the tracking store: nothing links the version to a job
            log.warning("the run of version %s of %s cannot be read: %s", mv.version, name, exc)
            continue
        record = _dead_job(service_jobs, job_id)
        if record is not None:
            registry.mark_crashed(name, str(mv.version), f"job {record['id']}: {record.get('error', 'failed')}")
            tagged.append(str(mv.version))
            log.warning("version %s of %s was registered by the dead job %s: tagged crashed", mv.version, name, job_id)
    return {"runs": ended, "versions": tagged}
