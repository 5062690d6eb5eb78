"""The SMS data profile (:mod:`aml.spam.profiling`): known answers on hand-made messages, the JSON round trip, the
self-contained HTML page, and the profile of the real collection against its documented facts."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from aml.core import config
from aml.spam import profiling, sms
from aml.spam.profiling import FEATURES, MAX_CHARS, Profile, message_features, profile


def test_message_features_known_answers():
    texts = pd.Series(
        [
            "WIN £100 now! Call 09061701461 or www.win.com",
            "ok see you",
            "",
            "Price $5 or €5, 12345 678901 http://a.b https://c.d",
            "ÉTÉ été",
        ],
        index=[10, 11, 12, 13, 14],
    )
    f = message_features(texts)
    assert list(f.columns) == list(FEATURES) and list(f.index) == [10, 11, 12, 13, 14]
    assert f.loc[10].to_dict() == pytest.approx(
        {
            "chars": 45,
            "words": 7,
            "digits": 14,
            "digit_share": 14 / 45,
            "upper_ratio": 4 / 21,  # W, I, N and the C of "Call" among 21 letters
            "currency": 1,
            "urls": 1,
            "phone_numbers": 1,  # 09061701461; "100" is too short
        }
    )
    assert f.loc[11, ["chars", "words", "digits", "upper_ratio", "currency", "urls"]].tolist() == [10, 3, 0, 0, 0, 0]
    assert f.loc[12].tolist() == [0] * len(FEATURES)  # no characters, no letters: shares are 0, not NaN
    assert f.loc[13, ["currency", "urls", "phone_numbers", "digits"]].tolist() == [2, 2, 2, 13]
    assert f.loc[14, "upper_ratio"] == pytest.approx(0.5)  # accented capitals count as upper case
    lists = message_features(["a", None])  # any iterable; a missing text counts as empty
    assert lists["chars"].tolist() == [1, 0] and lists.index.tolist() == [0, 1]


def hand_made() -> pd.DataFrame:
    rows = [
        ("ham", "see you at 5"),
        ("ham", "see you at 5"),  # a duplicate row
        ("ham", "  see you at 5 "),  # a duplicate text once stripped
        ("spam", "WIN £500 CALL 0906123456"),
        ("ham", "   "),  # empty
        ("eggs", "bad label"),
        ("spam", "line\nbreak"),  # a control character
        ("ham", "it\x92s"),  # a C1 code point
        ("spam", "x" * (MAX_CHARS + 1)),  # too long
        ("ham", "WIN £500 CALL 0906123456"),  # the spam text with the other label
        (None, "no label"),
    ]
    return pd.DataFrame(rows, columns=["label", "text"]).assign(y=[0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0])


def test_profile_known_answers():
    p = profile(hand_made())
    assert p.rows == 11
    assert p.columns["label"] == {"dtype": "str", "missing": 1, "unique": 3}
    assert p.columns["y"]["dtype"] == "int64" and p.columns["text"]["unique"] == 9
    assert p.duplicates == {"rows": 1, "texts": 3}  # "see you at 5" twice more, the spam text once more
    assert p.target["counts"] == {"<missing>": 1, "eggs": 1, "ham": 6, "spam": 3}
    assert p.target["spam_share"] == pytest.approx(3 / 11) and sum(p.target["shares"].values()) == pytest.approx(1)
    counts = {name: entry["count"] for name, entry in p.invalid.items()}
    assert counts == {
        "missing_label": 1,
        "unknown_label": 1,
        "missing_text": 0,
        "empty_text": 1,
        "control_characters": 1,
        "c1_characters": 1,
        "replacement_character": 0,
        "too_long": 1,
        "y_mismatch": 1,  # the ham message with y = 1
        "conflicting_labels": 1,
    }
    assert p.invalid["unknown_label"]["examples"] == ["eggs"] and p.invalid["too_long"]["share"] == pytest.approx(
        1 / 11
    )
    assert p.invalid["conflicting_labels"]["examples"] == ["WIN £500 CALL 0906123456"]
    chars = p.features["chars"]
    assert chars["stats"]["max"] == MAX_CHARS + 1 and chars["stats"]["min"] == 3 and chars["stats"]["count"] == 11
    assert set(chars["by_label"]) == {"ham", "spam"}  # per label for ham and spam only
    assert chars["by_label"]["spam"]["median"] == 24
    assert p.features["phone_numbers"]["by_label"]["spam"]["nonzero_share"] == pytest.approx(1 / 3)
    for name, feature in p.features.items():
        hist = feature["hist"]
        assert hist["edges"] == list(FEATURES[name].edges)
        assert sum(hist["counts"]["all"]) == 11, name  # every message in a bin, the too-long one in the last
        assert sum(hist["counts"]["spam"]) == 3 and sum(hist["counts"]["ham"]) == 6
    assert p.features["chars"]["hist"]["counts"]["all"][-1] == 1


def test_profile_without_labels_and_of_an_empty_frame():
    p = profile(pd.DataFrame({"text": ["hello", "WIN £5"]}))
    assert p.target["counts"] == {"<missing>": 2} and p.invalid["missing_label"]["count"] == 2
    assert p.features["chars"]["by_label"] == {} and "y_mismatch" not in p.invalid
    empty = profile(pd.DataFrame({"label": pd.Series([], dtype="str"), "text": pd.Series([], dtype="str")}))
    assert empty.rows == 0 and empty.features["chars"]["stats"]["median"] is None
    json.dumps(empty.to_dict())
    with pytest.raises(TypeError, match="DataFrame"):
        profile(["ham\thi"])


def test_to_dict_is_json_and_from_dict_reads_it_back():
    p = profile(hand_made(), name="hand-made")
    text = json.dumps(p.to_dict(), allow_nan=False)
    back = Profile.from_dict(json.loads(text))
    assert back == p and back.name == "hand-made"
    assert back.value("target.spam_share") == p.target["spam_share"]
    assert back.value("chars.spam.median") == 24 and back.value("invalid.too_long.count") == 1
    with pytest.raises(KeyError, match="no value 'chars.nothing'"):
        back.value("chars.nothing")
    with pytest.raises(ValueError, match="version 99"):
        Profile.from_dict({**p.to_dict(), "version": 99})
    with pytest.raises(ValueError, match=r"\['features'\] are missing"):
        Profile.from_dict({k: v for k, v in p.to_dict().items() if k != "features"})


def test_to_html_is_one_self_contained_page():
    page = profile(hand_made(), name="<script>alert(1)</script>").to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>" not in page and "&lt;script&gt;" in page  # the name is escaped
    assert not re.search(r"""(src|href)=["']?(https?:|//|/)""", page)  # no external assets
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
    for heading in ("Columns", "Target", "Invalid and out-of-range values", "Key predictors"):
        assert f"<h2>{heading}</h2>" in page
    assert "bad label" not in page and "eggs" in page  # examples of invalid labels are shown, not whole frames


def test_summary_is_one_row_per_predictor():
    table = profile(hand_made()).summary()
    assert list(table.index) == list(FEATURES)
    assert {"mean", "median", "q95", "nonzero_share", "median_ham", "median_spam"} <= set(table.columns)
    assert table.loc["chars", "median_spam"] == 24
    assert list(profile(hand_made()).invalid_table().columns) == ["description", "count", "share", "examples"]


# -- the real collection ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processed():
    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set: these tests need the real collection")
    return sms.preprocess(sms.load_sms()[0])[0]


def test_profile_of_the_real_collection(processed):
    p = profile(processed)
    # the facts of /work/shared/notes/data-facts.md and tests/data/test_sms_data.py, after deduplication
    assert p.rows == 5160 and p.target["counts"] == {"ham": 4518, "spam": 642}
    assert p.duplicates == {"rows": 0, "texts": 0}
    assert {name: e["count"] for name, e in p.invalid.items() if e["count"]} == {"c1_characters": 35}
    assert p.features["chars"]["stats"]["max"] == 910 and p.features["words"]["stats"]["max"] == 171
    spam, ham = (p.features["chars"]["by_label"][label]["median"] for label in ("spam", "ham"))
    assert 135 <= spam <= 160 and 40 <= ham <= 65
    assert p.value("phone_numbers.spam.nonzero_share") > 0.6 > 0.01 > p.value("phone_numbers.ham.nonzero_share")
    assert p.value("currency.spam.nonzero_share") > 0.25 and p.value("urls.spam.nonzero_share") > 0.08
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert np.isclose(p.summary().loc["chars", "mean"], processed["text"].str.len().mean())


def test_message_features_are_those_of_the_data_tests(processed):
    # tests/data/test_sms_data.py counts the same cues with its own patterns
    f = message_features(processed["text"])
    assert (f["currency"] > 0).sum() == processed["text"].str.contains(r"[£$€]").sum()
    assert (f["urls"] > 0).sum() == processed["text"].str.contains(r"(?i)https?://|www\.").sum()
    assert profiling.MAX_CHARS > f["chars"].max()
