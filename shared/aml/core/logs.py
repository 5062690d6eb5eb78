"""One logging set-up for the whole workspace.

Library modules only create loggers (``logging.getLogger(__name__)``) and never print; front ends (notebooks, command
lines, the service) call :func:`setup_logging` once. It configures the ``aml`` logger (not the root logger, so a
host application's own configuration is left alone) and turns down the third-party loggers whose INFO lines are
noise in a report (MLflow's database creation and registration messages, alembic's migrations, urllib3).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: third-party loggers quietened to WARNING
NOISY = ("mlflow", "alembic", "urllib3", "git", "dvc", "py4j", "httpx", "filelock")


def setup_logging(level: int | str = logging.INFO, stream=None, fmt: str = FORMAT) -> logging.Logger:
    """Send the ``aml`` loggers' records at ``level`` and above to ``stream`` (default stderr); idempotent.

    Returns the ``aml`` logger. Calling it again replaces the handler it installed (so a notebook cell can be run
    twice without duplicate lines).
    """
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            raise ValueError(f"unknown log level {level!r}")
    logger = logging.getLogger("aml")
    for handler in [h for h in logger.handlers if getattr(h, "_aml", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler._aml = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow configures its own loggers when it is first imported (later, lazily): it reads this variable
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    return logger


@contextlib.contextmanager
def quieted(name: str, level: int = logging.ERROR) -> Iterator[logging.Logger]:
    """Raise logger ``name`` to ``level`` for the block, then put its level back: for a third-party warning that a
    caller has chosen knowingly (and says why where it uses this), so that it does not fill every service log."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(before)
