import os
import subprocess

import pytest

from aml.devtools import hooks


def git(repo, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # no outer git's index or dir
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_hook_file_is_committed_and_executable():
    assert hooks.HOOK_FILE.is_file() and os.access(hooks.HOOK_FILE, os.X_OK)
    text = hooks.HOOK_FILE.read_text()
    assert text.startswith("#!/bin/sh") and hooks.MARKER in text


def test_hooks_dir_default_and_core_hookspath(repo):
    assert hooks.hooks_dir(repo) == repo / ".git" / "hooks"
    git(repo, "config", "core.hooksPath", "githooks")
    assert hooks.hooks_dir(repo) == repo / "githooks"
    with pytest.raises(RuntimeError, match="failed"):
        hooks.hooks_dir(repo.parent)


def test_install_standalone_copies_and_is_idempotent(repo):
    target = hooks.install_standalone(repo)
    assert target == repo / ".git" / "hooks" / "pre-commit" and os.access(target, os.X_OK)
    assert target.read_bytes() == hooks.HOOK_FILE.read_bytes()
    target.write_text(target.read_text() + "\n# an older version of our hook\n")
    assert hooks.install_standalone(repo) == target  # ours: replaced without --force
    assert target.read_bytes() == hooks.HOOK_FILE.read_bytes()


@pytest.mark.parametrize(
    "existing, who", [("#!/bin/sh\necho mine\n", "another"), (f"#!/bin/sh\n# {hooks.FRAMEWORK_MARKER}\n", "framework")]
)
def test_install_standalone_refuses_a_hook_that_is_not_ours(repo, existing, who):
    target = repo / ".git" / "hooks" / "pre-commit"
    target.write_text(existing)
    with pytest.raises(FileExistsError, match=who):
        hooks.install_standalone(repo)
    assert target.read_text() == existing
    hooks.install_standalone(repo, force=True)
    assert target.read_bytes() == hooks.HOOK_FILE.read_bytes()


def test_install_standalone_needs_the_hook_file(repo, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        hooks.install_standalone(repo, tmp_path / "missing")


def test_uses_framework_only_when_the_config_lists_the_hook(repo):
    assert not hooks.uses_framework(repo)  # no config
    (repo / hooks.FRAMEWORK_CONFIG).write_text("repos: []\n")
    assert not hooks.uses_framework(repo, repo / "hooks" / "pre-commit")
    (repo / hooks.FRAMEWORK_CONFIG).write_text("repos:\n  - repo: local\n    hooks:\n      - entry: hooks/pre-commit\n")
    assert hooks.uses_framework(repo, repo / "hooks" / "pre-commit")
    assert "installed" in hooks.install(repo, hooks.HOOK_FILE)  # this hook file is not listed: standalone


def test_main_installs(repo, capsys):
    assert hooks.main(["install", "--repo", str(repo)]) == 0
    assert "installed" in capsys.readouterr().out
    (repo / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\n")
    assert hooks.main(["install", "--repo", str(repo), "--standalone", "--force"]) == 0
    assert (repo / ".git" / "hooks" / "pre-commit").read_bytes() == hooks.HOOK_FILE.read_bytes()
