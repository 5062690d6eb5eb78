"""The model store's serving policy (:mod:`aml.mlops.registry`) on a real MLflow registry: a scratch SQLite store
per module, tiny scikit-learn models logged once with ``mlflow.sklearn.log_model``, and a registered model of each
test's own (:func:`aml.mlops.tracking.register` of those logged models), so no test sees another's versions."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest

from aml.mlops import registry, tracking

X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
Y = np.array([0, 0, 0, 1, 1, 1])
_names = itertools.count(1)


def log_model(C: float) -> str:
    """Fit a tiny logistic regression, log it in a run of its own; returns its model URI."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C).fit(X, Y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=tracking.model_requirements())
    return info.model_uri


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> list[str]:
    """A scratch MLflow store for the module, configured while its tests run, holding three logged models
    (``C`` = 1, 2, 3): their model URIs."""
    uri = tracking.new_store(tmp_path_factory.mktemp("registry"))
    with tracking.using(uri, experiment="test-registry"):
        yield [log_model(float(c)) for c in (1, 2, 3)]


@pytest.fixture
def name(logged) -> str:
    """A registered-model name of this test's own (nothing registered under it yet)."""
    return f"toy-{next(_names)}"


@pytest.fixture
def three(name, logged) -> list[str]:
    """Versions 1, 2 and 3 of ``name`` (the logged models with ``C`` = 1, 2, 3), no champion."""
    versions = [tracking.register(uri, name) for uri in logged]
    assert versions == ["1", "2", "3"]
    return versions


def c_of(model) -> float:
    return float(model.C)


# -- listing ---------------------------------------------------------------------------------------------------------


def test_versions_newest_first_in_numeric_order(name, logged):
    assert registry.versions(name) == []
    for _ in range(11):  # "10" and "11" must sort above "9"
        tracking.register(logged[0], name)
    assert registry.versions(name) == [str(v) for v in range(11, 0, -1)]
    assert registry.versions("never-registered") == []


def test_champion_version_none_then_set(name, three):
    assert registry.champion_version(name) is None
    assert registry.champion_version("never-registered") is None
    registry.promote(name, "2")
    assert registry.champion_version(name) == "2"


def test_candidates_without_champion_newest_first(name, three):
    assert registry.candidates(name) == ("latest", ["3", "2", "1"])


def test_candidates_with_champion_then_older_versions_only(name, three):
    registry.promote(name, "2")
    source, order = registry.candidates(name)
    assert source == "champion" and order == ["2", "1"]  # version 3 did not pass the gate: never a candidate
    registry.promote(name, "1")
    assert registry.candidates(name) == ("champion", ["1"])


def test_candidates_and_load_serving_with_nothing_registered(name):
    with pytest.raises(registry.NoModelError, match=f"no version of model '{name}'"):
        registry.candidates(name)
    with pytest.raises(registry.NoModelError):
        registry.load_serving(name)


# -- promote and tags ------------------------------------------------------------------------------------------------


def test_promote_moves_the_alias(name, three):
    import mlflow

    client = mlflow.MlflowClient()
    registry.promote(name, "1")
    registry.promote(name, 3)  # an int version is accepted
    assert registry.champion_version(name) == "3"
    assert client.get_model_version(name, "3").aliases == [tracking.CHAMPION]
    assert client.get_model_version(name, "1").aliases == []


def test_set_tags_stores_strings(name, three):
    import mlflow

    registry.set_tags(name, "2", {"threshold": 0.25, "gate_passed": True, "data_version": "abc"})
    tags = mlflow.MlflowClient().get_model_version(name, "2").tags
    assert tags["threshold"] == "0.25" and tags["gate_passed"] == "True" and tags["data_version"] == "abc"
    assert "threshold" not in mlflow.MlflowClient().get_model_version(name, "1").tags


# -- load_serving ----------------------------------------------------------------------------------------------------


def test_load_serving_first_good_version_wins(name, three):
    served = registry.load_serving(name)
    assert served.version == "3" and served.source == "latest" and not served.fallback and served.failures == []
    assert c_of(served.model) == 3.0 and served.model.predict(X).tolist() == Y.tolist()
    assert served.run_id and served.loaded_at
    registry.promote(name, "2")
    served = registry.load_serving(name)
    assert served.version == "2" and served.source == "champion" and c_of(served.model) == 2.0


def test_load_serving_passes_the_tags_and_serves_what_prepare_returns(name, three):
    registry.set_tags(name, "3", {"threshold": 0.7})
    seen = []

    def prepare(model, tags):
        seen.append(dict(tags))
        return ("ready", c_of(model), float(tags["threshold"]))

    served = registry.load_serving(name, prepare)
    assert served.model == ("ready", 3.0, 0.7)
    assert served.tags["threshold"] == "0.7" and seen[0]["threshold"] == "0.7"


def test_load_serving_falls_back_when_prepare_fails(name, three, caplog):
    registry.set_tags(name, "3", {"broken": "smoke check"})
    registry.set_tags(name, "2", {"broken": "no threshold\non two lines " + "x" * 500})

    def prepare(model, tags):
        if "broken" in tags:
            raise ValueError(tags["broken"])
        return model

    with caplog.at_level(logging.WARNING, logger="aml.mlops.registry"):
        served = registry.load_serving(name, prepare)
    assert served.version == "1" and served.fallback and served.source == "latest"
    assert [f["version"] for f in served.failures] == ["3", "2"]
    assert served.failures[0]["error"] == "ValueError: smoke check"
    second = served.failures[1]["error"]
    assert second.startswith("ValueError: no threshold on two lines") and "\n" not in second and len(second) < 320
    assert "trying the previous version" in caplog.text and "fallback after 2 failure(s)" in caplog.text


def test_load_serving_with_a_champion_never_falls_forward(name, three):
    registry.promote(name, "2")

    def prepare(model, tags):
        raise RuntimeError("every version fails")

    with pytest.raises(registry.NoServableVersionError) as caught:
        registry.load_serving(name, prepare)
    assert [f["version"] for f in caught.value.failures] == ["2", "1"]  # version 3 was never tried
    assert "v2: RuntimeError: every version fails" in str(caught.value)


def test_all_versions_failing_raise_with_the_failures(name, three):
    def load(model_name, version):
        raise OSError(f"cannot read {model_name} v{version}")

    with pytest.raises(registry.NoServableVersionError, match="can serve") as caught:
        registry.load_serving(name, load=load)
    assert caught.value.failures == [
        {"version": v, "error": f"OSError: cannot read {name} v{v}"} for v in ("3", "2", "1")
    ]


def test_corrupt_version_breaks_real_loading_and_load_serving_falls_back(name, logged):
    for uri in (logged[0], logged[1], log_model(3.0)):  # version 3 a logged model of its own: it gets broken
        tracking.register(uri, name)
    registry.promote(name, "3")
    folder = registry.version_files(name, "3")
    files = registry.corrupt_version(name, "3")
    assert files and all(folder in f.parents for f in files)
    assert all(f.read_bytes() == b"deliberately broken model file\n" for f in files)
    with pytest.raises(Exception):  # noqa: B017 - whatever MLflow raises for a broken model folder
        registry.load_version(name, "3")
    assert c_of(registry.load_version(name, "2")) == 2.0  # other versions untouched
    served = registry.load_serving(name)
    assert served.version == "2" and served.fallback and served.source == "champion"
    assert [f["version"] for f in served.failures] == ["3"] and served.failures[0]["error"]
    assert str(folder) not in served.failures[0]["error"] and "/tmp" not in served.failures[0]["error"]


def test_served_describe_is_json_able(name, three):
    registry.set_tags(name, "3", {"broken": "yes"})

    def prepare(model, tags):
        if tags.get("broken"):
            raise ValueError("broken on purpose")
        return model

    served = registry.load_serving(name, prepare)
    described = served.describe()
    assert json.loads(json.dumps(described)) == described
    assert set(described) == {"name", "version", "source", "fallback", "failures", "run_id", "loaded_at", "standing"}
    assert described["standing"] == registry.NEVER_PROMOTED
    assert described["version"] == "2" and described["fallback"] is True
    assert described["failures"] == [{"version": "3", "error": "ValueError: broken on purpose"}]
    described["failures"].append("changed")  # a copy: the record is not changed through it
    assert len(served.failures) == 1


# -- promotion history, crashed versions, last resort ----------------------------------------------------------------


def tags_of(name: str, version: str) -> dict:
    import mlflow

    return mlflow.MlflowClient().get_model_version(name, version).tags


def test_promote_records_each_promotion(name, three):
    registry.promote(name, "1")
    first = tags_of(name, "1")[registry.PROMOTED_AT]
    registry.promote(name, "3")
    assert tags_of(name, "3")[registry.PROMOTED_AT] > first == tags_of(name, "1")[registry.PROMOTED_AT]
    assert registry.PROMOTED_AT not in tags_of(name, "2")
    registry.promote(name, "1")  # a rollback: promoted again, later
    assert tags_of(name, "1")[registry.PROMOTED_AT] > tags_of(name, "3")[registry.PROMOTED_AT]


def test_promote_gives_a_champion_from_before_the_history_its_registration_time(name, three):
    import mlflow

    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, tracking.CHAMPION, "2")  # promoted by hand, no history
    registry.promote(name, "3")
    assert tags_of(name, "2")[registry.PROMOTED_AT] < tags_of(name, "3")[registry.PROMOTED_AT]
    assert registry.candidates(name) == ("champion", ["3", "2", "1"])


def test_candidates_prefer_previous_champions_by_promotion_over_never_promoted(name, logged):
    for _ in range(5):
        tracking.register(logged[0], name)
    for version in ("1", "2", "1", "4"):  # 3 never promoted; 1 promoted again after 2
        registry.promote(name, version)
    # 5 is newer than the champion: never a candidate; previous champions, latest promotion first; then 3
    assert registry.candidates(name) == ("champion", ["4", "1", "2", "3"])
    import mlflow

    mlflow.MlflowClient().delete_registered_model_alias(name, tracking.CHAMPION)
    assert registry.candidates(name) == ("latest", ["4", "1", "2", "5", "3"])


def test_crashed_versions_are_never_candidates(name, three):
    registry.promote(name, "1")
    registry.mark_crashed(name, "2", "interrupted: the service stopped")
    registry.promote(name, "3")
    assert tags_of(name, "2")[registry.CRASHED] == "true" and registry.is_crashed(tags_of(name, "2"))
    assert registry.candidates(name) == ("champion", ["3", "1"])
    assert registry.crashed_versions(name) == ["2"]

    def prepare(model, tags):
        raise ValueError("cannot score")

    with pytest.raises(registry.NoServableVersionError) as caught:
        registry.load_serving(name, prepare)
    assert caught.value.crashed == ["2"] and [f["version"] for f in caught.value.failures] == ["3", "1"]
    assert "left out as crashed trainings: v2" in str(caught.value)


def test_every_version_crashed_raises_naming_them(name, three):
    for version in three:
        registry.mark_crashed(name, version, "interrupted")
    assert registry.candidates(name) == ("latest", [])
    with pytest.raises(registry.NoServableVersionError, match="crashed trainings: v3, v2, v1") as caught:
        registry.load_serving(name)
    assert caught.value.failures == []


def test_load_serving_says_how_the_served_version_stands(name, three, logged, caplog):
    registry.promote(name, "1")
    registry.promote(name, "2")
    assert registry.load_serving(name).standing == registry.CHAMPION_STANDING

    def prepare(model, tags):
        if registry.PROMOTED_AT in tags and c_of(model) == 2.0:
            raise ValueError("the champion cannot score")
        return model

    served = registry.load_serving(name, prepare)
    assert (served.version, served.standing, served.fallback) == ("1", registry.PREVIOUS_CHAMPION, True)
    assert not served.last_resort

    def only_never_promoted(model, tags):
        if registry.PROMOTED_AT in tags:
            raise ValueError("broken")
        return model

    registry.promote(name, "3")  # 3 champion; 1 and 2 previous champions; nothing older never promoted
    with pytest.raises(registry.NoServableVersionError):
        registry.load_serving(name, only_never_promoted)
    other = f"{name}-b"
    for uri in logged:
        tracking.register(uri, other)
    registry.promote(other, "3")
    with caplog.at_level(logging.WARNING, logger="aml.mlops.registry"):
        served = registry.load_serving(other, only_never_promoted)
    assert (served.version, served.standing) == ("2", registry.NEVER_PROMOTED) and served.last_resort
    assert "last resort" in caplog.text


def test_redact_paths_leaves_no_absolute_path():
    text = "No such file: '/srv/aml/mlflow/artifacts/1/m-1/artifacts/model.pkl', see file:///srv/aml/store/x.csv"
    redacted = registry.redact_paths(text, {"/srv/aml/mlflow/artifacts/1/m-1/artifacts": "models:/m/1"})
    assert redacted == "No such file: 'models:/m/1/model.pkl', see \N{HORIZONTAL ELLIPSIS}/x.csv"
    untouched = "s3://bucket/data/x.csv and models:/m/2 and 1/2 and raw/run/file"
    assert registry.redact_paths(untouched) == untouched
    assert registry.redact_paths("/etc/passwd") == "\N{HORIZONTAL ELLIPSIS}/passwd"
