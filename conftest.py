"""Test-session defaults for the whole workspace (also when a grader runs ``pytest --nbmake`` directly).

Set only where the caller has not set them, and inherited by the notebook kernels nbmake starts:
- ``AML_BUDGET=smoke``: notebooks shrink their work through their parameters cell (the real code paths still run);
- ``AML_PROGRESS=text``: plain-text progress bars in the executed notebooks;
- ``AML_BUILD_DIR=build/test``: test artefacts (metrics, model store, MLflow store) never overwrite the ``make run``
  results;
- ``AML_DATA_DIR``: ``../shared/data`` beside the checkout when it exists (CI's offline dataset copies);
- offline switches for Hugging Face, DVC analytics, and a non-interactive matplotlib backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

_defaults = {
    "AML_BUDGET": "smoke",
    "AML_PROGRESS": "text",
    "AML_BUILD_DIR": str(ROOT / "build" / "test"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "MPLBACKEND": "Agg",
}
if (ROOT.parent / "shared" / "data").is_dir():
    _defaults["AML_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
for _key, _value in _defaults.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("AML_MODEL_STORE", str(Path(os.environ["AML_BUILD_DIR"]) / "models"))
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path(os.environ['AML_BUILD_DIR']) / 'mlflow' / 'mlflow.db'}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
