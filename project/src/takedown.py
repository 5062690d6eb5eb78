"""The downstream action: ``python -m src.takedown [PREDICTIONS]`` reads stored predictions (default the latest run)
and writes the take-down list ``actions/<run>/takedown.csv`` (message id, propensity, threshold, model version).
Batch ``POST /score`` calls the same function after scoring."""

from __future__ import annotations

import argparse

from aml.project import system

from . import constructors, helpers


def takedown(predictions: str | None = None, store=None) -> dict:
    """Write the take-down list of ``predictions`` (a store path; default the latest predictions)."""
    return system.takedown(store or constructors.data_store(), predictions)


def main(argv: list[str] | None = None) -> int:
    """Command line: write the take-down list of a predictions file (default: the latest) and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", nargs="?", help="store path of a predictions file (default: the latest)")
    args = parser.parse_args(argv)
    helpers.print_json(takedown(args.predictions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
