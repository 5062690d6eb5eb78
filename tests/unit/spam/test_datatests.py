"""Data tests (:mod:`aml.spam.datatests`): the pandera schema with every failure collected, bounds learnt from a
reference profile (known answers on small frames), and the tolerances on the real collection: every random 70/15/15
split passes against the whole collection's profile, data of another kind fails."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from aml.core import config
from aml.spam import datatests, sms, stages
from aml.spam.datatests import Bound, bounds_from, check_data
from aml.spam.profiling import profile
from aml.spam.sms import DataValidationError


def frame(n_ham: int = 60, n_spam: int = 20, offset: int = 0) -> pd.DataFrame:
    ham = [f"see you at the station at {i + offset} ok" for i in range(n_ham)]
    spam = [f"WIN a £{i + offset}00 prize! Call 0906{i + offset:06d} now" for i in range(n_spam)]
    return pd.DataFrame({"label": ["ham"] * n_ham + ["spam"] * n_spam, "text": ham + spam}).assign(
        y=[0] * n_ham + [1] * n_spam
    )


def names(report) -> list[str]:
    return [f.name for f in report.failures]


# -- schema ----------------------------------------------------------------------------------------------------------


def test_valid_data_passes_the_schema():
    report = check_data(frame())
    assert report.passed and report.failures == [] and report.reference is None and report.checks > 10
    assert "passed" in str(report) and "schema only" in str(report)
    assert report.raise_on_failure() is report
    assert check_data(frame().assign(id=[f"m{i}" for i in range(80)])).passed  # an optional id column
    assert check_data(frame()[["label", "text"]]).passed  # y is optional


def test_every_schema_failure_is_listed():
    bad = frame(4, 2)
    bad.loc[0, "label"] = "eggs"
    bad.loc[1, "text"] = "   "
    bad.loc[2, "text"] = "tab\there"
    bad.loc[3, "y"] = 1  # ham with y = 1
    bad["colour"] = "red"
    report = check_data(bad)
    assert not report.passed
    assert set(names(report)) == {
        "schema.label.isin(['ham', 'spam'])",
        "schema.text.non-empty text",
        "schema.text.no control characters",
        "schema.frame.y agrees with label (spam = 1)",
        "schema.frame.column_in_schema",
    }
    by_name = {f.name: f for f in report.failures}
    assert by_name["schema.label.isin(['ham', 'spam'])"].value == 1 and "eggs" in str(report)
    assert by_name["schema.text.non-empty text"].limit == 0 and "first rows [1]" in str(report)
    with pytest.raises(DataValidationError) as caught:
        report.raise_on_failure()
    assert all(name in str(caught.value) for name in names(report))
    assert json.loads(json.dumps(report.to_dict()))["failures"][0].keys() == {"name", "message", "value", "limit"}
    assert list(datatests.failures_table(report).columns) == ["name", "message", "value", "limit"]


def test_missing_columns_labels_and_empty_frames_fail():
    assert "schema.frame.column_in_dataframe" in names(check_data(frame()[["text"]]))
    only_ham = check_data(frame(5, 0))
    assert names(only_ham) == ["schema.frame.both labels ['ham', 'spam'] occur"]
    empty = check_data(frame(0, 0))
    assert "schema.frame.at least one message" in names(empty)
    missing = frame(3, 1).astype({"text": "object"})
    missing.loc[0, "text"] = None
    assert "schema.text.not_nullable" in names(check_data(missing))
    with pytest.raises(TypeError, match="DataFrame"):
        check_data([("ham", "hi")])


def test_a_text_with_both_labels_fails():
    df = pd.concat([frame(), pd.DataFrame({"label": ["spam"], "text": ["see you at the station at 3 ok"], "y": [1]})])
    report = check_data(df.reset_index(drop=True))
    assert names(report) == ["conflicting_labels"] and report.failures[0].value == 1


# -- bounds ----------------------------------------------------------------------------------------------------------


def test_bound_intervals_known_answers():
    b = Bound("chars.median", "median", reference=100.0, half_width=25.0, spread=60.0, group="all", z=4.0)
    assert b.interval(10_000) == (75.0, 125.0)  # the tolerance is wider than 4 standard errors (2.4)
    assert b.interval(16) == (40.0, 160.0)  # 4 × 60 / 4 = 60: a small sample gets a wider interval
    assert b.interval(0) == (75.0, 125.0)
    share = Bound("target.spam_share", "spam share", 0.1, 0.05, math.sqrt(0.09), "all", 4.0)
    assert share.interval(4) == (0.0, 0.7)  # 0.1 ± 0.6, clipped at 0
    limit = Bound("invalid.too_long.share", "too long", 0.0, 0.005, 0.0, "all", upper_only=True)
    assert limit.interval(100) == (-math.inf, 0.005)


def test_bounds_from_a_reference_profile():
    reference = profile(frame())
    bounds = {b.key: b for b in bounds_from(reference, tolerance=0.25)}
    assert bounds["target.spam_share"].reference == 0.25 and bounds["target.spam_share"].half_width == 0.0625
    assert bounds["chars.spam.median"].reference == reference.value("chars.spam.median")
    assert bounds["chars.spam.median"].spread == pytest.approx(1.5 * reference.value("chars.spam.std"))
    assert bounds["words.median"].half_width == max(0.25 * reference.value("words.median"), 1.0)
    assert bounds["invalid.too_long.share"].upper_only and bounds["invalid.too_long.share"].half_width == 0.005
    assert not any(
        k.startswith(("chars.spam", "words.spam")) for k in (b.key for b in bounds_from(profile(frame(5, 0))))
    )
    with pytest.raises(ValueError, match="tolerance"):
        bounds_from(reference, tolerance=-1)


def test_the_same_data_passes_and_shifted_data_fails_against_a_reference():
    reference = profile(frame(), name="processed/run-1")
    same = check_data(frame(), reference)
    assert same.passed and same.reference == "processed/run-1" and same.checks > 40
    assert check_data(frame(offset=3), reference).passed  # other messages of the same kind

    spammy = check_data(frame(32, 48), reference)  # 60% spam
    assert not spammy.passed and "target.spam_share" in names(spammy)
    share = next(f for f in spammy.failures if f.name == "target.spam_share")
    assert share.value == pytest.approx(0.6) and share.limit[1] < 0.6 and "reference 0.25" in share.message

    shouting = frame().assign(text=lambda d: d["text"].str.upper())
    loud = check_data(shouting, reference)
    assert {"upper_ratio.median", "upper_ratio.ham.median"} <= set(names(loud))
    assert "target.spam_share" not in names(loud)

    no_spam = check_data(frame(60, 0), reference)  # a statistic of a label that is absent cannot be measured
    assert "chars.spam.median" in names(no_spam) and "not measurable" in str(no_spam)


# -- the real collection ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw():
    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set: these tests need the real collection")
    return sms.load_sms()[0]


@pytest.fixture(scope="module")
def processed(raw):
    return sms.preprocess(raw)[0]


@pytest.fixture(scope="module")
def reference(processed):
    return profile(processed, name="the real collection")


def test_the_real_collection_passes_raw_and_processed(raw, processed, reference):
    assert check_data(raw).passed  # the schema holds for the raw collection too (duplicates are allowed)
    report = check_data(processed, reference)
    assert report.passed, str(report)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_every_split_of_the_real_collection_passes(raw, reference, seed):
    # the tolerances were chosen on 30 seeds (90 splits): the largest deviation used 66% of its interval
    for name, part in zip(stages.SPLITS, stages.prepare_train_validation_test_split(raw, seed=seed), strict=True):
        report = check_data(part, reference)
        assert report.passed, f"seed {seed}, {name}: {report}"


def test_tweets_relabelled_as_sms_fail(reference):
    path = config.local_data_dir() / "tweet_sentiment" / "train.csv"
    tweets = pd.read_csv(path).dropna(subset=["text"])
    tweets = tweets.assign(text=tweets["text"].str.strip()).drop_duplicates("text")
    tweets = tweets[tweets["text"] != ""]
    # negative tweets play spam, at the collection's spam share, so the target check alone cannot catch them
    rng = np.random.default_rng(0)
    spam = tweets[tweets["sentiment"] == "negative"].sample(642, random_state=rng)
    ham = tweets[tweets["sentiment"] != "negative"].sample(4518, random_state=rng)
    df = pd.concat([ham.assign(label="ham"), spam.assign(label="spam")])[["label", "text"]].reset_index(drop=True)
    report = check_data(df, reference)
    assert not report.passed and "target.spam_share" not in names(report)
    # what makes spam spam is missing: long, digit-heavy messages with phone numbers and currency signs
    assert {
        "chars.spam.median",
        "digits.spam.median",
        "phone_numbers.spam.nonzero_share",
        "currency.spam.nonzero_share",
        "phone_numbers.nonzero_share",
    } <= set(names(report))


def test_a_real_sample_with_60_percent_spam_fails(processed, reference):
    spam = processed[processed["y"] == 1]
    ham = processed[processed["y"] == 0].sample(428, random_state=0)  # 642 spam = 60%
    report = check_data(pd.concat([ham, spam]), reference)
    assert "target.spam_share" in names(report)
    assert next(f for f in report.failures if f.name == "target.spam_share").value == pytest.approx(0.6)
    assert all(not name.startswith(("chars.spam", "digits.spam")) for name in names(report))  # spam is still spam


def test_real_texts_in_upper_case_fail(processed, reference):
    report = check_data(processed.assign(text=processed["text"].str.upper()), reference)
    assert {"upper_ratio.median", "upper_ratio.q75", "upper_ratio.ham.median", "upper_ratio.spam.median"} <= set(
        names(report)
    )
    assert "target.spam_share" not in names(report) and "chars.median" not in names(report)
