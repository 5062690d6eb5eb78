"""The spam filter as a DVC pipeline: ``prepare`` → ``train`` → ``evaluate`` (see ``assignment2/dvc.yaml``), and the
project's ``profile`` stage (``project/dvc.yaml``).

Each stage is a command ``python -m aml.spam.pipeline <stage>`` that reads ``params.yaml`` in the current folder and
calls the stage functions of :mod:`aml.spam.stages` (nothing here is written twice), so ``dvc repro`` reproduces the
filter from raw data and ``dvc exp run -S split.seed=7`` varies it. The model is saved in the model store's artefact
format (``model/model.joblib`` + ``model/meta.json`` with checksum and threshold).

``python -m aml.spam.pipeline profile RAW OUTDIR`` profiles a raw ``label<TAB>text`` file (:func:`profile_raw`, which
calls :func:`aml.spam.profiling.profile`) into ``OUTDIR/profile.json`` and ``OUTDIR/profile.html``: with the raw file
as its dependency, ``dvc repro`` re-profiles exactly when the data changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from aml.core.logs import setup_logging
from aml.spam import profiling, sms

# scikit-learn (aml.spam.models, aml.spam.stages) and the model store are imported by the stages that use them: the
# profile stage, which DVC runs on every data change, starts without them (about 2 s less per run)

log = logging.getLogger(__name__)

#: the files :func:`profile_raw` writes into its output folder (the ``profile`` stage's outs)
PROFILE_FILES = ("profile.json", "profile.html")
#: the ``profile`` stage's default input and output folder, relative to the DVC project (``project/``)
PROFILE_RAW, PROFILE_DIR = "data/raw/SMSSpamCollection", "reports"


def load_params(path: str | Path = "params.yaml") -> dict:
    """The pipeline parameters (``split.seed``, ``train.*``) from ``params.yaml``."""
    return yaml.safe_load(Path(path).read_text())


def write_raw(path: str | Path, source: str | Path | None = None) -> Path:
    """Write the raw collection (validated) as ``raw_data.csv`` with columns label, text."""
    from aml.spam import stages

    return stages.save_data(sms.load_sms(source)[0], path)


#: what a stage that finds another seed's splits tells the user to do
REPREPARE = "Run `dvc repro` (or `python -m aml.spam.pipeline prepare`) to split with params.yaml's split.seed."


def prepare(raw_path: str | Path, out_dir: str | Path, seed: int) -> dict[str, Path]:
    """raw_data.csv → deduplicated, stratified 70/15/15 split files, with their manifest ``splits.json`` (the seed,
    the raw file's hash, rows and file hashes; :func:`aml.spam.stages.save_splits`)."""
    from aml.spam import stages

    parts = stages.prepare_train_validation_test_split(stages.load_data(raw_path), seed, stages.FRACTIONS)
    return stages.save_splits(parts, out_dir, seed=seed, source=raw_path, fractions=stages.FRACTIONS)


def build_model(params: dict):
    """The catalogue's estimator named by ``params["model"]`` with its hyper-parameters (the other keys, except
    ``min_precision``)."""
    from aml.spam import models

    settings = {k: v for k, v in params.items() if k not in ("model", "min_precision")}
    return models.make_model(params["model"], **settings)


def train(data_dir: str | Path, model_path: str | Path, params: dict, seed: int | None = None) -> dict:
    """Fit on train, choose the threshold on validation (max recall at precision ≥ floor), save model + threshold.
    With ``seed`` (params.yaml's ``split.seed``) the splits must have been made with it (their manifest says so)."""
    from aml.spam import stages

    splits = stages.load_splits(data_dir, seed, hint=REPREPARE)
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


def evaluate(data_dir: str | Path, model_path: str | Path, metrics_path: str | Path, seed: int | None = None) -> dict:
    """Test metrics of the saved model at its threshold, written as JSON (a DVC metrics file), each named
    ``test_<metric>`` so no reader mistakes them for validation figures. With ``seed``, the test split must have been
    made with it, as in :func:`train`."""
    from aml.core import modelstore
    from aml.spam import stages

    model, meta = modelstore.load(model_path)
    threshold = meta["threshold"]
    test = stages.load_splits(data_dir, seed, hint=REPREPARE)["test"]
    results = stages.evaluate(stages.score(model, test, threshold))
    results.pop("confusion_matrix")
    metrics = {f"test_{k}": v for k, v in results.items()}
    Path(metrics_path).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def profile_raw(raw_path: str | Path, out_dir: str | Path) -> profiling.Profile:
    """Profile a raw ``label<TAB>text`` file as read (invalid values are counted, not refused: the profile is where
    they show) into ``out_dir/profile.json`` (:meth:`~aml.spam.profiling.Profile.to_dict`, the layout ``/prepare``
    writes) and ``out_dir/profile.html``; returns the profile. The page is titled with ``raw_path`` as given, so the
    same data profiled by the same command gives byte-identical files."""
    frame = sms.read_sms_file(raw_path)
    result = profiling.profile(frame, name=str(raw_path))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file, html_file = (out_dir / name for name in PROFILE_FILES)
    json_file.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    html_file.write_text(result.to_html(), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of the DVC stages (``python -m aml.spam.pipeline raw|prepare|train|evaluate``), each stage
    reading its parameters from ``--params`` (``params.yaml``); ``profile [RAW [OUTDIR]]`` takes its paths as
    arguments instead (default ``data/raw/SMSSpamCollection reports``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["raw", "prepare", "train", "evaluate", "profile"])
    parser.add_argument("paths", nargs="*", help="profile only: the raw file and the output folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if args.paths and (args.stage != "profile" or len(args.paths) > 2):
        parser.error(f"stage {args.stage!r} takes {'at most two paths' if args.stage == 'profile' else 'no paths'}")
    setup_logging()
    if args.stage == "profile":
        raw, out_dir = [*args.paths, *(PROFILE_RAW, PROFILE_DIR)[len(args.paths) :]]
        result = profile_raw(raw, out_dir)
        log.info(
            "profiled %s: %d rows -> %s", raw, result.rows, ", ".join(str(Path(out_dir) / f) for f in PROFILE_FILES)
        )
        return 0
    if args.stage == "raw":
        log.info("wrote %s", write_raw("data/raw_data.csv"))
        return 0
    params = load_params(args.params)
    if args.stage == "prepare":
        prepare("data/raw_data.csv", "data", params["split"]["seed"])
    elif args.stage == "train":
        log.info("trained: %s", train("data", "model", params["train"], params["split"]["seed"]))
    else:
        log.info("test metrics: %s", evaluate("data", "model", "metrics.json", params["split"]["seed"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
