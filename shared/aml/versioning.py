"""Data versioning with DVC, for real, in a scratch git + DVC repository.

The assignment 2 notebook must never touch the workspace's own git history, so every command here runs in a repo it
creates (:func:`init_repo`). Commands are the real ``git`` and ``dvc`` CLIs (DVC as ``python -m dvc`` of this
interpreter, so the notebook's environment is the one used); failures raise :class:`CommandError` with the output.

Remotes: a local folder by default (DVC's embedded default, ``dvc remote add -d``); Google Drive
(``gdrive://<folder-id>``) is an option configured with a service account as DVC documents
(``gdrive_use_service_account``, ``gdrive_service_account_json_file_path``); it needs the ``dvc-gdrive`` plugin and
network access, and is never required.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml


class CommandError(RuntimeError):
    """A git or dvc command failed."""


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml = ours
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["GIT_TERMINAL_PROMPT"] = "0"
    # the scratch repo is nested inside the workspace's checkout: keep git from looking above it
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def run(args: Sequence[str], cwd: str | Path) -> str:
    """Run a command in ``cwd``; return stdout, raise :class:`CommandError` on a non-zero exit."""
    result = subprocess.run(list(args), cwd=cwd, env=_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError(f"`{' '.join(args)}` failed in {cwd} ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def git(repo: str | Path, *args: str) -> str:
    return run(["git", *args], repo)


def dvc(repo: str | Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], repo)


def remote_settings(kind: str = "local", location: str | Path = "", service_account_json: str | None = None) -> dict:
    """The DVC remote to use: ``{"url": ..., "options": {...}}``.

    ``kind="local"``: ``location`` is a folder (made absolute). ``kind="gdrive"``: ``location`` is the Drive folder id
    and ``service_account_json`` the key file of a service account that folder is shared with.
    """
    if kind == "local":
        if not location:
            raise ValueError("a local remote needs a folder")
        return {"url": str(Path(location).expanduser().resolve()), "options": {}}
    if kind == "gdrive":
        if not location:
            raise ValueError("a gdrive remote needs the Drive folder id (the last part of the folder's URL)")
        options = {}
        if service_account_json:
            options = {
                "gdrive_use_service_account": "true",
                "gdrive_service_account_json_file_path": str(service_account_json),
            }
        return {"url": f"gdrive://{location}", "options": options}
    raise ValueError(f"unknown remote kind {kind!r}: expected 'local' or 'gdrive'")


def init_repo(path: str | Path, remote: dict, fresh: bool = True) -> Path:
    """Create a scratch git + DVC repository at ``path`` (wiped first when ``fresh``) with ``remote`` as default."""
    path = Path(path).resolve()
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "AML Workspace notebook")
    git(path, "config", "user.email", "notebook@aml-workspace.invalid")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "core.hooksPath", "/dev/null")  # the workspace's hooks are not this repo's
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    dvc(path, "remote", "add", "-d", "storage", remote["url"])
    for key, value in remote.get("options", {}).items():
        dvc(path, "remote", "modify", "storage", key, value)
    git(path, "add", ".dvc", ".dvcignore")
    git(path, "commit", "-q", "-m", "Initialise DVC")
    return path


def track(repo: str | Path, files: Sequence[str], message: str, push: bool = True, tag: str | None = None) -> str:
    """``dvc add`` the files, commit the ``.dvc`` pointers (and .gitignore) in git, ``dvc push``; return the commit."""
    repo = Path(repo)
    dvc(repo, "add", "-q", *files)
    pointers = [f"{f}.dvc" for f in files]
    ignores = sorted({str(Path(f).parent / ".gitignore") for f in files})
    git(repo, "add", *pointers, *[i for i in ignores if (repo / i).exists()])
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", "-f", tag)
    if push:
        dvc(repo, "push", "-q")
    return head(repo)


def head(repo: str | Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def checkout(repo: str | Path, rev: str) -> None:
    """Switch the repository to ``rev``: git restores the pointers, ``dvc checkout`` the data they point to."""
    git(repo, "checkout", "-q", rev)
    dvc(repo, "checkout", "-q", "--force")


def pull(repo: str | Path) -> None:
    """Fetch the data of the current pointers from the remote (after the cache was lost, or on another machine)."""
    dvc(repo, "pull", "-q")


def md5(path: str | Path) -> str:
    """MD5 of a file, as DVC 3 records it in ``.dvc`` files (the data version)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def pointer_md5(pointer: str | Path) -> str:
    """The MD5 a ``.dvc`` pointer file records for its output."""
    data = yaml.safe_load(Path(pointer).read_text())
    return data["outs"][0]["md5"]


def hashes(repo: str | Path, files: Sequence[str]) -> dict[str, str]:
    """MD5 of each file in the work tree."""
    return {f: md5(Path(repo) / f) for f in files}


def read_split(repo: str | Path, file: str) -> pd.DataFrame:
    """One split file of the repository's work tree."""
    return pd.read_csv(Path(repo) / file, keep_default_na=False)


def distributions(repo: str | Path, files: Sequence[str], target: str = "y") -> pd.DataFrame:
    """Number of 0s and 1s of ``target`` in each CSV file (one row per file)."""
    rows = {}
    for f in files:
        counts = pd.read_csv(Path(repo) / f, usecols=[target])[target].value_counts()
        rows[Path(f).stem] = {"0": int(counts.get(0, 0)), "1": int(counts.get(1, 0))}
    return pd.DataFrame.from_dict(rows, orient="index")[["0", "1"]]
