"""The SMS Spam Collection: load, validate, preprocess, split.

Preprocessing choices (documented once, used everywhere):

- text is kept as written (case, punctuation, digits and currency signs are strong spam cues); only surrounding
  whitespace is stripped. Vectorisers lower-case on their own.
- the target is ``y = 1`` for ``spam`` and ``0`` for ``ham`` (spam is the positive class for precision/recall).
- exact duplicate texts are removed before splitting (about 7% of the collection, mostly spam campaigns sent many
  times): otherwise copies of test messages land in training and flatter the test score. The first occurrence is
  kept; a text that appears with both labels would be an error (it does not happen in this collection).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aml import datasets
from aml.splits import SPLITS, stratified_indices

log = logging.getLogger(__name__)

LABELS = ("ham", "spam")
FILENAME = "SMSSpamCollection"


class DataValidationError(ValueError):
    """The data does not have the expected shape or values."""


@dataclass
class DataReport:
    """What loading found: row count, duplicates, target distribution."""

    rows: int
    duplicate_rows: int
    distinct_texts: int
    distribution: dict[str, int]

    def __str__(self) -> str:
        dist = ", ".join(f"{k}: {v} ({v / self.rows:.1%})" for k, v in self.distribution.items())
        return (
            f"{self.rows} messages, {self.distinct_texts} distinct texts, {self.duplicate_rows} duplicate rows; {dist}"
        )


def read_sms_file(path: str | Path) -> pd.DataFrame:
    """Parse a ``label<TAB>text`` file (no header) into a frame with columns ``label``, ``text``.

    Raises :class:`FileNotFoundError` for a missing file and :class:`DataValidationError` for a line that is not
    exactly two tab-separated columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMS file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataValidationError(
                    f"{path}:{lineno}: expected 2 tab-separated columns (label, text), found {len(parts)}"
                )
            rows.append(parts)
    return pd.DataFrame(rows, columns=["label", "text"])


def check_sms_frame(df: pd.DataFrame) -> DataReport:
    """Validate a ``label``/``text`` frame and describe it; raises :class:`DataValidationError` on bad data."""
    if list(df.columns) != ["label", "text"]:
        raise DataValidationError(f"expected columns ['label', 'text'], found {list(df.columns)}")
    if df.empty:
        raise DataValidationError("the SMS data is empty")
    unknown = sorted(set(df["label"]) - set(LABELS))
    if unknown:
        raise DataValidationError(f"unknown labels {unknown}: expected exactly {set(LABELS)}")
    missing_labels = sorted(set(LABELS) - set(df["label"]))
    if missing_labels:
        raise DataValidationError(f"labels {missing_labels} never occur: both {set(LABELS)} are needed")
    text = df["text"].astype("string")
    empty = df.index[text.isna() | (text.str.strip() == "")].tolist()
    if empty:
        raise DataValidationError(f"{len(empty)} empty text(s), first at row {empty[0]}")
    stripped = text.str.strip()
    conflicting = df.assign(t=stripped).groupby("t")["label"].nunique()
    conflicting = conflicting[conflicting > 1]
    if len(conflicting):
        raise DataValidationError(f"{len(conflicting)} text(s) carry both labels, e.g. {conflicting.index[0]!r}")
    distinct = int(stripped.nunique())
    return DataReport(
        rows=len(df),
        duplicate_rows=len(df) - distinct,
        distinct_texts=distinct,
        distribution={label: int((df["label"] == label).sum()) for label in LABELS},
    )


def load_sms(path: str | Path | None = None) -> tuple[pd.DataFrame, DataReport]:
    """Load and validate the raw collection (``path`` or :func:`aml.datasets.fetch`); returns (frame, report)."""
    if path is None:
        path = datasets.fetch("sms_spam") / FILENAME
    df = read_sms_file(path)
    report = check_sms_frame(df)
    log.info("loaded %s: %s", path, report)
    return df, report


def preprocess(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Strip text, add ``y`` (spam = 1), drop exact duplicate texts. Returns (frame, number of rows removed)."""
    out = df.assign(text=df["text"].str.strip())
    out = out.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    out["y"] = (out["label"] == "spam").astype(int)
    return out[["label", "text", "y"]], len(df) - len(out)


def split(
    df: pd.DataFrame, seed: int = 42, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
) -> dict[str, pd.DataFrame]:
    """Stratified train/validation/test split (70/15/15 by default) on ``y`` (:func:`aml.splits.stratified_indices`)."""
    positions = stratified_indices(df["y"].to_numpy(), fractions, seed)
    return {name: df.iloc[idx].reset_index(drop=True) for name, idx in positions.items()}


def target_distribution(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per split: counts of ham (0) and spam (1), total and spam share."""
    rows = []
    for name, part in splits.items():
        counts = part["y"].value_counts()
        n0, n1 = int(counts.get(0, 0)), int(counts.get(1, 0))
        rows.append({"split": name, "ham (0)": n0, "spam (1)": n1, "total": n0 + n1, "spam share": n1 / (n0 + n1)})
    return pd.DataFrame(rows).set_index("split")


def save_splits(splits: dict[str, pd.DataFrame], folder: str | Path) -> dict[str, Path]:
    """Write ``train.csv``/``validation.csv``/``test.csv`` (columns label, text, y) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SPLITS:
        paths[name] = folder / f"{name}.csv"
        splits[name].to_csv(paths[name], index=False)
    return paths


def load_splits(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read the three split files written by :func:`save_splits`, validating each."""
    folder = Path(folder)
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run the prepare notebook (or aml.sms.prepare_splits) first")
        df = pd.read_csv(path, dtype={"label": "string", "text": "string"}, keep_default_na=False)
        if list(df.columns) != ["label", "text", "y"]:
            raise DataValidationError(f"{path}: expected columns ['label', 'text', 'y'], found {list(df.columns)}")
        check_sms_frame(df[["label", "text"]])
        if not ((df["y"] == 1) == (df["label"] == "spam")).all():
            raise DataValidationError(f"{path}: column y disagrees with label")
        out[name] = df
    return out


def prepare_splits(folder: str | Path, seed: int = 42, path: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Load → preprocess → split → save: the whole of ``assignment1/prepare.ipynb`` in one call."""
    raw, _ = load_sms(path)
    clean, _ = preprocess(raw)
    splits = split(clean, seed=seed)
    save_splits(splits, folder)
    return splits


def ensure_splits(folder: str | Path, seed: int = 42) -> dict[str, pd.DataFrame]:
    """Load the splits in ``folder``, preparing them first (logged) if they are not there."""
    folder = Path(folder)
    if not all((folder / f"{name}.csv").is_file() for name in SPLITS):
        log.warning("no splits in %s: preparing them with seed %d", folder, seed)
        prepare_splits(folder, seed=seed)
    return load_splits(folder)
