"""The course's code design, implemented once for the spam filter. Every front end calls these functions: the
notebooks, the DVC pipeline (:mod:`aml.spam.pipeline`), MLflow-tracked training (:func:`aml.mlops.tracking.tracked`
around :func:`train`), the scoring service and its tests.

===========================================================  ==========================================================
function                                                     what it does
===========================================================  ==========================================================
``load_data(file_path) -> df``                               read the raw collection (``label<TAB>text``) or a CSV
                                                             written by :func:`save_data`, validated
``save_data(df, file_path) -> file_path``                    write a CSV atomically (temporary name, then rename)
``prepare_train_validation_test_split(df) -> 3 frames``      strip, add ``y``, drop duplicate texts, stratified split
``prepare_scoring_data(df) -> df_scoring``                   the ``text`` column (and an ``id``) of unlabelled data
``fit(model, df, df_val=None) -> model``                     fit on the ``text``/``y`` columns (validation only
                                                             for a model that early-stops or stacks on it)
``score(model, df, threshold) -> df_scored``                 add ``propensity`` and ``prediction`` (the threshold is
                                                             applied apart from the propensity)
``evaluate(df_scored, metrics) -> results``                  the metrics of scored, labelled data
``validate(model, df_train, df_test) -> results``            the gate before a model serves: overfitting gap, minimum
                                                             AUCPR, the champion, the behavioural bank, samples
``save_splits``, ``load_splits``, ``ensure_splits``          the split files and their manifest (seed, source hash,
                                                             rows, file hashes): another seed's splits are refused;
                                                             each seed has its own folder ``data_dir/seed-<seed>``
``load_model(path) -> model``, ``save_model(model, path)``   the artefact format of :mod:`aml.core.modelstore`
===========================================================  ==========================================================

Built on them: :func:`train` (fit → score validation → threshold → evaluate: the flow, written once),
:func:`compare` (every benchmark through :func:`train`, the model-selection table), :func:`report` (the chosen
thresholds applied to test), :func:`seed_study` and :func:`error_examples`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from aml.core import datasets
from aml.core import metrics as _metrics
from aml.core.files import write_atomic
from aml.core.modelstore import load_model, save_model
from aml.core.splits import SPLITS, check_manifest, read_manifest, seed_dir, stratified_indices, write_manifest
from aml.spam import sms

log = logging.getLogger(__name__)

TEXT, TARGET, ID = "text", "y", "id"
PROPENSITY, PREDICTION = "propensity", "prediction"
MIN_PRECISION = _metrics.MIN_PRECISION
#: the train/validation/test fractions of the split (stratified)
FRACTIONS = (0.70, 0.15, 0.15)
#: what :func:`evaluate` computes by default
METRICS = _metrics.METRICS
#: the model-validation gate's defaults (see :func:`validate`)
MAX_AUCPR_GAP = 0.05
MIN_AUCPR = 0.95
#: validation AUCPR differences below this are noise (its sd over split seeds is about 0.003 for the best models):
#: within it, model selection prefers the simpler model, the one listed first (the catalogue lists simplest first)
AUCPR_TIE = 0.001

__all__ = [
    "FRACTIONS",
    "METRICS",
    "Comparison",
    "Trained",
    "compare",
    "error_examples",
    "evaluate",
    "fit",
    "load_data",
    "load_model",
    "predict_propensity",
    "prepare_scoring_data",
    "prepare_train_validation_test_split",
    "read_csv_frame",
    "report",
    "save_data",
    "sample_predictions",
    "save_model",
    "score",
    "seed_study",
    "ensure_splits",
    "load_splits",
    "prepare",
    "save_splits",
    "split_dir",
    "split_manifest",
    "train",
    "tune",
    "best_params",
    "validate",
]


# -- data ------------------------------------------------------------------------------------------------------------


def read_csv_frame(source, name: str, **kwargs) -> pd.DataFrame:
    """:func:`pandas.read_csv` of ``source`` (a path or a file object) for data a caller hands over: what pandas
    cannot parse (binary, empty, ragged rows, not UTF-8) and rows with more fields than the header (texts with
    unquoted commas: pandas would silently turn the extra leading fields into an index) are a
    :class:`~aml.spam.sms.DataValidationError` naming ``name`` (the file as the caller knows it)."""
    try:
        df = pd.read_csv(source, **kwargs)
    except ValueError as exc:  # ParserError, EmptyDataError, UnicodeDecodeError, ...
        reason = " ".join(str(exc).split())[:200]
        raise sms.DataValidationError(f"{name} is not a readable CSV file: {reason}") from None
    if not df.index.equals(pd.RangeIndex(len(df))):  # ids 1, 2, 3... as an implicit index make a RangeIndex too
        raise sms.DataValidationError(
            f"{name}: rows have more fields than the header {list(df.columns)[:10]}: quote the texts that contain "
            "commas (CSV quoting, as pandas' to_csv writes them)"
        )
    return df


def load_data(file_path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Read SMS data: the raw collection (``label<TAB>text`` lines, no header) or a CSV with a header (a split or
    scoring data written by :func:`save_data`). Strings are kept exactly as written; labelled data is validated
    (:func:`aml.spam.sms.check_sms_frame`); a file that cannot be parsed is a
    :class:`~aml.spam.sms.DataValidationError` (:func:`read_csv_frame`). ``name``: the file as messages call it
    (default its path; a service passes the store path its caller sent)."""
    path = Path(file_path)
    name = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {name}")
    if path.suffix.lower() != ".csv":
        df = sms.read_sms_file(path, name=name)
        sms.check_sms_frame(df)
        return df
    df = read_csv_frame(path, name, dtype={"label": "string", TEXT: "string", ID: "string"}, keep_default_na=False)
    if TEXT not in df.columns:
        raise sms.DataValidationError(f"{name}: no {TEXT!r} column (found {list(df.columns)[:10]})")
    if "label" in df.columns:
        try:
            sms.check_sms_frame(df[["label", TEXT]])
        except sms.DataValidationError as exc:
            raise sms.DataValidationError(f"{name}: {exc}") from None
        if TARGET in df.columns and not ((df[TARGET] == 1) == (df["label"] == "spam")).all():
            raise sms.DataValidationError(f"{name}: column y disagrees with label")
    return df


def save_data(df: pd.DataFrame, file_path: str | Path) -> Path:
    """Write ``df`` as CSV (no index) to a temporary file beside ``file_path``, then rename it into place: a crash
    never leaves half a file, and the previous version stays until the new one is complete. Returns the path."""
    return write_atomic(file_path, lambda tmp: df.to_csv(tmp, index=False, encoding="utf-8"))


def prepare_train_validation_test_split(
    df: pd.DataFrame, seed: int = 42, fractions: tuple[float, float, float] = FRACTIONS
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Raw ``label``/``text`` frame → ``(df_train, df_val, df_test)``: text stripped, ``y`` added (spam = 1), exact
    duplicate texts dropped before splitting (:func:`aml.spam.sms.preprocess`), then a stratified split on ``y``
    (70/15/15 by default)."""
    clean, removed = sms.preprocess(df)
    log.debug("removed %d duplicate rows; %d distinct messages", removed, len(clean))
    return split_preprocessed(clean, seed, fractions)


def split_preprocessed(
    clean: pd.DataFrame, seed: int = 42, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The stratified split on ``y`` of a frame :func:`aml.spam.sms.preprocess` already cleaned: for a caller that
    keeps the cleaned frame too (the project's data stage writes it), so the cleaning runs once."""
    positions = stratified_indices(clean[TARGET].to_numpy(), fractions, seed)
    parts = tuple(clean.iloc[positions[name]].reset_index(drop=True) for name in SPLITS)
    return parts  # type: ignore[return-value]


def prepare_scoring_data(df: pd.DataFrame) -> pd.DataFrame:
    """Unlabelled (or labelled) messages → the frame to score: an ``id`` (kept if given, else the row number), the
    ``text`` stripped of surrounding whitespace, and ``label``/``y`` when present (for evaluation later). Rows whose
    text is missing or empty are refused with their ids: a message that cannot be scored must not vanish silently."""
    if TEXT not in df.columns:
        raise sms.DataValidationError(f"scoring data needs a {TEXT!r} column, found {list(df.columns)}")
    out = pd.DataFrame({ID: df[ID].astype("string") if ID in df.columns else pd.Series(range(len(df)), dtype="string")})
    text = df[TEXT].astype("string")
    out[TEXT] = text.str.strip()
    empty = out.loc[out[TEXT].isna() | (out[TEXT] == ""), ID].tolist()
    if empty:
        raise sms.DataValidationError(f"{len(empty)} message(s) with empty text, ids {empty[:5]}")
    for column in ("label", TARGET):
        if column in df.columns:
            out[column] = df[column].to_numpy()
    return out.reset_index(drop=True)


def split_dir(data_dir: str | Path, seed: int) -> Path:
    """Where seed ``seed``'s split files live under ``data_dir``: ``data_dir/seed-<seed>``
    (:func:`aml.core.splits.seed_dir`), so the splits of several seeds stay side by side."""
    return seed_dir(data_dir, seed)


def _prepare_hint(folder: Path, seed: int | None) -> str:
    seed_text = seed if seed is not None else "<seed>"
    return (
        f"Prepare them: run prepare.ipynb with SEED {seed_text} (papermill ... -p SEED {seed_text}), or call "
        f"aml.spam.stages.prepare({str(folder)!r}, seed={seed_text})."
    )


def save_splits(
    parts: Mapping[str, pd.DataFrame] | tuple,
    folder: str | Path,
    *,
    seed: int,
    source: str | Path | None = None,
    fractions: tuple[float, float, float] | None = None,
) -> dict[str, Path]:
    """Write the three splits (a ``{name: frame}`` mapping or the tuple of
    :func:`prepare_train_validation_test_split`) as ``train.csv``/``validation.csv``/``test.csv`` in ``folder``, then
    their manifest ``splits.json`` (:func:`aml.core.splits.write_manifest`: ``seed``, the ``source`` file's hash, the
    row counts and file hashes). Returns ``{name: path}`` of the three files."""
    if not isinstance(parts, Mapping):
        parts = dict(zip(SPLITS, parts, strict=True))
    paths = {name: save_data(parts[name], Path(folder) / f"{name}.csv") for name in SPLITS}
    write_manifest(folder, seed, paths, {name: len(parts[name]) for name in SPLITS}, source, fractions)
    return paths


def load_splits(folder: str | Path, seed: int | None = None, hint: str | None = None) -> dict[str, pd.DataFrame]:
    """The three split files of ``folder`` (validated by :func:`load_data`), as ``{name: frame}``, after checking
    their manifest (:func:`aml.core.splits.check_manifest`): made with ``seed`` when it is given, and unchanged since.
    Split files of another seed, without a manifest or changed since are refused
    (:class:`aml.core.splits.SplitMismatchError`) with ``hint`` (default: how to prepare them): never silently used."""
    folder = Path(folder)
    hint = hint if hint is not None else _prepare_hint(folder, seed)
    missing = [Path(folder) / f"{name}.csv" for name in SPLITS if not (folder / f"{name}.csv").is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]} not found. {hint}")
    check_manifest(folder, seed, hint)
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.csv"
        out[name] = load_data(path)
        if list(out[name].columns) != ["label", TEXT, TARGET]:
            raise sms.DataValidationError(
                f"{path}: expected columns ['label', 'text', 'y'], found {list(out[name].columns)}"
            )
    return out


def prepare(folder: str | Path, seed: int = 42, raw_path: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """load → split → save: the raw collection (``raw_path``, default the registry's copy) split with ``seed`` into
    ``folder``, with its manifest."""
    raw_path = Path(raw_path) if raw_path else datasets.fetch("sms_spam") / sms.FILENAME
    parts = dict(zip(SPLITS, prepare_train_validation_test_split(load_data(raw_path), seed, FRACTIONS), strict=True))
    save_splits(parts, folder, seed=seed, source=raw_path, fractions=FRACTIONS)
    return parts


def ensure_splits(data_dir: str | Path, seed: int = 42) -> dict[str, pd.DataFrame]:
    """Seed ``seed``'s splits from their own folder ``data_dir/seed-<seed>`` (:func:`split_dir`), prepared first
    (logged) when the folder holds no manifest yet. A folder whose manifest names another seed, or whose files changed
    since, is refused (:func:`load_splits`), never re-prepared over nor used."""
    folder = split_dir(data_dir, seed)
    if read_manifest(folder) is None:
        log.warning("no splits of seed %d in %s: preparing them", seed, folder)
        prepare(folder, seed=seed)
    return load_splits(folder, seed)


def split_manifest(data_dir: str | Path, seed: int) -> dict[str, Any]:
    """The checked manifest (:func:`aml.core.splits.check_manifest`) of seed ``seed``'s splits under ``data_dir``:
    ``{"seed", "fractions", "source", "rows", "files"}``, what a notebook records beside its metrics."""
    folder = split_dir(data_dir, seed)
    return check_manifest(folder, seed, _prepare_hint(folder, seed))


# -- model -----------------------------------------------------------------------------------------------------------


def fit(model, df: pd.DataFrame, df_val: pd.DataFrame | None = None):
    """Fit ``model`` on the ``text``/``y`` columns of ``df``; returns the fitted model. With ``df_val``, a model
    whose ``fit`` takes ``X_val``/``y_val`` (the fine-tuned transformer's early stopping, the stack's combiner:
    :func:`aml.spam.transformer.accepts_validation`) gets the validation texts and labels too; other models never
    see them."""
    from aml.spam.transformer import accepts_validation

    X, y = df[TEXT].tolist(), df[TARGET].to_numpy()
    if df_val is not None and accepts_validation(model):
        return model.fit(X, y, X_val=df_val[TEXT].tolist(), y_val=df_val[TARGET].to_numpy())
    return model.fit(X, y)


def predict_propensity(model, texts: pd.DataFrame | Iterable[str]) -> np.ndarray:
    """Spam propensity (probability of class 1) of each text (a frame's ``text`` column or any iterable)."""
    if isinstance(texts, pd.DataFrame):
        texts = texts[TEXT]
    return np.asarray(model.predict_proba(list(texts)))[:, 1]


def score(model, df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``df`` with two columns added: ``propensity`` (the model's probability of spam) and ``prediction``
    (``propensity >= threshold``, :func:`aml.core.metrics.apply_threshold`)."""
    return _scored(df, predict_propensity(model, df), threshold)


def _scored(df: pd.DataFrame, propensity: np.ndarray, threshold: float) -> pd.DataFrame:
    out = df.assign(**{PROPENSITY: propensity, PREDICTION: _metrics.apply_threshold(propensity, threshold)})
    out.attrs["threshold"] = float(threshold)  # read back by evaluate()
    return out


def evaluate(df_scored: pd.DataFrame, metrics: Iterable[str] = METRICS) -> dict[str, Any]:
    """The requested ``metrics`` (names from :data:`METRICS`) of scored, labelled data: columns ``y``,
    ``propensity`` and ``prediction``. The threshold is the one :func:`score` recorded (``df_scored.attrs``), or,
    for scored data read back from a file, the lowest propensity predicted spam; the predictions are checked
    against it."""
    missing = [c for c in (TARGET, PROPENSITY, PREDICTION) if c not in df_scored.columns]
    if missing:
        raise ValueError(f"evaluate needs scored, labelled data: columns {missing} are missing")
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: expected names from {METRICS}")
    threshold = df_scored.attrs.get("threshold")
    if threshold is None:
        flagged = df_scored.loc[df_scored[PREDICTION].astype(bool), PROPENSITY]
        threshold = (
            float(flagged.min()) if len(flagged) else min(1.0, float(np.nextafter(df_scored[PROPENSITY].max(), 2)))
        )
    results = _metrics.binary_metrics(
        df_scored[TARGET], df_scored[PROPENSITY], threshold, prediction=df_scored[PREDICTION]
    )
    return {name: results[name] for name in metrics}


def validate(
    model,
    df_train: pd.DataFrame,
    df_test: pd.DataFrame,
    max_gap: float = MAX_AUCPR_GAP,
    min_aucpr: float = MIN_AUCPR,
    champion: Any | None = None,
    threshold: float | None = None,
    behaviour_limits: Mapping[str, float] | None = None,
    samples: int = 0,
    seed: int = 0,
    out_of_domain: bool = False,
    champion_threshold: float | None = None,
) -> dict[str, Any]:
    """Validate a fitted model's training results before it serves (the course's model-validation function).

    Checks (each ``{"passed", "value", "limit"}``):

    - ``overfit``: train AUCPR minus held-out AUCPR ≤ ``max_gap``;
    - ``min_aucpr``: held-out AUCPR ≥ ``min_aucpr``;
    - ``champion`` (with ``champion``, the model serving now): held-out AUCPR at least the champion's on the same
      rows — a new version never replaces a better one;
    - ``behaviour:*`` (with ``threshold``): the behavioural tests (:func:`aml.spam.behaviour.summary`: minimum
      functionality, invariance, directional) against ``behaviour_limits`` (default :data:`aml.spam.behaviour.GATE`,
      :func:`aml.spam.behaviour.gate_checks`); the report's ``behaviour`` holds the whole summary;
    - ``out_of_domain:ham_lost`` (with ``threshold``, ``out_of_domain`` and a ``champion`` with its
      ``champion_threshold``): the out-of-domain ham the champion keeps that this model blocks, at most
      :data:`aml.spam.behaviour.OOD_HAM_TOLERANCE` (:func:`aml.spam.behaviour.out_of_domain_checks`); the report's
      ``out_of_domain`` holds the figures (ham kept, spam caught, the champion's, the ham lost), also without a
      champion.

    ``df_test`` is any held-out labelled split (validation while training, test in a final report). ``samples`` > 0
    adds ``samples`` (a seeded draw of that many predicted-spam and predicted-ham held-out messages with their
    propensity and true label, at ``threshold``, default 0.5) for a person to eyeball. Returns ``{"passed": bool,
    "checks": {...}, "train_aucpr", "test_aucpr", "champion_aucpr", "behaviour", "out_of_domain", "samples"}``
    (JSON-able).
    """
    test_propensity = predict_propensity(model, df_test)
    train_aucpr = _metrics.binary_metrics(df_train[TARGET], predict_propensity(model, df_train), 0.5)["aucpr"]
    test_aucpr = _metrics.binary_metrics(df_test[TARGET], test_propensity, 0.5)["aucpr"]
    gap = train_aucpr - test_aucpr
    checks = {
        "overfit": {"passed": bool(gap <= max_gap), "value": float(gap), "limit": float(max_gap)},
        "min_aucpr": {"passed": bool(test_aucpr >= min_aucpr), "value": float(test_aucpr), "limit": float(min_aucpr)},
    }
    result: dict[str, Any] = {"train_aucpr": float(train_aucpr), "test_aucpr": float(test_aucpr)}
    result["champion_aucpr"] = None
    if champion is not None:
        theirs = float(_metrics.binary_metrics(df_test[TARGET], predict_propensity(champion, df_test), 0.5)["aucpr"])
        result["champion_aucpr"] = theirs
        checks["champion"] = {"passed": bool(test_aucpr >= theirs), "value": float(test_aucpr), "limit": theirs}
    result["behaviour"] = None
    if threshold is not None:
        from aml.spam import behaviour

        result["behaviour"] = behaviour.summary(model, threshold)
        checks.update(behaviour.gate_checks(result["behaviour"], behaviour_limits))
    result["out_of_domain"] = None
    if threshold is not None and out_of_domain:
        from aml.spam import behaviour

        result["out_of_domain"], ood_checks = behaviour.out_of_domain_checks(
            model, threshold, champion, champion_threshold
        )
        checks.update(ood_checks)
    result["samples"] = (
        sample_predictions(df_test, test_propensity, 0.5 if threshold is None else threshold, samples, seed)
        if samples
        else []
    )
    return {"passed": all(c["passed"] for c in checks.values()), "checks": checks, **result}


def sample_predictions(
    df: pd.DataFrame, propensity, threshold: float, per_class: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """A seeded draw of ``per_class`` messages predicted spam and ``per_class`` predicted ham (fewer when there are
    fewer): ``text``, ``propensity``, ``prediction``, the true ``y`` when known and ``correct``; for eyeballing what
    a model does (the model-validation report logs them)."""
    propensity = np.asarray(propensity, dtype=float)
    prediction = _metrics.apply_threshold(propensity, threshold).astype(int)
    rng = np.random.default_rng(seed)
    rows = []
    for predicted in (1, 0):
        where = np.flatnonzero(prediction == predicted)
        for i in sorted(rng.choice(where, size=min(per_class, where.size), replace=False).tolist()):
            row = {"text": str(df[TEXT].iloc[i]), "propensity": float(propensity[i]), "prediction": predicted}
            if TARGET in df.columns:
                row["y"] = int(df[TARGET].iloc[i])
                row["correct"] = bool(row["y"] == predicted)
            rows.append(row)
    return rows


# -- the flow, built on the stages -----------------------------------------------------------------------------------


@dataclass
class Trained:
    """What :func:`train` returns: the fitted model, its validation-chosen threshold and its metrics."""

    name: str
    model: Any
    threshold: float
    metrics: dict  # {"train": {...}, "validation": {...}} at the threshold
    scored: dict = field(default_factory=dict)  # split name -> scored frame
    fit_seconds: float = 0.0
    params: dict = field(default_factory=dict)

    @property
    def input_example(self) -> list[str]:
        """Three training texts: the input example logged with the model."""
        return self.scored["train"][TEXT].head(3).tolist()


def train(
    model,
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    min_precision: float = MIN_PRECISION,
    name: str | None = None,
    params: Mapping | None = None,
) -> Trained:
    """Fit ``model`` (a fresh clone) on train (a model that early-stops or stacks on validation gets ``df_val`` too,
    see :func:`fit`), score train and validation, choose the threshold on validation (highest recall with precision
    ≥ ``min_precision``) and evaluate both splits at it.

    The fitted model is the form that serves: a fine-tuned transformer is exported to ONNX right after its fit,
    checked on the validation texts (:func:`aml.spam.onnx.servable`), so the metrics are the served model's and a
    saved or registered model loads without torch."""
    from aml.spam import onnx

    start = time.perf_counter()
    fitted = onnx.servable(fit(clone(model), df_train, df_val), df_val[TEXT].astype(str).tolist())
    seconds = time.perf_counter() - start
    p_val = predict_propensity(fitted, df_val)
    threshold = _metrics.choose_threshold(df_val[TARGET], p_val, min_precision)
    scored = {
        "train": score(fitted, df_train, threshold),
        "validation": _scored(df_val, p_val, threshold),
    }
    metrics = {split: evaluate(frame) for split, frame in scored.items()}
    return Trained(
        name=name or type(model).__name__,
        model=fitted,
        threshold=threshold,
        metrics=metrics,
        scored=scored,
        fit_seconds=seconds,
        params={"min_precision": min_precision, **(params or {})},
    )


@dataclass
class Comparison:
    """What :func:`compare` returns: every model through :func:`train`, and the model-selection table."""

    table: pd.DataFrame
    trained: dict[str, Trained] = field(default_factory=dict)

    @property
    def best(self) -> str:
        """The model with the highest validation AUCPR; among models within :data:`AUCPR_TIE` of it, the one listed
        first among the candidates (the simpler one)."""
        top = self.table["validation_aucpr"].max()
        return next(name for name in self.trained if self.table.loc[name, "validation_aucpr"] >= top - AUCPR_TIE)

    @property
    def thresholds(self) -> dict[str, float]:
        """Each model's threshold, chosen on validation: ``{model: threshold}``."""
        return {name: t.threshold for name, t in self.trained.items()}


def compare(
    candidates: Mapping[str, Any],
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    min_precision: float = MIN_PRECISION,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """:func:`train` every candidate; the table has one row per model (train/validation AUCPR, the validation-chosen
    threshold, validation precision/recall/F1 at it, fit time), best validation AUCPR first."""
    result = Comparison(table=pd.DataFrame())
    rows = []
    for name, model in candidates.items():
        if progress:
            progress(name)
        trained = train(model, df_train, df_val, min_precision, name=name)
        val = trained.metrics["validation"]
        rows.append(
            {
                "model": name,
                "train_aucpr": trained.metrics["train"]["aucpr"],
                "validation_aucpr": val["aucpr"],
                "threshold": trained.threshold,
                "validation_precision": val["precision"],
                "validation_recall": val["recall"],
                "validation_f1": val["f1"],
                "fit_seconds": trained.fit_seconds,
            }
        )
        result.trained[name] = trained
    result.table = pd.DataFrame(rows).set_index("model").sort_values("validation_aucpr", ascending=False)
    return result


def report(comparison: Comparison, df_test: pd.DataFrame) -> pd.DataFrame:
    """Every compared model scored on ``df_test`` at its validation-chosen threshold and evaluated (one row per
    model, in the comparison's order); the scored test frames are kept in each :class:`Trained`."""
    rows = {}
    for name, trained in comparison.trained.items():
        trained.scored["test"] = score(trained.model, df_test, trained.threshold)
        rows[name] = evaluate(trained.scored["test"])
    return pd.DataFrame.from_dict(rows, orient="index").loc[comparison.table.index]


def tune(
    make_model: Callable[..., Any],
    grid: Mapping[str, list],
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    min_precision: float = MIN_PRECISION,
) -> pd.DataFrame:
    """Grid search on validation (test untouched): :func:`train` ``make_model(**params)`` for every combination of
    ``grid`` (``{parameter: [values]}``, the current default first in each list). One row per combination, in grid
    order: the parameters, train and validation AUCPR, validation recall at the validation-chosen threshold, fit time,
    and ``chosen`` (see :func:`best_params`)."""
    rows = [
        tune_row(make_model, dict(zip(grid, combo, strict=True)), df_train, df_val, min_precision)
        for combo in itertools.product(*grid.values())
    ]
    return tune_table(rows, grid)


def tune_row(
    make_model: Callable[..., Any],
    params: Mapping[str, Any],
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    min_precision: float = MIN_PRECISION,
) -> dict:
    """One candidate of :func:`tune`: :func:`train` ``make_model(**params)`` and its row (the parameters, train and
    validation AUCPR, validation recall, fit time). Separate so that the candidates can run elsewhere (one Spark
    task each: :func:`aml.project.spark.tune_on_spark`) and come back to :func:`tune_table`."""
    trained = train(make_model(**params), df_train, df_val, min_precision)
    return {
        **params,
        "train_aucpr": trained.metrics["train"]["aucpr"],
        "validation_aucpr": trained.metrics["validation"]["aucpr"],
        "validation_recall": trained.metrics["validation"]["recall"],
        "fit_seconds": trained.fit_seconds,
    }


def tune_table(rows: list[dict], grid: Mapping[str, list]) -> pd.DataFrame:
    """:func:`tune`'s table from its rows (in grid order): ``chosen`` marked, the grid kept for :func:`best_params`."""
    table = pd.DataFrame(rows)
    table["chosen"] = False
    table.loc[_first_within_tie(table), "chosen"] = True
    table.attrs["grid"] = {k: list(v) for k, v in grid.items()}  # read back by best_params
    return table


def _first_within_tie(table: pd.DataFrame):
    top = table["validation_aucpr"].max()
    return table.index[table["validation_aucpr"] >= top - AUCPR_TIE][0]


def best_params(table: pd.DataFrame, grid: Mapping[str, list] | None = None) -> dict:
    """The parameters of :func:`tune`'s chosen row, as the grid (default: the one :func:`tune` searched) gives them:
    the highest validation AUCPR, where combinations within :data:`AUCPR_TIE` of it count as tied and the first in
    grid order (the default) wins, so a model's settings change only for a real improvement."""
    grid = grid if grid is not None else table.attrs["grid"]
    combos = list(itertools.product(*grid.values()))
    if len(combos) != len(table):
        raise ValueError(f"the table has {len(table)} rows but the grid {dict(grid)} has {len(combos)} combinations")
    position = int(np.flatnonzero(table["chosen"].to_numpy())[0])
    return dict(zip(grid, combos[position], strict=True))


def seed_study(
    make_model: Callable[[int], Any],
    df: pd.DataFrame,
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    min_precision: float = MIN_PRECISION,
) -> pd.DataFrame:
    """Repeat split (seed) → :func:`train` → :func:`score` test → :func:`evaluate` for several split seeds; one row
    per seed. ``df`` is the raw ``label``/``text`` frame."""
    rows = []
    for seed in seeds:
        df_train, df_val, df_test = prepare_train_validation_test_split(df, seed=seed)
        trained = train(make_model(seed), df_train, df_val, min_precision)
        m = evaluate(score(trained.model, df_test, trained.threshold))
        rows.append({"seed": seed, **{k: v for k, v in m.items() if k != "confusion_matrix"}})
    return pd.DataFrame(rows).set_index("seed")


def error_examples(df_scored: pd.DataFrame, n: int = 5) -> dict[str, pd.DataFrame]:
    """The ``n`` most confident false positives and false negatives of scored, labelled data."""
    pred = df_scored[PREDICTION].astype(bool)
    fp = df_scored[pred & (df_scored[TARGET] == 0)].sort_values(PROPENSITY, ascending=False)
    fn = df_scored[~pred & (df_scored[TARGET] == 1)].sort_values(PROPENSITY)
    cols = [TEXT, PROPENSITY]
    return {"false_positives": fp[cols].head(n), "false_negatives": fn[cols].head(n)}
