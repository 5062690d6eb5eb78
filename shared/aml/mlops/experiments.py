"""Online experiments between a champion and a challenger model: who scores which message, and which one wins.

The solution design's *reward* experiments, generic (ids, labels and propensities in; nothing here knows the spam
filter):

- **Shadow test**: the challenger scores every message beside the champion; only the champion's answer is used
  (a service keeps the online pairs with :class:`ShadowLog`).
  Both propensities exist for every labelled row, so :func:`compare` is *paired* (one bootstrap resample draws the
  same rows for both models), which makes the difference's interval much narrower than two independent intervals.
- **A/B test**: a share of the traffic is *served* by the challenger. :func:`assign` routes by a hash of the message
  id, so the split is sticky (the same id always gets the same arm, in every process and after a restart: no
  coordination, no state) and independent of arrival order. :func:`compare` is then *unpaired*: each arm's rows are
  resampled on their own.

:func:`compare` returns a :class:`Comparison`: both models' metric, the difference (challenger − champion) with a
percentile-bootstrap confidence interval, and a recommendation: ``promote`` when the whole interval is above
``margin`` (the challenger is better with the stated confidence), ``keep`` otherwise — with a reason that says
whether the challenger is worse or the evidence is too thin.

Why hand-written: the routing is three lines of hashlib, and the comparison is the bootstrap of
:func:`aml.mlops.drift.bootstrap_interval` applied to a difference; no maintained library installs with our pins
and does this for arbitrary metrics (``scipy.stats.bootstrap`` resamples one statistic of aligned samples, so it fits
the paired case only, and its BCa default fails on degenerate resamples of rare classes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aml.mlops.drift import metric_function

#: the arms of an experiment
CHAMPION, CHALLENGER = "champion", "challenger"
#: the experiment designs :func:`compare` knows
MODES = ("shadow", "ab")
#: the salt of :func:`assign` by default: change it to reshuffle every id between arms for a new experiment
SALT = "ab-test"


def bucket(message_id: Any, salt: str = SALT) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``message_id`` (SHA-256 of ``"salt:id"``, first 8 bytes): the same
    in every process, on every machine, forever."""
    digest = hashlib.sha256(f"{salt}:{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(ids: Iterable[Any], share: float, salt: str = SALT) -> np.ndarray:
    """A boolean array: True where the message goes to the challenger (``bucket(id) < share``). Sticky: an id's arm
    never changes for a given salt, and raising ``share`` only moves ids from champion to challenger."""
    share = float(share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    return np.array([bucket(i, salt) < share for i in ids], dtype=bool)


def arm(message_id: Any, share: float, salt: str = SALT) -> str:
    """``"challenger"`` or ``"champion"`` for one message (:func:`assign` of one id)."""
    return CHALLENGER if assign([message_id], share, salt)[0] else CHAMPION


@dataclass
class Comparison:
    """Champion vs challenger on labelled data: ``metric`` of each, ``difference`` = challenger − champion, its
    ``(low, high)`` interval at ``confidence``, the ``recommendation`` (``promote`` / ``keep``) and why."""

    mode: str
    metric: str
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    confidence: float
    n_champion: int
    n_challenger: int
    recommendation: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON values."""
        return asdict(self)


def _arrays(y, p, what: str) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"{what}: labels {y.shape} and propensities {p.shape} must be 1-D of the same length")
    if y.size == 0 or y.min() == y.max():
        raise ValueError(f"{what}: needs labelled rows of both classes, got {y.size} row(s) of {sorted(set(y))}")
    return y, p


def compare(
    champion: tuple,
    challenger: tuple,
    metric: str | Callable = "aucpr",
    mode: str = "shadow",
    n: int = 1000,
    confidence: float = 0.95,
    margin: float = 0.0,
    seed: int = 0,
) -> Comparison:
    """Which model is better on ``metric`` (a key of :func:`aml.core.metrics.binary_metrics`, or a function ``(y,
    propensity, threshold) -> float``)? ``champion`` and ``challenger`` are ``(y, propensity, threshold)`` each.

    ``mode="shadow"``: both scored the same rows (same ``y``), resampled together (paired). ``mode="ab"``: each arm
    has its own rows, resampled apart. ``n`` bootstrap resamples (those where a metric is undefined — one class
    only — are skipped); the interval is the percentile interval of the difference. Recommends ``promote`` when its
    lower end is above ``margin``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    fn = metric_function(metric)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    y_a, p_a = _arrays(champion[0], champion[1], "champion")
    y_b, p_b = _arrays(challenger[0], challenger[1], "challenger")
    t_a, t_b = float(champion[2]), float(challenger[2])
    if mode == "shadow" and (y_a.shape != y_b.shape or not np.array_equal(y_a, y_b)):
        raise ValueError("a shadow comparison needs both models' scores of the same rows (the same labels, in order)")
    value_a, value_b = float(fn(y_a, p_a, t_a)), float(fn(y_b, p_b, t_b))
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n):
        i = rng.integers(0, y_a.size, y_a.size)
        j = i if mode == "shadow" else rng.integers(0, y_b.size, y_b.size)
        if y_a[i].min() == y_a[i].max() or y_b[j].min() == y_b[j].max():
            continue
        differences.append(fn(y_b[j], p_b[j], t_b) - fn(y_a[i], p_a[i], t_a))
    if len(differences) < n / 2:
        raise ValueError(f"only {len(differences)} of {n} resamples had both classes: too few labelled rows")
    alpha = 1 - confidence
    low, high = (float(v) for v in np.quantile(differences, [alpha / 2, 1 - alpha / 2]))
    if low > margin:
        recommendation, reason = (
            "promote",
            f"the challenger is better: the whole {confidence:.0%} interval is above {margin:g}",
        )
    elif high < margin:
        recommendation, reason = (
            "keep",
            f"the challenger is worse: the whole {confidence:.0%} interval is below {margin:g}",
        )
    else:
        recommendation, reason = (
            "keep",
            f"no clear difference: the {confidence:.0%} interval contains {margin:g} (collect more labels)",
        )
    return Comparison(
        mode, name, value_a, value_b, value_b - value_a, low, high, confidence, int(y_a.size), int(y_b.size),
        recommendation, reason,
    )  # fmt: skip


class ShadowLog:
    """Online shadow scores, kept in memory and written to a data store in batches: ``<kind>/<run>/scores.csv``
    (:data:`COLUMNS`, one row per message; the caller's message id, never its text) with a lineage record, and
    ``<kind>/latest`` moved after each write. A batch is written when it reaches ``flush_every`` rows, on the first
    row after ``max_age_s`` seconds, and by :meth:`flush` (the service calls it at exit); each process of a service
    writes its own runs, so no two writers share a file.

    Why batches: a file per online request would cost more than the scoring; a lost process loses at most one
    unwritten batch of shadow scores, never a served answer."""

    #: the columns of a written batch
    COLUMNS = (
        "time",
        "id",
        "champion_version",
        "champion_propensity",
        "champion_prediction",
        "challenger_version",
        "challenger_propensity",
        "challenger_prediction",
    )
    FILE = "scores.csv"

    def __init__(self, store, kind: str = "shadow", flush_every: int = 500, max_age_s: float = 60.0):
        if flush_every < 1 or max_age_s <= 0:
            raise ValueError(f"flush_every must be ≥ 1 and max_age_s > 0, got {flush_every} and {max_age_s}")
        self.store, self.kind = store, kind
        self.flush_every, self.max_age_s = int(flush_every), float(max_age_s)
        self.written = 0
        self._rows: list[tuple] = []
        self._first = 0.0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        message_id: Any,
        champion: tuple[str, float, bool],
        challenger: tuple[str, float, bool],
    ) -> str | None:
        """Record one message: ``champion`` and ``challenger`` are ``(version, propensity, prediction)``. Returns the
        written file's store path when this row completed a batch, else ``None``."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        row = (now, str(message_id), *(str(champion[0]), float(champion[1]), bool(champion[2])))
        row += (str(challenger[0]), float(challenger[1]), bool(challenger[2]))
        with self._lock:
            if not self._rows:
                self._first = time.monotonic()
            self._rows.append(row)
            due = len(self._rows) >= self.flush_every or time.monotonic() - self._first >= self.max_age_s
        return self.flush() if due else None

    def flush(self) -> str | None:
        """Write the rows held (if any) as a new run; returns its file's store path."""
        import pandas as pd

        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return None
        buffer = io.StringIO()
        pd.DataFrame(rows, columns=list(self.COLUMNS)).to_csv(buffer, index=False)
        run = self.store.new_run(self.kind)
        path = self.store.run_path(self.kind, run, self.FILE)
        self.store.write_bytes(path, buffer.getvalue().encode("utf-8"))
        self.store.write_lineage(self.kind, run, {"rows": len(rows), "pid": os.getpid(), "outputs": {"scores": path}})
        self.store.set_latest(self.kind, run)
        self.written += len(rows)
        return path


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODES",
    "SALT",
    "Comparison",
    "ShadowLog",
    "arm",
    "assign",
    "bucket",
    "compare",
]
