import pandas as pd
import pytest

from aml import sms
from aml.sms import DataValidationError


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


def test_split_is_stratified_disjoint_and_seeded():
    df, _ = sms.preprocess(frame(200, 40))
    parts = sms.split(df, seed=1)
    assert [len(parts[s]) for s in sms.SPLITS] == [168, 36, 36]
    for part in parts.values():
        assert part["y"].mean() == pytest.approx(40 / 240, abs=0.02)
    assert not set(parts["train"]["text"]) & set(parts["test"]["text"])
    again = sms.split(df, seed=1)
    assert parts["test"]["text"].tolist() == again["test"]["text"].tolist()
    assert parts["test"]["text"].tolist() != sms.split(df, seed=2)["test"]["text"].tolist()
    with pytest.raises(ValueError, match="fractions"):
        sms.split(df, fractions=(0.5, 0.5, 0.5))


def test_target_distribution():
    df, _ = sms.preprocess(frame(200, 40))
    dist = sms.target_distribution(sms.split(df, seed=0))
    assert dist.loc["train", "spam (1)"] == 28 and dist.loc["test", "total"] == 36
    assert dist["total"].sum() == 240


def test_save_load_roundtrip_and_validation(tmp_path):
    df, _ = sms.preprocess(frame(200, 40))
    parts = sms.split(df, seed=0)
    paths = sms.save_splits(parts, tmp_path / "d")
    assert sorted(p.name for p in paths.values()) == ["test.csv", "train.csv", "validation.csv"]
    loaded = sms.load_splits(tmp_path / "d")
    pd.testing.assert_frame_equal(
        loaded["test"].astype({"label": object, "text": object}),
        parts["test"].astype({"label": object, "text": object}),
        check_dtype=False,
    )
    broken = loaded["train"].assign(y=0)
    broken.to_csv(tmp_path / "d" / "train.csv", index=False)
    with pytest.raises(DataValidationError, match="disagrees"):
        sms.load_splits(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="prepare"):
        sms.load_splits(tmp_path / "empty")


def test_prepare_and_ensure_splits(tmp_path):
    raw = "\n".join(
        [f"ham\tsee you at {i}" for i in range(60)] + [f"spam\tWIN {i} now" for i in range(20)] + ["spam\tWIN 1 now"]
    )
    path = write(tmp_path, raw)
    parts = sms.prepare_splits(tmp_path / "out", seed=3, path=path)
    assert sum(len(p) for p in parts.values()) == 80  # the duplicate was removed
    assert sms.ensure_splits(tmp_path / "out")["test"]["text"].tolist() == parts["test"]["text"].tolist()


def test_load_sms_real_copy_when_available():
    from aml import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    df, report = sms.load_sms()
    assert report.rows == 5574 and report.distribution == {"ham": 4827, "spam": 747}
    assert report.distinct_texts == 5160
