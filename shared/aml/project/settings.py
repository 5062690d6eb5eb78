"""The project's settings in one place: each stage's typed configuration (validated on construction) and the
stores, read from the environment and the ``config/<stage>.yaml`` files once (:class:`ProjectSettings`).

Why one module: the service, the command lines of ``project/src``, the notebook and the tests build the same
stores and the same configurations; reading the environment in one place gives each variable one meaning.

=======================  ============================================================  ===============================
variable                 meaning                                                       default
=======================  ============================================================  ===============================
``AML_DATA_STORE``       the data store (a folder or a URL)                            ``<project>/store/data``
``MLFLOW_TRACKING_URI``  the model store (MLflow registry: a SQLite file or a server)  ``<project>/store/mlflow``
``AML_MODEL_EXPORTS``    where ``/train`` writes ``<model>_<version>/`` joblib         ``<project>/store/models``
                         exports; ``none``: no exports (team scale)
=======================  ============================================================  ===============================

``AML_MODEL_STORE`` keeps its one meaning of :mod:`aml.core.config`: the folder of model artefacts saved by
:mod:`aml.core.modelstore` (the Assignment 3 service's). Deployments written before ``AML_MODEL_EXPORTS`` existed
set it for the project's exports (``none`` included); it is still read for them when ``AML_MODEL_EXPORTS`` is unset,
so they keep working.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aml.core.config import MODEL_STORE_ENV
from aml.mlops.datastore import RUN_ID, DataStore
from aml.spam import MODEL_NAME, stages

log = logging.getLogger("aml.project.settings")

#: the data store's variable (a folder or a URL)
DATA_STORE_ENV = "AML_DATA_STORE"
#: the model store's variable (MLflow's tracking URI)
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: the joblib exports' variable (a folder, or :data:`NO_EXPORTS`)
EXPORTS_ENV = "AML_MODEL_EXPORTS"
#: the value of :data:`EXPORTS_ENV` that turns the joblib exports off (team scale: the registry is the model store)
NO_EXPORTS = "none"


#: configuration fields only the service's configuration files set: a request may not name a local file for the
#: server to read or log, a folder for it to write, or another registered model
SERVER_ONLY = {"prepare": ("source",), "train": ("registered_model", "exports", "dockerfile")}
#: model hyper-parameters only the configuration files set: a pretrained model's folder is a local path
SERVER_ONLY_PARAMS = ("model", "model_name")


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


#: the largest seed a stage takes: NumPy's and scikit-learn's ``random_state`` (32 bits)
MAX_SEED = 2**32 - 1
#: the most digits a registered version number may have (a request's ``challenger``)
MAX_VERSION_DIGITS = 12


def _check_seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        shown = f"a number of {len(str(value))} digits" if isinstance(value, int) and value > MAX_SEED else repr(value)
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {shown}")
    return value


def _check_fraction(name: str, value, low: float = 0.0, high: float = 1.0) -> float:
    # compared as given: float() of a 400-digit integer overflows, and NaN fails every comparison
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        shown = (
            f"a number of {len(str(value))} digits" if isinstance(value, int) and abs(value) > 10**9 else repr(value)
        )
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {shown}")
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
        _check_seed(self.seed)
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
        from aml.spam.models import CATALOGUE, check_params

        if not isinstance(self.model, str) or self.model not in CATALOGUE:
            raise ValueError(f"unknown model {self.model!r}: expected one of {sorted(CATALOGUE)}")
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be an object, got {type(self.params).__name__}")
        _check_seed(self.seed)
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
        try:
            check_params(self.model, self.params, self.seed)  # names, types and ranges fail here, not in a job
        except ValueError as exc:
            raise ValueError(f"params: {exc}") from None
        _check_fraction("min_precision", self.min_precision)
        _check_fraction("max_gap", self.max_gap)
        _check_fraction("min_aucpr", self.min_aucpr)


@dataclass(frozen=True)
class ScoreConfig:
    """Batch ``/score``: call the downstream action (:func:`aml.project.takedown.takedown`) after scoring; store the batch's drift report
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
        if challenger is not None and not (
            isinstance(challenger, str)
            and challenger.isascii()
            and challenger.isdigit()
            and len(challenger) <= MAX_VERSION_DIGITS
        ):
            shown = challenger if not isinstance(challenger, str) or len(challenger) <= 40 else challenger[:40] + "..."
            raise ValueError(f"challenger must be a registered version number or null, got {shown!r}")
        if not isinstance(self.mode, str) or self.mode not in MODES:
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
    """The validated configuration of ``stage``: the file's ``defaults`` updated by a request's ``overrides``. The
    file's ``params`` belong to the file's ``model``: an override that names another model without ``params`` gets
    that model's own defaults (``{}``), not the settings of a model it did not ask for."""
    defaults, overrides = dict(defaults or {}), dict(overrides or {})
    if "model" in overrides and "params" not in overrides and overrides["model"] != defaults.get("model"):
        defaults.pop("params", None)
    return _from_mapping(CONFIGS[stage], {**defaults, **overrides})


def stage_files(config_dir: str | Path) -> dict[str, dict]:
    """Every stage's configuration file ``<config_dir>/<stage>.yaml`` as a dict (``{}`` for an empty file);
    :class:`StageError` when a file does not hold a mapping."""
    import yaml

    files = {}
    for stage in CONFIGS:
        path = Path(config_dir) / f"{stage}.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise StageError(f"{path} must hold a mapping of settings, found {type(data).__name__}")
        files[stage] = data
    return files


def exports_folder(default: str | Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where ``/train`` writes its joblib exports: ``AML_MODEL_EXPORTS`` (``none``: nowhere, ``None``), else the
    older ``AML_MODEL_STORE`` (read with a warning, see the module's docstring), else ``default``."""
    env = os.environ if environ is None else environ
    value = (env.get(EXPORTS_ENV) or "").strip()
    if not value and (env.get(MODEL_STORE_ENV) or "").strip():
        value = env[MODEL_STORE_ENV].strip()
        log.debug("%s is unset: the project's exports follow %s=%s", EXPORTS_ENV, MODEL_STORE_ENV, value)
    if value.lower() == NO_EXPORTS:
        return None
    return Path(value) if value else Path(default)


@dataclass(frozen=True)
class ProjectSettings:
    """The project's stores and stage configuration files, read once (:meth:`from_environment`).

    ``data_store``: the data store's folder or URL; ``tracking_uri``: the model store; ``exports``: the joblib
    exports folder (``None``: none); ``stages``: each stage's file, with the train stage's file locations filled in
    (``exports``, ``dockerfile``)."""

    data_store: str
    tracking_uri: str
    exports: Path | None
    stages: Mapping[str, Mapping] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls, project: str | Path, environ: Mapping[str, str] | None = None, config_dir: str | Path | None = None
    ) -> ProjectSettings:
        """The settings of the project folder ``project`` (its ``store/`` holds the default stores, its ``config/``
        the stage files) from the environment ``environ`` (default ``os.environ``); every stage file validated."""
        env = os.environ if environ is None else environ
        project = Path(project)
        store = project / "store"
        exports = exports_folder(store / "models", env)
        files = stage_files(config_dir or project / "config")
        train = files["train"]
        train["exports"] = train.get("exports") or (str(exports) if exports is not None else None)
        dockerfile = project / "Dockerfile"
        train["dockerfile"] = train.get("dockerfile") or (str(dockerfile) if dockerfile.is_file() else None)
        for stage, values in files.items():  # a bad file stops the start, not the first request
            make_config(stage, values)
        return cls(
            data_store=env.get(DATA_STORE_ENV) or str(store / "data"),
            tracking_uri=env.get(TRACKING_URI_ENV) or f"sqlite:///{store / 'mlflow' / 'mlflow.db'}",
            exports=exports,
            stages=files,
        )

    def store(self) -> DataStore:
        """The data store."""
        return DataStore(self.data_store)

    def config(self, stage: str, overrides: Mapping | None = None):
        """The validated configuration of ``stage``: its file, then ``overrides``."""
        return make_config(stage, self.stages.get(stage), overrides)

    @property
    def registered_model(self) -> str:
        """The registry name the train stage registers under (and the service serves)."""
        return str(self.stages.get("train", {}).get("registered_model") or MODEL_NAME)
