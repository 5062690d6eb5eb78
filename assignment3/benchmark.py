"""Load benchmark of the scoring service (not a test): ``make bench`` or ``python assignment3/benchmark.py``.

In one run, on this machine:

1. the in-process rate: ``score()`` called back to back in one thread (the model loaded once, as in the service);
2. the production server — ``python app.py --server gunicorn``: gunicorn's ``gthread`` workers, one per core by
   default (``--workers``), the model preloaded, on 127.0.0.1 only — under
   a bounded load from 1 and from 16 concurrent clients (``aml.ops.http_client.load_test``: each run stops after
   ``--requests`` requests or ``--seconds`` seconds): requests/s, p50/p99 latency, errors;
3. the ratio served requests/s ÷ in-process calls/s (goal ≥ 0.6 with as many workers as cores, zero errors).

The load generator runs on the same cores as the server, so the figures are a lower bound for the server alone.
Results are printed as a Markdown table (for ``assignment3/README.md``) and recorded in ``build/metrics.json``
under ``assignment3.benchmark``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from aml.core import reporting
from aml.devtools import fixtures
from aml.ops import http_client, procs
from aml.spam.scoring import score_text

HERE = Path(__file__).resolve().parent
TEXTS = [*fixtures.SPAM_EXAMPLES, *fixtures.HAM_EXAMPLES]


def gunicorn_command(workers: int) -> list[str]:
    """The production command line (see the README), run from this folder; ``{port}`` is filled in by
    ``procs.serve``."""
    return [sys.executable, "app.py", "--server", "gunicorn", "--workers", str(workers), "--host", "127.0.0.1",
            "--port", "{port}"]  # fmt: skip


def run(workers: int, clients: list[int], max_requests: int, max_seconds: float) -> dict:
    model, meta = fixtures.ensure_model()
    threshold = float(meta["threshold"])
    in_process = http_client.call_rate(score_text, [(t, model, threshold) for t in TEXTS], max_calls=max_requests,
                                   max_seconds=max_seconds)  # fmt: skip
    print(f"in-process score(): {in_process:.0f} calls/s (one thread)", flush=True)
    results = []
    with procs.serve(gunicorn_command(workers), cwd=HERE, timeout=120) as server:
        for n in clients:
            result = http_client.load_test(
                f"{server.url}/score",
                [{"text": t} for t in TEXTS],
                clients=n,
                max_requests=max_requests,
                max_seconds=max_seconds,
                warmup=2,
            )
            print(f"{n:>2} clients: {result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                  f"p99 {result.p99_ms:.1f} ms, {result.errors} errors", flush=True)  # fmt: skip
            results.append(result.as_dict())
    best = max(r["requests_per_s"] for r in results)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": meta.get("model"),
        "workers": workers,
        "in_process_calls_per_s": in_process,
        "served": results,
        "ratio_served_to_in_process": best / in_process,
        "errors": sum(r["errors"] for r in results),
    }


def markdown(figures: dict) -> str:
    lines = [
        f"gunicorn, {figures['workers']} gthread workers, 127.0.0.1; {figures['machine']}; model {figures['model']}",
        "",
        "| clients | requests | req/s | p50 latency | p99 latency | errors | served ÷ in-process |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in figures["served"]:
        ratio = r["requests_per_s"] / figures["in_process_calls_per_s"]
        lines.append(
            f"| {r['clients']} | {r['requests']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} ms | "
            f"{r['p99_ms']:.1f} ms | {r['errors']} | {ratio:.2f} |"
        )
    lines.append(f"| in-process `score()` | | {figures['in_process_calls_per_s']:.0f} calls/s | | | | 1 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers (default: cores)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=3000, help="at most this many requests per run")
    parser.add_argument("--seconds", type=float, default=15.0, help="at most this long per run")
    parser.add_argument("--no-record", action="store_true", help="do not write build/metrics.json")
    args = parser.parse_args(argv)
    figures = run(args.workers, args.clients, args.requests, args.seconds)
    print()
    print(markdown(figures))
    print(f"\nratio served/in-process: {figures['ratio_served_to_in_process']:.2f} (goal >= 0.6), "
          f"errors: {figures['errors']} (goal 0)")  # fmt: skip
    if not args.no_record:
        print(f"recorded in {reporting.record_metrics('assignment3', {'benchmark': figures})}")
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
