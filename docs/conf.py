"""Sphinx configuration of the workspace's documentation site: ``make docs`` → ``build/docs/html``.

The API reference is generated from the docstrings (autodoc, napoleon, sphinx-autodoc-typehints): one page per
subpackage with every module it has, and one for ``project/src`` (:func:`submodule_sections`, :func:`script_sections`:
a new module or script needs no edit here). The wiki pages are Markdown (MyST); the diagrams are drawn by Graphviz
from ``diagrams/*.dot``. The build runs with warnings as errors and ``nitpicky`` on, so a reference to a function,
class or module of ours that does not exist fails it; references to other libraries' types are let through
(``nitpick_ignore_regex``), since checking them would need their inventories from the network (intersphinx).

The executed notebooks of ``make run`` (``<build>/html/<folder>/<name>.html``, :func:`aml.core.config.build_dir`)
are copied into the site under ``notebooks/`` and listed on ``notebooks.md`` (:func:`notebook_list`); before
``make run`` that page says so instead of linking to files that do not exist.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# project/src is the package ``src`` (``python -m src.train`` from project/): autodoc imports it from project/
sys.path.insert(0, str(ROOT / "project"))
sys.path.insert(0, str(ROOT / "shared"))
# importing the library must need neither network nor GPU: the pretrained models load offline, lazily
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from aml import __version__  # noqa: E402
from aml.core import config  # noqa: E402
from aml.devtools import notebooks  # noqa: E402

project = "AML Workspace"
author = "AML course"
copyright = "AML course"  # noqa: A001 (Sphinx's setting name)
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx.ext.graphviz",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- autodoc: every public member a module defines (``__all__`` or not); the tests check each has a docstring ------
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
typehints_fully_qualified = False
always_document_param_types = False

# sphinx-autodoc-typehints 3.6.1 calls an API Sphinx 9 deprecates: a Python warning (not a Sphinx one, -W ignores it)
# printed once per docstring; hidden here so that the build log shows only what matters
warnings.filterwarnings("ignore", message=".*set_application' is deprecated", module="sphinx_autodoc_typehints.*")
# Classes we derive from other libraries (werkzeug's HTTP errors) carry their annotations into our signatures; names
# those libraries import only for type checking (werkzeug's ``SansIOResponse``) cannot be resolved by anyone.
suppress_warnings = ["sphinx_autodoc_typehints.forward_reference"]

# -- references: ours must resolve; other libraries' types cannot be checked offline --------------------------------
nitpicky = True
_OTHER_LIBRARIES = (
    "pd|pandas|np|numpy|sklearn|scipy|torch|nn|torchvision|transformers|mlflow|flask|werkzeug|fsspec|requests|"
    "matplotlib|plt|PIL|Image|yaml|pandera|pa|prometheus_client|joblib|pooch|dvc|gunicorn|selenium|papermill|"
    "nbformat|nbconvert|_io|_thread|builtins"
)
_EXTERNAL = rf"({_OTHER_LIBRARIES}|{'|'.join(sorted(sys.stdlib_module_names))})(\..+)?"
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    # private helpers of ours are not in the reference, but a public signature may name them
    (r"py:class", r"aml(\.\w+)*\._\w+"),
    # bare names of other libraries' classes as they appear in annotations and docstrings
    (
        r"py:class",
        r"(Path|DataFrame|Series|ndarray|Tensor|Module|Pipeline|Flask|Response|HTTPException|Popen|Logger|"
        r"ArgumentParser|Axes|Figure|Dataset|DataLoader|Optimizer|AbstractFileSystem|Callable|Iterator|"
        r"Iterable|Mapping|Sequence|Any|TextIO|BinaryIO|CompletedProcess|NoneType|PathLike|Generator|"
        r"BaseEstimator|ClassifierMixin|TransformerMixin|Thread|Lock|Event|Enum|IntEnum|MlflowClient|"
        r"ModelVersion|Run|Counter|Gauge|Registry|HTTPBasicAuth|HTTPTokenAuth|Request|SansIOResponse)",
    ),
]

# -- pages ------------------------------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
graphviz_output_format = "svg"
# Sphinx rewrites the links inside a diagram with ElementTree, which would write the SVG with ``ns0:`` prefixes on
# every element (valid XML, but unreadable and brittle); with the namespaces registered it keeps plain ``<svg>``.
ET.register_namespace("", "http://www.w3.org/2000/svg")
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")

html_theme = "furo"
html_title = f"AML Workspace {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


def notebook_html_dir() -> Path:
    """Where ``make run`` renders the executed notebooks: ``<build>/html`` (``AML_BUILD_DIR``)."""
    return config.build_dir() / "html"


def notebook_list(html_dir: Path) -> str:
    """The Markdown list of the workspace's notebooks, each linked to its executed copy under ``notebooks/`` in the
    site when ``make run`` rendered it, with a note when it did not."""
    rows = []
    for path in notebooks.discover(ROOT):
        rel = path.relative_to(ROOT).with_suffix(".html")
        if (html_dir / rel).is_file():
            # raw HTML: the copies are not Sphinx documents, a Markdown link would be taken for a cross-reference
            name, href = rel.with_suffix("").as_posix(), f"notebooks/{rel.as_posix()}"
            rows.append(f'- <a class="reference external notebook" href="{href}">{name}</a> (executed)')
        else:
            rows.append(f"- {rel.with_suffix('').as_posix()}: not executed yet (run `make run` first)")
    if not any("(executed)" in row for row in rows):
        rows.insert(0, f"No executed notebooks in `{html_dir}`: run `make run` first, then `make docs`.\n")
    return "\n".join(rows) + "\n"


def submodule_sections(package: str) -> str:
    """The sections of a subpackage's API page: one ``automodule`` per module of ``package`` (name order), each under
    its own heading. Generated, so that a new module is on the page without editing it; the tests check that every
    module and every public definition is."""
    lines: list[str] = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("_"):
            name = f"{package}.{info.name}"
            lines += [name, "-" * len(name), "", f".. automodule:: {name}", ""]
    return "\n".join(lines)


def script_sections(folder: Path) -> str:
    """The package ``folder`` (``project/src``, imported as ``src``) and one ``automodule`` per module of it."""
    modules = sorted(path.stem for path in folder.glob("*.py") if path.stem != "__init__")
    return "\n".join([f".. automodule:: {folder.name}\n"] + [f".. automodule:: {folder.name}.{m}\n" for m in modules])


def _fill_placeholders(app, docname: str, source: list[str]) -> None:
    if docname == "notebooks":
        source[0] = source[0].replace("{{ notebook_list }}", notebook_list(notebook_html_dir()))
    elif docname == "api/project-src":
        source[0] = source[0].replace("{{ scripts }}", script_sections(ROOT / "project" / "src"))
    elif docname.startswith("api/") and "{{ submodules }}" in source[0]:
        package = "aml." + docname.removeprefix("api/")
        source[0] = source[0].replace("{{ submodules }}", submodule_sections(package))


def _copy_notebooks(app, exception) -> None:
    html_dir = notebook_html_dir()
    if exception is None and app.builder.format == "html" and html_dir.is_dir():
        shutil.copytree(html_dir, Path(app.outdir) / "notebooks", dirs_exist_ok=True)


# napoleon reads the first line of an attribute's, a constant's or a property's docstring as ``type: description``
# (Google style) when it holds a colon, so "invariance groups: a template with ``{name}``…" (aml.spam.behaviour)
# would render as the type "invariance groups". Our docstrings are prose ("what: detail") and the types come from the
# annotations, so the line is broken after that colon (the same paragraph once rendered), which napoleon leaves alone.
_CODE_OR_ROLE = re.compile(r"(``.+?``|:\w+(?::\w+)*:`.+?`|`.+?`)")
_SINGLE_COLON = re.compile(r"(?<!:):(?!:)")


def _first_colon(line: str) -> int | None:
    """Index just past the first single colon of ``line`` outside inline code and roles (napoleon's split), or
    ``None``."""
    offset = 0
    for i, part in enumerate(_CODE_OR_ROLE.split(line)):
        match = _SINGLE_COLON.search(part) if i % 2 == 0 else None
        if match:
            return offset + match.end()
        offset += len(part)
    return None


def _keep_attribute_prose(app, what, name, obj, options, lines: list[str]) -> None:
    if what in ("attribute", "data", "property") and lines:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is not None:
            cut = _first_colon(lines[first])
            if cut is not None and lines[first][cut:].strip():
                lines[first : first + 1] = [lines[first][:cut], lines[first][cut:].strip()]


def _skip_generated_members(app, what, name, obj, skip, options):
    """Leave out the ``set_<method>_request`` methods scikit-learn generates on every estimator subclass (its
    metadata routing): they are scikit-learn's API, documented there, not ours."""
    if re.fullmatch(r"set_\w+_request", name) and "sklearn" in getattr(obj, "__module__", "") + repr(type(obj)):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _keep_attribute_prose, priority=400)  # before napoleon's (500)
    app.connect("autodoc-skip-member", _skip_generated_members)
    app.connect("source-read", _fill_placeholders)
    app.connect("build-finished", _copy_notebooks)
