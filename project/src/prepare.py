"""The data stage: ``python -m src.prepare [--seed N]`` (what ``POST /prepare`` runs): the raw data from the data
store → validated, deduplicated, split → ``processed/``, ``split/`` and ``scoring/`` runs back in the store."""

from __future__ import annotations

import argparse

from aml.project import system

from . import constructors, helpers


def prepare(overrides: dict | None = None, store=None) -> dict:
    """Run the data stage with ``config/prepare.yaml`` updated by ``overrides``; returns its outputs."""
    return system.prepare(store or constructors.data_store(), constructors.stage_config("prepare", overrides))


def main(argv: list[str] | None = None) -> int:
    """Command line: prepare the latest raw data (``--seed``, ``--raw`` override the configuration) and print
    the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="split seed (default: config/prepare.yaml)")
    parser.add_argument("--raw", help="store path of the raw data (default: the latest raw run)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    helpers.print_json(prepare(overrides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
