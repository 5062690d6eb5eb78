"""Assignment 4 tests: the container (``test_docker`` builds the image and talks HTTP to it) and the main-branch
pre-commit hook (proved in scratch git repositories).

``test_docker`` uses whichever engine the machine has (docker, or podman: ``setup_container_engine.sh`` sets it up
where there is no Docker daemon). Without any engine it skips with the reason — except under ``CI=true``, where
it fails: CI must really run it.

Coverage (``python -m aml.devtools.covreport assignment4``, ``make coverage``) measures ``app.py`` as it runs inside
the container (see ``aml.devtools.covreport.container_coverage``).

``image.py`` is loaded from its file (``importlib``), not through an edited ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from aml.devtools import covreport, fixtures, hooks, testenv
from aml.ops import containers
from aml.ops.http_client import http_call
from aml.spam import MODEL_NAME

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_image_module():
    """``assignment4/image.py`` (stage the build context, build), loaded from its file."""
    spec = importlib.util.spec_from_file_location("image", HERE / "image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image = _load_image_module()

#: the image test_docker builds; kept as the build cache (an unchanged rebuild then takes about a second)
TAG = "aml-spam-filter:test"


# -- the container -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved():
    return fixtures.ensure_model()


@pytest.fixture(scope="module")
def engine() -> str:
    return testenv.container_engine()


@pytest.fixture(scope="module")
def built(engine, saved) -> str:
    """The image, built with the command-line entry point a person would use (``python assignment4/image.py``)."""
    assert image.main(["--tag", TAG]) == 0
    return TAG


def test_build_context_holds_what_the_image_needs(tmp_path, saved):
    context = image.stage(tmp_path / "ctx")
    files = {str(p.relative_to(context)) for p in context.rglob("*") if p.is_file()}
    assert {"Dockerfile", ".dockerignore", "requirements.txt", "constraints.txt", "app/app.py"} <= files
    assert {f"app/models/{MODEL_NAME}/model.joblib", f"app/models/{MODEL_NAME}/meta.json"} <= files
    # the library as an installable project (pip install ".[serve]"), not a loose copy beside app.py
    assert {"pyproject.toml", "README.md", "shared/aml/__init__.py", "shared/aml/spam/service.py"} <= files
    assert not any(f.startswith("app/aml") for f in files)
    assert not any("__pycache__" in f or f.endswith("test.py") for f in files)
    # one copy of the service code in the repository: the context takes assignment3's file as it is
    assert (context / "app/app.py").read_bytes() == (ROOT / "assignment3/app.py").read_bytes()
    # the model loads in the image with the versions that saved it
    from importlib.metadata import version

    served = ["numpy", "scipy", "scikit-learn", "joblib", "Flask", "gunicorn", "onnxruntime", "tokenizers"]
    assert image.serve_packages() == served
    pins = (context / "requirements.txt").read_text().split()
    assert not any(p.startswith(("torch==", "transformers==", "pandas==")) for p in pins)  # the serving image is lean
    for package in served:
        assert f"{package}=={version(package)}" in pins
    constraints = (context / "constraints.txt").read_text().split()
    assert set(pins) < set(constraints) and f"setuptools=={version('setuptools')}" in constraints
    assert all(((context / f).stat().st_mode & 0o444) == 0o444 for f in files)  # readable by the non-root user
    with pytest.raises(FileExistsError, match="not empty"):
        image.stage(context)


def test_serve_packages_needs_the_extra(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(KeyError, match="serve extra"):
        image.serve_packages(tmp_path / "pyproject.toml")


def test_dockerfile_declares_base_user_port_healthcheck_and_server():
    text = (HERE / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "FROM ${BASE_IMAGE}" in text
    assert "\nUSER app\n" in text and "\nEXPOSE 8080\n" in text and "\nHEALTHCHECK " in text
    assert 'CMD ["python", "app.py"]' in text and "--no-cache-dir" in text
    assert "AML_SERVER=gunicorn" in text and '"/tmp/src[serve]"' in text and "PIP_CONSTRAINT=" in text
    assert MODEL_NAME not in text  # the model name is defined once, in aml.spam


@pytest.mark.container
def test_base_image_choice(monkeypatch, engine):
    monkeypatch.setenv("AML_BASE_IMAGE", "example/python:3.11")
    assert image.base_image(engine) == "example/python:3.11"
    assert image.base_image(engine, "other:1") == "other:1"
    monkeypatch.delenv("AML_BASE_IMAGE")
    local = containers.image_id(engine, containers.LOCAL_BASE_IMAGE)
    assert image.base_image(engine) == (containers.LOCAL_BASE_IMAGE if local else None)
    monkeypatch.setattr(containers, "LOCAL_BASE_IMAGE", "localhost/no-such-image:none")
    assert image.base_image(engine) is None  # then the Dockerfile's public default applies


BAD_BODIES = [
    "not json",
    "[1]",
    "{}",
    '{"text": 1}',
    '{"text": " "}',
    '{"text": "hi", "threshold": 2}',
    '{"text": "hi", "threshold": "high"}',
]


@pytest.mark.container
def test_docker(engine, built, saved):
    """Run the image with a port binding, POST texts to /score, check the answers; the container is always stopped
    and removed (``containers.running`` does it in ``finally``)."""
    info = containers.image_info(engine, built)
    assert info["user"] not in ("", "root", "0") and "8080/tcp" in info["exposed_ports"]
    assert info["healthcheck"] and info["cmd"] == ["python", "app.py"]

    include = ("/app/app.py",)
    with covreport.container_coverage(include=include) as cov:
        extra = {"env": cov.env, "volumes": cov.volumes} if cov else {}
        with containers.running(engine, built, timeout=90, **extra) as box:
            name = box.name
            assert box.exec("id", "-u").strip() != "0", "the service must not run as root"
            health = http_call("GET", box.url + "/health")
            assert health.status == 200 and health.json["model"] == MODEL_NAME
            assert health.json["version"] == saved[1]["sha256"][:12]
            cases = [*((t, True) for t in fixtures.SPAM_EXAMPLES), *((t, False) for t in fixtures.HAM_EXAMPLES)]
            for text, expected in cases:
                resp = http_call("POST", f"{box.url}/score", json_body={"text": text})
                assert resp.status == 200 and resp.content_type == "application/json"
                assert set(resp.json) == {"prediction", "propensity"}
                assert isinstance(resp.json["prediction"], bool) and isinstance(resp.json["propensity"], float)
                assert resp.json["prediction"] is expected, text
            for body in BAD_BODIES:
                bad = http_call("POST", f"{box.url}/score", data=body, headers={"Content-Type": "application/json"})
                assert bad.status == 400 and bad.json["status"] == 400, body
            at_zero = http_call("POST", f"{box.url}/score", json_body={"text": "hi", "threshold": 0.0})
            assert at_zero.json["prediction"] is True
            assert http_call("GET", f"{box.url}/score").status == 405
            assert http_call("POST", f"{box.url}/score", json_body={"text": "x" * 70_000}).status == 413
            form = http_call(
                "POST",
                f"{box.url}/score",
                data=urllib.parse.urlencode({"text": fixtures.SPAM_EXAMPLES[1]}),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert form.status == 200 and form.json["prediction"] is True
            assert "POST /score" in http_call("GET", box.url + "/").json["endpoints"]
            deep = http_call("POST", f"{box.url}/score", data="[" * 5000, headers={"Content-Type": "application/json"})
            assert deep.status == 400 and deep.json["status"] == 400
            assert box.health() == "healthy"
            assert "gthread" in box.logs(), "python app.py must start gunicorn in the image (AML_SERVER=gunicorn)"
    assert not containers.container_exists(engine, name), "the container must be removed after the test"
    if cov is not None:
        assert cov.collected, "the container wrote no coverage data"


#: a fine-tuned MiniLM for a few steps on these texts: the real code path in seconds (its scores mean nothing)
STACK_TEXTS = [*fixtures.HAM_EXAMPLES, *fixtures.SPAM_EXAMPLES]
STACK_LABELS = [0] * len(fixtures.HAM_EXAMPLES) + [1] * len(fixtures.SPAM_EXAMPLES)
TINY_FINE_TUNE = {"epochs": 1, "batch_size": 4, "max_length": 16, "max_steps_per_epoch": 2, "evals_per_epoch": 1}


@pytest.mark.container
def test_the_image_serves_a_fine_tuned_transformer_stack(engine, built, tmp_path):
    """When A1 selects the TF-IDF + fine-tuned MiniLM stack, the image must serve it: the stack holds its
    transformer as ONNX (no torch in the image) and answers what it answers here."""
    pytest.importorskip("torch")
    from aml.spam import models, onnx, stages
    from aml.spam.transformer import FineTunedTransformer, TfidfTransformerStack

    # the TF-IDF logistic regression first: the catalogue's calibrated SVM needs 5 texts a class for its folds
    stack = TfidfTransformerStack(first=models.tfidf_logreg(), second=FineTunedTransformer(**TINY_FINE_TUNE)).fit(
        STACK_TEXTS, STACK_LABELS, X_val=STACK_TEXTS, y_val=STACK_LABELS
    )
    assert isinstance(stack.second_, onnx.OnnxTextClassifier)
    store = tmp_path / "models"
    stages.save_model(stack, store / MODEL_NAME, {"model": "tfidf_minilm_stack", "threshold": 0.5})
    tag = "aml-spam-filter:test-stack"
    try:
        image.build_image(engine, tag, model_store=store)
        with containers.running(engine, tag, timeout=120) as box:
            assert box.exec("python", "-c", "import importlib.util as u; print(u.find_spec('torch'))").strip() == "None"
            expected = stack.predict_proba(STACK_TEXTS)[:, 1]
            for text, p in zip(STACK_TEXTS, expected, strict=True):
                resp = http_call("POST", f"{box.url}/score", json_body={"text": text})
                assert resp.status == 200 and abs(resp.json["propensity"] - p) < 1e-6, (text, resp.json, p)
                assert resp.json["prediction"] is bool(p >= 0.5)
    finally:
        containers.remove_image(engine, tag)


@pytest.mark.container
def test_container_is_removed_when_the_test_fails(engine, built):
    with pytest.raises(AssertionError, match="deliberate"):
        with containers.running(engine, built, timeout=90) as box:
            name = box.name
            raise AssertionError("deliberate")
    assert not containers.container_exists(engine, name)


# -- the pre-commit hook -------------------------------------------------------------------------------------------

PASSING = "def test_sum():\n    assert 1 + 1 == 2\n"
FAILING = "def test_sum():\n    assert 1 + 1 == 3\n"


def git_env(tmp: Path) -> dict[str, str]:
    """The environment for git in a scratch repository: none of the GIT_* variables of an outer git (this test may
    itself run inside the workspace's pre-commit hook, where GIT_INDEX_FILE points at the workspace's index)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "AML_HOOK_PYTHON": sys.executable,  # the scratch repository has no .venv
            "PRE_COMMIT_HOME": str(tmp / "pre-commit-home"),
            "HOME": str(tmp),  # no user git config leaks in
            "GIT_CONFIG_NOSYSTEM": "1",
            # the scratch test.py needs no plugins; loading this venv's (nbmake, pytest-cov, ...) takes ~3 s per commit
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
    )
    return env


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=repo, env=git_env(repo.parent), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def commit(repo: Path, message: str) -> subprocess.CompletedProcess:
    """``git add -A && git commit``; the result's ``output`` is stdout + stderr (git sends hook output to stderr)."""
    git(repo, "add", "-A")
    result = git(repo, "commit", "-m", message, check=False)
    result.output = result.stdout + result.stderr
    return result


def head_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").stdout)


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "student@example.com")
    git(path, "config", "user.name", "Student")
    git(path, "config", "commit.gpgsign", "false")
    (path / "test.py").write_text(PASSING)  # a tiny test.py of its own: the proof runs in a second
    return path


@pytest.fixture
def scratch(tmp_path) -> Path:
    """A scratch repository on ``main`` with the hook installed the standalone way."""
    repo = new_repo(tmp_path / "repo")
    installed = hooks.install_standalone(repo, hooks.HOOK_FILE)
    assert installed == repo / ".git" / "hooks" / "pre-commit" and os.access(installed, os.X_OK)
    return repo


def test_hook_is_committed_in_the_repository():
    assert hooks.HOOK_FILE == HERE / "hooks" / "pre-commit" and os.access(hooks.HOOK_FILE, os.X_OK)
    assert hooks.MARKER in hooks.HOOK_FILE.read_text()


def test_hook_accepts_a_commit_on_main_when_the_tests_pass(scratch):
    result = commit(scratch, "first")
    assert result.returncode == 0, result.output
    assert "running the tests" in result.output and "1 passed" in result.output
    assert head_count(scratch) == 1


def test_hook_rejects_a_commit_on_main_when_a_test_fails(scratch):
    assert commit(scratch, "first").returncode == 0
    (scratch / "test.py").write_text(FAILING)
    result = commit(scratch, "break the test")
    assert result.returncode != 0
    assert "1 failed" in result.output and "commit blocked" in result.output
    assert head_count(scratch) == 1, "the failing commit must not be recorded"


def test_hook_does_not_run_on_another_branch(scratch):
    assert commit(scratch, "first").returncode == 0
    git(scratch, "checkout", "-q", "-b", "feature")
    (scratch / "test.py").write_text(FAILING)
    result = commit(scratch, "work in progress")
    assert result.returncode == 0 and "running the tests" not in result.output
    assert head_count(scratch) == 2


def test_hook_through_the_pre_commit_framework(tmp_path):
    """The same hook file as a ``local`` hook of the pre-commit framework (what ``make hooks`` installs here)."""
    repo = new_repo(tmp_path / "repo")
    (repo / "hooks").mkdir()
    (repo / "hooks" / "pre-commit").write_bytes(hooks.HOOK_FILE.read_bytes())
    (repo / "hooks" / "pre-commit").chmod(0o755)
    (repo / hooks.FRAMEWORK_CONFIG).write_text(FRAMEWORK_CONFIG)
    env = git_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "aml.devtools.hooks", "install", "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "pre-commit framework" in result.stdout, result.stdout + result.stderr
    assert hooks.FRAMEWORK_MARKER in (repo / ".git" / "hooks" / "pre-commit").read_text()
    accepted = commit(repo, "first")
    assert accepted.returncode == 0, accepted.output
    assert re.search(r"tests in test\.py \(commits on main only\)\.+Passed", accepted.output), accepted.output
    (repo / "test.py").write_text(FAILING)
    rejected = commit(repo, "break the test")
    assert rejected.returncode != 0 and "1 failed" in rejected.output
    git(repo, "checkout", "-q", "-b", "feature")
    assert commit(repo, "on a branch").returncode == 0
    assert head_count(repo) == 2


#: the entry to add to the workspace's .pre-commit-config.yaml (under the `local` repo's hooks), tested above
FRAMEWORK_CONFIG = """\
repos:
  - repo: local
    hooks:
      - id: main-branch-tests
        name: tests in test.py (commits on main only)
        entry: hooks/pre-commit
        language: script
        pass_filenames: false
        always_run: true
        stages: [pre-commit]
"""
