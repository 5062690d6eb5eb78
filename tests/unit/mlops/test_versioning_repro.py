"""``aml.mlops.versioning``'s ``dvc repro`` helpers: which stages ran, skipped or came from the run cache, and what
``dvc.lock`` records (real git and DVC in a scratch repository)."""

import pytest
import yaml

from aml.core.hashing import md5
from aml.mlops import versioning

#: DVC 3.67's output of the cases :func:`versioning.parse_repro` tells apart
RAN = """'data/in.txt.dvc' didn't change, skipping
Running stage 'copy':
> python -c "..."
Generating lock file 'dvc.lock'
Updating lock file 'dvc.lock'
"""
SKIPPED = """'data/in.txt.dvc' didn't change, skipping
Stage 'copy' didn't change, skipping
Data and pipelines are up to date.
"""
RESTORED = """Verifying data sources in stage: 'data/in.txt.dvc'

Stage 'copy' is cached - skipping run, checking out outputs
Updating lock file 'dvc.lock'
"""


def test_parse_repro():
    assert versioning.parse_repro(RAN) == {"copy": versioning.RAN}
    assert versioning.parse_repro(SKIPPED) == {"copy": "skipped"}  # the .dvc data source is not a stage
    assert versioning.parse_repro(RESTORED) == {"copy": "restored"}
    both = "Stage 'a' didn't change, skipping\nRunning stage 'b':\n> cmd\n"
    assert list(versioning.parse_repro(both).items()) == [("a", "skipped"), ("b", "ran")]  # DVC's order
    assert versioning.parse_repro("Data and pipelines are up to date.\n") == {}


COPY = "python -c \"import shutil; shutil.copyfile('data/in.txt', 'out.txt')\""


def test_repro_and_lock_hashes(tmp_path):
    repo = versioning.init_repo(tmp_path / "repo", versioning.remote_settings("local", tmp_path / "remote"))
    (repo / "data").mkdir()
    (repo / "data" / "in.txt").write_text("one\n")
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"copy": {"cmd": COPY, "deps": ["data/in.txt"], "outs": ["out.txt"]}}})
    )
    versioning.track(repo, ["data/in.txt"], "data v1", push=False)
    with pytest.raises(FileNotFoundError, match="has not run"):
        versioning.lock_hashes(repo, "copy")
    stages, output = versioning.repro(repo)
    assert stages == {"copy": "ran"} and "Running stage 'copy'" in output
    assert (repo / "out.txt").read_text() == "one\n"
    lock = versioning.lock_hashes(repo, "copy")
    assert lock == {"deps": {"data/in.txt": md5(repo / "data/in.txt")}, "outs": {"out.txt": md5(repo / "out.txt")}}
    mtime = (repo / "out.txt").stat().st_mtime_ns
    assert versioning.repro(repo, "copy")[0] == {"copy": "skipped"}
    assert (repo / "out.txt").stat().st_mtime_ns == mtime  # skipped: the output is untouched
    with pytest.raises(KeyError, match="no stage 'nope'"):
        versioning.lock_hashes(repo, "nope")
    # a failing command: CommandError with DVC's message
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "copy": {"cmd": "python -c 'raise SystemExit(3)'", "deps": ["data/in.txt"], "outs": ["out.txt"]}
                }
            }
        )
    )
    with pytest.raises(versioning.CommandError, match="failed to reproduce"):
        versioning.repro(repo)
