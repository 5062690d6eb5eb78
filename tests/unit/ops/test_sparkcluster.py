"""The Spark standalone launcher (:mod:`aml.ops.sparkcluster`): command lines, settings, refusals, and a launcher that
fails (a Java runtime that is not there) reported with the daemon's log and nothing left running. A real cluster of
separate master and worker JVMs scoring a table: ``project/test/integration_spark_cluster.py``."""

from __future__ import annotations

import os

import pytest

from aml.ops import sparkcluster


def test_commands_name_the_launcher_the_classes_and_loopback_ports():
    master = sparkcluster.master_command(7077, 8080)
    assert master[0].endswith("bin/spark-class") and os.access(master[0], os.X_OK)
    assert master[1:] == [sparkcluster.MASTER_CLASS, "--host", "127.0.0.1", "--port", "7077", "--webui-port", "8080"]
    worker = sparkcluster.worker_command("spark://127.0.0.1:7077", 4000, 4001, 1, "1g", "/tmp/w")
    assert worker[1:3] == [sparkcluster.WORKER_CLASS, "spark://127.0.0.1:7077"]
    options = dict(zip(worker[3::2], worker[4::2], strict=True))
    assert options == {
        "--host": "127.0.0.1",
        "--port": "4000",
        "--webui-port": "4001",
        "--cores": "1",
        "--memory": "1g",
        "--work-dir": "/tmp/w",
    }


@pytest.mark.parametrize(("memory", "mb"), [("512m", 512), ("1g", 1024), ("2G", 2048)])
def test_memory_sizes(memory, mb):
    assert sparkcluster.memory_mb(memory) == mb


@pytest.mark.parametrize("memory", ["1", "1gb", "0g", "-1g", "", None, "1.5g"])
def test_bad_memory_sizes_are_refused(memory):
    with pytest.raises(ValueError, match="memory must be"):
        sparkcluster.memory_mb(memory)


@pytest.mark.parametrize(("arguments", "match"), [({"workers": 0}, "workers"), ({"workers": True}, "workers")])
def test_bad_cluster_arguments_are_refused_before_anything_starts(arguments, match):
    with pytest.raises(ValueError, match=match), sparkcluster.standalone(**arguments):
        pass
    with pytest.raises(ValueError, match="cores"):
        sparkcluster.worker_command("spark://127.0.0.1:1", 1, 2, 0, "1g", "/tmp")


def test_the_drivers_settings_fit_each_executor_in_its_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/shared")
    cluster = sparkcluster.Cluster("127.0.0.1", 7077, 8080, None, [None, None], 1, "1g", tmp_path)
    assert cluster.url == "spark://127.0.0.1:7077" and cluster.total_cores == 2
    conf = cluster.conf()
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.executor.cores"] == "1" and conf["spark.cores.max"] == "2"
    assert conf["spark.executor.memory"] == "768m"  # EXECUTOR_SHARE of the worker's 1g
    assert conf["spark.executorEnv.PYTHONPATH"] == "/somewhere/shared"


def test_spark_home_setting_without_a_launcher_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    with pytest.raises(sparkcluster.ClusterError, match="no bin/spark-class"):
        sparkcluster.spark_class()


def test_a_master_that_cannot_start_is_reported_with_its_log_and_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))  # the launcher finds no java there and exits
    with (
        pytest.raises(sparkcluster.ClusterError) as info,
        sparkcluster.standalone(workers=1, timeout=60, parent=tmp_path),
    ):
        pass
    message = str(info.value)
    assert message.startswith("the Spark master did not start: the Spark master exited with")
    assert "no-java" in message and sparkcluster.MASTER_CLASS in message  # its log and its command
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("aml-spark-cluster-")]  # its folder removed
