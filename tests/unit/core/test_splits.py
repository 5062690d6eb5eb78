import numpy as np
import pandas as pd
import pytest

from aml.core import splits
from aml.spam import stages
from aml.transfer import vision


def test_stratified_indices_sizes_strata_and_seed():
    labels = np.array([0] * 70 + [1] * 30)
    parts = splits.stratified_indices(labels, (0.6, 0.2, 0.2), seed=1)
    assert list(parts) == list(splits.SPLITS)
    assert [len(parts[s]) for s in splits.SPLITS] == [60, 20, 20]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(100))  # a partition
    assert [int(labels[parts[s]].sum()) for s in splits.SPLITS] == [18, 6, 6]  # 30% ones in each
    again = splits.stratified_indices(labels, (0.6, 0.2, 0.2), seed=1)
    assert all(np.array_equal(parts[s], again[s]) for s in splits.SPLITS)
    assert not np.array_equal(parts["test"], splits.stratified_indices(labels, (0.6, 0.2, 0.2), seed=2)["test"])
    for bad in [(0.5, 0.5), (0.6, 0.3, 0.3), (1.0, 0.0, 0.0), (0.7, -0.1, 0.4)]:
        with pytest.raises(ValueError, match="three positive numbers"):
            splits.stratified_indices(labels, bad)


def test_sms_and_vision_splits_are_the_same_positions():
    labels = np.array([0, 1, 1, 0, 0] * 20)
    positions = splits.stratified_indices(labels, (0.6, 0.2, 0.2), seed=4)
    frame = pd.DataFrame({"label": np.where(labels == 1, "spam", "ham"), "text": [f"m{i}" for i in range(len(labels))]})
    by_sms = dict(
        zip(
            splits.SPLITS,
            stages.prepare_train_validation_test_split(frame, seed=4, fractions=(0.6, 0.2, 0.2)),
            strict=True,
        )
    )
    by_vision = vision.stratified_split(labels, (0.6, 0.2, 0.2), seed=4)
    for name in splits.SPLITS:
        assert by_sms[name]["text"].tolist() == [f"m{i}" for i in positions[name]]  # drawn order kept
        assert by_vision[name].tolist() == sorted(positions[name].tolist())  # sorted


def test_class_counts():
    table = splits.class_counts({"train": [0, 0, 1, 2], "test": np.array([2, 2])}, ["a", "b", "c"])
    assert table.loc["train"].tolist() == [2, 1, 1, 4] and table.loc["test"].tolist() == [0, 0, 2, 2]
    assert list(table.columns) == ["a", "b", "c", "total"] and list(table.index) == ["train", "test"]


def test_manifest_records_seed_source_rows_and_hashes_and_is_checked(tmp_path):
    (tmp_path / "raw.txt").write_text("ham\thi\n")
    files = {}
    for name in splits.SPLITS:
        files[name] = tmp_path / "s" / f"{name}.csv"
        files[name].parent.mkdir(exist_ok=True)
        files[name].write_text(f"{name}\n1\n")
    path = splits.write_manifest(tmp_path / "s", 7, files, {n: 1 for n in splits.SPLITS}, tmp_path / "raw.txt")
    assert path == tmp_path / "s" / splits.MANIFEST
    manifest = splits.check_manifest(tmp_path / "s", seed=7)
    assert manifest == splits.read_manifest(tmp_path / "s")
    assert manifest["seed"] == 7 and manifest["source"]["name"] == "raw.txt" and manifest["fractions"] is None
    assert manifest["rows"] == {"train": 1, "validation": 1, "test": 1} and len(manifest["files"]) == 3
    assert splits.check_manifest(tmp_path / "s")["seed"] == 7  # no seed asked: any seed, files still checked
    with pytest.raises(splits.SplitMismatchError, match=r"seed 7, not 42.*\bdo this\b"):
        splits.check_manifest(tmp_path / "s", seed=42, prepare_hint="do this")
    files["test"].unlink()
    with pytest.raises(splits.SplitMismatchError, match="test.csv in .* changed"):
        splits.check_manifest(tmp_path / "s", seed=7)
    assert splits.read_manifest(tmp_path) is None
    with pytest.raises(splits.SplitMismatchError, match="no splits.json"):
        splits.check_manifest(tmp_path)
    with pytest.raises(ValueError, match="must lie in"):
        splits.write_manifest(tmp_path / "other", 1, files, {}, None)
    assert splits.seed_dir(tmp_path, 7) == tmp_path / "seed-7" and splits.seed_dir("d", np.int64(3)).name == "seed-3"
    with pytest.raises(TypeError):
        splits.seed_dir(tmp_path, True)
