"""Experiment tracking and the model registry with MLflow (SQLite backend store + artifact folder).

- :func:`tracking_uri`: ``MLFLOW_TRACKING_URI`` when set (a team server works unchanged), else
  ``sqlite:///<repo>/mlflow/mlflow.db`` with artifacts in ``<repo>/mlflow/artifacts`` (git-ignored).
  Open the UI on it: ``mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db`` from the repository root.
- :func:`tracked`: the decorator that turns the library's :func:`train` into a tracked run: parameters, metrics
  (AUCPR first), the precision-recall plot, the data version (DVC MD5 of the training split) and the code version
  (git commit) as tags, and the model with its signature and an input example, registered in the model registry.
- registry helpers: :func:`set_champion` (aliases; registry stages are deprecated), :func:`registered_aucpr`,
  :func:`load_champion`.
- :func:`new_store` / :func:`scratch_uri`: throwaway SQLite stores for tests and demos, each a copy of one store
  migrated once per process (migrating a new SQLite store takes seconds; copying the file takes milliseconds, and a
  store per test avoids SQLite's "database is locked" between parallel processes).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aml import config, evaluation, spam_filter
from aml.versioning import md5

REGISTERED_MODEL = spam_filter.MODEL_NAME
EXPERIMENT = "sms-spam"
CHAMPION = "champion"


def store_dir() -> Path:
    return config.REPO_ROOT / "mlflow"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the workspace's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_dir() / 'mlflow.db'}"


def configure(uri: str | None = None, experiment: str = EXPERIMENT, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at ``uri`` (default :func:`tracking_uri`) and select ``experiment`` (created with an artifact
    folder beside the SQLite file when it does not exist). Returns the experiment id."""
    import mlflow

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_root = artifact_root or db.parent / "artifacts"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = Path(artifact_root).resolve().as_uri() if artifact_root else None
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")


@contextlib.contextmanager
def using(uri: str, experiment: str = EXPERIMENT, artifact_root: str | Path | None = None) -> Iterator[str]:
    """:func:`configure` for the duration of a ``with`` block, then put everything back (yields the experiment id).

    MLflow's ``set_tracking_uri``/``set_registry_uri``/``set_experiment`` also write ``MLFLOW_TRACKING_URI`` etc.
    into ``os.environ`` (for subprocesses), and ``set_tracking_uri(None)`` *deletes* the variable: without this, a
    test pointing MLflow at a temporary store would leave the rest of the process (and every notebook kernel it
    starts later) on that store, or on none.
    """
    import mlflow

    saved = {key: os.environ.get(key) for key in _MLFLOW_ENV}
    try:
        yield configure(uri, experiment, artifact_root)
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        mlflow.tracking.fluent._active_experiment_id = None  # no public way to forget the active experiment
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def code_version(repo: str | Path | None = None) -> str:
    """The git commit of the workspace (``+dirty`` when the work tree has changes), or ``unknown``."""
    repo = repo or config.REPO_ROOT
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


#: what a logged model needs to be loaded and scored: scikit-learn and its numeric stack, and skops (the format
#: MLflow saves scikit-learn models in)
MODEL_PACKAGES = ("scikit-learn", "scipy", "numpy", "skops")


@functools.cache
def model_requirements(packages: tuple[str, ...] = MODEL_PACKAGES) -> list[str]:
    """``package==version`` of each package as installed here: the pip requirements logged with each model.

    Given explicitly instead of letting MLflow infer them: inference loads the model in a subprocess and records
    every module it imports (about 6 s per model here, and, since loading imports the ``aml`` package, it lists
    torch, pytest and rich for a TF-IDF model). The TF-IDF benchmarks need only these packages.
    """
    if isinstance(packages, str):
        raise TypeError(f"packages must be a tuple of distribution names, not the string {packages!r}")
    pinned = []
    for package in packages:
        try:
            pinned.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(f"{package!r} is not installed: a logged model cannot require it") from None
    return pinned


def _own_types(model) -> list[str]:
    """Types skops does not trust by default in a model *we just trained* (e.g. the trees of a random forest).

    MLflow saves scikit-learn models with skops, which refuses types that a malicious file could abuse; for a model
    fitted in this process the source is trusted, so exactly the types it contains are listed."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


@dataclass
class TrainOutcome:
    """What :func:`train` returns (and :func:`tracked` logs)."""

    name: str
    model: Any
    threshold: float
    metrics: dict  # validation metrics at the threshold, AUCPR first
    params: dict = field(default_factory=dict)
    figure: Any = None
    run_id: str | None = None
    version: str | None = None  # registered model version


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def tracked(registered_model: str | None = REGISTERED_MODEL, data_file: str = "train.csv"):
    """Decorate ``fn(name, estimator, splits, *, data_dir=None, **kw) -> TrainOutcome`` so that each call is one
    MLflow run in the current experiment: params, metrics, PR-curve artifact, data/code version tags, the model
    (signature + input example) registered as a new version of ``registered_model``."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(name, estimator, splits, *args, data_dir=None, **kwargs):
            # `import mlflow` alone, never beside other imports: ruff classes `mlflow` as first-party while the store
            # folder <repo>/mlflow exists, so a mixed import block would sort differently from run to run
            import mlflow

            with mlflow.start_run(run_name=name) as run:
                outcome: TrainOutcome = fn(name, estimator, splits, *args, **kwargs)
                if not isinstance(outcome, TrainOutcome):
                    raise TypeError(
                        f"{fn.__name__} returned {type(outcome).__name__}: a @tracked function must "
                        "return a TrainOutcome"
                    )
                mlflow.log_params({"model": name, **outcome.params})
                mlflow.log_metrics({k: float(v) for k, v in outcome.metrics.items() if np.isscalar(v)})
                tags = {"code_version": code_version(), "model_type": name}
                if data_dir is not None:
                    tags["data_version"] = md5(Path(data_dir) / data_file)
                    tags["data_file"] = data_file
                mlflow.set_tags(tags)
                if outcome.figure is not None:
                    mlflow.log_figure(outcome.figure, "precision_recall.png")
                    _close(outcome.figure)
                # a 1-d array of strings: what the pipeline takes (a list would become a one-column DataFrame)
                example = np.array(splits["train"]["text"].head(3).tolist(), dtype=object)
                signature = mlflow.models.infer_signature(example, outcome.model.predict_proba(example))
                info = mlflow.sklearn.log_model(
                    outcome.model,
                    name="model",
                    signature=signature,
                    input_example=example,
                    registered_model_name=registered_model,
                    pyfunc_predict_fn="predict_proba",
                    pip_requirements=model_requirements(),
                    skops_trusted_types=_own_types(outcome.model),
                )
                outcome.run_id = run.info.run_id
                outcome.version = str(info.registered_model_version) if registered_model else None
                if outcome.version:
                    mlflow.MlflowClient().set_model_version_tag(registered_model, outcome.version, "model_type", name)
            return outcome

        return wrapper

    return decorate


@tracked()
def train(
    name: str, estimator, splits: dict[str, pd.DataFrame], min_precision: float = evaluation.MIN_PRECISION
) -> TrainOutcome:
    """Fit ``estimator`` on train, choose the threshold on validation, evaluate on validation (tracked run)."""
    import matplotlib.pyplot as plt

    model = evaluation.fit(estimator, splits["train"])
    p_val = evaluation.score(model, splits["validation"])
    threshold = evaluation.choose_threshold(splits["validation"]["y"], p_val, min_precision)
    m = evaluation.evaluate(splits["validation"]["y"], p_val, threshold)
    fig, ax = plt.subplots(figsize=(5, 4))
    evaluation.plot_pr_curves(
        splits["validation"]["y"], {name: p_val}, {name: threshold}, ax=ax, title=f"{name} (validation)"
    )
    params = {k: v for k, v in estimator.get_params().items() if np.isscalar(v) and "__" in k and k.startswith("clf")}
    metrics = {
        "aucpr": m["aucpr"],
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "threshold": threshold,
    }
    return TrainOutcome(name, model, threshold, metrics, {"min_precision": min_precision, **params}, fig)


def set_champion(versions: dict[str, float], registered_model: str = REGISTERED_MODEL) -> str:
    """Give the alias ``champion`` to the version with the highest AUCPR (``{version: aucpr}``); returns it."""
    import mlflow

    if not versions:
        raise ValueError("set_champion needs at least one {version: aucpr} entry")
    best = max(versions, key=versions.get)
    mlflow.MlflowClient().set_registered_model_alias(registered_model, CHAMPION, best)
    return best


def registered_aucpr(versions: list[str] | None = None, registered_model: str = REGISTERED_MODEL) -> pd.DataFrame:
    """Read back from the tracking server, for each registered version: its model type, AUCPR, aliases."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.search_model_versions(f"name = '{registered_model}'")
    rows = []
    for mv in found:
        if versions is not None and str(mv.version) not in versions:
            continue
        mv = client.get_model_version(registered_model, mv.version)  # search results carry no aliases
        run = client.get_run(mv.run_id)
        rows.append(
            {
                "version": int(mv.version),
                "model_type": mv.tags.get("model_type"),
                "aucpr": run.data.metrics.get("aucpr"),
                "aliases": ",".join(mv.aliases),
                "data_version": run.data.tags.get("data_version"),
                "run_id": mv.run_id,
            }
        )
    if not rows:
        raise LookupError(
            f"no version of registered model {registered_model!r}"
            + (f" among {versions}" if versions is not None else "")
            + f" in {mlflow.get_registry_uri()} (a different tracking URI than the one written to?)"
        )
    return pd.DataFrame(rows).sort_values("version").set_index("version")


def load_champion(registered_model: str = REGISTERED_MODEL):
    """The champion as a scikit-learn model: ``models:/<name>@champion``."""
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{registered_model}@{CHAMPION}")


_template: list[Path] = []  # the store migrated once per process (see new_store)


def _migrated_template() -> Path:
    if not _template or not _template[0].is_file():
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # creates the schema
        _template[:] = [folder / "mlflow.db"]
    return _template[0]


def new_store(folder: str | Path) -> str:
    """Create ``<folder>/mlflow.db``, a ready (migrated, empty) SQLite store, and return its URI.

    The file is a copy of one store migrated once per process. Use it through :func:`configure`, which gives each
    experiment an artifact folder beside the file (the template's ``Default`` experiment is not meant to be used).
    """
    db = Path(folder) / "mlflow.db"
    if db.exists():
        raise FileExistsError(f"{db} exists: new_store creates a store, it never overwrites one")
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_template(), db)
    return f"sqlite:///{db.resolve()}"


def scratch_uri() -> str:
    """A fresh SQLite store in a new temporary folder (for tests and throwaway demos)."""
    return new_store(tempfile.mkdtemp(prefix="mlflow-"))
