"""The action stage: ``python -m src.score INPUT`` (what batch ``POST /score`` runs): the champion from the model
store (falling back to older versions) scores a CSV of the data store → ``predictions/<run>/``, then the take-down
list → ``actions/<run>/``, with the batch's drift report and, with a ``challenger`` in ``config/score.yaml``, a
shadow or A/B test."""

from __future__ import annotations

import argparse

from aml.project import system

from . import constructors, helpers


def score(input_path: str, overrides: dict | None = None, store=None, model: system.ServingModel | None = None) -> dict:
    """Score the store file ``input_path`` with ``model`` (default: the served version from the registry)."""
    config = constructors.stage_config("score", overrides)
    name = constructors.defaults()["train"]["registered_model"]
    constructors.model_store()
    if model is None:
        model = system.load_serving_model(name)
    challenger = system.load_version_model(name, config.challenger) if config.challenger else None
    return system.score_batch(store or constructors.data_store(), model, input_path, config, challenger)


def main(argv: list[str] | None = None) -> int:
    """Command line: score the stored CSV named on it with the champion and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="store path of a CSV with a text column, e.g. scoring/<run>/messages.csv")
    args = parser.parse_args(argv)
    helpers.print_json(score(args.input))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
