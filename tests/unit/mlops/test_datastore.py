import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aml.mlops import datastore
from aml.mlops.datastore import (
    DATA_STORE_ENV,
    RUN_ID,
    DataStore,
    StoreConflictError,
    StoreError,
    StoreNotFoundError,
    StorePathError,
)


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        yield DataStore(tmp_path / "store")
        return
    url = f"memory://aml-test-{uuid.uuid4().hex}"
    s = DataStore(url)
    yield s
    if s.fs.exists(s._base):
        s.fs.rm(s._base, recursive=True)


@pytest.fixture
def local(tmp_path):
    return DataStore(tmp_path / "store")


# -- construction ----------------------------------------------------------------------------------------------------


def test_local_urls_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = DataStore("data")
    assert rel.is_local and rel.root == (tmp_path / "data").resolve() and rel.url == str(rel.root)
    assert DataStore((tmp_path / "data").as_uri()).root == rel.root
    assert DataStore(f"file://localhost{(tmp_path / 'data').as_posix()}").root == rel.root
    assert not (tmp_path / "data").exists()  # created on first write only
    rel.write_text("raw/a.txt", "x")
    assert (tmp_path / "data" / "raw" / "a.txt").read_text() == "x"
    with pytest.raises(StoreError, match="local folder"):
        DataStore("file://otherhost/data")
    with pytest.raises(StoreError, match="storage_options"):
        DataStore(tmp_path, storage_options={"key": "k"})
    with pytest.raises(StoreError, match="folder or URL"):
        DataStore("")


def test_memory_url():
    s = DataStore("memory://aml-test-url/prefix/")
    assert not s.is_local and s.root is None and s.url == "memory://aml-test-url/prefix"
    assert s.location("raw/a.csv") == "memory://aml-test-url/prefix/raw/a.csv"
    assert s.local_path("raw/a.csv") is None


def test_from_env(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_STORE_ENV, raising=False)
    assert DataStore.from_env(tmp_path / "default").root == (tmp_path / "default").resolve()
    with pytest.raises(StoreError, match=DATA_STORE_ENV):
        DataStore.from_env()
    monkeypatch.setenv(DATA_STORE_ENV, "memory://aml-test-env")
    assert DataStore.from_env(tmp_path / "default").url == "memory://aml-test-env"
    monkeypatch.setenv(DATA_STORE_ENV, str(tmp_path / "env"))
    assert DataStore.from_env(tmp_path / "default").root == (tmp_path / "env").resolve()


# -- round trips -----------------------------------------------------------------------------------------------------


def test_round_trips(store):
    assert store.write_bytes("raw/r1/a.bin", b"\x00\x01") == store.location("raw/r1/a.bin")
    assert store.read_bytes("raw/r1/a.bin") == b"\x00\x01"
    store.write_text("raw/r1/t.txt", "héllo")
    assert store.read_text("raw/r1/t.txt") == "héllo"
    store.write_json("raw/r1/m.json", {"b": np.float64(0.5), "a": np.int64(3), "arr": np.arange(2)})
    assert store.read_json("raw/r1/m.json") == {"a": 3, "arr": [0, 1], "b": 0.5}
    text = store.read_text("raw/r1/m.json")
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n") and "\n  " in text  # sorted, indented
    frame = pd.DataFrame({"label": ["ham", "spam"], "text": ["hi, there", 'say "x"']})
    store.write_csv("processed/r1/data.csv", frame)
    pd.testing.assert_frame_equal(store.read_csv("processed/r1/data.csv"), frame)
    assert store.read_text("processed/r1/data.csv").startswith("label,text\n")  # no index column
    with store.open_read("raw/r1/a.bin") as fh:
        assert fh.read() == b"\x00\x01"
    assert store.write_bytes("raw/r1/empty", b"") and store.read_bytes("raw/r1/empty") == b""
    with pytest.raises(TypeError, match="write_text"):
        store.write_bytes("raw/r1/s", "text")


def test_exists_list_sha256(store):
    assert store.list() == [] and store.list("raw") == [] and not store.exists("raw")
    store.write_bytes("raw/r2/b.csv", b"b")
    store.write_bytes("raw/r2/a.csv", b"abc")
    store.write_bytes("raw/r1/x", b"x")
    store.write_bytes("split/s", b"s")
    assert store.exists("raw/r2/a.csv") and store.exists("raw/r2") and not store.exists("raw/r3")
    assert store.list() == ["raw", "split"]
    assert store.list("raw") == ["r1", "r2"] and store.list("raw/") == ["r1", "r2"]
    assert store.list("raw/r2") == ["a.csv", "b.csv"]
    assert store.list("nothing/here") == []
    with pytest.raises(StoreError, match="not a folder"):
        store.list("raw/r2/a.csv")
    assert store.sha256("raw/r2/a.csv") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_missing_files_name_the_location(store):
    for call in (store.read_bytes, store.read_text, store.read_json, store.sha256, store.read_csv):
        with pytest.raises(StoreNotFoundError) as info:
            call("raw/nope.csv")
        assert "raw/nope.csv" in str(info.value) and (store.root is None or str(store.root) not in str(info.value))
        assert isinstance(info.value, FileNotFoundError)


def test_invalid_json(store):
    store.write_text("a.json", "{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read_json("a.json")


# -- atomicity and conflicts -----------------------------------------------------------------------------------------


def _leftovers(store, folder):
    if store.is_local:
        return sorted(p.name for p in (store.root / folder).iterdir())
    return sorted(os.path.basename(p) for p in store.fs.ls(f"{store._base}/{folder}", detail=False))


def test_failed_write_keeps_previous_content(store, monkeypatch):
    store.write_bytes("raw/r/f.bin", b"old")
    payload = b"new" * 1000

    if store.is_local:

        def half_then_fail(fh, data):
            fh.write(bytes(data[: len(data) // 2]))
            raise OSError("disk full")

        monkeypatch.setattr(datastore, "_write_all", half_then_fail)
    else:

        def fail(*args, **kwargs):
            raise OSError("connection reset")

        monkeypatch.setattr(store.fs, "pipe_file", fail)
    with pytest.raises(OSError):
        store.write_bytes("raw/r/f.bin", payload)
    with pytest.raises(OSError):
        store.write_bytes("raw/r/g.bin", payload)
    assert store.read_bytes("raw/r/f.bin") == b"old"
    assert not store.exists("raw/r/g.bin")
    assert _leftovers(store, "raw/r") == ["f.bin"]  # no temporary file left behind


def test_overwrite_false_refuses(store):
    store.write_bytes("raw/r/data.csv", b"first", overwrite=False)
    with pytest.raises(StoreConflictError, match="raw/r/data.csv") as info:
        store.write_bytes("raw/r/data.csv", b"second", overwrite=False)
    assert isinstance(info.value, FileExistsError)
    assert store.read_bytes("raw/r/data.csv") == b"first"
    store.write_bytes("raw/r/data.csv", b"third")  # overwrite=True (the default) replaces it
    assert store.read_bytes("raw/r/data.csv") == b"third"
    assert _leftovers(store, "raw/r") == ["data.csv"]


def test_overwrite_false_without_hard_links(local, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(datastore.os, "link", no_links)
    local.write_bytes("raw/a", b"1", overwrite=False)
    with pytest.raises(StoreConflictError):
        local.write_bytes("raw/a", b"2", overwrite=False)
    assert local.read_bytes("raw/a") == b"1" and local.list("raw") == ["a"]


def test_list_hides_writes_in_progress(local):
    local.write_bytes("raw/a", b"1")
    (local.root / "raw" / ".aml-tmp-0123").write_bytes(b"partial")
    assert local.list("raw") == ["a"]


WRITER = textwrap.dedent(
    """
    import sys
    from aml.mlops.datastore import DataStore
    store, me = DataStore(sys.argv[1]), int(sys.argv[2])
    for i in range(50):
        store.write_bytes("shared/file.bin", bytes([me * 50 + i]) * 200_000)
    """
)


def test_concurrent_writers_never_tear(local):
    payloads = {bytes([n]) * 200_000 for n in range(100)}
    local.write_bytes("shared/file.bin", bytes([0]) * 200_000)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, local.url, str(me)]) for me in (0, 1)]
    reads = 0
    while any(p.poll() is None for p in procs):
        assert local.read_bytes("shared/file.bin") in payloads
        reads += 1
    assert [p.wait() for p in procs] == [0, 0]
    assert local.read_bytes("shared/file.bin") in payloads
    assert local.list("shared") == ["file.bin"]
    assert reads > 0


# -- confinement -----------------------------------------------------------------------------------------------------

HOSTILE = [
    "",
    "/etc/passwd",
    "//server/share",
    "C:\\Windows",
    "C:/Windows",
    "\\\\server\\share",
    "raw\\a.csv",
    "..",
    "../outside",
    "raw/../../outside",
    "raw/..",
    "raw/./a",
    "raw//a",
    ".",
    "./",
    "s3://bucket/key",
    "file:///etc/passwd",
    "file:a",
    "~/secrets",
    "~root/x",
    "raw/a\x00b",
    "raw/a\nb",
    "raw/\x7f",
    None,
    b"raw/a",
]


@pytest.mark.parametrize("path", HOSTILE, ids=[repr(p) for p in HOSTILE])
def test_hostile_paths_refused(store, path):
    with pytest.raises(StorePathError) as info:
        store.check_path(path)
    assert isinstance(info.value, ValueError)
    if isinstance(path, str) and path:
        assert repr(path) in str(info.value)
    with pytest.raises(StorePathError):
        store.write_bytes(path, b"x")
    with pytest.raises(StorePathError):
        store.read_bytes(path)


def test_paths_normalised(store):
    assert store.check_path("raw/a.csv") == "raw/a.csv"
    assert store.check_path("./raw/a.csv") == "raw/a.csv"
    assert store.check_path("raw/") == "raw"
    assert store.check_path(".hidden/x..y") == ".hidden/x..y"  # dots inside names are fine


def test_symlink_outside_root_refused(local, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(outside)
    (local.root / "inner").mkdir()
    (local.root / "ok").symlink_to(local.root / "inner")
    for path in ("link", "link/secret", "link/new.txt"):
        with pytest.raises(StorePathError, match="outside the store"):
            local.check_path(path)
    with pytest.raises(StorePathError):
        local.write_text("link/new.txt", "x")
    assert not (outside / "new.txt").exists()
    local.write_text("ok/a.txt", "fine")  # a symlink that stays inside is fine
    assert (local.root / "inner" / "a.txt").read_text() == "fine"


@pytest.mark.parametrize(
    "path, reason",
    [
        ("raw/\ud800.csv", "not valid Unicode"),
        ("raw/" + "a" * 300 + ".csv", "a name of 304 bytes"),
        ("raw/" + "é" * 130, "a name of 260 bytes"),
        ("raw/" + "a/" * 2500 + "x.csv", "store path of 5009 bytes"),
    ],
    ids=["lone surrogate", "300-character name", "long name in UTF-8 bytes", "2,500 levels"],
)
def test_paths_the_file_system_cannot_take_refused(store, path, reason):
    with pytest.raises(StorePathError, match=reason) as info:
        store.check_path(path)
    assert len(str(info.value)) < 300  # a 5,000-byte path is not echoed whole
    with pytest.raises(StorePathError):
        store.read_bytes(path)
    with pytest.raises(StorePathError):
        store.write_bytes(path, b"x")


def test_longest_names_and_paths_accepted(store):
    name = "n" * datastore.MAX_NAME_BYTES
    assert store.check_path(f"raw/{name}") == f"raw/{name}"
    deep = "/".join(["d"] * (datastore.MAX_PATH_BYTES // 2))
    assert store.check_path(deep) == deep


def test_symlink_loop_refused_without_the_store_folder(local):
    local.root.mkdir(parents=True)
    (local.root / "loop.csv").symlink_to(local.root / "loop.csv")
    (local.root / "a").symlink_to(local.root / "b")
    (local.root / "b").symlink_to(local.root / "a")
    for path in ("loop.csv", "a/x.csv"):
        with pytest.raises(StorePathError, match="symlink loop") as info:
            local.check_path(path)
        assert str(local.root) not in str(info.value)


def test_messages_never_name_the_store_folder(local, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    local.write_text("raw/r1/a.csv", "x")
    (local.root / "link").symlink_to(outside)
    calls = [
        lambda: local.check_path("link/x"),
        lambda: local.read_bytes("raw/nope.csv"),
        lambda: local.read_bytes("raw/r1"),
        lambda: local.list("raw/r1/a.csv"),
        lambda: local.read_json("raw/r1/a.csv"),
        lambda: local.write_text("raw/r1/a.csv", "y", overwrite=False),
        lambda: local.resolve_latest("raw"),
    ]
    for call in calls:
        with pytest.raises(StoreError) as info:
            call()
        assert str(local.root) not in str(info.value) and str(tmp_path) not in str(info.value), str(info.value)


# -- runs, latest, lineage -------------------------------------------------------------------------------------------


def test_run_ids_unique_and_ordered(store):
    ids = [store.new_run("raw") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(RUN_ID.match(i) for i in ids)


def test_latest_pointer(store):
    assert store.latest("processed") is None
    assert store.runs("processed") == []
    with pytest.raises(StoreNotFoundError, match="call POST /prepare first") as info:
        store.resolve_latest("processed", "call POST /prepare first")
    assert "processed/latest" in str(info.value)
    with pytest.raises(StoreNotFoundError, match="processed"):
        store.resolve_latest("processed")
    first, second = store.new_run("processed"), store.new_run("processed")
    with pytest.raises(StoreNotFoundError):
        store.set_latest("processed", first)  # nothing written there yet
    store.write_text(store.run_path("processed", first, "data.csv"), "a")
    store.write_text(store.run_path("processed", second, "data.csv"), "b")
    store.set_latest("processed", first)
    assert store.latest("processed") == first == store.resolve_latest("processed")
    store.set_latest("processed", second)
    assert store.latest("processed") == second
    assert store.read_text("processed/latest").strip() == second
    if store.is_local:
        assert (store.root / "processed" / "latest").is_file()  # a file, not a symlink
        assert not (store.root / "processed" / "latest").is_symlink()
    assert store.runs("processed") == [first, second]  # the pointer is not a run
    store.write_text("processed/latest", "../../etc")
    with pytest.raises(StoreError, match="run id"):
        store.latest("processed")


def test_run_paths_checked(store):
    run = store.new_run("split")
    assert store.run_path("split", run) == f"split/{run}"
    assert store.run_path("split", run, "train.csv") == f"split/{run}/train.csv"
    for bad in ("latest", "../x", "20260101", run + "/..", ""):
        with pytest.raises(StorePathError):
            store.run_path("split", bad)
    with pytest.raises(StorePathError):
        store.run_path("split", run, "../../x")
    with pytest.raises(StorePathError):
        store.new_run("../raw")


def test_lineage(store):
    run = store.new_run("processed")
    record = {"inputs": [{"path": "raw/r/a.csv", "sha256": "ab" * 32}], "config": {"seed": np.int64(1)}, "git": "abc"}
    location = store.write_lineage("processed", run, record)
    assert location == store.location(f"processed/{run}/lineage.json")
    lineage = store.read_lineage("processed", run)
    assert lineage["kind"] == "processed" and lineage["run"] == run and lineage["store"] == store.url
    assert lineage["inputs"] == record["inputs"] and lineage["config"] == {"seed": 1} and lineage["git"] == "abc"
    assert lineage["created_at"].endswith("+00:00")
    with pytest.raises(StoreConflictError):
        store.write_lineage("processed", run, record)  # provenance is written once
    with pytest.raises(ValueError, match="run"):
        store.write_lineage("processed", store.new_run("processed"), {"run": "x"})
    assert json.loads(store.read_text(f"processed/{run}/lineage.json")) == lineage


def test_no_spam_import():
    source = Path(datastore.__file__).read_text()
    assert "aml.spam" not in source
