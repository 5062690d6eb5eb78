import pytest

from aml import config


def test_defaults(monkeypatch):
    for var in ("AML_DATA_DIR", "AML_BUILD_DIR", "AML_METRICS_FILE", "AML_MODEL_STORE", "AML_BUDGET", "AML_PROGRESS"):
        monkeypatch.delenv(var, raising=False)
    assert config.local_data_dir() is None
    assert config.build_dir() == config.REPO_ROOT / "build"
    assert config.metrics_file() == config.REPO_ROOT / "build" / "metrics.json"
    assert config.model_store_dir() == config.REPO_ROOT / "models"
    assert config.budget() == "full"
    assert config.progress_style() == "auto"
    assert (config.REPO_ROOT / "pyproject.toml").is_file()
    assert config.in_colab() is False


def test_env_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("AML_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("AML_BUILD_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("AML_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("AML_BUDGET", " Smoke ")
    assert config.local_data_dir() == tmp_path / "d"
    assert config.metrics_file() == tmp_path / "b" / "metrics.json"
    assert config.cache_dir() == tmp_path / "c"
    assert config.budget() == "smoke"
    monkeypatch.setenv("AML_BUDGET", "huge")
    with pytest.raises(ValueError, match="AML_BUDGET"):
        config.budget()
    monkeypatch.setenv("AML_PROGRESS", "TEXT")
    assert config.progress_style() == "text"
    monkeypatch.setenv("AML_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="AML_PROGRESS"):
        config.progress_style()
