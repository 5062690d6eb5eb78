"""Configuration for the project's stages: ``config/<stage>.yaml`` read once, overridden field by field.

The validation of every field lives in the library (:func:`aml.project.settings.make_config`); here only the file
locations of this project.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from aml.project import system

PROJECT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT / "config"
STAGES = tuple(system.CONFIGS)


def config_file(stage: str) -> Path:
    """``config/<stage>.yaml``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {STAGES}")
    return CONFIG_DIR / f"{stage}.yaml"


def defaults(stage: str) -> dict:
    """The configuration file of ``stage`` as a dict (``{}`` for an empty file)."""
    path = config_file(stage)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise system.StageError(f"{path} must hold a mapping of settings, found {type(data).__name__}")
    return data


def all_defaults() -> dict[str, dict]:
    """Every stage's configuration file: ``{stage: {...}}``."""
    return {stage: defaults(stage) for stage in STAGES}


def print_json(result: Mapping) -> None:
    """Print a stage's result as JSON (the command-line front ends)."""
    import json

    from aml.core.reporting import jsonable

    print(json.dumps(jsonable(dict(result)), indent=2))
