"""The data stage (``POST /prepare``): raw data from the data store → validated, deduplicated, split
(:func:`aml.spam.sms.preprocess` once, then :func:`aml.spam.stages.split_preprocessed`) → profiled and tested
against the last accepted version (:mod:`aml.spam.profiling`, :mod:`aml.spam.datatests`) → ``processed/``,
``split/`` and ``scoring/`` runs back in the store (one :class:`~aml.project.run.StoreRun`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from aml.mlops.datastore import DataStore, StoreConflictError
from aml.project.run import StoreRun, dumps
from aml.project.settings import PrepareConfig
from aml.spam import sms, stages

if TYPE_CHECKING:  # imported where used: pandera and matplotlib load when data is prepared, not when a service starts
    from aml.spam.profiling import Profile

log = logging.getLogger("aml.project.prepare")

RAW_FILE = sms.FILENAME
#: the content index of the raw data: ``raw/sha256/<SHA-256 of the bytes>.json`` names the run that holds them
RAW_INDEX = "raw/sha256"
#: the store lock (:func:`aml.mlops.jobs.exclusive`) an ingestion holds while it looks up and writes raw data
INGEST_LOCK = "ingest_raw"
PROFILE_FILE, PROFILE_PAGE = "profile.json", "profile.html"
#: the folders one data-stage run writes, under one run id
KINDS = ("processed", "split", "scoring")
Report = Callable[[float, str], None]


def no_report(fraction: float, message: str) -> None:
    """The default progress report of a stage: a log line."""
    log.info("%3.0f%% %s", 100 * fraction, message)


def _raw_run_of(store: DataStore, path: str) -> str:
    """The run id of a raw file's store path ``raw/<run>/<file>``."""
    return path.split("/")[1]


def find_raw(store: DataStore, digest: str, scan: bool = True) -> str | None:
    """The store path of the raw file whose bytes have SHA-256 ``digest``, or ``None``: the content index's entry
    (``raw/sha256/<digest>.json``, checked against the file's hash), else, with ``scan``, a raw run holding those
    bytes without an entry (an ingestion killed between its file and its entry; the entry is written now), newest
    first."""
    entry = f"{RAW_INDEX}/{digest}.json"
    if store.exists(entry):
        path = store.read_json(entry).get("path")
        if isinstance(path, str) and store.exists(path) and store.sha256(path) == digest:
            return path
        log.warning("the raw content index entry %s does not match its file: looking through the raw runs", entry)
    if not scan:
        return None
    for run in reversed(store.runs("raw")):
        path = store.run_path("raw", run, RAW_FILE)
        if store.exists(path) and store.sha256(path) == digest:
            store.write_json(entry, {"run": run, "path": path, "sha256": digest})
            return path
    return None


def ingest_raw(store: DataStore, source: str | Path | None = None, timeout: float = 120.0) -> str:
    """Store the raw collection once per content and point ``raw/latest`` at it; returns the store path.

    ``source``: a local file, default the dataset registry's copy (:func:`aml.spam.sms.load_sms`'s). The bytes are
    validated first (``raw/latest`` never moves to data that every later prepare would refuse), then addressed by
    their SHA-256: bytes already in the store (:func:`find_raw`) are not written again, new bytes go to a new run
    ``raw/<run>/`` (never overwriting) and get their entry ``raw/sha256/<digest>.json`` in the content index. The
    look-up and the write hold the store's ``ingest_raw`` lock (:func:`aml.mlops.jobs.exclusive`: the threads and
    worker processes of a service, and replicas on several hosts when the job locks are PostgreSQL's), so any number
    of concurrent ingestions of the same bytes store them once. The entry is created, never overwritten: even
    without a shared lock (hosts that share an object store but no lock database) one run is the content's."""
    from aml.core import datasets
    from aml.mlops import jobs

    path = Path(source) if source else datasets.fetch("sms_spam") / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"raw data not found: {path}")
    data = path.read_bytes()
    sms.check_sms_frame(sms.read_sms_file(path))  # refused before anything is written
    digest = hashlib.sha256(data).hexdigest()
    found = find_raw(store, digest, scan=False)  # the common case, without waiting for the lock
    if found is None:
        with jobs.exclusive(store, INGEST_LOCK, timeout=timeout):
            found = find_raw(store, digest)  # again under the lock: another ingestion may have stored it meanwhile
            if found is None:
                found = _store_raw(store, path, data, digest)
    store.set_latest("raw", _raw_run_of(store, found))
    return found


def _store_raw(store: DataStore, source: Path, data: bytes, digest: str) -> str:
    """Write new raw bytes as a new run with its lineage, then their content index entry (created, never
    overwritten: when another host's entry won, its run is the content's and this run stays unpublished)."""
    run = StoreRun(store, "raw")
    output = run.write_bytes(RAW_FILE, data, overwrite=False)
    run.write_lineage({"source": str(source), "outputs": {RAW_FILE: output}})
    entry = f"{RAW_INDEX}/{digest}.json"
    try:
        store.write_json(entry, {"run": run.id, "path": output["path"], "sha256": digest}, overwrite=False)
    except StoreConflictError:
        winner = find_raw(store, digest)
        if winner is not None:
            log.warning("raw data %s was stored by another host at the same time: using %s", digest[:12], winner)
            return winner
        store.write_json(entry, {"run": run.id, "path": output["path"], "sha256": digest})  # a stale entry
    return output["path"]


def raw_path(store: DataStore, config: PrepareConfig) -> str:
    """The raw data to prepare: ``config.raw``, else the latest raw run's file, ingested first when there is none."""
    if config.raw:
        rel = store.check_path(config.raw)
        if not store.exists(rel):
            raise FileNotFoundError(f"{rel} not found in the data store")
        return rel
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
        raise sms.DataValidationError(f"{path} in the data store is not a readable profile: {exc}") from None


def read_raw(run: StoreRun, source: str) -> pd.DataFrame:
    """The raw data at store path ``source``, recorded as the run's input: labelled messages (``label`` and
    ``text``, validated by :func:`aml.spam.sms.check_sms_frame`); anything else (a scoring batch without labels, a
    header without rows) is a :class:`~aml.spam.sms.DataValidationError` naming the file and what it lacks."""
    frame = run.read_frame(source, record="raw")
    missing = [column for column in ("label", stages.TEXT) if column not in frame.columns]
    if missing:
        raise sms.DataValidationError(
            f"{source} is not raw labelled data: columns {missing} are missing (found {list(frame.columns)[:10]}); "
            "raw data is label<TAB>text lines or a CSV with label and text columns"
        )
    sms.check_sms_frame(frame[["label", stages.TEXT]])
    return frame


def _test_data(run: StoreRun, clean: pd.DataFrame, config: PrepareConfig):
    """Profile the processed data and run the data tests against the last accepted profile; returns ``(tests,
    {file name: bytes})``. A failure writes the refused data's profile for inspection and raises
    :class:`~aml.spam.sms.DataValidationError`, before any split is written."""
    from aml.spam import datatests, profiling

    data_profile = profiling.profile(clean, name=run.path(kind="processed"))
    _, reference = reference_profile(run.store) if config.data_tests else (None, None)
    tests = datatests.check_data(clean, reference, data_profile=data_profile)
    files = {PROFILE_FILE: dumps(data_profile.to_dict()), PROFILE_PAGE: data_profile.to_html().encode("utf-8")}
    if not tests.passed:
        for name, data in files.items():
            run.write_bytes(name, data, kind="processed")
        raise sms.DataValidationError(f"{tests}\nthe refused data's profile: {run.path(PROFILE_PAGE, 'processed')}")
    return tests, files


def prepare(store: DataStore, config: PrepareConfig | None = None, report: Report = no_report) -> dict:
    """The data stage: raw → validated, deduplicated, split → ``processed/<run>/messages.csv``,
    ``split/<run>/{train,validation,test}.csv`` and ``scoring/<run>/messages.csv`` (the test split's ids and texts:
    a batch to score), with the processed data's profile (``processed/<run>/profile.json`` and ``profile.html``,
    :func:`aml.spam.profiling.profile`).

    The data tests (:func:`aml.spam.datatests.check_data`) run on the processed data against the latest processed
    run's profile (the last accepted version; none: schema only, and ``config.data_tests=False``: schema only): a
    failure raises :class:`~aml.spam.sms.DataValidationError` listing every failed check, with the refused data's
    profile written for inspection, and no ``latest`` pointer moves.

    Returns ``{"run", "outputs", "rows", "duplicates_removed", "profile": {"json", "html"}, "data_tests": {"passed",
    "checks", "reference", "failures"}}``.
    """
    config = config or PrepareConfig()
    source = raw_path(store, config)
    report(0.1, f"reading {source}")
    run = StoreRun(store, *KINDS)
    clean, removed = sms.preprocess(read_raw(run, source))
    parts = stages.split_preprocessed(clean, seed=config.seed, fractions=config.fractions)
    report(0.3, "profiling and testing the processed data")
    tests, profile_files = _test_data(run, clean, config)
    report(0.5, "writing the splits")
    outputs = {"processed": run.write_frame("messages.csv", clean, "processed")}
    for name, part in zip(stages.SPLITS, parts, strict=True):
        outputs[name] = run.write_frame(f"{name}.csv", part, "split")
    test = parts[2]
    batch = pd.DataFrame({stages.ID: [f"test-{i}" for i in range(len(test))], stages.TEXT: test[stages.TEXT]})
    outputs["scoring"] = run.write_frame("messages.csv", batch, "scoring")
    profile = {name: run.path(name, "processed") for name in profile_files}
    run.write_lineage(
        {
            "config": dataclasses.asdict(config),
            "outputs": outputs,
            "duplicates_removed": int(removed),
            "profile": {
                name: {"path": profile[name], "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in profile_files.items()
            },
            "data_tests": tests.to_dict(),
        }
    )
    for name, data in profile_files.items():  # after the lineage, which records their hashes
        run.write_bytes(name, data, kind="processed")
    run.publish()  # only now: a failure above leaves the previous latest in place
    report(1.0, f"prepared run {run.id}")
    return {
        "run": run.id,
        "outputs": {name: out["path"] for name, out in outputs.items()},
        "rows": {name: out["rows"] for name, out in outputs.items()},
        "duplicates_removed": int(removed),
        "profile": {"json": profile[PROFILE_FILE], "html": profile[PROFILE_PAGE]},
        "data_tests": tests.to_dict(),
    }
