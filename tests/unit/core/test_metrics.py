import numpy as np
import pytest

from aml.core import metrics

Y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])


def test_apply_threshold_is_inclusive_for_numbers_and_arrays():
    assert metrics.apply_threshold(0.5, 0.5) is True and metrics.apply_threshold(0.49, 0.5) is False
    assert metrics.apply_threshold(P, 0.7).tolist() == [False] * 6 + [True, True]
    assert metrics.apply_threshold(P, 0.0).all() and not metrics.apply_threshold(P, 1.0).any()


def test_binary_metrics_counts():
    m = metrics.binary_metrics(Y, P, threshold=0.5)
    assert list(m) == list(metrics.METRICS)
    assert m["confusion_matrix"] == [[4, 1], [0, 3]]
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["ham_blocked"] == pytest.approx(1 / 5) and m["accuracy"] == pytest.approx(7 / 8)
    assert 0 < m["aucpr"] <= 1


def test_binary_metrics_boundary_and_prediction_check():
    assert metrics.binary_metrics(Y, P, threshold=0.9)["confusion_matrix"][1][1] == 1
    assert metrics.binary_metrics(Y, P, 0.5, prediction=P >= 0.5)["recall"] == 1.0
    with pytest.raises(ValueError, match="do not follow the rule"):
        metrics.binary_metrics(Y, P, 0.5, prediction=P >= 0.6)


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.binary_metrics(Y, P[:3], 0.5)
    with pytest.raises(ValueError, match="both classes"):
        metrics.binary_metrics([0, 0], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="both classes"):
        metrics.average_precision([], [])
    with pytest.raises(ValueError, match="NaN"):
        metrics.binary_metrics([0, 1], [0.1, float("nan")], 0.5)
    with pytest.raises(ValueError, match=r"0 and 1 only, got \[0, 1, 2\]"):
        metrics.binary_metrics([0, 1, 2], [0.1, 0.2, 0.3], 0.5)


def test_average_precision_by_hand():
    # descending: 0.9 (1), 0.7 (1), 0.6 (0), 0.5 (1): precision 1, 1, 2/3, 3/4 at recall 1/3, 2/3, 2/3, 1
    assert metrics.average_precision(Y, P) == pytest.approx((1 + 1 + 3 / 4) / 3)
    # a tie of a positive and a negative counts once, at their shared precision
    assert metrics.average_precision([1, 0, 1], [0.8, 0.8, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_binary_metrics_equal_scikit_learns_to_the_last_bit():
    """The NumPy counts and average precision against scikit-learn's on random labels and scores, with and without
    ties (scores on a coarse grid), at thresholds on and between the scores."""
    from sklearn.metrics import average_precision_score, confusion_matrix

    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(2, 300))
        y = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
        if y.min() == y.max():
            continue
        p = rng.random(n) if trial % 2 else rng.integers(0, 5, n) / 4
        threshold = float(rng.choice([0.0, 0.25, 0.5, 1.0, rng.random()]))
        m = metrics.binary_metrics(y, p, threshold)
        assert m["aucpr"] == average_precision_score(y, p)
        tn, fp, fn, tp = confusion_matrix(y, p >= threshold, labels=[0, 1]).ravel()
        assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]


def test_binary_metrics_no_positive_predictions():
    m = metrics.binary_metrics(Y, P, threshold=0.95)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_choose_threshold_max_recall_under_precision_floor():
    # precision >= 0.9 reachable only at 0.7 (2/2) and 0.9; 0.7 has the higher recall
    assert metrics.choose_threshold(Y, P, 0.9) == pytest.approx(0.7)
    # precision >= 0.7: 0.5 gives recall 1 at precision 0.75
    assert metrics.choose_threshold(Y, P, 0.7) == pytest.approx(0.5)


def test_choose_threshold_unreachable_floor_returns_most_precise():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.2])
    assert metrics.choose_threshold(y, p, 1.01) == pytest.approx(0.9)


def test_recall_at_fpr():
    r = metrics.recall_at_fpr(Y, P, max_fpr=0.0)
    assert r["ham_blocked"] == 0.0 and r["recall"] == pytest.approx(2 / 3)
    assert metrics.recall_at_fpr(Y, P, max_fpr=1.0)["recall"] == 1.0
