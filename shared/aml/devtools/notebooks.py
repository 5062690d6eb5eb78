"""Run the workspace's notebooks: ``make run`` calls ``python -m aml.devtools.notebooks``.

Every notebook (``lectures/*.ipynb``, ``assignment*/*.ipynb``, ``project/*.ipynb``, in folder then name order) is executed with papermill
in its own folder (plain-text progress bars, ``AML_PROGRESS=text``), written to
``build/notebooks/<folder>/<name>.ipynb``, rendered to ``build/html/``, and the metrics
the notebooks recorded (``build/metrics.json``) are printed as one table.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from aml.core import config, reporting

PATTERNS = ("lectures/*.ipynb", "assignment*/*.ipynb", "project/*.ipynb")

#: The first code cell of every notebook, character for character (``tests/test_workspace.py`` checks it): in Colab it
#: clones the workspace (``AML_WORKSPACE_URL``, e.g. your fork; set it with ``%env`` before running the cell) and
#: installs what Colab lacks, failing loudly with the command's own error; elsewhere it does nothing. The notebook's
#: next cell moves into the notebook's folder with :func:`aml.core.config.enter_notebook_folder`.
COLAB_CELL = """\
# Colab setup (the same cell in every notebook; does nothing outside Colab). To use your fork, run
# %env AML_WORKSPACE_URL=https://github.com/<you>/<your-fork> before this cell.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    url = os.environ.get("AML_WORKSPACE_URL", "https://github.com/aml-course/aml-workspace")
    steps = [["git", "clone", "-q", "--depth", "1", url, "/content/aml-workspace"]]
    steps = steps if not os.path.isdir("/content/aml-workspace") else []
    steps += [[sys.executable, "-m", "pip", "install", "-q", "-r", "/content/aml-workspace/requirements-colab.txt"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"Colab setup failed: {' '.join(step)}\\n{done.stderr[-3000:]}")
    sys.path.insert(0, "/content/aml-workspace/shared")"""


def discover(root: str | Path | None = None, only: list[str] | None = None) -> list[Path]:
    """The workspace's notebooks in run order; ``only`` keeps those whose relative path matches a glob."""
    root = Path(root or config.REPO_ROOT)
    found = sorted({p for pattern in PATTERNS for p in root.glob(pattern) if ".ipynb_checkpoints" not in p.parts})
    if only:
        found = [p for p in found if any(fnmatch.fnmatch(str(p.relative_to(root)), g) for g in only)]
    return found


def execute(
    notebook: str | Path,
    out_dir: str | Path,
    parameters: dict | None = None,
    root: str | Path | None = None,
    timeout: float | None = None,
) -> Path:
    """Execute ``notebook`` with papermill in its own folder, ``parameters`` injected after its ``parameters`` cell
    (``timeout``: seconds per cell, default none); the executed copy goes under ``out_dir``."""
    import papermill
    from jupyter_client.manager import KernelManager

    notebook = Path(notebook).resolve()
    root = Path(root or config.REPO_ROOT).resolve()
    out = Path(out_dir) / notebook.relative_to(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the kernel talks to papermill over Unix sockets in a private folder, not loopback TCP: nothing else on the
    # machine can connect to it (and ipykernel has no "running over TCP without encryption" warning to print)
    with tempfile.TemporaryDirectory(prefix="aml-kernel-") as sockets:
        kernel = json.loads(notebook.read_text()).get("metadata", {}).get("kernelspec", {}).get("name", "python3")
        km = KernelManager(kernel_name=kernel, transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters=parameters or {},
                cwd=str(notebook.parent),
                progress_bar=False,
                km=km,
                execution_timeout=timeout,
            )
        finally:  # a kernel manager passed in is not shut down by papermill: the kernel would outlive the run
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return out


#: a code cell whose source matches draws a figure, so its executed copy must hold an image
DRAWS = re.compile(r"plt\.show\(\)|\bplots\.plot_\w+\(|\.plot_\w+\(|vision\.plot_\w+\(")


def missing_figures(executed: str | Path) -> list[int]:
    """Indices (among code cells) of the cells of an executed notebook that draw a figure (:data:`DRAWS`) but hold
    no ``image/png`` output: what a non-inline matplotlib backend (``MPLBACKEND=Agg``) silently causes."""
    import nbformat

    nb = nbformat.read(Path(executed), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return [
        i
        for i, cell in enumerate(code)
        if DRAWS.search(cell.source) and not any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
    ]


def render_html(executed: str | Path, html_dir: str | Path, root: str | Path) -> Path:
    """Render an executed notebook to HTML under ``html_dir`` (same relative path); consecutive stream outputs are
    merged and carriage returns applied, so each progress bar shows as its last state."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    target = Path(html_dir) / executed.relative_to(root).with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(config={"CoalesceStreamsPreprocessor": {"enabled": True}})
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body, encoding="utf-8")
    return target


def run_all(
    only: list[str] | None = None, budget: str | None = None, build: str | Path | None = None, stream=sys.stdout
) -> dict:
    """Execute and render the notebooks, then return the metrics file's content."""
    if budget:
        os.environ[config.BUDGET_ENV] = budget
    os.environ.setdefault(config.PROGRESS_ENV, "text")  # the executed copies keep finished bars, not empty widgets
    build = Path(build or config.build_dir())
    notebooks_dir, html_dir = build / "notebooks", build / "html"
    failures = []
    for nb in discover(only=only):
        name = nb.relative_to(config.REPO_ROOT)
        print(f"== {name} (budget {config.budget()})", file=stream, flush=True)
        start = time.perf_counter()
        try:
            executed = execute(nb, notebooks_dir)
        except Exception as exc:  # noqa: BLE001 - report every failing notebook, then fail
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"   FAILED after {time.perf_counter() - start:.0f} s", file=stream, flush=True)
            continue
        missing = missing_figures(executed)
        if missing:
            failures.append(f"{name}: code cells {missing} draw a figure but the executed copy holds no image")
            print(f"   FAILED: figures missing in code cells {missing}", file=stream, flush=True)
            continue
        html = render_html(executed, html_dir, notebooks_dir)
        print(f"   ok in {time.perf_counter() - start:.0f} s -> {executed} , {html}", file=stream, flush=True)
    metrics = reporting.read_metrics()
    print(f"\nMetrics ({config.metrics_file()}):\n{reporting.summary_table(metrics)}", file=stream)
    if failures:
        raise RuntimeError("notebooks failed:\n" + "\n".join(failures))
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make run`` (``python -m aml.devtools.notebooks``): execute the notebooks (``--only``
    globs, ``--budget``, ``--build``) or ``--list`` them; exit code 1 when a notebook failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="glob of notebooks to run, e.g. 'assignment1/*'")
    parser.add_argument("--budget", choices=config.BUDGETS, help="override AML_BUDGET")
    parser.add_argument("--build", help="build folder (default: AML_BUILD_DIR or <repo>/build)")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for nb in discover(only=args.only):
            print(nb.relative_to(config.REPO_ROOT))
        return 0
    try:
        run_all(only=args.only, budget=args.budget, build=args.build)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
