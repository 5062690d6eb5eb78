"""Binary-classification metrics and the threshold rule, for any model that outputs a propensity (probability of
the positive class). Every metric and the threshold rule of the workspace exist here once.

- :func:`apply_threshold`: the boundary rule, positive when ``propensity >= threshold`` (threshold 0 always
  predicts positive; threshold 1 only for a propensity of exactly 1);
- :func:`average_precision`: AUCPR;
- :func:`binary_metrics`: AUCPR (average precision) plus, at a threshold, precision, recall, F1, accuracy, the
  false-positive rate (``ham_blocked`` in the spam filter's words) and the confusion matrix;
- :func:`choose_threshold`: the highest recall subject to precision ≥ a floor (the course's operating rule);
- :func:`recall_at_fpr`: the best recall reachable within a false-positive budget (for comparing with papers).

NumPy and scikit-learn only: the serving image imports this module. :func:`binary_metrics` counts with NumPy and
computes the average precision exactly as scikit-learn's ``average_precision_score`` does (the same arrays, the same
sum: equal to the last bit, a test checks it) because the bootstraps of the monitoring and of the shadow/A-B
comparison call it thousands of times per report: scikit-learn's ``confusion_matrix`` + ``average_precision_score``
spend about 5 ms per call validating their input, which made one champion-vs-challenger comparison take 12 s.
"""

from __future__ import annotations

import numpy as np

MIN_PRECISION = 0.90
#: every metric :func:`binary_metrics` computes, in its output order
METRICS = ("aucpr", "threshold", "precision", "recall", "f1", "accuracy", "ham_blocked", "confusion_matrix")


def apply_threshold(propensity, threshold: float):
    """The prediction rule: positive (``True``) when ``propensity >= threshold``. Works on a number or an array."""
    if isinstance(propensity, (int, float)):
        return bool(propensity >= threshold)
    return np.asarray(propensity, dtype=float) >= threshold


def _check(y_true, propensity) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(int)
    propensity = np.asarray(propensity, dtype=float)
    if y_true.shape != propensity.shape:
        raise ValueError(f"y_true {y_true.shape} and propensity {propensity.shape} differ in shape")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"y_true must hold 0 and 1 only, got {sorted(set(np.unique(y_true).tolist()))}")
    if y_true.size == 0 or y_true.min() == y_true.max():
        raise ValueError("metrics need both classes in y_true")
    if np.isnan(propensity).any():
        raise ValueError("propensity contains NaN")
    return y_true, propensity


def binary_metrics(y_true, propensity, threshold: float, prediction=None) -> dict:
    """AUCPR plus, at ``threshold``, precision, recall, F1, accuracy, the share of negatives flagged
    (``ham_blocked``) and the confusion matrix ``[[tn, fp], [fn, tp]]``.

    ``prediction`` (booleans) may be given when it was computed already; it must agree with the threshold rule.
    """
    y_true, propensity = _check(y_true, propensity)
    pred = apply_threshold(propensity, threshold)
    if prediction is not None and not np.array_equal(np.asarray(prediction, dtype=bool), pred):
        raise ValueError(f"the predictions do not follow the rule propensity >= threshold ({threshold})")
    positive = y_true == 1
    tp = int(np.count_nonzero(pred & positive))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(positive)) - tp
    tn = y_true.size - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "aucpr": _average_precision(y_true, propensity),
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float((tp + tn) / len(y_true)),
        "ham_blocked": float(fp / (fp + tn)),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def average_precision(y_true, propensity) -> float:
    """AUCPR as average precision, ``Σ (R_k − R_{k−1}) · P_k`` over the distinct propensities from the highest:
    scikit-learn's ``average_precision_score`` (binary, no weights), step for step — the same stable sort, the same
    cumulative counts and the same sum, so the same float."""
    return _average_precision(*_check(y_true, propensity))


def _average_precision(y_true: np.ndarray, propensity: np.ndarray) -> float:
    order = np.argsort(propensity, kind="mergesort")[::-1]
    scores, truth = propensity[order], y_true[order]
    thresholds = np.r_[np.where(np.diff(scores))[0], truth.size - 1]  # the last row of each distinct score
    tps = np.cumsum(truth, dtype=np.float64)[thresholds]
    fps = 1 + thresholds - tps
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))  # scikit-learn's too: a rounded -0.0 is 0


def choose_threshold(y_true, propensity, min_precision: float = MIN_PRECISION) -> float:
    """The threshold with the highest recall among those whose precision is ≥ ``min_precision``.

    Ties in recall go to the highest such threshold (fewest negatives flagged). If no threshold reaches the floor,
    the one with the highest precision is returned.
    """
    from sklearn.metrics import precision_recall_curve

    y_true, propensity = _check(y_true, propensity)
    precision, recall, thresholds = precision_recall_curve(y_true, propensity)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    ok = precision >= min_precision
    if not ok.any():
        return float(thresholds[int(np.argmax(precision))])
    best_recall = recall[ok].max()
    return float(thresholds[ok & (recall == best_recall)].max())


def recall_at_fpr(y_true, propensity, max_fpr: float) -> dict:
    """The best recall reachable while flagging at most ``max_fpr`` of negatives, and the threshold that gives it.

    Used to compare with results reported as "spam caught at X% ham blocked" (e.g. the collection's original paper).
    """
    from sklearn.metrics import roc_curve

    y_true, propensity = _check(y_true, propensity)
    fpr, tpr, thresholds = roc_curve(y_true, propensity)
    ok = fpr <= max_fpr
    i = int(np.flatnonzero(ok)[np.argmax(tpr[ok])])
    return {"recall": float(tpr[i]), "ham_blocked": float(fpr[i]), "threshold": float(min(thresholds[i], 1.0))}
