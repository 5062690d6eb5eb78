"""The project's backup and restore end to end: stores in which the data stage ran and a model was trained and
promoted (``trained`` of ``project/conftest.py``), ``python -m src.backup backup DEST`` and ``restore BACKUP DEST``
as an operator runs them, then the service's model loader on the restored stores, with the originals moved away so
that nothing restored can lean on them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from src import constructors

from aml.mlops import tracking
from aml.project import system
from aml.spam import MODEL_NAME

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
TEXTS = ["WINNER!! Claim your free prize now, call 09061701461", "See you at lunch tomorrow?", "ok"]


def run_backup(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "src.backup", *args],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_backup_then_restore_serves_the_same_model_and_data(trained, tmp_path):
    env, root = trained["env"], trained["root"]
    served = system.load_serving_model(MODEL_NAME)
    expected = served.propensities(TEXTS)
    data_hashes = hashes(root / "data")

    made = run_backup("backup", str(tmp_path / "backup"), env=env)
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["registered_models"][MODEL_NAME]["aliases"] == {"champion": served.version}
    assert summary["sources"]["artifacts"] == str((root / "mlflow" / "artifacts").resolve())

    away = root.with_name(root.name + "-away")
    root.rename(away)
    try:
        done = run_backup("restore", str(tmp_path / "backup"), str(tmp_path / "restored"), env=env)
        assert done.returncode == 0, done.stderr
        restored = json.loads(done.stdout)
        assert restored["restored"]["leftover"] == []
        uri = restored["env"]["MLFLOW_TRACKING_URI"]
        with tracking.using(uri, constructors.EXPERIMENT):
            again = system.load_serving_model(MODEL_NAME)
        assert (again.version, again.served.source, again.served.fallback) == (served.version, "champion", False)
        assert again.threshold == served.threshold
        np.testing.assert_allclose(again.propensities(TEXTS), expected)
    finally:
        away.rename(root)
    assert hashes(Path(restored["env"]["AML_DATA_STORE"])) == data_hashes
    assert hashes(Path(restored["env"]["AML_MODEL_STORE"])) == hashes(root / "models")

    refused = run_backup("restore", str(tmp_path / "backup"), str(tmp_path / "restored"), env=env)
    assert refused.returncode == 1 and "not an empty folder" in refused.stderr
