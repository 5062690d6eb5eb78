import pandas as pd
import pytest

from aml import versioning


def write_split(folder, n_spam):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "label": ["ham"] * 5 + ["spam"] * n_spam,
            "text": [f"t{i}" for i in range(5 + n_spam)],
            "y": [0] * 5 + [1] * n_spam,
        }
    ).to_csv(folder / "train.csv", index=False)


@pytest.fixture
def repo(tmp_path):
    return versioning.init_repo(tmp_path / "repo", versioning.remote_settings("local", tmp_path / "remote"))


def test_remote_settings(tmp_path):
    assert versioning.remote_settings("local", tmp_path)["url"] == str(tmp_path.resolve())
    g = versioning.remote_settings("gdrive", "abc123", service_account_json="key.json")
    assert g["url"] == "gdrive://abc123"
    assert g["options"] == {"gdrive_use_service_account": "true", "gdrive_service_account_json_file_path": "key.json"}
    with pytest.raises(ValueError, match="folder id"):
        versioning.remote_settings("gdrive", "")
    with pytest.raises(ValueError, match="needs a folder"):
        versioning.remote_settings("local", "")
    with pytest.raises(ValueError, match="unknown remote"):
        versioning.remote_settings("s3", "x")


def test_version_checkout_and_restore_from_remote(repo, tmp_path):
    assert (repo / ".dvc" / "config").read_text().count("storage") >= 1
    write_split(repo / "data", 2)
    v1 = versioning.track(repo, ["data/train.csv"], "v1", tag="v1")
    h1 = versioning.hashes(repo, ["data/train.csv"])
    assert versioning.pointer_md5(repo / "data/train.csv.dvc") == h1["data/train.csv"]
    write_split(repo / "data", 4)
    v2 = versioning.track(repo, ["data/train.csv"], "v2")
    assert v1 != v2 == versioning.head(repo)
    assert versioning.distributions(repo, ["data/train.csv"]).loc["train"].to_dict() == {"0": 5, "1": 4}
    assert len(versioning.read_split(repo, "data/train.csv")) == 9
    versioning.checkout(repo, "v1")
    assert versioning.hashes(repo, ["data/train.csv"]) == h1
    assert versioning.distributions(repo, ["data/train.csv"]).loc["train", "1"] == 2
    # lose the cache and the file: the remote brings them back
    import shutil

    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "data/train.csv").unlink()
    versioning.pull(repo)
    assert versioning.hashes(repo, ["data/train.csv"]) == h1
    assert any((tmp_path / "remote").rglob("*"))


def test_command_error_carries_output(repo):
    with pytest.raises(versioning.CommandError, match="definitely-not-a-file"):
        versioning.dvc(repo, "add", "definitely-not-a-file")


def test_md5_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"abc")
    assert versioning.md5(tmp_path / "f") == hashlib.md5(b"abc").hexdigest()


def test_scratch_repo_is_independent_of_outer_repo(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    versioning.git(outer, "init", "-q")
    inner = versioning.init_repo(outer / "inner", versioning.remote_settings("local", tmp_path / "r"))
    assert versioning.git(inner, "rev-parse", "--show-toplevel").strip() == str(inner)
    assert versioning.git(outer, "status", "--porcelain").strip() == "?? inner/"
