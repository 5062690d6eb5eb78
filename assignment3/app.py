"""The spam filter as a web service: ``POST /score`` with ``{"text": "..."}`` (or the form ``text=...``) →
``{"prediction": bool, "propensity": float}``; ``GET /health``; ``GET /`` describes the endpoints.

The assignment's runnable file; the app itself is :func:`aml.spam.service.create_app` in the library, where the
tests, the container and the load benchmark share it. Run it from this folder:

- ``python app.py [--port 5000] [--host 127.0.0.1]``: Flask's development server (what the assignment asks);
- ``AML_SERVER=gunicorn python app.py`` (or ``--server gunicorn``): the production server, gunicorn with ``gthread``
  workers and the model loaded once before they fork — what the container runs;
- ``gunicorn app:app`` and ``flask --app app run`` work too: ``app`` is created from the environment on first use,
  so importing this file loads no model.

Settings (options override environment variables; a bad value is a one-line error and exit code 2): ``--host``
``HOST``, ``--port`` ``PORT``, ``--model-store`` ``AML_MODEL_STORE``, ``--model-name`` ``AML_MODEL_NAME``,
``--max-bytes`` ``AML_MAX_BODY_BYTES``, ``--server`` ``AML_SERVER``, ``--workers`` ``AML_WORKERS``, ``--threads``
``AML_THREADS`` (see ``aml.spam.service``).
"""

from __future__ import annotations

import sys

from aml.spam.service import create_app, main

__all__ = ["create_app", "main"]


def __getattr__(name: str):
    """``app``: the Flask app built from the environment the first time it is asked for (``from app import app``,
    ``gunicorn app:app``, ``flask --app app run``), then kept."""
    if name == "app":
        app = globals()["app"] = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
