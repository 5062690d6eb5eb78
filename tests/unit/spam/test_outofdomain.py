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


# -- every benchmark beside the test split, and the messages the models disagree on ---------------------------------

TEST_TABLE = pd.DataFrame(
    {
        "aucpr": [0.99, 0.95, 0.80],
        "precision": [0.98, 0.90, 0.70],
        "recall": [0.97, 0.85, 0.60],
        "f1": [0.975, 0.874, 0.646],
        "ham_blocked": [0.002, 0.01, 0.05],
    },
    index=["keyword", "offer_only", "unused"],
)


def _reports():
    return outofdomain.evaluate_many(
        {"keyword": (Keyword(), 0.5), "offer_only": (Keyword(("offer", "sofas")), 0.5)}, SMALL
    )


def test_evaluate_many_scores_each_model_at_its_threshold():
    reports = _reports()
    assert list(reports) == ["keyword", "offer_only"]
    assert reports["keyword"].spam_caught == pytest.approx(2 / 3) and reports["keyword"].ham_kept == pytest.approx(
        2 / 3
    )
    assert reports["offer_only"].spam_caught == pytest.approx(2 / 3) and reports["offer_only"].ham_kept == 1.0
    with pytest.raises(ValueError, match="at least one"):
        outofdomain.evaluate_many({}, SMALL)


def test_benchmark_table_puts_test_and_out_of_domain_side_by_side():
    table = outofdomain.benchmark_table(TEST_TABLE, _reports(), validation_aucpr={"keyword": 0.9, "offer_only": 0.8})
    assert list(table.index) == ["keyword", "offer_only"]  # the test table's order, only the evaluated models
    assert list(table.columns) == [
        "threshold",
        "validation_aucpr",
        "test_aucpr",
        "test_precision",
        "test_recall",
        "test_ham_kept",
        "ood_aucpr",
        "ood_spam_caught",
        "ood_ham_kept",
        "ood_aim_met",
    ]
    row = table.loc["keyword"]
    assert row["test_recall"] == 0.97 and row["test_ham_kept"] == pytest.approx(0.998)
    assert row["ood_spam_caught"] == pytest.approx(2 / 3) and not row["ood_aim_met"]
    assert "validation_aucpr" not in outofdomain.benchmark_table(TEST_TABLE, _reports()).columns
    with pytest.raises(ValueError, match="no test figures"):
        outofdomain.benchmark_table(TEST_TABLE.drop(index="keyword"), _reports())
    with pytest.raises(ValueError, match="lacks the columns"):
        outofdomain.benchmark_table(TEST_TABLE.drop(columns="recall"), _reports())


def test_benchmark_table_marks_the_aim_met():
    perfect = outofdomain.evaluate_many(
        {
            "oracle": (
                lambda texts: SMALL.set_index("text").loc[texts, "label"].eq("spam").astype(float).to_numpy(),
                0.5,
            )
        },
        SMALL,
    )
    table = outofdomain.benchmark_table(TEST_TABLE.rename(index={"keyword": "oracle"}), perfect)
    assert bool(table.loc["oracle", "ood_aim_met"]) and table.loc["oracle", "ood_ham_kept"] == 1.0


def test_disagreements_lists_only_split_messages_with_each_propensity():
    out = outofdomain.disagreements(_reports())
    # keyword blocks "Free for a call at 3?" (offer_only keeps it); offer_only catches the sofa sale (keyword misses
    # it) and misses "WIN a free cruise"; "FREE OFFER CALL NOW" both catch, the other ham both keep
    assert list(out["text"]) == ["Free for a call at 3?", "WIN a free cruise", "Half price sofas this weekend"]
    assert list(out.columns) == ["id", "category", "label", "text", "keyword", "offer_only", "right"]
    assert list(out["right"]) == ["offer_only", "keyword", "offer_only"]
    assert out.loc[0, "keyword"] == 0.9 and out.loc[0, "offer_only"] == 0.1
    assert len(outofdomain.disagreements(_reports(), n=1)) == 1
    with pytest.raises(ValueError, match="at least two"):
        outofdomain.disagreements({"keyword": _reports()["keyword"]})
    other = outofdomain.evaluate(Keyword(), 0.5, SMALL.iloc[:4])
    with pytest.raises(ValueError, match="not on the same messages"):
        outofdomain.disagreements({"a": _reports()["keyword"], "b": other})


def test_metrics_are_json_able_without_the_error_list():
    import json

    out = outofdomain.metrics(_reports())
    assert set(out) == {"keyword", "offer_only"} and out["keyword"]["errors"] == 2
    assert out["offer_only"]["ham_kept"] == 1.0 and set(out["keyword"]["by_category"]) == {
        "work",
        "personal",
        "promotion",
        "caps_offer",
    }
    json.dumps(out)


def test_category_table_has_a_column_per_model():
    table = outofdomain.category_table(_reports())
    assert list(table.columns) == ["keyword", "offer_only"]
    assert list(table.index) == [("ham", "work"), ("ham", "personal"), ("spam", "promotion"), ("spam", "caps_offer")]
    assert table.loc[("ham", "work"), "keyword"] == 0.5 and table.loc[("ham", "work"), "offer_only"] == 1.0
    with pytest.raises(ValueError, match="at least one"):
        outofdomain.category_table({})
