"""The Data Store: where the project's services read and write their data, addressed by one URL.

The ``/prepare``, ``/train``, ``/score`` and ``/evaluate`` services hand data to each other through a store, not
through their own disks, so that they can run in different containers and against an S3 server (tested in
``project/test/integration_scale.py``). The store is a local folder by default (a plain path or a ``file://`` URL)
and any fsspec URL otherwise (``s3://bucket/prefix``; ``memory://`` in tests). Callers address everything with
relative POSIX paths laid out as

    raw/ processed/ split/ scoring/ predictions/ evaluations/ actions/ jobs/

one folder per run (:meth:`DataStore.new_run`, ``<kind>/<run>/...``), a ``<kind>/latest`` pointer per kind (a small
file holding the run id, not a symlink, so it works on object stores) and a ``lineage.json`` per run.

Why hand-written: fsspec gives one file API over many back ends, but not the three guarantees the services rely on.

- Confinement (:meth:`DataStore.check_path`): paths come from HTTP requests, so every method refuses one that is
  absolute, climbs out with ``..``, carries a URL scheme or a drive letter, or (local stores) resolves through a
  symlink to a place outside the root.
- Atomic writes: a reader never sees half a file and a failed write leaves the previous version. Locally a temporary
  file in the same folder is written, fsynced and renamed over the target (``os.replace``); with
  ``overwrite=False`` it is hard-linked to the target instead, which fails if the target exists, so raw data is never
  overwritten even by two writers racing. Object stores get the whole payload in one PUT (``pipe_file``), which
  they make visible atomically; ``overwrite=False`` uses fsspec's ``mode="create"`` (a conditional PUT where the
  back end supports one) after an existence check.
- Clear errors that stay inside the store: a missing file raises :class:`StoreNotFoundError` naming the store path
  looked at. Messages name store-relative paths only (``split/<run>/test.csv``), never the store's folder on the
  server: the services return them to HTTP clients, who must not learn the server's file system
  (:meth:`DataStore.location` gives the full location where a caller wants it, e.g. for lineage).
- Paths the operating system cannot take are refused up front, as :class:`StorePathError`: lone surrogates
  (``"\\ud800"``, not encodable), a component over :data:`MAX_NAME_BYTES` or a path over :data:`MAX_PATH_BYTES`
  (``ENAMETOOLONG``), and a symlink loop (``ELOOP``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from aml.core.reporting import jsonable

#: environment variable naming the data store URL
DATA_STORE_ENV = "AML_DATA_STORE"
#: the folders the project's services use (nothing here depends on them)
KINDS = ("raw", "processed", "split", "scoring", "predictions", "evaluations", "actions", "jobs")
LATEST = "latest"
LINEAGE = "lineage.json"
#: run ids: UTC time to the microsecond, then 6 random hex digits (unique across processes, sortable by time)
RUN_ID = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{6}$")

#: the longest component (bytes of UTF-8) and whole store path a caller may name: a file system's ``NAME_MAX``, and
#: a quarter of Linux's ``PATH_MAX`` (the store's own folder comes on top)
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 1024

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # two letters or more: "C://" is a drive, not a URL
_TMP_PREFIX = ".aml-tmp-"
_BLOCK = 1 << 20
_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class StoreError(Exception):
    """Anything the data store refuses or cannot do."""


class StorePathError(StoreError, ValueError):
    """A path that is malformed, that the file system cannot take, or that would leave the store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """A file (or run) that is not in the store; the message names the full location looked at."""


class StoreConflictError(StoreError, FileExistsError):
    """A write with ``overwrite=False`` onto a path that exists."""


def _shown(path: str, limit: int = 80) -> str:
    """``path`` for a message: quoted, cut to ``limit`` characters (a 5,000-byte path is not echoed whole)."""
    return repr(path) if len(path) <= limit else f"{path[:limit]!r}... ({len(path)} characters)"


def utc_now() -> str:
    """The current UTC time in ISO 8601 (milliseconds), as the store's records write it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


_run_clock = threading.Lock()
_last_run_time: datetime | None = None


def _run_time() -> datetime:
    """UTC now, strictly increasing within the process (a clock step back or two calls in one microsecond would
    otherwise give ids out of order)."""
    global _last_run_time
    with _run_clock:
        now = datetime.now(timezone.utc)
        if _last_run_time is not None and now <= _last_run_time:
            now = _last_run_time + timedelta(microseconds=1)
        _last_run_time = now
        return now


def _write_all(fh: IO[bytes], data: bytes | memoryview) -> None:
    """Write ``data`` to ``fh`` in 1 MiB blocks (a module function so that a test can make it fail half-way)."""
    view = memoryview(data)
    for start in range(0, len(view), _BLOCK):
        fh.write(view[start : start + _BLOCK])


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_local(target: Path, data: bytes | memoryview, overwrite: bool) -> None:
    """Atomic local write: a temporary file beside ``target`` (so the rename never crosses file systems), fsynced,
    then renamed over ``target`` or, with ``overwrite=False``, hard-linked to it (``os.link`` fails when the target
    exists, so two racing writers cannot both win). The temporary file never outlives the call."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_all(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise StoreConflictError(f"refusing to overwrite {target.name}: it exists") from None
            except OSError as exc:
                if exc.errno not in _LINK_UNSUPPORTED:
                    raise
                # a file system without hard links (some network and FUSE mounts): check, then rename (not race-free)
                if target.exists():
                    raise StoreConflictError(f"refusing to overwrite {target.name}: it exists") from None
                os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


class DataStore:
    """A data store at ``url``: a local folder (plain path or ``file://`` URL, made absolute) or any fsspec URL, with
    ``storage_options`` passed to fsspec (endpoint, credentials). Local stores are created on first write."""

    def __init__(self, url: str | os.PathLike, storage_options: Mapping[str, Any] | None = None):
        text = os.fspath(url)
        if not isinstance(text, str) or not text.strip():
            raise StoreError(f"a data store needs a folder or URL, got {url!r}")
        self.storage_options = dict(storage_options or {})
        self._fs = None
        self._fs_pid = os.getpid()
        self._base = ""
        if text.startswith("file:"):
            parsed = urlparse(text)
            if parsed.netloc not in ("", "localhost"):
                raise StoreError(f"a file URL must name a local folder, got {text!r}")
            text = url2pathname(parsed.path)
        if _SCHEME.match(text):
            from fsspec.core import url_to_fs

            self._fs, base = url_to_fs(text, **self.storage_options)
            self._base = base.rstrip("/")
            self.root: Path | None = None
            stripped = text.rstrip("/")
            self.url = stripped if not stripped.endswith(":") else stripped + "//"  # "memory://" stays whole
        else:
            if self.storage_options:
                raise StoreError("storage_options apply to fsspec URLs (s3://...), not to a local folder")
            self.root = Path(text).expanduser().resolve()
            self.url = str(self.root)

    @classmethod
    def from_env(cls, default: str | os.PathLike | None = None, storage_options: Mapping[str, Any] | None = None):
        """The store named by ``$AML_DATA_STORE``, else ``default``."""
        url = os.environ.get(DATA_STORE_ENV) or default
        if url is None or not os.fspath(url):
            raise StoreError(f"no data store: set {DATA_STORE_ENV} to a folder or URL (e.g. s3://bucket/prefix)")
        return cls(url, storage_options)

    @property
    def fs(self):
        """The fsspec file system of a URL store (``None`` for a local folder). Made again in a process forked after
        it was first used (gunicorn forks its workers from the master that built the app): async file systems such
        as s3fs refuse to run in a forked child ("not fork-safe")."""
        if self._fs is not None and self._fs_pid != os.getpid():
            from fsspec.core import url_to_fs

            self._fs, _ = url_to_fs(self.url, **self.storage_options)
            self._fs_pid = os.getpid()
        return self._fs

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine (paths are joined directly), False for any other fsspec URL."""
        return self.root is not None

    def __repr__(self) -> str:
        return f"DataStore({self.url!r})"

    # -- paths -------------------------------------------------------------------------------------------------------

    def check_path(self, path: str) -> str:
        """``path`` as a normalised relative POSIX path inside the store, or :class:`StorePathError`.

        Refused: non-strings, empty paths, absolute paths (``/x``, ``C:\\x``, ``\\\\server``), backslashes, colons (URL
        schemes, drive letters), control characters, ``~``, empty, ``.`` or ``..`` components (a leading ``./`` is
        dropped, a trailing ``/`` too), text that is not valid Unicode (lone surrogates), names over
        :data:`MAX_NAME_BYTES` or paths over :data:`MAX_PATH_BYTES` bytes and, for a local store, a path that resolves
        through a symlink outside the root or through a symlink loop. The messages never name the store's folder."""
        if not isinstance(path, str):
            raise StorePathError(f"a store path must be a string, got {type(path).__name__}")
        if not path:
            raise StorePathError("empty store path")
        try:
            size = len(path.encode("utf-8"))
        except UnicodeEncodeError:
            raise StorePathError(
                f"store path {_shown(path)} is not valid Unicode (a lone surrogate such as \\ud800)"
            ) from None
        if size > MAX_PATH_BYTES:
            raise StorePathError(f"store path of {size} bytes: the limit is {MAX_PATH_BYTES} ({_shown(path)})")
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            raise StorePathError(f"control character in store path {path!r}")
        if "\\" in path:
            raise StorePathError(f"backslash in store path {path!r} (use '/')")
        if ":" in path:
            raise StorePathError(f"colon in store path {path!r} (a URL or drive letter is not a path inside the store)")
        if path.startswith("/"):
            raise StorePathError(f"absolute store path {path!r} (paths are relative to the store)")
        if path.startswith("~"):
            raise StorePathError(f"'~' in store path {path!r} (paths are relative to the store)")
        rel = path
        while rel.startswith("./"):
            rel = rel[2:]
        rel = rel[:-1] if rel.endswith("/") else rel
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts):
            raise StorePathError(f"malformed store path {_shown(path)} (empty, '.' or '..' component)")
        long = next((p for p in parts if len(p.encode("utf-8")) > MAX_NAME_BYTES), None)
        if long is not None:
            raise StorePathError(
                f"a name of {len(long.encode('utf-8'))} bytes in store path {_shown(path)}: the limit is "
                f"{MAX_NAME_BYTES}"
            )
        if self.root is not None:
            try:
                resolved = (self.root / rel).resolve()
            except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
                raise StorePathError(f"store path {_shown(path)} runs into a symlink loop") from None
            except OSError as exc:  # Python >= 3.13: ELOOP; or a name the file system refuses
                reason = (
                    "runs into a symlink loop" if exc.errno == errno.ELOOP else f"cannot be resolved ({exc.strerror})"
                )
                raise StorePathError(f"store path {_shown(path)} {reason}") from None
            if resolved != self.root and self.root not in resolved.parents:
                raise StorePathError(f"store path {_shown(path)} leads outside the store (through a symlink)")
        return rel

    def _full(self, rel: str) -> str:
        """The back end's path for a checked relative path."""
        if self.root is not None:
            return str(self.root / rel)
        return f"{self._base}/{rel}" if self._base else rel

    def location(self, path: str = "") -> str:
        """The full location of ``path`` (the store itself for ``""``), for messages and lineage."""
        if not path:
            return self.url
        rel = self.check_path(path)
        if self.root is not None:
            return str(self.root / rel)
        return f"{self.url}{rel}" if self.url.endswith("/") else f"{self.url}/{rel}"

    def local_path(self, path: str) -> Path | None:
        """The local file for ``path``, or ``None`` for a remote store."""
        rel = self.check_path(path)
        return self.root / rel if self.root is not None else None

    def _missing(self, rel: str) -> StoreNotFoundError:
        return StoreNotFoundError(f"not in the data store: {rel}")

    # -- reading -----------------------------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """True when ``path`` (checked by :meth:`check_path`) exists in the store; on a remote store the listing
        cache is refreshed first, as another process may have written it."""
        rel = self.check_path(path)
        if self.root is not None:
            return (self.root / rel).exists()
        full = self._full(rel)
        self.fs.invalidate_cache(full)  # another process may have written it since this one last listed
        return bool(self.fs.exists(full))

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """A binary file open for reading (streams large files)."""
        rel = self.check_path(path)
        try:
            fh = open(self.root / rel, "rb") if self.root is not None else self.fs.open(self._full(rel), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(rel) from None
        except IsADirectoryError:
            raise StoreError(f"{rel} is a folder of the data store, not a file") from None
        with fh:
            yield fh

    def read_bytes(self, path: str) -> bytes:
        """The contents of the file at ``path``; :class:`StoreError` (naming the location) when it is missing or a
        folder."""
        rel = self.check_path(path)
        if self.root is not None:
            try:
                return (self.root / rel).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(rel) from None
            except IsADirectoryError:
                raise StoreError(f"{rel} is a folder of the data store, not a file") from None
        try:
            return self.fs.cat_file(self._full(rel))
        except FileNotFoundError:
            raise self._missing(rel) from None

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """The file at ``path`` decoded as text (:meth:`read_bytes`)."""
        return self.read_bytes(path).decode(encoding)

    def read_json(self, path: str) -> Any:
        """The file at ``path`` parsed as JSON; :class:`StoreError` naming the file when it is not valid JSON."""
        try:
            return json.loads(self.read_bytes(path))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.check_path(path)} in the data store is not valid JSON: {exc}") from None

    def read_csv(self, path: str, **kwargs):
        """A data frame from a CSV file in the store (``kwargs`` go to :func:`pandas.read_csv`)."""
        import pandas as pd

        return pd.read_csv(io.BytesIO(self.read_bytes(path)), **kwargs)

    def sha256(self, path: str) -> str:
        """SHA-256 hex digest of a file, streamed in 1 MiB blocks."""
        digest = hashlib.sha256()
        with self.open_read(path) as fh:
            while block := fh.read(_BLOCK):
                digest.update(block)
        return digest.hexdigest()

    def list(self, prefix: str = "") -> list[str]:
        """Names of the immediate children of folder ``prefix`` (the store's top level for ``""``), sorted; an empty
        list for a folder that does not exist. Temporary files of writes in progress are left out."""
        rel = self.check_path(prefix) if prefix not in ("", ".", "./") else ""
        if self.root is not None:
            folder = self.root / rel if rel else self.root
            if folder.is_file():
                raise StoreError(f"{rel} is a file of the data store, not a folder")
            try:
                names = [p.name for p in folder.iterdir()]
            except (FileNotFoundError, NotADirectoryError):
                return []
        else:
            full = self._full(rel) if rel else self._base
            self.fs.invalidate_cache(full)
            try:
                entries = [e.rstrip("/") for e in self.fs.ls(full, detail=False)]
            except FileNotFoundError:
                return []
            if entries == [full.rstrip("/")] and rel:
                raise StoreError(f"{rel} is a file of the data store, not a folder")
            names = [posixpath.basename(e) for e in entries]
        return sorted(n for n in names if n and not n.startswith(_TMP_PREFIX))

    # -- writing -----------------------------------------------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes | bytearray | memoryview, overwrite: bool = True) -> str:
        """Write ``data`` to ``path`` atomically and return its location; with ``overwrite=False`` an existing
        ``path`` raises :class:`StoreConflictError` and is left as it was."""
        rel = self.check_path(path)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes needs bytes, got {type(data).__name__} (use write_text or write_json)")
        if self.root is not None:
            try:
                _write_local(self.root / rel, data, overwrite)
            except StoreConflictError:
                raise StoreConflictError(f"refusing to overwrite {rel} in the data store: it exists") from None
            return self.location(rel)
        full = self._full(rel)
        if overwrite:
            self.fs.pipe_file(full, bytes(data))
            return self.location(rel)
        if self.exists(rel):
            raise StoreConflictError(f"refusing to overwrite {rel} in the data store: it exists")
        try:
            self.fs.pipe_file(full, bytes(data), mode="create")  # a conditional PUT where the back end has one
        except FileExistsError:
            raise StoreConflictError(f"refusing to overwrite {rel} in the data store: it exists") from None
        except (NotImplementedError, ValueError):  # a back end without create mode: the existence check stands
            self.fs.pipe_file(full, bytes(data))
        return self.location(rel)

    def write_text(self, path: str, text: str, overwrite: bool = True, encoding: str = "utf-8") -> str:
        """Write ``text`` to ``path`` atomically (:meth:`write_bytes`) and return its location."""
        return self.write_bytes(path, text.encode(encoding), overwrite=overwrite)

    def write_json(self, path: str, value: Any, overwrite: bool = True) -> str:
        """JSON with sorted keys, indented, UTF-8; numpy scalars and arrays and paths become plain JSON values."""
        text = json.dumps(jsonable(value), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        return self.write_text(path, text, overwrite=overwrite)

    def write_csv(self, path: str, frame, overwrite: bool = True, **kwargs) -> str:
        """A data frame as CSV (``index=False`` unless ``kwargs`` say otherwise), built in memory, written atomically."""
        kwargs.setdefault("index", False)
        buffer = io.BytesIO()
        frame.to_csv(buffer, **kwargs)
        return self.write_bytes(path, buffer.getbuffer(), overwrite=overwrite)

    # -- runs --------------------------------------------------------------------------------------------------------

    def _kind(self, kind: str) -> str:
        rel = self.check_path(kind)
        if posixpath.basename(rel) in (LATEST, LINEAGE) or RUN_ID.match(posixpath.basename(rel)):
            raise StorePathError(f"{kind!r} is not a run kind")
        return rel

    def _run(self, run: str) -> str:
        if not isinstance(run, str) or not RUN_ID.match(run):
            raise StorePathError(f"{run!r} is not a run id (YYYYMMDDTHHMMSSffffffZ-xxxxxx)")
        return run

    def new_run(self, kind: str) -> str:
        """A new run id for ``kind``: ``YYYYMMDDTHHMMSSffffffZ-<6 hex>`` (UTC), increasing within a process and
        unique across processes. Nothing is written until the caller writes into :meth:`run_path`."""
        self._kind(kind)
        return f"{_run_time():%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"

    def run_path(self, kind: str, run: str, name: str = "") -> str:
        """``<kind>/<run>`` or ``<kind>/<run>/<name>``, checked."""
        base = f"{self._kind(kind)}/{self._run(run)}"
        return self.check_path(f"{base}/{name}") if name else base

    def runs(self, kind: str) -> list[str]:
        """The runs of ``kind``, oldest first."""
        return [name for name in self.list(self._kind(kind)) if RUN_ID.match(name)]

    def set_latest(self, kind: str, run: str) -> str:
        """Point ``<kind>/latest`` at ``run`` (which must have been written); atomic, a plain file."""
        if not self.exists(self.run_path(kind, run)):
            raise StoreNotFoundError(
                f"cannot point {kind}/latest at run {run}: {kind}/{run} is empty in the data store"
            )
        return self.write_text(f"{self._kind(kind)}/{LATEST}", run + "\n")

    def latest(self, kind: str) -> str | None:
        """The run ``<kind>/latest`` points at, or ``None`` when there is none."""
        pointer = f"{self._kind(kind)}/{LATEST}"
        try:
            run = self.read_text(pointer).strip()
        except StoreNotFoundError:
            return None
        if not RUN_ID.match(run):
            raise StoreError(f"{pointer} in the data store does not hold a run id: {run[:80]!r}")
        return run

    def resolve_latest(self, kind: str, missing: str | None = None) -> str:
        """The latest run of ``kind`` or :class:`StoreNotFoundError`, whose message ends with ``missing`` (what to
        call first, e.g. ``"call POST /prepare first"``)."""
        run = self.latest(kind)
        if run is None:
            hint = missing or f"run the stage that writes {kind}/ first"
            raise StoreNotFoundError(f"no {kind} run in the data store (no {kind}/{LATEST}): {hint}")
        return run

    # -- lineage -----------------------------------------------------------------------------------------------------

    def write_lineage(self, kind: str, run: str, record: Mapping[str, Any]) -> str:
        """Write ``<kind>/<run>/lineage.json`` (once: it is never overwritten): the caller's ``record`` (inputs with
        their hashes, configuration, git commit, model version) plus ``kind``, ``run``, ``created_at`` (UTC) and
        ``store`` (this store's URL). Returns its location."""
        added = {"kind": kind, "run": run, "created_at": utc_now(), "store": self.url}
        clash = sorted(set(record) & set(added))
        if clash:
            raise ValueError(f"lineage records may not set {', '.join(clash)}: the store adds them")
        return self.write_json(self.run_path(kind, run, LINEAGE), {**record, **added}, overwrite=False)

    def read_lineage(self, kind: str, run: str) -> dict:
        """The lineage record (``lineage.json``) of run ``run`` in folder ``kind``: its inputs with their SHA-256,
        the configuration, the code version."""
        return self.read_json(self.run_path(kind, run, LINEAGE))
