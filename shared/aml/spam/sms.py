"""The SMS Spam Collection: parse, validate, preprocess (the stages in :mod:`aml.spam.stages` build on these).

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

from aml.core import datasets

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


def read_sms_file(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Parse a ``label<TAB>text`` file (no header) into a frame with columns ``label``, ``text``.

    Raises :class:`FileNotFoundError` for a missing file and :class:`DataValidationError` for a line that is not
    exactly two tab-separated columns or a file that is not UTF-8 text. ``name``: the file as messages call it
    (default its path; a service passes the store path its caller sent, not the server's folder).
    """
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMS file not found: {name}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        lineno = 0
        try:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 2:
                    raise DataValidationError(
                        f"{name}:{lineno}: expected 2 tab-separated columns (label, text), found {len(parts)}"
                    )
                rows.append(parts)
        except UnicodeDecodeError as exc:
            raise DataValidationError(f"{name}:{lineno + 1}: not UTF-8 text ({exc.reason})") from None
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
    """Load and validate the raw collection (``path`` or :func:`aml.core.datasets.fetch`); returns (frame, report)."""
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


def target_distribution(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per split: counts of ham (0) and spam (1), total and spam share."""
    rows = []
    for name, part in splits.items():
        counts = part["y"].value_counts()
        n0, n1 = int(counts.get(0, 0)), int(counts.get(1, 0))
        rows.append({"split": name, "ham (0)": n0, "spam (1)": n1, "total": n0 + n1, "spam share": n1 / (n0 + n1)})
    return pd.DataFrame(rows).set_index("split")
