"""The stage configurations of :mod:`aml.project.settings`: every field validated with the field named, unknown
fields refused, overrides field by field, the environment variables read once with one meaning each."""

from __future__ import annotations

from pathlib import Path

import pytest

from aml.project import settings

# -- configuration ---------------------------------------------------------------------------------------------------


BAD_VALUES = [
    ("prepare", "seed", [-1, 1.5, True, "42", None, 10**400, 2**32]),
    ("prepare", "fractions", [[0.5, 0.5, 0.5], [0.5, 0.5], [0.0, 0.5, 0.5], [True, 0.5, 0.5], "abc", 0.7, None]),
    ("prepare", "raw", [3, ["raw/x"]]),
    ("prepare", "source", [3, {"path": "x"}]),
    ("train", "model", ["no_such_model", 3, None]),
    ("train", "params", [["C", 1], "C=1", {"no_such_param": 1}, {"C": "abc"}, {"C": -1}, {"C": float("inf")}]),
    ("train", "params", [{"C": 10**400}, {"C": float("nan")}, {"seed": 1}, {"C": [1]}, {"char_min_df": 2.5}]),
    ("train", "seed", ["0", 1.5, True, None, 10**400]),
    ("train", "split", ["latest", 3, "../x", "20200101T000000000000Z-ABCDEF"]),
    ("train", "min_precision", [1.5, -0.1, "0.9", None, True, 10**400, -(10**400), float("nan")]),
    ("train", "max_gap", [2, -1, "0.05", None]),
    ("train", "min_aucpr", [2, -0.5, "0.95", False]),
    ("evaluate", "metrics", [["aucpr", "luck"], ["precision", "recall", "f2"]]),
    ("score", "monitoring", ["yes", 1, None]),
    ("score", "challenger", ["latest", "v2", 1.5, True, [2], "9" * 400, 10**400, "\u0663"]),
    ("score", "mode", ["canary", None, 1]),
    ("score", "share", [1.5, -0.1, "0.1", None, True, 10**400, float("inf")]),
]


@pytest.mark.parametrize(
    ("stage", "field", "value"),
    [(stage, field, value) for stage, field, values in BAD_VALUES for value in values],
)
def test_bad_field_values_are_refused_naming_the_field(stage, field, value):
    with pytest.raises(settings.StageError) as caught:
        settings.make_config(stage, {}, {field: value})
    message = str(caught.value)
    named = {"model": "model", "params": ("params", "parameters"), "metrics": "metrics"}.get(field, field)
    assert any(word in message for word in ((named,) if isinstance(named, str) else named)), message


@pytest.mark.parametrize(
    ("stage", "field", "value"),
    [
        ("train", "split", 5),
        ("train", "split", "../../x"),
        ("train", "seed", -3),
        ("train", "registered_model", ""),
        ("train", "registered_model", 5),
        ("train", "exports", 5),
        ("train", "dockerfile", ["Dockerfile"]),
        ("score", "takedown", "no"),
        ("evaluate", "metrics", []),
    ],
)
def test_unvalidated_fields_should_be_refused_too(stage, field, value):
    with pytest.raises(settings.StageError, match=field):
        settings.make_config(stage, {}, {field: value})


def test_unknown_fields_are_refused_with_the_known_ones_listed():
    for stage in settings.CONFIGS:
        with pytest.raises(settings.StageError, match=r"unknown \w+Config field\(s\) \['colour'\]"):
            settings.make_config(stage, {}, {"colour": "red"})
    with pytest.raises(settings.StageError, match="unknown"):
        settings.make_config("prepare", {"colour": "red"})  # a bad configuration file, not only a bad request


def test_overrides_update_the_defaults_field_by_field():
    defaults = {"model": "tfidf_naive_bayes", "params": {"alpha": 0.1}, "seed": 3, "min_aucpr": 0.9}
    config = settings.make_config("train", defaults, {"seed": 5, "max_gap": 0.2})
    assert (config.model, config.params, config.seed, config.min_aucpr, config.max_gap) == (
        "tfidf_naive_bayes",
        {"alpha": 0.1},
        5,
        0.9,
        0.2,
    )
    assert settings.make_config("train", defaults, {"params": {}}).params == {}  # a whole field is replaced, not merged
    assert settings.make_config("train", defaults, None).seed == 3
    # the file's params belong to the file's model: asking for another model alone gets that model's defaults
    other = settings.make_config("train", defaults, {"model": "tfidf_linear_svm"})
    assert (other.model, other.params, other.seed) == ("tfidf_linear_svm", {}, 3)
    same = settings.make_config("train", defaults, {"model": "tfidf_naive_bayes"})
    assert same.params == {"alpha": 0.1}
    assert settings.make_config("train", defaults, {"model": "tfidf_linear_svm", "params": {"C": 2.0}}).params == {
        "C": 2.0
    }
    assert settings.make_config("train", None, None) == settings.TrainConfig()
    prepare = settings.make_config("prepare", {"seed": 1, "fractions": [0.6, 0.2, 0.2]}, {"seed": 2})
    assert prepare.seed == 2 and prepare.fractions == (0.6, 0.2, 0.2)  # lists from YAML/JSON become a tuple
    assert settings.make_config("score", {}, {"takedown": False}).takedown is False
    assert settings.make_config("evaluate", {}, {"metrics": ["aucpr"]}).metrics == ["aucpr"]
    with pytest.raises(settings.StageError, match="min_aucpr"):
        settings.make_config("train", defaults, {"min_aucpr": 3})  # an override is validated like a default


def test_score_config_takes_a_version_number_as_the_challenger():
    assert settings.make_config("score", {}, {"challenger": 3}).challenger == "3"  # YAML/JSON numbers
    config = settings.make_config("score", {"challenger": "2", "mode": "ab", "share": 0.25}, {})
    assert (config.challenger, config.mode, config.share, config.monitoring) == ("2", "ab", 0.25, True)


# -- the environment -------------------------------------------------------------------------------------------------


def test_exports_have_their_own_variable_and_read_the_older_one(tmp_path):
    default = tmp_path / "models"
    assert settings.exports_folder(default, {}) == default
    assert settings.exports_folder(default, {"AML_MODEL_EXPORTS": "/e"}) == Path("/e")
    assert settings.exports_folder(default, {"AML_MODEL_EXPORTS": "None"}) is None
    assert settings.exports_folder(default, {"AML_MODEL_STORE": "none"}) is None  # deployments of before
    assert settings.exports_folder(default, {"AML_MODEL_STORE": "/m"}) == Path("/m")
    new_wins = {"AML_MODEL_EXPORTS": "/e", "AML_MODEL_STORE": "none"}
    assert settings.exports_folder(default, new_wins) == Path("/e")


def test_project_settings_are_read_once_from_the_environment_and_the_files(tmp_path):
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    for stage in settings.CONFIGS:
        (project / "config" / f"{stage}.yaml").write_text("")
    (project / "config" / "prepare.yaml").write_text("seed: 7\n")
    env = {"AML_DATA_STORE": str(tmp_path / "data"), "AML_MODEL_EXPORTS": "none"}
    read = settings.ProjectSettings.from_environment(project, env)
    env["AML_DATA_STORE"] = "changed later"  # read once: a later change is not seen
    assert read.data_store == str(tmp_path / "data") and read.store().root == (tmp_path / "data").resolve()
    assert read.tracking_uri == f"sqlite:///{project / 'store' / 'mlflow' / 'mlflow.db'}"
    assert read.exports is None and read.stages["train"]["exports"] is None
    assert read.stages["train"]["dockerfile"] is None  # no Dockerfile in this project
    assert read.config("prepare").seed == 7 and read.config("prepare", {"seed": 3}).seed == 3
    assert read.registered_model == settings.MODEL_NAME


def test_a_configuration_file_that_is_not_a_mapping_stops_the_start(tmp_path):
    for stage in settings.CONFIGS:
        (tmp_path / f"{stage}.yaml").write_text("")
    (tmp_path / "train.yaml").write_text("- a list\n")
    with pytest.raises(settings.StageError, match=r"train.yaml must hold a mapping"):
        settings.stage_files(tmp_path)
    (tmp_path / "train.yaml").write_text("model: no_such_model\n")
    with pytest.raises(settings.StageError, match="unknown model"):
        settings.ProjectSettings.from_environment(tmp_path, {}, config_dir=tmp_path)


def test_huge_numbers_are_named_by_their_size_not_echoed():
    with pytest.raises(settings.StageError, match=r"seed must be an integer in \[0, 4294967295\], got a number of 401"):
        settings.make_config("prepare", {}, {"seed": 10**400})
    with pytest.raises(settings.StageError, match="share must be a number in .* got a number of 401 digits"):
        settings.make_config("score", {}, {"share": 10**400})
    assert settings.make_config("train", {}, {"seed": settings.MAX_SEED}).seed == settings.MAX_SEED
