"""Unit tests of aml.ops.containers. Those that need an engine build a tiny image on the local base image (or the public
python image on a machine with a registry) and skip where no engine can be used — under CI=true they fail instead."""

import os
from importlib.metadata import version

import pytest

from aml.devtools import testenv
from aml.ops import containers
from aml.ops import http_client as serving

TINY_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
COPY index.json /srv/health
EXPOSE 8080
USER 65534
HEALTHCHECK --interval=30s CMD python3 -c "import urllib.request as r, os; r.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'])"
CMD ["sh", "-c", "cd /srv && exec python3 -m http.server $PORT --bind $HOST"]
"""


def test_engine_name():
    assert containers.engine_name("/usr/bin/podman") == "podman" and containers.engine_name("docker") == "docker"
    with pytest.raises(ValueError, match="unknown container engine"):
        containers.engine_name("rkt")


def test_detect_engine_says_why_none_works(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine on this PATH
    monkeypatch.delenv(containers.ENGINE_ENV, raising=False)
    with pytest.raises(containers.EngineUnavailable, match="docker: not installed; podman: not installed"):
        containers.detect_engine()
    fake = tmp_path / "docker"  # a client whose daemon is missing
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(containers.EngineUnavailable, match="`docker info` failed .Cannot connect"):
        containers.detect_engine(["docker"])
    monkeypatch.setenv(containers.ENGINE_ENV, "podman")
    with pytest.raises(containers.EngineUnavailable, match="^podman: not installed$"):
        containers.detect_engine()


def test_default_network(monkeypatch):
    monkeypatch.delenv(containers.NETWORK_ENV, raising=False)
    assert containers.default_network() == "host"
    monkeypatch.setenv(containers.NETWORK_ENV, "bridge")
    assert containers.default_network() == "bridge"


def test_stage_context_copies_files_and_folders(tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (src / "model.bin").write_bytes(b"model")
    (src / "model.bin").chmod(0o600)  # as the model store writes its artefacts
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o700)
    ctx = containers.stage_context(
        tmp_path / "ctx",
        {"app/pkg": src / "pkg", "app/models/m/model.bin": src / "model.bin", "run.sh": src / "run.sh"},
    )
    assert (ctx / "app/pkg/mod.py").read_text() == "x = 1\n" and not (ctx / "app/pkg/__pycache__").exists()
    assert (ctx / "app/models/m/model.bin").stat().st_mode & 0o777 == 0o644
    assert (ctx / "run.sh").stat().st_mode & 0o777 == 0o755 and (ctx / "app").stat().st_mode & 0o777 == 0o755
    with pytest.raises(FileNotFoundError, match="does not exist"):
        containers.stage_context(tmp_path / "ctx2", {"x": src / "missing"})
    for bad in ("/etc/x", "../x"):
        with pytest.raises(ValueError, match="inside the context"):
            containers.stage_context(tmp_path / "ctx3", {bad: src / "model.bin"})


def test_pinned_requirements_follow_the_environment():
    pins = containers.pinned_requirements(["Flask", "scikit-learn"])
    assert f"Flask=={version('flask')}" in pins and f"scikit-learn=={version('scikit-learn')}" in pins
    # dependencies come along, pinned too
    assert f"Werkzeug=={version('werkzeug')}" in pins and f"numpy=={version('numpy')}" in pins
    assert pins == sorted(pins, key=str.lower) and len(pins) == len(set(pins))
    with pytest.raises(ValueError, match="not installed"):
        containers.pinned_requirements(["no-such-package-aml"])


def test_build_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="invalid image tag"):
        containers.build("podman", tmp_path, "Bad Tag")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        containers.build("podman", tmp_path / "missing", "ok:tag")
    with pytest.raises(ValueError, match="must not be empty"):
        containers.exec_in("podman", "x")


def test_engine_command_failures_are_reported():
    with pytest.raises(containers.ContainerError, match="failed with exit code"):
        containers._run(["sh", "-c", "echo oops; exit 3"])
    with pytest.raises(containers.ContainerError, match="did not finish"):
        containers._run(["sleep", "5"], timeout=0.2)


# -- with a real engine --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    return testenv.container_engine()


@pytest.fixture(scope="module")
def tiny_image(engine, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("tiny")
    (ctx / "Dockerfile").write_text(TINY_DOCKERFILE)
    (ctx / "index.json").write_text('{"status": "ok"}')
    base = os.environ.get("AML_BASE_IMAGE")
    if not base and containers.image_id(engine, containers.LOCAL_BASE_IMAGE):
        base = containers.LOCAL_BASE_IMAGE
    tag = "aml-unit-test-tiny:latest"
    image = containers.build(engine, ctx, tag, build_args={"BASE_IMAGE": base} if base else None)
    yield tag
    assert containers.remove_image(engine, image)
    assert containers.image_id(engine, tag) is None


@pytest.mark.container
def test_build_run_check_and_clean_up(engine, tiny_image):
    info = containers.image_info(engine, tiny_image)
    assert info["user"] == "65534" and info["exposed_ports"] == ["8080/tcp"] and info["healthcheck"]
    assert info["cmd"][0] == "sh" and info["size"] > 0
    with containers.running(engine, tiny_image, timeout=60) as box:
        assert box.url.startswith("http://127.0.0.1:")
        assert serving.http_call("GET", box.url + "/health").json == {"status": "ok"}
        assert box.exec("id", "-u").strip() == "65534"
        assert box.health() == "healthy"
        assert "GET /health" in box.logs()
        assert containers.container_exists(engine, box.id)
        cid = box.id
    assert not containers.container_exists(engine, cid)
    containers.stop_and_remove(engine, cid)  # already gone: quiet


@pytest.mark.container
def test_running_reports_a_container_that_dies(engine, tiny_image):
    dying = ["sh", "-c", "echo cannot start; exit 3"]
    with pytest.raises(containers.ContainerError, match=r"exited before answering(.|\n)*cannot start"):
        with containers.running(engine, tiny_image, timeout=60, command=dying):
            pass  # pragma: no cover
    with pytest.raises(containers.ContainerError, match="did not answer"):
        with containers.running(engine, tiny_image, timeout=3, ready_path="/nope"):
            pass  # pragma: no cover


@pytest.mark.container
def test_rebuild_replaces_the_tagged_image_without_leaving_it_dangling(engine, tiny_image, tmp_path):
    first = containers.image_id(engine, tiny_image)
    (tmp_path / "Dockerfile").write_text(f"FROM {tiny_image}\nLABEL aml.test=1\n")
    tag = "aml-unit-test-tiny:child"
    one = containers.build(engine, tmp_path, tag)
    (tmp_path / "Dockerfile").write_text(f"FROM {tiny_image}\nLABEL aml.test=2\n")
    two = containers.build(engine, tmp_path, tag)
    assert one != two and containers.image_id(engine, tag) == two
    assert containers.image_id(engine, one) is None, "the image the tag left must be removed"
    assert containers.remove_image(engine, tag) and containers.image_id(engine, tiny_image) == first
