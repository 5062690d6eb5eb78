"""The model artefact format, one for the whole workspace: a folder holding ``model.joblib`` (the fitted estimator,
vectoriser included) and ``meta.json`` (its SHA-256, when and what was saved, plus the caller's metadata: threshold,
metrics, data and code versions). A corrupt or swapped artefact is refused by checksum on load.

- :func:`save_model` / :func:`load_model` / :func:`load_metadata`: the course's ``save_model(model, path) -> path``
  and ``load_model(path) -> model``, where ``path`` is the artefact folder;
- :func:`store_path`: the folder of a named model in the model store (``AML_MODEL_STORE``, default
  ``<repo>/models``): ``<store>/<name>/``.

Both files are written to temporary names and renamed into place (the model first, the metadata last), so a reader
never sees half a file, and a crash between the two leaves a checksum mismatch that is refused, never a silently
wrong model. Artefacts are pickles (joblib): load only stores you trust.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from aml.core import config
from aml.core.files import write_atomic
from aml.core.hashing import sha256
from aml.core.reporting import jsonable

ARTEFACT, META = "model.joblib", "meta.json"


class ModelNotFoundError(FileNotFoundError):
    """No model artefact where one was expected."""


class ChecksumError(RuntimeError):
    """A file exists but its SHA-256 digest is not the one recorded for it."""


class MetadataError(ValueError):
    """An artefact's ``meta.json`` is unreadable or lacks a required field."""


def store_path(name: str, store: str | Path | None = None) -> Path:
    """``<store>/<name>``: the artefact folder of model ``name`` in the model store (default ``AML_MODEL_STORE``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")
    return Path(store or config.model_store_dir()) / name


def save_model(model: Any, path: str | Path, metadata: dict | None = None) -> Path:
    """Save ``model`` into the artefact folder ``path`` (created if needed) with its metadata; returns ``path``."""
    import joblib

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    artefact = write_atomic(folder / ARTEFACT, lambda tmp: joblib.dump(model, tmp))
    meta = {
        "name": folder.name,
        "sha256": sha256(artefact),
        "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        **jsonable(metadata or {}),
    }
    write_atomic(folder / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=2, sort_keys=True)))
    return folder


def load_metadata(path: str | Path) -> dict:
    """The metadata of the artefact folder ``path``; clear errors for a missing or unreadable ``meta.json``."""
    folder = Path(path)
    meta_file = folder / META
    if not meta_file.is_file():
        raise ModelNotFoundError(
            f"no model artefact in {folder} ({META} not found; set {config.MODEL_STORE_ENV} or run "
            "assignment1/train.ipynb, `make run`, to create one)"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{meta_file} is not valid JSON ({exc}); rebuild the artefact") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise MetadataError(f"{meta_file} has no 'sha256' field: not an artefact of this model store")
    return meta


def load_model(path: str | Path) -> Any:
    """The model saved in the artefact folder ``path``, its checksum verified first."""
    return load(path)[0]


def load(path: str | Path) -> tuple[Any, dict]:
    """``(model, metadata)`` of the artefact folder ``path``, the checksum verified before unpickling."""
    import joblib

    folder = Path(path)
    meta = load_metadata(folder)
    artefact = folder / ARTEFACT
    if not artefact.is_file():
        raise ModelNotFoundError(f"{artefact} is missing although {META} is there")
    digest = sha256(artefact)
    if digest != meta["sha256"]:
        raise ChecksumError(f"{artefact}: sha256 {digest} differs from {meta['sha256']} in {META}; refusing to load")
    return joblib.load(artefact), meta
