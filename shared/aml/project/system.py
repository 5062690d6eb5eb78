"""The spam filter as an ML system: the course's four services as functions over a data store and a model store —
one name space over the modules that do the work, for notebooks, scripts and code written against it.

=========  =====================================================================================================
stage      module
=========  =====================================================================================================
settings   :mod:`aml.project.settings`: each stage's typed configuration (:func:`~aml.project.settings.make_config`) and the stores
run        :mod:`aml.project.run`: :class:`~aml.project.run.StoreRun`, one run in the data store (reads, atomic
           writes, lineage, moving ``latest``)
prepare    :mod:`aml.project.prepare`: raw data → validated, deduplicated splits, profiled and tested
train      :mod:`aml.project.train`: splits → trained, tracked, registered, validated, promoted on a pass
score      :mod:`aml.project.serving` (the serving model, its holder, the experiment router) and
           :mod:`aml.project.score` (batch scoring → ``predictions/``), then :mod:`aml.project.takedown`
evaluate   :mod:`aml.project.evaluate`: scored, labelled data → metrics and their monitoring
=========  =====================================================================================================

Every output is written atomically to a new run folder, with a ``lineage.json`` (inputs with their SHA-256, the
configuration, the code version, the model version), and the kind's ``latest`` pointer moves only after every file
of the run is in place: a stage that fails leaves the previous ``latest`` untouched.
"""

from __future__ import annotations

from aml.project.evaluate import METRICS_FILE, evaluate
from aml.project.prepare import (
    PROFILE_FILE,
    PROFILE_PAGE,
    RAW_FILE,
    Report,
    ingest_raw,
    prepare,
    raw_path,
    reference_profile,
)
from aml.project.run import KINDS, StoreRun, load_split, read_csv, read_frame, store_summary
from aml.project.score import score_batch
from aml.project.serving import (
    PROBES,
    ModelHolder,
    Router,
    ServingModel,
    load_serving_model,
    load_version_model,
    reference_for,
    serving_model,
)
from aml.project.settings import (
    CONFIGS,
    EvaluateConfig,
    PrepareConfig,
    ScoreConfig,
    StageError,
    TrainConfig,
    make_config,
)
from aml.project.takedown import PREDICTIONS_FILE, TAKEDOWN_FILE, takedown
from aml.project.train import VALIDATION_SAMPLES, train

__all__ = [
    "CONFIGS",
    "KINDS",
    "METRICS_FILE",
    "PREDICTIONS_FILE",
    "PROBES",
    "PROFILE_FILE",
    "PROFILE_PAGE",
    "RAW_FILE",
    "TAKEDOWN_FILE",
    "VALIDATION_SAMPLES",
    "EvaluateConfig",
    "ModelHolder",
    "PrepareConfig",
    "Report",
    "Router",
    "ScoreConfig",
    "ServingModel",
    "StageError",
    "StoreRun",
    "TrainConfig",
    "evaluate",
    "ingest_raw",
    "load_serving_model",
    "load_split",
    "load_version_model",
    "make_config",
    "prepare",
    "raw_path",
    "read_csv",
    "read_frame",
    "reference_for",
    "reference_profile",
    "score_batch",
    "serving_model",
    "store_summary",
    "takedown",
    "train",
]
