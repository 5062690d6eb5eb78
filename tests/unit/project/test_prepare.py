"""The data stage of :mod:`aml.project.prepare`: raw-data ingestion that never overwrites, every output with its
lineage, the atomicity of ``prepare`` (a crash half-way leaves ``latest`` unchanged), the profile and the data
tests."""

from __future__ import annotations

import errno
import os

import pytest

from aml.mlops import datastore
from aml.project import prepare, settings
from aml.spam import stages
from aml.spam.sms import DataValidationError

# -- ingest and prepare ----------------------------------------------------------------------------------------------


def test_ingest_raw_never_overwrites(store, tmp_path, raw_file):
    first_source = raw_file(tmp_path / "first")
    first = prepare.ingest_raw(store, first_source)
    run_1 = store.latest("raw")
    assert first == store.run_path("raw", run_1, prepare.RAW_FILE)
    before = store.local_path(first).stat()
    second = prepare.ingest_raw(store, raw_file(tmp_path / "second", offset=1000))
    run_2 = store.latest("raw")
    assert run_2 != run_1 and second == store.run_path("raw", run_2, prepare.RAW_FILE)
    assert store.runs("raw") == sorted([run_1, run_2])
    assert store.read_bytes(first) == first_source.read_bytes()  # the earlier file untouched
    after = store.local_path(first).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.read_bytes(second) == (tmp_path / "second").read_bytes()
    lineage = store.read_lineage("raw", run_2)
    assert lineage["source"] == str(tmp_path / "second")
    assert lineage["outputs"][prepare.RAW_FILE]["sha256"] == store.sha256(second)
    with pytest.raises(FileNotFoundError, match="raw data not found"):
        prepare.ingest_raw(store, tmp_path / "absent")
    assert store.latest("raw") == run_2


def test_ingest_raw_stores_the_same_bytes_once(store, tmp_path, raw_file):
    first_source = raw_file(tmp_path / "first")
    first = prepare.ingest_raw(store, first_source)
    digest = store.sha256(first)
    entry = store.read_json(f"{prepare.RAW_INDEX}/{digest}.json")
    assert entry == {"run": store.latest("raw"), "path": first, "sha256": digest}
    copy = tmp_path / "copy"
    copy.write_bytes(first_source.read_bytes())  # the same bytes from another file: the same content
    assert prepare.ingest_raw(store, copy) == first and len(store.runs("raw")) == 1
    second = prepare.ingest_raw(store, raw_file(tmp_path / "second", offset=1000))
    assert second != first and store.latest("raw") == second.split("/")[1]
    assert prepare.ingest_raw(store, first_source) == first  # ingested again: latest moves back, nothing written
    assert store.latest("raw") == first.split("/")[1] and len(store.runs("raw")) == 2
    assert sorted(store.list(prepare.RAW_INDEX)) == sorted([f"{digest}.json", f"{store.sha256(second)}.json"])


def test_find_raw_adopts_a_run_without_an_index_entry_and_skips_a_stale_one(store, tmp_path, raw_file):
    source = raw_file(tmp_path / "raw")
    path = prepare.ingest_raw(store, source)
    digest = store.sha256(path)
    entry = f"{prepare.RAW_INDEX}/{digest}.json"
    store.local_path(entry).unlink()  # an ingestion killed between its file and its index entry
    assert prepare.find_raw(store, digest, scan=False) is None
    assert prepare.ingest_raw(store, source) == path and len(store.runs("raw")) == 1
    assert store.read_json(entry)["path"] == path  # the entry written for the adopted run
    store.write_json(entry, {"path": "raw/gone/SMSSpamCollection"})  # an entry whose file is gone
    assert prepare.find_raw(store, digest) == path and store.read_json(entry)["path"] == path
    assert prepare.find_raw(store, "0" * 64) is None


def ingest_in_threads(url: str, source: str, n: int, start) -> list[str]:
    """``n`` threads of this process ingest ``source`` into the store at ``url`` at once; their answers."""
    from concurrent.futures import ThreadPoolExecutor

    store = datastore.DataStore(url)
    start.wait(30)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: prepare.ingest_raw(store, source), range(n)))


def ingest_in_child(url: str, source: str, n: int, start, answers) -> None:
    answers.put(ingest_in_threads(url, source, n, start))


def test_concurrent_ingestions_in_threads_and_processes_store_the_bytes_once(store, tmp_path, raw_file):
    import multiprocessing
    import threading

    source = str(raw_file(tmp_path / "raw", n_ham=2000, n_spam=500))  # ~120 KB: the writes take a moment
    context = multiprocessing.get_context("fork")
    start, answers = context.Event(), context.Queue()
    children = [context.Process(target=ingest_in_child, args=(store.url, source, 5, start, answers)) for _ in range(3)]
    for child in children:
        child.start()
    here: list[str] = []
    thread = threading.Thread(target=lambda: here.extend(ingest_in_threads(store.url, source, 5, start)))
    thread.start()
    start.set()  # 20 ingestions: 5 threads in each of 4 processes
    paths = [path for _ in children for path in answers.get(timeout=60)]
    thread.join(60)
    paths += here
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert len(paths) == 20 and len(set(paths)) == 1
    assert len(store.runs("raw")) == 1 and store.latest("raw") == paths[0].split("/")[1]
    assert store.read_bytes(paths[0]) == (tmp_path / "raw").read_bytes()
    assert tmp_files(store.root) == []


def test_ingest_raw_refuses_invalid_data_and_keeps_the_previous_latest(store, tmp_path, raw_file):
    prepare.ingest_raw(store, raw_file(tmp_path / "good"))
    good = store.latest("raw")
    (tmp_path / "bad").write_text("this is not\ta labelled\tcollection\n", encoding="utf-8")
    with pytest.raises(DataValidationError):
        prepare.ingest_raw(store, tmp_path / "bad")
    assert store.latest("raw") == good


def test_prepare_from_a_source_writes_every_output(store, tmp_path, raw_file):
    result = prepare.prepare(store, settings.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    run = result["run"]
    assert result["rows"]["processed"] == 120 and result["duplicates_removed"] == 0
    assert sum(result["rows"][s] for s in stages.SPLITS) == 120 and result["rows"]["scoring"] == result["rows"]["test"]
    for kind in ("processed", "split", "scoring"):
        assert store.latest(kind) == run and store.read_lineage(kind, run)["outputs"]["train"]["rows"] > 0
    scoring = store.read_csv(result["outputs"]["scoring"], dtype={"id": "string"})
    assert list(scoring.columns) == ["id", "text"] and scoring.id.iloc[0] == "test-0"
    again = prepare.prepare(store)  # the latest raw run: not ingested again
    assert len(store.runs("raw")) == 1 and again["run"] != run
    assert store.sha256(again["outputs"]["train"]) == store.sha256(result["outputs"]["train"])


def tmp_files(root) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".aml-tmp-")]


@pytest.mark.parametrize(
    ("failing_write", "written"),
    [
        (1, []),  # processed/messages.csv
        (3, ["processed/messages.csv", "split/train.csv"]),  # split/validation.csv, half written
        (5, ["processed/messages.csv", "split/train.csv", "split/validation.csv", "split/test.csv"]),
        (
            7,
            [  # the second lineage record: every data file is in place
                "processed/lineage.json",
                "processed/messages.csv",
                "scoring/messages.csv",
                "split/test.csv",
                "split/train.csv",
                "split/validation.csv",
            ],
        ),
    ],
)
def test_prepare_that_crashes_half_way_leaves_latest_unchanged(
    store, tmp_path, monkeypatch, failing_write, written, raw_file
):
    first = prepare.prepare(store, settings.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    before = {kind: store.latest(kind) for kind in ("processed", "split", "scoring")}
    runs_before = {kind: store.runs(kind) for kind in before}
    calls = {"n": 0}
    write_all = datastore._write_all

    def crash_on_nth_write(fh, data):
        calls["n"] += 1
        if calls["n"] == failing_write:
            fh.write(memoryview(data)[: len(data) // 2])  # half the file, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fh, data)

    monkeypatch.setattr(datastore, "_write_all", crash_on_nth_write)
    with pytest.raises(OSError, match="No space left"):
        prepare.prepare(store, settings.PrepareConfig(seed=7))
    monkeypatch.setattr(datastore, "_write_all", write_all)

    assert {kind: store.latest(kind) for kind in before} == before == dict.fromkeys(before, first["run"])
    new_runs = {kind: sorted(set(store.runs(kind)) - set(runs_before[kind])) for kind in before}
    found = sorted(
        f"{kind}/{name}" for kind, runs in new_runs.items() for run in runs for name in store.list(f"{kind}/{run}")
    )
    assert found == sorted(
        written
    )  # what was written before the crash is complete; the half-written file never appears
    assert tmp_files(store.root) == []
    assert store.read_csv(store.run_path("split", first["run"], "train.csv")).shape[0] == first["rows"]["train"]
    later = prepare.prepare(store, settings.PrepareConfig(seed=7))  # the store still works
    assert store.latest("split") == later["run"] != first["run"]


def test_prepare_of_invalid_raw_data_leaves_latest_unchanged(store, tmp_path, raw_file):
    first = prepare.prepare(store, settings.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    store.write_bytes("raw/broken/SMSSpamCollection", b"ham\tfine\nspam\tWIN\nno label column here\n")
    with pytest.raises(DataValidationError, match="tab-separated"):
        prepare.prepare(store, settings.PrepareConfig(raw="raw/broken/SMSSpamCollection"))
    with pytest.raises(FileNotFoundError, match="raw/none"):
        prepare.prepare(store, settings.PrepareConfig(raw="raw/none/SMSSpamCollection"))
    assert all(store.latest(kind) == first["run"] for kind in ("processed", "split", "scoring"))
    assert len(store.runs("split")) == 1


# -- profile and data tests in prepare -------------------------------------------------------------------------------


def test_prepare_writes_the_profile_and_tests_against_the_latest(store, tmp_path, raw_file):
    from aml.spam.profiling import Profile

    first = prepare.prepare(store, settings.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    assert set(first["outputs"]) == {"processed", *stages.SPLITS, "scoring"}  # the return contract is kept
    run = first["run"]
    assert first["profile"] == {"json": f"processed/{run}/profile.json", "html": f"processed/{run}/profile.html"}
    saved = Profile.from_dict(store.read_json(first["profile"]["json"]))
    assert saved.rows == first["rows"]["processed"] == 120 and saved.target["counts"] == {"ham": 90, "spam": 30}
    assert store.read_text(first["profile"]["html"]).startswith("<!DOCTYPE html>")
    lineage = store.read_lineage("split", run)
    assert lineage["profile"]["profile.json"]["sha256"] == store.sha256(first["profile"]["json"])
    tests = first["data_tests"]
    assert tests["passed"] and tests["reference"] is None and tests["failures"] == []  # no reference: schema only
    second = prepare.prepare(store, settings.PrepareConfig(seed=3))  # the same data: within every bound
    assert second["data_tests"]["passed"] and second["data_tests"]["reference"] == f"processed/{run}"
    assert second["data_tests"]["checks"] > first["data_tests"]["checks"]


def test_prepare_refuses_shifted_data_listing_every_failed_check_and_keeps_latest(store, tmp_path, raw_file):
    from aml.spam import datatests, profiling, sms

    first = prepare.prepare(store, settings.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    before = {kind: store.latest(kind) for kind in ("processed", "split", "scoring")}
    shifted = raw_file(tmp_path / "shifted", n_ham=40, n_spam=60, offset=500)  # 60% spam instead of 25%
    store.write_bytes("raw/shifted/SMSSpamCollection", shifted.read_bytes())
    expected = datatests.check_data(
        sms.preprocess(sms.read_sms_file(shifted))[0],
        profiling.Profile.from_dict(store.read_json(first["profile"]["json"])),
    )
    assert len(expected.failures) >= 2 and "target.spam_share" in [f.name for f in expected.failures]

    with pytest.raises(DataValidationError) as caught:
        prepare.prepare(store, settings.PrepareConfig(raw="raw/shifted/SMSSpamCollection"))
    message = str(caught.value)
    assert f"{len(expected.failures)} of {expected.checks} checks" in message
    assert all(f"- {failure.name}: " in message for failure in expected.failures), message
    assert {kind: store.latest(kind) for kind in before} == before == dict.fromkeys(before, first["run"])
    assert store.runs("split") == [first["run"]] and store.runs("scoring") == [first["run"]]  # no split written
    refused = message.rsplit("the refused data's profile: ", 1)[1].strip()
    assert refused.endswith("/profile.html") and store.read_text(refused).startswith("<!DOCTYPE html>")

    accepted = prepare.prepare(store, settings.PrepareConfig(raw="raw/shifted/SMSSpamCollection", data_tests=False))
    assert accepted["data_tests"]["passed"] and accepted["data_tests"]["reference"] is None
    assert store.latest("split") == accepted["run"] != first["run"]  # a deliberate change, accepted explicitly


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_data_tests_must_be_true_or_false(value):
    with pytest.raises(settings.StageError, match="data_tests"):
        settings.make_config("prepare", {}, {"data_tests": value})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"label,text\n", "the SMS data is empty"),
        (b"text\nhello\n", "columns \\['label'\\] are missing"),
        (b"id,text\n", "columns \\['label'\\] are missing"),
        (b"label,text\nham,\nspam,\n", "empty text"),
        (b"\x00\xff\xfe binary", "not a readable CSV"),
    ],
    ids=["header only", "no labels", "scoring header", "empty texts", "binary"],
)
def test_raw_data_that_is_not_labelled_messages_is_refused_naming_the_file(store, content, message):
    store.write_bytes("raw/upload.csv", content)
    with pytest.raises(DataValidationError, match=message) as caught:
        prepare.prepare(store, settings.PrepareConfig(raw="raw/upload.csv"))
    assert "raw/upload.csv" in str(caught.value) and str(store.root) not in str(caught.value)
    assert store.latest("split") is None
