"""The service's page in a real browser: headless Chromium driven by Selenium against ``python src/app.py --server
gunicorn`` on a loopback port, over fresh stores in which one model version was trained.

A person opens ``/``, types a message into the text box, presses *Score* and reads the prediction, the propensity
and the serving model's version; the page must also keep the message exactly as typed (HTML in it is shown, never
run) and link to ``/health``. The browser and its driver are Debian's (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; ``AML_CHROMIUM`` / ``AML_CHROMEDRIVER`` point elsewhere), both given to Selenium
explicitly, so Selenium Manager never looks for (or downloads) a browser. Without them the test skips, except under
``CI=true``, where it fails: CI must really run it.

The model (the configured linear SVM, served by the lean scorer) is trained in this process on the first 1000
messages of the collection, to keep the test at seconds; the whole system over HTTP is ``integration.py``'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from aml.core import datasets
from aml.devtools import testenv
from aml.devtools.fixtures import HAM_EXAMPLES, SPAM_EXAMPLES
from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.ops import procs
from aml.project import system
from aml.spam import sms

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "src/app.py", "--server", "gunicorn", "--port", "{port}", "--workers", "1"]
TOKEN = "browser-token-" + "b" * 24
RAW_LINES = 1000
WAIT_S = 30


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The URL of the service over fresh stores where version 1 was trained (and promoted)."""
    testenv.browser_or_skip()
    root = tmp_path_factory.mktemp("browser")
    env = testenv.project_environment(root, TOKEN)
    uri = env["MLFLOW_TRACKING_URI"]
    store = DataStore(env["AML_DATA_STORE"])
    raw = root / sms.FILENAME
    collection = datasets.fetch("sms_spam") / sms.FILENAME
    raw.write_bytes(b"".join(collection.read_bytes().splitlines(keepends=True)[:RAW_LINES]))
    with tracking.using(uri, experiment="sms-spam-filter-project"):
        system.ingest_raw(store, raw)
        system.prepare(store)
        config = system.TrainConfig(model="tfidf_linear_svm", params={"C": 1.0}, max_gap=0.1, min_aucpr=0.9)
        trained = system.train(store, config)
    assert trained["model_version"] == "1"
    with procs.serve(COMMAND, cwd=PROJECT, env=env, timeout=120) as server:  # stopped by its PID at the end
        yield server.url


@pytest.fixture(scope="module")
def browser(site):
    """Headless Chromium (:func:`aml.devtools.testenv.headless_chrome`)."""
    with testenv.headless_chrome(window=(1000, 800), page_load_s=WAIT_S) as driver:
        yield driver


def submit(driver, url: str, text: str) -> dict:
    """Open the page, type ``text``, press Score; returns what the page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    assert driver.title == "SMS spam filter"
    assert not driver.find_elements(By.ID, "result")
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.ID, "result")))
    shown = {key: driver.find_element(By.ID, key).text for key in ("prediction", "propensity", "model-version")}
    shown["kept"] = driver.find_element(By.ID, "text").get_attribute("value")
    return shown


@pytest.mark.parametrize("text", SPAM_EXAMPLES[:1])
def test_a_spam_message(site, browser, text):
    shown = submit(browser, site, text)
    assert shown["prediction"] == "spam" and shown["model-version"] == "1"
    assert 0.5 < float(shown["propensity"]) <= 1
    assert shown["kept"] == text


@pytest.mark.parametrize("text", HAM_EXAMPLES)
def test_a_ham_message(site, browser, text):
    shown = submit(browser, site, text)
    assert shown["prediction"] == "ham" and shown["model-version"] == "1"
    assert 0 <= float(shown["propensity"]) < 0.5
    assert shown["kept"] == text


def test_html_in_a_message_is_shown_not_run(site, browser):
    text = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> see you at lunch'
    shown = submit(browser, site, text)
    assert shown["kept"] == text and shown["prediction"] in ("spam", "ham")
    assert browser.execute_script("return typeof window.pwned") == "undefined"


def test_the_health_link(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + "/")
    browser.find_element(By.LINK_TEXT, "health").click()
    WebDriverWait(browser, WAIT_S).until(ec.url_to_be(site + "/health"))
    health = json.loads(browser.find_element(By.TAG_NAME, "pre").text)
    assert health["status"] == "ok" and health["ready"] and not health["fallback"]
    assert health["serving"]["version"] == "1" and health["serving"]["scorer"] == "lean"
