"""The project's service: ``python src/app.py [--port 8000] [--server gunicorn]`` from ``project/`` (or
``gunicorn --chdir src app:app``). The endpoints, auth and errors are :mod:`aml.project.api`'s; the stores and the
stage configuration come from :mod:`constructors` and ``config/*.yaml``."""

from __future__ import annotations

import constructors

from aml.project.api import main

__all__ = ["main"]


def __getattr__(name: str):
    """``app``: built from the environment the first time it is asked for (``gunicorn app:app``), then kept."""
    if name == "app":
        globals()["app"] = constructors.build_app()
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    raise SystemExit(main(constructors.build_app))
