"""Continuous deployment of the project's service: test the pushed tree, build its image, replace the running container.

Why: the course's deployment is a ``post-receive`` hook in the repository people push to. Pushing ``main`` should put
exactly that commit into service — but only when its tests pass, and never leave the service down because a new
image does not start. The hook (``project/hooks/post-receive``) stays a few lines of shell: it exports the pushed
commit into a fresh temporary folder (``git archive``) and runs this module with that tree's library first on
``PYTHONPATH``; the logic lives here, where it is unit-tested (``tests/unit/devtools/test_deploy.py``) and proved end
to end in a scratch repository (``project/test/integration_container.py``).

How (:func:`deploy`), every step logged to stdout, which git shows to the pusher as ``remote: ...``:

1. **test**: ``python -m pytest -q project/test/units.py`` in the pushed tree (``--test-args`` / ``AML_DEPLOY_TEST_ARGS``
   replace the pytest arguments, e.g. ``project/test/units.py -k config`` for a quick subset). A failure stops here:
   nothing is built, the running container is not touched, the exit code is 1.
2. **build**: ``python project/image.py --tag TAG`` of the pushed tree (its Dockerfile, its library, the pins of the
   interpreter that runs the hook); the engine's layer cache makes an unchanged dependency layer free.
3. **replace**: one host port serves the service (host networking, ``PORT``), so old and new cannot listen at the
   same time. Chosen: *stop old → start new → health check → roll back on failure*. The old container is renamed
   ``<name>-previous`` and stopped (kept, not removed); the new one starts as ``<name>`` with the store folder as
   ``/store``; when ``GET /health`` answers 200 within ``--health-timeout`` seconds the old container and its image
   are removed. Otherwise the new container is removed (its log is printed), the old one gets its name back and is
   started again, and the exit code is 1. The gap is the new container's start-up (a few seconds); a zero-downtime
   switch would need a proxy in front (two ports, switch, drain), which this course machine does not run.

A ``post-receive`` hook cannot reject a push (the refs are already updated); the exit code and the log tell the pusher
that the commit was *not deployed*. The service's API token: ``--pass-env AML_API_TOKEN`` hands the variable from
the hook's environment to the container; without it the service generates one in ``<store>/.secrets/api_token``.

Settings: command-line options, each with an ``AML_DEPLOY_*`` environment variable as default (see :func:`parse_args`),
so the hook passes the pusher's or the server's environment through unchanged.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aml.ops import containers, procs
from aml.ops.http_client import http_status

DEFAULT_NAME = "aml-spam-project"
DEFAULT_TEST_ARGS = ("project/test/units.py",)
CONTAINER_PORT_ENV = "PORT"
IMAGE_SCRIPT = "project/image.py"
#: the uid the project's image runs as (project/Dockerfile): the store folder must be writable for it
SERVICE_UID = 10001
PREVIOUS_SUFFIX = "-previous"

Log = Callable[[str], None]


class DeployError(RuntimeError):
    """A step failed: ``step`` names it, the message says why (the deployment's last log line)."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass
class Settings:
    """What to deploy and where (:func:`parse_args` builds it from the command line and ``AML_DEPLOY_*``)."""

    tree: Path
    commit: str = ""
    name: str = DEFAULT_NAME
    tag: str = f"{DEFAULT_NAME}:latest"
    port: int = 8000
    host: str = "127.0.0.1"
    store: Path = field(default_factory=lambda: default_store(DEFAULT_NAME))
    test_args: list[str] = field(default_factory=lambda: list(DEFAULT_TEST_ARGS))
    pass_env: list[str] = field(default_factory=list)
    health_timeout: float = 180.0
    python: str = sys.executable
    skip_tests: bool = False


def default_store(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/aml-deploy/<name>/store`` (default ``~/.local/share/...``): outside every checkout, so a
    deployment's data and models survive the temporary trees."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return base / "aml-deploy" / name / "store"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1..65535")
    return port


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {number:g}")
    return number


def parse_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: each option defaults to its ``AML_DEPLOY_*`` variable, then to the built-in default."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m aml.ops.deploy",
        description="Test a pushed tree, build the project's image, replace the running container.",
    )
    parser.add_argument("--tree", required=True, help="the pushed commit's files (exported by the hook)")
    parser.add_argument("--commit", default="", help="the pushed commit (for the log)")
    parser.add_argument("--name", default=env.get("AML_DEPLOY_NAME") or DEFAULT_NAME, help="container name")
    parser.add_argument("--tag", default=env.get("AML_DEPLOY_TAG"), help="image tag (default NAME:latest)")
    parser.add_argument("--port", type=_port, default=env.get("AML_DEPLOY_PORT") or 8000, help="host port")
    parser.add_argument("--host", default=env.get("AML_DEPLOY_HOST") or "127.0.0.1", help="interface to listen on")
    parser.add_argument("--store", default=env.get("AML_DEPLOY_STORE"), help="host folder mounted as /store")
    parser.add_argument(
        "--test-args",
        default=env.get("AML_DEPLOY_TEST_ARGS"),
        help=f"pytest arguments, one shell-quoted string (default {' '.join(DEFAULT_TEST_ARGS)})",
    )
    parser.add_argument(
        "--pass-env",
        action="append",
        default=None,
        help="an environment variable handed to the container (repeatable; default: AML_DEPLOY_PASS_ENV, comma-separated)",
    )
    parser.add_argument(
        "--health-timeout", type=_positive, default=env.get("AML_DEPLOY_HEALTH_TIMEOUT") or 180.0, help="seconds"
    )
    parser.add_argument("--skip-tests", action="store_true", help="deploy without running the tests (say why)")
    args = parser.parse_args(argv)
    test_args = shlex.split(args.test_args) if args.test_args else list(DEFAULT_TEST_ARGS)
    if not test_args:
        parser.error("--test-args must not be empty (use --skip-tests to deploy untested)")
    pass_env = args.pass_env
    if pass_env is None:
        pass_env = [v.strip() for v in (env.get("AML_DEPLOY_PASS_ENV") or "").split(",") if v.strip()]
    return Settings(
        tree=Path(args.tree).resolve(),
        commit=args.commit,
        name=args.name,
        tag=args.tag or f"{args.name}:latest",
        port=args.port,
        host=args.host,
        store=Path(args.store).resolve() if args.store else default_store(args.name, env),
        test_args=test_args,
        pass_env=pass_env,
        health_timeout=float(args.health_timeout),
        skip_tests=args.skip_tests,
    )


# -- the commands run in the pushed tree -----------------------------------------------------------------------------


def tree_env(tree: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for commands in the pushed tree: its library first on ``PYTHONPATH``, and none of the hook's
    ``GIT_*`` variables (inside a hook ``GIT_DIR`` points at the bare repository, which would confuse any git call
    the tests make)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith("GIT_")}
    paths = [str(tree / "shared"), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def tests_command(settings: Settings) -> list[str]:
    """The command that runs the pushed tree's tests (``settings.test_args``) with the hook's Python, without a
    pytest cache in the exported tree."""
    return [settings.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *settings.test_args]


def build_command(settings: Settings) -> list[str]:
    """The command that builds the image ``settings.tag`` from the pushed tree (the project's ``image.py``)."""
    return [settings.python, str(settings.tree / IMAGE_SCRIPT), "--tag", settings.tag]


def run_command(command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Log) -> int:
    """Run ``command``, passing each line of its output to ``log`` as it comes; returns the exit code."""
    log(f"$ {shlex.join(command)}")
    proc = subprocess.Popen(
        list(command), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        log("  " + line.rstrip("\n"))
    return proc.wait()


# -- the engine operations (replaced by a recording fake in the unit tests) ------------------------------------------


class Engine:
    """The container operations a deployment needs, on a real engine (:mod:`aml.ops.containers`)."""

    def __init__(self, command: str | None = None):
        self.command = command or containers.detect_engine()

    def state(self, name: str) -> dict | None:
        """The container's state (:func:`aml.ops.containers.container_state`), ``None`` when there is none."""
        return containers.container_state(self.command, name)

    def rename(self, container: str, new_name: str) -> None:
        """Rename ``container`` to ``new_name``."""
        containers.rename_container(self.command, container, new_name)

    def stop(self, container: str) -> None:
        """Stop ``container`` and keep it, so a rollback can start it again."""
        containers.stop_container(self.command, container)

    def start(self, container: str) -> None:
        """Start a stopped ``container`` again (the rollback)."""
        containers.start_container(self.command, container)

    def remove(self, container: str) -> None:
        """Stop and remove ``container``; quiet when it is already gone."""
        containers.stop_and_remove(self.command, container)

    def run(self, image: str, name: str, env: Mapping[str, str], volumes: Mapping[Path, str], pass_env: Sequence[str]):
        """Start ``image`` detached as ``name`` with ``env`` and ``volumes``; the variables named in ``pass_env``
        are passed through from this process's environment (their values never appear on a command line). Returns the
        container ID."""
        extra = [arg for var in pass_env for arg in ("-e", var)]  # `-e NAME`: the value from this process's env
        return containers.run_detached(self.command, image, name=name, env=env, volumes=volumes, extra=extra)

    def image_id(self, image: str) -> str | None:
        """The ID of ``image``, or ``None`` when the engine has no such image."""
        return containers.image_id(self.command, image)

    def remove_image(self, image: str) -> bool:
        """Remove ``image``; False when the engine refused (e.g. a container still uses it)."""
        return containers.remove_image(self.command, image)

    def logs(self, container: str) -> str:
        """The last 40 lines of ``container``'s output, for the deployment log."""
        return containers.logs(self.command, container, tail=40)


def wait_healthy(engine, container: str, url: str, timeout: float) -> None:
    """Wait until ``GET url`` answers 200 while ``container`` runs; :class:`DeployError` otherwise."""

    def alive() -> bool:
        state = engine.state(container)
        return bool(state and state["running"])

    try:
        procs.wait_for_http(url, timeout=timeout, interval=0.25, alive=alive)
    except (procs.ServerError, TimeoutError) as exc:
        raise DeployError("health", f"{url} did not become healthy: {exc}") from None


def replace(settings: Settings, engine, log: Log) -> str:
    """Stop the running container, start the new image, check its health; roll back on failure (see the module
    docstring). Returns the new container's ID."""
    url = f"http://127.0.0.1:{settings.port}/health"
    previous = f"{settings.name}{PREVIOUS_SUFFIX}"
    if engine.state(previous) is not None:  # left over from an interrupted deployment
        log(f"removing the leftover container {previous}")
        engine.remove(previous)
    old = engine.state(settings.name)
    renamed = False
    new = None
    try:
        if old is not None:
            log(f"stopping the running container {settings.name} ({old['id'][:12]}), kept as {previous} for a rollback")
            engine.rename(old["id"], previous)
            renamed = True
            if old["running"]:
                engine.stop(old["id"])
        else:
            log(f"no container {settings.name} is running: first deployment")
        containers.writable_volume(settings.store, SERVICE_UID)
        if http_status(url, timeout=1.0) is not None:  # else the health check would talk to whatever answers there
            raise DeployError("start", f"something else answers on port {settings.port}: not starting there")
        log(f"starting {settings.tag} as {settings.name} on port {settings.port}, store {settings.store}")
        env = {"HOST": settings.host, CONTAINER_PORT_ENV: str(settings.port)}
        new = engine.run(settings.tag, settings.name, env, {settings.store: "/store"}, settings.pass_env)
        log(f"waiting for {url} (up to {settings.health_timeout:g} s)")
        wait_healthy(engine, new, url, settings.health_timeout)
    except Exception as exc:
        failure = exc if isinstance(exc, DeployError) else DeployError("replace", f"{type(exc).__name__}: {exc}")
        log(f"the new container failed: {failure}" if new else f"failed before the new container ran: {failure}")
        if new is not None:
            for line in engine.logs(new).splitlines():
                log(f"  | {line}")
            engine.remove(new)
        elif old is None or renamed:  # a container half-created under the name (never the old one)
            engine.remove(settings.name)
        if old is not None:
            log(f"rolling back: {old['id'][:12]} becomes {settings.name} again")
            try:
                if renamed:
                    engine.rename(old["id"], settings.name)
                if old["running"]:
                    if not (engine.state(old["id"]) or {}).get("running"):
                        engine.start(old["id"])
                    wait_healthy(engine, old["id"], url, settings.health_timeout)
            except Exception as again:
                raise DeployError("rollback", f"{failure}; the rollback failed too: {again}") from None
            state = "serving again" if old["running"] else "stopped, as it was"
            log(f"rolled back: {settings.name} is {old['id'][:12]}, {state}")
        raise failure from None
    log(f"healthy: {settings.name} ({new[:12]}) serves {url.removesuffix('/health')}")
    if old is not None:
        engine.remove(old["id"])
        if old["image"] and old["image"] != engine.image_id(settings.tag) and engine.remove_image(old["image"]):
            log(f"removed the previous image {old['image'][:12]}")
    return new


def deploy(settings: Settings, engine=None, log: Log | None = None) -> int:
    """Test, build, replace (see the module docstring); returns the exit code (0: deployed)."""
    log = log or _print
    what = f"commit {settings.commit[:12]}" if settings.commit else str(settings.tree)
    started = time.perf_counter()
    env = tree_env(settings.tree)
    try:
        if not (settings.tree / IMAGE_SCRIPT).is_file():
            raise DeployError("check", f"{settings.tree} has no {IMAGE_SCRIPT}: not the project's repository")
        if settings.skip_tests:
            log(f"[1/3] test: SKIPPED (--skip-tests) for {what}")
        else:
            log(f"[1/3] test: {what}")
            code = run_command(tests_command(settings), settings.tree, env, log)
            if code != 0:
                raise DeployError(
                    "test", f"the tests failed (pytest exit code {code}): nothing built, nothing replaced"
                )
            log("tests passed")
        log(f"[2/3] build: {settings.tag}")
        code = run_command(build_command(settings), settings.tree, env, log)
        if code != 0:
            raise DeployError("build", f"the image build failed (exit code {code}): nothing replaced")
        log(f"[3/3] replace: container {settings.name}")
        new = replace(settings, engine or Engine(), log)
    except (containers.EngineUnavailable, containers.ContainerError) as exc:
        log(f"deploy: NOT DEPLOYED (engine: {exc}) after {time.perf_counter() - started:.0f} s")
        return 1
    except DeployError as exc:
        log(f"deploy: NOT DEPLOYED ({exc}) after {time.perf_counter() - started:.0f} s")
        return 1
    log(f"deploy: DEPLOYED {what} as {settings.name} ({new[:12]}) in {time.perf_counter() - started:.0f} s")
    return 0


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``python -m aml.ops.deploy``, run by the post-receive hook): deploy with the settings
    from the options and ``AML_DEPLOY_*`` variables; exit code 0 when deployed, 1 otherwise."""
    return deploy(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
