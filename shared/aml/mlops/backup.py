"""Backup and restore of an ML system's stores: the data store, the MLflow store (SQLite + artifacts) and the model
exports, as one verifiable folder.

Why a module of its own rather than ``cp -r``:

- A live SQLite file cannot be copied safely: a copy taken while MLflow commits can hold half a transaction (and in
  WAL mode the newest commits are not in the main file at all). :func:`backup` copies the database with SQLite's
  *online backup API* (:meth:`sqlite3.Connection.backup`, in one step, so the copy is one consistent snapshot; a
  writer waits the few milliseconds it takes) and runs ``PRAGMA integrity_check`` on the copy.
- MLflow stores *absolute* artifact locations (``file://<the backed-up root>/artifacts/...``) in its database. A
  copy restored into another folder would list models whose files it looks for in the old place — gone after a
  disaster. :func:`restore` rewrites every text value of every table that starts with the old artifacts root to the
  new one (generic over the schema, so the trace tags and any column a later MLflow adds are covered; in MLflow 3.17 the
  values are ``experiments.artifact_location``, ``runs.artifact_uri``, ``logged_models.artifact_location`` and
  ``model_versions.storage_location``) and reports which columns still mention the old root, if any. Files are
  never rewritten, so the restored files have the backed-up hashes (a model's ``MLmodel`` keeps its informational
  ``artifact_path``; loading does not use it).
- A backup nobody can check is a hope. ``manifest.json`` lists every file with its SHA-256, size and mode (the
  API token under ``.secrets/`` stays 0600), the sources, and the registered models, versions, aliases and tags at
  backup time; :func:`restore` verifies every file before it writes anything, refuses a backup with a corrupt,
  missing or unlisted file (naming it) and refuses a destination that is not empty.

Format: a folder, not a ``.tar.gz``: each file can be checked in place against the manifest without unpacking,
restore verifies everything before writing a byte, and the folder can be shipped incrementally (rsync, an object
store sync); tar it for a single-file copy. The folder is written under a temporary name and renamed when complete,
with mode 0700 (it holds a secret). Layout (also that of a restored destination)::

    manifest.json
    data/                 the data store, every file (hidden ones included)
    mlflow/mlflow.db      the SQLite store (online backup)
    mlflow/artifacts/     the artifacts folder
    models/               the model exports

Command line: ``python -m aml.mlops.backup backup --data-store DIR --mlflow-db DB --artifacts DIR --exports DIR
--dest DIR`` and ``python -m aml.mlops.backup restore --backup DIR --dest DIR``. Nothing here knows the spam filter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from aml.mlops.datastore import DataStore

MANIFEST = "manifest.json"
FORMAT = 1
DATA, MLFLOW, DB_NAME, ARTIFACTS, EXPORTS = "data", "mlflow", "mlflow.db", "mlflow/artifacts", "models"
_BLOCK = 1 << 20
_TMP_PREFIX = ".aml-tmp-"  # the data store's temporary files of writes in progress (see aml.mlops.datastore)


class BackupError(Exception):
    """A backup that cannot be made, or a backup (or destination) that restore refuses; the message names why."""


@dataclass
class FileEntry:
    """One file of a backup: its SHA-256, size in bytes and permission bits (``0o600``)."""

    sha256: str
    size: int
    mode: int


@dataclass
class Manifest:
    """``manifest.json`` of a backup. ``files`` and ``dirs`` are keyed by POSIX paths relative to the backup folder;
    ``sources`` holds the backed-up locations (``artifacts`` is the root that :func:`restore` rewrites);
    ``registered_models`` is ``{name: {"tags", "aliases": {alias: version}, "versions": {version: {"run_id",
    "status", "tags"}}}}`` at backup time; ``restored`` is filled by :func:`restore` (destination, tracking URI,
    rewritten columns)."""

    created_at: str
    sources: dict[str, str | None]
    files: dict[str, FileEntry] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)
    registered_models: dict[str, dict] = field(default_factory=dict)
    external_locations: list[str] = field(default_factory=list)
    format: int = FORMAT
    restored: dict | None = None

    def to_json(self) -> str:
        """The manifest as ``manifest.json`` holds it (file modes in octal; the ``restored`` record left out)."""
        data = asdict(self)
        data.pop("restored")
        data["files"] = {k: {**v, "mode": f"{v['mode']:04o}"} for k, v in data["files"].items()}
        data["dirs"] = {k: f"{v:04o}" for k, v in data["dirs"].items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Read a ``manifest.json``; :class:`BackupError` for a format this code does not know."""
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise BackupError(f"unknown backup format {data.get('format')!r} (this code reads format {FORMAT})")
        files = {k: FileEntry(v["sha256"], int(v["size"]), int(v["mode"], 8)) for k, v in data["files"].items()}
        dirs = {k: int(v, 8) for k, v in data["dirs"].items()}
        return cls(
            created_at=data["created_at"],
            sources=data["sources"],
            files=files,
            dirs=dirs,
            registered_models=data["registered_models"],
            external_locations=data["external_locations"],
            format=data["format"],
        )

    @classmethod
    def read(cls, backup: str | Path) -> Manifest:
        """The manifest of the backup folder ``backup``."""
        path = Path(backup) / MANIFEST
        if not path.is_file():
            raise BackupError(f"{backup} is not a backup: no {MANIFEST} in it")
        try:
            return cls.from_json(path.read_text())
        except (KeyError, ValueError, TypeError) as exc:
            raise BackupError(f"{path} is not a valid backup manifest: {exc!r}") from None


# -- helpers ---------------------------------------------------------------------------------------------------------


def sqlite_path(db: str | Path) -> Path:
    """The SQLite file of ``db``: a path or a ``sqlite:///`` URI (``sqlite:////abs/path``, as
    :func:`aml.mlops.tracking.tracking_uri` writes it). Other URIs (a tracking server, PostgreSQL) are refused."""
    text = os.fspath(db)
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
    elif "://" in text:
        raise BackupError(f"{text!r} is not a SQLite store: back up a server's database with its own tools")
    return Path(text).expanduser().resolve()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _copy_hashed(src: Path, dst: Path) -> FileEntry:
    """Copy ``src`` to ``dst`` (permission bits kept), hashing the bytes written, so the manifest describes exactly
    the copy even when ``src`` is replaced meanwhile (the data store renames new versions over old ones)."""
    digest, size = hashlib.sha256(), 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode)
        while block := fin.read(_BLOCK):
            digest.update(block)
            fout.write(block)
            size += len(block)
    os.chmod(dst, mode)
    return FileEntry(digest.hexdigest(), size, mode)


def _hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _walk(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """``(relative POSIX path, path, is_dir)`` of everything under ``root``, sorted, hidden files included; the data
    store's temporary files are skipped and symlinks refused (a backup copies data, not pointers elsewhere)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(folder)
        for name in sorted(dirs) + sorted(files):
            path = base / name
            if name.startswith(_TMP_PREFIX):
                continue
            if path.is_symlink():
                raise BackupError(f"{path} is a symbolic link: a backup copies files, not links")
            yield path.relative_to(root).as_posix(), path, name in dirs


def _copy_tree(src: Path, dst: Path, prefix: str, manifest: Manifest, first: dict[str, bytes] | None = None) -> None:
    """Copy the folder ``src`` into ``dst`` (``prefix/...`` in the manifest); ``first`` holds file contents read
    before the walk (the data store's ``latest`` pointers), written as read."""
    if not src.is_dir():
        raise BackupError(f"{src} is not a folder")
    dst.mkdir(parents=True, exist_ok=True)
    manifest.dirs[prefix] = _mode(src)
    for rel, path, is_dir in _walk(src):
        key = f"{prefix}/{rel}"
        if is_dir:
            (dst / rel).mkdir(parents=True, exist_ok=True)
            manifest.dirs[key] = _mode(path)
        elif first is not None and rel in first:
            target = dst / rel
            target.write_bytes(first[rel])
            os.chmod(target, _mode(path))
            manifest.files[key] = FileEntry(hashlib.sha256(first[rel]).hexdigest(), len(first[rel]), _mode(path))
        else:
            manifest.files[key] = _copy_hashed(path, dst / rel)


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection to an existing SQLite file (never creates one), waiting up to 60 s for a writer's lock."""
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    mode = "ro" if readonly else "rw"
    return sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, timeout=60)


def online_backup(src: Path, dst: Path) -> None:
    """Copy the live SQLite database ``src`` to ``dst`` with the online backup API, in one step (one consistent
    snapshot: the source is read-locked for the copy, milliseconds per MiB, and a writer waits on its busy timeout;
    a stepwise copy would restart on every commit of another connection and may never finish under load). The
    copy must pass ``PRAGMA integrity_check``."""
    source = _connect(src)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # pages=-1: all at once
            target.execute("PRAGMA journal_mode=DELETE")  # a self-contained file even when the source uses WAL
        finally:
            target.close()
    finally:
        source.close()
    check = integrity(dst)
    if check != "ok":
        raise BackupError(f"the backup copy of {src} fails PRAGMA integrity_check: {check}")


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of the SQLite file ``db``: ``"ok"`` or SQLite's list of problems."""
    connection = _connect(db, readonly=True)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return "; ".join(str(r[0]) for r in rows)


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def registered_models(db: Path) -> dict[str, dict]:
    """The registry in the SQLite store ``db``, read with SQL (no MLflow import; the registry tables have kept these
    columns since MLflow 1.x): ``{name: {"tags", "aliases", "versions": {version: {"run_id", "status", "tags"}}}}``."""
    connection = _connect(db, readonly=True)
    try:
        tables = set(_tables(connection))
        if "registered_models" not in tables:
            return {}
        models: dict[str, dict] = {
            name: {"tags": {}, "aliases": {}, "versions": {}}
            for (name,) in connection.execute("SELECT name FROM registered_models ORDER BY name")
        }
        for name, version, run_id, status in connection.execute(
            "SELECT name, version, run_id, status FROM model_versions ORDER BY name, version"
        ):
            models[name]["versions"][str(version)] = {"run_id": run_id, "status": status, "tags": {}}
        for name, version, key, value in connection.execute(
            "SELECT name, version, key, value FROM model_version_tags ORDER BY name, version, key"
        ):
            models[name]["versions"][str(version)]["tags"][key] = value
        for name, key, value in connection.execute("SELECT name, key, value FROM registered_model_tags ORDER BY key"):
            models[name]["tags"][key] = value
        for name, alias, version in connection.execute(
            "SELECT name, alias, version FROM registered_model_aliases ORDER BY alias"
        ):
            models[name]["aliases"][alias] = str(version)
        return models
    finally:
        connection.close()


def experiment_artifacts(db: str | Path, experiment: str) -> Path | None:
    """The local artifacts folder of ``experiment`` in the SQLite store ``db`` (``None`` when the experiment does not
    exist or keeps its artifacts elsewhere than in a local folder)."""
    connection = _connect(sqlite_path(db), readonly=True)
    try:
        row = connection.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchone()
    finally:
        connection.close()
    return _local(row[0]) if row and row[0] else None


def _local(location: str) -> Path | None:
    """The local path of an artifact location (``file://`` URI or plain path), ``None`` for a remote one."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" in location or location.startswith("mlflow-artifacts:"):
        return None
    return Path(location)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _stored_locations(db: Path) -> tuple[list[str], list[str]]:
    """``(locations that hold files: runs, logged models, model versions; experiments' default locations)``."""
    connection = _connect(db, readonly=True)
    try:
        tables = set(_tables(connection))
        found: list[str] = []
        for table, column in (
            ("runs", "artifact_uri"),
            ("logged_models", "artifact_location"),
            ("model_versions", "storage_location"),
        ):
            if table in tables:
                found += [r[0] for r in connection.execute(f'SELECT "{column}" FROM "{table}"') if r[0]]
        experiments = [r[0] for r in connection.execute("SELECT artifact_location FROM experiments") if r[0]]
        return found, experiments
    finally:
        connection.close()


# -- backup ----------------------------------------------------------------------------------------------------------


def _existing_folder(path: Path | str | None, what: str) -> Path | None:
    if path is None:
        return None
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise BackupError(f"the {what} folder {folder} does not exist")
    return folder


def backup(
    data_store: DataStore | str | Path,
    mlflow_db: Path | str,
    artifacts: Path | str | None,
    exports: Path | str | None,
    dest: Path | str,
) -> Manifest:
    """Back up the data store (a local folder), the SQLite MLflow store ``mlflow_db`` (a path or ``sqlite:///`` URI),
    its ``artifacts`` folder and the model ``exports`` folder (either may be ``None``) into the new folder ``dest``;
    returns the manifest written there.

    Refused (:class:`BackupError`, nothing left behind): an existing ``dest``, a remote data store, a missing
    folder, a symlink in the data store, and runs or model versions whose files lie in a local folder outside
    ``artifacts`` (the backup would hold models it cannot restore). Locations outside ``artifacts`` that hold no
    files (an unused experiment's default) or that are remote (``s3://``) are listed in ``external_locations``.
    """
    store = data_store if isinstance(data_store, DataStore) else DataStore(data_store)
    if store.root is None:
        raise BackupError(f"{store.url} is not a local folder: back up an object store with its own versioning")
    data_root = _existing_folder(store.root, "data store")
    db = sqlite_path(mlflow_db)
    if not db.is_file():
        raise BackupError(f"no SQLite database at {db}")
    artifacts_root = _existing_folder(artifacts, "artifacts")
    exports_root = _existing_folder(exports, "exports")
    dest = Path(dest).expanduser().resolve()
    if dest.exists():
        raise BackupError(f"{dest} exists: a backup goes into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)

    manifest = Manifest(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sources={
            "data_store": str(data_root),
            "mlflow_db": str(db),
            "artifacts": str(artifacts_root) if artifacts_root else None,
            "exports": str(exports_root) if exports_root else None,
        },
    )
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))  # mode 0700
    try:
        # the `latest` pointers first, then the walk: every run a pointer names was complete before it was read,
        # so it is in the walk (a run written during the backup is copied or not, but never pointed at half-way)
        pointers = {
            p.relative_to(data_root).as_posix(): p.read_bytes() for p in data_root.glob("*/latest") if p.is_file()
        }
        _copy_tree(data_root, work / DATA, DATA, manifest, first=pointers)
        (work / MLFLOW).mkdir(mode=0o700)
        online_backup(db, work / MLFLOW / DB_NAME)
        manifest.files[f"{MLFLOW}/{DB_NAME}"] = FileEntry(*_hash(work / MLFLOW / DB_NAME), _mode(db))
        os.chmod(work / MLFLOW / DB_NAME, _mode(db))
        stored, experiments = _stored_locations(work / MLFLOW / DB_NAME)
        outside = []
        for location in sorted(set(stored) | set(experiments)):
            path = _local(location)
            if path is not None and artifacts_root is not None and _within(path.resolve(), artifacts_root):
                continue
            if path is not None and location in stored:
                outside.append(location)
            else:
                manifest.external_locations.append(location)
        if outside:
            shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
            raise BackupError(
                f"{len(outside)} stored artifact location(s) of {db} lie outside the artifacts folder "
                f"{artifacts_root}: {shown}; pass the folder that holds them"
            )
        if artifacts_root is not None:
            _copy_tree(artifacts_root, work / ARTIFACTS, ARTIFACTS, manifest)
        if exports_root is not None:
            _copy_tree(exports_root, work / EXPORTS, EXPORTS, manifest)
        manifest.registered_models = registered_models(work / MLFLOW / DB_NAME)
        (work / MANIFEST).write_text(manifest.to_json())
        os.chmod(work / MANIFEST, 0o600)
        os.rename(work, dest)  # the complete backup appears at once
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


# -- restore ---------------------------------------------------------------------------------------------------------


def verify(backup: str | Path) -> Manifest:
    """Check every file of the backup folder against its manifest (present, size, SHA-256) and that it holds no file
    the manifest does not list; returns the manifest or raises :class:`BackupError` naming every bad file."""
    folder = Path(backup).expanduser().resolve()
    manifest = Manifest.read(folder)
    problems = []
    for rel, entry in sorted(manifest.files.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        digest, size = _hash(path)
        if size != entry.size:
            problems.append(f"{rel}: {size} bytes, the manifest says {entry.size}")
        elif digest != entry.sha256:
            problems.append(f"{rel}: SHA-256 {digest[:12]}..., the manifest says {entry.sha256[:12]}...")
    listed = set(manifest.files) | set(manifest.dirs) | {MANIFEST, MLFLOW}
    problems += [f"{rel}: not in the manifest" for rel, _, _ in _walk(folder) if rel not in listed]
    if problems:
        raise BackupError(f"backup {folder} is damaged, nothing restored: " + "; ".join(problems))
    return manifest


def _rewrite_forms(old: Path, new: Path) -> list[tuple[str, str]]:
    """The spellings of the artifacts root in MLflow's tables (``file:///a%20b``, ``file:///a b``, ``file:/a b``,
    ``/a b``), each paired with the same spelling of the new root, longest first."""
    pairs = {
        old.as_uri(): new.as_uri(),
        f"file://{old}": f"file://{new}",
        f"file:{old}": f"file:{new}",
        str(old): str(new),
    }
    return sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)


def rewrite_locations(db: Path, old: Path, new: Path) -> tuple[dict[str, int], list[str]]:
    """Rewrite, in every text column of every table of the SQLite store ``db``, values that are the artifacts root
    ``old`` or start with ``old/`` (in any of its spellings) to the same spelling of ``new``. Returns ``({"table.column":
    rows rewritten}, ["table.column", ...] still mentioning ``old`` anywhere in a value)``."""
    rewritten: dict[str, int] = {}
    connection = _connect(db)
    try:
        with connection:
            for table in _tables(connection):
                columns = [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")')]
                for column in columns:
                    for before, after in _rewrite_forms(old, new):
                        cursor = connection.execute(
                            f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                            f'WHERE typeof("{column}") = \'text\' AND substr("{column}", 1, ?) = ? '
                            f'AND (length("{column}") = ? OR substr("{column}", ?, 1) = \'/\')',
                            (after, len(before) + 1, len(before), before, len(before), len(before) + 1),
                        )
                        if cursor.rowcount > 0:
                            key = f"{table}.{column}"
                            rewritten[key] = rewritten.get(key, 0) + cursor.rowcount
        leftover = []
        for table in _tables(connection):
            for column in [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")')]:
                hit = connection.execute(
                    f'SELECT 1 FROM "{table}" WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0 LIMIT 1',
                    (str(old),),
                ).fetchone()
                if hit:
                    leftover.append(f"{table}.{column}")
    finally:
        connection.close()
    return rewritten, leftover


def restore(backup: str | Path, dest_root: str | Path) -> Manifest:
    """Restore the backup folder ``backup`` into ``dest_root`` (a new or empty folder) with the backup's layout
    (``data/``, ``mlflow/mlflow.db``, ``mlflow/artifacts/``, ``models/``), modes kept, and rewrite the MLflow store's
    artifact locations from the backed-up artifacts root to ``dest_root/mlflow/artifacts``.

    Every file is verified first (:func:`verify`): a damaged backup or a non-empty destination is refused and
    nothing is written. The restore is staged beside ``dest_root`` and renamed into place. Returns the manifest with
    ``restored`` = ``{"dest", "tracking_uri", "data_store", "exports", "rewritten", "leftover", "integrity"}``."""
    source = Path(backup).expanduser().resolve()
    dest = Path(dest_root).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} is not an empty folder: restore writes only into a new or empty one")
    manifest = verify(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.restoring-", dir=dest.parent))
    try:
        for rel in sorted(manifest.dirs):
            (work / rel).mkdir(parents=True, exist_ok=True)
        (work / MLFLOW).mkdir(exist_ok=True)
        for rel, entry in sorted(manifest.files.items()):
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, target)
            os.chmod(target, entry.mode)
        db = work / MLFLOW / DB_NAME
        old_root = manifest.sources.get("artifacts")
        rewritten, leftover = {}, []
        if old_root:
            rewritten, leftover = rewrite_locations(db, Path(old_root), dest / ARTIFACTS)
        check = integrity(db)
        if check != "ok":
            raise BackupError(f"the restored {db.name} fails PRAGMA integrity_check: {check}")
        for rel, mode in sorted(manifest.dirs.items(), key=lambda item: -item[0].count("/")):  # deepest first
            os.chmod(work / rel, mode)
        if dest.exists():
            dest.rmdir()  # empty (checked above); the rename needs the name free
        os.rename(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest.restored = {
        "dest": str(dest),
        "data_store": str(dest / DATA),
        "tracking_uri": f"sqlite:///{dest / MLFLOW / DB_NAME}",
        "artifacts": str(dest / ARTIFACTS),
        "exports": str(dest / EXPORTS) if EXPORTS in manifest.dirs else None,
        "rewritten": rewritten,
        "leftover": leftover,
        "integrity": check,
    }
    return manifest


# -- command line ----------------------------------------------------------------------------------------------------


def summary(manifest: Manifest) -> dict:
    """A short JSON-able account of a backup or restore (no per-file list)."""
    return {
        "created_at": manifest.created_at,
        "sources": manifest.sources,
        "files": len(manifest.files),
        "bytes": sum(e.size for e in manifest.files.values()),
        "registered_models": {
            name: {"versions": sorted(m["versions"], key=int), "aliases": m["aliases"]}
            for name, m in manifest.registered_models.items()
        },
        "external_locations": manifest.external_locations,
        **({"restored": manifest.restored} if manifest.restored else {}),
    }


def main(argv: list[str] | None = None) -> int:
    """``backup`` / ``restore`` from the command line; prints a JSON summary, exit status 1 with the reason on
    refusal."""
    parser = argparse.ArgumentParser(prog="python -m aml.mlops.backup", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("backup", help="back up the stores into a new folder")
    make.add_argument("--data-store", required=True, help="the data store folder")
    make.add_argument("--mlflow-db", required=True, help="the MLflow SQLite file or sqlite:/// URI")
    make.add_argument("--artifacts", help="the MLflow artifacts folder (default: 'artifacts' beside the database)")
    make.add_argument("--exports", help="the model exports folder (default: none)")
    make.add_argument("--dest", required=True, help="the backup folder to create")
    back = commands.add_parser("restore", help="restore a backup into a new or empty folder")
    back.add_argument("--backup", required=True, help="the backup folder")
    back.add_argument("--dest", required=True, help="the folder to restore into")
    args = parser.parse_args(argv)
    try:
        if args.command == "backup":
            artifacts = args.artifacts
            if artifacts is None and (sqlite_path(args.mlflow_db).parent / "artifacts").is_dir():
                artifacts = sqlite_path(args.mlflow_db).parent / "artifacts"
            manifest = backup(args.data_store, args.mlflow_db, artifacts, args.exports, args.dest)
        else:
            manifest = restore(args.backup, args.dest)
    except BackupError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary(manifest), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
