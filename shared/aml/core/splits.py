"""Stratified train/validation/test splits, per-class counts, and the manifest that ties split files to their seed.

Light on purpose (NumPy, pandas, scikit-learn): :mod:`aml.spam.sms` uses it without importing torch.

Why a manifest: split files say nothing about how they were made. A notebook asked for seed 7 that finds seed-42
files on disk would train on them and report seed-42 figures without a word. So every folder of split files carries
``splits.json`` (:data:`MANIFEST`): the seed, the fractions, the source file's SHA-256, the row count and SHA-256 of
each file. :func:`check_manifest` refuses a folder whose seed is not the one asked for, or whose files no longer match
their hashes, with a message saying what to do; :func:`seed_dir` gives every seed its own folder, so the splits of
several seeds live side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aml.core.files import write_atomic
from aml.core.hashing import sha256

SPLITS = ("train", "validation", "test")
#: the manifest's file name, beside the split files
MANIFEST = "splits.json"


class SplitMismatchError(ValueError):
    """Split files that are not the ones asked for: another seed, no manifest, or files changed since they were
    written. The message says what was found and how to prepare the right splits."""


def stratified_indices(
    labels: Sequence[int], fractions: tuple[float, float, float] = (0.70, 0.15, 0.15), seed: int = 42
) -> dict[str, np.ndarray]:
    """Positions of a stratified train/validation/test split, each in the order scikit-learn draws them.

    Two stratified cuts: ``fractions[0]`` of the rows for training, then the rest divided between validation and
    test in the ratio of the other two fractions.
    """
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    labels = np.asarray(labels)
    train_f, val_f, test_f = fractions
    train, rest = train_test_split(np.arange(len(labels)), train_size=train_f, stratify=labels, random_state=seed)
    validation, test = train_test_split(
        rest, test_size=test_f / (val_f + test_f), stratify=labels[rest], random_state=seed
    )
    return dict(zip(SPLITS, (train, validation, test), strict=True))


def class_counts(labels_by_split: Mapping[str, Sequence[int]], class_names: Sequence[str]) -> pd.DataFrame:
    """One row per split: how many examples of each class (label ``i`` is ``class_names[i]``) and the total."""
    rows = {
        name: {c: int((np.asarray(labels) == i).sum()) for i, c in enumerate(class_names)}
        for name, labels in labels_by_split.items()
    }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["total"] = out.sum(axis=1)
    return out


# -- the manifest ----------------------------------------------------------------------------------------------------


def seed_dir(data_dir: str | Path, seed: int) -> Path:
    """The folder of seed ``seed``'s splits under ``data_dir``: ``data_dir/seed-<seed>`` (every seed its own)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"a split seed is an integer, got {seed!r}")
    return Path(data_dir) / f"seed-{int(seed)}"


def write_manifest(
    folder: str | Path,
    seed: int,
    files: Mapping[str, str | Path],
    rows: Mapping[str, int],
    source: str | Path | None = None,
    fractions: Sequence[float] | None = None,
) -> Path:
    """Write ``folder/splits.json`` (atomically) for the split ``files`` (``{split: path}``, paths inside ``folder``)
    made with ``seed`` from ``source`` (a file, hashed; ``None`` when the data came from elsewhere); returns its path.
    Write it after the files: a manifest always describes complete files."""
    folder = Path(folder)
    outside = [str(p) for p in files.values() if Path(p).resolve().parent != folder.resolve()]
    if outside:
        raise ValueError(f"split files must lie in {folder}: {outside}")
    manifest = {
        "seed": int(seed),
        "fractions": [float(f) for f in fractions] if fractions is not None else None,
        "source": {"name": Path(source).name, "sha256": sha256(source)} if source is not None else None,
        "rows": {name: int(n) for name, n in rows.items()},
        "files": {Path(path).name: sha256(path) for path in files.values()},
    }
    return write_atomic(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2) + "\n"))


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """``folder/splits.json`` as a dict, or ``None`` when there is none."""
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def check_manifest(folder: str | Path, seed: int | None = None, prepare_hint: str = "") -> dict[str, Any]:
    """The manifest of ``folder`` after checking it: present, made with ``seed`` (when given), and every file it lists
    unchanged (SHA-256). Raises :class:`SplitMismatchError` naming the folder, what was found and ``prepare_hint``
    (how to prepare the right splits)."""
    folder = Path(folder)
    hint = f" {prepare_hint}" if prepare_hint else ""
    manifest = read_manifest(folder)
    if manifest is None:
        raise SplitMismatchError(
            f"{folder} has no {MANIFEST}: the seed of its split files is unknown (written before manifests, or by "
            f"hand).{hint}"
        )
    if seed is not None and manifest.get("seed") != seed:
        raise SplitMismatchError(
            f"the splits in {folder} were made with seed {manifest.get('seed')}, not {seed}: refusing to use another "
            f"seed's splits.{hint}"
        )
    changed = [name for name, digest in manifest["files"].items() if not _same(folder / name, digest)]
    if changed:
        raise SplitMismatchError(
            f"{', '.join(changed)} in {folder} changed since {MANIFEST} was written (SHA-256 differs or file "
            f"missing).{hint}"
        )
    return manifest


def _same(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest
