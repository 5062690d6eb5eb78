"""The documentation site (``docs/``, ``make docs``) and what it documents.

- **Docstrings.** Every public function, class and method of the library (``shared/aml``) and of ``project/src``
  has a docstring of its own: the API reference shows exactly these. Public: a name that does not start with ``_``,
  defined in the module's own source (imported names belong to the module that defines them). Definitions are read
  with :mod:`ast`, not imported, so a dataclass's or named tuple's generated ``__doc__`` (its signature) or a
  docstring inherited from a base class does not count, and nothing (torch, MLflow) is imported to check.
- **The build.** ``sphinx-build -W --keep-going`` over ``docs/`` succeeds, so a broken reference, a malformed
  docstring or a missing page fails ``make test``; every public definition is in the API reference; the executed
  notebooks are linked; and the built pages render in a real browser (headless Chromium).

The site is built once per test worker into a temporary folder, with a build folder of its own (``AML_BUILD_DIR``)
holding one fake executed notebook, so that both cases of the notebooks page (linked, and "run ``make run`` first")
are checked. The diagrams need Graphviz's ``dot``, and the browser checks need Debian's headless Chromium with its
driver (``AML_CHROMIUM`` / ``AML_CHROMEDRIVER`` point elsewhere), given to Selenium explicitly so Selenium Manager
never downloads anything. Without them those tests skip, except under ``CI=true``, where they fail: CI must build
and open the site.
"""

from __future__ import annotations

import ast
import functools
import html as html_module
import http.server
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

import aml
from aml.devtools import testenv

PACKAGE = Path(aml.__file__).resolve().parent
ROOT = PACKAGE.parents[1]
DOCS = ROOT / "docs"
PROJECT_SRC = ROOT / "project" / "src"


def module_name(path: Path) -> str:
    """``aml.core.config`` for ``shared/aml/core/config.py``, ``aml.core`` for its ``__init__.py``, ``src.train`` for
    ``project/src/train.py`` (the package ``src``, imported from ``project/``)."""
    parts = path.relative_to(PROJECT_SRC.parent if path.parent == PROJECT_SRC else PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    """The library's modules and the project's scripts."""
    return sorted(PACKAGE.rglob("*.py")) + sorted(PROJECT_SRC.glob("*.py"))


def _body(nodes: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``nodes``, with those inside ``if``/``try`` blocks (conditional definitions) flattened in."""
    out: list[ast.stmt] = []
    for node in nodes:
        if isinstance(node, ast.If):
            out += _body(node.body) + _body(node.orelse)
        elif isinstance(node, ast.Try):
            out += _body(node.body) + _body(node.orelse) + _body(node.finalbody)
            for handler in node.handlers:
                out += _body(handler.body)
        else:
            out.append(node)
    return out


def public_definitions(source: str) -> list[tuple[str, bool]]:
    """``(qualified name, has its own docstring)`` for each public function, class and method (properties included)
    defined in ``source``; the methods of private classes are skipped, as they are not documented either."""
    found: list[tuple[str, bool]] = []

    def visit(nodes: list[ast.stmt], prefix: str) -> None:
        for node in _body(nodes):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name.startswith("_"):
                    continue
                name = prefix + node.name
                found.append((name, bool((ast.get_docstring(node) or "").strip())))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    visit(ast.parse(source).body, "")
    return found


def test_the_walker_finds_what_lacks_a_docstring():
    source = '''
import os
from pathlib import Path

def documented():
    """Yes."""

def bare(): pass

def _private(): pass

class Thing:
    """A thing."""
    size: int = 0

    def method(self): return 1

    @property
    def prop(self):
        """Documented property."""

    def _helper(self): pass

class _Hidden:
    def method(self): pass

if os.name == "posix":
    def conditional(): pass
'''
    assert public_definitions(source) == [
        ("documented", True),
        ("bare", False),
        ("Thing", True),
        ("Thing.method", False),
        ("Thing.prop", True),
        ("conditional", False),
    ]


def test_the_walk_covers_the_library_and_the_project():
    names = {module_name(p) for p in source_files()}
    assert {"aml", "aml.core.config", "aml.spam.stages", "aml.project.system", "src.train", "src.constructors"} <= names
    assert len(names) >= 50


@pytest.mark.parametrize("path", source_files(), ids=lambda p: module_name(p))
def test_every_public_definition_has_a_docstring(path):
    tree = ast.parse(path.read_text())
    assert (ast.get_docstring(tree) or "").strip(), f"{path.relative_to(ROOT)}: the module has no docstring"
    missing = [name for name, documented in public_definitions(path.read_text()) if not documented]
    assert not missing, (
        f"{path.relative_to(ROOT)}: public definitions without a docstring: {', '.join(missing)} "
        "(say what it does and why, in a sentence or two; the API reference shows it)"
    )


# -- the build -------------------------------------------------------------------------------------------------------

BUILD_TIMEOUT_S = 300
WAIT_S = 30
#: the wiki pages and the first heading each must render with
PAGES = {
    "index.html": "AML Workspace",
    "use-case-spam.html": "Use-case design: the SMS spam filter",
    "use-case-fraud.html": "Use-case design: credit-card fraud detection",
    "use-case-retinopathy.html": "Use-case design: diabetic retinopathy detection",
    "use-case-ads.html": "Use-case design: ads recommendation",
    "use-case-ranking.html": "Use-case design: relevance ranking",
    "solution-design.html": "Solution design and experiment design",
    "code-design.html": "Code design",
    "data-model.html": "Data model",
    "system-design.html": "System design",
    "howto.html": "How-to guides",
    "notebooks.html": "Executed notebooks",
    "api/index.html": "API reference",
}
SUBPACKAGES = ("core", "spam", "transfer", "mlops", "project", "ops", "devtools")
FAKE_NOTEBOOK = "assignment1/train.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site (its HTML folder)."""
    if shutil.which("dot") is None:
        testenv.skip_or_fail("Graphviz's dot is not installed (apt-get install graphviz): the diagrams cannot be drawn")
    root = tmp_path_factory.mktemp("docs")
    fake = root / "build" / "html" / FAKE_NOTEBOOK
    fake.parent.mkdir(parents=True)
    fake.write_text("<!DOCTYPE html><html><head><title>train</title></head><body><h1>Executed train</h1></body></html>")
    out = root / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(root / "doctrees")]
    env = {**os.environ, "AML_BUILD_DIR": str(root / "build")}
    done = subprocess.run(
        [*command, str(DOCS), str(out)], env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    problems = [line for line in done.stderr.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    if done.returncode != 0 or problems:
        pytest.fail(
            f"sphinx-build -W failed (exit code {done.returncode}); fix these:\n"
            + "\n".join(problems or done.stderr.splitlines()[-40:])
        )
    return out


def inventory(site: Path) -> dict[str, str]:
    """``objects.inv`` of the site as ``{name: "domain:role"}`` (the format Sphinx writes: four header lines, then
    zlib-compressed lines ``name domain:role priority uri display-name``)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2")
    entry = re.compile(r"(.+?)\s+(\S+)\s+(-?\d+)\s+?(\S*)\s+(.*)")  # names may hold spaces (Sphinx's own parser)
    lines = zlib.decompress(data[header_end:]).decode().splitlines()
    return {m[1]: m[2] for m in map(entry.fullmatch, lines) if m}


def text_of(html: str) -> str:
    """The visible text of a page, roughly: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.mark.slow
def test_every_page_is_built_with_its_heading(site):
    for page, heading in PAGES.items():
        html = (site / page).read_text()
        assert re.search(rf"<h1>{re.escape(heading)}<a class=\"headerlink\"", html), f"{page}: no <h1>{heading}"


@pytest.mark.slow
def test_every_public_definition_is_in_the_api_reference(site):
    documented = inventory(site)
    expected = []
    for path in source_files():
        module = module_name(path)
        expected += [module] + [f"{module}.{name}" for name, _ in public_definitions(path.read_text())]
    missing = [name for name in expected if name not in documented]
    assert not missing, f"not in the API reference (add the module to docs/api/*.rst): {missing}"
    assert documented["aml.project.system"] == "py:module" and documented["src.train.main"] == "py:function"


@pytest.mark.slow
@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_each_subpackage_page_documents_all_its_modules(site, subpackage):
    package = importlib.import_module(f"aml.{subpackage}")
    html = (site / "api" / f"{subpackage}.html").read_text()
    for info in pkgutil.iter_modules(package.__path__):
        assert f'id="module-aml.{subpackage}.{info.name}"' in html, f"aml.{subpackage}.{info.name} is not on the page"


@pytest.mark.slow
def test_docstrings_keep_their_prose(site):
    """Napoleon would read the text before the first colon of an attribute's docstring as its type ("the model
    catalogue, one entry per benchmark (simplest first)"), which ``docs/conf.py`` prevents."""
    html = text_of((site / "api" / "spam.html").read_text())
    assert "the model catalogue, one entry per benchmark (simplest first): name -> factory" in html
    assert "Each model’s threshold, chosen on validation:" in html


@pytest.mark.slow
def test_the_diagrams_are_drawn_from_text(site):
    html = (site / "system-design.html").read_text()
    svgs = re.findall(r'<object data="(_images/graphviz-[0-9a-f]+\.svg)" type="image/svg\+xml"', html)
    assert len(svgs) == 2, "the system diagram and the scale-out diagram"
    system = (site / svgs[0]).read_text()
    assert ET.fromstring(system).tag == "{http://www.w3.org/2000/svg}svg"
    assert "<svg " in system, "plain <svg>, no ns0: prefixes (docs/conf.py registers the namespaces)"
    for label in ("data store", "model store: MLflow tracking", "POST /score", "post-receive", "Prometheus"):
        assert label in system, f"the system diagram lacks {label!r}"
    scale = (site / svgs[1]).read_text()
    assert ET.fromstring(scale).tag == "{http://www.w3.org/2000/svg}svg"
    assert "load balancer" in scale and "object storage" in scale
    links = re.findall(r'href="\.\./([^"#]+)(?:#([^"]*))?"', system)
    assert links, "the diagram's boxes link to the API and data-model pages"
    for page, anchor in links:
        target = (site / page).read_text()
        assert not anchor or f'id="{anchor}"' in target, f"the diagram links to a missing {page}#{anchor}"


@pytest.mark.slow
def test_the_executed_notebooks_are_linked_and_copied(site):
    html = (site / "notebooks.html").read_text()
    links = re.findall(r'class="reference external notebook" href="([^"]+)"', html)
    assert links == [f"notebooks/{FAKE_NOTEBOOK}"]
    assert "Executed train" in (site / links[0]).read_text()
    text = text_of(html)
    assert "assignment1/prepare: not executed yet (run make run first)" in text
    assert "project/system: not executed yet" in text


# -- in a browser ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP on a loopback port, as a reader gets it (from ``file://`` pages the browser would not let
    the tests look inside the embedded diagrams)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    with testenv.serving_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site's files without logging each request to stderr."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass


@pytest.fixture(scope="module")
def browser(served):
    """Headless Chromium driven by Selenium (skipped without it, a failure under ``CI=true``)."""
    testenv.browser_or_skip()
    with testenv.headless_chrome(window=(1200, 900), page_load_s=WAIT_S) as driver:
        yield driver


def open_page(driver, url: str) -> None:
    """Load ``url`` and wait until the page, its images and its embedded SVG diagrams have finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")


#: what the browser reports as broken: images that did not decode, embedded SVGs without an <svg> document
BROKEN = """
const images = Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
const objects = Array.from(document.querySelectorAll('object')).filter(o => {
  const doc = o.contentDocument;
  const root = doc && doc.documentElement;
  return !root || root.localName !== 'svg' || root.namespaceURI !== 'http://www.w3.org/2000/svg';
}).map(o => o.data);
return images.concat(objects);
"""


@pytest.mark.slow
def test_the_broken_image_check_sees_broken_images(served, browser):
    open_page(browser, served + "/index.html")
    assert browser.execute_script(BROKEN) == []
    browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const img = document.createElement('img');
        const obj = document.createElement('object');
        let left = 2;
        const one = () => { if (--left === 0) done(); };
        img.onload = img.onerror = obj.onload = obj.onerror = one;
        img.src = 'missing.png';
        obj.type = 'image/svg+xml';
        obj.data = 'missing.svg';
        document.body.append(img, obj);
        """
    )
    broken = browser.execute_script(BROKEN)
    assert [url.rsplit("/", 1)[-1] for url in broken] == ["missing.png", "missing.svg"]


@pytest.mark.slow
def test_the_index_renders(served, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, served + "/index.html")
    assert browser.find_element(By.TAG_NAME, "h1").text == "AML Workspace"
    assert browser.title.startswith("AML Workspace")
    assert browser.execute_script(BROKEN) == []
    sidebar = browser.find_element(By.CLASS_NAME, "sidebar-tree").text
    for entry in ("System design", "Data model", "API reference"):
        assert entry in sidebar


@pytest.mark.slow
def test_the_search_box_finds_a_class(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, served + "/index.html")
    box = browser.find_element(By.CSS_SELECTOR, "input.sidebar-search[name=q]")
    box.send_keys("DataStore", Keys.ENTER)
    WebDriverWait(browser, WAIT_S).until(lambda d: "search.html" in d.current_url)

    def results(driver):
        return [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#search-results ul.search a")]

    WebDriverWait(browser, WAIT_S).until(results)
    assert any("api/mlops.html#aml.mlops.datastore.DataStore" in href for href in results(browser)), results(browser)


@pytest.mark.slow
def test_an_api_page_renders_with_its_docstrings(served, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, served + "/api/project.html")
    assert browser.find_element(By.TAG_NAME, "h1").text == "aml.project — the ML system"
    entry = browser.find_element(By.ID, "aml.project.prepare.prepare")
    assert entry.is_displayed()
    description = entry.find_element(By.XPATH, "./following-sibling::dd").text
    assert "The data stage" in description
    assert browser.execute_script(BROKEN) == []


@pytest.mark.slow
def test_the_diagram_page_renders_its_diagrams(served, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, served + "/system-design.html")
    assert browser.find_element(By.TAG_NAME, "h1").text == "System design"
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings == ["Components and request flows", "Scaling out: compute and storage decoupled"]
    assert browser.execute_script(BROKEN) == []
    diagrams = browser.find_elements(By.CSS_SELECTOR, "object.graphviz")
    assert len(diagrams) == 2
    for diagram in diagrams:
        assert diagram.size["width"] > 300 and diagram.size["height"] > 150, diagram.size
    labels = browser.execute_script(
        "return Array.from(document.querySelector('object.graphviz').contentDocument.querySelectorAll('text'))"
        ".map(t => t.textContent).join(' ')"
    )
    assert "data store" in labels and "POST /train → job" in labels
