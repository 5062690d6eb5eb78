import sys
import textwrap

import pytest

from aml.devtools import covreport

SERVER = """\
import sys


def shout(text):
    return text.upper()


if __name__ == "__main__":
    print(shout(sys.argv[1]))
"""

TEST = """\
import subprocess
import sys
from pathlib import Path


def test_runs_the_module_in_a_subprocess():
    here = Path(__file__).parent
    out = subprocess.run([sys.executable, str(here / "server.py"), "hi"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "HI"
"""

RC = """\
[run]
patch = subprocess
parallel = true
sigterm = true
source = demo
omit = */test.py
data_file = build/cov/.coverage
"""


def test_summary_drops_the_timing():
    assert covreport._summary("....\n12 passed, 1 skipped in 3.21s\n") == "12 passed, 1 skipped"
    assert covreport._summary("==== 1 failed, 2 passed in 0.5s ====") == "1 failed, 2 passed"
    assert covreport._summary("nothing here") == "no pytest summary"


def test_run_measures_code_that_only_runs_in_a_subprocess(tmp_path, capsys):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "server.py").write_text(SERVER)
    (demo / "test.py").write_text(TEST)
    (demo / ".coveragerc").write_text(RC)
    code, report = covreport.run("demo", root=tmp_path, extra_args=["-x"])
    assert code == 0, report
    assert (demo / "coverage.txt").read_text() == report
    line = next(x for x in report.splitlines() if x.startswith("demo/server.py"))
    assert line.split()[-1] == "100%", report  # only the subprocess ran it
    assert "# pytest: 1 passed" in report and "test.py" not in line
    assert report in capsys.readouterr().out  # the command prints what it writes


def test_run_needs_a_test_file_and_a_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="test.py and a .coveragerc"):
        covreport.run("empty", root=tmp_path)


def test_main_returns_the_worst_exit_code(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(covreport, "run", lambda folder: (calls.append(folder) or (3 if folder == "b" else 0), ""))
    assert covreport.main(["a", "b", "c"]) == 3 and calls == ["a", "b", "c"]


def test_container_coverage_without_coverage_mounts_nothing():
    if covreport._active_coverage() is not None:
        pytest.skip("this run is measured: the container case is exercised by assignment4/test.py::test_docker")
    with covreport.container_coverage() as box:
        assert box is None


def test_container_coverage_collects_the_data_files(tmp_path):
    """Stand-in for the container: a process that starts coverage the way the mounted sitecustomize.py does."""
    if covreport._active_coverage() is not None:
        pytest.skip("this run is measured already; a second Coverage would disturb it")
    import subprocess

    import coverage

    cov = coverage.Coverage(data_file=str(tmp_path / "host" / ".coverage"))
    cov.start()
    try:
        with covreport.container_coverage(include=(str(tmp_path / "app" / "*"),)) as box:
            assert box is not None
            assert box.env["COVERAGE_PROCESS_START"] == "/coverage-data/.coveragerc"
            assert set(box.volumes.values()) == {
                "/opt/aml-coverage/coverage:ro",
                "/opt/aml-coverage/sitecustomize.py:ro",
                "/coverage-data",
            }
            (tmp_path / "app").mkdir()
            (tmp_path / "app" / "app.py").write_text("x = 1\n")
            rc = (box.folder / ".coveragerc").read_text().replace("/coverage-data", str(box.folder))
            (box.folder / "local.rc").write_text(rc)
            site = next(src for src, dst in box.volumes.items() if dst.endswith("sitecustomize.py:ro"))
            env = {"COVERAGE_PROCESS_START": str(box.folder / "local.rc"), "PYTHONPATH": str(tmp_path / "site")}
            (tmp_path / "site").mkdir()
            (tmp_path / "site" / "sitecustomize.py").write_text(open(site).read())
            code = textwrap.dedent(f"import runpy; runpy.run_path({str(tmp_path / 'app' / 'app.py')!r})")
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
        assert len(box.collected) == 1 and box.collected[0].parent == tmp_path / "host"
    finally:
        cov.stop()
    data = coverage.CoverageData(basename=str(box.collected[0]))
    data.read()
    assert str(tmp_path / "app" / "app.py") in data.measured_files()
    assert not box.folder.exists(), "the temporary folder is removed"
