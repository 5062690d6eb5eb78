import numpy as np
import pandas as pd
import pytest

from aml import evaluation, models

Y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])


def toy_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    ham = [f"see you at {w} tonight" for w in rng.choice(["home", "work", "six", "the pub", "lunch"], n)]
    spam = [f"WIN a {w} prize call 0906{i:05d} now" for i, w in enumerate(rng.choice(["cash", "free", "£500"], n // 3))]
    return pd.DataFrame({"text": ham + spam, "y": [0] * len(ham) + [1] * len(spam)})


def test_evaluate_counts():
    m = evaluation.evaluate(Y, P, threshold=0.5)
    assert m["confusion_matrix"] == [[4, 1], [0, 3]]
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["ham_blocked"] == pytest.approx(1 / 5) and m["accuracy"] == pytest.approx(7 / 8)
    assert 0 < m["aucpr"] <= 1


def test_evaluate_threshold_boundary_is_inclusive():
    assert evaluation.evaluate(Y, P, threshold=0.9)["confusion_matrix"][1][1] == 1


def test_evaluate_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        evaluation.evaluate(Y, P[:3], 0.5)
    with pytest.raises(ValueError, match="both classes"):
        evaluation.evaluate([0, 0], [0.1, 0.2], 0.5)


def test_evaluate_no_positive_predictions():
    m = evaluation.evaluate(Y, P, threshold=0.95)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_choose_threshold_max_recall_under_precision_floor():
    # precision >= 0.9 reachable only at 0.7 (2/2) and 0.9; 0.7 has the higher recall
    assert evaluation.choose_threshold(Y, P, 0.9) == pytest.approx(0.7)
    # precision >= 0.7: 0.5 gives recall 1 at precision 0.75
    assert evaluation.choose_threshold(Y, P, 0.7) == pytest.approx(0.5)


def test_choose_threshold_unreachable_floor_returns_most_precise():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.3, 0.2])
    assert evaluation.choose_threshold(y, p, 1.01) == pytest.approx(0.9)


def test_recall_at_fpr():
    r = evaluation.recall_at_fpr(Y, P, max_fpr=0.0)
    assert r["ham_blocked"] == 0.0 and r["recall"] == pytest.approx(2 / 3)
    assert evaluation.recall_at_fpr(Y, P, max_fpr=1.0)["recall"] == 1.0


def test_fit_score_validate_and_report():
    train, val, test = toy_frame(60, 0), toy_frame(30, 1), toy_frame(30, 2)
    fitted = evaluation.fit(models.tfidf_logreg(), train)
    p = evaluation.score(fitted, val)
    assert p.shape == (len(val),) and ((0 <= p) & (p <= 1)).all()
    assert np.allclose(evaluation.score(fitted, val["text"].tolist()), p)

    seen = []
    result = evaluation.validate(
        {"rule": models.KeywordHeuristic(), "lr": models.tfidf_logreg()}, train, val, progress=seen.append
    )
    assert seen == ["rule", "lr"]
    assert list(result.table.columns[:3]) == ["train_aucpr", "validation_aucpr", "threshold"]
    assert result.table["validation_aucpr"].is_monotonic_decreasing
    assert result.best == result.table.index[0]
    report = evaluation.test_report(result, test)
    assert list(report.index) == list(result.table.index) and "test" in result.scores["lr"]
    assert report.loc["lr", "aucpr"] > 0.9


def test_error_examples():
    df = pd.DataFrame({"text": list("abcdefgh"), "y": Y})
    ex = evaluation.error_examples(df, P, threshold=0.5, n=3)
    assert ex["false_positives"]["text"].tolist() == ["f"]
    assert ex["false_negatives"].empty


def test_plots_draw():
    import matplotlib

    matplotlib.use("Agg")
    ax = evaluation.plot_pr_curves(Y, {"m": P}, {"m": 0.5})
    assert "m (AP" in ax.get_legend().get_texts()[0].get_text()
    ax = evaluation.plot_confusion([[4, 1], [0, 3]])
    assert ax.get_title() == "Confusion matrix"


def test_seed_study():
    data = pd.concat([toy_frame(60, 0), toy_frame(60, 1)], ignore_index=True).drop_duplicates("text")
    from aml import sms

    study = evaluation.seed_study(
        lambda seed: models.tfidf_logreg(seed=seed), data, lambda d, seed: sms.split(d, seed=seed), seeds=(0, 1)
    )
    assert list(study.index) == [0, 1] and (study["aucpr"] > 0.8).all()
