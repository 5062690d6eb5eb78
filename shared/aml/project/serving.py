"""Serving: the model that answers (:class:`ServingModel`: the lean scorer or the full model, its threshold, its
registry record and its monitoring reference), the process's :class:`ModelHolder` (loaded lazily, reloaded by a
thread when the champion changes, with its fallback state), and the one experiment :class:`Router` that both
online scoring (``POST /score`` with a text) and batch scoring (:mod:`aml.project.score`) ask which arm a message
id belongs to.

Why one module: the API, batch scoring, the Spark scorer and the benchmarks serve the same model the same way; a
later model (a cascade, another scorer) plugs in by giving :func:`serving_model` something with ``predict_proba``,
and a new experiment design is one method of :class:`Router`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aml.core import metrics as _metrics
from aml.mlops import experiments, registry
from aml.mlops.datastore import DataStore
from aml.project.run import load_split
from aml.project.settings import ScoreConfig, StageError
from aml.spam import MODEL_NAME, stages
from aml.spam.scoring import check_threshold

log = logging.getLogger("aml.project.serving")

#: texts every candidate model must score before it serves (the smoke check) and on which the lean scorer is
#: verified against the full model
PROBES = (
    "health check",
    "WINNER!! You have won a £1000 prize. Call 09061701461 to claim now",
    "Ok lar... see you at lunch",
    "",
)
REFRESH_S = 5.0
NO_MODEL = "no model is registered yet: call POST /prepare, then POST /train, and wait for its job to succeed"
#: what to do when every registered version fails (the end of the 503's and ``/health``'s message)
NO_SERVABLE_HINT = (
    "What to do: retrain with POST /train (it trains, validates and promotes a new version from the latest prepared "
    "data; call POST /prepare first if there is none), or restore a backup taken while a version served: run "
    "'python -m src.backup restore BACKUP DEST' in the project folder, then restart the service with the settings "
    "it prints"
)


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
        out = {**out, "threshold": self.threshold, "scorer": "lean" if self.lean else type(self.scorer).__name__}
        if hasattr(self.scorer, "band_"):  # a cascade: its band, and the share of messages its second stage saw
            counts = self.scorer.counts
            share = counts["routed"] / counts["scored"] if counts["scored"] else None
            out["scorer"] = (
                f"cascade ({'lean' if self.lean else 'full'} first stage, {self.scorer.describe()['second']})"
            )
            out["cascade"] = {**self.scorer.describe(), **counts, "routed_share": share}
        return out


def serving_model(model, threshold: float, served: registry.Served | None = None) -> ServingModel:
    """Make ``model`` ready to serve: compile the lean scorer (verified equal to ``model`` on :data:`PROBES` and
    the behavioural bank; the model itself serves when it cannot be compiled; a cascade serves with its first stage
    compiled), then the smoke check — every probe scored with a propensity in [0, 1] (by a cascade's second stage
    too). Raises when the model cannot score."""
    from aml.spam import behaviour

    threshold = check_threshold(threshold)
    sample = list(PROBES) + [case.text for case in behaviour.BANK]
    scorer, is_lean = _compiled(model, sample)
    ready = ServingModel(scorer, threshold, is_lean, served)
    propensity = ready.propensities(PROBES)
    if propensity.shape != (len(PROBES),) or not np.all((propensity >= 0) & (propensity <= 1)):
        raise ValueError(f"smoke check failed: propensities {propensity.tolist()} for the probe texts")
    for text in PROBES:
        ready.score_one(text)
    second = getattr(scorer, "second_", None)
    if second is not None:  # a cascade: its second stage must score too, whether or not a probe falls in its band
        p2 = np.asarray(second.predict_proba(list(PROBES)), dtype=float)
        if p2.shape != (len(PROBES), 2) or not np.all((p2 >= 0) & (p2 <= 1)):
            raise ValueError(f"smoke check failed: the cascade's second stage returned {p2.tolist()} for the probes")
    return ready


def _compiled(model, sample: list[str]):
    """``(scorer, lean)``: the lean scorer compiled from ``model`` (verified on ``sample``), or for a cascade
    (:class:`aml.spam.cascade.Cascade`) the cascade with its first stage compiled (its second stage, ONNX, as it
    is); ``model`` itself when it cannot be compiled."""
    from aml.spam import lean
    from aml.spam.cascade import Cascade

    try:
        if isinstance(model, Cascade):
            return model.with_first(lean.compile_scorer(model.first_, sample)), True
        return lean.compile_scorer(model, sample), True
    except lean.NotCompilable as exc:
        log.info("serving the full model (%s)", exc)
        return model, False


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
    tag): the challenger of a shadow or A/B test. A version that does not exist is a :class:`~aml.project.settings.StageError`."""
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


# -- the model holder ------------------------------------------------------------------------------------------------


@dataclass
class ModelHolder:
    """The serving model of one process, loaded lazily, reloaded when the champion changes, with its fallback
    state (what ``/health``, ``/models`` and ``/metrics`` report)."""

    name: str = MODEL_NAME
    refresh_s: float = REFRESH_S
    model: ServingModel | None = None
    error: str | None = None
    failures: list = field(default_factory=list)
    loads: int = 0
    load_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pid: int | None = None
    _seen: tuple | None = None
    _attempted: float = 0.0
    _versions: dict = field(default_factory=dict)

    def get(self) -> ServingModel | None:
        """The model, loading it on the first call in this process (and starting the poller)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self.model, self._seen = None, None
                    self._load()
                    if self.refresh_s > 0:
                        threading.Thread(target=self._poll, name="model-poller", daemon=True).start()
        elif self.model is None and time.monotonic() - self._attempted > 1.0:
            self.reload(force=False)  # no model yet: look again (at most once a second) rather than wait for the poller
        return self.model

    def _state(self) -> tuple:
        return registry.champion_version(self.name), tuple(registry.versions(self.name)[:1])

    def _load(self) -> None:
        self._attempted = time.monotonic()
        try:
            self._seen = self._state()
            model = load_serving_model(self.name)
        except registry.NoModelError:
            self.model, self.error, self.failures = None, NO_MODEL, []
            return
        except registry.NoServableVersionError as exc:
            self.load_failures += len(exc.failures)
            self.model, self.error, self.failures = None, f"{exc}. {NO_SERVABLE_HINT}", exc.failures
            log.error("%s", exc)
            return
        except Exception as exc:  # the registry itself is unreachable: keep what serves
            self.error = f"cannot reach the model registry: {type(exc).__name__}: {registry.redact_paths(str(exc))}"
            log.exception("model load failed")
            return
        self.loads += 1
        self.load_failures += len(model.served.failures)
        self.model, self.error, self.failures = model, None, model.served.failures
        if model.served.fallback:
            log.warning("serving version %s as a FALLBACK: %s", model.version, model.served.failures)
        else:
            log.info("serving %s version %s (%s)", self.name, model.version, model.served.source)

    def reload(self, force: bool = True) -> None:
        """Reload now (``force``) or when the champion or the newest version changed since the last load."""
        with self._lock:
            self._pid = os.getpid()
            if not force:
                self._attempted = time.monotonic()
                try:
                    if self._state() == self._seen:
                        return
                except Exception as exc:  # the registry is unreachable: keep serving what is loaded
                    log.warning("cannot check the model registry: %s", exc)
                    return
            self._load()

    def _poll(self) -> None:
        while True:
            time.sleep(self.refresh_s)
            try:
                self.reload(force=False)
            except Exception:
                log.exception("polling the registry failed")

    def version_model(self, version: str) -> ServingModel:
        """Registered ``version`` ready to serve: the serving model when it is that version, else loaded once and
        kept (:func:`aml.project.serving.load_version_model`; the challenger of an experiment, or the model an
        evaluation's rows were scored with). Raises :class:`~aml.project.settings.StageError` for an unknown
        version."""
        model = self.get()
        if model is not None and model.version == str(version):
            return model
        with self._lock:
            if str(version) not in self._versions:
                if len(self._versions) >= 2:  # a challenger and one older version at most
                    self._versions.pop(next(iter(self._versions)))
                self._versions[str(version)] = load_version_model(self.name, str(version))
            return self._versions[str(version)]

    def describe(self) -> dict:
        """What ``/health`` reports about the model: ``ready``, what serves (version, source, standing, threshold,
        scorer), whether it is a fallback, the load failures and error seen, and a ``warning`` (``None`` when all is
        well: :func:`serving_warning`)."""
        model = self.get()
        served = model.served if model else None
        return {
            "ready": model is not None,
            "serving": model.describe() if model else None,
            "fallback": bool(served and served.fallback),
            "failures": self.failures,
            "error": self.error,
            "warning": serving_warning(served),
        }


def serving_warning(served: registry.Served | None) -> str | None:
    """What an operator should know about the serving version: that it is a fallback (newer versions failed) and
    that it was never champion (a last resort: it serves only because no champion or previous champion can);
    ``None`` when neither holds."""
    if served is None:
        return None
    notes = []
    if served.fallback:
        notes.append(f"serving version {served.version} as a fallback: newer versions failed {served.failures}")
    if served.last_resort:
        notes.append(
            f"version {served.version} was never champion (it did not pass model validation, or the registry's "
            "promotion history does not name it): it serves as a last resort, because no champion or previous "
            "champion can; retrain with POST /train"
        )
    return "; ".join(notes) or None


# -- the experiment router -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Router:
    """Which model answers a message in an experiment (``config/score.yaml`` or a batch request: ``challenger``,
    ``mode``, ``share``), for online and batch scoring alike.

    ``shadow``: the champion answers every message and the challenger scores it too (kept, never returned);
    ``ab``: a message whose id hashes below ``share`` (:func:`aml.mlops.experiments.assign`: sticky by id, the same
    in every process) is answered by the challenger. No challenger, or the challenger is the serving version: no
    experiment."""

    challenger: str | None = None
    mode: str = "shadow"
    share: float = 0.1

    @classmethod
    def from_config(cls, config: ScoreConfig) -> Router:
        """The router of a score configuration's experiment fields."""
        return cls(config.challenger, config.mode, config.share)

    def active(self, champion: ServingModel | None = None) -> bool:
        """Whether there is an experiment to run beside ``champion`` (the serving model)."""
        return self.challenger is not None and (champion is None or champion.version != self.challenger)

    @property
    def shadow(self) -> bool:
        """Whether the experiment is a shadow test (the challenger never answers)."""
        return self.mode == "shadow"

    def to_challenger(self, ids: Iterable[Any]) -> np.ndarray:
        """Per message id: True where the challenger answers (A/B only; a shadow test never answers)."""
        ids = list(ids)
        if self.shadow or self.challenger is None:
            return np.zeros(len(ids), dtype=bool)
        return experiments.assign(ids, self.share)

    def arms(self, ids: Iterable[Any]) -> np.ndarray:
        """Per message id: ``"challenger"`` or ``"champion"``."""
        return np.where(self.to_challenger(ids), experiments.CHALLENGER, experiments.CHAMPION)

    def arm(self, message_id: Any) -> str:
        """The arm of one message id (:meth:`arms` of one)."""
        return str(self.arms([message_id])[0])

    def challenger_model(self, holder: ModelHolder, champion: ServingModel) -> ServingModel | None:
        """The challenger ready to serve, or ``None`` when there is no experiment or it cannot load (logged: the
        champion keeps answering)."""
        if not self.active(champion):
            return None
        try:
            return holder.version_model(self.challenger)
        except Exception as exc:
            log.warning("the challenger (version %s) cannot serve: %s", self.challenger, exc)
            return None
