"""Monitoring of the served spam filter: data drift of every scored batch, performance (concept) drift and bias by
slice when labels arrive, and the champion-vs-challenger comparison of shadow and A/B tests.

===================  ==================================================================================================
when                 what is stored (beside the run's own files)
===================  ==================================================================================================
batch ``/score``     ``predictions/<run>/drift.json``: :func:`batch_report` — KS and PSI of every
                     key predictor (:data:`aml.spam.profiling.FEATURES`) and of the propensity, the out-of-vocabulary
                     ratio and the domain-classifier AUC (:mod:`aml.mlops.drift`), against the serving model's
                     training split
``/evaluate``        ``evaluations/<run>/monitoring.json``: :func:`evaluation_report` —
                     AUCPR, precision and recall at the serving threshold against the interval the validation split
                     allows for a batch of this size (an alert outside it), their history over the evaluations so
                     far, the metrics by slice with the worst slice named, and :func:`aml.mlops.experiments.compare`
                     when the predictions carry a challenger (shadow) or an A/B split
===================  ==================================================================================================

``GET /monitoring`` (:func:`latest`) returns the latest of each with one overall ``drift`` flag;
``GET /monitoring/<batch|evaluation>.html`` (:func:`page`) renders their reports with plots from the stored JSON
when asked for, so neither scoring nor evaluating pays for matplotlib.

The reference (:class:`Reference`) is built once per served model version (:func:`aml.project.serving.reference_for`)
from the split it was trained on: the training texts and their features for the input checks, and the model's
propensities on the *validation* split for the propensity check and the performance intervals (its in-sample
propensities on train are more extreme than anything it serves, see :func:`aml.mlops.drift.drift_report`).

Cost: the input checks look at a seeded sample of at most :data:`SAMPLE` messages of a batch (KS, PSI, the OOV ratio
and the domain classifier lose little power beyond a few hundred messages, while their cost grows with the batch);
``project/benchmark.py`` measures the monitoring of a 5,000-message batch against its scoring time. Evidence that
the thresholds neither cry wolf nor miss a new kind of text: ``project/drift_study.py`` (README).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aml.core import metrics as _metrics
from aml.mlops import drift, experiments
from aml.mlops.datastore import DataStore

#: the most messages of a batch the input checks look at (a seeded sample): the batch size of the drift study, whose
#: false-alarm and detection rates are the evidence for the thresholds (project/README.md)
SAMPLE = 300
#: the performance metrics watched at the serving threshold
WATCHED = ("aucpr", "precision", "recall")
#: bootstrap resamples of the validation split for the expected intervals
RESAMPLES = 300
#: how many earlier evaluations the history shows
HISTORY = 50
BATCH_FILE, EVALUATION_FILE = "drift.json", "monitoring.json"
TEXT, TARGET, PROPENSITY, PREDICTION = "text", "y", "propensity", "prediction"


@dataclass
class Reference:
    """What batches are compared with, for one served model version: the training split's ``features`` (with its
    ``texts``), the reference side of the text checks prepared once (``text``, :func:`aml.mlops.drift.text_reference`)
    and the model's propensities on the validation split with their labels, at its ``threshold``."""

    model_version: str
    split_run: str
    threshold: float
    features: pd.DataFrame
    validation_y: np.ndarray
    validation_propensity: np.ndarray
    text: drift.TextReference | None = field(default=None, repr=False)
    _intervals: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, model_version: str, split_run: str, threshold: float, train_texts, validation_y, validation_propensity
    ) -> Reference:
        """The reference from the training texts and the validation labels and propensities."""
        from aml.spam.profiling import message_features

        texts = pd.Series(list(train_texts), dtype="object").reset_index(drop=True)
        features = message_features(texts).astype(float).assign(**{TEXT: texts})
        y = np.asarray(validation_y).astype(int)
        p = np.asarray(validation_propensity, dtype=float)
        if y.shape != p.shape or y.size == 0:
            raise ValueError(f"validation labels {y.shape} and propensities {p.shape} must match and be non-empty")
        text = drift.text_reference(texts.tolist(), max_samples=SAMPLE)
        return cls(str(model_version), str(split_run), float(threshold), features, y, p, text)

    def expected(self, size: int) -> dict[str, dict[str, float]]:
        """``{metric: {"mean", "low", "high"}}`` for :data:`WATCHED`: the validation estimate and the 95% interval a
        batch of ``size`` labelled messages shows by chance (bootstrap, cached per size)."""
        if size not in self._intervals:
            self._intervals[size] = {
                m: drift.expected_interval(
                    self.validation_y, self.validation_propensity, self.threshold, m, n=RESAMPLES, size=size
                )
                for m in WATCHED
            }
        return self._intervals[size]


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)) if n > size else np.arange(n)


def batch_report(reference: Reference, texts, propensity, seed: int = 0, sample: int = SAMPLE) -> drift.DriftReport:
    """The input checks of one scored batch (``texts`` and their ``propensity``) against ``reference``: KS + PSI on
    every key predictor and on the propensity (reference: validation propensities), the OOV ratio and the domain
    classifier AUC (:func:`aml.mlops.drift.drift_report`), on a seeded sample of at most ``sample`` messages."""
    from aml.spam.profiling import FEATURES, message_features

    texts = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype="object")
    propensity = np.asarray(propensity, dtype=float)
    if propensity.shape != (len(texts),):
        raise ValueError(f"{len(texts)} texts but propensities of shape {propensity.shape}")
    if texts.empty:
        raise ValueError("an empty batch has no distribution to compare")
    pick = _sample(len(texts), sample, seed)
    picked = pd.Series(texts.iloc[pick].tolist(), dtype="object")  # only the sample is copied, not the batch
    current = message_features(picked).astype(float)
    current[TEXT] = picked.to_numpy()
    current[PROPENSITY] = propensity[pick]
    ref_pick = _sample(len(reference.features), max(sample, 2 * sample), seed)
    return drift.drift_report(
        reference.features.iloc[ref_pick],
        current,
        list(FEATURES),
        text_column=TEXT,
        propensity_column=PROPENSITY,
        seed=seed,
        max_samples=sample,
        reference_propensity=reference.validation_propensity,
        text_reference=reference.text,
    )


def batch_record(report: drift.DriftReport, reference: Reference, count: int) -> dict[str, Any]:
    """The JSON stored per batch: the report (:meth:`aml.mlops.drift.DriftReport.to_dict`), what it was compared
    with and how many messages the batch had."""
    return {
        **report.to_dict(),
        "model_version": reference.model_version,
        "reference_split": reference.split_run,
        "batch_size": int(count),
        "sampled": int(report.n_current),
    }


# -- labels: performance, slices, experiments -----------------------------------------------------------------------


def slices(texts) -> dict[str, np.ndarray]:
    """The slices bias is measured on: length bucket (short < 50 characters, medium, long > 150), contains a link,
    contains digits, contains a currency sign, shouting (more than a third of the letters upper case)."""
    from aml.spam.profiling import message_features

    f = message_features(pd.Series(list(texts), dtype="object"))
    chars = f["chars"].to_numpy()
    return {
        "short (<50 chars)": chars < 50,
        "medium (50-150 chars)": (chars >= 50) & (chars <= 150),
        "long (>150 chars)": chars > 150,
        "has a link": f["urls"].to_numpy() > 0,
        "no link": f["urls"].to_numpy() == 0,
        "has digits": f["digits"].to_numpy() > 0,
        "no digits": f["digits"].to_numpy() == 0,
        "has a currency sign": f["currency"].to_numpy() > 0,
        "shouting (>1/3 upper case)": f["upper_ratio"].to_numpy() > 1 / 3,
    }


def _slice_metrics(part: pd.DataFrame) -> dict[str, float]:
    y, pred = part[TARGET].to_numpy().astype(int), part[PREDICTION].to_numpy().astype(bool)
    out = {"accuracy": float((pred == y.astype(bool)).mean()), "spam_share": float(y.mean())}
    out["recall"] = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    out["false_positive_rate"] = float(pred[y == 0].mean()) if (y == 0).any() else float("nan")
    return out


def bias_report(df: pd.DataFrame) -> dict[str, Any]:
    """Metrics by slice (:func:`slices`) of scored, labelled messages (``text``, ``y``, ``prediction``): size,
    accuracy, spam share, recall, false-positive rate; the worst slice is the one with the lowest accuracy (defined
    for every non-empty slice, also those with one class)."""
    table = drift.slice_metrics(df, slices(df[TEXT]), _slice_metrics)
    return {
        "metric": "accuracy",
        "worst": drift.worst_slice(table, "accuracy"),
        "slices": table.reset_index().replace({np.nan: None}).to_dict("records"),
    }


def performance_report(reference: Reference, y, propensity, threshold: float) -> dict[str, Any]:
    """The watched metrics of labelled, scored messages at the serving ``threshold``, each judged against the
    interval the validation split allows for a batch of this size (:func:`aml.mlops.drift.performance_alert`; an
    alert when below it)."""
    y = np.asarray(y).astype(int)
    observed = _metrics.binary_metrics(y, np.asarray(propensity, dtype=float), threshold)
    expected = reference.expected(len(y))
    # an alert when a metric is *below* its interval (the model got worse); above it (e.g. precision on a batch with
    # more spam than validation) is shown as "above" but is not drift of the model
    alerts = drift.performance_alerts({m: observed[m] for m in WATCHED}, expected, below_only=True)
    return {
        "metrics": {m: float(observed[m]) for m in WATCHED},
        "expected": expected,
        "alerts": [a.to_dict() for a in alerts],
        "drift": any(a.drifted for a in alerts),
    }


def experiment_report(df: pd.DataFrame, seed: int = 0) -> dict[str, Any] | None:
    """Champion vs challenger on labelled predictions (:func:`aml.mlops.experiments.compare` on AUCPR), or ``None``
    when the file has no experiment: ``challenger_propensity`` columns (shadow: the same rows, paired) or an ``arm``
    column (A/B: each arm's rows)."""
    if "challenger_propensity" in df.columns:
        champion = (df[TARGET], df[PROPENSITY], float(df["threshold"].iloc[0]))
        challenger = (df[TARGET], df["challenger_propensity"], float(df["challenger_threshold"].iloc[0]))
        versions = (str(df["model_version"].iloc[0]), str(df["challenger_version"].iloc[0]))
        mode = "shadow"
    elif "arm" in df.columns:
        a, b = df[df["arm"] == experiments.CHAMPION], df[df["arm"] == experiments.CHALLENGER]
        if a.empty or b.empty:
            return {"mode": "ab", "error": f"one arm has no labelled rows (champion {len(a)}, challenger {len(b)})"}
        champion = (a[TARGET], a[PROPENSITY], float(a["threshold"].iloc[0]))
        challenger = (b[TARGET], b[PROPENSITY], float(b["threshold"].iloc[0]))
        versions = (str(a["model_version"].iloc[0]), str(b["model_version"].iloc[0]))
        mode = "ab"
    else:
        return None
    try:
        comparison = experiments.compare(champion, challenger, "aucpr", mode=mode, seed=seed).to_dict()
    except ValueError as exc:  # too few labels of a class
        return {"mode": mode, "error": str(exc)}
    return {**comparison, "champion_version": versions[0], "challenger_version": versions[1]}


def evaluation_report(
    reference: Reference | None, df: pd.DataFrame, history: Sequence[Mapping] = (), seed: int = 0
) -> dict[str, Any]:
    """Everything labels tell about the served model, for one evaluation of scored, labelled messages ``df``
    (``y``, ``propensity``, ``prediction``, ``threshold``; ``text`` for the slices): ``performance`` (with an
    alert, when ``reference`` is known), ``history`` (``history`` + this evaluation's metrics, oldest first),
    ``bias`` and ``experiment``; ``drift`` is true when a performance alert fired."""
    champion_rows = df[df["arm"] == experiments.CHAMPION] if "arm" in df.columns else df
    threshold = float(champion_rows["threshold"].iloc[0])
    out: dict[str, Any] = {"count": int(len(df)), "threshold": threshold, "performance": None}
    if reference is not None:
        out["performance"] = performance_report(reference, champion_rows[TARGET], champion_rows[PROPENSITY], threshold)
        out["reference_split"] = reference.split_run
    current = _metrics.binary_metrics(champion_rows[TARGET], champion_rows[PROPENSITY], threshold)
    out["history"] = [*history, {"run": "this evaluation", **{m: float(current[m]) for m in WATCHED}}]
    out["bias"] = bias_report(df) if TEXT in df.columns else None
    out["experiment"] = experiment_report(df, seed)
    out["drift"] = bool(out["performance"] and out["performance"]["drift"])
    return out


# -- pages and the latest state --------------------------------------------------------------------------------------


#: the per-slice metrics the evaluation page shows
SLICE_COLUMNS = ("accuracy", "recall", "false_positive_rate", "spam_share")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def history_figure(record: Mapping):
    """Each watched metric over the evaluations (oldest first), with the validation interval as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = pd.DataFrame(record["history"])
    fig, axes = plt.subplots(1, len(WATCHED), figsize=(4 * len(WATCHED), 3), dpi=80)
    expected = (record.get("performance") or {}).get("expected") or {}
    for ax, metric in zip(np.atleast_1d(axes), WATCHED, strict=True):
        ax.plot(range(len(history)), history[metric], marker="o")
        if metric in expected:
            ax.axhspan(expected[metric]["low"], expected[metric]["high"], alpha=0.2, label="validation 95% interval")
            ax.legend(fontsize=7)
        ax.set_title(metric)
        ax.set_xlabel("evaluation")
    fig.tight_layout()
    return fig


def evaluation_page(record: Mapping) -> str:
    """One self-contained HTML page of an evaluation's monitoring: the verdict, the metrics against their
    intervals, the history plot, the slices (worst highlighted) and the experiment; rendered from the template
    ``monitoring_evaluation.html`` (:func:`aml.core.pages.render`)."""
    from aml.core import pages

    bias = record.get("bias") or {}
    experiment = record.get("experiment")
    return pages.render(
        "monitoring_evaluation.html",
        title="Evaluation monitoring",
        drift=bool(record.get("drift")),
        count=record.get("count"),
        threshold=record.get("threshold"),
        alerts=(record.get("performance") or {}).get("alerts", []),
        history_png=_png(history_figure(record)),
        worst=str(bias.get("worst")),
        slices=[{k: s.get(k) for k in ("slice", "n", *SLICE_COLUMNS)} for s in bias.get("slices", [])],
        experiment=pd.Series(experiment).to_string() if experiment else None,
        columns=SLICE_COLUMNS,
    )


def page(store: DataStore, part: str) -> str:
    """The HTML report of the latest ``part``: ``batch`` (:func:`aml.mlops.drift.report_page` of the latest scored
    batch's drift record) or ``evaluation`` (:func:`evaluation_page`), rendered from the stored JSON. Raises
    ``KeyError`` for another part and ``FileNotFoundError`` when nothing was monitored yet."""
    kinds = {"batch": ("predictions", BATCH_FILE), "evaluation": ("evaluations", EVALUATION_FILE)}
    if part not in kinds:
        raise KeyError(f"no monitoring page {part!r}: expected one of {sorted(kinds)}")
    kind, name = kinds[part]
    run = store.latest(kind)
    path = store.run_path(kind, run, name) if run else None
    if path is None or not store.exists(path):
        raise FileNotFoundError(f"no {part} monitored yet: call POST /score with an input (then POST /evaluate) first")
    record = store.read_json(path)
    if part == "batch":
        return drift.report_page(record, f"Batch drift: {kind}/{run} (model version {record.get('model_version')})")
    return evaluation_page(record)


def latest(store: DataStore) -> dict[str, Any]:
    """The latest monitoring records for ``GET /monitoring``: ``batch`` (the latest scored batch's drift report,
    with ``run``), ``evaluation`` (the latest evaluation's), ``shadow`` (:func:`shadow_summary`), and ``drift``: true when either flagged (data drift of
    the batch, or a performance alert). A record is ``None`` until the first batch / evaluation."""
    out: dict[str, Any] = {}
    for key, kind, name in (("batch", "predictions", BATCH_FILE), ("evaluation", "evaluations", EVALUATION_FILE)):
        run = store.latest(kind)
        path = store.run_path(kind, run, name) if run else None
        out[key] = {"run": run, **store.read_json(path)} if path and store.exists(path) else None
    out["shadow"] = shadow_summary(store)
    out["drift"] = bool((out["batch"] or {}).get("drift") or (out["evaluation"] or {}).get("drift"))
    return out


def shadow_summary(store: DataStore) -> dict[str, Any] | None:
    """The latest batch of online shadow scores (:class:`aml.mlops.experiments.ShadowLog`): its ``run``, ``rows``,
    the versions and the share of messages both models classed alike (``agreement``); ``None`` before the first."""
    run = store.latest("shadow")
    if run is None:
        return None
    df = store.read_csv(store.run_path("shadow", run, "scores.csv"), dtype=str)
    agree = (df["champion_prediction"] == df["challenger_prediction"]).mean() if len(df) else float("nan")
    return {
        "run": run,
        "rows": int(len(df)),
        "champion_versions": sorted(df["champion_version"].unique().tolist()),
        "challenger_versions": sorted(df["challenger_version"].unique().tolist()),
        "agreement": float(agree),
    }


def history(store: DataStore, limit: int = HISTORY) -> list[dict[str, Any]]:
    """The watched metrics of the last ``limit`` evaluations with a monitoring record, oldest first."""
    rows = []
    for run in store.runs("evaluations")[-limit:]:
        path = store.run_path("evaluations", run, EVALUATION_FILE)
        if store.exists(path):
            last = store.read_json(path)["history"][-1]
            rows.append({**last, "run": run})
    return rows


__all__ = [
    "BATCH_FILE",
    "EVALUATION_FILE",
    "SAMPLE",
    "WATCHED",
    "Reference",
    "batch_record",
    "batch_report",
    "bias_report",
    "evaluation_page",
    "evaluation_report",
    "experiment_report",
    "history",
    "history_figure",
    "latest",
    "page",
    "performance_report",
    "shadow_summary",
    "slices",
]
