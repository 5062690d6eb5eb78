"""Fixtures of the project's tests (``test/units.py``, ``test/integration.py``).

The tests import the same thin modules the service runs from the package ``src`` (``from src import prepare``;
pytest puts ``project/``, this file's folder, on the path as it does for every conftest outside a package). Each test gets its own stores — a data store folder, a migrated SQLite model
store, an export folder and an API token — through the same environment variables a deployment sets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TOKEN = "test-token-" + "x" * 20


@contextlib.contextmanager
def project_stores(root: Path) -> Iterator[dict[str, str]]:
    """Point the project at fresh stores under ``root`` (environment + MLflow) for the block; yields the settings."""
    from src import constructors

    from aml.devtools import testenv
    from aml.mlops import tracking

    env = testenv.project_environment(root, TOKEN)
    uri = env["MLFLOW_TRACKING_URI"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with tracking.using(uri, constructors.EXPERIMENT):
            yield env


@pytest.fixture
def stores(tmp_path) -> Iterator[dict[str, str]]:
    """Fresh, empty project stores for one test."""
    with project_stores(tmp_path) as env:
        yield env


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[dict]:
    """Stores in which the data stage ran and one model version was trained (and promoted), shared by a module."""
    from src import prepare, train

    root = tmp_path_factory.mktemp("project")
    with project_stores(root) as env:
        prepared = prepare.prepare()
        result = train.train()
        yield {"env": env, "root": root, "prepared": prepared, "train": result}


@pytest.fixture
def token() -> str:
    return os.environ.get("AML_API_TOKEN") or TOKEN
