"""The reward stage: ``python -m src.evaluate INPUT`` (what ``POST /evaluate`` runs): scored, labelled data from
the data store → metrics at the threshold it was scored with → ``evaluations/<run>/metrics.json``, with the
monitoring of the evaluation (performance against the validation interval, bias by slice, champion vs challenger)."""

from __future__ import annotations

import argparse

from aml.project import system

from . import constructors, helpers


def evaluate(input_path: str, overrides: dict | None = None, store=None) -> dict:
    """Evaluate the store file ``input_path`` (predictions with labels) with ``config/evaluate.yaml``."""
    constructors.model_store()
    name = constructors.defaults()["train"]["registered_model"]
    return system.evaluate(
        store or constructors.data_store(),
        input_path,
        constructors.stage_config("evaluate", overrides),
        models=lambda version: system.load_version_model(name, version),
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: evaluate the stored file named on it and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="store path of scored, labelled data, e.g. predictions/<run>/predictions.csv")
    args = parser.parse_args(argv)
    helpers.print_json(evaluate(args.input))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
