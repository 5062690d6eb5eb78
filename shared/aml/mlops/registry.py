"""The model store on the MLflow registry: which version serves, and the fallback when it cannot.

The course's task for the model store: *pick the latest version and fall back to the previous one in case of
failure*. :func:`load_serving` walks :func:`candidates`: the version with the ``champion`` alias (the one that
passed model validation), then the versions that were champion before, the most recently promoted first (the
promotion history: :func:`promote` tags each version it promotes with ``promoted_at``), and only then, as a last
resort, the versions never promoted, newest first. Each candidate is loaded and handed to a ``prepare`` callback
(the caller's smoke prediction: a model that loads but cannot score is as broken as one that does not load); the
first that passes serves, and :class:`Served` records every version that failed and why, and the served version's
``standing`` (champion, previous champion, never promoted), so the service can say so in ``/health``, its log and
its metrics. Versions *newer* than the champion are never candidates: they were registered but did not pass the
gate, or a rollback moved away from them. Versions tagged ``crashed`` (:func:`mark_crashed`: their training died
before it finished, so model validation never passed on them) are never candidates either.

Failure messages leave the registry without absolute paths (:func:`redact_paths`): they reach ``/health``.

MLflow offers aliases and loading by alias, not a fallback policy, so the policy is written here, generic (nothing
in this module knows the spam filter). :func:`corrupt_version` breaks a version's stored files on purpose, for the
fallback's tests and the walkthrough notebook.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aml.mlops.tracking import CHAMPION

log = logging.getLogger("aml.mlops.registry")

#: version tag :func:`promote` sets: when the version last became champion (UTC, ISO 8601, microseconds)
PROMOTED_AT = "promoted_at"
#: version tag :func:`mark_crashed` sets to ``"true"`` (its reason in :data:`CRASHED_REASON`): never served
CRASHED, CRASHED_REASON = "crashed", "crashed_reason"
#: the standing of a candidate: the champion, a version that was champion before, a version never promoted
CHAMPION_STANDING, PREVIOUS_CHAMPION, NEVER_PROMOTED = "champion", "previous champion", "never promoted"


class NoModelError(LookupError):
    """No version of the registered model exists yet (train one first)."""


class NoServableVersionError(RuntimeError):
    """Every candidate version failed to load or to pass the smoke check (``failures``: ``[{"version", "error"}]``;
    ``crashed``: the versions left out because their training crashed)."""

    def __init__(self, message: str, failures: list[dict], crashed: list[str] | None = None):
        super().__init__(message)
        self.failures = failures
        self.crashed = list(crashed or [])


@dataclass
class Served:
    """What :func:`load_serving` returns: the prepared model and where it came from."""

    name: str
    version: str
    model: Any  # what ``prepare`` returned
    source: str  # "champion" or "latest": how the first candidate was chosen
    fallback: bool  # True when the first candidate failed and an older version serves
    failures: list[dict] = field(default_factory=list)  # [{"version", "error"}] of the candidates that failed
    tags: dict = field(default_factory=dict)  # the served version's tags
    run_id: str | None = None
    loaded_at: str = ""
    standing: str = ""  # CHAMPION_STANDING, PREVIOUS_CHAMPION or NEVER_PROMOTED ("" when not known)

    @property
    def last_resort(self) -> bool:
        """True when a version that was never champion serves: nothing validated could."""
        return self.standing == NEVER_PROMOTED

    def describe(self) -> dict:
        """A JSON-able summary (no model): for ``/health`` and ``/models``."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "fallback": self.fallback,
            "failures": list(self.failures),
            "run_id": self.run_id,
            "loaded_at": self.loaded_at,
            "standing": self.standing,
        }


def _client(client=None):
    if client is not None:
        return client
    import mlflow

    return mlflow.MlflowClient()


def versions(name: str, client=None) -> list[str]:
    """Every registered version of ``name``, newest first; an empty list when the model is not registered."""
    client = _client(client)
    found = client.search_model_versions(f"name = '{name}'")
    return [str(v) for v in sorted((int(mv.version) for mv in found), reverse=True)]


def champion_version(name: str, client=None) -> str | None:
    """The version holding the ``champion`` alias, or ``None``."""
    from mlflow.exceptions import MlflowException

    client = _client(client)
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _records(name: str, client) -> dict:
    """``{version: ModelVersion}`` of every registered version of ``name`` (the search results carry the tags)."""
    return {str(mv.version): mv for mv in client.search_model_versions(f"name = '{name}'")}


def standing(tags: dict, is_champion: bool) -> str:
    """A version's standing from its tags: :data:`CHAMPION_STANDING`, :data:`PREVIOUS_CHAMPION` (it has a
    :data:`PROMOTED_AT` tag) or :data:`NEVER_PROMOTED`."""
    if is_champion:
        return CHAMPION_STANDING
    return PREVIOUS_CHAMPION if PROMOTED_AT in tags else NEVER_PROMOTED


def is_crashed(tags: dict) -> bool:
    """Whether a version's tags mark it as registered by a training that crashed (:func:`mark_crashed`)."""
    return str(tags.get(CRASHED, "")).lower() == "true"


def _ordered(records: dict, champion: str | None) -> list[str]:
    """The candidate order (see :func:`candidates`) of ``records`` with ``champion``."""
    limit = int(champion) if champion is not None else None
    older = sorted(
        (v for v, mv in records.items() if (limit is None or int(v) < limit) and not is_crashed(mv.tags)),
        key=int,
        reverse=True,
    )
    previous = sorted(
        (v for v in older if PROMOTED_AT in records[v].tags),
        key=lambda v: (records[v].tags[PROMOTED_AT], int(v)),
        reverse=True,
    )
    never = [v for v in older if v not in previous]
    return ([champion] if champion is not None else []) + previous + never


def candidates(name: str, client=None) -> tuple[str, list[str]]:
    """``(source, versions)``: the versions to try in order. The champion first (``source`` ``"champion"``;
    without one, ``"latest"``), then the older versions that were champion before, the most recently promoted
    first, then the older versions never promoted, newest first. Versions newer than the champion and versions
    tagged ``crashed`` are left out. Raises :class:`NoModelError` when none is registered."""
    client = _client(client)
    records = _records(name, client)
    if not records:
        raise NoModelError(f"no version of model {name!r} is registered in {_registry_uri()}")
    champion = champion_version(name, client)
    return ("champion" if champion is not None else "latest"), _ordered(records, champion)


def crashed_versions(name: str, client=None) -> list[str]:
    """The versions of ``name`` tagged ``crashed``, newest first."""
    records = _records(name, _client(client))
    return sorted((v for v, mv in records.items() if is_crashed(mv.tags)), key=int, reverse=True)


def _registry_uri() -> str:
    import mlflow

    return mlflow.get_registry_uri()


def load_version(name: str, version: str) -> Any:
    """Version ``version`` of ``name`` as a scikit-learn model (MLflow's ``models:/<name>/<version>``)."""
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


#: an absolute POSIX path (or ``file://`` URL) in a message: not after a word character, ``:`` or ``/`` (so the
#: path part of ``s3://bucket/key`` or ``models:/name/1`` is left alone)
_ABSOLUTE = re.compile(r"(?<![\w.~:/-])(?:file://)?/(?:[^\s'\"/]+/)+(?P<name>[^\s'\"/,;)]*)")


def redact_paths(text: str, aliases: dict[str, str] | None = None) -> str:
    """``text`` without absolute paths: each prefix of ``aliases`` (``{absolute folder: name to show}``, e.g. a
    version's files folder → ``models:/<name>/<version>``) replaced first, then any other absolute path shortened
    to ``…/<its last part>``."""
    for prefix, alias in sorted((aliases or {}).items(), key=lambda item: -len(item[0])):
        if prefix:
            text = text.replace(prefix, alias)
    return _ABSOLUTE.sub(lambda m: f"\N{HORIZONTAL ELLIPSIS}/{m['name']}", text)


def _one_line(exc: BaseException, aliases: dict[str, str] | None = None) -> str:
    text = redact_paths(" ".join(str(exc).split()), aliases)
    return f"{type(exc).__name__}: {text[:300]}"


def _file_aliases(name: str, version: str, client) -> dict[str, str]:
    """``{the version's files folder: models:/<name>/<version>}`` for :func:`redact_paths` (none when the files
    are not in a local folder)."""
    try:
        folder = version_files(name, version, client)
    except Exception:  # not a local artifact store, or the version's record is unreadable: generic redaction
        return {}
    return {f"file://{folder}": f"models:/{name}/{version}", str(folder): f"models:/{name}/{version}"}


def load_serving(
    name: str,
    prepare: Callable[[Any, dict], Any] | None = None,
    load: Callable[[str, str], Any] = load_version,
    client=None,
) -> Served:
    """Load the version to serve, falling back to older versions when one fails.

    For each of :func:`candidates`: ``model = load(name, version)``, then ``prepare(model, tags)`` (the version's
    tags; it returns what will serve, raising when the model cannot score). Failures are logged as warnings and
    kept in the ``failures`` of :class:`Served` (their messages without absolute paths); a version never promoted
    that serves is logged as a last resort. Raises :class:`NoModelError` when nothing is registered and
    :class:`NoServableVersionError` when every candidate fails (or every version crashed).
    """
    client = _client(client)
    source, order = candidates(name, client)
    champion = order[0] if source == "champion" else None
    failures: list[dict] = []
    for version in order:
        try:
            mv = client.get_model_version(name, version)
            model = load(name, version)
            ready = prepare(model, dict(mv.tags)) if prepare else model
        except Exception as exc:
            failures.append({"version": version, "error": _one_line(exc, _file_aliases(name, version, client))})
            log.warning("model %s version %s cannot serve (%s); trying the previous version", name, version, exc)
            continue
        rank = standing(dict(mv.tags), version == champion)
        if failures:
            log.warning(
                "model %s: serving version %s (%s) instead of %s (fallback after %d failure(s))",
                name,
                version,
                rank,
                order[0],
                len(failures),
            )
        if rank == NEVER_PROMOTED:
            log.warning("model %s: version %s was never champion: it serves as a last resort", name, version)
        return Served(
            name=name,
            version=version,
            model=ready,
            source=source,
            fallback=bool(failures),
            failures=failures,
            tags=dict(mv.tags),
            run_id=mv.run_id,
            loaded_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            standing=rank,
        )
    crashed = crashed_versions(name, client)
    parts = [f"v{f['version']}: {f['error']}" for f in failures]
    if crashed:
        parts.append(f"left out as crashed trainings: {', '.join('v' + v for v in crashed)}")
    raise NoServableVersionError(f"no version of model {name!r} can serve: " + "; ".join(parts), failures, crashed)


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def promote(name: str, version: str, client=None) -> None:
    """Give ``version`` of ``name`` the ``champion`` alias (moving it from the previous champion) and record the
    promotion in the version's :data:`PROMOTED_AT` tag (the history :func:`candidates` falls back along). A
    previous champion without the tag (promoted before the history was kept) gets its registration time as
    ``promoted_at`` first, so it still ranks as a previous champion."""
    client = _client(client)
    version = str(version)
    before = champion_version(name, client)
    if before is not None and before != version:
        record = client.get_model_version(name, before)
        if PROMOTED_AT not in record.tags:
            registered = dt.datetime.fromtimestamp(record.creation_timestamp / 1000, dt.timezone.utc)
            client.set_model_version_tag(name, before, PROMOTED_AT, registered.isoformat(timespec="microseconds"))
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, PROMOTED_AT, _utc_now())  # after the alias: a tag means "was champion"


def mark_crashed(name: str, version: str, reason: str, client=None) -> None:
    """Tag ``version`` of ``name`` as registered by a training that crashed (``crashed=true`` and
    ``crashed_reason``): :func:`candidates` never offers it, so nothing serves it."""
    client = _client(client)
    client.set_model_version_tag(name, str(version), CRASHED, "true")
    client.set_model_version_tag(name, str(version), CRASHED_REASON, reason[:500])


def set_tags(name: str, version: str, tags: dict, client=None) -> None:
    """Set string tags on a registered version (e.g. its threshold and validation report)."""
    client = _client(client)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def version_files(name: str, version: str, client=None) -> Path:
    """The local folder holding a version's stored model files (file-based artifact stores only)."""
    uri = _client(client).get_model_version_download_uri(name, str(version))
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    path = Path(uri)
    if not path.is_dir():
        raise NotImplementedError(f"version {version} of {name!r} is stored at {uri}, not in a local folder")
    return path


#: the serialised model inside an MLflow model folder (the rest is its description: MLmodel, requirements, ...)
MODEL_DATA_SUFFIXES = (".skops", ".pkl", ".pickle", ".joblib", ".cloudpickle")


def corrupt_version(name: str, version: str, client=None) -> list[Path]:
    """Break a registered version on purpose (for fallback tests and demos), as a truncated upload or a bad disk
    would: its serialised model files are overwritten with bytes no loader accepts, its description (``MLmodel``)
    stays valid. Returns the files. Only for file-based artifact stores."""
    files = [p for p in version_files(name, version, client).rglob("*") if p.is_file()]
    data = [p for p in files if p.suffix in MODEL_DATA_SUFFIXES]
    files = data or files
    for path in files:
        path.write_bytes(b"deliberately broken model file\n")
    return files
