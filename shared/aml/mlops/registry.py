"""The model store on the MLflow registry: which version serves, and the fallback when it cannot.

The course's task for the model store: *pick the latest version and fall back to the previous one in case of
failure*. :func:`load_serving` walks :func:`candidates` — the version with the ``champion`` alias (the one that
passed model validation), else the newest version — and then every older version, newest first. Each candidate is
loaded and handed to a ``prepare`` callback (the caller's smoke prediction: a model that loads but cannot score
is as broken as one that does not load); the first that passes serves, and :class:`Served` records every version
that failed and why, so the service can say so in ``/health``, its log and its metrics. Versions *newer* than the
champion are never candidates: they were registered but did not pass the gate.

MLflow offers aliases and loading by alias, not a fallback policy, so the policy is written here, generic (nothing
in this module knows the spam filter). :func:`corrupt_version` breaks a version's stored files on purpose, for the
fallback's tests and the walkthrough notebook.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aml.mlops.tracking import CHAMPION

log = logging.getLogger("aml.mlops.registry")


class NoModelError(LookupError):
    """No version of the registered model exists yet (train one first)."""


class NoServableVersionError(RuntimeError):
    """Every candidate version failed to load or to pass the smoke check."""

    def __init__(self, message: str, failures: list[dict]):
        super().__init__(message)
        self.failures = failures


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


def candidates(name: str, client=None) -> tuple[str, list[str]]:
    """``(source, versions)``: the versions to try in order. With a champion: the champion, then the older versions
    newest first (``source`` ``"champion"``); without: every version newest first (``"latest"``). Raises
    :class:`NoModelError` when none is registered."""
    client = _client(client)
    every = versions(name, client)
    if not every:
        raise NoModelError(f"no version of model {name!r} is registered in {_registry_uri()}")
    champion = champion_version(name, client)
    if champion is None:
        return "latest", every
    return "champion", [champion] + [v for v in every if int(v) < int(champion)]


def _registry_uri() -> str:
    import mlflow

    return mlflow.get_registry_uri()


def load_version(name: str, version: str) -> Any:
    """Version ``version`` of ``name`` as a scikit-learn model (MLflow's ``models:/<name>/<version>``)."""
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def load_serving(
    name: str,
    prepare: Callable[[Any, dict], Any] | None = None,
    load: Callable[[str, str], Any] = load_version,
    client=None,
) -> Served:
    """Load the version to serve, falling back to older versions when one fails.

    For each of :func:`candidates`: ``model = load(name, version)``, then ``prepare(model, tags)`` (the version's
    tags; it returns what will serve, raising when the model cannot score). Failures are logged as warnings and
    kept in the ``failures`` of :class:`Served`. Raises :class:`NoModelError` when nothing is registered and
    :class:`NoServableVersionError` when every candidate fails.
    """
    client = _client(client)
    source, order = candidates(name, client)
    failures: list[dict] = []
    for version in order:
        try:
            mv = client.get_model_version(name, version)
            model = load(name, version)
            ready = prepare(model, dict(mv.tags)) if prepare else model
        except Exception as exc:
            failures.append({"version": version, "error": _one_line(exc)})
            log.warning("model %s version %s cannot serve (%s); trying the previous version", name, version, exc)
            continue
        if failures:
            log.warning(
                "model %s: serving version %s instead of %s (fallback after %d failure(s))",
                name,
                version,
                order[0],
                len(failures),
            )
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
        )
    raise NoServableVersionError(
        f"no version of model {name!r} can serve: " + "; ".join(f"v{f['version']}: {f['error']}" for f in failures),
        failures,
    )


def promote(name: str, version: str, client=None) -> None:
    """Give ``version`` of ``name`` the ``champion`` alias (moving it from the previous champion)."""
    _client(client).set_registered_model_alias(name, CHAMPION, str(version))


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
