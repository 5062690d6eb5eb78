"""The model store: one folder per model name, holding the artefact (``model.joblib``, vectoriser included) and
``meta.json`` (its SHA-256, threshold, metrics, data and code versions). A corrupt or swapped artefact is refused
by checksum on load.

Artefacts are pickles (joblib): load only stores you trust.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import joblib

from aml import config
from aml.datasets import ChecksumError, sha256
from aml.reporting import _jsonable

ARTEFACT, META = "model.joblib", "meta.json"


class ModelNotFoundError(FileNotFoundError):
    """No model of that name in the store."""


def model_dir(name: str, store: str | Path | None = None) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid model name {name!r}")
    return Path(store or config.model_store_dir()) / name


def save_model(model: Any, name: str, metadata: dict | None = None, store: str | Path | None = None) -> Path:
    """Save ``model`` as ``<store>/<name>/model.joblib`` with ``meta.json``; returns the artefact path.

    The artefact is written to a temporary file and moved into place, so a reader never sees half a file.
    """
    folder = model_dir(name, store)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".joblib")
    os.close(fd)
    joblib.dump(model, tmp)
    artefact = folder / ARTEFACT
    os.replace(tmp, artefact)
    meta = {
        "name": name,
        "sha256": sha256(artefact),
        "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        **_jsonable(metadata or {}),
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return artefact


def load_metadata(name: str, store: str | Path | None = None) -> dict:
    folder = model_dir(name, store)
    if not (folder / META).is_file():
        raise ModelNotFoundError(
            f"no model {name!r} in the model store {folder.parent} (set {config.MODEL_STORE_ENV} or run "
            "assignment1/train.ipynb, `make run`, to create it)"
        )
    return json.loads((folder / META).read_text())


def load_model(name: str, store: str | Path | None = None) -> tuple[Any, dict]:
    """Load a model and its metadata, verifying the artefact's checksum first."""
    meta = load_metadata(name, store)
    artefact = model_dir(name, store) / ARTEFACT
    if not artefact.is_file():
        raise ModelNotFoundError(f"{artefact} is missing although {META} is there")
    digest = sha256(artefact)
    if digest != meta["sha256"]:
        raise ChecksumError(f"{artefact}: sha256 {digest} differs from {meta['sha256']} in {META}; refusing to load")
    return joblib.load(artefact), meta
