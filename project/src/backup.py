"""Backup and restore of the project's stores: ``python -m src.backup backup DEST`` and ``python -m src.backup
restore BACKUP DEST``.

The stores are the ones the services use (:mod:`src.constructors`: ``AML_DATA_STORE``, ``MLFLOW_TRACKING_URI``,
``AML_MODEL_STORE`` or their defaults under ``store/``); the MLflow artifacts folder is the project experiment's
artifact location. The work, and why it is done so (SQLite's online backup, checksums, the artifact locations
rewritten on restore), is :mod:`aml.mlops.backup`'s. A restore writes ``DEST/data``, ``DEST/mlflow/mlflow.db``,
``DEST/mlflow/artifacts`` and ``DEST/models`` — the layout of ``store/``, so restoring into an empty ``store/``
needs no settings — and prints the settings that point the project at ``DEST``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aml.mlops import backup as _backup

from . import constructors, helpers


def artifacts_folder(db: Path) -> Path | None:
    """The project experiment's artifacts folder (its artifact location), else ``artifacts`` beside the database
    when that exists; ``None`` when there is neither."""
    found = _backup.experiment_artifacts(db, constructors.EXPERIMENT)
    if found is not None:
        return found
    beside = db.parent / "artifacts"
    return beside if beside.is_dir() else None


def backup(dest: str | Path) -> dict:
    """Back up the project's data store, MLflow store (database + artifacts) and model exports into the new folder
    ``dest``; returns a summary."""
    db = _backup.sqlite_path(constructors.tracking_uri())
    exports = constructors.model_exports()
    manifest = _backup.backup(
        constructors.data_store(), db, artifacts_folder(db), exports if exports.is_dir() else None, dest
    )
    return {"backup": str(Path(dest).resolve()), **_backup.summary(manifest)}


def restore(backup_folder: str | Path, dest: str | Path) -> dict:
    """Restore ``backup_folder`` into the new or empty folder ``dest``; returns a summary with the environment
    settings (``env``) that point the project at the restored stores."""
    manifest = _backup.restore(backup_folder, dest)
    restored = manifest.restored
    env = {"AML_DATA_STORE": restored["data_store"], "MLFLOW_TRACKING_URI": restored["tracking_uri"]}
    if restored["exports"]:
        env["AML_MODEL_STORE"] = restored["exports"]
    return {**_backup.summary(manifest), "env": env}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``backup DEST`` or ``restore BACKUP DEST``; prints a JSON summary, exit status 1 on refusal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("backup", help="back up the project's stores into a new folder")
    make.add_argument("dest", help="the backup folder to create")
    back = commands.add_parser("restore", help="restore a backup into a new or empty folder")
    back.add_argument("backup", help="the backup folder")
    back.add_argument("dest", help="the folder to restore into")
    args = parser.parse_args(argv)
    try:
        result = backup(args.dest) if args.command == "backup" else restore(args.backup, args.dest)
    except _backup.BackupError as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 1
    helpers.print_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
