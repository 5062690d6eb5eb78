"""Load tests with ``wrk`` (Debian package ``wrk``): requests per second and latency percentiles of an HTTP endpoint.

Why wrk: a load generator written in Python (``aml.ops.http_client.load_test``) spends more CPU per request than
a small Flask endpoint does, and on a 2-core machine it competes with the server it measures. wrk is C, event-driven
and the field's standard for this measurement. This module only writes its Lua request script, runs it, and parses
its ``--latency`` report into numbers (wrk has no machine-readable output); nothing here generates load itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_COUNT = {"": 1.0, "k": 1e3, "m": 1e6}


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed a report this module cannot read."""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise WrkError(f"cannot read the duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """The numbers of a ``wrk --latency`` report: ``requests``, ``seconds``, ``requests_per_s``, ``latency_ms``
    (``mean`` and the ``p50``/``p75``/``p90``/``p99`` percentiles), ``non_2xx`` and ``socket_errors``."""
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    mean = re.search(r"Latency\s+([\d.]+\w+)\s", output)
    if not (total and rate and mean):
        raise WrkError(f"not a wrk report:\n{output[-800:]}")
    percentiles = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)}
    if not percentiles:
        raise WrkError("the report has no latency distribution: run wrk with --latency")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": int(total.group(1)),
        "seconds": _ms(total.group(2)) / 1000.0,
        "requests_per_s": float(rate.group(1)),
        "latency_ms": {"mean": _ms(mean.group(1)), **percentiles},
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def _lua_string(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not text.isascii():  # json.dumps would write \uXXXX escapes, which Lua 5.1 (wrk's LuaJIT) does not read
        raise ValueError("wrk bodies must be ASCII: send JSON written with ensure_ascii=True")
    return json.dumps(text)  # an ASCII JSON string literal is a valid Lua string literal


def request_script(
    method: str = "GET",
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    bodies: Sequence[str | bytes] | None = None,
) -> str:
    """A wrk Lua script that sends every request with ``method``, ``body`` and ``headers``; with ``bodies``, each
    request sends the next of them in turn (each wrk thread cycles through the list from its own starting point),
    e.g. a mix of messages whose cost differs."""
    lines = [f"wrk.method = {json.dumps(method.upper())}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for key, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}")
    if bodies:
        lines.append("local bodies = {" + ", ".join(_lua_string(b) for b in bodies) + "}")
        lines += [
            "local counter = 0",
            "local next_id = 0",
            "function setup(thread) thread:set('offset', next_id * 7919); next_id = next_id + 1 end",
            "function init(args) counter = (offset or 0) end",
            "function request()",
            "  counter = counter + 1",
            "  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])",
            "end",
        ]
    return "\n".join(lines) + "\n"


def run_wrk(
    url: str,
    connections: int = 16,
    threads: int = 2,
    seconds: float = 10.0,
    method: str = "GET",
    body: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    bodies: Sequence[str | bytes] | None = None,
) -> dict:
    """Run ``wrk --latency`` against ``url`` (loopback only) and return :func:`parse_wrk`'s numbers plus the
    settings (``bodies``: send these in turn, see :func:`request_script`)."""
    if not re.match(r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", url):
        raise ValueError(f"load tests run against loopback addresses only, got {url}")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(request_script(method, body, headers, bodies))
        command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout_s:g}s"]
        done = subprocess.run(
            [*command, "--latency", "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60
        )
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    result = parse_wrk(done.stdout)
    return {**result, "connections": connections, "threads": threads, "duration_s": seconds, "url": url}
