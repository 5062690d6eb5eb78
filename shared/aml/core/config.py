"""Paths and environment variables, in one place.

Environment variables (all optional):

``AML_DATA_DIR``
    Folder holding local copies of the course datasets (one sub-folder per dataset, e.g.
    ``sms_spam/SMSSpamCollection``). Read before any download is attempted. CI points it at ``../shared/data``.
``AML_CACHE_DIR``
    Where downloaded datasets are cached (default ``~/.cache/aml-workspace``).
``AML_BUILD_DIR``
    Git-ignored folder for executed notebooks, reports and metrics (default ``<repo>/build``).
``AML_METRICS_FILE``
    The machine-readable metrics file (default ``<build>/metrics.json``).
``AML_MODEL_STORE``
    Folder of saved model artefacts (default ``<repo>/models``).
``AML_BUDGET``
    ``full`` (default) or ``smoke``: the budget of a notebook whose ``BUDGET`` parameter is left at ``None`` (the tests
    shrink the work with it). A notebook's parameters cell holds literals only (papermill reads them); the cell after
    it resolves ``BUDGET = config.budget(BUDGET)`` once, and every value sized by the budget is derived from that
    variable (``config.by_budget(full, smoke, BUDGET)``), never re-read from the environment: ``-p BUDGET smoke``
    then means smoke throughout.
``AML_PROGRESS``
    ``auto`` (default: tqdm's widget in Jupyter/Colab) or ``text``: plain-text progress bars, which executed copies
    of the notebooks keep in their final state (``make run`` and the tests set it).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the aml package
REPO_ROOT = PACKAGE_DIR.parent.parent

DATA_DIR_ENV = "AML_DATA_DIR"
CACHE_DIR_ENV = "AML_CACHE_DIR"
BUILD_DIR_ENV = "AML_BUILD_DIR"
METRICS_FILE_ENV = "AML_METRICS_FILE"
MODEL_STORE_ENV = "AML_MODEL_STORE"
BUDGET_ENV = "AML_BUDGET"
PROGRESS_ENV = "AML_PROGRESS"

BUDGETS = ("full", "smoke")
PROGRESS_STYLES = ("auto", "text")


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def local_data_dir() -> Path | None:
    """The folder named by ``AML_DATA_DIR``, or ``None`` when the variable is unset."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Where downloaded datasets are cached: ``AML_CACHE_DIR``, else ``~/.cache/aml-workspace`` (outside the
    checkout, so a fresh clone reuses the downloads)."""
    return _env_path(CACHE_DIR_ENV, Path.home() / ".cache" / "aml-workspace")


def build_dir() -> Path:
    """The git-ignored output folder of ``make run`` and the tests: ``AML_BUILD_DIR``, else ``<repo>/build``."""
    return _env_path(BUILD_DIR_ENV, REPO_ROOT / "build")


def metrics_file() -> Path:
    """The machine-readable metrics file: ``AML_METRICS_FILE``, else ``<build>/metrics.json``."""
    return _env_path(METRICS_FILE_ENV, build_dir() / "metrics.json")


def model_store_dir() -> Path:
    """The folder of saved model artefacts (:mod:`aml.core.modelstore`): ``AML_MODEL_STORE``, else
    ``<repo>/models``."""
    return _env_path(MODEL_STORE_ENV, REPO_ROOT / "models")


def _env_choice(name: str, choices: tuple[str, ...]) -> str:
    """The variable's value (case and surrounding spaces ignored), one of ``choices``; the first when unset."""
    value = os.environ.get(name, choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {choices}")
    return value


def budget(value: str | None = None) -> str:
    """The work budget a notebook runs with: ``value`` (its ``BUDGET`` parameter) when given, else ``AML_BUDGET``,
    else ``full``; checked to be one of ``BUDGETS`` (case and surrounding spaces ignored)."""
    if value is None:
        return _env_choice(BUDGET_ENV, BUDGETS)
    chosen = str(value).strip().lower()
    if chosen not in BUDGETS:
        raise ValueError(f"BUDGET={value!r}: expected one of {BUDGETS}")
    return chosen


def progress_style() -> str:
    """How progress bars are drawn: ``auto`` (tqdm's choice: a widget in notebooks) unless ``AML_PROGRESS=text``."""
    return _env_choice(PROGRESS_ENV, PROGRESS_STYLES)


def in_colab() -> bool:
    """True when running inside Google Colab."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def by_budget(full, smoke, budget_value: str | None = None):
    """``full`` or ``smoke`` according to ``budget(budget_value)`` (:func:`budget`): how a notebook sizes its work.
    A notebook passes its resolved ``BUDGET`` (``config.by_budget(5, 2, BUDGET)``), so a budget given as a parameter
    sizes everything; without it the environment decides."""
    return full if budget(budget_value) == "full" else smoke


def enter_notebook_folder(folder: str) -> Path:
    """Make ``<repo>/<folder>`` the working folder when running in Colab, where the setup cell leaves the kernel in
    ``/content``; a notebook's relative paths (``data/``, ``dvc.yaml``) then mean what they mean locally. Elsewhere
    (Jupyter, ``papermill --cwd``, nbmake) the kernel already runs in the notebook's folder and nothing changes.
    Returns the working folder."""
    target = REPO_ROOT / folder
    if not target.is_dir():
        raise FileNotFoundError(f"no folder {folder!r} in the workspace {REPO_ROOT}")
    if in_colab():
        os.chdir(target)
    return Path.cwd()
