"""File digests, in one place: SHA-256 (artefact and dataset checksums) and MD5 (what DVC records as a data version).

Both stream the file in 1 MiB blocks, so a large file never sits in memory whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20


def _digest(path: str | Path, digest) -> str:
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    return _digest(path, hashlib.sha256())


def md5(path: str | Path) -> str:
    """MD5 hex digest of a file, as DVC 3 records it in ``.dvc`` files and ``dvc.lock`` (the data version)."""
    return _digest(path, hashlib.md5(usedforsecurity=False))
