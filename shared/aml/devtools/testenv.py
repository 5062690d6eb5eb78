"""What the workspace's tests, benchmarks and walkthrough need from the machine, in one place.

- :func:`skip_or_fail`: a test whose tool is missing skips on a developer's machine but fails under ``CI=true``
  (CI must run everything); used for the container engine, the browser and Graphviz.
- :func:`container_engine`: the container engine, or skip/fail.
- :func:`headless_chrome`: Debian's headless Chromium driven by Selenium, with the binary and the driver given
  explicitly so Selenium Manager never tries to download anything (no internet here).
- :func:`serve_in_thread` and :func:`serving_thread`: a WSGI app (werkzeug's server), or any bound ``socketserver``
  server, on a loopback port in a thread of the test process, for tests that call it over HTTP without starting a
  process.
- :func:`project_environment`: fresh, isolated stores for the project's service (data store, MLflow registry,
  exports, API token) as the environment variables a deployment sets.

Why a module: the same checks and set-ups were written in the container tests of Assignment 4 and the project, the
docs and project browser tests, and the project's tests, benchmark and notebook.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

#: the Chromium binary (Debian's ``chromium``; ``AML_CHROMIUM`` points elsewhere)
CHROMIUM = os.environ.get("AML_CHROMIUM") or "/usr/bin/chromium"
#: its driver (Debian's ``chromium-driver``; ``AML_CHROMEDRIVER`` points elsewhere)
CHROMEDRIVER = os.environ.get("AML_CHROMEDRIVER") or "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage")
PAGE_LOAD_S = 30


def in_ci() -> bool:
    """True in a CI run (``CI=true`` or ``1``, which ``.ci/run`` and GitHub set)."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def skip_or_fail(reason: str) -> None:
    """Skip the current test; under ``CI=true`` fail instead, since CI must run what a developer may skip."""
    import pytest

    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run in CI, a skip counts as a failure)")
    pytest.skip(reason)


def container_engine() -> str:
    """The machine's container engine (:func:`aml.ops.containers.detect_engine`), or skip/fail the test."""
    from aml.ops import containers

    try:
        return containers.detect_engine()
    except containers.EngineUnavailable as exc:
        skip_or_fail(f"no container engine: {exc}. Set one up with `bash assignment4/setup_container_engine.sh`")
        raise  # not reached: skip_or_fail raises


def missing_browser() -> list[str]:
    """What is missing for :func:`headless_chrome` (Chromium, chromedriver, the selenium package); empty when ready."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


def browser_or_skip() -> None:
    """Skip (fail under ``CI=true``) when :func:`missing_browser` finds something missing."""
    missing = missing_browser()
    if missing:
        skip_or_fail(f"no headless browser: {', '.join(missing)} not found (apt-get install chromium chromium-driver)")


@contextlib.contextmanager
def headless_chrome(window: tuple[int, int] = (1200, 900), page_load_s: float = PAGE_LOAD_S) -> Iterator:
    """A Selenium driver of headless Chromium (:data:`CHROMIUM`, :data:`CHROMEDRIVER`), quit when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(page_load_s)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def project_environment(root: str | Path, token: str) -> dict[str, str]:
    """Fresh stores for the project's service under ``root``: ``AML_DATA_STORE`` (``root/data``),
    ``MLFLOW_TRACKING_URI`` (a new, migrated SQLite registry in ``root/mlflow``), ``AML_MODEL_EXPORTS`` (the
    project's joblib exports) and ``AML_MODEL_STORE`` (model artefacts, :mod:`aml.core.modelstore`), both
    ``root/models``, and ``AML_API_TOKEN``."""
    from aml.mlops import tracking

    root = Path(root)
    return {
        "AML_DATA_STORE": str(root / "data"),
        "MLFLOW_TRACKING_URI": tracking.new_store(root / "mlflow"),
        "AML_MODEL_EXPORTS": str(root / "models"),
        "AML_MODEL_STORE": str(root / "models"),
        "AML_API_TOKEN": token,
    }


@contextlib.contextmanager
def serving_thread(server) -> Iterator[str]:
    """A bound ``socketserver`` server (``http.server``'s, werkzeug's) run by a daemon thread for the block: yields
    its base URL (``http://127.0.0.1:<port>``); the server is shut down, closed and the thread joined at the end."""
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """``app`` (WSGI) served by werkzeug's threaded server on a free ``127.0.0.1`` port in a thread, for the block
    (:func:`serving_thread`): yields its base URL."""
    from werkzeug.serving import make_server

    with serving_thread(make_server("127.0.0.1", 0, app, threaded=True)) as url:
        yield url
