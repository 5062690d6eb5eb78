"""Data tests for labelled SMS data: a schema every frame must satisfy, and bounds learnt from a reference profile
that a new version of the data must stay within (the course's data validation, run by ``/prepare`` before a new
version of the data is used).

- **Schema** (:func:`schema`, pandera): the columns ``label`` and ``text`` (``y`` and ``id`` optional, nothing else),
  their types, ``label`` in {ham, spam}, a non-empty text without control characters, ``y`` in {0, 1} agreeing with
  the label, distinct ids, at least one message of each label. ``lazy=True``: every failure is collected, not only
  the first. Texts carrying both labels are refused too (from the profile).
- **Bounds** (:func:`bounds_from`): from a reference :class:`~aml.spam.profiling.Profile` (the last accepted
  version), the spam share, the quartiles and medians of the key predictors (overall and per label: spam is long,
  digit-heavy and carries currency signs and phone numbers) and the shares of messages with a currency sign, a link
  or a phone number must lie in intervals around the reference; the shares of out-of-range values (C1 characters,
  U+FFFD, texts over :data:`~aml.spam.profiling.MAX_CHARS`) must stay under limits.

Every interval is ``reference ± max(tolerance × |reference|, floor, Z × sampling error)``: a relative tolerance, a
floor in the statistic's unit (its resolution: 3 characters, 1 word, 1 percentage point...) and the sampling error
of the statistic in a sample the size of the checked data (``sqrt(p(1-p)/n)`` for a share, ``1.5 σ / sqrt(n)`` for
a quantile, ``σ / sqrt(n)`` for a mean, with σ the reference's standard deviation and n the checked rows of the
label). So a 15% split (774 messages, 96 spam) is judged as loosely as its size requires and a new full release
as tightly as its size allows. With the defaults (:data:`TOLERANCE`, :data:`Z`) every split of 30 random 70/15/15
splits of the real collection passes against the whole collection's profile, while tweets relabelled as SMS, a
60% spam share or upper-cased texts fail (``tests/unit/spam/test_datatests.py``).

Why pandera for the schema: it is the maintained library for declarative frame schemas that installs with the
pins (``/work/shared/notes/mlops-components.md`` §1) and reports every failing row. Why hand-written bounds: the
libraries that learn expectations from a profile (Great Expectations' profilers, evidently's test presets,
ydata-profiling's comparisons) either do not install with the pins or are far heavier than a list of intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

with warnings.catch_warnings():
    # pandera imports pyspark.pandas when pyspark is installed (team scale), which warns about pandas 3 on import
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    import pandera.pandas as pa

from aml.spam.profiling import CONTROL, FEATURES, Profile, profile
from aml.spam.sms import LABELS, DataValidationError

#: relative tolerance of every bound (a share of the reference value)
TOLERANCE = 0.25
#: how many sampling standard errors an interval spans at least
Z = 4.0
#: the bounded statistics: (feature or "target", group "all"/label, statistic, floor); the order is the report's
BOUNDED: tuple[tuple[str, str, str, float], ...] = (
    ("target", "all", "spam_share", 0.05),
    *((f, "all", s, 3.0) for f in ("chars",) for s in ("q25", "median", "q75")),
    *((f, "all", s, 1.0) for f in ("words",) for s in ("q25", "median", "q75")),
    ("upper_ratio", "all", "median", 0.01),
    ("upper_ratio", "all", "q75", 0.01),
    ("digits", "all", "mean", 0.5),
    *((f, "all", "nonzero_share", 0.01) for f in ("digits", "currency", "urls", "phone_numbers")),
    ("chars", "ham", "median", 3.0),
    ("words", "ham", "median", 1.0),
    ("upper_ratio", "ham", "median", 0.01),
    *((f, "ham", "nonzero_share", 0.01) for f in ("digits", "currency", "urls", "phone_numbers")),
    ("chars", "spam", "median", 3.0),
    ("words", "spam", "median", 1.0),
    ("digits", "spam", "median", 1.0),
    ("upper_ratio", "spam", "median", 0.01),
    *((f, "spam", "nonzero_share", 0.01) for f in ("digits", "currency", "urls", "phone_numbers")),
)
#: out-of-range shares with an upper limit only: name -> floor of the limit above the reference share
LIMITED: dict[str, float] = {"c1_characters": 0.01, "replacement_character": 0.005, "too_long": 0.005}


def schema() -> pa.DataFrameSchema:
    """The pandera schema of labelled SMS data (``label``, ``text``, optional ``y`` and ``id``; nothing else)."""
    return pa.DataFrameSchema(
        {
            "label": pa.Column(str, pa.Check.isin(list(LABELS)), nullable=False),
            "text": pa.Column(
                str,
                [
                    pa.Check(lambda s: s.str.strip().str.len() > 0, error="non-empty text"),
                    pa.Check(lambda s: ~s.str.contains(CONTROL, regex=True), error="no control characters"),
                ],
                nullable=False,
            ),
            "y": pa.Column(None, pa.Check.isin([0, 1]), nullable=False, required=False),
            "id": pa.Column(str, nullable=False, unique=True, required=False),
        },
        checks=[
            pa.Check(lambda d: len(d) > 0, error="at least one message"),
            pa.Check(
                lambda d: "label" not in d or set(LABELS) <= set(d["label"].dropna()),
                error=f"both labels {list(LABELS)} occur",
            ),
            pa.Check(
                lambda d: ("y" not in d or "label" not in d) or (d["y"] == (d["label"] == "spam").astype(int)),
                error="y agrees with label (spam = 1)",
            ),
        ],
        strict=True,
        name="sms",
    )


# -- bounds ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One statistic of the data (``key``, read with :meth:`~aml.spam.profiling.Profile.value`) and its allowed interval around the
    ``reference``: half-width ``max(half_width, z × spread / sqrt(n))`` with n the checked rows of ``group``;
    ``upper_only`` bounds have no lower limit."""

    key: str
    description: str
    reference: float
    half_width: float
    spread: float
    group: str
    z: float = Z
    upper_only: bool = False

    def interval(self, n: int) -> tuple[float, float]:
        """The allowed ``(low, high)`` for data with ``n`` rows in the group."""
        half = max(self.half_width, self.z * self.spread / math.sqrt(n)) if n > 0 else self.half_width
        low, high = (-math.inf if self.upper_only else self.reference - half), self.reference + half
        if self.key.endswith("share"):  # a share lies in [0, 1]
            low, high = (low if self.upper_only else max(low, 0.0)), min(high, 1.0)
        return low, high


_STATISTICS = {"q25": "first quartile of", "median": "median", "q75": "third quartile of", "mean": "mean"}
_CUES = {"digits": "a digit", "currency": "a currency sign", "urls": "a link", "phone_numbers": "a phone number"}


def _describe(feature: str, group: str, stat: str) -> str:
    if feature == "target":
        return "spam share"
    messages = "messages" if group == "all" else f"{group} messages"
    if stat == "nonzero_share":
        return f"share of {messages} with {_CUES[feature]}"
    return f"{_STATISTICS[stat]} {FEATURES[feature].description.split('(')[0].strip()} of {messages}"


def bounds_from(reference: Profile, tolerance: float = TOLERANCE, z: float = Z) -> list[Bound]:
    """The bounds a new version of the data must satisfy, learnt from the ``reference`` profile (see the module's
    docstring); statistics the reference does not have (a label absent from it) get no bound."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    bounds = []
    for feature, group, stat, floor in BOUNDED:
        key = f"target.{stat}" if feature == "target" else ".".join(p for p in (feature, group, stat) if p != "all")
        ref = reference.value(key) if feature == "target" or group == "all" or group in _groups(reference) else None
        if ref is None:
            continue
        if stat in ("spam_share", "nonzero_share"):
            spread = math.sqrt(max(ref * (1 - ref), 0.0))
        else:
            std = reference.value(".".join(p for p in (feature, group, "std") if p != "all")) or 0.0
            spread = std * (1.0 if stat == "mean" else 1.5)
        bounds.append(
            Bound(key, _describe(feature, group, stat), ref, max(tolerance * abs(ref), floor), spread, group, z)
        )
    for name, floor in LIMITED.items():
        ref = reference.invalid.get(name, {}).get("share") or 0.0
        bounds.append(
            Bound(
                f"invalid.{name}.share",
                f"share of {reference.invalid.get(name, {}).get('description', name)}",
                ref,
                max(tolerance * ref, floor),
                math.sqrt(ref * (1 - ref)),
                "all",
                z,
                upper_only=True,
            )
        )
    return bounds


def _groups(p: Profile) -> set[str]:
    return set(p.features[next(iter(p.features))]["by_label"]) if p.features else set()


def _rows_in(p: Profile, group: str) -> int:
    return p.rows if group == "all" else int(p.target["counts"].get(group, 0))


# -- the report ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A failed data test: its ``name``, a sentence saying what failed, the measured ``value`` and the ``limit``."""

    name: str
    message: str
    value: Any = None
    limit: Any = None


@dataclass
class DataTestReport:
    """What :func:`check_data` found: ``passed``, every failed check, how many checks ran, the reference's name
    (``None``: schema only) and the profile of the checked data."""

    passed: bool
    failures: list[Failure]
    checks: int
    reference: str | None = None
    profile: Profile | None = field(default=None, repr=False)

    def __str__(self) -> str:
        against = f"against the reference {self.reference!r}" if self.reference is not None else "(schema only)"
        if self.passed:
            return f"data tests passed: {self.checks} checks {against}"
        lines = [f"data tests failed: {len(self.failures)} of {self.checks} checks {against}:"]
        lines += [f"- {f.name}: {f.message}" for f in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``passed``, ``checks``, ``reference`` and ``failures`` (each ``name``, ``message``, ``value``,
        ``limit``)."""
        return {
            "passed": self.passed,
            "checks": self.checks,
            "reference": self.reference,
            "failures": [{k: _plain(v) for k, v in asdict(f).items()} for f in self.failures],
        }

    def raise_on_failure(self) -> DataTestReport:
        """Raise :class:`aml.spam.sms.DataValidationError` listing every failed check; return ``self`` on a pass."""
        if not self.passed:
            raise DataValidationError(str(self))
        return self


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _schema_failures(df: pd.DataFrame) -> tuple[list[Failure], int]:
    """Every schema failure, one per (column, check), and the number of schema checks."""
    s = schema()
    n_checks = len(s.checks) + sum(len(c.checks) + 2 for c in s.columns.values()) + 1  # + dtype, nullable; strict
    try:
        s.validate(df, lazy=True)
        return [], n_checks
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    failures = []
    frame_level = cases["schema_context"] == "DataFrameSchema"
    cases = cases.assign(
        column=cases["column"].astype(str).where(~frame_level, "frame"), check=cases["check"].astype(str)
    )
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        index = sorted({int(i) for i in group["index"].tolist() if i is not None and not pd.isna(i)})
        examples = list(dict.fromkeys(repr(v)[:60] for v in group["failure_case"].tolist()))[:3]
        if index:
            message = f"{column}: check {check!r} failed in {len(index)} row(s), first rows {index[:5]}"
            if column != "frame":  # a frame-level check fails whole rows: their values are in every column
                message += f", e.g. {', '.join(examples)}"
            failures.append(Failure(f"schema.{column}.{check}", message, len(index), 0))
        else:
            failures.append(Failure(f"schema.{column}.{check}", f"{check}: {', '.join(examples)}", examples, None))
    return failures, n_checks


def check_data(
    df: pd.DataFrame,
    reference: Profile | None = None,
    tolerance: float = TOLERANCE,
    data_profile: Profile | None = None,
    z: float = Z,
) -> DataTestReport:
    """Run the data tests on ``df``: the :func:`schema` (every failure collected) and, when a ``reference`` profile
    is given, the bounds :func:`bounds_from` learns from it. ``data_profile``: ``df``'s profile when already
    computed (else computed here). Returns a :class:`DataTestReport` listing every failed check."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"check_data() needs a pandas DataFrame, got {type(df).__name__}")
    data_profile = data_profile or profile(df)
    failures, checks = _schema_failures(df)
    conflicting = data_profile.invalid.get("conflicting_labels", {})
    checks += 1
    if conflicting.get("count"):
        failures.append(
            Failure(
                "conflicting_labels",
                f"{conflicting['count']} text(s) carry both labels, e.g. {conflicting['examples'][:3]}",
                conflicting["count"],
                0,
            )
        )
    if reference is not None:
        for bound in bounds_from(reference, tolerance, z):
            checks += 1
            n = _rows_in(data_profile, bound.group)
            low, high = bound.interval(n)
            try:
                value = data_profile.value(bound.key)
            except KeyError:
                value = None
            if value is None:
                failures.append(
                    Failure(bound.key, f"{bound.description}: not measurable (no {bound.group} messages)", None, None)
                )
            elif not low <= value <= high:
                limit = [None if math.isinf(low) else low, high]
                where = f"above the limit {_fmt(high)}" if bound.upper_only else f"outside [{_fmt(low)}, {_fmt(high)}]"
                failures.append(
                    Failure(
                        bound.key,
                        f"{bound.description} is {_fmt(value)}, {where} (reference {_fmt(bound.reference)}, "
                        f"{n} rows checked)",
                        value,
                        limit,
                    )
                )
    return DataTestReport(
        passed=not failures,
        failures=failures,
        checks=checks,
        reference=(reference.name or "reference") if reference is not None else None,
        profile=data_profile,
    )


def failures_table(report: DataTestReport | Mapping) -> pd.DataFrame:
    """The failed checks as a table (``name``, ``message``, ``value``, ``limit``) for a notebook."""
    data = report.to_dict() if isinstance(report, DataTestReport) else dict(report)
    return pd.DataFrame(data["failures"], columns=["name", "message", "value", "limit"])
