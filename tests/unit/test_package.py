"""The library's shape: which subpackage may import which (one direction, no cycles), and what a light import costs.

core  <-  spam, transfer, mlops  <-  project  <-  ops  <-  devtools;   core, spam, transfer  <-  deep
(the spam filter and MLflow/DVC meet only in aml.project, the ML system, and in front ends: notebooks, test fixtures)
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aml

PACKAGE = Path(aml.__file__).resolve().parent
#: subpackage -> the aml subpackages it may import
ALLOWED = {
    "core": {"core"},
    "spam": {"core", "spam", "transfer"},  # the fine-tuned transformer reuses the transfer-learning recipe
    "project": {"core", "spam", "mlops", "project"},
    "transfer": {"core", "transfer"},
    "mlops": {"core", "mlops"},
    "deep": {"core", "spam", "transfer", "deep"},
    "ops": {"core", "spam", "mlops", "project", "ops"},
    "devtools": {"core", "spam", "mlops", "project", "ops", "devtools"},
}


def aml_imports(path: Path) -> set[str]:
    """The aml subpackages a module imports (at any depth: lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aml":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("aml.") and "." in a.name)
    return found


def test_every_module_belongs_to_a_known_subpackage():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
    assert top == ["__init__.py", *sorted(ALLOWED)]


@pytest.mark.parametrize("sub", sorted(ALLOWED))
def test_imports_run_one_way(sub):
    bad = {}
    for module in sorted((PACKAGE / sub).glob("*.py")):
        extra = aml_imports(module) - ALLOWED[sub]
        if extra:
            bad[module.name] = sorted(extra)
    assert not bad, f"aml.{sub} may import only {sorted(ALLOWED[sub])}: {bad}"


def test_importing_the_core_loads_no_heavy_framework():
    code = (
        "import sys, aml.core, aml.core.config, aml.core.datasets, aml.core.splits, aml.core.modelstore, "
        "aml.core.reporting, aml.core.logs, aml.core.hashing, aml.core.metrics, aml.core.plots; "
        "print(sorted(m for m in ('torch', 'mlflow', 'flask', 'dvc', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_service_modules_need_neither_pandas_nor_torch():
    code = (
        "import sys, aml.spam, aml.spam.scoring, aml.spam.service, aml.spam.lean; "
        "print(sorted(m for m in ('pandas', 'torch', 'mlflow', 'dvc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_version_number():
    """``pyproject.toml`` carries no version of its own: setuptools reads ``aml.__version__``, the only one, so the
    installed package, the docs and ``aml.__version__`` cannot disagree."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aml.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", aml.__version__)


def test_the_package_docstring_lists_every_subpackage():
    listed = set(re.findall(r"^    aml\.(\w+)", aml.__doc__, re.M))
    assert listed == set(ALLOWED)


def test_the_project_modules_stay_small():
    """aml.project along the request flow: no module over 600 lines, no function over 80 (issue 21)."""
    too_long = {}
    for module in sorted((PACKAGE / "project").glob("*.py")):
        tree = ast.parse(module.read_text())
        if len(module.read_text().splitlines()) > 600:
            too_long[module.name] = "module"
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                too_long[f"{module.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not too_long, too_long


def test_the_project_client_needs_neither_flask_nor_mlflow():
    code = (
        "import sys, aml.project.client, aml.project.endpoints; "
        "print(sorted(m for m in ('flask', 'mlflow', 'pandas', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_data_file_of_the_package_is_declared_package_data():
    """A template or data file the library reads must travel in the wheel (the service image installs the wheel, not
    the source tree): each non-Python file under ``shared/aml`` matches a ``[tool.setuptools.package-data]`` glob."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    declared = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert files, "the package has data files (templates, the out-of-domain set)"
    undeclared = []
    for path in files:
        rel = path.relative_to(PACKAGE.parent)
        ok = any(
            rel.parts[: len(pkg.split("."))] == tuple(pkg.split("."))
            and any(fnmatch.fnmatch("/".join(rel.parts[len(pkg.split(".")) :]), glob) for glob in globs)
            for pkg, globs in declared.items()
        )
        if not ok:
            undeclared.append(str(rel))
    assert not undeclared, f"not in the wheel: {undeclared}"
