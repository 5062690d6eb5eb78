"""The dataset registry and :func:`fetch`.

Every dataset the course uses is described once here: its public source URL(s), the files it must contain and their
expected SHA-256 digests. :func:`fetch` returns a local folder holding the dataset, looking in this order:

1. the download cache (``AML_CACHE_DIR``, default ``~/.cache/aml-workspace``), re-verified on every use;
2. a local copy in the folder named by ``AML_DATA_DIR`` (``$AML_DATA_DIR/<name>/`` or ``$AML_DATA_DIR`` itself);
3. a download from the public source, verified, then unpacked into the cache.

What `pooch <https://www.fatiando.org/pooch/>`_ does (the library SciPy and scikit-image fetch their data with): the
download itself (HTTP with a timeout, streamed to a temporary file in the cache folder and moved into place only when
complete), the check of the downloaded file against a known hash where the registry has one
(:attr:`DatasetSpec.url_hashes`; a mismatch deletes the file and raises :class:`ChecksumError`), and the unpacking of
zip archives (its ``Unzip`` processor, which also keeps member paths inside the target folder).

What is written by hand here, because pooch has no notion of it: the registry itself (pooch pins one hash per
*downloaded* file, while a course dataset is a folder whose *member* files are pinned, some by several accepted
digests, some not at all, some only by a minimum count of files matching a glob); the local-copy lookup in
``AML_DATA_DIR`` (offline CI and classrooms, never a download); the structural validation of a folder
(:meth:`DatasetSpec.missing`); the member digests (:func:`verify`) and the manifest that pins, on first use, what the
registry cannot; and the error that says where it looked (:class:`DatasetNotFoundError`: the URLs tried, the folders
searched and the variable to set).

Digests. A file whose registry entry is *strict* must match one of its registry digests, wherever it is found and
whatever the cache manifest says: the registry always wins. Files without a registry digest, non-strict files (a
Kaggle re-publication of the tweets with other bytes: accepted with a logged warning and left to the loader's
validation) and the files matched by a folder dataset's globs are pinned on first use instead: the digests seen when the
copy entered the cache are written to its manifest (``.aml-manifest.json``), so later corruption of the cached copy is
still detected. An unreadable manifest is an error naming the file when it pins such files (they can no longer be
checked); when the registry digests cover every file it is only logged, ignored and rewritten.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from aml.core import config, hashing

logger = logging.getLogger(__name__)

MANIFEST = ".aml-manifest.json"
USER_AGENT = "aml-workspace"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DatasetError(RuntimeError):
    """Base class for dataset problems."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No verified copy could be found or downloaded."""


class ChecksumError(DatasetError):
    """A file exists but its SHA-256 digest is not the expected one (independent of the model store's error)."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its path inside the dataset folder and the digests accepted for it."""

    path: str
    sha256: tuple[str, ...] = ()
    size: int | None = None
    #: strict: a digest outside ``sha256`` is refused, whatever a cache manifest records. Not strict: it is accepted
    #: with a logged warning (a known re-publication with other bytes), left to the loader's validation and pinned in
    #: the cache manifest.
    strict: bool = True

    @property
    def pinned_by_registry(self) -> bool:
        """True when the registry alone decides which bytes are acceptable (strict, with at least one digest)."""
        return self.strict and bool(self.sha256)


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry."""

    name: str
    description: str
    urls: tuple[str, ...] = ()
    files: tuple[FileSpec, ...] = ()
    #: for folder datasets: glob pattern -> minimum number of matching files
    globs: dict[str, int] = field(default_factory=dict)
    licence: str = ""
    how_to_get: str = ""
    #: url -> pooch ``known_hash`` of the file that URL serves (``"sha256:…"``); pooch refuses other bytes. Optional:
    #: without it the download's digest is logged and the member files are still verified against ``files``.
    url_hashes: dict[str, str] = field(default_factory=dict)

    def missing(self, folder: Path) -> list[str]:
        """What the folder lacks to hold this dataset (empty when complete)."""
        out = [f.path for f in self.files if not (folder / f.path).is_file()]
        for pattern, minimum in self.globs.items():
            found = len(_glob_files(folder, pattern))
            if found < minimum:
                out.append(f"{pattern} (found {found}, need at least {minimum})")
        return out

    @property
    def needs_pins(self) -> bool:
        """True when some file can only be checked against the digests pinned in the cache manifest."""
        return bool(self.globs) or any(not f.pinned_by_registry for f in self.files)


#: every dataset :func:`fetch` knows, by name; :func:`register` adds one
REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) ``spec`` in :data:`REGISTRY` under its name and return it: a new dataset is one call
    here, and :func:`fetch` then finds, verifies and caches it like the others."""
    REGISTRY[spec.name] = spec
    return spec


register(
    DatasetSpec(
        name="sms_spam",
        description="UCI SMS Spam Collection: 5,574 SMS, label<TAB>text, ham/spam (Almeida et al., 2011).",
        urls=("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",),
        files=(
            FileSpec(
                "SMSSpamCollection",
                sha256=("7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",),
                size=477_907,
            ),
        ),
        licence="CC BY 4.0",
        how_to_get="Download the zip from the UCI page of dataset 228 and unzip it into $AML_DATA_DIR/sms_spam/.",
    )
)

register(
    DatasetSpec(
        name="tweet_sentiment",
        description=(
            "Tweet Sentiment Extraction (Kaggle 2020), 3 classes. The original competition files "
            "(train.csv 27,481 rows, test.csv 3,534 rows) or the course's Kaggle re-publication "
            "abhi8923shriv/sentiment-analysis-dataset (same rows, extra columns, blank test rows)."
        ),
        urls=("https://www.kaggle.com/api/v1/datasets/download/abhi8923shriv/sentiment-analysis-dataset",),
        files=(
            # the competition's own files; the course's re-publication has other digests (pinned on first use)
            FileSpec(
                "train.csv",
                sha256=("192204063468a632b2601f6e833c42d7875b618d1a6e5c9529ad8ca58ee6be75",),
                strict=False,
            ),
            FileSpec(
                "test.csv",
                sha256=("4d1fc2995ce88eb7d435f18563e93361f35956c3e74ed22572b9614eff6d04e6",),
                strict=False,
            ),
        ),
        licence="Kaggle competition data, for education",
        how_to_get=(
            "Download the Kaggle dataset abhi8923shriv/sentiment-analysis-dataset (or the competition's "
            "train.csv/test.csv) into $AML_DATA_DIR/tweet_sentiment/."
        ),
    )
)

register(
    DatasetSpec(
        name="duck_chicken",
        description="About 100 duck and 100 chicken photos, one folder per class (class_name/*.jpg).",
        globs={"duck/*.jpg": 20, "chicken/*.jpg": 20},
        licence="web photos for educational use; see SOURCES.md of the copy",
        how_to_get=(
            "Collect ~100 photos per class from the web (e.g. an image search for 'duck' and 'chicken'), save them "
            "as $AML_DATA_DIR/duck_chicken/duck/*.jpg and $AML_DATA_DIR/duck_chicken/chicken/*.jpg."
        ),
    )
)


def get_spec(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``; an unknown name raises ``KeyError`` listing the
    registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}") from None


def _glob_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.name != MANIFEST)


def _pinnable(spec: DatasetSpec, folder: Path) -> list[str]:
    """Relative paths of the files whose digests the manifest must pin (not decided by the registry alone)."""
    paths = [f.path for f in spec.files if not f.pinned_by_registry]
    for pattern in spec.globs:
        paths += [p.relative_to(folder).as_posix() for p in _glob_files(folder, pattern)]
    return sorted(set(paths))


# --- verification ---------------------------------------------------------------------------------------------------


def verify(spec: DatasetSpec, folder: Path, pinned: dict[str, str] | None = None) -> None:
    """Raise if ``folder`` does not hold a complete, uncorrupted copy of ``spec``.

    Strict files with registry digests must match one of them; ``pinned`` (the cache manifest) is never consulted for
    them. Every other file recorded in ``pinned`` (non-strict files, files without a registry digest, files matched by
    the globs) must still exist and match the recorded digest. A non-strict file that is not pinned and matches none of
    its registry digests is accepted with a logged warning.
    """
    missing = spec.missing(folder)
    if missing:
        raise DatasetNotFoundError(f"{folder} does not hold dataset {spec.name!r}: missing {', '.join(missing)}")
    pinned = pinned or {}
    for f in spec.files:
        path = folder / f.path
        digest = hashing.sha256(path)
        if f.pinned_by_registry:
            if digest not in f.sha256:
                raise ChecksumError(
                    f"{path}: sha256 {digest} is not the expected {' or '.join(f.sha256)} for dataset {spec.name!r}; "
                    "the file is corrupt or a different file: replace it with the original"
                )
            if f.path in pinned and pinned[f.path] != digest:
                logger.warning("%s: the cache manifest records another digest; the registry's digest wins", path)
            continue
        if f.path in pinned:
            _check_pinned(spec, path, digest, pinned[f.path])
        elif f.sha256 and digest not in f.sha256:
            logger.warning(
                "%s: sha256 %s… is not the original's; accepted as a re-publication of %r and left to the loader's "
                "validation",
                path,
                digest[:12],
                spec.name,
            )
    registry_paths = {f.path for f in spec.files}
    for relative, recorded in sorted(pinned.items()):
        if relative in registry_paths:
            continue
        path = folder / relative
        if not path.is_file():
            raise ChecksumError(
                f"{path}: recorded in {folder / MANIFEST} when the copy was cached but now missing; "
                f"delete {folder} and fetch {spec.name!r} again"
            )
        _check_pinned(spec, path, hashing.sha256(path), recorded)


def _check_pinned(spec: DatasetSpec, path: Path, digest: str, recorded: str) -> None:
    if digest != recorded:
        raise ChecksumError(
            f"{path}: sha256 {digest} differs from {recorded} recorded when it was cached; "
            f"the file is corrupt: delete it and fetch {spec.name!r} again"
        )


# --- the cache manifest ---------------------------------------------------------------------------------------------


class _BrokenManifest(Exception):
    pass


def _parse_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BrokenManifest(f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _BrokenManifest(f"expected a JSON object of path -> sha256, found {type(data).__name__}")
    for key, value in data.items():
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not key:
            raise _BrokenManifest(f"entry {key!r} is not a path inside the dataset folder")
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise _BrokenManifest(f"entry {key!r} has {value!r}, not a SHA-256 hex digest")
    return data


def _read_manifest(spec: DatasetSpec, folder: Path) -> dict[str, str] | None:
    """The digests pinned in ``folder``'s manifest; ``None`` when there is none (or a broken one that may be rebuilt).

    A broken manifest is an error (:class:`DatasetError` naming it) when it pins files the registry cannot check;
    otherwise it is logged and ignored, and :func:`fetch` rewrites it.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return _parse_manifest(path)
    except _BrokenManifest as exc:
        if spec.needs_pins:
            raise DatasetError(
                f"{path}: the cache manifest of dataset {spec.name!r} is unreadable: {exc}. It pins files the "
                f"registry has no digest for, so the cached copy cannot be checked: delete {folder} and fetch "
                f"{spec.name!r} again"
            ) from None
        logger.warning("%s: unreadable cache manifest (%s); ignored and rebuilt from the registry digests", path, exc)
        return None


def _write_manifest(spec: DatasetSpec, folder: Path) -> None:
    """Record the digests of every file of the dataset (registry files and glob matches) in ``folder``'s manifest."""
    relatives = sorted({f.path for f in spec.files} | set(_pinnable(spec, folder)))
    digests = {relative: hashing.sha256(folder / relative) for relative in relatives}
    target = folder / MANIFEST
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(target)
    logger.debug("pinned %d file(s) of %r in %s", len(digests), spec.name, target)


# --- download (pooch) -----------------------------------------------------------------------------------------------


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's own logger (a stand-alone logger printing to stderr) while the aml logger records the events."""
    import pooch

    pooch_logger = pooch.get_logger()
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        pooch_logger.setLevel(level)


def _unpacker(spec: DatasetSpec, url: str) -> Callable[[str, str, object], Path]:
    """A pooch processor: unzip a zip archive (``pooch.Unzip``) or place a single plain file; returns the folder."""

    def process(fname: str, action: str, pup: object) -> Path:
        import pooch

        archive = Path(fname)
        target = archive.parent / "unpacked"
        if url not in spec.url_hashes:
            logger.info("%s served sha256:%s (add it to url_hashes to pin the download)", url, hashing.sha256(archive))
        if zipfile.is_zipfile(archive):
            pooch.Unzip(extract_dir=target.name)(fname, action, pup)
        elif len(spec.files) == 1 and not spec.globs:
            dest = target / spec.files[0].path
            dest.parent.mkdir(parents=True, exist_ok=True)
            archive.replace(dest)
        else:
            raise DatasetError(f"the file served by {url} is not a zip archive, and {spec.name!r} has several files")
        return target

    return process


def _dataset_root(spec: DatasetSpec, unpacked: Path, url: str) -> Path:
    """The folder of the unpacked download that holds the dataset: the top, else the shallowest complete sub-folder."""
    subfolders = sorted((p for p in unpacked.rglob("*") if p.is_dir()), key=lambda p: (len(p.parts), str(p)))
    for folder in [unpacked, *subfolders]:
        if not spec.missing(folder):
            return folder
    raise DatasetError(
        f"the download from {url} does not hold {spec.name!r}: missing {', '.join(spec.missing(unpacked))}"
    )


def _download(spec: DatasetSpec, url: str, cached: Path, timeout: float) -> None:
    """Download ``url`` with pooch into the cache, unpack, verify, pin, and move the result to ``cached``.

    Pooch's :class:`ValueError` for a download that does not match ``spec.url_hashes[url]`` becomes a
    :class:`ChecksumError`. Nothing is left in the cache unless the whole dataset verified.
    """
    import pooch

    cached.parent.mkdir(parents=True, exist_ok=True)
    known_hash = spec.url_hashes.get(url)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=f".{spec.name}-download-") as tmp:
        logger.info("downloading %r from %s", spec.name, url)
        try:
            with _quiet_pooch():
                unpacked = pooch.retrieve(
                    url,
                    known_hash=known_hash,
                    fname=pooch.utils.unique_file_name(url),
                    path=tmp,
                    processor=_unpacker(spec, url),
                    downloader=pooch.HTTPDownloader(timeout=timeout, headers={"User-Agent": USER_AGENT}),
                    progressbar=False,
                )
        except ValueError as exc:
            if known_hash and "known hash" in str(exc):
                raise ChecksumError(f"download of {spec.name!r} from {url} refused: {exc}") from exc
            raise
        root = _dataset_root(spec, Path(unpacked), url)
        verify(spec, root)
        _write_manifest(spec, root)
        if cached.exists():
            shutil.rmtree(cached)
        root.replace(cached)
    logger.info("dataset %r cached in %s", spec.name, cached)


# --- fetch ----------------------------------------------------------------------------------------------------------


def _candidate_local_folders(name: str, data_dir: Path | None) -> list[Path]:
    base = data_dir if data_dir is not None else config.local_data_dir()
    return [] if base is None else [base / name, base]


def _from_cache(spec: DatasetSpec, cached: Path) -> bool:
    """True when the cache holds a complete copy, after verifying it (raises when it is corrupt)."""
    if not cached.is_dir() or spec.missing(cached):
        return False
    pinned = _read_manifest(spec, cached)
    verify(spec, cached, pinned=pinned)
    if pinned is None:
        try:
            _write_manifest(spec, cached)
        except OSError as exc:
            logger.warning("could not write the cache manifest of %r in %s: %s", spec.name, cached, exc)
    logger.debug("dataset %r from the cache %s", spec.name, cached)
    return True


def _describe(spec: DatasetSpec, folder: Path, label: str = "") -> str:
    suffix = f" {label}" if label else ""
    if not folder.is_dir():
        return f"{folder}{suffix} (no such folder)"
    return f"{folder}{suffix} (missing {', '.join(spec.missing(folder))})"


def fetch(name: str, *, data_dir: str | Path | None = None, download: bool = True, timeout: float = 30.0) -> Path:
    """Return a local folder holding the verified dataset ``name`` (see the module docstring for the search order).

    ``data_dir`` overrides ``AML_DATA_DIR``; ``download=False`` never touches the network; ``timeout`` (seconds) is
    pooch's HTTP timeout for each URL.
    """
    spec = get_spec(name)
    cached = config.cache_dir() / name
    searched: list[str] = []

    if _from_cache(spec, cached):
        return cached
    if cached.is_dir():
        searched.append(_describe(spec, cached, "(cache)"))

    local = _candidate_local_folders(name, Path(data_dir).expanduser().resolve() if data_dir else None)
    for folder in local:
        if folder.is_dir() and not spec.missing(folder):
            verify(spec, folder)
            logger.debug("dataset %r from the local copy %s", name, folder)
            return folder
        searched.append(_describe(spec, folder))

    tried: list[str] = []
    if download:
        for url in spec.urls:
            try:
                _download(spec, url, cached, timeout)
            except ChecksumError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure means: try the next source
                logger.info("download of %r from %s failed: %s: %s", name, url, type(exc).__name__, exc)
                tried.append(f"{url} ({type(exc).__name__}: {exc})")
                continue
            return cached

    lines = [f"dataset {name!r} ({spec.description}) was not found."]
    lines.append(
        "Tried to download: "
        + ("; ".join(tried) if tried else ("(download disabled)" if not download else "(no public URL)"))
    )
    lines.append("Searched folders: " + ("; ".join(searched) if searched else "(none)"))
    if config.local_data_dir() is None and data_dir is None:
        lines.append(f"{config.DATA_DIR_ENV} is not set.")
    lines.append(
        f"To use a local copy, set {config.DATA_DIR_ENV} to a folder containing {name}/ "
        f"(e.g. export {config.DATA_DIR_ENV}=../shared/data). {spec.how_to_get}"
    )
    raise DatasetNotFoundError("\n".join(lines))
