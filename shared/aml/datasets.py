"""The dataset registry and :func:`fetch`.

Every dataset the course uses is described once here: its public source URL(s), the files it must contain and their
expected SHA-256 digests. :func:`fetch` returns a local folder holding the dataset, looking in this order:

1. the download cache (``AML_CACHE_DIR``, default ``~/.cache/aml-workspace``), re-verified on every use;
2. a local copy in the folder named by ``AML_DATA_DIR`` (``$AML_DATA_DIR/<name>/`` or ``$AML_DATA_DIR`` itself);
3. a download from the public source, verified, then unpacked into the cache.

A file whose digest does not match is refused (:class:`ChecksumError`); when nothing is found the error names the URLs
tried, the folders searched and the variable to set (:class:`DatasetNotFoundError`). Datasets without a published
digest (a Kaggle re-publication, a folder of photos) are checked structurally and pinned on first use: the digests
seen then are written to a manifest in the cache, so later corruption of the cached copy is still detected.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from aml import config

MANIFEST = ".aml-manifest.json"


class DatasetError(RuntimeError):
    """Base class for dataset problems."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No verified copy could be found or downloaded."""


class ChecksumError(DatasetError):
    """A file exists but its SHA-256 digest is not the expected one."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its path inside the dataset folder and the digests accepted for it."""

    path: str
    sha256: tuple[str, ...] = ()
    size: int | None = None
    #: strict: a digest outside ``sha256`` is refused. Not strict: it is accepted with a warning (a known
    #: re-publication with other bytes), left to the loader's validation and pinned in the cache manifest.
    strict: bool = True


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

    def missing(self, folder: Path) -> list[str]:
        """What the folder lacks to hold this dataset (empty when complete)."""
        out = [f.path for f in self.files if not (folder / f.path).is_file()]
        for pattern, minimum in self.globs.items():
            found = len(list(folder.glob(pattern)))
            if found < minimum:
                out.append(f"{pattern} (found {found}, need at least {minimum})")
        return out


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
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


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def get_spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}") from None


def verify(spec: DatasetSpec, folder: Path, pinned: dict[str, str] | None = None) -> None:
    """Raise if ``folder`` does not hold a complete, uncorrupted copy of ``spec``.

    Files with registry digests must match one of them, unless ``pinned`` (a manifest written when the copy was first
    accepted) records another digest for that file, in which case the file must match the pinned one.
    """
    missing = spec.missing(folder)
    if missing:
        raise DatasetNotFoundError(f"{folder} does not hold dataset {spec.name!r}: missing {', '.join(missing)}")
    for f in spec.files:
        path = folder / f.path
        digest = sha256(path)
        if pinned and f.path in pinned:
            if digest != pinned[f.path]:
                raise ChecksumError(
                    f"{path}: sha256 {digest} differs from {pinned[f.path]} recorded when it was cached; "
                    "the file is corrupt: delete it and fetch again"
                )
            continue
        if f.sha256 and digest not in f.sha256:
            if not f.strict:
                warnings.warn(
                    f"{path}: sha256 {digest[:12]}… is not the original's; accepted as a re-publication of "
                    f"{spec.name!r} and left to the loader's validation",
                    stacklevel=2,
                )
                continue
            raise ChecksumError(
                f"{path}: sha256 {digest} is not the expected {' or '.join(f.sha256)} for dataset {spec.name!r}; "
                "the file is corrupt or a different file: replace it with the original"
            )


def _manifest(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_manifest(spec: DatasetSpec, folder: Path) -> None:
    digests = {f.path: sha256(folder / f.path) for f in spec.files}
    (folder / MANIFEST).write_text(json.dumps(digests, indent=1, sort_keys=True))


def _candidate_local_folders(name: str, data_dir: Path | None) -> list[Path]:
    base = data_dir if data_dir is not None else config.local_data_dir()
    return [] if base is None else [base / name, base]


def _download(url: str, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "aml-workspace"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out)


def _unpack(archive: Path, spec: DatasetSpec, target: Path) -> None:
    """Unpack a downloaded zip into ``target``, flattening a single top-level folder; a plain file is copied."""
    target.mkdir(parents=True, exist_ok=True)
    if not zipfile.is_zipfile(archive):
        if len(spec.files) != 1:
            raise DatasetError(f"download for {spec.name!r} is not a zip archive")
        shutil.copyfile(archive, target / spec.files[0].path)
        return
    with zipfile.ZipFile(archive) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise ChecksumError(f"downloaded archive for {spec.name!r} is corrupt (CRC error in {bad})")
        wanted = {Path(f.path).name: f.path for f in spec.files}
        for member in zf.infolist():
            if member.is_dir():
                continue
            name = Path(member.filename).name
            dest = target / wanted.get(name, name) if wanted else target / member.filename
            if wanted and name not in wanted:
                continue
            if not wanted and (".." in Path(member.filename).parts or Path(member.filename).is_absolute()):
                raise DatasetError(f"refusing unsafe path {member.filename!r} in archive")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def fetch(name: str, *, data_dir: str | Path | None = None, download: bool = True, timeout: float = 30.0) -> Path:
    """Return a local folder holding the verified dataset ``name`` (see the module docstring for the search order).

    ``data_dir`` overrides ``AML_DATA_DIR``; ``download=False`` never touches the network.
    """
    spec = get_spec(name)
    cached = config.cache_dir() / name
    searched: list[str] = []

    if cached.is_dir():
        searched.append(f"{cached} (cache)")
        if not spec.missing(cached):
            verify(spec, cached, pinned=_manifest(cached))
            return cached

    local = _candidate_local_folders(name, Path(data_dir).expanduser().resolve() if data_dir else None)
    for folder in local:
        searched.append(str(folder))
        if folder.is_dir() and not spec.missing(folder):
            verify(spec, folder)
            return folder

    tried: list[str] = []
    if download:
        for url in spec.urls:
            with tempfile.TemporaryDirectory(prefix=f"aml-{name}-") as tmp:
                archive = Path(tmp) / "download"
                staging = Path(tmp) / name
                try:
                    _download(url, archive, timeout)
                    _unpack(archive, spec, staging)
                    verify(spec, staging)
                except ChecksumError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure means: try the next source
                    tried.append(f"{url} ({type(exc).__name__}: {exc})")
                    continue
                _write_manifest(spec, staging)
                if cached.exists():
                    shutil.rmtree(cached)
                cached.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(staging), str(cached))
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
