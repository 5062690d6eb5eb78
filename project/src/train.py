"""The model stage: ``python -m src.train [--model NAME]`` (what ``POST /train`` runs as a job): the latest splits →
trained in RAM, tracked in MLflow, registered in the model store, validated, promoted to ``champion`` on a pass."""

from __future__ import annotations

import argparse

from aml.project import system

from . import constructors, helpers


def train(overrides: dict | None = None, store=None) -> dict:
    """Run the model stage with ``config/train.yaml`` updated by ``overrides``; returns its report."""
    constructors.model_store()
    return system.train(store or constructors.data_store(), constructors.stage_config("train", overrides))


def main(argv: list[str] | None = None) -> int:
    """Command line: train, register and validate a model (``--model``, ``--split`` override the configuration)
    and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model of aml.spam.models.CATALOGUE (default: config/train.yaml)")
    parser.add_argument("--split", help="a split run id (default: the latest)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    if "model" in overrides:
        overrides["params"] = {}  # another model's defaults, not the configured model's hyper-parameters
    helpers.print_json(train(overrides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
