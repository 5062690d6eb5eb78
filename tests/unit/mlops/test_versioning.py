import hashlib
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from aml.core import config
from aml.mlops import versioning


def write_split(folder, n_spam, name="train.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "label": ["ham"] * 5 + ["spam"] * n_spam,
            "text": [f"t{i}" for i in range(5 + n_spam)],
            "y": [0] * 5 + [1] * n_spam,
        }
    ).to_csv(folder / name, index=False)


@pytest.fixture
def repo(tmp_path):
    return versioning.init_repo(tmp_path / "repo", versioning.remote_settings("local", tmp_path / "remote"))


def test_remote_settings(tmp_path):
    assert versioning.remote_settings("local", tmp_path) == {"url": str(tmp_path.resolve()), "options": {}}
    g = versioning.remote_settings("gdrive", "abc123", service_account_json="key.json")
    assert g["url"] == "gdrive://abc123"
    assert g["options"] == {"gdrive_use_service_account": "true", "gdrive_service_account_json_file_path": "key.json"}
    assert versioning.remote_settings("gdrive", "abc123")["options"] == {}  # interactive OAuth, DVC's default
    with pytest.raises(ValueError, match="folder id"):
        versioning.remote_settings("gdrive", "")
    with pytest.raises(ValueError, match="needs a folder"):
        versioning.remote_settings("local", "")
    with pytest.raises(ValueError, match="unknown remote"):
        versioning.remote_settings("ftp", "x")


def test_s3_remote_settings(tmp_path):
    s3 = versioning.remote_settings("s3", "s3://team-bucket/dvc/", endpoint_url="http://127.0.0.1:9000")
    assert s3 == {"url": "s3://team-bucket/dvc", "options": {"endpointurl": "http://127.0.0.1:9000"}}
    assert versioning.remote_settings("s3", "s3://team-bucket/dvc")["options"] == {}  # AWS itself: no endpoint
    for bad in ("team-bucket/dvc", "s3://", "/tmp/x"):
        with pytest.raises(ValueError, match="s3://bucket"):
            versioning.remote_settings("s3", bad)
    # written into the repository's DVC configuration as DVC's own option (no network needed to configure it)
    repo = versioning.init_repo(tmp_path / "repo", s3)
    config_text = (repo / ".dvc" / "config").read_text()
    assert "url = s3://team-bucket/dvc" in config_text and "endpointurl = http://127.0.0.1:9000" in config_text


def test_init_repo_config(repo, tmp_path):
    dvc_config = (repo / ".dvc" / "config").read_text()
    assert "remote = storage" in dvc_config and str((tmp_path / "remote").resolve()) in dvc_config
    assert "analytics = false" in dvc_config and "autostage = true" in dvc_config
    write_split(repo / "data", 2)
    added = versioning.dvc(repo, "add", "data/train.csv")
    assert "To track the changes with git" not in added  # no hint noise in the notebooks' output
    assert "data/train.csv.dvc" in versioning.git(repo, "diff", "--cached", "--name-only")  # staged by DVC itself
    assert versioning.git(repo, "config", "user.email").strip() == "notebook@aml-workspace.invalid"
    assert versioning.git(repo, "log", "--format=%s").strip() == "Initialise DVC"
    # fresh=True (the default) starts again from nothing: a notebook can be re-run
    (repo / "stray").write_text("x")
    again = versioning.init_repo(repo, versioning.remote_settings("local", tmp_path / "remote"))
    assert again == repo and not (repo / "stray").exists()


def test_gdrive_remote_is_configured_without_network(tmp_path):
    remote = versioning.remote_settings("gdrive", "folder-id-123", service_account_json="/keys/sa.json")
    repo = versioning.init_repo(tmp_path / "g", remote)
    dvc_config = (repo / ".dvc" / "config").read_text()
    assert "gdrive://folder-id-123" in dvc_config
    assert "gdrive_use_service_account = true" in dvc_config
    assert "gdrive_service_account_json_file_path = /keys/sa.json" in dvc_config


def test_version_checkout_and_restore_from_remote(repo, tmp_path):
    write_split(repo / "data", 2)
    v1 = versioning.track(repo, ["data/train.csv"], "v1", tag="v1")
    h1 = versioning.hashes(repo, ["data/train.csv"])
    assert versioning.pointer_md5(repo / "data/train.csv.dvc") == h1["data/train.csv"]
    assert (repo / "data" / ".gitignore").read_text().strip() == "/train.csv"  # git ignores the data, DVC has it
    write_split(repo / "data", 4)
    v2 = versioning.track(repo, ["data/train.csv"], "v2")
    h2 = versioning.hashes(repo, ["data/train.csv"])
    assert v1 != v2 == versioning.head(repo) and h1 != h2
    frames = versioning.read_splits(repo, ["data/train.csv"])
    assert list(frames) == ["train"] and frames["train"]["y"].value_counts().to_dict() == {0: 5, 1: 4}
    assert len(versioning.read_split(repo, "data/train.csv")) == 9
    versioning.checkout(repo, "v1")
    assert versioning.head(repo) == v1 and versioning.hashes(repo, ["data/train.csv"]) == h1
    assert versioning.read_splits(repo, ["data/train.csv"])["train"]["y"].sum() == 2
    # lose the cache and the files: the remote brings them back
    versioning.checkout(repo, v2, from_remote=True)
    assert not any((repo / ".dvc" / "cache").rglob("*.csv"))  # nothing cached but what was pulled
    assert versioning.hashes(repo, ["data/train.csv"]) == h2
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "data/train.csv").unlink()
    versioning.pull(repo)
    assert versioning.hashes(repo, ["data/train.csv"]) == h2


def test_track_without_push_leaves_remote_empty(repo, tmp_path):
    write_split(repo / "data", 1)
    versioning.track(repo, ["data/train.csv"], "local only", push=False)
    assert not (tmp_path / "remote").exists() or not any((tmp_path / "remote").rglob("*"))
    assert versioning.git(repo, "status", "--porcelain").strip() == ""


def test_track_bad_input(repo):
    with pytest.raises(ValueError, match="non-empty list"):
        versioning.track(repo, [], "nothing")
    with pytest.raises(ValueError, match="non-empty list"):
        versioning.track(repo, "data/train.csv", "a string, not a list")


def test_command_error_carries_output(repo):
    with pytest.raises(versioning.CommandError, match="definitely-not-a-file"):
        versioning.dvc(repo, "add", "definitely-not-a-file")
    with pytest.raises(versioning.CommandError, match="no-such-rev"):
        versioning.checkout(repo, "no-such-rev")


def test_hashes_and_pointer(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert versioning.hashes(tmp_path, ["f"]) == {"f": hashlib.md5(b"abc").hexdigest()}
    (tmp_path / "bad.dvc").write_text("hello: world\n")
    with pytest.raises(ValueError, match="not a DVC pointer"):
        versioning.pointer_md5(tmp_path / "bad.dvc")


def test_compare():
    table = versioning.compare({"a": "1", "b": "2"}, {"a": "1", "b": "3"})
    assert table["same"].to_dict() == {"a": True, "b": False}
    assert list(table.columns) == ["v1 md5", "v2 md5", "same"]
    with pytest.raises(ValueError, match="different files"):
        versioning.compare({"a": "1"}, {"b": "1"})


def test_env_finds_the_library_without_an_install(tmp_path):
    env = versioning._env()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(config.PACKAGE_DIR.parent)
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    # -S: no site-packages, so no editable install; the stage commands still find `aml` through PYTHONPATH
    probe = "import importlib.util as u; print(u.find_spec('aml').origin)"
    found = subprocess.run([sys.executable, "-S", "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert found.stdout.strip() == str(config.PACKAGE_DIR / "__init__.py")


def test_scratch_repo_is_independent_of_outer_repo(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    versioning.git(outer, "init", "-q")
    inner = versioning.init_repo(outer / "inner", versioning.remote_settings("local", tmp_path / "r"))
    assert versioning.git(inner, "rev-parse", "--show-toplevel").strip() == str(inner)
    assert versioning.git(outer, "status", "--porcelain").strip() == "?? inner/"
