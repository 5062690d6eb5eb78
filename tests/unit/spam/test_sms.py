import pandas as pd
import pytest

from aml.spam import sms
from aml.spam.sms import DataValidationError


def write(tmp_path, text, name="sms.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def frame(n_ham=20, n_spam=10):
    rows = [("ham", f"see you at {i} pm") for i in range(n_ham)] + [
        ("spam", f"WIN £{i}00 call 0800{i}") for i in range(n_spam)
    ]
    return pd.DataFrame(rows, columns=["label", "text"])


def test_read_and_check(tmp_path):
    df = sms.read_sms_file(write(tmp_path, "ham\thi\nspam\tWIN now\nham\thi\n"))
    assert list(df.columns) == ["label", "text"] and len(df) == 3
    report = sms.check_sms_frame(df)
    assert report.duplicate_rows == 1 and report.distinct_texts == 2
    assert report.distribution == {"ham": 2, "spam": 1}
    assert "duplicate" in str(report)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        sms.read_sms_file(tmp_path / "absent.tsv")


def test_wrong_columns(tmp_path):
    with pytest.raises(DataValidationError, match="2 tab-separated columns"):
        sms.read_sms_file(write(tmp_path, "ham\thi\nspam\tWIN\tnow\n"))
    with pytest.raises(DataValidationError, match="expected columns"):
        sms.check_sms_frame(pd.DataFrame({"a": ["ham"], "b": ["x"]}))


def test_unknown_label(tmp_path):
    with pytest.raises(DataValidationError, match="unknown labels"):
        sms.check_sms_frame(sms.read_sms_file(write(tmp_path, "ham\thi\nSPAM\tWIN\n")))


def test_empty_text(tmp_path):
    with pytest.raises(DataValidationError, match="empty text"):
        sms.check_sms_frame(sms.read_sms_file(write(tmp_path, "ham\thi\nspam\t   \n")))


def test_one_label_only_and_empty_and_conflicts():
    with pytest.raises(DataValidationError, match="never occur"):
        sms.check_sms_frame(pd.DataFrame({"label": ["ham"], "text": ["x"]}))
    with pytest.raises(DataValidationError, match="empty"):
        sms.check_sms_frame(pd.DataFrame({"label": [], "text": []}))
    with pytest.raises(DataValidationError, match="both labels"):
        sms.check_sms_frame(pd.DataFrame({"label": ["ham", "spam"], "text": ["same", "same "]}))


def test_preprocess_dedups_and_encodes():
    df = pd.DataFrame({"label": ["ham", "spam", "spam"], "text": [" hi ", "WIN", "WIN"]})
    out, removed = sms.preprocess(df)
    assert removed == 1
    assert out["text"].tolist() == ["hi", "WIN"] and out["y"].tolist() == [0, 1]


def test_target_distribution():
    df, _ = sms.preprocess(frame(200, 40))
    parts = {"a": df.iloc[:100], "b": df.iloc[100:]}
    dist = sms.target_distribution(parts)
    assert dist.loc["a", "ham (0)"] == 100 and dist.loc["b", "spam (1)"] == 40 and dist["total"].sum() == 240
    assert dist.loc["b", "spam share"] == pytest.approx(40 / 140)


def test_load_sms_real_copy_when_available():
    from aml.core import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    df, report = sms.load_sms()
    assert report.rows == 5574 and report.distribution == {"ham": 4827, "spam": 747}
    assert report.distinct_texts == 5160
