"""The project's parts, built from the environment: the data store, the model store (MLflow registry + joblib
exports) and the service.

=====================  ==================================================  ===========================================
part                   setting                                             default (git-ignored, inside project/)
=====================  ==================================================  ===========================================
data store             ``AML_DATA_STORE`` (a folder or a URL)               ``store/data``
model store            ``MLFLOW_TRACKING_URI`` (SQLite file or a server)    ``sqlite:///store/mlflow/mlflow.db``
joblib exports         ``AML_MODEL_EXPORTS`` (a folder, or ``none``)        ``store/models``
=====================  ==================================================  ===========================================

At team scale (``README.md``, "Team scale") the data store is ``s3://<bucket>/data``, the model store an MLflow
server on PostgreSQL with its artifacts in the bucket, and ``AML_MODEL_EXPORTS=none``: the registry is the one model
store every replica shares, and a joblib copy on the disk of whichever replica ran ``/train`` would be found by no
other replica.
"""

from __future__ import annotations

import os
from pathlib import Path

from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.project import api, settings, system

from . import helpers

STORE = helpers.PROJECT / "store"
EXPERIMENT = "sms-spam-filter-project"
DOCKERFILE = helpers.PROJECT / "Dockerfile"


def data_store() -> DataStore:
    """The data store: ``AML_DATA_STORE``, else ``store/data``."""
    return DataStore.from_env(STORE / "data")


#: the value of ``AML_MODEL_EXPORTS`` that turns the joblib exports off (team scale: the registry is the model store)
NO_EXPORTS = settings.NO_EXPORTS


def model_exports() -> Path:
    """Where ``/train`` writes ``<model>_<version>/`` joblib exports: ``AML_MODEL_EXPORTS`` (formerly
    ``AML_MODEL_STORE``, still read when it is unset; :func:`aml.project.settings.exports_folder`), else
    ``store/models``."""
    folder = settings.exports_folder(STORE / "models")
    return folder if folder is not None else Path(NO_EXPORTS)


def exports_enabled() -> bool:
    """False when the exports are ``none``: ``/train`` then writes no joblib export."""
    return settings.exports_folder(STORE / "models") is not None


def tracking_uri() -> str:
    """The model store: ``MLFLOW_TRACKING_URI``, else the project's SQLite registry."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{STORE / 'mlflow' / 'mlflow.db'}"


def model_store() -> str:
    """Point MLflow at the model store (created on first use); returns its URI."""
    uri = tracking_uri()
    tracking.configure(uri, experiment=EXPERIMENT)
    return uri


def defaults() -> dict[str, dict]:
    """The stages' configuration files, with the train stage's file locations filled in
    (:meth:`aml.project.settings.ProjectSettings.from_environment`)."""
    read = settings.ProjectSettings.from_environment(helpers.PROJECT, config_dir=helpers.CONFIG_DIR)
    return {stage: dict(values) for stage, values in read.stages.items()}


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
    "exports_enabled",
    "model_exports",
    "model_store",
    "stage_config",
    "tracking_uri",
]
