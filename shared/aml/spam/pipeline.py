"""The spam filter as a DVC pipeline: ``prepare`` → ``train`` → ``evaluate`` (see ``assignment2/dvc.yaml``).

Each stage is a command ``python -m aml.spam.pipeline <stage>`` that reads ``params.yaml`` in the current folder and
calls the stage functions of :mod:`aml.spam.stages` (nothing here is written twice), so ``dvc repro`` reproduces the
filter from raw data and ``dvc exp run -S split.seed=7`` varies it. The model is saved in the model store's artefact
format (``model/model.joblib`` + ``model/meta.json`` with checksum and threshold).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from aml.core import modelstore
from aml.core.logs import setup_logging
from aml.spam import models, sms, stages

log = logging.getLogger(__name__)


def load_params(path: str | Path = "params.yaml") -> dict:
    """The pipeline parameters (``split.seed``, ``train.*``) from ``params.yaml``."""
    return yaml.safe_load(Path(path).read_text())


def write_raw(path: str | Path, source: str | Path | None = None) -> Path:
    """Write the raw collection (validated) as ``raw_data.csv`` with columns label, text."""
    return stages.save_data(sms.load_sms(source)[0], path)


def prepare(raw_path: str | Path, out_dir: str | Path, seed: int) -> dict[str, Path]:
    """raw_data.csv → deduplicated, stratified 70/15/15 split files."""
    parts = stages.prepare_train_validation_test_split(stages.load_data(raw_path), seed=seed)
    return stages.save_splits(parts, out_dir)


def build_model(params: dict):
    """The catalogue's estimator named by ``params["model"]`` with its hyper-parameters (the other keys, except
    ``min_precision``)."""
    settings = {k: v for k, v in params.items() if k not in ("model", "min_precision")}
    return models.make_model(params["model"], **settings)


def train(data_dir: str | Path, model_path: str | Path, params: dict) -> dict:
    """Fit on train, choose the threshold on validation (max recall at precision ≥ floor), save model + threshold."""
    splits = stages.load_splits(data_dir)
    floor = params.get("min_precision", stages.MIN_PRECISION)
    trained = stages.train(build_model(params), splits["train"], splits["validation"], floor, name=params["model"])
    stages.save_model(
        trained.model,
        model_path,
        {
            "model": trained.name,
            "threshold": trained.threshold,
            "params": params,
            "validation": trained.metrics["validation"],
        },
    )
    return {"threshold": trained.threshold, "validation_aucpr": trained.metrics["validation"]["aucpr"]}


def evaluate(data_dir: str | Path, model_path: str | Path, metrics_path: str | Path) -> dict:
    """Test metrics of the saved model at its threshold, written as JSON (a DVC metrics file), each named
    ``test_<metric>`` so no reader mistakes them for validation figures."""
    model, meta = modelstore.load(model_path)
    threshold = meta["threshold"]
    test = stages.load_splits(data_dir)["test"]
    results = stages.evaluate(stages.score(model, test, threshold))
    results.pop("confusion_matrix")
    metrics = {f"test_{k}": v for k, v in results.items()}
    Path(metrics_path).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Command line of the DVC stages (``python -m aml.spam.pipeline raw|prepare|train|evaluate``), each stage
    reading its parameters from ``--params`` (``params.yaml``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["raw", "prepare", "train", "evaluate"])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    if args.stage == "raw":
        log.info("wrote %s", write_raw("data/raw_data.csv"))
        return 0
    params = load_params(args.params)
    if args.stage == "prepare":
        prepare("data/raw_data.csv", "data", params["split"]["seed"])
    elif args.stage == "train":
        log.info("trained: %s", train("data", "model", params["train"]))
    else:
        log.info("test metrics: %s", evaluate("data", "model", "metrics.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
