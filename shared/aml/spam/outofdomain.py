"""The out-of-domain evaluation set: how a spam filter trained on 2011 UK SMS does on the messages people send today.

The SMS Spam Collection holds personal texts and premium-rate spam; it has almost no business or e-mail-style ham
(meeting confirmations, receipts, delivery notices, sign-in codes) and none of today's spam (flash sales, crypto
offers, parcel and bank phishing). A model can rank the collection's test split almost perfectly and still block a
meeting reminder or let a phishing text through. This set measures that, apart from the collection's own test split.

**The set** (``aml/spam/data/out_of_domain.csv``, read with :func:`load`): 188 messages, 102 ham and 86 spam in 13
categories (:data:`CATEGORIES`), each written for this set before any model was run on it, none copied from the
collection or from the behavioural bank (:mod:`aml.spam.behaviour`). Columns: ``id``, ``label`` (``ham``/``spam``),
``category``, ``text``, ``source`` (where the message comes from: "written for this set, modelled on <kind of
message>") and ``rule`` (the labelling rule applied, starting with its label).

**The labelling rule** is the collection's: *spam* is unsolicited commercial or fraudulent; *ham* is personal or
requested (the recipient subscribed, booked, bought or works there). So a receipt, a newsletter the user joined, an
appointment reminder with "Reply YES to confirm" and a 2FA code are ham; a sale the recipient never asked for is
spam however polite; a courier or bank notice that asks for a fee, a card number or a log-in through a look-alike
link is spam (fraud) however official it sounds. Messages whose label the rule does not settle were left out.

**Why a set of our own**: the course's datasets hold no such messages, public e-mail spam corpora are long e-mails
rather than SMS-length texts, and a set written to the collection's rule, with the rule stated per message, can be
reviewed line by line and kept in the repository.

:func:`evaluate` scores a model on the set at its threshold (the validation-chosen one) and returns an
:class:`OutOfDomainReport`: spam caught (recall), ham kept (1 − false-positive rate), AUCPR, a per-category table and
the messages the model gets wrong; :func:`compare` puts several models side by side, each at its own threshold. The aim (issue 24) is :data:`AIM` for both ham kept and spam caught.
:func:`evaluate_many` scores every benchmark once; :func:`benchmark_table` puts its figures beside the test split's,
:func:`disagreements` lists the messages the models disagree on and :func:`metrics` gives the metrics file's block.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

with warnings.catch_warnings():
    # pandera imports pyspark.pandas when pyspark is installed (team scale), which warns about pandas 3: on import
    # and again on the first validation (pandera registers its backends then; see validate)
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    import pandera.pandas as pa

from aml.core.metrics import apply_threshold, average_precision
from aml.spam.profiling import CONTROL
from aml.spam.sms import LABELS, DataValidationError

#: the set's file inside the package (package data, so an installed ``aml`` carries it)
FILE = "data/out_of_domain.csv"
#: the set's columns, in file order
COLUMNS = ("id", "label", "category", "text", "source", "rule")
#: every category and its label (the order of the per-category table: ham first, then spam)
CATEGORIES: dict[str, str] = {
    "work": "ham",  # meetings, deadlines, reports, office and HR notices
    "newsletter": "ham",  # newsletters, courses, clubs and webinars the user joined
    "receipt_delivery": "ham",  # receipts, orders, refunds, bills, delivery notices
    "appointment": "ham",  # bookings the user made: surgery, garage, salon, restaurant
    "it_security": "ham",  # sign-in codes, account notices, IT and helpdesk notices
    "personal": "ham",  # SMS-typical texts between friends and family
    "promotion": "spam",  # unsolicited sales and product offers
    "investment": "spam",  # crypto, trading, get-rich and easy-loan offers
    "parcel_phishing": "spam",  # fake courier notices asking for a fee or details
    "bank_phishing": "spam",  # fake bank, tax, subscription and tech-support alerts
    "prize_scam": "spam",  # fake prizes, lotteries, gift cards, survey rewards
    "caps_offer": "spam",  # all-capitals offers
    "impersonation_scam": "spam",  # "Hi Mum", fake recruiters, fake police, romance
}
#: the aim on this set, for both ham kept and spam caught at the served threshold (issue 24)
AIM = 0.90


def path() -> Path:
    """Where the set's CSV file is (inside the installed package)."""
    return Path(str(resources.files("aml.spam").joinpath(FILE)))


def schema() -> pa.DataFrameSchema:
    """The pandera schema of the set: the :data:`COLUMNS` and nothing else, unique ids and texts (ignoring case and
    surrounding spaces), known categories whose label agrees with :data:`CATEGORIES`, a non-empty source, and a
    labelling rule that starts with the message's label."""

    def normalised(s: pd.Series) -> pd.Series:
        return s.str.strip().str.lower()

    return pa.DataFrameSchema(
        {
            "id": pa.Column(str, pa.Check.str_matches(r"^ood-\d{3,}$"), unique=True, nullable=False),
            "label": pa.Column(str, pa.Check.isin(list(LABELS)), nullable=False),
            "category": pa.Column(str, pa.Check.isin(list(CATEGORIES)), nullable=False),
            "text": pa.Column(
                str,
                [
                    pa.Check(lambda s: s.str.strip().str.len() > 0, error="non-empty text"),
                    pa.Check(lambda s: ~s.str.contains(CONTROL, regex=True), error="no control characters"),
                    pa.Check(lambda s: ~normalised(s).duplicated(keep=False), error="unique text (any case)"),
                ],
                nullable=False,
            ),
            "source": pa.Column(str, pa.Check(lambda s: s.str.strip().str.len() > 0, error="a source"), nullable=False),
            "rule": pa.Column(str, nullable=False),
        },
        checks=[
            pa.Check(
                lambda d: d["label"] == d["category"].map(CATEGORIES),
                error="label agrees with the category's label",
            ),
            pa.Check(
                lambda d: pd.Series(
                    [r.startswith(f"{lb}:") for r, lb in zip(d["rule"], d["label"], strict=True)], index=d.index
                ),
                error="the rule starts with the label ('ham:' or 'spam:')",
            ),
        ],
        strict=True,
        ordered=True,
        name="out_of_domain",
    )


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` checked against :func:`schema`; every failure is listed in a :class:`~aml.spam.sms.DataValidationError`."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
            return schema().validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "index", "failure_case"]].head(20)
        raise DataValidationError(f"the out-of-domain set fails its schema:\n{cases.to_string(index=False)}") from None


def load(path_: str | Path | None = None) -> pd.DataFrame:
    """The set as a frame (:data:`COLUMNS` plus ``y``: 1 = spam), validated with :func:`schema`. ``path_``: another
    file in the same format (default: the package's, :func:`path`)."""
    source = Path(path_) if path_ is not None else path()
    if not source.is_file():
        raise FileNotFoundError(f"the out-of-domain set is not at {source}")
    df = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8")
    df = validate(df)
    return df.assign(y=(df["label"] == "spam").astype(int))


def _propensity(model, texts: Sequence[str]) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(list(texts)), dtype=float)[:, 1]
    if callable(model):
        return np.asarray(model(list(texts)), dtype=float).reshape(-1)
    raise TypeError(f"need a model with predict_proba or a callable texts -> propensities, got {type(model).__name__}")


@dataclass(frozen=True)
class OutOfDomainReport:
    """What :func:`evaluate` found: the ``threshold`` and one row per message (``table``: ``id``, ``category``,
    ``label``, ``y``, ``text``, ``propensity``, ``prediction``, ``correct``)."""

    threshold: float
    table: pd.DataFrame

    @property
    def spam_caught(self) -> float:
        """The share of spam predicted spam (recall)."""
        return float(self.table.loc[self.table["y"] == 1, "correct"].mean())

    @property
    def ham_kept(self) -> float:
        """The share of ham predicted ham (1 − the false-positive rate)."""
        return float(self.table.loc[self.table["y"] == 0, "correct"].mean())

    @property
    def aucpr(self) -> float:
        """Average precision of the propensities on the set (threshold-free)."""
        return average_precision(self.table["y"].to_numpy(), self.table["propensity"].to_numpy())

    def by_category(self) -> pd.DataFrame:
        """One row per category (:data:`CATEGORIES`' order): ``label``, ``messages``, ``correct`` (ham kept or spam
        caught), ``rate`` (their share) and the ``median_propensity``."""
        g = self.table.groupby("category", sort=False)
        out = pd.DataFrame(
            {
                "label": g["label"].first(),
                "messages": g.size(),
                "correct": g["correct"].sum().astype(int),
                "rate": g["correct"].mean(),
                "median_propensity": g["propensity"].median(),
            }
        )
        order = [c for c in CATEGORIES if c in out.index] + sorted(set(out.index) - set(CATEGORIES))
        return out.loc[order].rename_axis("category")

    def errors(self) -> pd.DataFrame:
        """The messages the model gets wrong (blocked ham, then missed spam; by category and propensity):
        ``id``, ``category``, ``label``, ``propensity``, ``text``."""
        wrong = self.table.loc[~self.table["correct"]]
        wrong = wrong.sort_values(["y", "category", "propensity"], ascending=[True, True, False])
        return wrong[["id", "category", "label", "propensity", "text"]].reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """JSON-able: ``threshold``, ``messages``, ``ham``, ``spam``, ``ham_kept``, ``spam_caught``, ``aucpr``,
        ``by_category`` (category -> rate) and ``errors`` (the :meth:`errors` rows)."""
        return {
            "threshold": float(self.threshold),
            "messages": int(len(self.table)),
            "ham": int((self.table["y"] == 0).sum()),
            "spam": int((self.table["y"] == 1).sum()),
            "ham_kept": self.ham_kept,
            "spam_caught": self.spam_caught,
            "aucpr": self.aucpr,
            "by_category": {k: float(v) for k, v in self.by_category()["rate"].items()},
            "errors": [
                {k: (float(v) if k == "propensity" else v) for k, v in row.items()}
                for row in self.errors().to_dict("records")
            ],
        }


def evaluate(
    model: Any | Callable[[list[str]], Sequence[float]], threshold: float, data: pd.DataFrame | None = None
) -> OutOfDomainReport:
    """Score ``model`` on the set (``data``: default :func:`load`) at ``threshold`` (prediction = spam when
    ``propensity >= threshold``, :func:`aml.core.metrics.apply_threshold`). ``model``: a fitted model with
    ``predict_proba`` over raw texts, or a callable from texts to spam propensities."""
    df = load() if data is None else data
    missing = {"label", "category", "text"} - set(df.columns)
    if missing:
        raise ValueError(f"the evaluation data lacks the columns {sorted(missing)}")
    if not set(df["label"]) <= set(LABELS) or df["label"].nunique() != 2:
        raise ValueError(f"the evaluation data needs both labels {list(LABELS)} and nothing else")
    p = _propensity(model, df["text"])
    if p.shape != (len(df),) or np.isnan(p).any():
        raise ValueError(
            f"the model returned {p.shape} propensities (NaN: {bool(np.isnan(p).any())}) for {len(df)} texts"
        )
    y = (df["label"] == "spam").astype(int).to_numpy()
    prediction = apply_threshold(p, threshold).astype(int)
    ids = df["id"] if "id" in df else pd.Series([f"row-{i}" for i in range(len(df))], index=df.index)
    table = pd.DataFrame(
        {
            "id": ids.to_numpy(),
            "category": df["category"].to_numpy(),
            "label": df["label"].to_numpy(),
            "y": y,
            "text": df["text"].to_numpy(),
            "propensity": p,
            "prediction": prediction,
            "correct": prediction == y,
        }
    )
    return OutOfDomainReport(float(threshold), table)


def compare(models: Mapping[str, tuple[Any, float]], data: pd.DataFrame | None = None) -> pd.DataFrame:
    """Several models on the set, each at its own threshold (``models``: name -> ``(model, threshold)``, e.g. every
    :class:`aml.spam.stages.Trained`'s ``model`` and ``threshold``): one row per model with ``threshold``,
    ``ham_kept``, ``spam_caught``, ``aucpr`` and one column per category (its rate), in the given order."""
    if not models:
        raise ValueError("compare() needs at least one (model, threshold)")
    df = load() if data is None else data
    rows = {}
    for name, (model, threshold) in models.items():
        report = evaluate(model, threshold, df)
        rows[name] = {
            "threshold": report.threshold,
            "ham_kept": report.ham_kept,
            "spam_caught": report.spam_caught,
            "aucpr": report.aucpr,
            **report.by_category()["rate"].to_dict(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def evaluate_many(
    models: Mapping[str, tuple[Any, float]], data: pd.DataFrame | None = None
) -> dict[str, OutOfDomainReport]:
    """:func:`evaluate` for several models, each at its own threshold (``models``: name -> ``(model, threshold)``):
    ``{name: report}`` in the given order, the set loaded once. The reports feed :func:`benchmark_table`,
    :func:`disagreements` and :func:`metrics` without scoring a model twice."""
    if not models:
        raise ValueError("evaluate_many() needs at least one (model, threshold)")
    df = load() if data is None else data
    return {name: evaluate(model, threshold, df) for name, (model, threshold) in models.items()}


#: the test-split figures :func:`benchmark_table` takes from :func:`aml.spam.stages.report`'s table
TEST_COLUMNS = ("aucpr", "precision", "recall", "ham_blocked")


def benchmark_table(
    test: pd.DataFrame,
    reports: Mapping[str, OutOfDomainReport],
    validation_aucpr: Mapping[str, float] | pd.Series | None = None,
) -> pd.DataFrame:
    """Every benchmark on the collection's test split and on this set, side by side, each at its validation-chosen
    threshold: one row per model of ``reports`` (in ``test``'s order where it has them), columns ``threshold``,
    ``validation_aucpr`` (when given: the selection criterion), ``test_aucpr``, ``test_precision``,
    ``test_recall``, ``test_ham_kept`` (1 − ham blocked), ``ood_aucpr``, ``ood_spam_caught``, ``ood_ham_kept`` and
    ``ood_aim_met`` (both ≥ :data:`AIM`). ``test``: :func:`aml.spam.stages.report`'s table (one row per model)."""
    missing = [c for c in TEST_COLUMNS if c not in test.columns]
    if missing:
        raise ValueError(f"the test table lacks the columns {missing} (expected aml.spam.stages.report's table)")
    absent = [name for name in reports if name not in test.index]
    if absent:
        raise ValueError(f"no test figures for {absent}: the test table has {list(test.index)}")
    order = [name for name in test.index if name in reports]
    rows = {}
    for name in order:
        report, row = reports[name], test.loc[name]
        rows[name] = {
            "threshold": report.threshold,
            **({"validation_aucpr": float(validation_aucpr[name])} if validation_aucpr is not None else {}),
            "test_aucpr": float(row["aucpr"]),
            "test_precision": float(row["precision"]),
            "test_recall": float(row["recall"]),
            "test_ham_kept": 1.0 - float(row["ham_blocked"]),
            "ood_aucpr": report.aucpr,
            "ood_spam_caught": report.spam_caught,
            "ood_ham_kept": report.ham_kept,
            "ood_aim_met": bool(report.spam_caught >= AIM and report.ham_kept >= AIM),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def category_table(reports: Mapping[str, OutOfDomainReport]) -> pd.DataFrame:
    """One row per category (:data:`CATEGORIES`' order, with its ``label``), one column per model: the share of the
    category's messages the model gets right (ham kept or spam caught) at its threshold."""
    if not reports:
        raise ValueError("category_table() needs at least one report")
    tables = {name: report.by_category() for name, report in reports.items()}
    first = next(iter(tables.values()))
    out = pd.DataFrame({name: table["rate"] for name, table in tables.items()}, index=first.index)
    return out.set_index(pd.MultiIndex.from_arrays([first["label"], first.index], names=["label", "category"]))


def disagreements(reports: Mapping[str, OutOfDomainReport], n: int | None = None) -> pd.DataFrame:
    """The messages of the set the models disagree on (some predict spam, some ham, each at its own threshold):
    ``id``, ``category``, ``label``, ``text``, one propensity column per model, and ``right`` (the models that get
    the message right, comma-separated). Ordered by label (ham first), then by how split the models are (closest to
    half right first), then by id; ``n`` keeps the first ``n`` rows."""
    if len(reports) < 2:
        raise ValueError(f"disagreements() needs at least two models' reports, got {len(reports)}")
    names = list(reports)
    base = reports[names[0]].table
    for name in names[1:]:
        if not reports[name].table["id"].equals(base["id"]):
            raise ValueError(f"the reports of {names[0]!r} and {name!r} are not on the same messages")
    correct = pd.DataFrame({name: reports[name].table["correct"].to_numpy() for name in names})
    split = correct.any(axis=1) & ~correct.all(axis=1)
    out = base.loc[split.to_numpy(), ["id", "category", "label", "y", "text"]].copy()
    for name in names:
        out[name] = reports[name].table.loc[split.to_numpy(), "propensity"].to_numpy()
    right = correct.loc[split.to_numpy()]
    out["right"] = [", ".join(n_ for n_ in names if ok[n_]) for _, ok in right.iterrows()]
    out["_balance"] = np.abs(right.mean(axis=1).to_numpy() - 0.5)
    out = out.sort_values(["y", "_balance", "id"]).drop(columns=["y", "_balance"]).reset_index(drop=True)
    return out if n is None else out.head(n)


def metrics(reports: Mapping[str, OutOfDomainReport]) -> dict[str, dict[str, Any]]:
    """JSON-able figures per model for a metrics file: :meth:`OutOfDomainReport.summary` without the error list
    (``threshold``, ``messages``, ``ham``, ``spam``, ``ham_kept``, ``spam_caught``, ``aucpr``, ``by_category``) plus
    ``errors``, the count of messages it gets wrong."""
    out = {}
    for name, report in reports.items():
        summary = report.summary()
        summary["errors"] = len(summary["errors"])
        out[name] = summary
    return out


__all__ = [
    "AIM",
    "CATEGORIES",
    "COLUMNS",
    "FILE",
    "OutOfDomainReport",
    "TEST_COLUMNS",
    "benchmark_table",
    "category_table",
    "compare",
    "disagreements",
    "evaluate",
    "evaluate_many",
    "load",
    "metrics",
    "path",
    "schema",
    "validate",
]
