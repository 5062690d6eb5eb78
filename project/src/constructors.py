"""The project's parts, built from the environment: the data store, the model store (MLflow registry + joblib
exports) and the service.

=====================  ==================================================  ===========================================
part                   setting                                             default (git-ignored, inside project/)
=====================  ==================================================  ===========================================
data store             ``AML_DATA_STORE`` (a folder or a URL)               ``store/data``
model store            ``MLFLOW_TRACKING_URI`` (SQLite file or a server)    ``sqlite:///store/mlflow/mlflow.db``
joblib exports         ``AML_MODEL_STORE``                                  ``store/models``
=====================  ==================================================  ===========================================
"""

from __future__ import annotations

import os
from pathlib import Path

import helpers

from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.project import api, system

STORE = helpers.PROJECT / "store"
EXPERIMENT = "sms-spam-filter-project"
DOCKERFILE = helpers.PROJECT / "Dockerfile"


def data_store() -> DataStore:
    """The data store: ``AML_DATA_STORE``, else ``store/data``."""
    return DataStore.from_env(STORE / "data")


def model_exports() -> Path:
    """Where ``/train`` writes ``<model>_<version>/`` joblib exports: ``AML_MODEL_STORE``, else ``store/models``."""
    return Path(os.environ.get("AML_MODEL_STORE") or STORE / "models")


def tracking_uri() -> str:
    """The model store: ``MLFLOW_TRACKING_URI``, else the project's SQLite registry."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{STORE / 'mlflow' / 'mlflow.db'}"


def model_store() -> str:
    """Point MLflow at the model store (created on first use); returns its URI."""
    uri = tracking_uri()
    tracking.configure(uri, experiment=EXPERIMENT)
    return uri


def defaults() -> dict[str, dict]:
    """The stages' configuration files, with the train stage's file locations filled in."""
    configs = helpers.all_defaults()
    train = configs["train"]
    train["exports"] = train.get("exports") or str(model_exports())
    train["dockerfile"] = train.get("dockerfile") or (str(DOCKERFILE) if DOCKERFILE.is_file() else None)
    return configs


def stage_config(stage: str, overrides: dict | None = None):
    """The validated configuration of ``stage`` (files, then ``overrides``)."""
    return system.make_config(stage, defaults()[stage], overrides)


def build_app(store: DataStore | None = None, **options):
    """The service over the configured stores (``options`` go to :func:`aml.project.api.create_app`)."""
    model_store()
    store = store or data_store()
    configs = defaults()
    return api.create_app(store, configs, model_name=configs["train"]["registered_model"], **options)


__all__ = [
    "build_app",
    "data_store",
    "defaults",
    "model_exports",
    "model_store",
    "stage_config",
    "tracking_uri",
]
