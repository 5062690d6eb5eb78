"""Fit, score, evaluate, validate: the code design of the course's training notebooks.

- :func:`fit` trains a model on a split (texts → labels);
- :func:`score` gives the spam propensity of each text;
- :func:`evaluate` computes AUCPR and, at a threshold, precision, recall, F1 and the confusion matrix;
- :func:`choose_threshold` picks the threshold that maximises recall subject to precision ≥ a floor;
- :func:`validate` fits every benchmark on train, scores train and validation, tunes the threshold on validation and
  returns the comparison table used for model selection (by validation AUCPR).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve

TEXT, TARGET = "text", "y"
MIN_PRECISION = 0.90


def fit(model, train: pd.DataFrame):
    """Fit ``model`` on the ``text``/``y`` columns of ``train``; returns the fitted model."""
    return model.fit(train[TEXT].tolist(), train[TARGET].to_numpy())


def score(model, texts) -> np.ndarray:
    """Spam propensity (probability of class 1) of each text."""
    if isinstance(texts, pd.DataFrame):
        texts = texts[TEXT]
    return np.asarray(model.predict_proba(list(texts)))[:, 1]


def evaluate(y_true, propensity, threshold: float) -> dict:
    """AUCPR (average precision) plus, at ``threshold`` (spam if propensity ≥ threshold), precision, recall, F1,
    accuracy, the share of ham blocked, and the confusion matrix ``[[tn, fp], [fn, tp]]``."""
    y_true = np.asarray(y_true).astype(int)
    propensity = np.asarray(propensity, dtype=float)
    if y_true.shape != propensity.shape:
        raise ValueError(f"y_true {y_true.shape} and propensity {propensity.shape} differ in shape")
    if len(np.unique(y_true)) < 2:
        raise ValueError("evaluate needs both classes in y_true")
    pred = propensity >= threshold
    tn, fp, fn, tp = confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "aucpr": float(average_precision_score(y_true, propensity)),
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float((tp + tn) / len(y_true)),
        "ham_blocked": float(fp / (fp + tn)),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def choose_threshold(y_true, propensity, min_precision: float = MIN_PRECISION) -> float:
    """The threshold with the highest recall among those whose precision is ≥ ``min_precision``.

    Ties in recall go to the highest such threshold (fewest ham blocked). If no threshold reaches the floor, the one
    with the highest precision is returned.
    """
    precision, recall, thresholds = precision_recall_curve(np.asarray(y_true).astype(int), propensity)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    ok = precision >= min_precision
    if not ok.any():
        return float(thresholds[int(np.argmax(precision))])
    best_recall = recall[ok].max()
    candidates = thresholds[ok & (recall == best_recall)]
    return float(candidates.max())


def recall_at_fpr(y_true, propensity, max_fpr: float) -> dict:
    """The best recall reachable while blocking at most ``max_fpr`` of ham (false-positive rate), and the threshold.

    Used to compare with results reported as "spam caught at X% ham blocked" (e.g. the collection's original paper).
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(np.asarray(y_true).astype(int), propensity)
    ok = fpr <= max_fpr
    i = int(np.flatnonzero(ok)[np.argmax(tpr[ok])])
    return {"recall": float(tpr[i]), "ham_blocked": float(fpr[i]), "threshold": float(min(thresholds[i], 1.0))}


@dataclass
class Validation:
    """What :func:`validate` returns: fitted models, their scores and the comparison table."""

    table: pd.DataFrame
    models: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)  # name -> {split: propensities}
    thresholds: dict = field(default_factory=dict)

    @property
    def best(self) -> str:
        """The model with the highest validation AUCPR."""
        return str(self.table["validation_aucpr"].idxmax())


def validate(
    models: Mapping[str, object],
    train: pd.DataFrame,
    validation: pd.DataFrame,
    min_precision: float = MIN_PRECISION,
    progress: Callable[[str], None] | None = None,
) -> Validation:
    """Fit each model on ``train``, score train and validation, choose each model's threshold on validation.

    The table has one row per model: train/validation AUCPR, the validation-chosen threshold, validation
    precision/recall/F1 at it, and fit time; sorted by validation AUCPR (best first).
    """
    result = Validation(table=pd.DataFrame())
    rows = []
    for name, model in models.items():
        if progress:
            progress(name)
        start = time.perf_counter()
        fitted = fit(clone(model), train)
        seconds = time.perf_counter() - start
        p_train, p_val = score(fitted, train), score(fitted, validation)
        threshold = choose_threshold(validation[TARGET], p_val, min_precision)
        val_metrics = evaluate(validation[TARGET], p_val, threshold)
        rows.append(
            {
                "model": name,
                "train_aucpr": evaluate(train[TARGET], p_train, threshold)["aucpr"],
                "validation_aucpr": val_metrics["aucpr"],
                "threshold": threshold,
                "validation_precision": val_metrics["precision"],
                "validation_recall": val_metrics["recall"],
                "validation_f1": val_metrics["f1"],
                "fit_seconds": seconds,
            }
        )
        result.models[name] = fitted
        result.scores[name] = {"train": p_train, "validation": p_val}
        result.thresholds[name] = threshold
    result.table = pd.DataFrame(rows).set_index("model").sort_values("validation_aucpr", ascending=False)
    return result


def test_report(validation: Validation, test: pd.DataFrame) -> pd.DataFrame:
    """Every validated model evaluated on ``test`` at its validation-chosen threshold (one row per model)."""
    rows = {}
    for name, model in validation.models.items():
        p = score(model, test)
        validation.scores[name]["test"] = p
        rows[name] = evaluate(test[TARGET], p, validation.thresholds[name])
    return pd.DataFrame.from_dict(rows, orient="index").loc[validation.table.index]


def error_examples(df: pd.DataFrame, propensity, threshold: float, n: int = 5) -> dict[str, pd.DataFrame]:
    """The ``n`` most confident false positives and false negatives at ``threshold``."""
    frame = df.assign(propensity=np.asarray(propensity))
    pred = frame["propensity"] >= threshold
    fp = frame[pred & (frame[TARGET] == 0)].sort_values("propensity", ascending=False)
    fn = frame[~pred & (frame[TARGET] == 1)].sort_values("propensity")
    cols = [TEXT, "propensity"]
    return {"false_positives": fp[cols].head(n), "false_negatives": fn[cols].head(n)}


def plot_pr_curves(
    y_true,
    propensities: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float] | None = None,
    ax=None,
    title: str = "Precision-recall (test split)",
):
    """Precision-recall curves of several models, with each model's operating point marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    for name, p in propensities.items():
        precision, recall, _ = precision_recall_curve(y_true, p)
        (line,) = ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y_true, p):.3f})")
        if thresholds and name in thresholds:
            m = evaluate(y_true, p, thresholds[name])
            ax.plot(m["recall"], m["precision"], "o", color=line.get_color())
    ax.axhline(MIN_PRECISION, ls="--", c="grey", lw=0.8)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1.01), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=8)
    return ax


def plot_confusion(matrix, ax=None, labels=("ham", "spam"), title: str = "Confusion matrix"):
    """Draw a 2×2 (or k×k) confusion matrix with counts."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(labels)).plot(ax=ax, colorbar=False)
    ax.set_title(title)
    return ax


def seed_study(
    make_model: Callable[[int], object],
    data: pd.DataFrame,
    split_fn: Callable,
    seeds=(0, 1, 2, 3, 4),
    min_precision: float = MIN_PRECISION,
) -> pd.DataFrame:
    """Repeat split → fit → choose threshold on validation → evaluate on test for several split seeds.

    ``split_fn(data, seed)`` returns a dict with ``train``/``validation``/``test``; returns one row per seed.
    """
    rows = []
    for seed in seeds:
        parts = split_fn(data, seed)
        model = fit(make_model(seed), parts["train"])
        threshold = choose_threshold(parts["validation"][TARGET], score(model, parts["validation"]), min_precision)
        m = evaluate(parts["test"][TARGET], score(model, parts["test"]), threshold)
        rows.append({"seed": seed, **{k: v for k, v in m.items() if k != "confusion_matrix"}})
    return pd.DataFrame(rows).set_index("seed")
