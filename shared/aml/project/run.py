"""One run of a stage in the data store: :class:`StoreRun` owns the run id, its reads (recorded as inputs with their
SHA-256), its writes (atomic, recorded as outputs), the ``lineage.json`` of each of its folders and the moment the
``latest`` pointers move.

Why an object: every stage writes the same way — a new run folder, files written atomically, a lineage record
(inputs with their SHA-256, the configuration, the code version), and ``latest`` moved only after every file of the
run is in place, so a stage that fails leaves the previous ``latest`` untouched. One object holding the store and
the run keeps that discipline in one place instead of free helpers that each take the store.

Reads that belong to no run (the splits a model was trained on, a file to evaluate) are the module's functions
:func:`read_frame`, :func:`read_csv` and :func:`load_split`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.spam import stages

#: the data store's folders, one run per folder inside each
KINDS = ("raw", "processed", "split", "scoring", "training", "predictions", "evaluations", "actions", "shadow")


def read_frame(store: DataStore, path: str) -> pd.DataFrame:
    """A data file of the store through :func:`aml.spam.stages.load_data` (same parsing and validation as a file
    on disk): read in place for a local store, through a temporary copy otherwise. Messages name the store path,
    never the server's folder; a missing file is a :class:`FileNotFoundError`, one that cannot be parsed a
    :class:`~aml.spam.sms.DataValidationError`."""
    rel = store.check_path(path)
    local = store.local_path(rel)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{rel} not found in the data store")
        return stages.load_data(local, name=rel)
    data = store.read_bytes(rel)
    with tempfile.TemporaryDirectory(prefix="aml-store-") as tmp:
        copy = Path(tmp) / Path(rel).name
        copy.write_bytes(data)
        return stages.load_data(copy, name=rel)


def read_csv(store: DataStore, path: str, **kwargs) -> pd.DataFrame:
    """A CSV file of the store as a frame; a file pandas cannot parse, or whose rows have more fields than its
    header, is a :class:`~aml.spam.sms.DataValidationError` (:func:`aml.spam.stages.read_csv_frame`)."""
    rel = store.check_path(path)
    return stages.read_csv_frame(io.BytesIO(store.read_bytes(rel)), rel, **kwargs)


def load_split(store: DataStore, run: str | None = None) -> tuple[str, dict[str, pd.DataFrame]]:
    """``(run, {split: frame})``: the splits of ``run`` (default the latest), each validated on reading."""
    run = run or store.resolve_latest("split")
    frames = {name: read_frame(store, store.run_path("split", run, f"{name}.csv")) for name in stages.SPLITS}
    return run, frames


def store_summary(store: DataStore) -> pd.DataFrame:
    """One row per data folder of the store: how many runs it holds and which one ``latest`` points at."""
    rows = [{"folder": f"{kind}/", "runs": len(store.runs(kind)), "latest": store.latest(kind)} for kind in KINDS]
    return pd.DataFrame(rows).set_index("folder")


class StoreRun:
    """A new run of ``kinds`` (its first kind names the run; a data stage writes ``processed/``, ``split/`` and
    ``scoring/`` under one id) in ``store``.

    Reads through :meth:`read_frame`/:meth:`read_csv` with ``record=`` a name, or :meth:`record_input`, add the file
    with its SHA-256 to ``inputs``; writes go to ``<kind>/<run>/<name>`` atomically; :meth:`write_lineage` writes
    each kind's ``lineage.json`` (with the code version) and :meth:`publish` moves each kind's ``latest`` — last,
    so that a failure before it leaves the previous runs in charge."""

    def __init__(self, store: DataStore, *kinds: str):
        if not kinds:
            raise ValueError("a run needs at least one kind (a data store folder)")
        self.store, self.kinds = store, kinds
        self.id = store.new_run(kinds[0])
        self.inputs: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"StoreRun({'+'.join(self.kinds)}/{self.id})"

    def path(self, name: str = "", kind: str | None = None) -> str:
        """``<kind>/<run>/<name>`` (``kind`` default the run's first)."""
        return self.store.run_path(kind or self.kinds[0], self.id, name)

    # -- reads ---------------------------------------------------------------------------------------------------

    def record_input(self, name: str, path: str) -> dict:
        """Record the store file ``path`` as input ``name`` (with its SHA-256); returns the record."""
        self.inputs[name] = {"path": path, "sha256": self.store.sha256(path)}
        return self.inputs[name]

    def read_frame(self, path: str, record: str | None = None) -> pd.DataFrame:
        """:func:`read_frame`, recorded as input ``record`` when given."""
        frame = read_frame(self.store, path)
        if record:
            self.record_input(record, path)
        return frame

    def read_csv(self, path: str, record: str | None = None, **kwargs) -> pd.DataFrame:
        """:func:`read_csv`, recorded as input ``record`` when given."""
        frame = read_csv(self.store, path, **kwargs)
        if record:
            self.record_input(record, path)
        return frame

    # -- writes --------------------------------------------------------------------------------------------------

    def write_frame(self, name: str, df: pd.DataFrame, kind: str | None = None) -> dict:
        """Write ``df`` as CSV (atomically) to :meth:`path` and return ``{"path", "sha256", "rows"}``."""
        data = df.to_csv(index=False).encode("utf-8")
        path = self.path(name, kind)
        self.store.write_bytes(path, data)
        return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(df)}

    def write_bytes(self, name: str, data: bytes, kind: str | None = None, overwrite: bool = True) -> dict:
        """Write ``data`` (atomically) to :meth:`path`; returns ``{"path", "sha256"}``."""
        path = self.path(name, kind)
        self.store.write_bytes(path, data, overwrite=overwrite)
        return {"path": path, "sha256": hashlib.sha256(data).hexdigest()}

    def write_json(self, name: str, record: Any, kind: str | None = None) -> str:
        """Write ``record`` as JSON to :meth:`path`; returns the path."""
        path = self.path(name, kind)
        self.store.write_json(path, record)
        return path

    def write_lineage(self, record: Mapping) -> None:
        """Each kind's ``lineage.json``: the code version and ``record``, with the recorded ``inputs`` unless
        ``record`` names its own."""
        full = {"inputs": dict(self.inputs), **record} if self.inputs else dict(record)
        for kind in self.kinds:
            self.store.write_lineage(kind, self.id, {"code_version": tracking.code_version(), **full})

    def publish(self) -> str:
        """Move every kind's ``latest`` to this run (after everything is written); returns the run id."""
        for kind in self.kinds:
            self.store.set_latest(kind, self.id)
        return self.id


def dumps(record: Any) -> bytes:
    """``record`` as the indented JSON bytes the stages store (profiles)."""
    return json.dumps(record, indent=1).encode("utf-8")
