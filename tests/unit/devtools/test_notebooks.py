import json
import os
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from aml.core import config
from aml.devtools import notebooks


def write_nb(path, source, params="X = 1"):
    nb = new_notebook()
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_discover_real_workspace_order():
    found = [str(p.relative_to(config.REPO_ROOT)) for p in notebooks.discover()]
    assert found[:2] == ["assignment1/prepare.ipynb", "assignment1/train.ipynb"]
    assert notebooks.discover(only=["assignment1/train*"])[0].name == "train.ipynb"


def test_execute_render_and_run_all(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    metrics = tmp_path / "metrics.json"
    write_nb(
        root / "assignment9" / "a.ipynb",
        f"import os, json\nopen({str(metrics)!r}, 'w').write(json.dumps({{'a9': {{'x': X, 'cwd': os.getcwd()}}}}))",
    )
    out = notebooks.execute(root / "assignment9" / "a.ipynb", tmp_path / "out", {"X": 7}, root=root)
    assert out == tmp_path / "out" / "assignment9" / "a.ipynb"
    data = json.loads(metrics.read_text())["a9"]
    assert data["x"] == 7 and data["cwd"] == str(root / "assignment9")  # runs in its own folder
    html = notebooks.render_html(out, tmp_path / "html", tmp_path / "out")
    assert html.suffix == ".html" and "<html" in html.read_text()

    monkeypatch.setattr(config, "REPO_ROOT", root)
    monkeypatch.setenv("AML_METRICS_FILE", str(metrics))
    monkeypatch.delenv("AML_PROGRESS", raising=False)
    write_nb(root / "assignment9" / "b.ipynb", "raise RuntimeError('boom')")
    lines = []

    class Stream:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    try:
        notebooks.run_all(build=tmp_path / "build", budget="smoke", stream=Stream())
    except RuntimeError as exc:
        assert "b.ipynb" in str(exc)
    else:
        raise AssertionError("a failing notebook must fail the run")
    text = "".join(lines)
    assert os.environ["AML_PROGRESS"] == "text"  # inherited by the kernels: executed copies keep text bars
    assert "assignment9/a.ipynb (budget smoke)" in text and "FAILED" in text and "a9" in text
    assert (tmp_path / "build" / "html" / "assignment9" / "a.html").is_file()
    assert notebooks.main(["--list"]) == 0


def test_render_html_shows_a_progress_bar_as_its_last_state(tmp_path):
    root = tmp_path / "ws"
    source = "import sys, time\nfor i in range(4):\n    sys.stderr.write(f'\\rstep {i}/3'); sys.stderr.flush(); time.sleep(0.2)\n"
    write_nb(root / "assignment9" / "bar.ipynb", source)
    out = notebooks.execute(root / "assignment9" / "bar.ipynb", tmp_path / "out", root=root)
    streams = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if "text" in o]
    assert len(streams) > 1  # the kernel sent the updates as separate outputs
    html = notebooks.render_html(out, tmp_path / "html", tmp_path / "out").read_text()
    assert "step 3/3" in html and "step 0/3" not in html and "step 2/3" not in html


def test_missing_figures_catches_a_non_inline_backend(tmp_path, monkeypatch):
    """Under MPLBACKEND=Agg (as the Makefile once exported) plt.show() draws nothing unless the notebook says
    %matplotlib inline: the runner's check catches it, and the inline magic fixes it."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = tmp_path / "ws"
    draw = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
    write_nb(root / "assignment9" / "agg.ipynb", draw)
    write_nb(root / "assignment9" / "inline.ipynb", "%matplotlib inline\n" + draw)
    assert notebooks.missing_figures(notebooks.execute(root / "assignment9" / "agg.ipynb", tmp_path, root=root)) == [1]
    assert (
        notebooks.missing_figures(notebooks.execute(root / "assignment9" / "inline.ipynb", tmp_path, root=root)) == []
    )


def test_colab_cell_is_valid_python_that_does_nothing_outside_colab():
    namespace = {}
    exec(compile(notebooks.COLAB_CELL, "colab-cell", "exec"), namespace)  # noqa: S102 - our own constant
    assert "url" not in namespace  # the Colab branch did not run


def test_the_kernel_runs_over_unix_sockets(tmp_path):
    root = tmp_path / "ws"
    write_nb(
        root / "assignment9" / "k.ipynb",
        "import os\nfrom ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport, os.getpid())",
    )
    out = notebooks.execute(root / "assignment9" / "k.ipynb", tmp_path / "out", root=root)
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    transport, pid = text.split()
    assert transport == "ipc"
    assert sorted(p.name for p in (root / "assignment9").iterdir()) == ["k.ipynb"]  # no socket files left behind
    assert not Path(f"/proc/{pid}").exists()  # the kernel was shut down, not left to outlive the run
