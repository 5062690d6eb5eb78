import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from aml.ops import procs

HTTP_SERVER = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"]


def test_free_port_can_be_bound():
    port = procs.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_http_status_of_nothing_is_none():
    assert procs.http_status(f"http://127.0.0.1:{procs.free_port()}/") is None


def test_serve_launches_waits_and_stops(tmp_path):
    (tmp_path / "hello.txt").write_text("hi")
    with procs.serve(HTTP_SERVER, path="/hello.txt", cwd=tmp_path, timeout=20) as server:
        assert server.alive() and server.url == f"http://127.0.0.1:{server.port}"
        assert procs.http_status(server.url + "/hello.txt") == 200
        assert procs.http_status(server.url + "/missing") == 404  # an error status is an answer too
        assert str(server.port) in server.command
        process, log = server.proc, server.log_path
    assert process.poll() is not None and not server.alive()
    assert not log.exists(), "the log is deleted unless keep_log"


def test_serve_stops_the_server_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with procs.serve(HTTP_SERVER, path="/", cwd=tmp_path) as server:
            process = server.proc
            raise RuntimeError("boom")
    assert process.poll() is not None


def test_serve_substitutes_env_and_keeps_the_log(tmp_path):
    code = "import os, sys; print('port', os.environ['MY_PORT']); sys.argv = ['x', os.environ['MY_PORT']]; "
    code += "import runpy; runpy.run_module('http.server', run_name='__main__')"
    with procs.serve(
        [sys.executable, "-c", code], path="/", cwd=tmp_path, env={"MY_PORT": "{port}"}, keep_log=True
    ) as s:
        port = s.port
    assert f"port {port}" in s.log()
    assert len(s.log(lines=1).splitlines()) == 1
    s.log_path.unlink()


def test_serve_reports_a_server_that_dies_with_its_log(tmp_path):
    with pytest.raises(procs.ServerError, match=r"exited before answering(.|\n)*no model here"):
        with procs.serve([sys.executable, "-c", "import sys; sys.exit('no model here')"], cwd=tmp_path, timeout=20):
            pass  # pragma: no cover


def test_serve_retries_when_the_port_was_taken(tmp_path, monkeypatch):
    """Another process grabs the chosen port before the server binds it: the launch is retried on a new port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy, procs.free_port()])
        monkeypatch.setattr(procs, "free_port", lambda host="127.0.0.1": next(ports))
        with procs.serve(HTTP_SERVER, path="/", cwd=tmp_path, timeout=20) as server:
            assert server.port != busy
        with pytest.raises(procs.ServerError):  # a fixed port is not retried
            with procs.serve(HTTP_SERVER, path="/", cwd=tmp_path, port=busy, timeout=20):
                pass  # pragma: no cover


def test_wait_for_http_times_out_and_checks_arguments():
    url = f"http://127.0.0.1:{procs.free_port()}/"
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not answer"):
        procs.wait_for_http(url, timeout=0.3)
    assert time.monotonic() - start < 5
    with pytest.raises(procs.ServerError, match="exited"):
        procs.wait_for_http(url, timeout=30, alive=lambda: False)
    with pytest.raises(ValueError, match="positive"):
        procs.wait_for_http(url, timeout=0)


def test_stop_process_kills_a_server_that_ignores_sigterm():
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    start = time.monotonic()
    assert procs.stop_process(proc, timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - start < 5
    assert procs.stop_process(proc) == -signal.SIGKILL  # idempotent
    proc.stdout.close()


def test_server_process_misuse(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        procs.ServerProcess([], port=1)
    server = procs.ServerProcess([sys.executable, "-c", "pass"], port=procs.free_port(), cwd=tmp_path)
    assert server.stop() is None  # never started: nothing to stop
    with server.start():
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    assert server.proc.poll() is not None  # stopped on leaving the block
    server.log_path.unlink()


def test_a_started_server_is_stopped_when_the_interpreter_exits(tmp_path):
    """A child interpreter starts a server and exits without stopping it (a notebook that failed half-way): the
    server must not outlive it."""
    pid_file = tmp_path / "pid"
    script = (
        "import sys\n"
        "from aml.ops import procs\n"
        "server = procs.ServerProcess([sys.executable, '-m', 'http.server', '{port}', '--bind', '127.0.0.1'],"
        " procs.free_port()).start()\n"
        "server.wait_ready('/', timeout=30)\n"
        f"open({str(pid_file)!r}, 'w').write(str(server.proc.pid))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_stopped_server_leaves_no_exit_handler():
    """Stopping unregisters the exit-time stop: a worker that starts many servers keeps none of them (nor, at its
    exit, their reaped PIDs) once they are stopped, so a stopped server is freed."""
    import gc
    import weakref

    server = procs.ServerProcess(
        [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"], procs.free_port()
    )
    server.start()
    log, alive = server.log_path, weakref.ref(server)
    server.stop()
    del server
    gc.collect()
    assert alive() is None
    log.unlink()
