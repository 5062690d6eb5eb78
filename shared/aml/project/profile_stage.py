"""Profiling upon change: the ``profile`` stage of ``project/dvc.yaml``, run by ``dvc repro`` in a scratch repository.

The raw collection is a DVC-tracked file (``data/raw/SMSSpamCollection``); the stage depends on it and on the
profiling code, and writes ``reports/profile.json`` and ``reports/profile.html``
(``python -m aml.spam.pipeline profile``, which calls :func:`aml.spam.profiling.profile`). So ``dvc repro``
re-profiles exactly when the data changed: a new data version gives a new profile, an unchanged one is skipped with
the files left as they were, and data DVC has profiled before comes back from its run cache without running.

Everything runs in a scratch git + DVC repository (:func:`init_repo`, with a local-folder remote), never in the
workspace's own repository: :func:`demo` builds one and walks through the cases, and the notebook and the tests call
it. The project's ``dvc.yaml`` is used as it is; its ``params.yaml`` (the variables of ``dvc.yaml``) gets the absolute
path of this library, as the repository is not next to it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aml.core import config, datasets
from aml.mlops import versioning
from aml.spam import pipeline, sms

#: the project folder whose ``dvc.yaml`` and ``params.yaml`` are used
PROJECT_DIR = config.REPO_ROOT / "project"
#: the stage's name in ``dvc.yaml``
STAGE = "profile"
#: the raw data file, relative to the repository (the stage's dependency)
RAW = pipeline.PROFILE_RAW
#: the profile files, relative to the repository (the stage's outputs): JSON first
REPORTS = tuple(f"{pipeline.PROFILE_DIR}/{name}" for name in pipeline.PROFILE_FILES)
#: the messages :func:`demo` appends to make a new data version
NEW_MESSAGES = (
    ("spam", "URGENT! Your parcel is held at the depot. Pay the £1.99 fee at www.parcel-redelivery.example now"),
    ("spam", "Congratulations, you have won a £500 voucher. Text CLAIM to 80085 before midnight"),
    ("ham", "Running late, see you at the station at 7"),
)


@dataclass(frozen=True)
class StageRun:
    """One ``dvc repro`` of the profile stage and the state it left (:func:`reprofile`).

    ``outcome``: ``"ran"`` (the profile was computed), ``"skipped"`` (nothing changed: the files are untouched) or
    ``"restored"`` (DVC's run cache had the profile of this data: checked out, not computed). ``commit``: the
    repository's commit after the run (``dvc.lock`` committed); ``data_md5``: the raw file's version as ``dvc.lock``
    records it; ``rows``: the profile's row count; ``profile_md5``: ``{file: md5}`` of the profile files (equal to
    ``dvc.lock``'s record, checked); ``mtime_ns``: their modification times (unchanged when skipped).
    """

    step: str
    outcome: str
    commit: str
    data_md5: str
    rows: int
    profile_md5: dict[str, str]
    mtime_ns: dict[str, int]
    output: str = field(repr=False)

    @property
    def ran(self) -> bool:
        """Whether the profile was computed by this run."""
        return self.outcome == versioning.RAN


@dataclass
class Demo:
    """What :func:`demo` did: the repository and one :class:`StageRun` per step."""

    repo: Path
    runs: list[StageRun]

    def table(self) -> pd.DataFrame:
        """One row per step: the stage's outcome, the data version, the profile's row count and hash, whether the
        profile files were rewritten since the step before, and the first step with the same profile."""
        rows = []
        for i, run in enumerate(self.runs):
            previous = self.runs[i - 1] if i else None
            first = next(r for r in self.runs if r.profile_md5 == run.profile_md5)
            rows.append(
                {
                    "step": run.step,
                    "profile stage": run.outcome,
                    "commit": run.commit[:8],
                    "data md5": run.data_md5[:8],
                    "rows": run.rows,
                    "profile.json md5": run.profile_md5[REPORTS[0]][:8],
                    "files rewritten": previous is None or run.mtime_ns != previous.mtime_ns,
                    "same profile as": first.step,
                }
            )
        return pd.DataFrame(rows).set_index("step")


def init_repo(
    root: str | Path,
    raw: str | Path | None = None,
    project: str | Path = PROJECT_DIR,
    push: bool = True,
    library: str | Path = config.PACKAGE_DIR,
    remote: Mapping[str, Any] | None = None,
) -> Path:
    """A fresh scratch repository ``root/repo`` (``root`` is wiped first) with the remote ``root/remote`` (or
    ``remote``, settings of :func:`aml.mlops.versioning.remote_settings`, e.g. a team's S3 bucket): the
    project's ``dvc.yaml`` and ``params.yaml`` committed, and the raw data (``raw``, default the SMS collection)
    tracked as ``data/raw/SMSSpamCollection`` (tag ``data-v1``, pushed unless ``push=False``). ``library`` is the
    ``aml`` package whose code the stage depends on (``${library}`` in ``dvc.yaml``; the stage's command always runs
    this one). Returns the repository's path."""
    root = Path(root).resolve()
    source = Path(raw) if raw is not None else datasets.fetch("sms_spam") / sms.FILENAME
    project = Path(project)
    if not source.is_file():
        raise FileNotFoundError(f"raw data not found: {source}")
    if not (project / "dvc.yaml").is_file():
        raise FileNotFoundError(f"{project} has no dvc.yaml")
    if root.exists():
        shutil.rmtree(root)
    remote = dict(remote) if remote is not None else versioning.remote_settings("local", root / "remote")
    repo = versioning.init_repo(root / "repo", remote)
    shutil.copy(project / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((project / "params.yaml").read_text()) if (project / "params.yaml").is_file() else {}
    params = {**(params or {}), "library": str(Path(library).resolve())}  # absolute: the repo is elsewhere
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    versioning.git(repo, "add", "dvc.yaml", "params.yaml")
    versioning.git(repo, "commit", "-q", "-m", "The profile stage (project/dvc.yaml)")
    (repo / RAW).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, repo / RAW)
    versioning.track(repo, [RAW], "Raw data v1", push=push, tag="data-v1")
    return repo


def reprofile(repo: str | Path, step: str = "", push: bool = True) -> StageRun:
    """``dvc repro profile`` in ``repo``, then commit ``dvc.lock`` (and ``dvc push`` the profile when it is new);
    returns what happened (:class:`StageRun`)."""
    repo = Path(repo)
    stages, output = versioning.repro(repo, STAGE)
    outcome = stages.get(STAGE)
    if outcome is None:
        raise RuntimeError(f"`dvc repro {STAGE}` did not report the stage:\n{output}")
    if versioning.git(repo, "status", "--porcelain", "--", "dvc.lock").strip():
        versioning.git(repo, "add", "dvc.lock")
        versioning.git(repo, "commit", "-q", "-m", f"Profile of the raw data ({outcome})")
        if push:
            versioning.dvc(repo, "push", "-q")
    lock = versioning.lock_hashes(repo, STAGE)
    hashes = versioning.hashes(repo, REPORTS)
    if hashes != {name: lock["outs"][name] for name in REPORTS}:
        raise RuntimeError(f"the profile files differ from what dvc.lock records: {hashes} vs {lock['outs']}")
    return StageRun(
        step=step or outcome,
        outcome=outcome,
        commit=versioning.head(repo),
        data_md5=lock["deps"][RAW],
        rows=json.loads((repo / REPORTS[0]).read_text())["rows"],
        profile_md5=hashes,
        mtime_ns={name: (repo / name).stat().st_mtime_ns for name in REPORTS},
        output=output,
    )


def append_messages(
    repo: str | Path, messages: Sequence[tuple[str, str]] = NEW_MESSAGES, note: str = "", push: bool = True
) -> str:
    """Append ``(label, text)`` lines to the raw file and track it as a new data version; returns the commit."""
    if not messages:
        raise ValueError("append_messages needs at least one (label, text) message")
    lines = []
    for label, text in messages:
        if "\t" in label or "\t" in text or "\n" in text or "\r" in text:
            raise ValueError(f"a message must not hold tabs or line breaks: {(label, text)!r}")
        lines.append(f"{label}\t{text}\n")
    path = Path(repo) / RAW
    data = path.read_text(encoding="utf-8")
    path.write_text(data + ("" if not data or data.endswith("\n") else "\n") + "".join(lines), encoding="utf-8")
    return versioning.track(repo, [RAW], note or f"Raw data: {len(lines)} messages appended", push=push)


def drop_messages(repo: str | Path, count: int, note: str = "", push: bool = True) -> str:
    """Drop the raw file's last ``count`` lines and track it as a new data version; returns the commit."""
    path = Path(repo) / RAW
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not 0 < count < len(lines):
        raise ValueError(f"can drop 1 to {len(lines) - 1} of the {len(lines)} lines, not {count}")
    path.write_text("".join(lines[:-count]), encoding="utf-8")
    return versioning.track(repo, [RAW], note or f"Raw data: last {count} messages dropped", push=push)


def restore_data(repo: str | Path, rev: str, note: str = "") -> str:
    """Bring the raw data of ``rev`` (a commit or tag) back as the current version: its ``.dvc`` pointer from git,
    the file from the DVC cache, committed; returns the commit."""
    versioning.git(repo, "checkout", rev, "--", f"{RAW}.dvc")
    versioning.dvc(repo, "checkout", "-q", "--force", RAW)
    versioning.git(repo, "add", f"{RAW}.dvc")
    versioning.git(repo, "commit", "-q", "-m", note or f"Raw data of {rev} restored")
    return versioning.head(repo)


def demo(
    root: str | Path | None = None, raw: str | Path | None = None, messages: Sequence[tuple[str, str]] = NEW_MESSAGES
) -> Demo:
    """Profiling upon change, end to end in a scratch repository under ``root`` (default
    ``<build>/project/profile-on-change``): four ``dvc repro`` runs of the profile stage.

    1. ``data v1``: the first run profiles the raw data (``ran``);
    2. ``v1 unchanged``: nothing changed, the stage is skipped and the files are untouched (``skipped``);
    3. ``v2``: ``messages`` appended, a new data version, re-profiled with more rows (``ran``);
    4. ``back to v1``: the first version restored; DVC's run cache has its profile (``restored``, same hash as 1).

    Every step is a commit; at the end ``dvc push --all-commits`` sends both data versions and both profiles to the
    local remote ``root/remote`` (once, not after each step: each ``dvc`` call costs a second). Returns a
    :class:`Demo` (:meth:`Demo.table` shows the steps side by side)."""
    root = Path(root) if root is not None else config.build_dir() / "project" / "profile-on-change"
    repo = init_repo(root, raw, push=False)
    runs = [reprofile(repo, "data v1", push=False)]
    runs.append(reprofile(repo, "v1 unchanged", push=False))
    append_messages(repo, messages, push=False)
    runs.append(reprofile(repo, f"v2: {len(messages)} messages appended", push=False))
    restore_data(repo, "data-v1")
    runs.append(reprofile(repo, "back to v1", push=False))
    versioning.dvc(repo, "push", "-q", "--all-commits")
    return Demo(repo=repo, runs=runs)
