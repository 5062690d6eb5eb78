import numpy as np
import pandas as pd
import pytest

from aml.spam import outofdomain
from aml.spam.sms import DataValidationError


class Keyword:
    """A stand-in model: propensity 0.9 for texts containing any of ``words`` (case-insensitive), else 0.1."""

    def __init__(self, words=("win", "free", "offer")):
        self.words = words

    def predict_proba(self, texts):
        p = np.array([0.9 if any(w in t.lower() for w in self.words) else 0.1 for t in texts])
        return np.column_stack([1 - p, p])


def frame(rows):
    """A set in the file's format from ``(label, category, text)`` rows."""
    return pd.DataFrame(
        [
            {
                "id": f"ood-{i:03d}",
                "label": lb,
                "category": c,
                "text": t,
                "source": "written for a test",
                "rule": f"{lb}: x",
            }
            for i, (lb, c, t) in enumerate(rows, 1)
        ],
        columns=list(outofdomain.COLUMNS),
    )


SMALL = frame(
    [
        ("ham", "work", "Meeting at 10 in room B"),
        ("ham", "work", "Free for a call at 3?"),  # "free": a keyword model blocks it
        ("ham", "personal", "See you tonight"),
        ("spam", "promotion", "WIN a free cruise"),
        ("spam", "promotion", "Half price sofas this weekend"),  # no keyword: missed
        ("spam", "caps_offer", "FREE OFFER CALL NOW"),
    ]
)


def test_load_reads_the_package_set_with_a_target():
    df = outofdomain.load()
    assert list(df.columns) == [*outofdomain.COLUMNS, "y"]
    assert set(df["category"]) == set(outofdomain.CATEGORIES)


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        outofdomain.load(tmp_path / "nothing.csv")


@pytest.mark.parametrize(
    ("change", "column"),
    [
        (lambda d: d.assign(label=d["label"].replace("spam", "junk")), "label"),
        (lambda d: d.assign(category=d["category"].replace("caps_offer", "shouting")), "category"),
        (lambda d: d.assign(text=d["text"].replace("See you tonight", "meeting at 10 in room b ")), "text"),
        (lambda d: d.assign(text=d["text"].replace("See you tonight", "bad\x07bell")), "text"),
        (
            lambda d: d.assign(
                label=d["label"].where(d.index != 0, "spam"), rule=d["rule"].where(d.index != 0, "spam: x")
            ),
            "label",
        ),
        (lambda d: d.assign(rule=d["rule"].where(d.index != 0, "spam: mislabelled")), "rule"),
        (lambda d: d.assign(id="ood-001"), "id"),
        (lambda d: d.assign(extra=1), "extra"),
    ],
)
def test_the_schema_refuses_bad_rows(tmp_path, change, column):
    assert outofdomain.validate(SMALL).equals(SMALL)
    bad = change(SMALL.copy())
    with pytest.raises(DataValidationError, match="out-of-domain set fails its schema"):
        outofdomain.validate(bad)
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataValidationError):
        outofdomain.load(tmp_path / "bad.csv")


def test_evaluate_counts_ham_kept_and_spam_caught_at_the_threshold():
    report = outofdomain.evaluate(Keyword(), 0.5, SMALL)
    assert report.ham_kept == pytest.approx(2 / 3) and report.spam_caught == pytest.approx(2 / 3)
    table = report.by_category()
    assert list(table.index) == ["work", "personal", "promotion", "caps_offer"]  # CATEGORIES' order
    assert table.loc["work", ["messages", "correct"]].tolist() == [2, 1]
    assert table.loc["caps_offer", "rate"] == 1.0 and table.loc["promotion", "label"] == "spam"
    errors = report.errors()
    assert errors["text"].tolist() == ["Free for a call at 3?", "Half price sofas this weekend"]  # blocked ham first
    # the threshold rule is propensity >= threshold: at 0.9 the same messages are flagged, above it none
    assert outofdomain.evaluate(Keyword(), 0.9, SMALL).spam_caught == pytest.approx(2 / 3)
    nothing = outofdomain.evaluate(Keyword(), 0.91, SMALL)
    assert nothing.spam_caught == 0.0 and nothing.ham_kept == 1.0


def test_evaluate_accepts_a_callable_and_reports_json():
    def perfect(texts):
        return [1.0 if t in set(SMALL.loc[SMALL["label"] == "spam", "text"]) else 0.0 for t in texts]

    summary = outofdomain.evaluate(perfect, 0.5, SMALL).summary()
    assert summary["ham_kept"] == summary["spam_caught"] == summary["aucpr"] == 1.0
    assert summary["errors"] == [] and (summary["ham"], summary["spam"], summary["messages"]) == (3, 3, 6)
    assert set(summary["by_category"]) == {"work", "personal", "promotion", "caps_offer"}
    import json

    json.dumps(summary)  # JSON-able


def test_evaluate_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="both labels"):
        outofdomain.evaluate(Keyword(), 0.5, SMALL[SMALL["label"] == "ham"])
    with pytest.raises(ValueError, match="lacks the columns"):
        outofdomain.evaluate(Keyword(), 0.5, SMALL.drop(columns="category"))
    with pytest.raises(ValueError, match="propensities"):
        outofdomain.evaluate(lambda texts: [0.5], 0.5, SMALL)
    with pytest.raises(TypeError, match="predict_proba"):
        outofdomain.evaluate(object(), 0.5, SMALL)


def test_compare_puts_models_side_by_side_each_at_its_threshold():
    table = outofdomain.compare({"keyword": (Keyword(), 0.5), "strict": (Keyword(), 0.95)}, SMALL)
    assert list(table.index) == ["keyword", "strict"]
    assert list(table.columns[:4]) == ["threshold", "ham_kept", "spam_caught", "aucpr"]
    assert table.loc["keyword", "spam_caught"] == pytest.approx(2 / 3) and table.loc["strict", "spam_caught"] == 0.0
    assert table.loc["strict", "ham_kept"] == 1.0 and table.loc["keyword", "work"] == 0.5
    with pytest.raises(ValueError, match="at least one"):
        outofdomain.compare({}, SMALL)
