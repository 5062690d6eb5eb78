import pytest

from aml.core.files import write_atomic


def test_write_atomic_replaces_the_file_and_creates_the_folder(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.txt", lambda tmp: tmp.write_text("one"))
    assert path == tmp_path / "sub" / "a.txt" and path.read_text() == "one"
    write_atomic(path, lambda tmp: tmp.write_text("two"))
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_a_failed_write_keeps_the_previous_version_and_leaves_no_temporary_file(tmp_path):
    path = write_atomic(tmp_path / "a.txt", lambda tmp: tmp.write_text("good"))

    def half_then_crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_crash)
    assert path.read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
