import hashlib
import http.server
import json
import logging
import socket
import threading
import zipfile

import pooch
import pytest

from aml.core import config, datasets, hashing, modelstore
from aml.core.datasets import ChecksumError, DatasetError, DatasetNotFoundError, DatasetSpec, FileSpec

CONTENT = b"ham\thello there\nspam\tWIN a prize now\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()
SMS_COPY = None if config.local_data_dir() is None else config.local_data_dir() / "sms_spam" / "SMSSpamCollection"
needs_sms_copy = pytest.mark.skipif(
    SMS_COPY is None or not SMS_COPY.is_file(), reason="AML_DATA_DIR holds no local SMS copy"
)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AML_DATA_DIR", raising=False)
    return tmp_path


def _register(monkeypatch, **kwargs) -> DatasetSpec:
    kwargs.setdefault("description", kwargs["name"])
    spec = DatasetSpec(**kwargs)
    monkeypatch.setitem(datasets.REGISTRY, spec.name, spec)
    return spec


@pytest.fixture
def toy_spec(monkeypatch):
    return _register(monkeypatch, name="toy", files=(FileSpec("data.tsv", sha256=(DIGEST,)),))


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A real HTTP server on loopback (free port) serving tmp_path/www; records the paths requested."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def retrieve_calls(monkeypatch):
    """Spy on pooch.retrieve: the downloads really go through pooch."""
    calls: list[str] = []
    real = pooch.retrieve

    def spy(url, *args, **kwargs):
        calls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(pooch, "retrieve", spy)
    return calls


def _zip(path, members: dict[str, bytes | str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _leftovers(cache):
    """Temporary download folders left in the cache root."""
    return [p.name for p in cache.iterdir() if p.name.startswith(".")] if cache.is_dir() else []


# --- the module's shape ---------------------------------------------------------------------------------------------


def test_no_hand_written_hash_and_independent_checksum_error():
    assert not hasattr(datasets, "sha256")  # digests come from aml.core.hashing
    assert not hasattr(datasets, "_unpack") and not hasattr(datasets, "urllib")  # pooch downloads and unzips
    assert datasets.ChecksumError is not modelstore.ChecksumError
    assert not issubclass(datasets.ChecksumError, modelstore.ChecksumError)
    assert issubclass(datasets.ChecksumError, DatasetError)
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


def test_registry_has_course_datasets():
    assert {"sms_spam", "tweet_sentiment", "duck_chicken"} <= set(datasets.REGISTRY)
    sms = datasets.get_spec("sms_spam")
    assert sms.urls[0].startswith("https://archive.ics.uci.edu/")
    assert sms.files[0].strict and sms.files[0].pinned_by_registry and not sms.needs_pins
    assert not any(f.strict for f in datasets.get_spec("tweet_sentiment").files)
    assert datasets.get_spec("duck_chicken").needs_pins
    with pytest.raises(KeyError, match="unknown dataset"):
        datasets.get_spec("nope")


# --- local copies ---------------------------------------------------------------------------------------------------


def test_fetch_local_copy_from_env(env, toy_spec, monkeypatch):
    copy = env / "copies" / "toy"
    copy.mkdir(parents=True)
    (copy / "data.tsv").write_bytes(CONTENT)
    monkeypatch.setenv("AML_DATA_DIR", str(env / "copies"))
    assert datasets.fetch("toy", download=False) == copy
    assert not (copy / datasets.MANIFEST).exists()  # a local copy is never written to


def test_fetch_local_copy_checksum_mismatch_is_refused(env, toy_spec):
    copy = env / "copies" / "toy"
    copy.mkdir(parents=True)
    (copy / "data.tsv").write_bytes(CONTENT + b"tampered\n")
    with pytest.raises(ChecksumError, match="not the expected"):
        datasets.fetch("toy", data_dir=env / "copies", download=False)


def test_fetch_missing_says_where_it_looked(env, toy_spec):
    (env / "copies" / "toy").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as info:
        datasets.fetch("toy", data_dir=env / "copies", download=False)
    message = str(info.value)
    assert "AML_DATA_DIR" in message and "download disabled" in message
    assert f"{env / 'copies' / 'toy'} (missing data.tsv)" in message


def test_folder_dataset_needs_enough_files(env, monkeypatch):
    _register(monkeypatch, name="pics", globs={"a/*.jpg": 2})
    (env / "copy" / "pics" / "a").mkdir(parents=True)
    (env / "copy" / "pics" / "a" / "1.jpg").write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError, match=r"no public URL[\s\S]*found 1, need at least 2"):
        datasets.fetch("pics", data_dir=env / "copy")
    (env / "copy" / "pics" / "a" / "2.jpg").write_bytes(b"x")
    assert datasets.fetch("pics", data_dir=env / "copy") == env / "copy" / "pics"


@needs_sms_copy
def test_real_sms_copy_verifies(monkeypatch, tmp_path):
    monkeypatch.setenv("AML_CACHE_DIR", str(tmp_path / "empty-cache"))
    folder = datasets.fetch("sms_spam", download=False)
    assert folder == config.local_data_dir() / "sms_spam"
    assert hashing.sha256(folder / "SMSSpamCollection") == datasets.get_spec("sms_spam").files[0].sha256[0]


# --- downloads through pooch ----------------------------------------------------------------------------------------


def test_fetch_offline_error_names_url(env, monkeypatch, retrieve_calls):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/none.zip"
    _register(monkeypatch, name="toy2", urls=(url,), files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    with pytest.raises(DatasetNotFoundError, match=rf"Tried to download: http://127\.0\.0\.1:{port}/none\.zip \("):
        datasets.fetch("toy2", timeout=2)
    assert retrieve_calls == [url]
    assert _leftovers(env / "cache") == [] and not (env / "cache" / "toy2").exists()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_fetch_downloads_zip_verifies_and_caches(env, http_server, monkeypatch, retrieve_calls, caplog):
    www, base, requested = http_server
    _zip(www / "toy.zip", {"readme.txt": "about", "data.tsv": CONTENT})
    urls = (f"{base}/missing.zip", f"{base}/toy.zip")
    _register(monkeypatch, name="toy3", urls=urls, files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    pooch_logger, pooch_records = pooch.get_logger(), _Records()
    level = pooch_logger.level
    pooch_logger.addHandler(pooch_records)
    try:
        with caplog.at_level(logging.INFO, logger="aml.core.datasets"):
            folder = datasets.fetch("toy3")
    finally:
        pooch_logger.removeHandler(pooch_records)
    # pooch's own stderr logger stays quiet (its INFO lines); the events go through the aml logger instead
    assert [r.getMessage() for r in pooch_records.records if r.levelno < logging.WARNING] == []
    assert pooch_logger.level == level
    assert f"downloading 'toy3' from {urls[1]}" in caplog.text and "served sha256:" in caplog.text
    assert retrieve_calls == list(urls) and requested == ["/missing.zip", "/toy.zip"]
    assert folder == env / "cache" / "toy3"
    assert (folder / "data.tsv").read_bytes() == CONTENT
    assert json.loads((folder / datasets.MANIFEST).read_text()) == {"data.tsv": DIGEST}
    assert _leftovers(env / "cache") == []  # pooch's download and unzip folder is gone
    # second call: served from the cache, no network needed
    (www / "toy.zip").unlink()
    assert datasets.fetch("toy3", download=False) == folder
    assert len(retrieve_calls) == 2
    # corruption of the cached copy is detected
    (folder / "data.tsv").write_bytes(b"corrupt")
    with pytest.raises(ChecksumError, match="not the expected"):
        datasets.fetch("toy3", download=False)


def test_zip_with_a_top_folder_and_unsafe_paths_stays_inside_the_cache(env, http_server, monkeypatch):
    www, base, _ = http_server
    _zip(www / "toy.zip", {"toy-1.0/data.tsv": CONTENT, "../../evil.txt": "x", "/abs.txt": "x"})
    _register(monkeypatch, name="toy", urls=(f"{base}/toy.zip",), files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    folder = datasets.fetch("toy")
    assert (folder / "data.tsv").read_bytes() == CONTENT
    escaped = [p for p in env.rglob("*.txt") if env / "cache" / "toy" not in p.parents and p.parent != env / "www"]
    assert escaped == []


def test_fetch_download_with_wrong_member_checksum_is_refused(env, http_server, monkeypatch):
    www, base, _ = http_server
    (www / "data.tsv").write_bytes(b"something else")
    _register(monkeypatch, name="toy4", urls=(f"{base}/data.tsv",), files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    with pytest.raises(ChecksumError, match="not the expected"):
        datasets.fetch("toy4")
    assert not (env / "cache" / "toy4").exists() and _leftovers(env / "cache") == []


def test_pooch_checks_the_known_hash_of_the_download(env, http_server, monkeypatch):
    www, base, _ = http_server
    _zip(www / "toy.zip", {"data.tsv": CONTENT})
    url = f"{base}/toy.zip"
    files = (FileSpec("data.tsv", sha256=(DIGEST,)),)
    _register(monkeypatch, name="toy", urls=(url,), files=files, url_hashes={url: "sha256:" + "0" * 64})
    with pytest.raises(ChecksumError, match=r"refused: .*known hash"):
        datasets.fetch("toy")
    assert not (env / "cache" / "toy").exists() and _leftovers(env / "cache") == []
    right = "sha256:" + hashing.sha256(www / "toy.zip")
    _register(monkeypatch, name="toy", urls=(url,), files=files, url_hashes={url: right})
    assert (datasets.fetch("toy") / "data.tsv").read_bytes() == CONTENT


def test_non_zip_download_for_a_multi_file_dataset_is_a_clear_failure(env, http_server, monkeypatch):
    www, base, _ = http_server
    (www / "blob").write_bytes(b"not a zip")
    files = (FileSpec("a.csv"), FileSpec("b.csv"))
    _register(monkeypatch, name="two", urls=(f"{base}/blob",), files=files)
    with pytest.raises(DatasetNotFoundError, match=r"blob \(DatasetError: .*not a zip archive"):
        datasets.fetch("two")


def test_lookup_order_cache_then_local_copy_then_download(env, http_server, monkeypatch, retrieve_calls):
    www, base, requested = http_server
    (www / "data.tsv").write_bytes(CONTENT)
    _register(monkeypatch, name="toy", urls=(f"{base}/data.tsv",), files=(FileSpec("data.tsv", sha256=(DIGEST,)),))
    copy = env / "copies" / "toy"
    copy.mkdir(parents=True)
    (copy / "data.tsv").write_bytes(CONTENT)
    monkeypatch.setenv("AML_DATA_DIR", str(env / "copies"))
    assert datasets.fetch("toy") == copy and retrieve_calls == [] and requested == []  # local copy before download
    monkeypatch.delenv("AML_DATA_DIR")
    assert datasets.fetch("toy") == env / "cache" / "toy" and requested == ["/data.tsv"]
    monkeypatch.setenv("AML_DATA_DIR", str(env / "copies"))
    assert datasets.fetch("toy") == env / "cache" / "toy" and len(requested) == 1  # cache before local copy


# --- digests pinned in the cache manifest ---------------------------------------------------------------------------


def test_non_strict_file_is_accepted_with_warning_and_pinned(env, http_server, monkeypatch, caplog):
    www, base, _ = http_server
    (www / "data.tsv").write_bytes(b"a re-publication")
    files = (FileSpec("data.tsv", sha256=(DIGEST,), strict=False),)
    _register(monkeypatch, name="toy5", urls=(f"{base}/data.tsv",), files=files)
    with caplog.at_level(logging.WARNING, logger="aml.core.datasets"):
        folder = datasets.fetch("toy5")
    assert "accepted as a re-publication of 'toy5'" in caplog.text
    assert datasets.fetch("toy5", download=False) == folder
    (folder / "data.tsv").write_bytes(b"a re-publication, corrupted")
    with pytest.raises(ChecksumError, match="recorded when it was cached"):
        datasets.fetch("toy5", download=False)


def test_folder_dataset_is_pinned_on_first_use(env, http_server, monkeypatch):
    www, base, _ = http_server
    _zip(www / "pics.zip", {"pics/a/1.jpg": b"one", "pics/a/2.jpg": b"two"})
    _register(monkeypatch, name="pics", urls=(f"{base}/pics.zip",), globs={"a/*.jpg": 2})
    folder = datasets.fetch("pics")
    assert sorted(json.loads((folder / datasets.MANIFEST).read_text())) == ["a/1.jpg", "a/2.jpg"]
    (folder / "a" / "1.jpg").write_bytes(b"corrupt")
    with pytest.raises(ChecksumError, match=r"1\.jpg: sha256 .* recorded when it was cached"):
        datasets.fetch("pics", download=False)
    (folder / "a" / "1.jpg").write_bytes(b"one")
    (folder / "a" / "2.jpg").rename(folder / "a" / "3.jpg")  # still two photos, but not the pinned ones
    with pytest.raises(ChecksumError, match=r"2\.jpg: recorded .* but now missing"):
        datasets.fetch("pics", download=False)


def _cache_sms(cache, data: bytes, manifest: str | None):
    folder = cache / "sms_spam"
    folder.mkdir(parents=True)
    (folder / "SMSSpamCollection").write_bytes(data)
    if manifest is not None:
        (folder / datasets.MANIFEST).write_text(manifest)
    return folder


@needs_sms_copy
def test_registry_digest_beats_the_cache_manifest(env):
    """Issue 10: a modified SMSSpamCollection plus a manifest recording its digest must still be refused."""
    modified = SMS_COPY.read_bytes().replace(b"ham\t", b"spam\t", 1)
    manifest = json.dumps({"SMSSpamCollection": hashlib.sha256(modified).hexdigest()})
    _cache_sms(env / "cache", modified, manifest)
    with pytest.raises(ChecksumError, match="SMSSpamCollection: sha256 .* is not the expected"):
        datasets.fetch("sms_spam", download=False)


@needs_sms_copy
@pytest.mark.parametrize("broken", ["{not json", "[1, 2]", '{"SMSSpamCollection": 3}', "\udcff"])
def test_broken_manifest_of_a_registry_pinned_dataset_is_rebuilt(env, caplog, broken):
    """Issue 10: a broken manifest is no bare JSONDecodeError; where the registry pins every file it is rebuilt."""
    folder = _cache_sms(env / "cache", SMS_COPY.read_bytes(), None)
    (folder / datasets.MANIFEST).write_bytes(broken.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="aml.core.datasets"):
        assert datasets.fetch("sms_spam", download=False) == folder
    assert f"{folder / datasets.MANIFEST}: unreadable cache manifest" in caplog.text
    assert json.loads((folder / datasets.MANIFEST).read_text()) == {
        "SMSSpamCollection": datasets.get_spec("sms_spam").files[0].sha256[0]
    }


@pytest.mark.parametrize("broken", ["{not json", '["data.tsv"]', '{"../../etc/passwd": "' + "0" * 64 + '"}'])
def test_broken_manifest_that_pins_files_is_a_clear_error(env, monkeypatch, broken):
    _register(monkeypatch, name="toy", files=(FileSpec("data.tsv", strict=False),))
    folder = env / "cache" / "toy"
    folder.mkdir(parents=True)
    (folder / "data.tsv").write_bytes(CONTENT)
    (folder / datasets.MANIFEST).write_text(broken)
    with pytest.raises(DatasetError, match=r"\.aml-manifest\.json: the cache manifest of dataset 'toy'") as info:
        datasets.fetch("toy", download=False)
    assert not isinstance(info.value, (json.JSONDecodeError, ChecksumError))
    assert f"delete {folder}" in str(info.value)


def test_cache_without_manifest_is_pinned_on_first_use(env, monkeypatch):
    _register(monkeypatch, name="toy", files=(FileSpec("data.tsv", strict=False),))
    folder = env / "cache" / "toy"
    folder.mkdir(parents=True)
    (folder / "data.tsv").write_bytes(CONTENT)
    assert datasets.fetch("toy", download=False) == folder
    assert json.loads((folder / datasets.MANIFEST).read_text()) == {"data.tsv": DIGEST}
    (folder / "data.tsv").write_bytes(CONTENT + b"x")
    with pytest.raises(ChecksumError, match="recorded when it was cached"):
        datasets.fetch("toy", download=False)
