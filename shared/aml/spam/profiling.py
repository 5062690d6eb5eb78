"""A profile of SMS data: what the data looks like, computed whenever it changes (``/prepare``) so that a new
version can be compared with the last one (:mod:`aml.spam.datatests`) and read by a person (:meth:`Profile.to_html`).

The course's "function to create a profile of data" is :func:`profile`. For a frame of messages (``label``,
``text``, optionally ``y`` and ``id``) it records

- per column: type, missing values, distinct values; duplicate rows and duplicate texts;
- the target distribution (counts and shares of each label);
- the key predictors of an SMS (:func:`message_features`: length in characters and words, digits, upper case,
  currency signs, links, phone-number-like digit runs), each as summary statistics, per-label statistics and a
  histogram on **fixed bins** (:data:`FEATURES`): two profiles of different data can be compared bin by bin;
- out-of-range and invalid values (:data:`INVALID`): missing or empty texts, control characters, mis-decoded
  characters, labels other than ham/spam, texts longer than :data:`MAX_CHARS`, ``y`` disagreeing with ``label``,
  texts carrying both labels.

Why hand-written: ydata-profiling, the usual tool, does not install with the workspace's pins (it needs pandas < 3,
scipy < 1.17, numpy < 2.4; ``/work/shared/notes/mlops-components.md`` §1), and a generic profiler knows nothing of
what matters in a text message (its length, its digits, its currency signs). Pandas ``.str`` operations and
matplotlib are enough, and the result is a small JSON document (:meth:`Profile.to_dict`) a later run can read back.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aml.spam.sms import LABELS

#: the format of :meth:`Profile.to_dict` (raised when a field changes meaning)
VERSION = 1
#: a text longer than this is out of range (the collection's longest message has 910 characters)
MAX_CHARS = 1000
#: patterns of the predictors; a URL is a scheme or ``www.``, a phone number a run of at least five digits
CURRENCY = r"[£$€]"
URL = r"(?i)(?:https?://|www\.)\S+"
PHONE = r"\d{5,}"
#: C0 control characters and DEL (the file is one message per line, tab-separated: none may occur in a text);
#: C1 code points (U+0080-U+009F) are Windows-1252 quotes and dashes decoded as Latin-1; U+FFFD marks a failed decode
CONTROL, C1, REPLACEMENT = r"[\x00-\x1f\x7f]", r"[\x80-\x9f]", "\ufffd"
_UPPER, _LETTER = r"[A-ZÀ-ÖØ-Þ]", r"[^\W\d_]"
QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
EXAMPLES = 3
_SECTIONS = ("rows", "columns", "duplicates", "target", "features", "invalid")


@dataclass(frozen=True)
class Feature:
    """A per-message predictor: its description and the fixed edges of its histogram (values above the last edge
    are counted in the last bin)."""

    description: str
    edges: tuple[float, ...]


def _steps(stop: float, step: float) -> tuple[float, ...]:
    return tuple(float(x) for x in np.round(np.arange(0, stop + step / 2, step), 6))


#: the key predictors :func:`message_features` computes, in order
FEATURES: dict[str, Feature] = {
    "chars": Feature("length in characters", _steps(MAX_CHARS, 25)),
    "words": Feature("length in words (runs of non-space characters)", _steps(200, 5)),
    "digits": Feature("number of digits", _steps(60, 2)),
    "digit_share": Feature("digits / characters", _steps(1, 0.05)),
    "upper_ratio": Feature("upper-case letters / letters (0 without letters)", _steps(1, 0.05)),
    "currency": Feature("currency signs (£ $ €)", _steps(6, 1)),
    "urls": Feature("links (http://, https://, www.)", _steps(4, 1)),
    "phone_numbers": Feature("phone-number-like runs of at least 5 digits", _steps(4, 1)),
}

#: the invalid and out-of-range values a profile counts: name -> description
INVALID: dict[str, str] = {
    "missing_label": "label missing",
    "unknown_label": f"label other than {' or '.join(LABELS)}",
    "missing_text": "text missing",
    "empty_text": "text empty or only white space",
    "control_characters": "text with a control character (U+0000-U+001F, U+007F)",
    "c1_characters": "text with a C1 code point (U+0080-U+009F: Windows-1252 read as Latin-1)",
    "replacement_character": "text with U+FFFD (a failed decode)",
    "too_long": f"text longer than {MAX_CHARS} characters",
    "y_mismatch": "y disagrees with label (spam = 1)",
    "conflicting_labels": "distinct text carrying both labels",
}


_COUNTED = {
    name: re.compile(pattern)
    for name, pattern in (
        ("words", r"\S+"),
        ("digits", r"\d"),
        ("letters", _LETTER),
        ("upper", _UPPER),
        ("currency", CURRENCY),
        ("urls", URL),
        ("phone_numbers", PHONE),
    )
}


def message_features(texts: Iterable[str] | pd.Series) -> pd.DataFrame:
    """The key predictors of each message (columns :data:`FEATURES`, one row per text, the input's index kept).

    A missing text counts as the empty text (:func:`profile` reports it separately). Shares are 0 for a text
    without characters (``digit_share``) or letters (``upper_ratio``). One pass of compiled patterns per text: the
    service monitors every scored batch with these (:mod:`aml.project.monitoring`), and pandas' ``.str.count``
    costs twice as much for a few hundred texts."""
    text = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype="object")
    values = ["" if not isinstance(t, str) else t for t in text.astype(object).tolist()]
    counts = np.array(
        [[len(t), *(len(p.findall(t)) for p in _COUNTED.values())] for t in values], dtype=np.int64
    ).reshape(len(values), len(_COUNTED) + 1)
    columns = dict(zip(("chars", *_COUNTED), counts.T, strict=True))
    chars, letters = columns["chars"], columns["letters"]
    with np.errstate(divide="ignore", invalid="ignore"):
        digit_share = np.where(chars > 0, columns["digits"] / np.maximum(chars, 1), 0.0)
        upper_ratio = np.where(letters > 0, np.minimum(columns["upper"] / np.maximum(letters, 1), 1.0), 0.0)
    out = pd.DataFrame(
        {
            "chars": chars,
            "words": columns["words"],
            "digits": columns["digits"],
            "digit_share": digit_share.astype("float64"),
            "upper_ratio": upper_ratio.astype("float64"),
            "currency": columns["currency"],
            "urls": columns["urls"],
            "phone_numbers": columns["phone_numbers"],
        },
        index=text.index,
    )
    return out[list(FEATURES)]


# -- the profile -----------------------------------------------------------------------------------------------------


def _num(value) -> float | int | None:
    """A plain JSON number (``None`` for NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if np.isnan(value) else value


def _stats(values: pd.Series) -> dict[str, Any]:
    values = values.astype("float64")
    if values.empty:
        return {"count": 0, **dict.fromkeys(("mean", "std", "min", *QUANTILES, "max", "nonzero_share"))}
    q = values.quantile(list(QUANTILES.values())).to_numpy()
    return {
        "count": int(len(values)),
        "mean": _num(values.mean()),
        "std": _num(values.std(ddof=0)),
        "min": _num(values.min()),
        **{name: _num(v) for name, v in zip(QUANTILES, q, strict=True)},
        "max": _num(values.max()),
        "nonzero_share": _num((values != 0).mean()),
    }


def _histogram(values: pd.Series, edges: tuple[float, ...]) -> list[int]:
    clipped = np.clip(values.to_numpy(dtype="float64"), edges[0], edges[-1])
    return [int(c) for c in np.histogram(clipped, bins=np.asarray(edges))[0]]


def _example(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Profile:
    """The profile of a frame of SMS messages (see the module's docstring); :func:`profile` makes one.

    ``columns``: ``{column: {"dtype", "missing", "unique"}}``; ``duplicates``: ``{"rows", "texts"}``; ``target``:
    ``{"counts": {label: n}, "shares": {label: share}, "spam_share"}``; ``features``: ``{feature: {"description",
    "stats", "by_label": {label: stats}, "hist": {"edges", "counts": {"all" | label: [n, ...]}}}}``; ``invalid``:
    ``{name: {"description", "count", "share", "examples"}}``.
    """

    rows: int
    columns: dict[str, dict[str, Any]]
    duplicates: dict[str, int]
    target: dict[str, Any]
    features: dict[str, dict[str, Any]]
    invalid: dict[str, dict[str, Any]]
    name: str = ""
    version: int = VERSION

    # -- serialisation -----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (plain numbers, strings, lists; ``None`` for undefined statistics)."""
        return {"version": self.version, "name": self.name, **{key: getattr(self, key) for key in _SECTIONS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """The profile :meth:`to_dict` wrote; a dict of another format version or with fields missing is refused."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a profile is a mapping, got {type(data).__name__}")
        if data.get("version") != VERSION:
            raise ValueError(f"profile format version {data.get('version')!r} is not supported (expected {VERSION})")
        missing = [key for key in _SECTIONS if key not in data]
        if missing:
            raise ValueError(f"not a profile: fields {missing} are missing")
        return cls(**{key: data[key] for key in _SECTIONS}, name=str(data.get("name", "")))

    # -- views -------------------------------------------------------------------------------------------------------

    def value(self, key: str) -> float | None:
        """One number of the profile by a dotted key: ``target.spam_share``, ``<feature>.<statistic>`` (``chars.median``,
        ``currency.nonzero_share``), ``<feature>.<label>.<statistic>`` (``chars.spam.median``),
        ``invalid.<name>.share``, ``duplicates.texts``, ``rows``."""
        parts = key.split(".")
        try:
            if parts[0] == "rows":
                return self.rows
            if parts[0] in ("target", "duplicates"):
                return getattr(self, parts[0])[parts[1]]
            if parts[0] == "invalid":
                return self.invalid[parts[1]][parts[2]]
            feature = self.features[parts[0]]
            if len(parts) == 3:
                return feature["by_label"][parts[1]][parts[2]]
            return feature["stats"][parts[1]]
        except (KeyError, IndexError):
            raise KeyError(f"the profile has no value {key!r}") from None

    def summary(self) -> pd.DataFrame:
        """One row per key predictor: its summary statistics and its median per label (for a notebook)."""
        rows = {}
        for name, feature in self.features.items():
            row = {k: v for k, v in feature["stats"].items() if k != "count"}
            for label, stats in feature["by_label"].items():
                row[f"median_{label}"] = stats["median"]
                row[f"nonzero_share_{label}"] = stats["nonzero_share"]
            rows[name] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "feature"
        return table

    def invalid_table(self) -> pd.DataFrame:
        """One row per kind of invalid or out-of-range value: description, count, share, examples."""
        table = pd.DataFrame.from_dict(self.invalid, orient="index")
        table.index.name = "check"
        return table

    def overview(self) -> pd.DataFrame:
        """One row per column: type, missing values, distinct values."""
        table = pd.DataFrame.from_dict(self.columns, orient="index")
        table.index.name = "column"
        return table

    def figure(self):
        """A matplotlib figure (no pyplot: safe in a server thread): the target distribution and one histogram per
        key predictor, per label, as shares of the label's messages."""
        from matplotlib.figure import Figure

        n = len(self.features) + 1
        cols = 3
        fig = Figure(figsize=(4.2 * cols, 2.8 * ((n + cols - 1) // cols)), layout="constrained")
        axes = fig.subplots((n + cols - 1) // cols, cols, squeeze=False).ravel()
        counts = self.target["counts"]
        axes[0].bar(list(counts), list(counts.values()), color=[f"C{i}" for i in range(len(counts))])
        axes[0].set(title=f"target ({self.rows} messages)", ylabel="messages")
        for ax, (name, feature) in zip(axes[1:], self.features.items(), strict=False):
            edges = np.asarray(feature["hist"]["edges"])
            groups = {k: v for k, v in feature["hist"]["counts"].items() if k != "all"} or {
                "all": feature["hist"]["counts"]["all"]
            }
            for i, (label, values) in enumerate(groups.items()):
                values = np.asarray(values, dtype=float)
                total = values.sum()
                ax.stairs(values / total if total else values, edges, label=label, color=f"C{i}", lw=1.5)
            ax.set(title=f"{name}: {feature['description']}", ylabel="share of messages")
            ax.title.set_fontsize(8)
            ax.legend(fontsize=7)
        for ax in axes[n:]:
            ax.set_visible(False)
        return fig

    def to_html(self) -> str:
        """A self-contained HTML page: the tables and the figure (a base64 PNG), no external assets; rendered from
        the template ``profile.html`` (:func:`aml.core.pages.render`), which escapes every name and value."""
        from aml.core import pages

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=80)
        target = pd.DataFrame({"count": self.target["counts"], "share": self.target["shares"]})
        invalid = self.invalid_table().assign(examples=lambda t: t["examples"].map(lambda e: "; ".join(map(repr, e))))
        return pages.render(
            "profile.html",
            title=f"Data profile{': ' + self.name if self.name else ''}",
            rows=self.rows,
            duplicate_rows=self.duplicates["rows"],
            duplicate_texts=self.duplicates["texts"],
            spam_share=_fmt(self.target["spam_share"]),
            overview=pages.table(self.overview()),
            target=pages.table(target, _fmt),
            invalid=pages.table(invalid, _fmt),
            summary=pages.table(self.summary(), _fmt, missing="-"),
            png=base64.b64encode(buffer.getvalue()).decode("ascii"),
        )


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4g}"


def profile(df: pd.DataFrame, name: str = "") -> Profile:
    """The profile of a frame of SMS messages: columns ``label`` and ``text`` (either may be missing, which the
    profile shows), optionally ``y`` and ``id``; other columns get the per-column entries only. ``name`` titles the
    HTML page (e.g. the store path)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"profile() needs a pandas DataFrame, got {type(df).__name__}")
    n = len(df)
    columns = {
        str(c): {
            "dtype": str(df[c].dtype),
            "missing": int(df[c].isna().sum()),
            "unique": int(df[c].nunique(dropna=True)),
        }
        for c in df.columns
    }
    text = df["text"].astype("string") if "text" in df.columns else pd.Series(pd.NA, index=df.index, dtype="string")
    label = df["label"].astype("string") if "label" in df.columns else pd.Series(pd.NA, index=df.index, dtype="string")
    stripped = text.str.strip()

    counts = label.fillna("<missing>").value_counts().sort_index()
    counts = {str(k): int(v) for k, v in counts.items()}
    target = {
        "counts": counts,
        "shares": {k: v / n for k, v in counts.items()} if n else {},
        "spam_share": _num((label == "spam").fillna(False).mean()) if n else None,
    }

    features = message_features(text)
    groups = {lab: features[(label == lab).fillna(False).to_numpy()] for lab in LABELS if (label == lab).any()}
    feature_profiles = {}
    for fname, spec in FEATURES.items():
        feature_profiles[fname] = {
            "description": spec.description,
            "stats": _stats(features[fname]),
            "by_label": {lab: _stats(part[fname]) for lab, part in groups.items()},
            "hist": {
                "edges": list(spec.edges),
                "counts": {
                    "all": _histogram(features[fname], spec.edges),
                    **{lab: _histogram(part[fname], spec.edges) for lab, part in groups.items()},
                },
            },
        }

    present = text.notna()
    masks = {
        "missing_label": label.isna(),
        "unknown_label": label.notna() & ~label.isin(LABELS),
        "missing_text": text.isna(),
        "empty_text": present & (stripped == ""),
        "control_characters": present & text.str.contains(CONTROL, regex=True),
        "c1_characters": present & text.str.contains(C1, regex=True),
        "replacement_character": present & text.str.contains(REPLACEMENT, regex=False),
        "too_long": features["chars"] > MAX_CHARS,
    }
    if "y" in df.columns:
        y = pd.to_numeric(df["y"], errors="coerce")
        masks["y_mismatch"] = (y != (label == "spam").fillna(False).astype(int)) | y.isna()
    invalid = {}
    for key, mask in masks.items():
        mask = mask.fillna(False).astype(bool)
        source = df["label"] if key.endswith("_label") and "label" in df.columns else text
        examples = [_example(v) for v in source[mask].head(EXAMPLES).tolist()] if key != "missing_text" else []
        invalid[key] = {"description": INVALID[key], "count": int(mask.sum()), "share": _num(mask.mean()) if n else 0.0}
        invalid[key]["examples"] = examples
    known = pd.DataFrame({"t": stripped, "label": label})[present & label.notna()]
    both = known.groupby("t")["label"].nunique()
    both = both[both > 1]
    invalid["conflicting_labels"] = {
        "description": INVALID["conflicting_labels"],
        "count": int(len(both)),
        "share": _num(len(both) / max(int(known["t"].nunique()), 1)),
        "examples": [_example(t) for t in both.index[:EXAMPLES]],
    }
    duplicates = {"rows": int(df.duplicated().sum()), "texts": int(stripped[present].duplicated().sum())}
    return Profile(
        rows=n,
        columns=columns,
        duplicates=duplicates,
        target=target,
        features=feature_profiles,
        invalid={key: invalid[key] for key in INVALID if key in invalid},
        name=name,
    )
