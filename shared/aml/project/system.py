"""The spam filter as an ML system: the course's four services as functions over a data store and a model store.

=========  =====================================================================================================
stage      flow (the course's solution design)
=========  =====================================================================================================
prepare    raw data from the data store → validate, deduplicate, split (:mod:`aml.spam.stages`) → profile and data
           tests against the last accepted version (:mod:`aml.spam.profiling`, :mod:`aml.spam.datatests`) →
           ``processed/``, ``split/`` and ``scoring/`` runs back in the store
train      the latest splits → :func:`aml.spam.stages.train` in RAM, tracked in MLflow → registered in the model
           store (MLflow registry) → model validation (:func:`aml.spam.stages.validate`: overfit gap, minimum AUCPR,
           the current champion, the behavioural bank; logged to MLflow) → ``champion`` moves only on a pass
score      the served model (:func:`load_serving_model`: champion, falling back to older versions) scores one text
           (:meth:`ServingModel.score_one`) or a stored batch (:func:`score_batch` → ``predictions/``) → the
           downstream action (:func:`takedown` → ``actions/``)
evaluate   scored, labelled data → :func:`aml.spam.stages.evaluate` → ``evaluations/``
=========  =====================================================================================================

Why a module of its own: the project's service (``project/src``), its tests, the walkthrough notebook and the
benchmarks call these functions; they only compose the library's stages (:mod:`aml.spam.stages`), the data store
(:class:`aml.mlops.datastore.DataStore`), tracking (:mod:`aml.mlops.tracking`), the registry policy
(:mod:`aml.mlops.registry`) and the lean scorer (:mod:`aml.spam.lean`), so no stage is written twice.

Every output is written atomically to a new run folder, with a ``lineage.json`` (inputs with their SHA-256, the
configuration, the code version, the model version), and the kind's ``latest`` pointer moves only after every file
of the run is in place: a stage that fails leaves the previous ``latest`` untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aml.core import metrics as _metrics
from aml.core import modelstore
from aml.mlops import registry, tracking
from aml.mlops.datastore import RUN_ID, DataStore
from aml.spam import MODEL_NAME, sms, stages
from aml.spam.scoring import check_threshold

if TYPE_CHECKING:  # imported where used: pandera and matplotlib load when data is prepared, not when a service starts
    from aml.spam.profiling import Profile

log = logging.getLogger("aml.project.system")

RAW_FILE = sms.FILENAME
#: the data store's folders, one run per folder inside each
KINDS = ("raw", "processed", "split", "scoring", "training", "predictions", "evaluations", "actions", "shadow")
PREDICTIONS_FILE, TAKEDOWN_FILE, METRICS_FILE = "predictions.csv", "takedown.csv", "metrics.json"
PROFILE_FILE, PROFILE_PAGE = "profile.json", "profile.html"
#: predicted-spam and predicted-ham validation messages the training report shows for eyeballing
VALIDATION_SAMPLES = 5
#: texts every candidate model must score before it serves (the smoke check) and on which the lean scorer is
#: verified against the full model
PROBES = (
    "health check",
    "WINNER!! You have won a £1000 prize. Call 09061701461 to claim now",
    "Ok lar... see you at lunch",
    "",
)
Report = Callable[[float, str], None]


def _no_report(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", 100 * fraction, message)


class StageError(ValueError):
    """A request a stage cannot carry out as asked (bad configuration, unusable input): the caller's mistake."""


# -- configuration ---------------------------------------------------------------------------------------------------


def _from_mapping(cls, mapping: Mapping | None):
    """``cls(**mapping)`` with unknown keys and wrong types refused by a :class:`StageError` naming them."""
    mapping = dict(mapping or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise StageError(f"unknown {cls.__name__} field(s) {unknown}; expected some of {sorted(names)}")
    try:
        return cls(**mapping)
    except (TypeError, ValueError) as exc:
        raise StageError(f"{cls.__name__}: {exc}") from None


def _check_fraction(name: str, value, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PrepareConfig:
    """``/prepare``: ``raw`` (a store path; default the latest raw data, ingested from ``source`` — a local file,
    default the dataset registry's copy — when the store has none), the split ``seed`` and ``fractions``, and
    ``data_tests``: compare the data with the last accepted version (the bounds of :mod:`aml.spam.datatests`); false
    accepts a deliberate change of the data (the schema is checked either way)."""

    seed: int = 42
    fractions: tuple = (0.70, 0.15, 0.15)
    raw: str | None = None
    source: str | None = None
    data_tests: bool = True

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        fractions = tuple(self.fractions) if isinstance(self.fractions, (list, tuple)) else ()
        if len(fractions) != 3 or any(_check_fraction("fractions", f, 0.01, 0.98) <= 0 for f in fractions):
            raise ValueError(f"fractions must be three numbers in (0, 1), got {self.fractions!r}")
        if abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError(f"fractions must sum to 1, got {sum(fractions)}")
        object.__setattr__(self, "fractions", tuple(float(f) for f in fractions))
        for name in ("raw", "source"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        if not isinstance(self.data_tests, bool):
            raise ValueError(f"data_tests must be true or false, got {self.data_tests!r}")


@dataclass(frozen=True)
class TrainConfig:
    """``/train``: the catalogue ``model`` with its ``params`` and ``seed``, the split run (default the latest),
    the threshold rule (``min_precision``), the model-validation gate (``max_gap``, ``min_aucpr``) and where the
    joblib export goes (``exports``, a local folder; ``None``: no export)."""

    model: str = "tfidf_linear_svm"
    params: dict = field(default_factory=dict)
    seed: int = 0
    split: str | None = None
    registered_model: str = MODEL_NAME
    min_precision: float = stages.MIN_PRECISION
    max_gap: float = stages.MAX_AUCPR_GAP
    min_aucpr: float = stages.MIN_AUCPR
    exports: str | None = None
    dockerfile: str | None = None

    def __post_init__(self):
        from aml.spam.models import CATALOGUE, make_model

        if self.model not in CATALOGUE:
            raise ValueError(f"unknown model {self.model!r}: expected one of {sorted(CATALOGUE)}")
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be an object, got {type(self.params).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.split is not None and (not isinstance(self.split, str) or not RUN_ID.match(self.split)):
            raise ValueError(
                f"split must be a run id of split/ (YYYYMMDDTHHMMSSffffffZ-xxxxxx) or null, got {self.split!r}"
            )
        if not isinstance(self.registered_model, str) or not self.registered_model.strip():
            raise ValueError(f"registered_model must be a non-empty string, got {self.registered_model!r}")
        for name in ("exports", "dockerfile"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a path (a string) or null, got {value!r}")
        make_model(self.model, seed=self.seed, **self.params)  # unknown hyper-parameter names fail here, not in a job
        _check_fraction("min_precision", self.min_precision)
        _check_fraction("max_gap", self.max_gap)
        _check_fraction("min_aucpr", self.min_aucpr)


@dataclass(frozen=True)
class ScoreConfig:
    """Batch ``/score``: call the downstream action (:func:`takedown`) after scoring; store the batch's drift report
    (``monitoring``, :mod:`aml.project.monitoring`); and an experiment with a ``challenger`` (a registered version):
    ``mode="shadow"`` scores every message with it too, stored beside the champion's scores and never returned;
    ``mode="ab"`` serves the ``share`` of messages whose id hashes into the challenger's arm
    (:func:`aml.mlops.experiments.assign`: sticky by id)."""

    takedown: bool = True
    monitoring: bool = True
    challenger: str | None = None
    mode: str = "shadow"
    share: float = 0.1

    def __post_init__(self):
        from aml.mlops.experiments import MODES

        for name in ("takedown", "monitoring"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        challenger = self.challenger
        if isinstance(challenger, int) and not isinstance(challenger, bool):
            object.__setattr__(self, "challenger", challenger := str(challenger))
        if challenger is not None and not (isinstance(challenger, str) and challenger.isdigit()):
            raise ValueError(f"challenger must be a registered version number or null, got {challenger!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        _check_fraction("share", self.share)


@dataclass(frozen=True)
class EvaluateConfig:
    """``/evaluate``: the metrics to compute (names from :data:`aml.core.metrics.METRICS`)."""

    metrics: tuple = stages.METRICS

    def __post_init__(self):
        if isinstance(self.metrics, str) or not isinstance(self.metrics, (list, tuple)) or not self.metrics:
            raise ValueError(
                f"metrics must be a non-empty list of names from {list(stages.METRICS)}, got {self.metrics!r}"
            )
        unknown = sorted(set(self.metrics) - set(stages.METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}: expected names from {list(stages.METRICS)}")


CONFIGS = {"prepare": PrepareConfig, "train": TrainConfig, "score": ScoreConfig, "evaluate": EvaluateConfig}


def make_config(stage: str, defaults: Mapping | None = None, overrides: Mapping | None = None):
    """The validated configuration of ``stage``: the file's ``defaults`` updated by a request's ``overrides``."""
    return _from_mapping(CONFIGS[stage], {**(defaults or {}), **(overrides or {})})


# -- store helpers ---------------------------------------------------------------------------------------------------


def read_frame(store: DataStore, path: str) -> pd.DataFrame:
    """A data file of the store through :func:`aml.spam.stages.load_data` (same parsing and validation as a file
    on disk): read in place for a local store, through a temporary copy otherwise."""
    store.check_path(path)
    local = store.local_path(path)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{store.location(path)} not found in the data store")
        return stages.load_data(local)
    data = store.read_bytes(path)
    with tempfile.TemporaryDirectory(prefix="aml-store-") as tmp:
        copy = Path(tmp) / Path(path).name
        copy.write_bytes(data)
        return stages.load_data(copy)


def _write_frame(store: DataStore, path: str, df: pd.DataFrame) -> dict:
    """Write ``df`` as CSV (atomically) and return ``{"path", "sha256", "rows"}`` for the lineage."""
    import hashlib

    data = df.to_csv(index=False).encode("utf-8")
    store.write_bytes(path, data)
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(df)}


def _read_csv(store: DataStore, path: str, **kwargs) -> pd.DataFrame:
    """A CSV file of the store as a frame; a file pandas cannot parse is a :class:`DataValidationError`."""
    try:
        return pd.read_csv(io.BytesIO(store.read_bytes(path)), **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise sms.DataValidationError(f"{path} is not a readable CSV file: {' '.join(str(exc).split())}") from None


def _input(store: DataStore, path: str) -> dict:
    return {"path": path, "sha256": store.sha256(path)}


def _lineage(store: DataStore, kind: str, run: str, record: Mapping) -> None:
    store.write_lineage(kind, run, {"code_version": tracking.code_version(), **record})


# -- prepare ---------------------------------------------------------------------------------------------------------


def ingest_raw(store: DataStore, source: str | Path | None = None) -> str:
    """Copy the raw collection into ``raw/<run>/`` (never overwriting) and point ``raw/latest`` at it; returns the
    store path. ``source``: a local file, default the dataset registry's copy (:func:`aml.spam.sms.load_sms`'s)."""
    from aml.core import datasets

    path = Path(source) if source else datasets.fetch("sms_spam") / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"raw data not found: {path}")
    data = path.read_bytes()
    sms.check_sms_frame(sms.read_sms_file(path))  # refused before anything is written: raw/latest never moves to
    # data that every later prepare would refuse
    run = store.new_run("raw")
    target = store.run_path("raw", run, RAW_FILE)
    store.write_bytes(target, data, overwrite=False)
    _lineage(store, "raw", run, {"source": str(path), "outputs": {RAW_FILE: _input(store, target)}})
    store.set_latest("raw", run)
    return target


def raw_path(store: DataStore, config: PrepareConfig) -> str:
    """The raw data to prepare: ``config.raw``, else the latest raw run's file, ingested first when there is none."""
    if config.raw:
        store.check_path(config.raw)
        if not store.exists(config.raw):
            raise FileNotFoundError(f"{store.location(config.raw)} not found in the data store")
        return config.raw
    run = store.latest("raw")
    if run is None:
        return ingest_raw(store, config.source)
    return store.run_path("raw", run, RAW_FILE)


def reference_profile(store: DataStore) -> tuple[str | None, Profile | None]:
    """``(run, profile)`` of the latest processed run, the last accepted version of the data; ``(None, None)`` when
    there is none or it has no profile (a run written before profiles existed: the data tests check the schema
    only, and say so)."""
    from aml.spam.profiling import Profile

    run = store.latest("processed")
    if run is None:
        return None, None
    path = store.run_path("processed", run, PROFILE_FILE)
    if not store.exists(path):
        log.warning("the latest processed run %s has no %s: data tests check the schema only", run, PROFILE_FILE)
        return None, None
    try:
        return run, Profile.from_dict(store.read_json(path))
    except ValueError as exc:  # also a JSON decode error
        raise sms.DataValidationError(f"{store.location(path)} is not a readable profile: {exc}") from None


def prepare(store: DataStore, config: PrepareConfig | None = None, report: Report = _no_report) -> dict:
    """The data stage: raw → validated, deduplicated, split (:func:`aml.spam.stages.prepare_train_validation_test_split`)
    → ``processed/<run>/messages.csv``, ``split/<run>/{train,validation,test}.csv`` and ``scoring/<run>/messages.csv``
    (the test split's ids and texts: a batch to score), with the processed data's profile
    (``processed/<run>/profile.json`` and ``profile.html``, :func:`aml.spam.profiling.profile`).

    The data tests (:func:`aml.spam.datatests.check_data`) run on the processed data against the latest processed
    run's profile (the last accepted version; none: schema only, and ``config.data_tests=False``: schema only): a
    failure raises :class:`~aml.spam.sms.DataValidationError` listing every failed check, with the refused data's
    profile written for inspection, and no ``latest`` pointer moves.

    Returns ``{"run", "outputs", "rows", "duplicates_removed", "profile": {"json", "html"}, "data_tests": {"passed",
    "checks", "reference", "failures"}}``.
    """
    from aml.spam import datatests, profiling

    config = config or PrepareConfig()
    source = raw_path(store, config)
    report(0.1, f"reading {source}")
    df = read_frame(store, source)
    clean, removed = sms.preprocess(df)
    parts = stages.prepare_train_validation_test_split(df, seed=config.seed, fractions=config.fractions)
    run = store.new_run("split")
    report(0.3, "profiling and testing the processed data")
    data_profile = profiling.profile(clean, name=store.run_path("processed", run))
    _, reference = reference_profile(store) if config.data_tests else (None, None)
    tests = datatests.check_data(clean, reference, data_profile=data_profile)
    profile_files = {
        PROFILE_FILE: json.dumps(data_profile.to_dict(), indent=1).encode("utf-8"),
        PROFILE_PAGE: data_profile.to_html().encode("utf-8"),
    }
    profile_paths = {name: store.run_path("processed", run, name) for name in profile_files}
    if not tests.passed:  # refused before any split is written; the profile stays for inspection
        for name, data in profile_files.items():
            store.write_bytes(profile_paths[name], data)
        raise sms.DataValidationError(f"{tests}\nthe refused data's profile: {profile_paths[PROFILE_PAGE]}")
    report(0.5, "writing the splits")
    outputs = {"processed": _write_frame(store, store.run_path("processed", run, "messages.csv"), clean)}
    for name, part in zip(stages.SPLITS, parts, strict=True):
        outputs[name] = _write_frame(store, store.run_path("split", run, f"{name}.csv"), part)
    test = parts[2]
    batch = pd.DataFrame({stages.ID: [f"test-{i}" for i in range(len(test))], stages.TEXT: test[stages.TEXT]})
    outputs["scoring"] = _write_frame(store, store.run_path("scoring", run, "messages.csv"), batch)
    record = {
        "inputs": {"raw": _input(store, source)},
        "config": dataclasses.asdict(config),
        "outputs": outputs,
        "duplicates_removed": int(removed),
        "profile": {
            name: {"path": profile_paths[name], "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in profile_files.items()
        },
        "data_tests": tests.to_dict(),
    }
    for kind in ("processed", "split", "scoring"):
        _lineage(store, kind, run, record)
    for name, data in profile_files.items():  # after the lineage, which records their hashes
        store.write_bytes(profile_paths[name], data)
    for kind in ("processed", "split", "scoring"):  # only now: a failure above leaves the previous latest in place
        store.set_latest(kind, run)
    report(1.0, f"prepared run {run}")
    return {
        "run": run,
        "outputs": {name: out["path"] for name, out in outputs.items()},
        "rows": {name: out["rows"] for name, out in outputs.items()},
        "duplicates_removed": int(removed),
        "profile": {"json": profile_paths[PROFILE_FILE], "html": profile_paths[PROFILE_PAGE]},
        "data_tests": tests.to_dict(),
    }


def load_split(store: DataStore, run: str | None = None) -> tuple[str, dict[str, pd.DataFrame]]:
    """``(run, {split: frame})``: the splits of ``run`` (default the latest), each validated on reading."""
    run = run or store.resolve_latest("split")
    frames = {name: read_frame(store, store.run_path("split", run, f"{name}.csv")) for name in stages.SPLITS}
    return run, frames


# -- train -----------------------------------------------------------------------------------------------------------


def _champion_model(name: str):
    """The current champion as a full model, or ``None`` (none yet, or it cannot be loaded: then the gate
    compares with nothing and says so in the log)."""
    version = registry.champion_version(name)
    if version is None:
        return None, None
    try:
        return registry.load_version(name, version), version
    except Exception as exc:
        log.warning("the champion (version %s) cannot be loaded for comparison: %s", version, exc)
        return None, version


def train(store: DataStore, config: TrainConfig | None = None, report: Report = _no_report) -> dict:
    """The model stage: the latest splits → :func:`aml.spam.stages.train` tracked in MLflow (params, metrics, data
    and code versions, the Dockerfile) and registered → model validation (:func:`aml.spam.stages.validate` against the current champion, with the
    behavioural bank and sample predictions; its report logged to MLflow as ``validation/``) → promoted when it
    passes, exported as a model-store artefact (joblib) → ``training/<run>/report.json``.

    MLflow must be configured by the caller (:func:`aml.mlops.tracking.configure`). Returns ``{"run",
    "model_version", "promoted", "champion", "gate", "metrics", "threshold", "mlflow_run_id", "export"}``."""
    from aml.spam.models import make_model

    config = config or TrainConfig()
    split_run, frames = load_split(store, config.split)
    train_path = store.run_path("split", split_run, "train.csv")
    data_version = store.sha256(train_path)
    champion, champion_version = _champion_model(config.registered_model)
    report(0.1, f"training {config.model} on split {split_run}")

    def fit_and_validate(model, df_train, df_val) -> stages.Trained:
        import mlflow

        trained = stages.train(
            model, df_train, df_val, min_precision=config.min_precision, name=config.model, params=config.params
        )
        report(0.6, "validating the model")
        trained.gate = stages.validate(
            trained.model,
            df_train,
            df_val,
            max_gap=config.max_gap,
            min_aucpr=config.min_aucpr,
            champion=champion,
            threshold=trained.threshold,
            samples=VALIDATION_SAMPLES,
            seed=config.seed,
        )
        mlflow.log_dict(trained.gate, "validation/report.json")  # the whole report: checks, bank, samples
        mlflow.set_tags(
            {
                "data_version": data_version,
                "data_file": store.location(train_path),
                "split_run": split_run,
                "gate_passed": str(trained.gate["passed"]),
                "gate_failed": ",".join(k for k, v in trained.gate["checks"].items() if not v["passed"]) or "none",
                "champion_before": str(champion_version),
            }
        )
        mlflow.log_metrics({f"gate_{k}": float(v["value"]) for k, v in trained.gate["checks"].items()})
        mlflow.log_param("threshold", trained.threshold)
        if config.dockerfile:
            mlflow.log_artifact(config.dockerfile)  # the course's reproducibility row: the image recipe
        return trained

    model = make_model(config.model, seed=config.seed, **config.params)
    # cloudpickle, not skops: the service is the only writer of its registry, and skops takes about a minute to save
    # a TF-IDF pipeline (see aml.mlops.tracking.tracked)
    trained = tracking.tracked(config.registered_model, serialization_format="cloudpickle")(fit_and_validate)(
        model, frames["train"], frames["validation"]
    )
    version = str(trained.version)
    registry.set_tags(
        config.registered_model,
        version,
        {
            "threshold": repr(trained.threshold),
            "data_version": data_version,
            "split_run": split_run,
            "gate_passed": trained.gate["passed"],
        },
    )
    report(0.9, f"registered version {version}")
    promoted = bool(trained.gate["passed"])
    if promoted:
        registry.promote(config.registered_model, version)
    export = None
    if config.exports:
        folder = modelstore.save_model(
            trained.model,
            Path(config.exports) / f"{config.registered_model}_{version}",
            {"threshold": trained.threshold, "version": version, "data_version": data_version, "model": config.model},
        )
        export = str(folder)
    run = store.new_run("training")
    result = {
        "run": run,
        "model_version": version,
        "promoted": promoted,
        "champion": version if promoted else champion_version,
        "gate": trained.gate,
        "metrics": trained.metrics,
        "threshold": trained.threshold,
        "mlflow_run_id": trained.run_id,
        "export": export,
        "split_run": split_run,
        "fit_seconds": round(trained.fit_seconds, 2),
    }
    store.write_json(store.run_path("training", run, "report.json"), result)
    _lineage(
        store,
        "training",
        run,
        {
            "inputs": {
                name: _input(store, store.run_path("split", split_run, f"{name}.csv")) for name in stages.SPLITS
            },
            "config": dataclasses.asdict(config),
            "model_version": version,
            "mlflow_run_id": trained.run_id,
        },
    )
    store.set_latest("training", run)
    report(1.0, f"version {version} {'promoted to champion' if promoted else 'registered, not promoted'}")
    return result


# -- score -----------------------------------------------------------------------------------------------------------


@dataclass
class ServingModel:
    """The model that serves: ``scorer`` (a :class:`aml.spam.lean.LeanScorer` compiled from the registered model
    when it is a supported linear text pipeline, else the model itself), its ``threshold``, its registry
    record (:class:`aml.mlops.registry.Served`: version, fallback state) and its monitoring ``reference``."""

    scorer: Any
    threshold: float
    lean: bool
    served: registry.Served | None = None
    #: the monitoring reference of this version (:func:`reference_for`), built on first use
    reference: Any = field(default=None, repr=False)

    @property
    def version(self) -> str:
        """The registered version that serves, ``unregistered`` for a model given directly (tests)."""
        return self.served.version if self.served else "unregistered"

    def propensities(self, texts) -> np.ndarray:
        """Spam propensity of each text."""
        proba = np.asarray(self.scorer.predict_proba(list(texts)), dtype=float)
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise ValueError(f"smoke check failed: predict_proba returned shape {proba.shape}, expected (n, 2)")
        return proba[:, 1]

    def score_one(self, text: str) -> tuple[bool, float]:
        """``(prediction, propensity)`` of one text."""
        if self.lean:
            propensity = self.scorer.propensity(text)
            return _metrics.apply_threshold(propensity, self.threshold), propensity
        from aml.spam.scoring import score_text

        return score_text(text, self.scorer, self.threshold)

    def describe(self) -> dict:
        """The registry record (version, source, fallback) plus the threshold and the kind of scorer, for
        ``/health``."""
        out = self.served.describe() if self.served else {"version": self.version}
        return {**out, "threshold": self.threshold, "scorer": "lean" if self.lean else type(self.scorer).__name__}


def serving_model(model, threshold: float, served: registry.Served | None = None) -> ServingModel:
    """Make ``model`` ready to serve: compile the lean scorer (verified equal to ``model`` on :data:`PROBES` and
    the behavioural bank; the model itself serves when it cannot be compiled), then the smoke check — every probe
    scored with a propensity in [0, 1]. Raises when the model cannot score."""
    from aml.spam import behaviour, lean

    threshold = check_threshold(threshold)
    sample = list(PROBES) + [case.text for case in behaviour.BANK]
    try:
        scorer, is_lean = lean.compile_scorer(model, sample), True
    except lean.NotCompilable as exc:
        log.info("serving the full model (%s)", exc)
        scorer, is_lean = model, False
    ready = ServingModel(scorer, threshold, is_lean, served)
    propensity = ready.propensities(PROBES)
    if propensity.shape != (len(PROBES),) or not np.all((propensity >= 0) & (propensity <= 1)):
        raise ValueError(f"smoke check failed: propensities {propensity.tolist()} for the probe texts")
    for text in PROBES:
        ready.score_one(text)
    return ready


def load_serving_model(name: str = MODEL_NAME) -> ServingModel:
    """The model to serve from the registry (:func:`aml.mlops.registry.load_serving`): the champion, else the
    latest version, falling back to older versions when one cannot load, has no valid ``threshold`` tag or fails
    the smoke check. Raises :class:`aml.mlops.registry.NoModelError` when nothing is registered yet."""

    def prepare_version(model, tags: dict) -> ServingModel:
        if "threshold" not in tags:
            raise ValueError("the version has no 'threshold' tag (not registered by the training service)")
        return serving_model(model, float(tags["threshold"]))

    served = registry.load_serving(name, prepare_version)
    ready = served.model
    ready.served = served
    served.model = None  # the ServingModel holds the scorer; the record need not
    return ready


def load_version_model(name: str, version: str) -> ServingModel:
    """Registered version ``version`` of ``name`` ready to serve (lean-compiled, smoke-checked, at its ``threshold``
    tag): the challenger of a shadow or A/B test. A version that does not exist is a :class:`StageError`."""
    from mlflow.exceptions import MlflowException

    client = registry._client()
    try:
        record = client.get_model_version(name, str(version))
    except MlflowException:
        raise StageError(f"model {name!r} has no version {version!r} (registered: {registry.versions(name)})") from None
    tags = dict(record.tags)
    if "threshold" not in tags:
        raise StageError(f"version {version} has no 'threshold' tag (not registered by the training service)")
    ready = serving_model(registry.load_version(name, str(version)), float(tags["threshold"]))
    ready.served = registry.Served(
        name, str(version), None, "challenger", False, tags=tags, run_id=record.run_id, loaded_at=""
    )
    return ready


def reference_for(store: DataStore, model: ServingModel):
    """The monitoring reference of ``model`` (:class:`aml.project.monitoring.Reference`), built on first use and
    kept on the model (``model.reference``): the split it was trained on (its ``split_run`` tag; the latest split for a version without
    one), its training texts, and the model's propensities on the validation split."""
    from aml.project import monitoring

    if model.reference is not None:
        return model.reference
    tags = model.served.tags if model.served else {}
    split_run = tags.get("split_run")
    if not split_run or not store.exists(store.run_path("split", split_run, "train.csv")):
        split_run = store.resolve_latest("split")
    _, frames = load_split(store, split_run)
    validation = frames["validation"]
    reference = monitoring.Reference.build(
        model.version,
        split_run,
        model.threshold,
        frames["train"][stages.TEXT],
        validation[stages.TARGET],
        model.propensities(validation[stages.TEXT]),
    )
    model.reference = reference
    return reference


def _monitor_batch(store: DataStore, model: ServingModel, run: str, texts, propensity) -> dict:
    """Write the batch's drift record into ``predictions/<run>/drift.json`` (its page is rendered when asked for,
    :func:`aml.project.monitoring.page`) and return its summary (``drift``, ``drifted``, ``report``); a monitoring
    failure is logged and reported, never fails the scoring."""
    from aml.project import monitoring

    try:
        reference = reference_for(store, model)
        report = monitoring.batch_report(reference, texts, propensity)
        record = monitoring.batch_record(report, reference, len(texts))
        store.write_json(store.run_path("predictions", run, monitoring.BATCH_FILE), record)
    except Exception as exc:  # monitoring must not take scoring down: say what failed
        log.exception("monitoring of predictions/%s failed", run)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "drift": record["drift"],
        "drifted": record["drifted"],
        "report": store.run_path("predictions", run, monitoring.BATCH_FILE),
    }


def score_batch(
    store: DataStore,
    model: ServingModel,
    input_path: str,
    config: ScoreConfig | None = None,
    challenger: ServingModel | None = None,
) -> dict[str, Any]:
    """Batch scoring: the CSV at ``input_path`` (a ``text`` column; ``id``, ``label``/``y`` kept when present) →
    ``predictions/<run>/predictions.csv`` (``id``, ``propensity``, ``prediction``, ``threshold``,
    ``model_version`` and the labels if any), its drift report (``drift.json``/``drift.html``,
    :mod:`aml.project.monitoring`, when ``config.monitoring``), then the take-down list (:func:`takedown`).

    With ``challenger`` (the model of ``config.challenger``): ``shadow`` adds ``challenger_propensity``,
    ``challenger_prediction``, ``challenger_threshold`` and ``challenger_version`` (never used for the predictions
    or the take-down list); ``ab`` scores the challenger's arm with the challenger and records each row's ``arm``.
    Returns ``{"output", "count", "spam", "run", "model_version", "actions", "monitoring", "experiment"}``."""
    from aml.mlops import experiments

    config = config or ScoreConfig()
    start = time.perf_counter()
    df = stages.prepare_scoring_data(read_frame(store, input_path))
    texts = df[stages.TEXT]
    propensity = model.propensities(texts)
    threshold = np.full(len(df), model.threshold)
    version = np.full(len(df), model.version, dtype=object)
    extra: dict[str, Any] = {}
    experiment = None
    if challenger is not None and challenger.version == model.version:
        log.info("the challenger is the serving version %s: no experiment", model.version)
        challenger = None
    if challenger is not None and config.challenger is not None:
        if config.mode == "shadow":
            shadow = challenger.propensities(texts)
            extra = {
                "challenger_propensity": shadow,
                "challenger_prediction": _metrics.apply_threshold(shadow, challenger.threshold),
                "challenger_threshold": challenger.threshold,
                "challenger_version": challenger.version,
            }
            agree = float(
                np.mean(extra["challenger_prediction"] == _metrics.apply_threshold(propensity, model.threshold))
            )
            experiment = {"mode": "shadow", "challenger_version": challenger.version, "agreement": agree}
        else:
            to_challenger = experiments.assign(df[stages.ID], config.share)
            if to_challenger.any():
                propensity = propensity.copy()
                propensity[to_challenger] = challenger.propensities(texts[to_challenger])
            threshold[to_challenger] = challenger.threshold
            version[to_challenger] = challenger.version
            extra = {"arm": np.where(to_challenger, experiments.CHALLENGER, experiments.CHAMPION)}
            experiment = {
                "mode": "ab",
                "challenger_version": challenger.version,
                "share": config.share,
                "challenger_rows": int(to_challenger.sum()),
            }
    out = df.drop(columns=[stages.TEXT]).assign(
        **{
            stages.PROPENSITY: propensity,
            stages.PREDICTION: _metrics.apply_threshold(propensity, threshold),  # per row: an A/B arm's own
            "threshold": threshold,
            "model_version": version,
            **extra,
        }
    )
    run = store.new_run("predictions")
    output = _write_frame(store, store.run_path("predictions", run, PREDICTIONS_FILE), out)
    scored_seconds = time.perf_counter() - start
    monitoring = _monitor_batch(store, model, run, texts, propensity) if config.monitoring else None
    _lineage(
        store,
        "predictions",
        run,
        {
            "inputs": {"data": _input(store, input_path)},
            "model": model.describe(),
            "challenger": challenger.describe() if challenger is not None and experiment else None,
            "outputs": {"predictions": output},
        },
    )
    store.set_latest("predictions", run)
    result = {
        "output": output["path"],
        "count": len(out),
        "spam": int(out[stages.PREDICTION].sum()),
        "run": run,
        "model_version": model.version,
        "seconds": round(scored_seconds, 4),
        "monitoring": monitoring,
        "experiment": experiment,
    }
    if monitoring is not None:
        result["monitoring_seconds"] = round(time.perf_counter() - start - scored_seconds, 4)
    if config.takedown:
        result["actions"] = takedown(store, output["path"])["output"]
    return result


def takedown(store: DataStore, predictions: str | None = None) -> dict:
    """The downstream action: the messages predicted spam in ``predictions`` (a store path; default the latest
    predictions run) → ``actions/<run>/takedown.csv`` (``id``, ``propensity``, ``threshold``, ``model_version``),
    the list an operator's tool takes down. Returns ``{"output", "count", "run"}``."""
    if predictions is None:
        predictions = store.run_path("predictions", store.resolve_latest("predictions"), PREDICTIONS_FILE)
    df = _read_csv(store, predictions, dtype={stages.ID: "string"})
    missing = [
        c for c in (stages.ID, stages.PROPENSITY, stages.PREDICTION, "threshold", "model_version") if c not in df
    ]
    if missing:
        raise StageError(f"{predictions} is not a predictions file: columns {missing} are missing")
    flagged = df.loc[df[stages.PREDICTION].astype(bool), [stages.ID, stages.PROPENSITY, "threshold", "model_version"]]
    flagged = flagged.sort_values(stages.PROPENSITY, ascending=False)
    run = store.new_run("actions")
    output = _write_frame(store, store.run_path("actions", run, TAKEDOWN_FILE), flagged)
    _lineage(
        store, "actions", run, {"inputs": {"predictions": _input(store, predictions)}, "outputs": {"takedown": output}}
    )
    store.set_latest("actions", run)
    return {"output": output["path"], "count": len(flagged), "run": run}


# -- evaluate --------------------------------------------------------------------------------------------------------


def _scored_texts(store: DataStore, input_path: str, df: pd.DataFrame) -> pd.Series | None:
    """The texts of scored rows, for the slices: the file's ``text`` column, else the scoring input its lineage
    names (a ``predictions/<run>/`` file), matched by ``id``; ``None`` when neither is available."""
    if stages.TEXT in df.columns:
        return df[stages.TEXT].astype("string")
    parts = input_path.split("/")
    if len(parts) != 3 or parts[0] != "predictions" or stages.ID not in df.columns:
        return None
    try:
        source = store.read_lineage("predictions", parts[1])["inputs"]["data"]["path"]
        scored = stages.prepare_scoring_data(read_frame(store, source)).set_index(stages.ID)[stages.TEXT]
    except (KeyError, FileNotFoundError, ValueError) as exc:
        log.warning("no texts for the slices of %s: %s", input_path, exc)
        return None
    texts = df[stages.ID].astype("string").map(scored)
    return None if texts.isna().any() else texts


def _monitor_evaluation(
    store: DataStore, run: str, input_path: str, df: pd.DataFrame, models: Callable[[str], ServingModel] | None
) -> dict:
    """Write ``evaluations/<run>/monitoring.json`` (:func:`aml.project.monitoring.evaluation_report`) and
    return the record; a monitoring failure is logged and reported, never fails the evaluation."""
    from aml.mlops.experiments import CHAMPION
    from aml.project import monitoring

    try:
        rows = df[df["arm"] == CHAMPION] if "arm" in df.columns else df
        version = str(rows["model_version"].iloc[0]) if "model_version" in rows.columns else None
        reference = None
        if version and models is not None:
            try:
                reference = reference_for(store, models(version))
            except Exception as exc:  # e.g. the version was deleted: slices and history still help
                log.warning("no monitoring reference for version %s: %s", version, exc)
        texts = _scored_texts(store, input_path, df)
        frame = df if texts is None else df.assign(**{stages.TEXT: texts.to_numpy()})
        record = monitoring.evaluation_report(reference, frame, monitoring.history(store))
        store.write_json(store.run_path("evaluations", run, monitoring.EVALUATION_FILE), record)
    except Exception as exc:
        log.exception("monitoring of evaluations/%s failed", run)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return record


def evaluate(
    store: DataStore,
    input_path: str,
    config: EvaluateConfig | None = None,
    models: Callable[[str], ServingModel] | None = None,
) -> dict:
    """The reward stage: scored, labelled data (a predictions file with ``y`` or ``label``) →
    :func:`aml.spam.stages.evaluate` at the threshold it was scored with → ``evaluations/<run>/metrics.json``, and
    the evaluation's monitoring (``monitoring.json``: performance against the validation interval, its
    history, bias by slice, champion vs challenger when the file holds an experiment; ``models(version)`` gives
    the scoring model for the reference, ``None``: no performance alert). For an A/B file the ``metrics`` are the
    champion arm's. Returns ``{"metrics", "output", "run", "count", "monitoring"}``."""
    from aml.mlops.experiments import CHAMPION

    config = config or EvaluateConfig()
    store.check_path(input_path)
    df = _read_csv(store, input_path, dtype={stages.ID: "string", "label": "string", "model_version": "string"})
    if stages.TARGET not in df.columns and "label" in df.columns:
        df[stages.TARGET] = (df["label"] == "spam").astype(int)
    missing = [c for c in (stages.TARGET, stages.PROPENSITY, stages.PREDICTION) if c not in df.columns]
    if missing:
        raise StageError(
            f"{input_path} is not scored, labelled data: columns {missing} are missing (score a labelled file, e.g. "
            "split/<run>/test.csv, with POST /score first)"
        )
    served = df[df["arm"] == CHAMPION].copy() if "arm" in df.columns else df
    if "threshold" in served.columns and served["threshold"].nunique() == 1:
        served.attrs["threshold"] = float(served["threshold"].iloc[0])
    try:
        metrics = stages.evaluate(served, config.metrics)
    except ValueError as exc:  # e.g. predictions that do not follow the threshold column
        raise sms.DataValidationError(f"{input_path}: {exc}") from None
    run = store.new_run("evaluations")
    output = store.run_path("evaluations", run, METRICS_FILE)
    versions = sorted(df["model_version"].astype(str).unique()) if "model_version" in df.columns else []
    store.write_json(output, {"metrics": metrics, "count": len(df), "model_versions": versions})
    monitoring = _monitor_evaluation(store, run, input_path, df, models) if "threshold" in df.columns else None
    _lineage(
        store,
        "evaluations",
        run,
        {"inputs": {"scored": _input(store, input_path)}, "config": dataclasses.asdict(config)},
    )
    store.set_latest("evaluations", run)
    return {"metrics": metrics, "output": output, "run": run, "count": len(df), "monitoring": monitoring}


def store_summary(store: DataStore) -> pd.DataFrame:
    """One row per data folder of the store: how many runs it holds and which one ``latest`` points at."""
    rows = [{"folder": f"{kind}/", "runs": len(store.runs(kind)), "latest": store.latest(kind)} for kind in KINDS]
    return pd.DataFrame(rows).set_index("folder")
