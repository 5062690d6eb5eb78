"""Data tests on the real SMS Spam Collection (``aml.spam.sms.load_sms``): schema, target distribution, key predictor
distributions and out-of-range values. They guard against a changed or corrupted copy of the data set (a new
download, a different encoding, a truncated file): every bound below was measured on the collection
(5,574 messages, ``/work/shared/notes/data-facts.md``) and is documented beside the assertion.
"""

from __future__ import annotations

import pandas as pd
import pytest

from aml.core import config
from aml.spam import sms

#: spam share of the raw collection (747 / 5,574) and after removing exact duplicates (642 / 5,160)
RAW_SPAM_SHARE, DEDUP_SPAM_SHARE = 0.134, 0.1244
SHARE_TOLERANCE = 0.01
#: the collection's size; the longest message has 910 characters and 171 words
N_ROWS, N_DISTINCT = 5574, 5160
MAX_CHARS, MAX_WORDS = 910, 171

CURRENCY = r"[£$€]"
URL = r"(?i)https?://|www\."


@pytest.fixture(scope="module")
def raw():
    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set: the data tests need the real collection")
    df, report = sms.load_sms()
    return df, report


@pytest.fixture(scope="module")
def df(raw):
    return raw[0]


@pytest.fixture(scope="module")
def features(df):
    """Per-message predictors: length in characters and words, digit count, currency sign, link."""
    text = df["text"]
    return pd.DataFrame(
        {
            "label": df["label"],
            "chars": text.str.len(),
            "words": text.str.split().str.len(),
            "digits": text.str.count(r"\d"),
            "currency": text.str.contains(CURRENCY),
            "url": text.str.contains(URL),
        }
    )


# -- schema ----------------------------------------------------------------------------------------------------------


def test_schema_columns_and_dtypes(df):
    assert list(df.columns) == ["label", "text"]
    assert all(pd.api.types.is_string_dtype(df[c]) for c in df.columns)
    assert df.notna().all().all()


def test_labels_are_ham_or_spam(df):
    assert set(df["label"].unique()) == set(sms.LABELS) == {"ham", "spam"}


def test_no_empty_text(df):
    assert (df["text"].str.strip().str.len() > 0).all()


def test_size_and_duplicates(raw):
    df, report = raw
    assert len(df) == N_ROWS
    assert report.distinct_texts == N_DISTINCT and report.duplicate_rows == N_ROWS - N_DISTINCT


def test_no_text_carries_both_labels(df):
    assert (df.groupby(df["text"].str.strip())["label"].nunique() == 1).all()


# -- target distribution ---------------------------------------------------------------------------------------------


def test_spam_share_raw(df):
    assert (df["label"] == "spam").mean() == pytest.approx(RAW_SPAM_SHARE, abs=SHARE_TOLERANCE)


def test_spam_share_deduplicated(df):
    clean, removed = sms.preprocess(df)
    assert removed == N_ROWS - N_DISTINCT
    assert clean["y"].mean() == pytest.approx(DEDUP_SPAM_SHARE, abs=SHARE_TOLERANCE)
    # duplicates are mostly spam campaigns: deduplication lowers the spam share
    assert clean["y"].mean() < (df["label"] == "spam").mean()


# -- key predictor distributions -------------------------------------------------------------------------------------
# measured medians (ham / spam): 52 / 149 characters, 11 / 25 words, 0 / 16 digits; currency sign in 0.4% / 34% of
# messages, a link in 0.04% / 14%. The bounds leave room for a re-release of the collection, not for a different
# data set.


@pytest.mark.parametrize(
    ("column", "ham_range", "spam_range"),
    [
        ("chars", (40, 65), (135, 160)),
        ("words", (8, 14), (21, 29)),
        ("digits", (0, 0), (10, 22)),
    ],
)
def test_predictor_medians_per_class(features, column, ham_range, spam_range):
    medians = features.groupby("label")[column].median()
    assert ham_range[0] <= medians["ham"] <= ham_range[1], medians
    assert spam_range[0] <= medians["spam"] <= spam_range[1], medians


@pytest.mark.parametrize(
    ("column", "ham_max", "spam_range"), [("currency", 0.01, (0.25, 0.45)), ("url", 0.005, (0.08, 0.20))]
)
def test_spam_cue_shares_per_class(features, column, ham_max, spam_range):
    share = features.groupby("label")[column].mean()
    assert share["ham"] <= ham_max, share
    assert spam_range[0] <= share["spam"] <= spam_range[1], share


def test_spam_is_longer_than_ham(features):
    # the single strongest length cue: three quarters of spam is longer than three quarters of ham
    q = features.groupby("label")["chars"].quantile([0.25, 0.75]).unstack()
    assert q.loc["spam", 0.25] > q.loc["ham", 0.75]


# -- out-of-range values ---------------------------------------------------------------------------------------------


def test_message_length_in_range(features):
    assert features["chars"].between(1, MAX_CHARS).all(), features["chars"].max()
    assert features["words"].between(1, MAX_WORDS).all(), features["words"].max()


def test_no_control_characters(df):
    # no C0 control characters (tab, newline, NUL...) nor DEL: the file is one message per line, tab-separated
    assert not df["text"].str.contains(r"[\x00-\x1f\x7f]").any()
    # C1 code points (U+0080-U+009F) are Windows-1252 quotes and dashes decoded as Latin-1: 35 messages carry them;
    # more would mean a copy with a different encoding
    assert df["text"].str.contains(r"[\x80-\x9f]").sum() <= 40


def test_no_replacement_characters(df):
    # U+FFFD appears when a file is decoded with the wrong encoding
    assert not df["text"].str.contains("\ufffd").any()
