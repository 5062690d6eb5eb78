"""Experiment tracking and the model registry with MLflow (SQLite backend store + artifact folder).

- :func:`tracking_uri`: ``MLFLOW_TRACKING_URI`` when set (a team server works unchanged), else
  ``sqlite:///<repo>/mlflow/mlflow.db`` with artifacts in ``<repo>/mlflow/artifacts`` (git-ignored).
  Open the UI on it: ``mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db`` from the repository root.
- :func:`tracked`: the decorator that turns any training function into a tracked run: parameters, metrics (flattened
  as ``<split>_<metric>``, e.g. ``validation_aucpr``), figures, the data version (DVC MD5 of the training file) and
  the code version (git commit) as tags, and the model with its signature and an input example, registered in the
  model registry. It is generic: the function it wraps (e.g. :func:`aml.spam.stages.train`) returns an object with
  ``name``, ``model``, ``metrics``, ``params`` and ``input_example``; nothing here knows the spam filter.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aml.core import config, logs
from aml.core.hashing import md5
from aml.core.reporting import flatten

EXPERIMENT = "aml-workspace"
CHAMPION = "champion"


def store_dir() -> Path:
    """The workspace's default MLflow store folder, ``<repo>/mlflow`` (used when ``MLFLOW_TRACKING_URI`` is
    unset)."""
    return config.REPO_ROOT / "mlflow"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the workspace's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_dir() / 'mlflow.db'}"


def configure(uri: str | None = None, experiment: str = EXPERIMENT, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at ``uri`` (default :func:`tracking_uri`) and select ``experiment`` (created with an artifact
    folder beside the SQLite file when it does not exist; when another process creates it at the same moment, as
    service replicas starting together on a new tracking server do, that one is used). Returns the experiment id."""
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
        from mlflow.exceptions import MlflowException

        location = Path(artifact_root).resolve().as_uri() if artifact_root else None
        try:
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
        except MlflowException as exc:  # another process created it meanwhile (replicas starting together)
            found = mlflow.get_experiment_by_name(experiment)
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or found is None:
                raise
            experiment_id = found.experiment_id
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


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def flat_metrics(metrics: Mapping) -> dict[str, float]:
    """Scalar metrics flattened with ``_``: ``{"validation": {"aucpr": 0.99}}`` -> ``{"validation_aucpr": 0.99}``;
    lists (a confusion matrix) and non-numbers are left out."""
    flat = {k.replace(".", "_"): v for k, v in flatten(metrics).items()}
    return {k: float(v) for k, v in flat.items() if np.isscalar(v) and isinstance(v, (int, float, np.number))}


#: how :func:`tracked` serialises models: skops (MLflow's safe default: loading cannot run code) or, where the
#: registry is written only by our own training code, cloudpickle (see :func:`tracked`)
SERIALIZATION_FORMATS = ("skops", "cloudpickle")


def tracked(
    registered_model: str | Callable[[Any], str] | None,
    data_file: str = "train.csv",
    figures: Callable[[Any], dict] | None = None,
    serialization_format: str = "skops",
    tags: Mapping[str, str] | None = None,
):
    """Decorate a training function so that each call is one MLflow run in the current experiment.

    ``tags`` are set on the run as it is created (``mlflow.start_run(tags=...)``), before the function runs: what
    must be on the run even if the process dies during the training (the service's job id, so that the run of a
    killed training can be found and ended).

    The function returns an outcome with ``name``, ``model`` (a scikit-learn estimator with ``predict_proba``),
    ``metrics`` (nested mappings allowed), ``params`` and ``input_example``. The wrapper logs the params (``model``
    = the outcome's name, plus its params and the model's scalar hyper-parameters), the flattened metrics, the
    figures ``figures(outcome)`` returns (``{file name: matplotlib figure}``), tags ``code_version`` and, given
    ``data_dir=`` at call time, ``data_version`` (the MD5 of ``data_dir/data_file``), and the model with its
    signature, registered as a new version of ``registered_model`` (a name, or a function of the outcome giving
    one; ``None`` logs without registering). It sets ``run_id`` and ``version`` on the outcome and returns it.

    ``serialization_format``: ``"skops"`` (default) cannot run code when loaded, but for a TF-IDF pipeline with
    ~70,000 vocabulary entries saving takes about a minute on 2 cores (listing the trusted types serialises it a
    second time) and loading about 5 s; ``"cloudpickle"`` saves in under a second and loads in 0.03 s, and like the
    workspace's joblib model store it must only be loaded from a registry you trust (the project's training
    service is the only writer of its registry).
    """
    if serialization_format not in SERIALIZATION_FORMATS:
        raise ValueError(f"serialization_format must be one of {SERIALIZATION_FORMATS}, got {serialization_format!r}")
    run_tags = {str(k): str(v) for k, v in (tags or {}).items()}

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, data_dir=None, **kwargs):
            # `import mlflow` alone, never beside other imports: ruff classes `mlflow` as first-party while the store
            # folder <repo>/mlflow exists, so a mixed import block would sort differently from run to run
            import mlflow

            with mlflow.start_run(tags=run_tags or None) as run:
                outcome = fn(*args, **kwargs)
                missing = [
                    a for a in ("name", "model", "metrics", "params", "input_example") if not hasattr(outcome, a)
                ]
                if missing:
                    raise TypeError(
                        f"{fn.__name__} returned {type(outcome).__name__} without {missing}: a @tracked function "
                        "returns an outcome with name, model, metrics, params and input_example"
                    )
                mlflow.set_tag("mlflow.runName", outcome.name)
                hyper = {k: v for k, v in outcome.model.get_params().items() if np.isscalar(v) and "__" in k}
                mlflow.log_params({"model": outcome.name, **outcome.params, **hyper})
                mlflow.log_metrics(flat_metrics(outcome.metrics))
                tags = {"code_version": code_version(), "model_type": outcome.name}
                if data_dir is not None:
                    tags["data_version"] = md5(Path(data_dir) / data_file)
                    tags["data_file"] = data_file
                mlflow.set_tags(tags)
                for file_name, figure in (figures(outcome) if figures else {}).items():
                    mlflow.log_figure(figure, file_name)
                    _close(figure)
                name = registered_model(outcome) if callable(registered_model) else registered_model
                # a 1-d array of strings: what a text pipeline takes (a list would become a one-column DataFrame)
                example = np.array(list(outcome.input_example), dtype=object)
                signature = mlflow.models.infer_signature(example, outcome.model.predict_proba(example))
                if serialization_format == "skops":
                    options = {"skops_trusted_types": _own_types(outcome.model)}
                    quiet = contextlib.nullcontext()
                else:
                    options = {"serialization_format": serialization_format}
                    # MLflow warns on every pickle-format save; the caller chose the format knowingly (and says why)
                    quiet = logs.quieted("mlflow.sklearn")
                with quiet:
                    info = mlflow.sklearn.log_model(
                        outcome.model,
                        name="model",
                        signature=signature,
                        input_example=example,
                        pyfunc_predict_fn="predict_proba",
                        pip_requirements=model_requirements(),
                        **options,
                    )
                outcome.run_id = run.info.run_id
                outcome.model_uri = info.model_uri
                outcome.registered_model = name
                outcome.version = register(info.model_uri, name, model_type=outcome.name) if name else None
            return outcome

        return wrapper

    return decorate


def set_champion(versions: dict[str, float], registered_model: str) -> str:
    """Give the alias ``champion`` to the version with the highest AUCPR (``{version: aucpr}``); returns it."""
    import mlflow

    if not versions:
        raise ValueError("set_champion needs at least one {version: aucpr} entry")
    best = max(versions, key=versions.get)
    mlflow.MlflowClient().set_registered_model_alias(registered_model, CHAMPION, best)
    return best


def registered_aucpr(
    registered_model: str, versions: list[str] | None = None, metric: str = "validation_aucpr"
) -> pd.DataFrame:
    """Read back from the tracking server, for each registered version: its model type, ``metric``, aliases."""
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
                metric: run.data.metrics.get(metric),
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


def load_champion(registered_model: str):
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


def register(model_uri: str, registered_model: str, model_type: str | None = None) -> str:
    """Register the logged model ``model_uri`` (``models:/<model id>``, what ``log_model`` returns; the outcome of
    :func:`tracked` keeps it as ``model_uri``) as a new version of ``registered_model``, created when it does not
    exist; returns the version. Through the client, so no registration messages are printed into a report."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model)
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    run_id = client.get_logged_model(model_id).source_run_id if model_id else None
    version = client.create_model_version(registered_model, source=model_uri, run_id=run_id, model_id=model_id)
    if model_type:
        client.set_model_version_tag(registered_model, version.version, "model_type", model_type)
    return str(version.version)


def latest_versions(registered_models: list[str], metric: str = "validation_aucpr") -> pd.DataFrame:
    """One row per registered model: its latest version, model type, ``metric`` (read back from the run) and
    aliases, as the registry's Models page lists them."""
    rows = []
    for name in registered_models:
        table = registered_aucpr(name, metric=metric)
        rows.append({"registered_model": name, "version": int(table.index[-1]), **table.iloc[-1].to_dict()})
    return pd.DataFrame(rows).set_index("registered_model")
