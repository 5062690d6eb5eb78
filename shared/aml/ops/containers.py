"""Build and run container images with whichever engine the machine has: ``docker``, or ``podman`` (same CLI).

Used by ``assignment4`` (the spam filter's image and ``test_docker``) and later by the project's services.

Choices, and why (``../shared/notes/containers.md`` records what works on the course machines):

- **Engine detection** (:func:`detect_engine`): ``AML_CONTAINER_ENGINE`` if set, else the first of ``docker``,
  ``podman`` whose ``info`` succeeds — a ``docker`` client without a daemon does not count.
- **Host networking by default** (``AML_CONTAINER_NETWORK`` overrides, e.g. ``bridge`` on Docker Desktop): the
  default bridge network rewrites the machine's firewall tables, which the course machines must not do. With host
  networking the container listens on the host's port directly (the port is passed as ``PORT``); with any other
  network the port is published on 127.0.0.1 only (``-p 127.0.0.1:PORT:CONTAINER_PORT``).
- **podman builds in Docker image format** (``--format docker``): the OCI format has no ``HEALTHCHECK``.
- **``--init``**: a tiny init as PID 1 forwards SIGTERM, so ``stop`` takes milliseconds instead of a 10 s timeout.
- **Base image** (:func:`base_image`): the one asked for, else ``AML_BASE_IMAGE``, else the local
  ``localhost/python-base:bookworm`` when the engine has it (machines without a registry), else the Dockerfile's
  public default (``None``: no build argument).
- **Pins from this environment** (:func:`extra_packages`, :func:`pinned_requirements`, :func:`write_pins`): an
  image installs one of the library's extras exactly as this environment has it, read from ``pyproject.toml`` and the
  installed distributions, never typed in twice.
- **Cleanup is not optional**: :func:`running` stops and removes its container in ``finally``; :func:`build`
  removes the image a re-tag leaves dangling, so only the tagged image (the build cache) stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from aml.ops import procs

ENGINES = ("docker", "podman")
ENGINE_ENV = "AML_CONTAINER_ENGINE"
BASE_IMAGE_ENV = "AML_BASE_IMAGE"
NETWORK_ENV = "AML_CONTAINER_NETWORK"
#: the Python base image ``assignment4/setup_container_engine.sh`` builds where no registry can be reached
LOCAL_BASE_IMAGE = "localhost/python-base:bookworm"
#: files never copied into a build context
CONTEXT_IGNORE = ("__pycache__", "*.pyc", ".pytest_cache", ".ipynb_checkpoints", ".DS_Store", "*.lock")


class EngineUnavailable(RuntimeError):
    """No usable container engine on this machine (the message says why, engine by engine)."""


class ContainerError(RuntimeError):
    """An engine command failed (the message carries the command and the end of its output)."""


def _run(args: Sequence[str], timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ContainerError(f"`{' '.join(args)}` did not finish within {timeout:g} s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ContainerError(f"`{' '.join(args)}` failed with exit code {result.returncode}:\n{tail}")
    return result


def engine_name(engine: str) -> str:
    """``docker`` or ``podman`` for an engine command such as ``/usr/bin/podman``."""
    name = Path(engine).name
    if name not in ENGINES:
        raise ValueError(f"unknown container engine {engine!r}: expected one of {ENGINES}")
    return name


def detect_engine(candidates: Iterable[str] | None = None, timeout: float = 30.0) -> str:
    """The command of a working container engine; raises :class:`EngineUnavailable` saying why none works."""
    chosen = os.environ.get(ENGINE_ENV)
    candidates = [chosen] if chosen else list(candidates or ENGINES)
    reasons = []
    for candidate in candidates:
        engine_name(candidate)
        path = shutil.which(candidate)
        if path is None:
            reasons.append(f"{candidate}: not installed")
            continue
        try:
            result = _run([path, "info"], timeout=timeout, check=False)
        except ContainerError as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        if result.returncode == 0:
            return path
        last = (result.stderr or result.stdout).strip().splitlines()
        reasons.append(f"{candidate}: `{candidate} info` failed ({last[-1] if last else 'no output'})")
    raise EngineUnavailable("; ".join(reasons))


def default_network() -> str:
    """``host`` unless ``AML_CONTAINER_NETWORK`` names another network."""
    return os.environ.get(NETWORK_ENV, "host")


def image_id(engine: str, image: str) -> str | None:
    """The ID of ``image``, or ``None`` when the engine has no such image."""
    result = _run([engine, "image", "inspect", "--format", "{{.Id}}", image], check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def image_info(engine: str, image: str) -> dict:
    """An image's user, exposed ports, healthcheck command, command and size in bytes (docker keeps the healthcheck
    in ``Config``, podman beside it)."""
    data = json.loads(_run([engine, "image", "inspect", image]).stdout)[0]
    cfg = data.get("Config") or {}
    check = cfg.get("Healthcheck") or data.get("Healthcheck") or {}
    return {
        "user": cfg.get("User") or "",
        "exposed_ports": sorted(cfg.get("ExposedPorts") or {}),
        "healthcheck": list(check.get("Test") or []),
        "cmd": list(cfg.get("Cmd") or []),
        "size": int(data.get("Size") or 0),
    }


def remove_image(engine: str, image: str) -> bool:
    """Remove an image (by tag or ID) if nothing uses it; returns whether it was removed."""
    return _run([engine, "rmi", image], check=False).returncode == 0


def build(
    engine: str,
    context: str | Path,
    tag: str,
    dockerfile: str | Path | None = None,
    build_args: Mapping[str, str] | None = None,
    network: str | None = None,
    timeout: float = 900.0,
) -> str:
    """Build ``context`` into ``tag``; returns the image ID.

    Layers are cached by the engine, so an unchanged rebuild takes about a second. When the tag moved to a new
    image, the old one is removed (unless something still uses it) instead of being left dangling.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*", tag):
        raise ValueError(f"invalid image tag {tag!r}: lower-case letters, digits and . _ / : - only")
    context = Path(context)
    if not context.is_dir():
        raise FileNotFoundError(f"build context {context} is not a folder")
    old = image_id(engine, tag)
    args = [engine, "build", "-t", tag, "--network", network or default_network()]
    if engine_name(engine) == "podman":
        args += ["--format", "docker"]
    if dockerfile is not None:
        args += ["-f", str(dockerfile)]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    _run([*args, str(context)], timeout=timeout)
    new = image_id(engine, tag)
    if new is None:
        raise ContainerError(f"the build reported success but there is no image {tag}")
    if old and old != new:
        remove_image(engine, old)
    return new


def stage_context(dest: str | Path, entries: Mapping[str, str | Path], ignore: Sequence[str] = CONTEXT_IGNORE) -> Path:
    """Copy files and folders into a fresh build context: ``entries`` maps a path inside the context to its source.

    A staged context holds exactly what the image needs, wherever the sources live (the model store may be outside
    the repository), and keeps the rest of the repository (``.venv``, data, notebooks) out of the build. Modes are
    normalised (folders 755, files 644, or 755 if executable): ``COPY`` keeps them, and the image's non-root user
    must be able to read everything (the model store writes its artefacts 600).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for target, source in entries.items():
        source = Path(source)
        out = dest / target
        if Path(target).is_absolute() or ".." in Path(target).parts:
            raise ValueError(f"context path {target!r} must be relative and stay inside the context")
        if source.is_dir():
            shutil.copytree(source, out, ignore=shutil.ignore_patterns(*ignore), dirs_exist_ok=True)
        elif source.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out)
        else:
            raise FileNotFoundError(f"{source} (for {target} in the build context) does not exist")
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)
    return dest


def base_image(engine: str, requested: str | None = None) -> str | None:
    """The base image to build on: ``requested``, else ``AML_BASE_IMAGE``, else :data:`LOCAL_BASE_IMAGE` when the
    engine has it, else ``None`` (the Dockerfile's own default, e.g. a public ``python:3.11-slim``)."""
    requested = requested or os.environ.get(BASE_IMAGE_ENV)
    if requested:
        return requested
    if image_id(engine, LOCAL_BASE_IMAGE):
        return LOCAL_BASE_IMAGE
    return None


def base_image_args(engine: str, requested: str | None = None) -> dict[str, str]:
    """``{"BASE_IMAGE": ...}`` for :func:`build` (empty when the Dockerfile's default applies)."""
    base = base_image(engine, requested)
    return {"BASE_IMAGE": base} if base else {}


def extra_packages(pyproject: str | Path, extra: str) -> list[str]:
    """The package names of the optional dependency ``extra`` declared in ``pyproject``, with the project's references
    to its own extras (``name[data,serve]``) expanded, in order and without repeats."""
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    extras = project.get("optional-dependencies", {})
    own = re.sub(r"[-_.]+", "-", project.get("name", "")).lower()

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        if name not in extras:
            raise KeyError(f"{pyproject} defines no [project.optional-dependencies] {name} extra")
        out = []
        for line in extras[name]:
            req = Requirement(line)
            if re.sub(r"[-_.]+", "-", req.name).lower() == own:
                for sub in sorted(req.extras):
                    if sub in seen:
                        raise ValueError(f"the {sub} extra of {pyproject} refers to itself")
                    out.extend(expand(sub, (*seen, sub)))
            else:
                out.append(req.name)
        return out

    return list(dict.fromkeys(expand(extra, (extra,))))


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def pinned_requirements(packages: Iterable[str]) -> list[str]:
    """``name==version`` for ``packages`` and everything they depend on, as installed in this environment.

    A pickled scikit-learn model must be loaded with the versions that saved it, so the image installs exactly what
    the training environment has — read from the environment itself, never typed in twice.
    """
    seen: dict[str, str] = {}
    todo = list(packages)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise ValueError(f"{name} is not installed in this environment, so it cannot be pinned") from exc
        seen[key] = f"{dist.metadata['Name']}=={dist.version}"
        todo.extend(_requirement_names(dist))
    return sorted(seen.values(), key=str.lower)


def write_pins(dest: str | Path, packages: Iterable[str], why: str) -> tuple[Path, Path]:
    """Write ``requirements.txt`` (``packages`` and their dependencies pinned from this environment) and
    ``constraints.txt`` (the same pins plus the ``setuptools`` that builds the library's wheel) into ``dest``;
    ``why`` is the files' one-line header. Returns both paths."""
    dest = Path(dest)
    pins = pinned_requirements(packages)
    header = f"# {why}\n"
    requirements, constraints = dest / "requirements.txt", dest / "constraints.txt"
    requirements.write_text(header + "\n".join(pins) + "\n")
    build_backend = [f"setuptools=={metadata.version('setuptools')}"]
    constraints.write_text(header + "\n".join([*pins, *build_backend]) + "\n")
    return requirements, constraints


def run_detached(
    engine: str,
    image: str,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    network: str | None = None,
    publish: Mapping[int, int] | None = None,
    volumes: Mapping[str | Path, str] | None = None,
    init: bool = True,
    extra: Sequence[str] = (),
    command: Sequence[str] = (),
) -> str:
    """``<engine> run -d`` the image (with ``command`` instead of its own, if given); returns the container ID.

    ``publish`` maps host ports to container ports, bound to 127.0.0.1 only (ignored with host networking);
    ``volumes`` maps host paths to ``container_path[:options]``.
    """
    network = network or default_network()
    args = [engine, "run", "-d", "--network", network]
    if name:
        args += ["--name", name]
    if init:
        args.append("--init")
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    if network != "host":
        for host_port, container_port in (publish or {}).items():
            args += ["-p", f"127.0.0.1:{int(host_port)}:{int(container_port)}"]
    for host_path, target in (volumes or {}).items():
        args += ["-v", f"{Path(host_path).resolve()}:{target}"]
    return _run([*args, *extra, image, *command]).stdout.strip().splitlines()[-1]


def stop_and_remove(engine: str, container: str, timeout: int = 5) -> None:
    """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove a container; quiet if it is already gone."""
    _run([engine, "stop", "-t", str(int(timeout)), container], timeout=timeout + 60, check=False)
    _run([engine, "rm", "-f", container], timeout=60, check=False)


def container_exists(engine: str, container: str) -> bool:
    """True when ``engine`` knows a container named (or with the ID) ``container``, running or not."""
    return _run([engine, "container", "inspect", container], check=False).returncode == 0


def container_state(engine: str, container: str) -> dict | None:
    """``{"id", "name", "image", "running", "started_at"}`` of a container (by name or ID), or ``None`` if there is none."""
    fmt = "{{.Id}}|{{.Name}}|{{.Image}}|{{.State.Running}}|{{.State.StartedAt}}"
    result = _run([engine, "container", "inspect", "--format", fmt, container], check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    cid, name, image, running, started = result.stdout.strip().splitlines()[0].split("|", 4)
    return {"id": cid, "name": name.lstrip("/"), "image": image, "running": running == "true", "started_at": started}


def stop_container(engine: str, container: str, timeout: int = 10) -> None:
    """Stop a container (SIGTERM, SIGKILL after ``timeout`` s) and keep it, so it can be started again."""
    _run([engine, "stop", "-t", str(int(timeout)), container], timeout=timeout + 60)


def start_container(engine: str, container: str) -> None:
    """Start a stopped container again (same ID, same settings)."""
    _run([engine, "start", container])


def rename_container(engine: str, container: str, new_name: str) -> None:
    """Give ``container`` the name ``new_name`` (a deployment keeps the old container under another name until
    the new one is healthy)."""
    _run([engine, "rename", container, new_name])


def writable_volume(path: str | Path, uid: int, gid: int | None = None) -> Path:
    """Create ``path`` (a host folder to mount as a volume) and make it writable for the container's user ``uid``:
    ``chown -R`` when this process may (root), else world-writable folders and files (a rootless engine maps the
    container's uids to sub-uids this process cannot chown to). Returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gid = uid if gid is None else gid
    for item in [path, *path.rglob("*")]:
        if item.is_symlink():
            continue
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            os.chown(item, uid, gid)
        else:
            item.chmod(0o777 if item.is_dir() else 0o666)
    return path


def exec_in(engine: str, container: str, *command: str) -> str:
    """Run ``command`` inside a running container; returns its standard output."""
    if not command:
        raise ValueError("command must not be empty")
    return _run([engine, "exec", container, *command]).stdout


def logs(engine: str, container: str, tail: int = 50) -> str:
    """The last ``tail`` lines of a container's output (standard output and error together), for error messages."""
    result = _run([engine, "logs", "--tail", str(int(tail)), container], check=False)
    return (result.stdout + result.stderr).strip()


def health(engine: str, container: str) -> str:
    """Run the image's ``HEALTHCHECK`` now and return ``healthy`` or ``unhealthy`` (``none`` without one).

    podman runs the check on demand (``podman healthcheck run``). docker only runs it on its own schedule (every
    30 s after a start period here), so its check command is run now with ``docker exec``, the same way.
    """
    if engine_name(engine) == "podman":
        result = _run([engine, "healthcheck", "run", container], check=False)
        if "no healthcheck" in (result.stdout + result.stderr).lower():
            return "none"
        return "healthy" if result.returncode == 0 else "unhealthy"
    config = json.loads(_run([engine, "inspect", "--format", "{{json .Config.Healthcheck}}", container]).stdout)
    test = (config or {}).get("Test") or ["NONE"]
    if test[0] == "NONE":
        return "none"
    command = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
    return "healthy" if _run([engine, "exec", container, *command], check=False).returncode == 0 else "unhealthy"


@dataclass
class Container:
    """A running container serving HTTP on ``port`` of 127.0.0.1."""

    engine: str
    id: str
    name: str
    port: int

    @property
    def url(self) -> str:
        """The container's base URL on the loopback interface."""
        return f"http://127.0.0.1:{self.port}"

    def logs(self, tail: int = 50) -> str:
        """The last ``tail`` lines of the container's output (:func:`logs`)."""
        return logs(self.engine, self.id, tail)

    def health(self) -> str:
        """The image's health check run now: ``healthy``, ``unhealthy`` or ``none`` (:func:`health`)."""
        return health(self.engine, self.id)

    def exec(self, *command: str) -> str:
        """Run ``command`` inside the container and return its standard output (:func:`exec_in`)."""
        return exec_in(self.engine, self.id, *command)


@contextlib.contextmanager
def running(
    engine: str,
    image: str,
    container_port: int = 8080,
    ready_path: str = "/health",
    env: Mapping[str, str] | None = None,
    volumes: Mapping[str | Path, str] | None = None,
    network: str | None = None,
    timeout: float = 60.0,
    stop_timeout: int = 5,
    command: Sequence[str] = (),
) -> Iterator[Container]:
    """Run ``image`` serving HTTP on a free loopback port, wait until ``GET ready_path`` answers 200, and always stop
    and remove the container afterwards (also when the block raises).

    The app in the image must read its port from ``PORT`` and its interface from ``HOST`` (with host networking it
    is told to listen on 127.0.0.1:<free port>; otherwise on 0.0.0.0:``container_port``, published on 127.0.0.1).
    """
    network = network or default_network()
    port = procs.free_port()
    name = f"aml-{uuid.uuid4().hex[:12]}"
    env = dict(env or {})
    if network == "host":
        env.update({"HOST": "127.0.0.1", "PORT": str(port)})
    else:
        env.update({"HOST": "0.0.0.0", "PORT": str(container_port)})
    cid = None
    try:
        cid = run_detached(
            engine,
            image,
            name=name,
            env=env,
            network=network,
            publish={port: container_port},
            volumes=volumes,
            command=command,
        )
        box = Container(engine=engine, id=cid, name=name, port=port)

        def alive() -> bool:
            state = _run([engine, "inspect", "--format", "{{.State.Running}}", cid], check=False).stdout.strip()
            return state == "true"

        try:
            procs.wait_for_http(box.url + ready_path, timeout=timeout, interval=0.1, alive=alive)
        except (procs.ServerError, TimeoutError) as exc:
            raise ContainerError(f"{exc}\n--- container log (end) ---\n{box.logs(30)}") from None
        yield box
    finally:
        stop_and_remove(engine, cid or name, timeout=stop_timeout)
