"""Coverage reports that count the code servers run in other processes — and in containers.

``make coverage`` runs::

    python -m aml.devtools.covreport assignment3 assignment4

For each folder it runs that folder's ``test.py`` under pytest-cov with the folder's ``.coveragerc``, then writes
the report to ``<folder>/coverage.txt`` and prints it. The ``.coveragerc`` files set ``[run] patch = subprocess``
(coverage ≥ 7.10), so a server launched as a separate process (``python app.py``) is measured too, and
``sigterm = true`` so that a server stopped with SIGTERM still saves its data; ``parallel = true`` gives each
process its own data file, which pytest-cov combines at the end. A report from plain ``--cov`` without these would
measure the test file only, not the ``app.py`` lines that run inside the server.

A server in a container is a process coverage cannot patch from outside. :func:`container_coverage` makes it
measurable without changing the image or its command: it mounts this environment's ``coverage`` package and a
``sitecustomize.py`` that starts it (Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``), collects the
data files the container writes, and hands them to the test session's coverage, with paths inside the image mapped
back to the repository through the ``[paths]`` section of the ``.coveragerc``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aml.core import config

RCFILE = ".coveragerc"
REPORT = "coverage.txt"
_SITECUSTOMIZE = "import coverage\n\ncoverage.process_startup()\n"


def _summary(pytest_output: str) -> str:
    """pytest's closing line without its timing, e.g. ``12 passed, 1 skipped`` (stable from run to run)."""
    for line in reversed(pytest_output.strip().splitlines()):
        if re.search(r"\b(passed|failed|error|errors|skipped|no tests ran)\b", line):
            return re.sub(r"\s+in [\d.]+s.*$", "", line.strip("= ")).strip()
    return "no pytest summary"


def run(folder: str | Path, root: str | Path | None = None, extra_args: Sequence[str] = ()) -> tuple[int, str]:
    """Run ``<folder>/test.py`` with coverage; write and return the report. Returns (pytest's exit code, report)."""
    root = Path(root or config.REPO_ROOT).resolve()
    folder = (root / folder).resolve()
    rel = folder.relative_to(root)
    rcfile, tests = folder / RCFILE, folder / "test.py"
    for path in (rcfile, tests):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: every covered folder has a test.py and a {RCFILE}")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(tests.relative_to(root)),
        "-q",
        "-p",
        "no:cacheprovider",
        "--cov",
        f"--cov-config={rcfile.relative_to(root)}",
        "--cov-report=",
        *extra_args,
    ]
    print(f"$ {' '.join(cmd[2:])}", flush=True)
    proc = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, end="", flush=True)
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "report", f"--rcfile={rcfile.relative_to(root)}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    text = (
        f"# python -m aml.devtools.covreport {rel}  (make coverage): coverage of {rel}/test.py, subprocesses and containers "
        f"included\n# pytest: {_summary(proc.stdout)}\n{report.stdout}{report.stderr}"
    )
    (folder / REPORT).write_text(text)
    print(text, end="", flush=True)
    return (proc.returncode or report.returncode), text


@dataclass
class ContainerCoverage:
    """Volumes and environment that make a container's Python measure itself (see :func:`container_coverage`)."""

    folder: Path
    volumes: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    collected: list[Path] = field(default_factory=list)


def _active_coverage():
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is installed wherever tests run
        return None
    return coverage.Coverage.current()


@contextlib.contextmanager
def container_coverage(
    include: Sequence[str] = ("/app/*",), site_dir: str = "/opt/aml-coverage"
) -> Iterator[ContainerCoverage | None]:
    """Measure the Python files matching ``include`` inside a container, when this process is itself measured.

    Yields ``None`` when no coverage is running here (a plain ``pytest``): nothing is mounted then. Otherwise yields
    the ``volumes``/``env`` to add to the container's run; after the block (the container must have stopped, so
    its data is saved) the data files are copied next to this session's data file, where the final combine picks
    them up. The container's user must be able to write the mounted data folder: it is made world-writable.
    """
    cov = _active_coverage()
    if cov is None:
        yield None
        return
    import coverage

    tmp = Path(tempfile.mkdtemp(prefix="aml-cov-"))
    try:
        data, site = tmp / "data", tmp / "site"
        data.mkdir()
        site.mkdir()
        data.chmod(0o777)
        tmp.chmod(0o755)
        (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        (data / RCFILE).write_text(
            "[run]\ndata_file = /coverage-data/.coverage\nparallel = true\nsigterm = true\n"
            f"branch = {str(bool(cov.config.branch)).lower()}\n"  # data of both kinds must match to combine
            f"include = {', '.join(include)}\n"
        )
        (data / RCFILE).chmod(0o644)
        box = ContainerCoverage(
            folder=data,
            volumes={
                str(Path(coverage.__file__).parent): f"{site_dir}/coverage:ro",
                str(site / "sitecustomize.py"): f"{site_dir}/sitecustomize.py:ro",
                str(data): "/coverage-data",
            },
            env={"PYTHONPATH": site_dir, "COVERAGE_PROCESS_START": f"/coverage-data/{RCFILE}"},
        )
        yield box
        target = Path(cov.config.data_file).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        for i, found in enumerate(sorted(data.glob(".coverage.*"))):
            dest = target.with_name(f"{target.name}.container-{tmp.name}-{i}")
            shutil.copyfile(found, dest)
            box.collected.append(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make coverage``: measure each folder's ``test.py`` and write ``<folder>/coverage.txt``;
    returns the first non-zero exit code of the folders' test runs (0 when all passed)."""
    parser = argparse.ArgumentParser(description="Coverage of each folder's test.py, written to <folder>/coverage.txt.")
    parser.add_argument("folders", nargs="+", help="e.g. assignment3 assignment4")
    args = parser.parse_args(argv)
    worst = 0
    for folder in args.folders:
        code, _ = run(folder)
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main())
