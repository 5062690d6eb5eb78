"""nginx in front of the services: the one place its configuration is written and it is started.

Why a proxy: gunicorn's ``gthread`` workers give each connection a thread while they read its request, and a client
that trickles its headers or its body keeps that thread for as long as bytes keep coming (the 10-s read timeout is
between two reads). Sixteen such clients held every thread of two workers × eight threads, and online ``/score``
answered nothing while they lasted (issue 22). nginx reads requests with an event loop, thousands of connections per
worker process, and with ``proxy_request_buffering on`` passes a request to gunicorn only once it has arrived whole,
so gunicorn's threads only ever serve complete requests. The same configuration answers what it refuses itself
(malformed HTTP, a header over 8 KiB, a body over the app's limit, a client that stalls, the service down) with the
services' JSON error format (:func:`aml.core.web.error_response`), not nginx's HTML pages.

Why by hand: nginx takes one configuration file; there is no Python library that writes one for a use like this,
and the template below is short enough to read whole. Two front ends use it:

- :class:`FrontProxy`: ``--server gunicorn`` (:func:`aml.core.web.run_gunicorn`): nginx on the service's address,
  gunicorn on a Unix socket in a private folder behind it, nginx a child of gunicorn's master (it stops with it,
  also when the master is killed: ``PR_SET_PDEATHSIG``, and the master stops when nginx dies, so a supervisor sees
  one failure, not a half-up service);
- :func:`aml.ops.teamstack.balancer`: the team stack's load balancer over replicas, with retries on another
  replica (``next_upstream``) and kept-alive upstream connections.

Where nginx is missing (a laptop, Colab), :func:`binary` is ``None`` and the callers say how to install it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path

log = logging.getLogger("aml.core.nginx")

#: where the JSON error answers live (internal locations: a client cannot request them)
ERROR_PREFIX = "/_aml_error/"
#: seconds a client may take to send its request header (in all), between two reads of its body, and between two
#: writes of the answer (the value of :data:`aml.core.web.READ_TIMEOUT_S`)
CLIENT_TIMEOUT_S = 10
#: a header line longer than this (8 KiB, nginx's default large buffer) is refused: 431
HEADER_BUFFER = "8k"
#: the name of a front proxy's folder (:meth:`FrontProxy.prepare`) and the file in it naming the process it serves
FRONT_PREFIX, OWNER_FILE = "aml-front-", "owner.pid"
#: the statuses nginx itself may answer, each given a JSON body; 494 (nginx's own "header too large") goes out as 431
ERROR_STATUSES = (400, 404, 408, 413, 414, 431, 494, 500, 501, 502, 503, 504, 505)
INSTALL_HINT = "apt-get install nginx, or set AML_NGINX to its path"


class NginxError(RuntimeError):
    """nginx did not start, or its configuration is not possible (the message says why)."""


def binary() -> str | None:
    """The ``nginx`` executable (``AML_NGINX``, else ``PATH``, else ``/usr/sbin/nginx``), or ``None``."""
    candidate = os.environ.get("AML_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def no_proxy_unless_installed() -> list[str]:
    """The options a notebook or demo adds to ``--server gunicorn``: none where nginx is installed (the service
    runs behind it), ``["--no-proxy"]`` where it is not (Colab, a laptop), with a warning saying so: the walkthrough
    runs everywhere, and in production the refusal stays (:func:`aml.core.web.server_settings`)."""
    if binary() is not None:
        return []
    log.warning("nginx is not installed (%s): the service runs as plain gunicorn (--no-proxy)", INSTALL_HINT)
    return ["--no-proxy"]


def worker_user() -> str | None:
    """nginx's worker account when it starts as root (``nobody`` with its group), else ``None`` (the workers run
    as whoever started it)."""
    if os.geteuid() != 0:
        return None
    import grp

    for group in ("nogroup", "nobody"):
        with contextlib.suppress(KeyError):
            grp.getgrnam(group)
            return f"nobody {group}"
    return "nobody"


def error_messages(max_body_bytes: int, timeout_s: int = CLIENT_TIMEOUT_S) -> dict[int, tuple[int, str, str]]:
    """``{status nginx answers: (status sent, error name, message)}`` for :data:`ERROR_STATUSES`."""

    def entry(status: int, message: str) -> tuple[int, str, str]:
        return status, HTTPStatus(status).phrase, message

    return {
        400: entry(400, "the request is not valid HTTP (request line, header, Content-Length or Transfer-Encoding)"),
        404: entry(404, "no such endpoint"),  # nginx's own 404s only (its internal error pages); the app's pass
        408: entry(408, f"the request did not arrive within {timeout_s} s"),
        413: entry(413, f"the request body is larger than the limit of {max_body_bytes} bytes"),
        414: entry(414, "the request line is longer than 8 KiB"),
        431: entry(431, "a request header line is longer than 8 KiB"),
        494: entry(431, "a request header line is longer than 8 KiB"),
        500: entry(500, "the proxy in front of the service failed; see its log"),
        501: entry(501, "the request's Transfer-Encoding is not supported (chunked is)"),
        502: entry(502, "the service behind the proxy is not answering (starting or restarting): try again shortly"),
        503: entry(503, "the service behind the proxy is not available: try again shortly"),
        504: entry(504, "the service did not answer in time"),
        505: entry(505, "the HTTP version is not supported (HTTP/1.0 and HTTP/1.1 are)"),
    }


def error_body(status: int, name: str, message: str) -> str:
    """The JSON error answer, as :func:`aml.core.web.error_response` writes it."""
    return json.dumps({"error": name, "message": message, "status": status})


def _quoted(text: str) -> str:
    """``text`` as a single-quoted nginx string (no variables: ``$`` cannot occur in what we write)."""
    if "$" in text:
        raise ValueError(f"no '$' in nginx strings here: {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _upstream(address: str) -> str:
    """``host:port``, ``http://host:port/`` or ``unix:/path`` as an nginx upstream server address."""
    address = address.split("://", 1)[-1].rstrip("/") if not address.startswith("unix:") else address
    if not address or any(c.isspace() or c in ";{}'\"" for c in address):
        raise ValueError(f"not an upstream address: {address!r}")
    return address


def config(
    listen: str,
    upstreams: Sequence[str],
    folder: str | Path,
    *,
    max_body_bytes: int,
    user: str | None = None,
    health_path: str | None = None,
    client_timeout_s: int = CLIENT_TIMEOUT_S,
    read_timeout_s: int = 600,
    keepalive: int = 0,
    next_upstream: bool = False,
    worker_connections: int = 4096,
    comment: str = "generated by aml.core.nginx",
) -> str:
    """An ``nginx.conf`` that listens on ``listen`` (``host:port``) and passes every request to ``upstreams``
    (``host:port``, URLs or ``unix:/path``; round robin), keeping its PID and temporary files in ``folder``.

    - requests are read whole before they reach a service (``proxy_request_buffering on``), up to
      ``max_body_bytes`` (413 beyond), each header line up to 8 KiB (431 beyond); a client has
      ``client_timeout_s`` seconds for its whole header, between two reads of its body and between two writes of the
      answer (answers are buffered too: a slow reader does not hold the service either);
    - what nginx refuses or cannot pass on gets the services' JSON error (:func:`error_messages`), never HTML;
      ``server_tokens off``: no version in the ``Server`` header;
    - ``health_path``: answered by nginx itself (200 ``ok``: the balancer is up, whatever the replicas);
    - ``keepalive``: idle connections kept open to the upstreams (0: one connection per request, no race between
      a reused connection and the upstream closing it); ``next_upstream``: a request an upstream refused, reset or
      died on is passed to the next one, POSTs included (``non_idempotent``; for replicas whose endpoints can be
      repeated, see :func:`aml.ops.teamstack.nginx_config`);
    - ``read_timeout_s``: how long a service may take to answer (a training submission or a batch score);
    - ``user``: the account of the worker processes when nginx starts as root (:func:`worker_user`).
    """
    if not upstreams:
        raise ValueError("nginx needs at least one upstream")
    if max_body_bytes < 1 or client_timeout_s < 1 or read_timeout_s < 1 or keepalive < 0:
        raise ValueError("max_body_bytes, client_timeout_s and read_timeout_s must be positive, keepalive >= 0")
    folder = Path(folder)
    servers = "\n".join(
        f"        server {_upstream(u)}{' max_fails=1 fail_timeout=2s' if next_upstream else ''};" for u in upstreams
    )
    temp = "\n".join(
        f"    {kind}_temp_path {folder / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    pages, locations = [], []
    for status, (sent, name, message) in error_messages(max_body_bytes, client_timeout_s).items():
        pages.append(
            f"        error_page {status} {'=' + str(sent) + ' ' if sent != status else ''}{ERROR_PREFIX}{status};"
        )
        locations.append(
            f"        location = {ERROR_PREFIX}{status} {{\n"
            f"            internal;\n"
            f"            default_type application/json;\n"
            f"            return {sent} {_quoted(error_body(sent, name, message))};\n"
            f"        }}"
        )
    health = (
        f'        location = {health_path} {{\n            default_type text/plain;\n            return 200 "ok\\n";\n        }}\n'
        if health_path
        else ""
    )
    retry = (
        f"            proxy_next_upstream error timeout non_idempotent;\n"
        f"            proxy_next_upstream_tries {len(upstreams)};\n"
        if next_upstream
        else "            proxy_next_upstream off;\n"
    )
    return f"""# {comment}
{f"user {user};" if user else ""}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections {int(worker_connections)};
}}
http {{
    access_log off;
    server_tokens off;
{temp}
    client_max_body_size {int(max_body_bytes)};
    client_body_buffer_size {min(int(max_body_bytes), 1024 * 1024)};
    client_header_timeout {int(client_timeout_s)}s;
    client_body_timeout {int(client_timeout_s)}s;
    send_timeout {int(client_timeout_s)}s;
    keepalive_timeout 15s;
    large_client_header_buffers 4 {HEADER_BUFFER};
    proxy_request_buffering on;
    proxy_buffering on;
    upstream service {{
{servers}
{f"        keepalive {int(keepalive)};" if keepalive else ""}
    }}
    server {{
        listen {listen};
{chr(10).join(pages)}
{chr(10).join(locations)}
{health}        location / {{
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection {'""' if keepalive else "close"};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
{retry}            proxy_connect_timeout 2s;
            proxy_read_timeout {int(read_timeout_s)}s;
            proxy_send_timeout {int(read_timeout_s)}s;
        }}
    }}
}}
"""


def command(nginx: str, folder: str | Path, conf: str | Path) -> list[str]:
    """The command that runs nginx in the foreground (``daemon off``) with ``conf``, its prefix ``folder`` and its
    messages on stderr (not the system's log folder: it may not be writable)."""
    return [nginx, "-p", str(folder), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"]


def new_folder(prefix: str = "aml-nginx-", parent: str | Path | None = None, private: bool = False) -> Path:
    """A new folder for nginx's configuration, PID and temporary files (and a service's socket): traversable by
    other local users (nginx's workers), or with ``private`` owned by nginx's worker account and closed to others
    (what holds a Unix socket only nginx may reach). Short paths: a Unix socket path has at most 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if private:
        folder.chmod(0o700)
        user = worker_user()
        if user is not None:  # root: the workers run as nobody and must reach the socket
            shutil.chown(folder, user.split()[0])
    else:
        folder.chmod(0o755)
    return folder


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """In nginx's process before exec: SIGTERM (nginx's fast shutdown) when its parent dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_started(proc: subprocess.Popen, folder: str | Path, timeout: float = 10.0) -> None:
    """Until nginx (``proc``, prefix ``folder``) has written its PID file, which it does once it holds its listening
    sockets; :class:`NginxError` when it exits first (a port it cannot take: after its five tries, ~2.5 s) or
    ``timeout`` passes. (Not a test connection: another process on the port would answer it.)"""
    pid_file = Path(folder) / "nginx.pid"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise NginxError(f"nginx exited with code {proc.returncode} while starting (its messages are above)")
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file.read_text().split()[0]) == proc.pid:
                return
        if time.monotonic() >= deadline:
            raise NginxError(f"nginx did not start within {timeout:g} s")
        time.sleep(0.05)


def remove_stale(parent: str | Path | None = None, grace_s: float = 60.0) -> list[Path]:
    """Remove the folders :class:`FrontProxy` left in ``parent`` (default: the system's temporary folder) when its
    process was killed before it could (``kill -9``, or a supervisor's SIGKILL after its stop timeout): those whose
    owner process (``owner.pid``) no longer runs, or without that file and older than ``grace_s`` (one being
    created now has it within milliseconds). Returns what was removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(FRONT_PREFIX + "*"):
        try:
            pid = int((folder / OWNER_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        try:
            if pid is not None:
                try:
                    os.kill(pid, 0)
                    continue  # still running (or the PID was reused: left alone)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue  # another user's process
            elif time.time() - folder.stat().st_mtime < grace_s:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


class FrontProxy:
    """nginx on ``host:port`` in front of a service listening on the Unix socket :attr:`socket_path`, run as a
    child of this process: :meth:`start` (returns once nginx listens), :meth:`stop` (idempotent, by PID).

    nginx's messages go to this process's stderr. It gets SIGTERM when this process dies (even by SIGKILL), and
    ``on_exit`` (e.g. stopping gunicorn's master) runs in a watcher thread when nginx exits unasked: a front end
    without its proxy must not keep running unreachable."""

    def __init__(
        self,
        host: str,
        port: int,
        max_body_bytes: int,
        read_timeout_s: int = 600,
        client_timeout_s: int = CLIENT_TIMEOUT_S,
        parent: str | Path | None = None,
    ):
        nginx = binary()
        if nginx is None:
            raise NginxError(f"nginx not found ({INSTALL_HINT})")
        self.nginx, self.host, self.port = nginx, host, int(port)
        self.max_body_bytes, self.read_timeout_s, self.client_timeout_s = (
            max_body_bytes,
            read_timeout_s,
            client_timeout_s,
        )
        self.parent = parent
        self.folder: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.owner = os.getpid()
        self._stopping = threading.Event()
        #: set when nginx exited without being asked to (the watcher saw it)
        self.died = threading.Event()

    @property
    def socket_path(self) -> Path:
        """Where the service must listen (``unix:<this>``), inside the proxy's private folder."""
        if self.folder is None:
            raise RuntimeError("the proxy is not started")
        return self.folder / "service.sock"

    def config(self) -> str:
        """This proxy's ``nginx.conf`` (:func:`config`)."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return config(
            f"{host}:{self.port}",
            [f"unix:{self.socket_path}"],
            self.folder,
            max_body_bytes=self.max_body_bytes,
            user=worker_user(),
            client_timeout_s=self.client_timeout_s,
            read_timeout_s=self.read_timeout_s,
            comment="generated by aml.core.nginx.FrontProxy: nginx in front of gunicorn (aml.core.web.run_gunicorn)",
        )

    def prepare(self) -> Path:
        """Create the private folder (idempotent; the folders of front proxies whose process is gone are removed
        first: :func:`remove_stale`); returns :attr:`socket_path`, where the service may now bind."""
        if self.folder is None:
            remove_stale(self.parent)
            self.folder = new_folder(FRONT_PREFIX, self.parent, private=True)
            (self.folder / OWNER_FILE).write_text(f"{self.owner}\n")
        return self.socket_path

    def start(self, timeout: float = 10.0, on_exit=None) -> FrontProxy:
        """Write the configuration, start nginx and wait until it listens; :class:`NginxError` (with nginx's
        messages on stderr) when it does not. Best called once the service listens on :attr:`socket_path`
        (:meth:`prepare`), so that no request finds nobody behind nginx. ``on_exit()``: called from a watcher thread
        if nginx exits while not being stopped."""
        if self.proc is not None:
            raise RuntimeError("already started")
        self.prepare()
        conf = self.folder / "nginx.conf"
        conf.write_text(self.config())
        try:
            self.proc = subprocess.Popen(
                command(self.nginx, self.folder, conf), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
            )
            wait_started(self.proc, self.folder, timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "nginx (pid %d) listens on %s:%d in front of %s", self.proc.pid, self.host, self.port, self.socket_path
        )
        threading.Thread(target=self._watch, args=(on_exit,), name="front-proxy-watch", daemon=True).start()
        return self

    def _watch(self, on_exit) -> None:
        code = self.proc.wait()
        if not self._stopping.is_set():
            self.died.set()
            log.error(
                "nginx (the front proxy, pid %d) exited with code %s: the service is unreachable", self.proc.pid, code
            )
            if on_exit is not None:
                on_exit()

    def alive(self) -> bool:
        """True while nginx runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop nginx (SIGTERM, its fast shutdown, which ends its workers too; SIGKILL after ``timeout``) and remove
        its folder. Only the process that started it stops it (a forked worker calling this does nothing)."""
        if os.getpid() != self.owner:
            return
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


__all__ = [
    "CLIENT_TIMEOUT_S",
    "ERROR_PREFIX",
    "ERROR_STATUSES",
    "INSTALL_HINT",
    "FrontProxy",
    "NginxError",
    "binary",
    "command",
    "config",
    "error_body",
    "error_messages",
    "new_folder",
    "no_proxy_unless_installed",
    "remove_stale",
    "wait_started",
    "worker_user",
]
