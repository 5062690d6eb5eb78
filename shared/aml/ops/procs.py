"""Launch a server as a separate process on a free port, wait until it answers, and always shut it down.

The Flask integration test (``assignment3/test.py``), the load benchmark (``assignment3/benchmark.py``) and the
project's services all start real servers; they share this one helper::

    with procs.serve([sys.executable, "app.py", "--port", "{port}"], cwd=folder) as server:
        requests.post(server.url + "/score", json={"text": "hi"})

Choices:

- The port is chosen free just before the launch; in the small window where another process could take it, the
  server exits with "address already in use" and :func:`serve` retries on a new port.
- The server's output goes to a log file, not a pipe (a chatty server can fill a pipe and hang); the last lines are
  put into the error message when the server fails to start or dies.
- The server runs in its own session (process group). Stopping sends SIGTERM to the server process first, so
  gunicorn stops its workers and coverage (``[run] sigterm = true``) saves its data, then SIGKILLs whatever is left
  of the group after ``stop_timeout``. Stopping happens in ``finally``, also when the test body fails.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from aml.ops.http_client import http_status

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """The server did not start answering, or exited early (the message carries the end of its log)."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    alive=None,
    ok_statuses: Sequence[int] = (200,),
) -> int:
    """Poll ``GET url`` until it returns one of ``ok_statuses``; returns that status.

    ``alive`` is an optional callable returning ``False`` once the server is known dead (e.g. its process exited),
    to fail at once instead of waiting out ``timeout``. Raises :class:`ServerError` (dead) or ``TimeoutError``.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = http_status(url, timeout=min(2.0, timeout))
        if last in ok_statuses:
            return last
        if alive is not None and not alive():
            raise ServerError(f"the server behind {url} exited before answering")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer with {list(ok_statuses)} within {timeout:g} s (last: {last})")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM the process, wait up to ``timeout`` s, then SIGKILL its whole process group; returns its exit code.

    Safe to call on a process that already exited.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers: workers, grandchildren (only if it has its own group)
    return proc.wait()


class ServerProcess:
    """A server command run as a child process; see :func:`serve`."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        host: str = LOOPBACK,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        log_path: str | Path | None = None,
    ):
        if not command:
            raise ValueError("command must not be empty")
        self.port, self.host = int(port), host
        self.command = [str(part).format(port=self.port, host=host) for part in command]
        self.cwd = str(cwd) if cwd is not None else None
        self.env = {**os.environ, **{k: str(v).format(port=self.port, host=host) for k, v in (env or {}).items()}}
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="server-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's base URL, ``http://<host>:<port>``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        """Start the command in a new session (so it and its workers can be stopped together by its PID), its
        output going to the log file, and stopped at this interpreter's exit at the latest; returns ``self``.
        Starting twice raises ``RuntimeError``."""
        if self.proc is not None:
            raise RuntimeError("already started")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        # stopped when this interpreter exits too: a notebook that fails half-way never reaches its stop cell, and
        # its kernel's exit must not leave the server running (seen once: a walkthrough's gunicorn outlived it)
        atexit.register(self.stop)
        return self

    def alive(self) -> bool:
        """True while the started process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log(self, lines: int | None = None) -> str:
        """The server's output so far (the last ``lines`` lines if given)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:]) if lines else text

    def wait_ready(self, path: str = "/health", timeout: float = 30.0) -> None:
        """Wait until ``GET path`` answers or ``timeout`` s pass; a :class:`ServerError` that ends with the
        server's log when it exits first or never answers, so a failed start says why."""
        try:
            wait_for_http(self.url + path, timeout=timeout, alive=self.alive)
        except (ServerError, TimeoutError) as exc:
            raise ServerError(
                f"{exc}\ncommand: {' '.join(self.command)}\n--- server log (end) ---\n{self.log(30)}"
            ) from None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server (idempotent); returns its exit code."""
        if self.proc is None:
            return None
        # no second stop at exit: a process that starts many servers (a test worker) neither keeps every one alive
        # until it exits nor signals, then, the process groups of long-reaped PIDs that the system may have reused
        atexit.unregister(self.stop)
        return stop_process(self.proc, timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def serve(
    command: Sequence[str],
    path: str = "/health",
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    host: str = LOOPBACK,
    port: int | None = None,
    timeout: float = 30.0,
    stop_timeout: float = 10.0,
    retries: int = 3,
    keep_log: bool = False,
) -> Iterator[ServerProcess]:
    """Run ``command`` on a free port until the block ends; ``{port}``/``{host}`` in the command or in ``env``
    values are replaced. Waits until ``GET <path>`` answers 200, and always stops the server (and deletes its log
    unless ``keep_log``).

    With ``port=None`` a free port is chosen, and a launch that dies before answering (e.g. the port was taken in
    the meantime) is retried on a new port up to ``retries`` times.
    """
    attempts = 1 if port is not None else max(1, retries)
    for attempt in range(1, attempts + 1):
        server = ServerProcess(command, port or free_port(host), host=host, cwd=cwd, env=env)
        try:
            server.start()
            try:
                server.wait_ready(path, timeout)
            except ServerError:
                if attempt < attempts and not server.alive() and "in use" in server.log().lower():
                    continue  # lost the race for the port: try another one
                raise
            yield server
            return
        finally:
            server.stop(stop_timeout)
            if not keep_log:
                server.log_path.unlink(missing_ok=True)
