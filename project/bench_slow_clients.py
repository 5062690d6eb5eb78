"""Benchmark of the project's service under slow clients (not a test): ``make bench`` or
``python project/bench_slow_clients.py [--seconds 60] [--connections 200]``.

Over fresh stores in a temporary folder (prepare + one training first, in process), the production server
(``python src/app.py --server gunicorn``, 2 workers × 8 threads) is started twice: behind nginx (the default,
:mod:`aml.core.nginx`) and, as the before figure, plain gunicorn (``--no-proxy``). Against each, for ``--seconds``:
``--connections`` slow clients trickle their headers (one more header line a second, never the end of the header),
then as many trickle their bodies (one byte a second of a 60,000-byte JSON body)
(:class:`aml.ops.slowclients.SlowClients`), while two normal clients score one SMS online after another
(``POST /score``, keep-alive, a request that takes over 5 s counts as an error). Printed: the normal clients'
requests, req/s, p50 and p99 of the answered ones, errors, and how many slow connections were open at the end.
Aim (issue 22): behind nginx, p99 < 100 ms and 0 errors with 200 slow connections for 60 s.

The slow clients, the normal clients, nginx and gunicorn share the machine's cores, so the figures are a lower
bound. Results are printed as a Markdown table and recorded in ``build/metrics.json`` under
``project.slow_clients``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from aml.core import nginx, reporting
from aml.devtools import testenv
from aml.mlops import tracking
from aml.mlops.datastore import DataStore
from aml.ops import procs, slowclients
from aml.project import system

HERE = Path(__file__).resolve().parent
TOKEN = "benchmark-token"
COMMAND = [sys.executable, "src/app.py", "--server", "gunicorn", "--port", "{port}", "--workers", "2"]
SETUPS = {"gunicorn behind nginx": [], "plain gunicorn (--no-proxy)": ["--no-proxy"]}
SPAM = {"text": "WINNER! You have won a free prize, call 09061701461 now"}


def measure(env: dict, extra: list[str], connections: int, seconds: float) -> dict:
    """The probes' figures under each kind of slow client, against one start of the service."""
    figures = {}
    with procs.serve([*COMMAND, *extra], cwd=HERE, env=env, timeout=120) as server:
        slowclients.probe_under_slow_clients(f"{server.url}/score", SPAM, connections=1, seconds=1.0)  # warm up
        for mode in slowclients.MODES:
            figures[mode] = slowclients.probe_under_slow_clients(
                f"{server.url}/score", SPAM, connections=connections, seconds=seconds, modes=(mode,), timeout=5.0
            )
            print(f"  {mode}: {_row(figures[mode], mode)}", flush=True)
    return figures


def _row(result: dict, mode: str) -> str:
    held = result["slow"][mode]
    p50 = "-" if result["p50_ms"] != result["p50_ms"] else f"{result['p50_ms']:.1f} ms"
    p99 = "-" if result["p99_ms"] != result["p99_ms"] else f"{result['p99_ms']:.1f} ms"
    return (
        f"{result['requests']:,} requests, {result['requests_per_s']:,.0f} req/s, p50 {p50}, p99 {p99}, "
        f"{result['errors']:,} errors; slow connections open at the end: {held['open']}/{held['connections']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the slow clients hold on (each mode)")
    parser.add_argument("--connections", type=int, default=200, help="slow connections (each mode)")
    args = parser.parse_args(argv)
    if nginx.binary() is None:
        print(f"error: the benchmark needs nginx ({nginx.INSTALL_HINT})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="aml-slow-bench-") as tmp:
        env = testenv.project_environment(Path(tmp), TOKEN)
        with tracking.using(env["MLFLOW_TRACKING_URI"], "sms-spam-filter-project"):
            store = DataStore(env["AML_DATA_STORE"])
            system.prepare(store)
            system.train(store, system.TrainConfig(params={"C": 1.0}))
        results = {}
        for name, extra in SETUPS.items():
            print(f"{name}: {args.connections} slow clients per mode, {args.seconds:g} s each", flush=True)
            results[name] = measure({**os.environ, **env}, extra, args.connections, args.seconds)
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "connections": args.connections,
        "seconds": args.seconds,
        **{("proxy" if not extra else "no_proxy"): results[name] for name, extra in SETUPS.items()},
    }
    print(f"\n{figures['date']}, {figures['machine']}\n")
    print("| server | slow clients | online `POST /score` (2 keep-alive clients) |\n| --- | --- | --- |")
    for name in SETUPS:
        for mode in slowclients.MODES:
            kind = f"{args.connections} trickling {'headers' if mode == 'headers' else 'bodies'} for {args.seconds:g} s"
            print(f"| {name} | {kind} | {_row(results[name][mode], mode)} |")
    reporting.record_metrics("project", {"slow_clients": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
