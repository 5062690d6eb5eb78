"""The reward stage (``POST /evaluate``): scored, labelled data → :func:`aml.spam.stages.evaluate` at the threshold it
was scored with → ``evaluations/<run>/metrics.json``, and the evaluation's monitoring (``monitoring.json``:
performance against the validation interval, its history, bias by slice, champion vs challenger;
:mod:`aml.project.monitoring`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import pandas as pd

from aml.mlops.datastore import DataStore
from aml.project.run import StoreRun, read_frame
from aml.project.serving import ServingModel, reference_for
from aml.project.settings import EvaluateConfig, StageError
from aml.spam import sms, stages

log = logging.getLogger("aml.project.evaluate")

METRICS_FILE = "metrics.json"


def _scored_texts(store: DataStore, input_path: str, df: pd.DataFrame) -> pd.Series | None:
    """The texts of scored rows, for the slices: the file's ``text`` column, else the scoring input its lineage
    names (a ``predictions/<run>/`` file), matched by ``id``; ``None`` when neither is available."""
    if stages.TEXT in df.columns:
        return df[stages.TEXT].astype("string")
    parts = input_path.split("/")
    if len(parts) != 3 or parts[0] != "predictions" or stages.ID not in df.columns:
        return None
    try:
        source = store.read_lineage("predictions", parts[1])["inputs"]["data"]["path"]
        scored = stages.prepare_scoring_data(read_frame(store, source)).set_index(stages.ID)[stages.TEXT]
    except (KeyError, FileNotFoundError, ValueError) as exc:
        log.warning("no texts for the slices of %s: %s", input_path, exc)
        return None
    texts = df[stages.ID].astype("string").map(scored)
    return None if texts.isna().any() else texts


def _monitor_evaluation(
    store: DataStore, run: StoreRun, input_path: str, df: pd.DataFrame, models: Callable[[str], ServingModel] | None
) -> dict:
    """Write ``evaluations/<run>/monitoring.json`` (:func:`aml.project.monitoring.evaluation_report`) and
    return the record; a monitoring failure is logged and reported, never fails the evaluation."""
    from aml.mlops.experiments import CHAMPION
    from aml.project import monitoring

    try:
        rows = df[df["arm"] == CHAMPION] if "arm" in df.columns else df
        version = str(rows["model_version"].iloc[0]) if "model_version" in rows.columns else None
        reference = None
        if version and models is not None:
            try:
                reference = reference_for(store, models(version))
            except Exception as exc:  # e.g. the version was deleted: slices and history still help
                log.warning("no monitoring reference for version %s: %s", version, exc)
        texts = _scored_texts(store, input_path, df)
        frame = df if texts is None else df.assign(**{stages.TEXT: texts.to_numpy()})
        record = monitoring.evaluation_report(reference, frame, monitoring.history(store))
        run.write_json(monitoring.EVALUATION_FILE, record)
    except Exception as exc:
        log.exception("monitoring of %s failed", run)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return record


def evaluate(
    store: DataStore,
    input_path: str,
    config: EvaluateConfig | None = None,
    models: Callable[[str], ServingModel] | None = None,
) -> dict:
    """The reward stage: scored, labelled data (a predictions file with ``y`` or ``label``) →
    :func:`aml.spam.stages.evaluate` at the threshold it was scored with → ``evaluations/<run>/metrics.json``, and
    the evaluation's monitoring (``monitoring.json``: performance against the validation interval, its
    history, bias by slice, champion vs challenger when the file holds an experiment; ``models(version)`` gives
    the scoring model for the reference, ``None``: no performance alert). For an A/B file the ``metrics`` are the
    champion arm's. Returns ``{"metrics", "output", "run", "count", "monitoring"}``."""
    from aml.mlops.experiments import CHAMPION

    config = config or EvaluateConfig()
    store.check_path(input_path)
    run = StoreRun(store, "evaluations")
    df = run.read_csv(
        input_path, record="scored", dtype={stages.ID: "string", "label": "string", "model_version": "string"}
    )
    if stages.TARGET not in df.columns and "label" in df.columns:
        df[stages.TARGET] = (df["label"] == "spam").astype(int)
    missing = [c for c in (stages.TARGET, stages.PROPENSITY, stages.PREDICTION) if c not in df.columns]
    if missing:
        raise StageError(
            f"{input_path} is not scored, labelled data: columns {missing} are missing (score a labelled file, e.g. "
            "split/<run>/test.csv, with POST /score first)"
        )
    served = df[df["arm"] == CHAMPION].copy() if "arm" in df.columns else df
    if "threshold" in served.columns and served["threshold"].nunique() == 1:
        served.attrs["threshold"] = float(served["threshold"].iloc[0])
    try:
        metrics = stages.evaluate(served, config.metrics)
    except ValueError as exc:  # e.g. predictions that do not follow the threshold column
        raise sms.DataValidationError(f"{input_path}: {exc}") from None
    versions = sorted(df["model_version"].astype(str).unique()) if "model_version" in df.columns else []
    output = run.write_json(METRICS_FILE, {"metrics": metrics, "count": len(df), "model_versions": versions})
    monitoring = _monitor_evaluation(store, run, input_path, df, models) if "threshold" in df.columns else None
    run.write_lineage({"config": dataclasses.asdict(config)})
    run.publish()
    return {"metrics": metrics, "output": output, "run": run.id, "count": len(df), "monitoring": monitoring}
