import json

import numpy as np
import pandas as pd
import pytest

from aml.spam import behaviour


class Scripted:
    """A stand-in model: propensity 0.9 for texts containing any of ``spam_words``, else 0.1."""

    def __init__(self, spam_words=("win", "prize", "09061234567", "£")):
        self.spam_words = spam_words

    def predict_proba(self, texts):
        p = np.array([0.9 if any(w in t.lower() for w in self.spam_words) else 0.1 for t in texts])
        return np.column_stack([1 - p, p])


class Constant:
    def __init__(self, p):
        self.p = p

    def predict_proba(self, texts):
        return np.tile([1 - self.p, self.p], (len(list(texts)), 1))


def test_bank_is_large_balanced_and_distinct():
    df = behaviour.bank_frame()
    assert len(df) >= 60
    assert set(df["category"]) == set(behaviour.CATEGORIES)
    assert df["category"].value_counts().min() >= 10
    assert not df["text"].str.lower().duplicated().any()
    assert set(behaviour.EXPECTED) == set(behaviour.CATEGORIES)
    assert (df["expected"] == df["category"].map(behaviour.EXPECTED)).all()
    # the labels follow the collection's rule: promotions nobody asked for are spam, notices asked for are ham
    assert {"Our new autumn menu starts next week. Come and try it with your friends!"} <= set(
        df.loc[df["category"] == behaviour.PROMOTION, "text"]
    )
    assert (df.loc[df["category"] == behaviour.PROMOTION, "expected"] == 1).all()
    assert (df.loc[df["category"] == behaviour.REQUESTED_NOTICE, "expected"] == 0).all()
    assert {"Test text", "This is a sample text for testing."} <= set(df.loc[df["category"] == "placeholder", "text"])


def test_run_bank_columns_and_pass_logic():
    table = behaviour.run_bank(Constant(0.3), threshold=0.5)
    assert list(table.columns) == ["text", "category", "expected", "propensity", "prediction", "passed"]
    # everything predicted ham: exactly the ham-like rows pass
    assert (table["prediction"] == 0).all() and (table["passed"] == (table["expected"] == 0)).all()
    assert behaviour.pass_rate(table) == pytest.approx((table["expected"] == 0).mean())
    # the threshold rule is propensity >= threshold
    assert (behaviour.run_bank(Constant(0.5), threshold=0.5)["prediction"] == 1).all()


def test_pass_rates_per_category():
    table = behaviour.run_bank(Constant(0.9), threshold=0.5)
    rates = behaviour.pass_rates(table)
    assert rates["spam"] == 1.0 and rates["promotion"] == 1.0
    assert rates["ham"] == 0.0 and rates["requested_notice"] == 0.0 and rates["placeholder"] == 0.0
    assert rates["all"] == pytest.approx(behaviour.pass_rate(table))


def test_pass_rate_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        behaviour.pass_rate(pd.DataFrame({"passed": []}))


def test_invariance_variants_fill_names_and_times():
    df = behaviour.invariance_variants()
    assert not df["text"].str.contains(r"[{}]").any()
    first = df[df["group"] == 0]
    assert len(first) == len(behaviour.NAMES) * len(behaviour.TIMES)
    assert (df.groupby("group")["variant"].min() == 0).all()


def test_invariance_detects_a_name_sensitive_model():
    model = Scripted()
    assert behaviour.invariance(model, 0.5)["passed"].all()
    sensitive = Scripted(spam_words=("win", "prize", "09061234567", "£", "priya"))
    table = behaviour.invariance(sensitive, 0.5)
    assert not table["passed"].all()
    assert table.loc[~table["passed"], "text"].str.contains("Priya").all()


def test_invariance_fails_when_the_reference_is_wrong():
    # a constant model is perfectly invariant but wrong on the spam groups
    table = behaviour.invariance(Constant(0.1), 0.5)
    assert not table.loc[table["expected"] == 1, "passed"].any()
    assert table.loc[table["expected"] == 0, "passed"].all()


def test_directional_needs_a_strict_rise():
    assert behaviour.directional(Scripted())["passed"].all()
    assert not behaviour.directional(Constant(0.4))["passed"].any()
    modified = behaviour.add_spam_cues("hello")
    assert "WIN" in modified and behaviour.PREMIUM_NUMBER in modified and "hello" in modified


def test_summary_reports_every_check():
    s = behaviour.summary(Scripted(), 0.5)
    assert s["bank_size"] == len(behaviour.BANK)
    assert set(s["bank_pass_rate_by_category"]) == set(behaviour.CATEGORIES)
    assert s["invariance_pass_rate"] == 1.0 and s["directional_pass_rate"] == 1.0
    assert len(s["bank_failures"]) == round((1 - s["bank_pass_rate"]) * s["bank_size"])


def test_gate_checks_compare_each_rate_with_its_limit():
    result = {
        "bank_pass_rate": 0.9,
        "bank_pass_rate_by_category": {"spam": 1.0, "ham": 0.95},
        "invariance_pass_rate": 1.0,
        "directional_pass_rate": 0.5,
    }
    checks = behaviour.gate_checks(result)
    assert set(checks) == {f"behaviour:{k}" for k in behaviour.GATE}
    assert checks["behaviour:spam"] == {"passed": True, "value": 1.0, "limit": behaviour.MIN_PASS_RATE}
    assert not checks["behaviour:ham"]["passed"] and not checks["behaviour:directional"]["passed"]
    assert checks["behaviour:bank"] == {"passed": True, "value": 0.9, "limit": behaviour.BANK_FLOOR}
    assert behaviour.gate_checks(result, {"bank": 0.95}) == {
        "behaviour:bank": {"passed": False, "value": 0.9, "limit": 0.95}
    }
    with pytest.raises(KeyError, match="unknown behavioural checks"):
        behaviour.gate_checks(result, {"placeholders": 1.0})


# -- the out-of-domain part of the gate -------------------------------------------------------------------------------


def _blocking(n_ham: int):
    """A "model" (texts -> propensities) that is right on the out-of-domain set except that it blocks the first
    ``n_ham`` ham messages."""
    from aml.spam import outofdomain

    data = outofdomain.load()
    blocked = set(data.loc[data["label"] == "ham", "text"].head(n_ham))
    spam = set(data.loc[data["label"] == "spam", "text"])
    return lambda texts: np.array([1.0 if t in spam or t in blocked else 0.0 for t in texts])


def test_out_of_domain_figures_without_a_champion_gate_nothing():
    figures, checks = behaviour.out_of_domain_checks(_blocking(5), 0.5)
    assert checks == {}
    assert figures["spam_caught"] == 1.0 and figures["ham_kept"] == pytest.approx(1 - 5 / 102)
    assert figures["by_category"]["personal"] == 1.0 and "ham_lost" not in figures


@pytest.mark.parametrize("lost, passed", [(0, True), (behaviour.OOD_HAM_TOLERANCE, True), (3, False)])
def test_out_of_domain_gate_refuses_a_model_that_blocks_ham_the_champion_kept(lost, passed):
    champion = _blocking(1)  # blocks the first ham: losing it again is not a loss
    figures, checks = behaviour.out_of_domain_checks(_blocking(1 + lost), 0.5, champion, 0.5)
    assert checks["out_of_domain:ham_lost"] == {
        "passed": passed,
        "value": float(lost),
        "limit": float(behaviour.OOD_HAM_TOLERANCE),
    }
    assert len(figures["ham_lost"]) == lost and figures["champion_ham_kept"] == pytest.approx(101 / 102)
    assert all(row["propensity"] == 1.0 and row["category"] for row in figures["ham_lost"])
    json.dumps(figures)
