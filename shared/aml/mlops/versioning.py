"""Data versioning with DVC, for real, in a scratch git + DVC repository.

The assignment 2 notebook must never touch the workspace's own git history, so every command here runs in a repo it
creates (:func:`init_repo`). Commands are the real ``git`` and ``dvc`` CLIs (DVC as ``python -m dvc`` of this
interpreter, so the notebook's environment is the one used); failures raise :class:`CommandError` with the output.

Remotes: a local folder by default (DVC's embedded default, ``dvc remote add -d``); Google Drive
(``gdrive://<folder-id>``) is an option configured with a service account as DVC documents
(``gdrive_use_service_account``, ``gdrive_service_account_json_file_path``); it needs the ``dvc-gdrive`` plugin and
network access, and is never required. An S3 bucket (``s3://bucket/prefix``, the ``dvc-s3`` plugin) is the team's
remote: the endpoint of an S3-compatible server is the remote's ``endpointurl`` option, the credentials come from
the ``AWS_*`` environment as for every S3 client.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from aml.core import config
from aml.core.hashing import md5


class CommandError(RuntimeError):
    """A git or dvc command failed."""


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml = ours
    # `python -m aml.spam.pipeline` (the dvc.yaml stages) finds this library even where it is not pip-installed (Colab
    # puts it on sys.path only, which a subprocess does not inherit)
    library = str(config.PACKAGE_DIR.parent)
    env["PYTHONPATH"] = os.pathsep.join([library, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
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
    """``git <args>`` in ``repo``; returns stdout."""
    return run(["git", *args], repo)


def dvc(repo: str | Path, *args: str) -> str:
    """``dvc <args>`` in ``repo`` (the DVC of this interpreter); returns stdout."""
    return run([sys.executable, "-m", "dvc", *args], repo)


def remote_settings(
    kind: str = "local",
    location: str | Path = "",
    service_account_json: str | None = None,
    endpoint_url: str | None = None,
) -> dict:
    """The DVC remote to use: ``{"url": ..., "options": {...}}``.

    ``kind="local"``: ``location`` is a folder (made absolute). ``kind="gdrive"``: ``location`` is the Drive folder id
    and ``service_account_json`` the key file of a service account that folder is shared with. ``kind="s3"``:
    ``location`` is ``s3://bucket/prefix`` and ``endpoint_url`` the server of an S3-compatible store (none for AWS);
    the credentials come from the ``AWS_*`` environment of the ``dvc`` commands.
    """
    if kind == "s3":
        text = str(location)
        if not text.startswith("s3://") or not text[5:].strip("/"):
            raise ValueError(f"an s3 remote needs a URL s3://bucket/prefix, got {text!r}")
        return {"url": text.rstrip("/"), "options": {"endpointurl": endpoint_url} if endpoint_url else {}}
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
    raise ValueError(f"unknown remote kind {kind!r}: expected 'local', 'gdrive' or 's3'")


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
    # DVC stages the .dvc and .gitignore files it writes itself: no "To track the changes with git" hints in reports
    dvc(path, "config", "core.autostage", "true")
    dvc(path, "remote", "add", "-d", "storage", remote["url"])
    for key, value in remote.get("options", {}).items():
        dvc(path, "remote", "modify", "storage", key, value)
    git(path, "add", ".dvc", ".dvcignore")
    git(path, "commit", "-q", "-m", "Initialise DVC")
    return path


def track(repo: str | Path, files: Sequence[str], message: str, push: bool = True, tag: str | None = None) -> str:
    """``dvc add`` the files, commit the ``.dvc`` pointers (and .gitignore) in git, ``dvc push``; return the commit."""
    if isinstance(files, str) or not files:
        raise ValueError(f"track needs a non-empty list of file paths, got {files!r}")
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
    """The commit checked out in ``repo``."""
    return git(repo, "rev-parse", "HEAD").strip()


def checkout(repo: str | Path, rev: str, from_remote: bool = False) -> None:
    """Switch the repository to ``rev``: git restores the pointers, ``dvc checkout`` the data they point to.

    ``from_remote=True`` first deletes the local DVC cache and every DVC-tracked file, then ``dvc pull`` brings the
    data of ``rev`` back from the remote: what a fresh clone on another machine does.
    """
    git(repo, "checkout", "-q", rev)
    if from_remote:
        repo = Path(repo)
        shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
        for pointer in git(repo, "ls-files", "*.dvc").split():
            (repo / pointer).with_suffix("").unlink(missing_ok=True)
        pull(repo)
    else:
        dvc(repo, "checkout", "-q", "--force")


def pull(repo: str | Path) -> None:
    """Fetch the data of the current pointers from the remote (after the cache was lost, or on another machine)."""
    dvc(repo, "pull", "-q")


def pointer_md5(pointer: str | Path) -> str:
    """The MD5 a ``.dvc`` pointer file records for its output."""
    data = yaml.safe_load(Path(pointer).read_text())
    try:
        return data["outs"][0]["md5"]
    except (TypeError, KeyError, IndexError):
        raise ValueError(f"{pointer} is not a DVC pointer file (expected outs: [{{md5: ...}}])") from None


def hashes(repo: str | Path, files: Sequence[str]) -> dict[str, str]:
    """MD5 of each file in the work tree."""
    return {f: md5(Path(repo) / f) for f in files}


def read_split(repo: str | Path, file: str) -> pd.DataFrame:
    """One split file of the repository's work tree."""
    return pd.read_csv(Path(repo) / file, keep_default_na=False)


def read_splits(repo: str | Path, files: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The given files of the repository's work tree as ``{file stem: frame}`` (e.g. to compare distributions)."""
    return {Path(f).stem: read_split(repo, f) for f in files}


def compare(first: dict[str, str], second: dict[str, str], names: Sequence[str] = ("v1", "v2")) -> pd.DataFrame:
    """Side by side the hashes of two versions (``{file: md5}`` each), with a column ``same``."""
    if set(first) != set(second):
        raise ValueError(f"the versions list different files: {sorted(first)} vs {sorted(second)}")
    table = pd.DataFrame({f"{names[0]} md5": first, f"{names[1]} md5": second})
    table["same"] = table.iloc[:, 0] == table.iloc[:, 1]
    return table


# -- dvc repro: which stages ran (the project's "profiling upon change", aml.project.profile_stage) -----------------

#: what :func:`repro` reports for a stage: its command ran; it was up to date; DVC's run cache had its outputs
RAN, SKIPPED, RESTORED = "ran", "skipped", "restored"
_REPRO_LINES = {
    RAN: re.compile(r"^Running stage '([^']+)':", re.MULTILINE),
    SKIPPED: re.compile(r"^Stage '([^']+)' didn't change, skipping", re.MULTILINE),
    RESTORED: re.compile(r"^Stage '([^']+)' is cached - skipping run", re.MULTILINE),
}


def parse_repro(output: str) -> dict[str, str]:
    """``{stage: "ran" | "skipped" | "restored"}`` from the output of ``dvc repro`` (DVC 3's lines ``Running stage
    'x':``, ``Stage 'x' didn't change, skipping`` and ``Stage 'x' is cached - skipping run, checking out outputs``),
    in the order DVC reported them. ``.dvc`` files (data sources, not pipeline stages) are left out."""
    found = sorted(
        (match.start(), match.group(1), outcome)
        for outcome, pattern in _REPRO_LINES.items()
        for match in pattern.finditer(output)
    )
    return {stage: outcome for _, stage, outcome in found}


def repro(repo: str | Path, *targets: str) -> tuple[dict[str, str], str]:
    """``dvc repro [targets]`` in ``repo``: ``({stage: "ran" | "skipped" | "restored"}, DVC's output)``. A stage that
    fails raises :class:`CommandError`; an output without any stage line (DVC changed its wording) raises
    :class:`RuntimeError` rather than report nothing ran."""
    output = dvc(repo, "repro", *targets)
    stages = parse_repro(output)
    if not stages and "Data and pipelines are up to date" not in output:
        raise RuntimeError(f"`dvc repro` in {repo} reported no stage:\n{output}")
    return stages, output


def lock_hashes(repo: str | Path, stage: str) -> dict[str, dict[str, str]]:
    """What ``dvc.lock`` records for ``stage``: ``{"deps": {path: md5}, "outs": {path: md5}}`` (the versions of its
    inputs and outputs at its last run)."""
    lock = Path(repo) / "dvc.lock"
    if not lock.is_file():
        raise FileNotFoundError(f"{lock} does not exist: `dvc repro` has not run in {repo}")
    entry = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).get(stage)
    if entry is None:
        raise KeyError(f"{lock} has no stage {stage!r}")
    return {kind: {item["path"]: item["md5"] for item in entry.get(kind, [])} for kind in ("deps", "outs")}
