"""Backup and restore (:mod:`aml.mlops.backup`) of real stores: a scratch MLflow store (SQLite + artifacts) with tiny
registered scikit-learn models, a data store with a few runs and an owner-only API token, and an exports folder.

The stores are built and backed up once per module. The restore test moves the source folder away first, so a
restored registry that still pointed at the old artifact locations could not load its models."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aml.mlops import backup as bk
from aml.mlops import tracking
from aml.mlops.datastore import DataStore

X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
Y = np.array([0, 0, 0, 1, 1, 1])
EXPERIMENT = "test-backup"


def log_and_register(C: float, name: str) -> str:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C).fit(X, Y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=tracking.model_requirements())
    return tracking.register(info.model_uri, name, model_type=f"lr-C{C:g}")


def registry_state(uri: str) -> dict:
    """Every registered model's versions with their tags, aliases and run ids, and the model's tags, via MLflow."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    state = {}
    for rm in client.search_registered_models():
        versions = {}
        for mv in client.search_model_versions(f"name = '{rm.name}'"):
            full = client.get_model_version(rm.name, mv.version)
            versions[str(full.version)] = {"tags": dict(full.tags), "aliases": sorted(full.aliases), "run": full.run_id}
        state[rm.name] = {"tags": dict(rm.tags), "versions": versions}
    return state


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_data_store(root: Path) -> DataStore:
    store = DataStore(root)
    for kind in ("raw", "split"):
        for i in range(2):
            run = store.new_run(kind)
            store.write_csv(store.run_path(kind, run, "data.csv"), pd.DataFrame({"text": [f"{kind} {i}"], "y": [i]}))
            store.write_lineage(kind, run, {"inputs": {}})
            store.set_latest(kind, run)
    secrets = root / ".secrets"
    secrets.mkdir(mode=0o700)
    fd = os.open(secrets / "api_token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("s3cret-token\n")
    return store


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """The stores to back up, under one folder: ``data/``, ``mlflow/`` (two registered models: ``toy-a`` versions 1
    and 2, the champion 1, and ``toy-b`` version 1 with a model tag) and ``exports/``."""
    import mlflow

    root = tmp_path_factory.mktemp("source")
    make_data_store(root / "data")
    (root / "exports" / "toy-a_1").mkdir(parents=True)
    (root / "exports" / "toy-a_1" / "meta.json").write_text('{"version": "1"}\n')
    uri = tracking.new_store(root / "mlflow")
    with tracking.using(uri, EXPERIMENT):
        assert [log_and_register(c, "toy-a") for c in (0.5, 2.0)] == ["1", "2"]
        assert log_and_register(1.0, "toy-b") == "1"
        client = mlflow.MlflowClient()
        client.set_registered_model_alias("toy-a", "champion", "1")
        client.set_model_version_tag("toy-a", "2", "threshold", "0.5")
        client.set_registered_model_tag("toy-b", "owner", "course")
        predictions = {
            (name, v): mlflow.sklearn.load_model(f"models:/{name}/{v}").predict_proba(X)
            for name, v in (("toy-a", "1"), ("toy-a", "2"), ("toy-b", "1"))
        }
    return {
        "root": root,
        "uri": uri,
        "db": root / "mlflow" / "mlflow.db",
        "artifacts": root / "mlflow" / "artifacts",
        "registry": registry_state(uri),
        "data_hashes": file_hashes(root / "data"),
        "predictions": predictions,
    }


@pytest.fixture(scope="module")
def made(source, tmp_path_factory) -> dict:
    """The module's backup of ``source``: ``{"path", "manifest"}``."""
    dest = tmp_path_factory.mktemp("backups") / "b1"
    root = source["root"]
    manifest = bk.backup(DataStore(root / "data"), source["uri"], source["artifacts"], root / "exports", dest)
    return {"path": dest, "manifest": manifest}


def damaged_copy(made, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(made["path"], copy)
    return copy


# -- backup ----------------------------------------------------------------------------------------------------------


def test_backup_lists_every_file_with_its_hash_mode_and_the_registry(source, made):
    path, manifest = made["path"], made["manifest"]
    assert json.loads((path / "manifest.json").read_text())["created_at"] == manifest.created_at
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest.files)
    for rel, entry in manifest.files.items():
        assert hashlib.sha256((path / rel).read_bytes()).hexdigest() == entry.sha256, rel
        assert (path / rel).stat().st_size == entry.size
    assert {f"data/{rel}": h for rel, h in source["data_hashes"].items()} == {
        rel: e.sha256 for rel, e in manifest.files.items() if rel.startswith("data/")
    }
    assert manifest.files["data/.secrets/api_token"].mode == 0o600
    assert stat.S_IMODE((path / "data/.secrets/api_token").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o700  # the backup holds a secret
    assert "exports/toy-a_1/meta.json" not in manifest.files and "models/toy-a_1/meta.json" in manifest.files
    assert any(rel.startswith("mlflow/artifacts/") and rel.endswith("MLmodel") for rel in manifest.files)
    toy_a = manifest.registered_models["toy-a"]
    assert sorted(toy_a["versions"]) == ["1", "2"] and toy_a["aliases"] == {"champion": "1"}
    assert toy_a["versions"]["2"]["tags"] == {"model_type": "lr-C2", "threshold": "0.5"}
    assert manifest.registered_models["toy-b"]["tags"] == {"owner": "course"}
    assert manifest.sources["artifacts"] == str(source["artifacts"].resolve())
    assert not list(path.parent.glob(".*partial*"))


def test_backup_refuses_an_existing_destination(source, made):
    with pytest.raises(bk.BackupError, match="exists"):
        bk.backup(source["root"] / "data", source["db"], source["artifacts"], None, made["path"])


def test_backup_refuses_models_whose_files_it_would_miss(source, tmp_path):
    dest = tmp_path / "b"
    with pytest.raises(bk.BackupError, match="outside the artifacts folder"):
        bk.backup(source["root"] / "data", source["db"], None, None, dest)
    assert not dest.exists() and list(tmp_path.iterdir()) == []  # no half-written backup left


@pytest.mark.parametrize(
    ("db", "message"), [("http://localhost:5000", "not a SQLite store"), ("nowhere/mlflow.db", "no SQLite database")]
)
def test_backup_refuses_a_missing_or_non_sqlite_store(source, tmp_path, db, message):
    with pytest.raises(bk.BackupError, match=message):
        bk.backup(source["root"] / "data", tmp_path / db if "://" not in db else db, None, None, tmp_path / "b")


def test_sqlite_uri_and_path_name_the_same_file(source):
    assert bk.sqlite_path(source["uri"]) == bk.sqlite_path(source["db"]) == source["db"].resolve()
    assert bk.experiment_artifacts(source["uri"], EXPERIMENT) == source["artifacts"].resolve()
    assert bk.experiment_artifacts(source["uri"], "no-such-experiment") is None


# -- restore ---------------------------------------------------------------------------------------------------------


def test_restore_into_an_empty_folder_serves_the_same_registry_and_data(source, made, tmp_path):
    """The source folder is moved away first: the restored registry must find its models in the new place."""
    import mlflow

    dest = tmp_path / "restored"
    dest.mkdir()  # an existing empty folder is accepted
    root, away = source["root"], source["root"].with_name(source["root"].name + "-away")
    root.rename(away)
    try:
        manifest = bk.restore(made["path"], dest)
        restored = manifest.restored
        assert restored["tracking_uri"] == f"sqlite:///{dest / 'mlflow' / 'mlflow.db'}"
        assert restored["leftover"] == [] and restored["integrity"] == "ok"
        assert set(restored["rewritten"]) >= {
            "experiments.artifact_location",
            "runs.artifact_uri",
            "logged_models.artifact_location",
            "model_versions.storage_location",
        }
        assert registry_state(restored["tracking_uri"]) == source["registry"]
        with tracking.using(restored["tracking_uri"], EXPERIMENT):
            for (name, version), expected in source["predictions"].items():
                model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
                np.testing.assert_allclose(model.predict_proba(X), expected)
            assert mlflow.get_experiment_by_name(EXPERIMENT).artifact_location == (dest / "mlflow/artifacts").as_uri()
    finally:
        away.rename(root)
    assert file_hashes(dest / "data") == source["data_hashes"]
    assert stat.S_IMODE((dest / "data/.secrets/api_token").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "data/.secrets").stat().st_mode) == 0o700
    assert DataStore(dest / "data").latest("split") == DataStore(root / "data").latest("split")
    assert (dest / "models/toy-a_1/meta.json").read_text() == '{"version": "1"}\n'


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda b: (b / "data/.secrets/api_token").write_text("s3cret-tokeX\n"), "data/.secrets/api_token: SHA-256"),
        (lambda b: (b / "mlflow/mlflow.db").open("ab").write(b"x"), "mlflow/mlflow.db: "),
        (lambda b: next((b / "mlflow/artifacts").rglob("MLmodel")).unlink(), "MLmodel: missing"),
        (lambda b: (b / "data/raw/stray.csv").write_text("x\n"), "data/raw/stray.csv: not in the manifest"),
    ],
    ids=["changed", "grown", "missing", "unlisted"],
)
def test_a_damaged_backup_is_refused_with_the_file_named_and_nothing_restored(made, tmp_path, damage, named):
    copy = damaged_copy(made, tmp_path)
    damage(copy)
    dest = tmp_path / "restored"
    with pytest.raises(bk.BackupError, match=named):
        bk.restore(copy, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no staging folder left behind


def test_restore_refuses_a_folder_that_is_not_empty(made, tmp_path):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    with pytest.raises(bk.BackupError, match="not an empty folder"):
        bk.restore(made["path"], dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_restore_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(bk.BackupError, match="no manifest.json"):
        bk.restore(tmp_path, tmp_path / "out")


# -- the online backup -----------------------------------------------------------------------------------------------


def test_online_backup_while_another_thread_writes_gives_a_consistent_copy(tmp_path):
    """An MLflow client logs metrics in a loop in another thread (one commit each) while the store is backed up; the
    copy passes ``PRAGMA integrity_check`` and holds a point in time between the writes seen before and after."""
    import mlflow

    uri = tracking.new_store(tmp_path / "live")
    with tracking.using(uri, EXPERIMENT):
        run_id = mlflow.start_run().info.run_id
        mlflow.end_run()
    client = mlflow.MlflowClient(tracking_uri=uri)
    written, stop, errors = [0], threading.Event(), []

    def write() -> None:
        try:
            while not stop.is_set():
                client.log_metric(run_id, "m", float(written[0]), step=written[0])
                written[0] += 1
        except Exception as exc:  # reported by the test below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while written[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        copy = tmp_path / "copy.db"
        before = written[0]
        bk.online_backup(bk.sqlite_path(uri), copy)
        after = written[0]
        deadline = time.monotonic() + 60
        while written[0] < after + 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer goes on after the backup
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert written[0] >= after + 20
    assert bk.integrity(copy) == "ok"
    with sqlite3.connect(copy) as db:
        (count,) = db.execute("SELECT count(*) FROM metrics WHERE run_uuid = ?", (run_id,)).fetchone()
    assert before <= count <= after + 1  # +1: a write committed but not yet counted when `after` was read


def test_online_backup_of_a_wal_database_holds_the_commits_a_file_copy_misses(tmp_path):
    """In WAL mode the newest commits live in ``-wal`` until a checkpoint: a copy of the main file lacks them, the
    online backup has them all and is a self-contained file (journal mode ``delete``)."""
    live = sqlite3.connect(tmp_path / "live.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("PRAGMA wal_autocheckpoint=0")  # keep every commit in the -wal file while the connection is open
    live.execute("CREATE TABLE t (x INTEGER)")
    for i in range(100):
        with live:
            live.execute("INSERT INTO t VALUES (?)", (i,))
    shutil.copyfile(tmp_path / "live.db", tmp_path / "file-copy.db")
    bk.online_backup(tmp_path / "live.db", tmp_path / "online.db")
    live.close()
    with sqlite3.connect(tmp_path / "file-copy.db") as copied:
        assert copied.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
    with sqlite3.connect(tmp_path / "online.db") as online:
        assert online.execute("SELECT count(*) FROM t").fetchone() == (100,)
        assert online.execute("PRAGMA journal_mode").fetchone() == ("delete",)


# -- command line ----------------------------------------------------------------------------------------------------


def test_command_line_backup_and_restore(source, tmp_path, capsys):
    root = source["root"]
    args = ["--data-store", str(root / "data"), "--mlflow-db", source["uri"], "--exports", str(root / "exports")]
    assert bk.main(["backup", *args, "--dest", str(tmp_path / "b")]) == 0  # artifacts: the folder beside the db
    made = json.loads(capsys.readouterr().out)
    assert made["registered_models"]["toy-a"] == {"versions": ["1", "2"], "aliases": {"champion": "1"}}
    assert made["sources"]["artifacts"] == str(source["artifacts"].resolve())
    assert bk.main(["restore", "--backup", str(tmp_path / "b"), "--dest", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out)["restored"]["leftover"] == []
    assert bk.main(["restore", "--backup", str(tmp_path / "b"), "--dest", str(tmp_path / "r")]) == 1
    assert "restore refused" in capsys.readouterr().err
