import json
import math

import numpy as np
import pandas as pd
import pytest

from aml.core.metrics import binary_metrics
from aml.mlops import drift

# --- KS -------------------------------------------------------------------------------------------------------------


def test_ks_identical_samples_do_not_drift():
    x = np.random.default_rng(0).normal(size=500)
    stat = drift.ks(x, x)
    assert stat.value == 0.0
    assert stat.detail["p_value"] == pytest.approx(1.0)
    assert not stat.drifted


def test_ks_statistic_matches_hand_computation():
    # ECDFs: reference reaches 0.4 at x=2 where current is still 0, and the gap is never larger
    stat = drift.ks([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert stat.value == pytest.approx(0.4)
    assert stat.threshold == drift.KS_MIN_EFFECT
    assert not stat.drifted  # 5 vs 5 points: p is far above 0.01


def test_ks_flags_a_shifted_normal():
    rng = np.random.default_rng(1)
    stat = drift.ks(rng.normal(size=2000), rng.normal(1.0, 1.0, size=300))
    assert stat.drifted
    assert stat.value > 0.3 and stat.detail["p_value"] < 1e-10


def test_ks_effect_size_keeps_a_tiny_significant_shift_quiet():
    rng = np.random.default_rng(2)
    stat = drift.ks(rng.normal(size=50_000), rng.normal(0.05, 1.0, size=50_000))
    assert stat.detail["p_value"] < drift.KS_ALPHA  # significant...
    assert stat.value < drift.KS_MIN_EFFECT  # ...but negligible
    assert not stat.drifted


def test_ks_refuses_nan_and_empty():
    with pytest.raises(ValueError, match="NaN"):
        drift.ks([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        drift.ks([], [1.0])


# --- PSI ------------------------------------------------------------------------------------------------------------


def test_psi_identical_samples_is_zero():
    x = np.random.default_rng(0).normal(size=1000)
    stat = drift.psi(x, x)
    assert stat.value == pytest.approx(0.0)
    assert stat.detail["bins"] == 10
    assert not stat.drifted


def test_psi_matches_hand_computation():
    # reference 0..9, two bins split at the median (4): shares 0.5/0.5; current [0, 0, 0, 9]: 0.75/0.25
    stat = drift.psi(np.arange(10), [0, 0, 0, 9], bins=2)
    assert stat.detail["edges"] == [4.0]
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert stat.value == pytest.approx(expected)  # = 0.25 ln 3 ≈ 0.2747
    assert stat.drifted


def test_psi_floors_empty_bins_at_epsilon():
    stat = drift.psi(np.arange(10), [9, 9, 9], bins=2)
    eps = drift.PSI_EPSILON
    expected = (eps - 0.5) * math.log(eps / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert stat.value == pytest.approx(expected)
    assert math.isfinite(stat.value)


def test_psi_gives_each_heavy_value_of_a_discrete_feature_its_own_bin():
    reference = [0] * 70 + [1] * 20 + [2] * 10  # a count: 70% zeros
    assert drift.quantile_edges(reference, 10).tolist() == [0.0, 1.0]  # bins {0}, {1}, {>1}
    assert drift.psi(reference, reference).value == pytest.approx(0.0)
    stat = drift.psi(reference, [0] * 50 + [1] * 30 + [2] * 20)
    expected = (0.5 - 0.7) * math.log(0.5 / 0.7) + (0.3 - 0.2) * math.log(0.3 / 0.2) + (0.2 - 0.1) * math.log(2)
    assert stat.detail["bins"] == 3
    assert stat.value == pytest.approx(expected)


def test_discrete_counts_from_the_same_distribution_do_not_drift():
    rng = np.random.default_rng(3)
    stats = drift.feature_drift(
        pd.DataFrame({"n": rng.poisson(1.5, 3000)}), pd.DataFrame({"n": rng.poisson(1.5, 300)}), ["n"]
    )
    assert [s.name for s in stats] == ["n:ks", "n:psi"]
    assert not any(s.drifted for s in stats)


def test_psi_flags_a_shifted_normal():
    rng = np.random.default_rng(4)
    assert drift.psi(rng.normal(size=2000), rng.normal(1.0, 1.0, size=300)).drifted


def test_feature_drift_applies_bonferroni_and_checks_columns():
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0), "c": np.arange(20.0), "d": np.arange(20.0)})
    stats = drift.feature_drift(frame, frame, ["a", "b", "c", "d"])
    assert {s.detail["alpha"] for s in stats if s.name.endswith(":ks")} == {drift.KS_ALPHA / 4}
    with pytest.raises(KeyError, match="missing"):
        drift.feature_drift(frame, frame.drop(columns="d"), ["d"])


def test_feature_drift_ks_is_one_test_per_column_done_at_once():
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"a": rng.normal(size=400), "b": rng.poisson(2, 400).astype(float)})
    current = pd.DataFrame({"a": rng.normal(0.3, 1, 200), "b": rng.poisson(2, 200).astype(float)})
    stats = {s.name: s for s in drift.feature_drift(reference, current, ["a", "b"], n_tests=1)}
    for column in ("a", "b"):
        alone = drift.ks(reference[column], current[column], name=f"{column}:ks")
        assert stats[f"{column}:ks"] == alone
    assert [n.split(":")[1] for n in stats] == ["ks", "psi", "ks", "psi"]
    with pytest.raises(ValueError, match="current column 'a' contains 1 NaN"):
        drift.feature_drift(reference, current.assign(a=[np.nan, *current["a"][1:]]), ["a"])


# --- texts ----------------------------------------------------------------------------------------------------------


def test_oov_rate_known_answer():
    # every reference text has one word of its own, so whichever two are held out, half their tokens are unseen
    reference = [f"common u{i}" for i in range(10)]
    stat = drift.oov_rate(reference, ["common new", "common common"], analyzer=str.split, holdout=0.2)
    assert stat.detail["reference_oov"] == pytest.approx(0.5)
    assert stat.detail["current_oov"] == pytest.approx(0.25)
    assert stat.value == pytest.approx(0.5)
    assert not stat.drifted
    stat = drift.oov_rate(reference, ["x y", "z w"], analyzer=str.split, holdout=0.2)
    assert stat.value == pytest.approx(2.0)
    assert stat.drifted


def test_oov_rate_default_analyzer_lowercases_and_refuses_missing_texts():
    reference = ["Hello World", "hello world", "HELLO world", "hello WORLD", "Hello world"]
    assert drift.oov_rate(reference, ["HELLO WORLD"]).detail["current_oov"] == 0.0
    with pytest.raises(ValueError, match="non-string"):
        drift.oov_rate(reference, ["hello", None])


WORDS = [f"w{i}" for i in range(300)]


def random_texts(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 8)) for _ in range(n)]


def spam_texts(n, seed):
    rng = np.random.default_rng(seed)
    return [
        f"WIN {rng.choice(['cash', 'a prize', 'a holiday'])} of £{rng.integers(100, 5000)} now! "
        f"call 0{rng.integers(800, 900)}{rng.integers(100000, 999999)} to claim, txt STOP to end"
        for _ in range(n)
    ]


def weather_texts(n, seed):
    rng = np.random.default_rng(seed)
    return [
        f"weather report for {rng.choice(['London', 'Leeds', 'Bristol'])}: {rng.choice(['sunny', 'cloudy', 'rain'])}"
        f" with highs of {rng.integers(5, 30)} degrees and light winds from the {rng.choice(['north', 'west'])}"
        for _ in range(n)
    ]


def test_domain_classifier_auc_is_chance_for_two_halves_of_the_same_texts():
    texts = random_texts(400, seed=0)
    stat = drift.domain_classifier_auc(texts[:200], texts[200:], seed=0)
    assert abs(stat.value - 0.5) < 0.1
    assert not stat.drifted
    assert stat.detail["n_per_side"] == 200


def test_domain_classifier_auc_is_near_one_for_different_texts_and_deterministic():
    stat = drift.domain_classifier_auc(spam_texts(150, 0), weather_texts(100, 1), seed=3, folds=5)
    assert stat.value > 0.98
    assert stat.drifted
    assert stat.detail["n_per_side"] == 100  # balanced by subsampling the larger side
    again = drift.domain_classifier_auc(spam_texts(150, 0), weather_texts(100, 1), seed=3, folds=5)
    assert again.value == stat.value


# --- performance ----------------------------------------------------------------------------------------------------


def scored(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    propensity = np.clip(0.35 * y + rng.normal(0.3, 0.2, n), 0, 1)
    return y.astype(int), propensity


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data():
    y, p = scored(2000, 0)
    point = binary_metrics(y[:200], p[:200], 0.5)["precision"]
    small = drift.bootstrap_interval(y[:200], p[:200], 0.5, "precision", n=100, seed=0)
    large = drift.bootstrap_interval(y, p, 0.5, "precision", n=100, seed=0)
    assert small[0] < point < small[1]
    assert large[1] - large[0] < (small[1] - small[0]) * 0.6  # ~ 1/sqrt(10) as wide, within noise
    assert drift.bootstrap_interval(y[:200], p[:200], 0.5, "precision", n=100, seed=0) == small  # seeded


def test_bootstrap_interval_batch_size_and_bad_metric():
    y, p = scored(2000, 1)
    full = drift.bootstrap_interval(y, p, 0.5, lambda yy, pp, t: float(np.mean(yy)), n=300)
    batch = drift.bootstrap_interval(y, p, 0.5, lambda yy, pp, t: float(np.mean(yy)), n=300, size=200)
    assert batch[1] - batch[0] > 2 * (full[1] - full[0])  # a 200-row batch varies ~3x more than 2,000 rows
    with pytest.raises(ValueError, match="unknown metric"):
        drift.bootstrap_interval(y, p, 0.5, "auc")


def test_expected_interval_and_performance_alert():
    y, p = scored(1000, 2)
    expected = drift.expected_interval(y, p, 0.5, "recall", n=200)
    assert expected["low"] < expected["mean"] < expected["high"]
    assert not drift.performance_alert(expected["mean"], expected, name="recall").drifted
    low = drift.performance_alert(expected["low"] - 0.01, expected, name="recall")
    assert low.drifted and low.detail["side"] == "below"
    assert drift.performance_alert(expected["high"] + 0.01, expected).detail["side"] == "above"


def test_performance_alert_on_a_history_uses_the_last_window():
    expected = {"mean": 0.9, "low": 0.85, "high": 0.95}
    history = [0.9, 0.91, 0.7, 0.99]
    assert drift.performance_alert(history, expected, window=1).detail["side"] == "above"
    stat = drift.performance_alert(history, expected, window=2)
    assert stat.value == pytest.approx(0.845) and stat.drifted
    assert not drift.performance_alert(history, expected, window=4).drifted  # mean 0.875
    alerts = drift.performance_alerts({"aucpr": 0.8, "recall": 0.9}, {"aucpr": expected, "f1": expected})
    assert [(a.name, a.drifted) for a in alerts] == [("aucpr", True)]
    with pytest.raises(KeyError, match="high"):
        drift.performance_alert(0.9, {"mean": 0.9, "low": 0.8})


# --- slices ---------------------------------------------------------------------------------------------------------


def test_slice_metrics_and_worst_slice():
    df = pd.DataFrame({"y": [1, 1, 0, 0, 1, 1, 0, 0], "pred": [1, 1, 0, 0, 0, 0, 0, 1], "short": [1] * 4 + [0] * 4})
    accuracy = lambda part: float((part["y"] == part["pred"]).mean())  # noqa: E731
    table = drift.slice_metrics(df, {"short": df["short"] == 1, "long": df["short"] == 0}, accuracy)
    assert table.loc["all", "metric"] == pytest.approx(5 / 8)
    assert table.loc["short", "metric"] == 1.0 and table.loc["long", "metric"] == 0.25
    assert table.loc["long", "n"] == 4
    assert drift.worst_slice(table) == "long"
    assert drift.worst_slice(table, higher_is_better=False) == "short"


def test_slice_metrics_undefined_slice_gets_nan_and_a_note():
    df = pd.DataFrame({"y": [0, 1, 0, 1], "p": [0.1, 0.9, 0.2, 0.8]})
    table = drift.slice_metrics(
        df, {"hams": df["y"] == 0, "none": np.zeros(4, bool)}, lambda part: binary_metrics(part["y"], part["p"], 0.5)
    )
    assert table.loc["all", "recall"] == 1.0
    assert np.isnan(table.loc["hams", "recall"]) and "both classes" in table.loc["hams", "note"]
    assert table.loc["none", "note"] == "empty slice"
    with pytest.raises(ValueError, match="shape"):
        drift.slice_metrics(df, {"bad": [True]}, len)


# --- report ---------------------------------------------------------------------------------------------------------


def frames(shift, seed=0):
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {"length": rng.normal(80, 20, 600), "digits": rng.poisson(2, 600), "text": random_texts(600, seed)}
    )
    reference["propensity"] = rng.beta(1, 5, 600)
    current = pd.DataFrame(
        {
            "length": rng.normal(80 + shift, 20, 200),
            "digits": rng.poisson(2, 200),
            "text": spam_texts(200, seed) if shift else random_texts(200, seed + 1),
        }
    )
    current["propensity"] = rng.beta(1 + shift / 10, 5, 200)
    return reference, current


def test_drift_report_without_drift():
    reference, current = frames(shift=0)
    report = drift.drift_report(reference, current, ["length", "digits"], "text", "propensity")
    assert not report.drift, report.summary()
    assert list(report.summary().index) == [
        "length:ks", "length:psi", "digits:ks", "digits:psi", "propensity:ks", "propensity:psi",
        "text:oov_ratio", "text:domain_auc",
    ]  # fmt: skip
    assert report.n_reference == 600 and report.n_current == 200


def test_drift_report_with_drift_is_json_able():
    reference, current = frames(shift=40)
    report = drift.drift_report(reference, current, ["length", "digits"], "text", "propensity")
    assert report.drift
    assert {"length:ks", "length:psi", "text:oov_ratio", "text:domain_auc"} <= set(report.drifted())
    assert "digits:ks" not in report.drifted()
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["drift"] is True and len(payload["stats"]) == 8
    assert payload["drifted"] == report.drifted()


def test_drift_report_html_is_self_contained():
    reference, current = frames(shift=40)
    report = drift.drift_report(reference, current, ["length", "digits"], propensity_column="propensity")
    page = report.to_html()
    assert page.count('<img alt="') == 3  # length, digits, propensity
    assert 'src="data:image/png;base64,' in page
    assert "http" not in page.lower() and "<script" not in page


def test_drift_report_needs_something_to_check():
    reference, current = frames(shift=0)
    with pytest.raises(ValueError, match="nothing to check"):
        drift.drift_report(reference, current)
    with pytest.raises(KeyError, match="text column"):
        drift.drift_report(reference, current.drop(columns="text"), text_column="text")


def test_drift_report_takes_a_separate_propensity_reference():
    reference, current = frames(shift=0)
    shifted = np.random.default_rng(5).beta(5, 1, 400)  # mostly near 1: unlike the current propensities
    report = drift.drift_report(
        reference.drop(columns="propensity"), current, ["length"], None, "propensity", reference_propensity=shifted
    )
    assert report.drifted() == ["propensity:ks", "propensity:psi"]
    assert report.samples["propensity"][0].size == 400
    assert {s.detail["alpha"] for s in report.stats if s.name.endswith(":ks")} == {drift.KS_ALPHA / 2}
    with pytest.raises(ValueError, match="needs propensity_column"):
        drift.drift_report(reference, current, ["length"], reference_propensity=shifted)


def test_report_page_renders_a_stored_record_with_its_histograms():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"length": rng.normal(50, 10, 400)})
    cur = pd.DataFrame({"length": rng.normal(80, 10, 300)})
    record = json.loads(json.dumps(drift.drift_report(ref, cur, ["length"]).to_dict()))  # as read back from a store
    histogram = record["histograms"]["length"]
    assert len(histogram["edges"]) == 31 and sum(histogram["reference"]) == 400 and sum(histogram["current"]) == 300
    page = drift.report_page(record, "stored batch")
    assert page.startswith("<!DOCTYPE html>") and "stored batch: DRIFT" in page
    assert page.count("data:image/png;base64,") == 1 and "http" not in page


def test_performance_alert_below_only_ignores_a_better_metric():
    expected = {"mean": 0.9, "low": 0.85, "high": 0.95}
    above = drift.performance_alert(0.99, expected, "precision", below_only=True)
    assert not above.drifted and above.detail["side"] == "above"
    assert drift.performance_alert(0.99, expected, "precision").drifted
    assert drift.performance_alert(0.8, expected, "precision", below_only=True).drifted


def test_histogram_figure_of_a_record_marks_drifted_columns():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)})
    cur = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.normal(3, 1, 300)})
    record = drift.drift_report(ref, cur, ["a", "b"]).to_dict()
    fig = drift.histogram_figure(record, per_row=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b — DRIFT"]
    assert len(fig.axes) == 3 and not fig.axes[2].get_visible()
    with pytest.raises(ValueError, match="no histograms"):
        drift.histogram_figure({"stats": []})


def test_a_prepared_text_reference_gives_the_same_answers():
    reference = [f"see you at the {place} at {i}" for i, place in enumerate(["cafe", "station", "park"] * 40)]
    current = [f"WIN a prize now {i} call 0906" for i in range(60)]
    prepared = drift.text_reference(reference, max_samples=60, seed=0)
    assert prepared.hashed.shape == (60, drift.DOMAIN_FEATURES) and 0 < len(prepared.vocabulary)
    assert drift.oov_rate(prepared, current).value == drift.oov_rate(reference, current, seed=0).value
    auc = drift.domain_classifier_auc(prepared, current, max_samples=60)
    assert auc.drifted and auc.value > 0.95 and auc.detail["n_per_side"] == 60
    assert drift.text_reference(reference, max_samples=0).hashed is None  # for the OOV check only
    with pytest.raises(ValueError, match="≥ 2 reference texts"):
        drift.text_reference(["one"])


def test_hashed_ngrams_are_what_sklearns_hashing_vectorizer_gives():
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = ["Call me at 5, OK?", "", "WIN win a prize prize now", "naïve café – ça va", spam_texts(1, 0)[0]]
    vectorizer = HashingVectorizer(
        ngram_range=(1, 2), alternate_sign=False, norm=None, n_features=drift.DOMAIN_FEATURES
    )
    analyzer = drift.default_analyzer()
    ours = drift._hashed(analyzer(t) for t in texts)
    assert ours.shape == (5, drift.DOMAIN_FEATURES)
    assert (ours != vectorizer.transform(texts)).nnz == 0


def test_domain_classifier_auc_refuses_a_reference_prepared_for_the_oov_check_only():
    prepared = drift.text_reference(random_texts(50, 0), max_samples=0)
    with pytest.raises(ValueError, match="max_samples=0"):
        drift.domain_classifier_auc(prepared, random_texts(50, 1))
    frame = pd.DataFrame({"text": random_texts(50, 1)})
    with pytest.raises(ValueError, match="max_samples=0"):
        drift.drift_report(frame, frame, text_column="text", text_reference=prepared)


def test_drift_report_text_checks_with_or_without_a_prepared_reference_agree():
    reference = pd.DataFrame({"text": random_texts(200, 0)})
    current = pd.DataFrame({"text": spam_texts(100, 1)})
    plain = drift.drift_report(reference, current, text_column="text", max_samples=100)
    prepared = drift.text_reference(reference["text"], max_samples=100)
    again = drift.drift_report(pd.DataFrame(), current, text_column="text", max_samples=100, text_reference=prepared)
    assert [s.to_dict() for s in plain.stats] == [s.to_dict() for s in again.stats]
    assert plain.drifted() == ["text:oov_ratio", "text:domain_auc"]


# --- the registry of checks -----------------------------------------------------------------------------------------


def test_the_registry_holds_the_four_checks_in_report_order():
    assert [(c.name, c.kind) for c in drift.CHECKS] == [
        ("ks", "numeric"),
        ("psi", "numeric"),
        ("oov_ratio", "text"),
        ("domain_auc", "text"),
    ]
    assert drift.thresholds() == {
        "ks": drift.KS_MIN_EFFECT,
        "psi": drift.PSI_THRESHOLD,
        "oov_ratio": drift.OOV_MAX_RATIO,
        "domain_auc": drift.DOMAIN_AUC_THRESHOLD,
    }
    assert drift.check_of("length:psi").name == "psi" and drift.check_of(drift.DOMAIN_CHECK).name == "domain_auc"
    assert drift.check_of("length:nothing") is None


def test_the_report_runs_what_the_registry_holds():
    reference, current = frames(shift=40)
    report = drift.drift_report(reference, current, ["length", "digits"], "text", "propensity")
    names = [s.name for s in report.stats]
    assert names == [f"{c}:{k}" for c in ("length", "digits", "propensity") for k in ("ks", "psi")] + [
        drift.OOV_CHECK,
        drift.DOMAIN_CHECK,
    ]


class MeanShift(drift.NumericCheck):
    """A check as a user would add one: the shift of the mean, in reference standard deviations."""

    name = "mean_shift"
    description = "shift of the mean in reference standard deviations"
    threshold = 0.5

    def run(self, reference, current, columns, alpha=None):
        shift = np.abs(current.mean(axis=0) - reference.mean(axis=0)) / reference.std(axis=0)
        return [
            drift.Stat(f"{c}:{self.name}", float(v), self.threshold, bool(v > self.threshold))
            for c, v in zip(columns, shift, strict=True)
        ]


def test_a_new_check_is_one_class_registered():
    check = drift.register(MeanShift())
    try:
        assert [c.name for c in drift.CHECKS] == ["ks", "psi", "mean_shift", "oov_ratio", "domain_auc"]
        with pytest.raises(ValueError, match="already registered"):
            drift.register(MeanShift())
        reference, current = frames(shift=40)
        report = drift.drift_report(reference, current, ["length"], "text")
        assert [s.name for s in report.stats][:3] == ["length:ks", "length:psi", "length:mean_shift"]
        assert "length:mean_shift" in report.drifted()
        page = report.to_html()
        assert "<td>length:mean_shift</td>" in page and "shift of the mean in reference standard deviations" in page
    finally:
        assert drift.unregister("mean_shift") is check
    assert "mean_shift" not in drift.thresholds()
    with pytest.raises(KeyError, match="no drift check named"):
        drift.unregister("mean_shift")
    with pytest.raises(TypeError, match="NumericCheck or a TextCheck"):
        drift.register(drift.DriftCheck())
