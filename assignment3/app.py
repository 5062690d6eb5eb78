"""The spam filter as a web service: ``POST /score`` with ``{"text": "..."}`` → ``{"prediction": bool,
"propensity": float}``.

Run it:

- development server (what the assignment asks): ``python app.py [--port 5000] [--host 127.0.0.1]``;
- production (a real WSGI server, one process per core): ``gunicorn -w 2 -b 127.0.0.1:8000 'app:create_app()'``.

Configuration (command-line options override environment variables):

============================  ======================  ===========================================================
option                        environment             default
============================  ======================  ===========================================================
``--host``                    ``HOST``                ``127.0.0.1`` (the container sets ``0.0.0.0``)
``--port``                    ``PORT``                ``5000``
``--model-store``             ``AML_MODEL_STORE``     ``<repo>/models`` (see ``aml.config``)
``--model-name``              ``AML_MODEL_NAME``      ``sms-spam-filter``
``--max-bytes``               ``AML_MAX_BODY_BYTES``  ``65536``: larger request bodies get 413
============================  ======================  ===========================================================

The model is loaded once, when the app is created (checksum verified by ``aml.modelstore``); every request only
scores. Requests may carry ``"threshold"`` (a number in [0, 1]); without it the threshold saved with the model
(chosen on validation in Assignment 1) applies. Every error is a JSON body ``{"error": ..., "message": ...,
"status": ...}``, never an HTML page: 400 for a body that is not a JSON object, a missing, non-string or empty
``text``, or a bad ``threshold``; 404 unknown path; 405 wrong method; 413 body over the limit; 500 anything else.

``GET /health`` reports the model's name and version (the first 12 hex digits of the artefact's SHA-256, plus when
it was saved), for load balancers, the container's ``HEALTHCHECK`` and humans.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from flask import Flask, jsonify, request
from score import check_threshold, score
from werkzeug.exceptions import BadRequest, HTTPException

from aml import modelstore

#: Same value as ``aml.spam_filter.MODEL_NAME`` (a test checks it). Not imported from there: that module brings the
#: training code and pandas, which the serving image does not carry.
DEFAULT_MODEL_NAME = "sms-spam-filter"
DEFAULT_MAX_BYTES = 64 * 1024  # an SMS is at most a few hundred characters; 64 KiB leaves room and bounds the work

log = logging.getLogger("aml.app")


def _error(status: int, name: str, message: str):
    return jsonify({"error": name, "message": message, "status": status}), status


def create_app(
    model_store: str | None = None,
    model_name: str | None = None,
    max_bytes: int | None = None,
    model: Any = None,
    meta: dict | None = None,
) -> Flask:
    """Build the Flask app, loading the model once.

    By default the model comes from the model store (``model_store``/``model_name``, else the environment variables
    above). Passing ``model`` (and ``meta`` with a ``threshold``) serves an in-memory model instead, for tests.
    """
    if model is None:
        name = model_name or os.environ.get("AML_MODEL_NAME", DEFAULT_MODEL_NAME)
        model, meta = modelstore.load_model(name, store=model_store)
    meta = dict(meta or {})
    meta.setdefault("name", model_name or DEFAULT_MODEL_NAME)
    default_threshold = check_threshold(meta.get("threshold", 0.5))
    if max_bytes is None:
        max_bytes = int(os.environ.get("AML_MAX_BODY_BYTES", DEFAULT_MAX_BYTES))
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    app.json.sort_keys = False
    health = {
        "status": "ok",
        "model": meta["name"],
        "version": str(meta.get("sha256", "unknown"))[:12],
        "saved_at": meta.get("saved_at"),
        "model_type": meta.get("model"),
        "threshold": default_threshold,
    }

    @app.get("/health")
    def get_health():
        return jsonify(health)

    @app.post("/score")
    def post_score():
        payload = request.get_json(force=True, silent=True)  # any content type; None when the body is not JSON
        if not isinstance(payload, dict):
            raise BadRequest('the body must be a JSON object such as {"text": "..."}')
        if "text" not in payload:
            raise BadRequest('"text" is missing: send {"text": "the message to score"}')
        text = payload["text"]
        if not isinstance(text, str):
            raise BadRequest(f'"text" must be a string, got {type(text).__name__}')
        if not text.strip():
            raise BadRequest('"text" must not be empty')
        threshold = payload.get("threshold", default_threshold)
        try:
            threshold = check_threshold(threshold)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f'"threshold": {exc}') from None
        prediction, propensity = score(text, model, threshold)
        return jsonify({"prediction": prediction, "propensity": propensity})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"the request body is larger than the limit of {max_bytes} bytes"
        response = _error(exc.code or 500, exc.name, message)
        if exc.code == 405 and exc.valid_methods:
            response[0].headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error while serving %s %s", request.method, request.path)
        return _error(500, "Internal Server Error", "the server failed to score this request; see its log")

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the SMS spam filter: POST /score, GET /health.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="interface to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")), help="TCP port")
    parser.add_argument("--model-store", default=None, help="model store folder (default: AML_MODEL_STORE)")
    parser.add_argument("--model-name", default=None, help=f"model name (default: {DEFAULT_MODEL_NAME})")
    parser.add_argument("--max-bytes", type=int, default=None, help="request body limit in bytes (413 above it)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """``python app.py``: Flask's development server (threaded). Production: gunicorn, see the module docstring."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.model_store, args.model_name, args.max_bytes)
    log.info("model loaded; serving on http://%s:%d", args.host, args.port)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
