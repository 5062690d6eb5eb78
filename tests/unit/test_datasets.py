import hashlib
import http.server
import threading
import zipfile

import pytest

from aml import config, datasets
from aml.datasets import ChecksumError, DatasetNotFoundError, DatasetSpec, FileSpec

CONTENT = b"ham\thello there\nspam\tWIN a prize now\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AML_DATA_DIR", raising=False)
    return tmp_path


@pytest.fixture
def toy_spec(monkeypatch):
    spec = DatasetSpec(name="toy", description="toy", urls=(), files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    monkeypatch.setitem(datasets.REGISTRY, "toy", spec)
    return spec


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(CONTENT)
    assert datasets.sha256(path) == DIGEST


def test_registry_has_course_datasets():
    assert {"sms_spam", "tweet_sentiment", "duck_chicken"} <= set(datasets.REGISTRY)
    assert datasets.get_spec("sms_spam").urls[0].startswith("https://archive.ics.uci.edu/")
    with pytest.raises(KeyError, match="unknown dataset"):
        datasets.get_spec("nope")


def test_fetch_local_copy_from_env(env, toy_spec, monkeypatch):
    copy = env / "copies" / "toy"
    copy.mkdir(parents=True)
    (copy / "data.tsv").write_bytes(CONTENT)
    monkeypatch.setenv("AML_DATA_DIR", str(env / "copies"))
    assert datasets.fetch("toy", download=False) == copy


def test_fetch_local_copy_checksum_mismatch_is_refused(env, toy_spec):
    copy = env / "copies" / "toy"
    copy.mkdir(parents=True)
    (copy / "data.tsv").write_bytes(CONTENT + b"tampered\n")
    with pytest.raises(ChecksumError, match="not the expected"):
        datasets.fetch("toy", data_dir=env / "copies", download=False)


def test_fetch_missing_says_where_it_looked(env, toy_spec):
    with pytest.raises(DatasetNotFoundError) as info:
        datasets.fetch("toy", data_dir=env / "nowhere", download=False)
    message = str(info.value)
    assert "nowhere" in message and "AML_DATA_DIR" in message and "download disabled" in message


def test_fetch_offline_error_names_url(env, monkeypatch):
    spec = DatasetSpec(
        name="toy2",
        description="t",
        urls=("http://127.0.0.1:9/none.zip",),
        files=(FileSpec("data.tsv", sha256=(DIGEST,)),),
    )
    monkeypatch.setitem(datasets.REGISTRY, "toy2", spec)
    with pytest.raises(DatasetNotFoundError, match=r"127\.0\.0\.1:9/none\.zip"):
        datasets.fetch("toy2", timeout=2)


def test_fetch_downloads_zip_verifies_and_caches(env, http_server, monkeypatch):
    www, base = http_server
    with zipfile.ZipFile(www / "toy.zip", "w") as zf:
        zf.writestr("readme.txt", "ignored")
        zf.writestr("data.tsv", CONTENT)
    spec = DatasetSpec(
        name="toy3",
        description="t",
        urls=(f"{base}/missing.zip", f"{base}/toy.zip"),
        files=(FileSpec("data.tsv", sha256=(DIGEST,)),),
    )
    monkeypatch.setitem(datasets.REGISTRY, "toy3", spec)
    folder = datasets.fetch("toy3")
    assert folder == env / "cache" / "toy3"
    assert (folder / "data.tsv").read_bytes() == CONTENT
    assert not (folder / "readme.txt").exists()
    # second call: served from the cache, no network needed
    (www / "toy.zip").unlink()
    assert datasets.fetch("toy3", download=False) == folder
    # corruption of the cached copy is detected
    (folder / "data.tsv").write_bytes(b"corrupt")
    with pytest.raises(ChecksumError):
        datasets.fetch("toy3", download=False)


def test_fetch_download_with_wrong_checksum_is_refused(env, http_server, monkeypatch):
    www, base = http_server
    (www / "data.tsv").write_bytes(b"something else")
    spec = DatasetSpec(
        name="toy4", description="t", urls=(f"{base}/data.tsv",), files=(FileSpec("data.tsv", sha256=(DIGEST,)),)
    )
    monkeypatch.setitem(datasets.REGISTRY, "toy4", spec)
    with pytest.raises(ChecksumError):
        datasets.fetch("toy4")
    assert not (env / "cache" / "toy4").exists()


def test_non_strict_file_is_accepted_with_warning_and_pinned(env, http_server, monkeypatch):
    www, base = http_server
    (www / "data.tsv").write_bytes(b"a re-publication")
    spec = DatasetSpec(
        name="toy5",
        description="t",
        urls=(f"{base}/data.tsv",),
        files=(FileSpec("data.tsv", sha256=(DIGEST,), strict=False),),
    )
    monkeypatch.setitem(datasets.REGISTRY, "toy5", spec)
    with pytest.warns(UserWarning, match="re-publication"):
        folder = datasets.fetch("toy5")
    (folder / "data.tsv").write_bytes(b"a re-publication, corrupted")
    with pytest.raises(ChecksumError, match="recorded when it was cached"):
        datasets.fetch("toy5", download=False)


def test_folder_dataset_needs_enough_files(env, monkeypatch):
    spec = DatasetSpec(name="pics", description="p", globs={"a/*.jpg": 2})
    monkeypatch.setitem(datasets.REGISTRY, "pics", spec)
    (env / "copy" / "pics" / "a").mkdir(parents=True)
    (env / "copy" / "pics" / "a" / "1.jpg").write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError, match="no public URL"):
        datasets.fetch("pics", data_dir=env / "copy")
    (env / "copy" / "pics" / "a" / "2.jpg").write_bytes(b"x")
    assert datasets.fetch("pics", data_dir=env / "copy") == env / "copy" / "pics"


def test_unpack_refuses_unsafe_paths(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "x")
    spec = DatasetSpec(name="x", description="x", globs={"*.txt": 1})
    with pytest.raises(datasets.DatasetError, match="unsafe"):
        datasets._unpack(archive, spec, tmp_path / "out")


@pytest.mark.skipif(config.local_data_dir() is None, reason="AML_DATA_DIR is not set: no local SMS copy")
def test_real_sms_copy_verifies():
    folder = datasets.fetch("sms_spam", download=False)
    assert datasets.sha256(folder / "SMSSpamCollection") == datasets.get_spec("sms_spam").files[0].sha256[0]
