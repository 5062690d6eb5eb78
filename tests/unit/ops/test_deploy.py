"""Unit tests of aml.ops.deploy and the post-receive hook that runs it.

Real commands wherever they can run here: the tests and the build are real subprocesses in a scratch "pushed tree"
(its ``project/test/units.py`` passes or fails, its ``project/image.py`` is a stub that records its arguments), the
health check is real HTTP against real server processes, and the hook runs in a real bare repository. Only the
container engine is replaced, by :class:`FakeEngine`, whose "containers" are local HTTP server processes (a container
of the image ``broken`` exits at once). The real engine is exercised by ``project/test/integration_container.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aml.devtools import hooks
from aml.ops import containers, deploy, procs
from aml.ops.http_client import http_status

ROOT = Path(__file__).resolve().parents[3]
POST_RECEIVE = ROOT / "project" / "hooks" / "post-receive"
PASSING = "def test_config_ok():\n    assert True\n"
FAILING = "def test_config_broken():\n    assert 1 + 1 == 3\n"
IMAGE_STUB = """\
import pathlib, sys
pathlib.Path(__file__).with_name("built.txt").write_text(" ".join(sys.argv[1:]))
print("stub build", *sys.argv[1:])
sys.exit({code})
"""


def make_tree(path: Path, test: str = PASSING, build_code: int = 0) -> Path:
    (path / "project" / "test").mkdir(parents=True)
    (path / "project" / "test" / "units.py").write_text(test)
    (path / "project" / "image.py").write_text(IMAGE_STUB.format(code=build_code))
    return path


class FakeEngine:
    """Records each call; a "container" is an HTTP server process answering ``/health`` on the deployment's port."""

    def __init__(self, workdir: Path, port: int):
        self.workdir, self.port = workdir, port
        self.calls: list[tuple] = []
        self.fail_stop = False  # `stop` raises, as a real engine's might
        self.boxes: dict[str, dict] = {}  # id -> {"name", "image", "proc"}
        (workdir / "www").mkdir(exist_ok=True)
        (workdir / "www" / "health").write_text("ok\n")

    def _spawn(self, image: str) -> subprocess.Popen:
        if image == "broken":
            command = [sys.executable, "-c", "raise SystemExit('cannot start')"]
        else:
            command = [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]
            command += ["--directory", str(self.workdir / "www")]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if image != "broken":
            procs.wait_for_http(f"http://127.0.0.1:{self.port}/health", timeout=10, alive=lambda: proc.poll() is None)
        return proc

    def add(self, name: str, image: str) -> str:
        """A container that runs before the deployment (not recorded)."""
        cid = f"{name}-{len(self.boxes)}-id"
        self.boxes[cid] = {"name": name, "image": image, "proc": self._spawn(image)}
        return cid

    def _find(self, ref: str) -> str | None:
        return next((cid for cid, box in self.boxes.items() if ref in (cid, box["name"])), None)

    def state(self, name):
        self.calls.append(("state", name))
        cid = self._find(name)
        if cid is None:
            return None
        box = self.boxes[cid]
        running = box["proc"] is not None and box["proc"].poll() is None
        return {"id": cid, "name": box["name"], "image": box["image"], "running": running, "started_at": "t"}

    def rename(self, container, new_name):
        self.calls.append(("rename", container, new_name))
        self.boxes[self._find(container)]["name"] = new_name

    def stop(self, container):
        self.calls.append(("stop", container))
        if self.fail_stop:
            raise containers.ContainerError(f"`podman stop {container}` failed with exit code 125")
        procs.stop_process(self.boxes[self._find(container)]["proc"])

    def start(self, container):
        self.calls.append(("start", container))
        box = self.boxes[self._find(container)]
        box["proc"] = self._spawn(box["image"])

    def remove(self, container):
        self.calls.append(("remove", container))
        cid = self._find(container)
        if cid is not None:
            procs.stop_process(self.boxes.pop(cid)["proc"])

    def run(self, image, name, env, volumes, pass_env):
        self.calls.append(("run", image, name, dict(env), {str(k): v for k, v in volumes.items()}, list(pass_env)))
        cid = f"{name}-{len(self.boxes)}-id"
        self.boxes[cid] = {"name": name, "image": image, "proc": self._spawn(image)}
        return cid

    def image_id(self, image):
        return f"id-of-{image}"

    def remove_image(self, image):
        self.calls.append(("remove_image", image))
        return True

    def logs(self, container):
        return "Traceback: cannot start"

    def close(self):
        for box in self.boxes.values():
            if box["proc"] is not None:
                procs.stop_process(box["proc"])


@pytest.fixture(autouse=True)
def quick_pytest(monkeypatch):
    """The scratch trees' tests need none of this environment's pytest plugins (loading them takes seconds)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture
def engine(tmp_path):
    fake = FakeEngine(tmp_path, procs.free_port())
    yield fake
    fake.close()


def settings_for(tree: Path, engine: FakeEngine, tmp_path: Path, **changes) -> deploy.Settings:
    values = {
        "tree": tree,
        "commit": "0123456789abcdef",
        "name": "svc",
        "tag": "svc:new",
        "port": engine.port,
        "store": tmp_path / "store",
        "test_args": ["project/test/units.py", "-p", "no:cacheprovider"],
        "health_timeout": 10.0,
    }
    return deploy.Settings(**{**values, **changes})


def run_deploy(settings, engine) -> tuple[int, str]:
    lines: list[str] = []
    code = deploy.deploy(settings, engine, lines.append)
    return code, "\n".join(lines)


# -- settings ------------------------------------------------------------------------------------------------------


def test_parse_args_defaults(tmp_path):
    settings = deploy.parse_args(["--tree", str(tmp_path)], environ={"HOME": str(tmp_path / "home")})
    assert settings.tree == tmp_path.resolve() and settings.commit == ""
    assert (settings.name, settings.tag, settings.port, settings.host) == (
        "aml-spam-project",
        "aml-spam-project:latest",
        8000,
        "127.0.0.1",
    )
    assert settings.store == tmp_path / "home" / ".local/share/aml-deploy/aml-spam-project/store"
    assert settings.test_args == ["project/test/units.py"] and settings.pass_env == [] and not settings.skip_tests
    assert deploy.tests_command(settings)[1:] == [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "project/test/units.py",
    ]
    assert deploy.build_command(settings)[1:] == [
        str(tmp_path.resolve() / "project" / "image.py"),
        "--tag",
        "aml-spam-project:latest",
    ]


def test_parse_args_environment_then_command_line(tmp_path):
    env = {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "AML_DEPLOY_NAME": "blue",
        "AML_DEPLOY_PORT": "9000",
        "AML_DEPLOY_TEST_ARGS": "project/test/units.py -k 'config or prepare'",
        "AML_DEPLOY_PASS_ENV": "AML_API_TOKEN, OTHER ,",
        "AML_DEPLOY_HEALTH_TIMEOUT": "30",
    }
    settings = deploy.parse_args(["--tree", "t"], environ=env)
    assert (settings.name, settings.tag, settings.port, settings.health_timeout) == ("blue", "blue:latest", 9000, 30.0)
    assert settings.store == tmp_path / "data" / "aml-deploy" / "blue" / "store"
    assert settings.test_args == ["project/test/units.py", "-k", "config or prepare"]
    assert settings.pass_env == ["AML_API_TOKEN", "OTHER"]
    cli = ["--tree", "t", "--port", "9100", "--tag", "blue:v2", "--pass-env", "TOKEN", "--store", str(tmp_path / "s")]
    settings = deploy.parse_args(cli, environ=env)
    assert (settings.port, settings.tag, settings.pass_env) == (9100, "blue:v2", ["TOKEN"])
    assert settings.store == tmp_path / "s"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "outside 1..65535"),
        (["--port", "http"], "not a port number"),
        (["--health-timeout", "-1"], "must be > 0"),
        (["--test-args", " "], "must not be empty"),
        ([], "--tree"),
    ],
)
def test_parse_args_refuses_bad_values(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        deploy.parse_args(argv if not argv or argv[0] == "--tree" else ["--tree", "t", *argv], environ={})
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_tree_env_puts_the_pushed_library_first_and_drops_git_variables(tmp_path):
    env = deploy.tree_env(
        tmp_path, {"GIT_DIR": ".", "GIT_INDEX_FILE": "x", "PYTHONPATH": f"/a{os.pathsep}/b", "K": "v"}
    )
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "shared"), "/a", "/b"]
    assert not any(k.startswith("GIT_") for k in env) and env["K"] == "v"


# -- the step sequence ---------------------------------------------------------------------------------------------


def test_failing_tests_stop_before_the_build_and_touch_no_container(tmp_path, engine):
    tree = make_tree(tmp_path / "tree", test=FAILING)
    old = engine.add("svc", "svc:old")
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 1
    assert "1 failed" in log and "the tests failed (pytest exit code 1)" in log and "NOT DEPLOYED" in log
    assert not (tree / "project" / "built.txt").exists() and "[2/3] build" not in log
    assert engine.calls == [] and engine.state("svc")["id"] == old and engine.state("svc")["running"]


def test_failing_build_replaces_nothing(tmp_path, engine):
    tree = make_tree(tmp_path / "tree", build_code=3)
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 1 and "tests passed" in log and "stub build --tag svc:new" in log
    assert "the image build failed (exit code 3)" in log and engine.calls == []


def test_first_deployment_tests_builds_and_starts(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    settings = settings_for(tree, engine, tmp_path, pass_env=["AML_API_TOKEN"])
    code, log = run_deploy(settings, engine)
    assert code == 0, log
    assert (tree / "project" / "built.txt").read_text() == "--tag svc:new"
    steps = ["[1/3] test: commit 0123456789ab", "tests passed", "[2/3] build: svc:new", "[3/3] replace", "DEPLOYED"]
    positions = [log.index(step) for step in steps]
    assert positions == sorted(positions), log
    env = {"HOST": "127.0.0.1", "PORT": str(engine.port)}
    assert engine.calls[:3] == [
        ("state", "svc-previous"),
        ("state", "svc"),
        ("run", "svc:new", "svc", env, {str(tmp_path / "store"): "/store"}, ["AML_API_TOKEN"]),
    ]
    assert all(call == ("state", "svc-0-id") for call in engine.calls[3:])  # the health check's liveness polls
    assert (tmp_path / "store").is_dir() and http_status(f"http://127.0.0.1:{engine.port}/health") == 200


def test_replacement_stops_the_old_container_then_removes_it_when_the_new_one_is_healthy(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    old = engine.add("svc", "svc:old")
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 0, log
    calls = [c for c in engine.calls if c[0] != "state"]
    assert [c[0] for c in calls] == ["rename", "stop", "run", "remove", "remove_image"]
    assert calls[0] == ("rename", old, "svc-previous") and calls[1] == ("stop", old)
    assert calls[3] == ("remove", old) and calls[4] == ("remove_image", "svc:old")
    assert engine.state("svc")["image"] == "svc:new" and engine.state("svc-previous") is None
    assert http_status(f"http://127.0.0.1:{engine.port}/health") == 200


def test_a_new_container_that_fails_is_removed_and_the_old_one_serves_again(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    old = engine.add("svc", "svc:old")
    code, log = run_deploy(settings_for(tree, engine, tmp_path, tag="broken"), engine)
    assert code == 1
    assert "did not become healthy" in log and "| Traceback: cannot start" in log and "rolled back" in log
    calls = [c for c in engine.calls if c[0] != "state"]
    assert [c[0] for c in calls] == ["rename", "stop", "run", "remove", "rename", "start"]
    assert calls[4] == ("rename", old, "svc") and calls[5] == ("start", old)
    state = engine.state("svc")
    assert state["id"] == old and state["running"] and engine.state("svc-previous") is None
    assert http_status(f"http://127.0.0.1:{engine.port}/health") == 200


def test_an_engine_error_before_the_start_gives_the_old_container_its_name_back(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    old = engine.add("svc", "svc:old")
    engine.fail_stop = True
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 1 and "failed before the new container ran" in log and "podman stop" in log
    calls = [c for c in engine.calls if c[0] != "state"]
    assert [c[0] for c in calls] == ["rename", "stop", "remove", "rename"]  # no run; still running: no start
    assert calls[2] == ("remove", "svc") and calls[3] == ("rename", old, "svc")
    assert engine.state("svc")["id"] == old and engine.state("svc")["running"]
    assert "NOT DEPLOYED (replace: ContainerError" in log


def test_a_port_taken_by_something_else_is_not_started_on(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    engine.add("someone-else", "other")  # answers on the deployment's port, but is not our container
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 1 and f"something else answers on port {engine.port}" in log
    assert not [c for c in engine.calls if c[0] == "run"]


def test_a_leftover_previous_container_is_removed_first(tmp_path, engine):
    tree = make_tree(tmp_path / "tree")
    leftover = engine.add("svc-previous", "svc:older")
    engine.stop(leftover)
    engine.calls.clear()
    code, log = run_deploy(settings_for(tree, engine, tmp_path), engine)
    assert code == 0, log
    assert ("remove", "svc-previous") in engine.calls and "removing the leftover container svc-previous" in log


def test_a_tree_without_the_project_is_refused(tmp_path, engine):
    code, log = run_deploy(settings_for(tmp_path, engine, tmp_path), engine)
    assert code == 1 and "has no project/image.py" in log and engine.calls == []


def test_module_entry_point_reports_failing_tests_on_stdout(tmp_path):
    """``python -m aml.ops.deploy``: the hook's command, for real (the tests fail, so no engine is needed)."""
    tree = make_tree(tmp_path / "tree", test=FAILING)
    result = subprocess.run(
        [sys.executable, "-m", "aml.ops.deploy", "--tree", str(tree), "--store", str(tmp_path / "store")],
        env={**os.environ, "AML_DEPLOY_TEST_ARGS": "project/test/units.py -p no:cacheprovider"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "[1/3] test" in result.stdout and "1 failed" in result.stdout and "NOT DEPLOYED" in result.stdout


# -- the hook ------------------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def test_post_receive_hook_deploys_main_only_and_says_why_it_did_not(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "HOME": str(tmp_path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "AML_HOOK_PYTHON": sys.executable,
            "AML_DEPLOY_STORE": str(tmp_path / "store"),
            "AML_DEPLOY_TEST_ARGS": "project/test/units.py -p no:cacheprovider",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "TMPDIR": str(tmp_path / "tmp"),
        }
    )
    (tmp_path / "tmp").mkdir()
    bare, work = tmp_path / "deploy.git", make_tree(tmp_path / "work", test=FAILING)
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare), env=env)
    assert hooks.install_standalone(bare, POST_RECEIVE) == bare / "hooks" / "post-receive"
    _git(work, "init", "-q", "-b", "main", env=env)
    for args in (("add", "-A"), ("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "broken")):
        _git(work, *args, env=env)
    feature = _git(work, "push", str(bare), "main:feature", env=env).stderr
    assert "refs/heads/feature is not main: nothing to deploy" in feature and "[1/3]" not in feature
    pushed = _git(work, "push", str(bare), "main", env=env).stderr
    assert "remote: [1/3] test" in pushed and "1 failed" in pushed and "NOT DEPLOYED" in pushed
    assert "[2/3] build" not in pushed
    assert not list((tmp_path / "tmp").iterdir()), "the hook removes the exported tree"
    head = _git(bare, "rev-parse", "main", env=env).stdout.strip()
    hook = subprocess.run(
        [str(bare / "hooks" / "post-receive")],
        cwd=bare,
        env={**env, "GIT_DIR": "."},
        input=f"{'0' * 40} {head} refs/heads/main\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert hook.returncode == 1 and "NOT DEPLOYED" in hook.stdout, hook.stdout + hook.stderr
