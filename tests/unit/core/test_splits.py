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
