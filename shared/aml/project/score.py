"""Batch scoring (``POST /score`` with an ``input``): a stored CSV → the serving model's propensities and
predictions (with an experiment's challenger routed by :class:`aml.project.serving.Router`, the same router online
scoring uses) → ``predictions/<run>/predictions.csv``, the batch's drift report (:mod:`aml.project.monitoring`),
then the take-down list (:func:`aml.project.takedown.takedown`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from aml.core import metrics as _metrics
from aml.mlops import experiments
from aml.mlops.datastore import DataStore
from aml.project.run import StoreRun
from aml.project.serving import Router, ServingModel, reference_for
from aml.project.settings import ScoreConfig
from aml.project.takedown import PREDICTIONS_FILE, takedown
from aml.spam import stages
from aml.spam.sms import DataValidationError

log = logging.getLogger("aml.project.score")


def monitor_batch(store: DataStore, model: ServingModel, run: StoreRun, texts, propensity) -> dict:
    """Write the batch's drift record into ``predictions/<run>/drift.json`` (its page is rendered when asked for,
    :func:`aml.project.monitoring.page`) and return its summary (``drift``, ``drifted``, ``report``); a monitoring
    failure is logged and reported, never fails the scoring."""
    from aml.project import monitoring

    try:
        reference = reference_for(store, model)
        report = monitoring.batch_report(reference, texts, propensity)
        record = monitoring.batch_record(report, reference, len(texts))
        path = run.write_json(monitoring.BATCH_FILE, record)
    except Exception as exc:  # monitoring must not take scoring down: say what failed
        log.exception("monitoring of %s failed", run)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"drift": record["drift"], "drifted": record["drifted"], "report": path}


def _experiment(router: Router, model: ServingModel, challenger: ServingModel, ids, texts, propensity) -> tuple:
    """Score the challenger's part of the batch: ``(propensity, threshold, version, extra columns, summary)``."""
    threshold = np.full(len(texts), model.threshold)
    version = np.full(len(texts), model.version, dtype=object)
    if router.shadow:
        shadow = challenger.propensities(texts)
        extra = {
            "challenger_propensity": shadow,
            "challenger_prediction": _metrics.apply_threshold(shadow, challenger.threshold),
            "challenger_threshold": challenger.threshold,
            "challenger_version": challenger.version,
        }
        agree = float(np.mean(extra["challenger_prediction"] == _metrics.apply_threshold(propensity, model.threshold)))
        return (
            propensity,
            threshold,
            version,
            extra,
            {"mode": "shadow", "challenger_version": challenger.version, "agreement": agree},
        )
    to_challenger = router.to_challenger(ids)
    if to_challenger.any():
        propensity = propensity.copy()
        propensity[to_challenger] = challenger.propensities(texts[to_challenger])
    threshold[to_challenger] = challenger.threshold
    version[to_challenger] = challenger.version
    extra = {"arm": np.where(to_challenger, experiments.CHALLENGER, experiments.CHAMPION)}
    summary = {
        "mode": "ab",
        "challenger_version": challenger.version,
        "share": router.share,
        "challenger_rows": int(to_challenger.sum()),
    }
    return propensity, threshold, version, extra, summary


def score_batch(
    store: DataStore,
    model: ServingModel,
    input_path: str,
    config: ScoreConfig | None = None,
    challenger: ServingModel | None = None,
) -> dict[str, Any]:
    """Batch scoring: the CSV at ``input_path`` (a ``text`` column; ``id``, ``label``/``y`` kept when present) →
    ``predictions/<run>/predictions.csv`` (``id``, ``propensity``, ``prediction``, ``threshold``,
    ``model_version`` and the labels if any), its drift report (``drift.json``, :mod:`aml.project.monitoring`, when
    ``config.monitoring``), then the take-down list (:func:`aml.project.takedown.takedown`).

    With ``challenger`` (the model of ``config.challenger``): ``shadow`` adds ``challenger_propensity``,
    ``challenger_prediction``, ``challenger_threshold`` and ``challenger_version`` (never used for the predictions
    or the take-down list); ``ab`` scores the challenger's arm with the challenger and records each row's ``arm``.
    Returns ``{"output", "count", "spam", "run", "model_version", "actions", "monitoring", "experiment"}``."""
    config = config or ScoreConfig()
    router = Router.from_config(config)
    start = time.perf_counter()
    run = StoreRun(store, "predictions")
    df = stages.prepare_scoring_data(run.read_frame(input_path, record="data"))
    if df.empty:
        raise DataValidationError(f"{input_path} holds no messages to score (an empty batch: a header and no rows)")
    texts = df[stages.TEXT]
    propensity = model.propensities(texts)
    if challenger is not None and challenger.version == model.version:
        log.info("the challenger is the serving version %s: no experiment", model.version)
    if challenger is not None and router.active(model):
        propensity, threshold, version, extra, experiment = _experiment(
            router, model, challenger, df[stages.ID], texts, propensity
        )
    else:
        challenger, extra, experiment = None, {}, None
        threshold, version = np.full(len(df), model.threshold), np.full(len(df), model.version, dtype=object)
    out = df.drop(columns=[stages.TEXT]).assign(
        **{
            stages.PROPENSITY: propensity,
            stages.PREDICTION: _metrics.apply_threshold(propensity, threshold),  # per row: an A/B arm's own
            "threshold": threshold,
            "model_version": version,
            **extra,
        }
    )
    output = run.write_frame(PREDICTIONS_FILE, out)
    scored_seconds = time.perf_counter() - start
    monitoring = monitor_batch(store, model, run, texts, propensity) if config.monitoring else None
    run.write_lineage(
        {
            "model": model.describe(),
            "challenger": challenger.describe() if challenger is not None else None,
            "outputs": {"predictions": output},
        }
    )
    run.publish()
    result = {
        "output": output["path"],
        "count": len(out),
        "spam": int(out[stages.PREDICTION].sum()),
        "run": run.id,
        "model_version": model.version,
        "seconds": round(scored_seconds, 4),
        "monitoring": monitoring,
        "experiment": experiment,
    }
    if monitoring is not None:
        result["monitoring_seconds"] = round(time.perf_counter() - start - scored_seconds, 4)
    if config.takedown:
        result["actions"] = takedown(store, output["path"])["output"]
    return result
