import hashlib

from aml.core import hashing


def test_digests_match_hashlib_on_a_multi_block_file(tmp_path):
    data = b"abc" * 700_000  # > 1 MiB: read in several blocks
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hashing.sha256(path) == hashlib.sha256(data).hexdigest()
    assert hashing.md5(path) == hashlib.md5(data).hexdigest()
