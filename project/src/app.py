"""The project's service: ``python -m src.app [--port 8000] [--server gunicorn]`` from ``project/``, or
``python src/app.py`` as the course and the container have it (or ``gunicorn src.app:app``). The endpoints, auth and
errors are :mod:`aml.project.api`'s; the stores and the stage configuration come from :mod:`src.constructors` and
``config/*.yaml``."""

from __future__ import annotations

if not __package__:  # run as a file (``python src/app.py``, the image's ``python src/app.pyc``): as ``-m src.app``
    import runpy
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])  # project/, not src/: no top-level ``constructors``
    runpy.run_module("src.app", run_name="__main__", alter_sys=True)
    raise SystemExit(0)

from aml.project.api import main  # noqa: E402 (after the file-run redirect above)

from . import constructors  # noqa: E402

__all__ = ["main"]


def __getattr__(name: str):
    """``app``: built from the environment the first time it is asked for (``gunicorn src.app:app``), then kept."""
    if name == "app":
        globals()["app"] = constructors.build_app()
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    raise SystemExit(main(constructors.build_app))
