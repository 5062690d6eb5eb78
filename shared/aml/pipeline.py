"""The spam filter as a DVC pipeline: ``prepare`` → ``train`` → ``evaluate`` (see ``assignment2/dvc.yaml``).

Each stage is a function here and a command ``python -m aml.pipeline <stage>`` that reads ``params.yaml`` in the
current folder, so ``dvc repro`` reproduces the filter from raw data and ``dvc exp run -S split.seed=7`` varies it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import joblib
import pandas as pd
import yaml

from aml import evaluation, models, sms

MODELS = {
    "tfidf_logreg": lambda p: models.tfidf_logreg(C=p.get("C", 30.0), seed=p.get("seed", 0)),
    "tfidf_linear_svm": lambda p: models.tfidf_linear_svm(C=p.get("C", 1.0), seed=p.get("seed", 0)),
    "tfidf_random_forest": lambda p: models.tfidf_random_forest(p.get("n_estimators", 300), seed=p.get("seed", 0)),
    "tfidf_naive_bayes": lambda p: models.tfidf_naive_bayes(alpha=p.get("alpha", 0.05)),
}


def load_params(path: str | Path = "params.yaml") -> dict:
    """The pipeline parameters (``split.seed``, ``train.*``) from ``params.yaml``."""
    return yaml.safe_load(Path(path).read_text())


def write_raw(path: str | Path, source: str | Path | None = None) -> Path:
    """Write the raw collection (validated) as ``raw_data.csv`` with columns label, text."""
    raw, _ = sms.load_sms(source)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.to_csv(path, index=False)
    return path


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read ``raw_data.csv`` back (strings kept as written) and validate it like the original collection."""
    df = pd.read_csv(path, dtype={"label": "string", "text": "string"}, keep_default_na=False)
    sms.check_sms_frame(df)
    return df


def prepare(raw_path: str | Path, out_dir: str | Path, seed: int) -> dict[str, Path]:
    """raw_data.csv → deduplicated, stratified 70/15/15 split files."""
    clean, _ = sms.preprocess(read_raw(raw_path))
    return sms.save_splits(sms.split(clean, seed=seed), out_dir)


def build_model(params: dict):
    """The estimator named by ``params["model"]`` with its settings."""
    name = params["model"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {sorted(MODELS)}")
    return MODELS[name](params)


def train(data_dir: str | Path, model_path: str | Path, params: dict) -> dict:
    """Fit on train, choose the threshold on validation (max recall at precision ≥ floor), save model + threshold."""
    splits = sms.load_splits(data_dir)
    model = evaluation.fit(build_model(params), splits["train"])
    floor = params.get("min_precision", evaluation.MIN_PRECISION)
    threshold = evaluation.choose_threshold(
        splits["validation"]["y"], evaluation.score(model, splits["validation"]), floor
    )
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"model": model, "threshold": threshold, "params": params}, model_path)
    return {"threshold": threshold}


def evaluate(data_dir: str | Path, model_path: str | Path, metrics_path: str | Path) -> dict:
    """Test metrics of the saved model at its threshold, written as JSON (a DVC metrics file)."""
    bundle = joblib.load(model_path)
    test = sms.load_splits(data_dir)["test"]
    metrics = evaluation.evaluate(test["y"], evaluation.score(bundle["model"], test), bundle["threshold"])
    metrics.pop("confusion_matrix")
    Path(metrics_path).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["raw", "prepare", "train", "evaluate"])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if args.stage == "raw":
        print(write_raw("data/raw_data.csv"))
        return 0
    params = load_params(args.params)
    if args.stage == "prepare":
        prepare("data/raw_data.csv", "data", params["split"]["seed"])
    elif args.stage == "train":
        print(train("data", "model/model.joblib", params["train"]))
    else:
        print(evaluate("data", "model/model.joblib", "metrics.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
