import pytest

from aml.core import config


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


def test_by_budget(monkeypatch):
    monkeypatch.setenv("AML_BUDGET", "smoke")
    assert config.by_budget(12, 1) == 1
    monkeypatch.setenv("AML_BUDGET", "full")
    assert config.by_budget(12, 1) == 12


def test_a_budget_given_as_a_value_wins_over_the_environment(monkeypatch):
    """A notebook's ``BUDGET`` parameter (``-p BUDGET smoke``) sizes everything, whatever AML_BUDGET says."""
    monkeypatch.setenv("AML_BUDGET", "full")
    assert config.budget("smoke") == "smoke" and config.budget(" FULL ") == "full" and config.budget(None) == "full"
    assert config.by_budget(12, 1, "smoke") == 1
    monkeypatch.setenv("AML_BUDGET", "smoke")
    assert config.by_budget(12, 1, config.budget("full")) == 12
    with pytest.raises(ValueError, match="BUDGET='huge'"):
        config.budget("huge")


def test_enter_notebook_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert config.enter_notebook_folder("assignment1") == tmp_path  # not Colab: nothing moves
    monkeypatch.setattr(config, "in_colab", lambda: True)
    assert config.enter_notebook_folder("assignment1") == config.REPO_ROOT / "assignment1"
    with pytest.raises(FileNotFoundError, match="no folder 'nope'"):
        config.enter_notebook_folder("nope")
