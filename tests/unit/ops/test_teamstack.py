"""The team-scale parts, each started for real and stopped by its PID: PostgreSQL, moto's S3 server (with the data
store on it, across a fork as gunicorn does), nginx in front of two replicas (one of them killed), and the errors
that name a part that did not start. The whole stack with MLflow and the project's service is
``project/test/integration_scale.py``. Without PostgreSQL or nginx these tests skip, and fail under ``CI=true``."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest
import requests

from aml.devtools import testenv
from aml.mlops.datastore import DataStore
from aml.ops import teamstack

STATIC = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]


def gone(pid: int) -> bool:
    """True when no process (not even a zombie) has ``pid``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def require(*what: str) -> None:
    lacking = [m for m in teamstack.missing() if any(w in m for w in what)]
    if lacking:
        testenv.skip_or_fail(f"the team stack needs {', '.join(lacking)}")


def test_nginx_config_retries_on_the_next_replica(tmp_path):
    conf = teamstack.nginx_config(8080, ["127.0.0.1:9001", "127.0.0.1:9002"], tmp_path, user="nobody nogroup")
    assert "listen 127.0.0.1:8080;" in conf and "user nobody nogroup;" in conf
    assert "server 127.0.0.1:9001 max_fails=1 fail_timeout=2s;" in conf and "server 127.0.0.1:9002" in conf
    assert "proxy_next_upstream error timeout non_idempotent;" in conf and "proxy_next_upstream_tries 2;" in conf
    assert f"pid {tmp_path / 'nginx.pid'};" in conf and f"proxy_temp_path {tmp_path / 'proxy_temp'};" in conf
    assert "user" not in teamstack.nginx_config(8080, ["127.0.0.1:9001"], tmp_path).split("worker_processes")[0]
    with pytest.raises(ValueError, match="at least one upstream"):
        teamstack.nginx_config(8080, [], tmp_path)


def test_missing_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("AML_PG_BIN", str(tmp_path))
    monkeypatch.setenv("AML_NGINX", str(tmp_path / "no-nginx"))
    monkeypatch.setattr(teamstack.shutil, "which", lambda name: None)
    lacking = " ".join(teamstack.missing())
    assert "apt-get install nginx" in lacking
    assert teamstack.postgres_bin() == tmp_path  # AML_PG_BIN wins; postgres() then says what is missing there
    with pytest.raises(teamstack.StackError, match="PostgreSQL did not start: no initdb"):
        with teamstack.postgres():
            pass


def test_a_server_that_does_not_start_is_named_with_its_log():
    with pytest.raises(teamstack.StackError, match="replica 1 of 1 did not start") as caught:
        with teamstack.replicas([sys.executable, "-c", "print('boom: bad settings')"], 1, timeout=10):
            pass
    assert "boom: bad settings" in str(caught.value)


def test_postgres_starts_checks_passwords_and_stops_by_pid():
    require("PostgreSQL", "psycopg2")
    import psycopg2

    started = time.monotonic()
    with teamstack.postgres() as cluster:
        assert time.monotonic() - started < 30
        pid, runner, folder = cluster.pid, cluster.process.proc.pid, cluster.folder
        assert pid and not gone(pid) and cluster.ready()
        url = cluster.create_database("mlflow")
        assert url.startswith("postgresql+psycopg2://mlflow:") and url.endswith(f"@127.0.0.1:{cluster.port}/mlflow")
        password = url.split(":")[2].split("@")[0]
        conn = cluster.connect("mlflow", "mlflow", password)
        with conn.cursor() as cur:
            cur.execute("select current_user, current_database()")
            assert cur.fetchone() == ("mlflow", "mlflow")
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            cluster.connect("mlflow", "mlflow", "wrong")
    assert gone(pid) and gone(runner) and not folder.exists()


def read_in_child(store: DataStore, path: str, queue) -> None:
    try:
        queue.put(store.read_text(path))
    except Exception as exc:  # reported to the parent, which fails the test with it
        queue.put(f"{type(exc).__name__}: {exc}")


def test_s3_server_holds_the_data_store_also_after_a_fork():
    require("moto", "s3fs")
    with teamstack.s3_server(["aml-unit"]) as s3:
        pid = s3.process.proc.pid
        assert s3.env()["AWS_ENDPOINT_URL"] == s3.url and s3.url.startswith("http://127.0.0.1:")
        store = DataStore("s3://aml-unit/data", storage_options=s3.storage_options())
        store.write_text("raw/x/hello.txt", "hello")  # the parent uses the file system first, as gunicorn's master
        assert s3.keys("aml-unit") == ["data/raw/x/hello.txt"]
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=read_in_child, args=(store, "raw/x/hello.txt", queue))
        child.start()
        child.join(30)
        assert queue.get(timeout=5) == "hello"  # s3fs alone: "RuntimeError: This class is not fork-safe"
    assert gone(pid)


def test_the_balancer_passes_requests_on_when_a_replica_dies(tmp_path):
    require("nginx")
    (tmp_path / "index.html").write_text("replica")
    with teamstack.replicas(STATIC, 2, cwd=tmp_path, path="/") as servers:
        with teamstack.balancer([s.url for s in servers]) as lb:
            nginx_pid, folder = lb.process.proc.pid, lb.folder
            assert requests.get(lb.url + teamstack.BALANCER_HEALTH, timeout=10).text == "ok\n"
            assert all(requests.get(lb.url + "/", timeout=10).text == "replica" for _ in range(4))
            victim = servers[0]
            teamstack.kill(victim)
            assert not victim.alive()
            answers = [requests.get(lb.url + "/", timeout=10).status_code for _ in range(20)]
            assert answers == [200] * 20  # the dead replica's turns go to the other one
        assert gone(nginx_pid) and not folder.exists()
    assert all(gone(s.proc.pid) for s in servers)


def test_the_servers_folders_are_reachable_by_other_users(tmp_path):
    """Under root, PostgreSQL runs as ``postgres`` and nginx's workers as ``nobody``: their folders must let them in."""
    folder = teamstack._new_folder("aml-unit-", tmp_path)
    assert folder.parent == tmp_path and oct(folder.stat().st_mode & 0o777) == "0o755"
    os.rmdir(folder)
