"""Profiling upon change: the project's ``dvc.yaml`` in a scratch git + DVC repository (``aml.project.profile_stage``):
the first ``dvc repro`` profiles, a second is skipped, changed data is re-profiled, restored data comes from DVC's run
cache. Real git and DVC; a 200-message slice of the collection keeps each profile quick."""

import json
import shutil

import pytest
import yaml

from aml.core import config, datasets
from aml.mlops import versioning
from aml.project import profile_stage
from aml.spam import sms

N = 200


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    lines = (datasets.fetch("sms_spam") / sms.FILENAME).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path_factory.mktemp("raw") / sms.FILENAME
    path.write_text("".join(lines[:N]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory, raw):
    return profile_stage.demo(tmp_path_factory.mktemp("demo"), raw=raw)


def test_demo_reprofiles_only_on_change(demo):
    v1, unchanged, v2, back = demo.runs
    assert [r.outcome for r in demo.runs] == ["ran", "skipped", "ran", "restored"]
    assert [r.ran for r in demo.runs] == [True, False, True, False]
    assert "Running stage 'profile'" in v1.output
    assert "Stage 'profile' didn't change, skipping" in unchanged.output
    # unchanged data: the same profile, the files untouched
    assert unchanged.profile_md5 == v1.profile_md5 and unchanged.mtime_ns == v1.mtime_ns
    assert unchanged.data_md5 == v1.data_md5 and unchanged.rows == N
    # changed data: a new data version, a new profile with the appended rows
    assert v2.data_md5 != v1.data_md5 and v2.rows == N + len(profile_stage.NEW_MESSAGES)
    assert all(v2.profile_md5[f] != v1.profile_md5[f] for f in profile_stage.REPORTS)
    # the first version again: DVC's run cache gives back its profile, byte for byte, without running
    assert back.data_md5 == v1.data_md5 and back.profile_md5 == v1.profile_md5 and back.rows == N
    assert "is cached - skipping run" in back.output
    table = demo.table()
    assert table["profile stage"].tolist() == ["ran", "skipped", "ran", "restored"]
    assert table["files rewritten"].tolist() == [True, False, True, True]
    assert table["same profile as"].tolist() == ["data v1", "data v1", table.index[2], "data v1"]
    assert table["rows"].tolist() == [N, N, N + 3, N]


def test_demo_repository_is_versioned(demo):
    repo = demo.repo
    assert versioning.git(repo, "rev-parse", "--show-toplevel").strip() == str(repo)  # its own repository
    assert versioning.git(repo, "status", "--porcelain").strip() == ""  # every step committed
    log = versioning.git(repo, "log", "--format=%s").splitlines()
    assert log[-3:] == ["Raw data v1", "The profile stage (project/dvc.yaml)", "Initialise DVC"]
    assert [r.commit for r in demo.runs][-1] == versioning.head(repo)
    # the raw data and the profile are DVC's (git-ignored), the project's dvc.yaml is used as it is
    assert (repo / "dvc.yaml").read_text() == (profile_stage.PROJECT_DIR / "dvc.yaml").read_text()
    assert versioning.git(repo, "check-ignore", profile_stage.RAW, *profile_stage.REPORTS).split() == [
        profile_stage.RAW,
        *profile_stage.REPORTS,
    ]
    lock = versioning.lock_hashes(repo, "profile")
    assert {p for p in lock["deps"] if p.startswith(str(config.PACKAGE_DIR))} == {
        str(config.PACKAGE_DIR / "spam" / name) for name in ("profiling.py", "pipeline.py", "sms.py")
    }
    # the remote holds both data versions and both profiles: every md5 the steps recorded
    remote = {p.parent.name + p.name for p in (repo.parent / "remote").rglob("*") if p.is_file()}
    recorded = {r.data_md5 for r in demo.runs} | {h for r in demo.runs for h in r.profile_md5.values()}
    assert recorded <= remote
    # nothing was written into the workspace's project folder
    assert not (profile_stage.PROJECT_DIR / "dvc.lock").exists()
    assert not (profile_stage.PROJECT_DIR / "reports").exists()


def test_code_change_reruns_and_dropped_rows_change_the_stage(tmp_path, raw):
    """A change of the code the stage depends on re-profiles (a copy of the library's ``spam`` package: a test does
    not edit the workspace's code); dropped rows are a new data version the stage is out of date with."""
    library = tmp_path / "library"
    shutil.copytree(config.PACKAGE_DIR / "spam", library / "spam", ignore=shutil.ignore_patterns("__pycache__"))
    repo = profile_stage.init_repo(tmp_path / "scratch", raw=raw, push=False, library=library)
    assert yaml.safe_load((repo / "params.yaml").read_text())["library"] == str(library)
    first = profile_stage.reprofile(repo, push=False)
    assert first.step == "ran" and first.rows == N
    with open(library / "spam" / "profiling.py", "a") as fh:
        fh.write("# a change of the profiling code\n")
    status = versioning.dvc(repo, "status", "profile")
    assert "changed deps" in status and f"modified:           {library}/spam/profiling.py" in status
    rerun = profile_stage.reprofile(repo, "code changed", push=False)
    assert rerun.ran and rerun.profile_md5 == first.profile_md5  # the same data and command: the same profile
    assert rerun.mtime_ns != first.mtime_ns  # ... computed again
    before = versioning.head(repo)
    commit = profile_stage.drop_messages(repo, 10, push=False)
    assert commit == versioning.head(repo) != before
    assert len((repo / profile_stage.RAW).read_text().splitlines()) == N - 10
    status = versioning.dvc(repo, "status", "profile")
    assert f"modified:           {profile_stage.RAW}" in status  # `dvc repro` would re-profile
    assert not (tmp_path / "scratch" / "remote").exists()  # push=False: nothing pushed


def test_bad_input(tmp_path, raw):
    with pytest.raises(FileNotFoundError, match="raw data not found"):
        profile_stage.init_repo(tmp_path / "a", raw=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="has no dvc.yaml"):
        profile_stage.init_repo(tmp_path / "a", raw=raw, project=tmp_path)
    assert not (tmp_path / "a").exists()
    (tmp_path / "r" / "data" / "raw").mkdir(parents=True)
    (tmp_path / "r" / profile_stage.RAW).write_text("ham\tone\nham\ttwo\n")
    with pytest.raises(ValueError, match="at least one"):
        profile_stage.append_messages(tmp_path / "r", [])
    with pytest.raises(ValueError, match="tabs or line breaks"):
        profile_stage.append_messages(tmp_path / "r", [("ham", "a\tb")])
    with pytest.raises(ValueError, match="can drop 1 to 1"):
        profile_stage.drop_messages(tmp_path / "r", 2)
    assert (tmp_path / "r" / profile_stage.RAW).read_text() == "ham\tone\nham\ttwo\n"  # untouched


def test_profile_json_is_the_library_profile(demo):
    data = json.loads((demo.repo / profile_stage.REPORTS[0]).read_text())
    assert data["name"] == profile_stage.RAW and data["rows"] == N
    assert set(data["target"]["counts"]) == {"ham", "spam"}
