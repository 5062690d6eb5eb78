"""The team stack on this machine, for people: ``python project/scale/stack.py`` starts PostgreSQL, an S3 server
(moto), an MLflow server on both, and (``--replicas N``, default 2) N replicas of the project's service behind an
nginx balancer, all on free 127.0.0.1 ports; prints the environment the service and its clients use; and runs until
Ctrl-C (or SIGTERM), then stops everything by PID. ``--env-file FILE`` also writes that environment to ``FILE``
(mode 0600) for ``set -a; . FILE; set +a``. ``--replicas 0`` starts the stores only (run ``python src/app.py``
yourself with the printed environment). ``--spark-workers N`` also starts a Spark standalone cluster (a master and N
workers, separate JVMs, each ``--spark-cores`` cores and ``--spark-memory``; :mod:`aml.ops.sparkcluster`) and
exports its URL as ``AML_SPARK_MASTER``, which ``python -m aml.project.spark`` submits to. The parts and their
choices: :mod:`aml.ops.teamstack`; the
configuration, difference from the laptop and figures: ``README.md``, "Team scale".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path

from aml.ops import sparkcluster, teamstack

PROJECT = Path(__file__).resolve().parents[1]
# --no-proxy: the balancer in front of the replicas already reads requests whole (aml.core.nginx)
SERVICE = [sys.executable, "src/app.py", "--server", "gunicorn", "--no-proxy", "--port", "{port}", "--workers", "2"]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="service replicas behind the balancer (0: none)")
    parser.add_argument("--bucket", default=teamstack.BUCKET, help="the S3 bucket (data/, mlflow/, dvc/)")
    parser.add_argument("--token", default=os.environ.get("AML_API_TOKEN"), help="API token (default: a new one)")
    parser.add_argument("--env-file", type=Path, help="also write the environment to this file (mode 0600)")
    parser.add_argument("--check", action="store_true", help="start, print, check /health, stop (no waiting)")
    parser.add_argument("--spark-workers", type=int, default=0, help="Spark standalone workers (0: no cluster)")
    parser.add_argument("--spark-cores", type=int, default=1, help="cores of each Spark worker")
    parser.add_argument("--spark-memory", default="1g", help="memory of each Spark worker (512m, 2g)")
    args = parser.parse_args(argv)
    if args.replicas < 0:
        parser.error("--replicas must be 0 or more")
    if args.spark_workers < 0 or args.spark_cores < 1:
        parser.error("--spark-workers must be 0 or more and --spark-cores at least 1")
    return args


def exports(env: dict[str, str]) -> str:
    """``export NAME=value`` lines, quoted for a POSIX shell."""
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items()))


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The environment as ``NAME=value`` lines in a new owner-only file (it holds the token)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(env.items())))


def main(argv: list[str] | None = None) -> int:
    """Start the stack, print how to use it, wait for Ctrl-C or SIGTERM, stop everything; 1 when a part fails to
    start (the message names it)."""
    args = parse(argv)
    missing = teamstack.missing(balancer=args.replicas > 0)
    if missing:
        print(f"error: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SystemExit unwinds the with-blocks: everything stops
    token = args.token or secrets.token_urlsafe(32)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            print("starting PostgreSQL, the S3 server and MLflow ...", flush=True)
            team = stack.enter_context(teamstack.team_stack(bucket=args.bucket))
            env = team.service_env(token)
            cluster = None
            if args.spark_workers:
                print(f"starting a Spark master and {args.spark_workers} worker(s) ...", flush=True)
                cluster = stack.enter_context(
                    sparkcluster.standalone(args.spark_workers, args.spark_cores, args.spark_memory)
                )
                env["AML_SPARK_MASTER"] = cluster.url
            address = None
            if args.replicas:
                print(f"starting {args.replicas} service replicas and the balancer ...", flush=True)
                servers = stack.enter_context(teamstack.replicas(SERVICE, args.replicas, cwd=PROJECT, env=env))
                address = stack.enter_context(teamstack.balancer([s.url for s in servers])).url
            print(f"\nup in {time.perf_counter() - started:.0f} s")
            for part, where in {**team.describe(), **(cluster.describe() if cluster else {})}.items():
                print(f"  {part:11} {where}")
            if address:
                print(f"  {'service':11} {address} (nginx) -> {', '.join(s.url for s in servers)}")
            print("\n# the service's environment (clients need only the service's address and the token):")
            print(exports(env))
            if address:
                print(
                    f'\n# then: curl -s {address}/health; curl -s -X POST {address}/prepare -H "Authorization: Bearer $AML_API_TOKEN"'
                )
            if args.env_file:
                write_env_file(args.env_file, env)
                print(f"\n(written to {args.env_file})")
            if args.check:
                if address:
                    import requests

                    print("health:", requests.get(f"{address}/health", timeout=30).json()["status"])
                return 0
            print("\nrunning; Ctrl-C stops everything", flush=True)
            while True:
                time.sleep(3600)
    except (teamstack.StackError, sparkcluster.ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
