"""Stratified train/validation/test splits and per-class counts, for any labelled data (SMS, photos, tweets).

Light on purpose (NumPy, pandas, scikit-learn): :mod:`aml.spam.sms` uses it without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


def stratified_indices(
    labels: Sequence[int], fractions: tuple[float, float, float] = (0.70, 0.15, 0.15), seed: int = 42
) -> dict[str, np.ndarray]:
    """Positions of a stratified train/validation/test split, each in the order scikit-learn draws them.

    Two stratified cuts: ``fractions[0]`` of the rows for training, then the rest divided between validation and
    test in the ratio of the other two fractions.
    """
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    labels = np.asarray(labels)
    train_f, val_f, test_f = fractions
    train, rest = train_test_split(np.arange(len(labels)), train_size=train_f, stratify=labels, random_state=seed)
    validation, test = train_test_split(
        rest, test_size=test_f / (val_f + test_f), stratify=labels[rest], random_state=seed
    )
    return dict(zip(SPLITS, (train, validation, test), strict=True))


def class_counts(labels_by_split: Mapping[str, Sequence[int]], class_names: Sequence[str]) -> pd.DataFrame:
    """One row per split: how many examples of each class (label ``i`` is ``class_names[i]``) and the total."""
    rows = {
        name: {c: int((np.asarray(labels) == i).sum()) for i, c in enumerate(class_names)}
        for name, labels in labels_by_split.items()
    }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["total"] = out.sum(axis=1)
    return out
