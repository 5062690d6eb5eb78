"""The stages of the spam filter as an ML system (:mod:`aml.project.system`) on small data in a temporary data store:
configuration validation, the model-validation gate, the serving model and its smoke check, the take-down list,
evaluation of a scored file, raw-data ingestion and the atomicity of ``prepare``. The stages over the real
collection and a real registry are tested in ``project/test/units.py``."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from aml.mlops import datastore
from aml.mlops.datastore import DataStore, StoreNotFoundError
from aml.project import system
from aml.spam import lean, models, stages
from aml.spam.sms import DataValidationError


@pytest.fixture
def store(tmp_path) -> DataStore:
    return DataStore(tmp_path / "store")


def raw_file(path, n_ham: int = 90, n_spam: int = 30, offset: int = 0):
    """A raw collection (``label<TAB>text``) of distinct, clearly separable messages."""
    lines = [
        f"ham\tsee you at the {place} at {i + offset} o'clock"
        for i, place in zip(range(n_ham), "ab" * n_ham, strict=False)
    ]
    lines += [f"spam\tWIN a £{i + offset}00 cash prize! call 0906{i + offset:05d} now" for i in range(n_spam)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- configuration ---------------------------------------------------------------------------------------------------


BAD_VALUES = [
    ("prepare", "seed", [-1, 1.5, True, "42", None]),
    ("prepare", "fractions", [[0.5, 0.5, 0.5], [0.5, 0.5], [0.0, 0.5, 0.5], [True, 0.5, 0.5], "abc", 0.7, None]),
    ("prepare", "raw", [3, ["raw/x"]]),
    ("prepare", "source", [3, {"path": "x"}]),
    ("train", "model", ["no_such_model", 3, None]),
    ("train", "params", [["C", 1], "C=1", {"no_such_param": 1}]),
    ("train", "seed", ["0", 1.5, True, None]),
    ("train", "min_precision", [1.5, -0.1, "0.9", None, True]),
    ("train", "max_gap", [2, -1, "0.05", None]),
    ("train", "min_aucpr", [2, -0.5, "0.95", False]),
    ("evaluate", "metrics", [["aucpr", "luck"], ["precision", "recall", "f2"]]),
    ("score", "monitoring", ["yes", 1, None]),
    ("score", "challenger", ["latest", "v2", 1.5, True, [2]]),
    ("score", "mode", ["canary", None, 1]),
    ("score", "share", [1.5, -0.1, "0.1", None, True]),
]


@pytest.mark.parametrize(
    ("stage", "field", "value"),
    [(stage, field, value) for stage, field, values in BAD_VALUES for value in values],
)
def test_bad_field_values_are_refused_naming_the_field(stage, field, value):
    with pytest.raises(system.StageError) as caught:
        system.make_config(stage, {}, {field: value})
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
    with pytest.raises(system.StageError, match=field):
        system.make_config(stage, {}, {field: value})


def test_unknown_fields_are_refused_with_the_known_ones_listed():
    for stage in system.CONFIGS:
        with pytest.raises(system.StageError, match=r"unknown \w+Config field\(s\) \['colour'\]"):
            system.make_config(stage, {}, {"colour": "red"})
    with pytest.raises(system.StageError, match="unknown"):
        system.make_config("prepare", {"colour": "red"})  # a bad configuration file, not only a bad request


def test_overrides_update_the_defaults_field_by_field():
    defaults = {"model": "tfidf_naive_bayes", "params": {"alpha": 0.1}, "seed": 3, "min_aucpr": 0.9}
    config = system.make_config("train", defaults, {"seed": 5, "max_gap": 0.2})
    assert (config.model, config.params, config.seed, config.min_aucpr, config.max_gap) == (
        "tfidf_naive_bayes",
        {"alpha": 0.1},
        5,
        0.9,
        0.2,
    )
    assert system.make_config("train", defaults, {"params": {}}).params == {}  # a whole field is replaced, not merged
    assert system.make_config("train", defaults, None).seed == 3
    assert system.make_config("train", None, None) == system.TrainConfig()
    prepare = system.make_config("prepare", {"seed": 1, "fractions": [0.6, 0.2, 0.2]}, {"seed": 2})
    assert prepare.seed == 2 and prepare.fractions == (0.6, 0.2, 0.2)  # lists from YAML/JSON become a tuple
    assert system.make_config("score", {}, {"takedown": False}).takedown is False
    assert system.make_config("evaluate", {}, {"metrics": ["aucpr"]}).metrics == ["aucpr"]
    with pytest.raises(system.StageError, match="min_aucpr"):
        system.make_config("train", defaults, {"min_aucpr": 3})  # an override is validated like a default


# -- the serving model -----------------------------------------------------------------------------------------------


@pytest.fixture
def linear_svm(toy):
    return stages.fit(models.make_model("tfidf_linear_svm"), toy["train"])


def test_serving_model_compiles_a_linear_svm_to_the_lean_scorer(toy, linear_svm):
    ready = system.serving_model(linear_svm, 0.5)
    assert ready.lean and isinstance(ready.scorer, lean.LeanScorer) and ready.threshold == 0.5
    texts = toy["validation"].text.tolist() + list(system.PROBES)
    np.testing.assert_allclose(ready.propensities(texts), linear_svm.predict_proba(texts)[:, 1], atol=1e-9)
    prediction, propensity = ready.score_one("WIN a cash prize call 090600001 now")
    assert bool(prediction) is True
    assert propensity == pytest.approx(linear_svm.predict_proba(["WIN a cash prize call 090600001 now"])[0, 1])
    assert ready.version == "unregistered"
    assert ready.describe() == {"version": "unregistered", "threshold": 0.5, "scorer": "lean"}


def test_serving_model_serves_naive_bayes_as_the_full_model(toy, naive_bayes):
    ready = system.serving_model(naive_bayes, 0.3)
    assert not ready.lean and ready.scorer is naive_bayes
    assert ready.describe()["scorer"] == "Pipeline"
    prediction, propensity = ready.score_one("see you at home tonight")
    assert not prediction and 0 <= propensity < 0.3
    np.testing.assert_allclose(ready.propensities(["a", "b"]), naive_bayes.predict_proba(["a", "b"])[:, 1])


class Fake:
    """A "model" whose ``predict_proba`` returns what the test asks for (the smoke check must catch it)."""

    def __init__(self, answer):
        self.answer = answer

    def predict_proba(self, texts):
        return self.answer(list(texts))


@pytest.mark.parametrize(
    "answer",
    [
        lambda texts: np.tile([-0.5, 1.5], (len(texts), 1)),  # propensity above 1
        lambda texts: np.tile([1.2, -0.2], (len(texts), 1)),  # propensity below 0
        lambda texts: np.tile([np.nan, np.nan], (len(texts), 1)),  # not a number
        lambda texts: np.array([[0.5, 0.5]]),  # one row whatever the number of texts
    ],
    ids=["above-1", "below-0", "nan", "one-row"],
)
def test_the_smoke_check_refuses_a_model_that_cannot_score(answer):
    with pytest.raises(ValueError, match="smoke check failed"):
        system.serving_model(Fake(answer), 0.5)


def test_the_smoke_check_refuses_wrong_shapes_and_models_without_predict_proba():
    with pytest.raises((ValueError, IndexError)):
        system.serving_model(Fake(lambda texts: np.full((len(texts), 1), 0.5)), 0.5)  # one column
    with pytest.raises((ValueError, IndexError)):
        system.serving_model(Fake(lambda texts: np.full(len(texts), 0.5)), 0.5)  # one dimension
    with pytest.raises(AttributeError):
        system.serving_model(object(), 0.5)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), "0.5", None, True])
def test_serving_model_refuses_a_bad_threshold(naive_bayes, threshold):
    with pytest.raises((TypeError, ValueError), match="threshold"):
        system.serving_model(naive_bayes, threshold)


# -- take-down list --------------------------------------------------------------------------------------------------

PREDICTIONS = """id,propensity,prediction,threshold,model_version
007,0.2,False,0.5,3
b,0.97,True,0.5,3
c,0.6,True,0.5,3
d,0.49,False,0.5,3
e,0.99,True,0.5,3
"""


def write_predictions(store: DataStore, text: str = PREDICTIONS, latest: bool = True) -> str:
    run = store.new_run("predictions")
    path = store.run_path("predictions", run, system.PREDICTIONS_FILE)
    store.write_text(path, text)
    if latest:
        store.set_latest("predictions", run)
    return path


def test_takedown_lists_only_predicted_spam_sorted_by_propensity(store):
    path = write_predictions(store)
    result = system.takedown(store, path)
    assert result["count"] == 3 and result["output"] == store.run_path("actions", result["run"], system.TAKEDOWN_FILE)
    table = store.read_csv(result["output"], dtype={"id": "string"})
    assert list(table.columns) == ["id", "propensity", "threshold", "model_version"]
    assert table.id.tolist() == ["e", "b", "c"] and table.propensity.tolist() == [0.99, 0.97, 0.6]
    assert store.latest("actions") == result["run"]
    lineage = store.read_lineage("actions", result["run"])
    assert lineage["inputs"]["predictions"] == {"path": path, "sha256": store.sha256(path)}
    assert lineage["outputs"]["takedown"]["rows"] == 3


def test_takedown_defaults_to_the_latest_predictions_and_keeps_ids_as_strings(store):
    write_predictions(store)
    newest = write_predictions(store, PREDICTIONS.replace("007,0.2,False", "007,0.8,True"))
    result = system.takedown(store)
    lineage = store.read_lineage("actions", result["run"])
    assert lineage["inputs"]["predictions"]["path"] == newest
    table = store.read_csv(result["output"], dtype={"id": "string"})
    assert table.id.tolist() == ["e", "b", "007", "c"]  # "007" stays "007"


def test_takedown_with_no_spam_writes_an_empty_list(store):
    path = write_predictions(store, "id,propensity,prediction,threshold,model_version\n1,0.1,0,0.5,1\n")
    result = system.takedown(store, path)
    assert result["count"] == 0
    assert store.read_text(result["output"]).strip() == "id,propensity,threshold,model_version"


def test_takedown_refuses_a_file_that_is_not_predictions(store):
    path = write_predictions(store, "id,propensity\n1,0.5\n")
    with pytest.raises(system.StageError, match=r"\['prediction', 'threshold', 'model_version'\] are missing"):
        system.takedown(store, path)
    assert store.latest("actions") is None


def test_takedown_without_predictions_says_so(store):
    with pytest.raises(StoreNotFoundError, match="no predictions run"):
        system.takedown(store)
    with pytest.raises(StoreNotFoundError):
        system.takedown(store, "predictions/none/predictions.csv")


# -- evaluate --------------------------------------------------------------------------------------------------------

SCORED = """id,y,propensity,prediction,threshold,model_version
1,1,0.9,True,0.5,2
2,1,0.7,True,0.5,2
3,1,0.4,False,0.5,2
4,0,0.6,True,0.5,2
5,0,0.2,False,0.5,2
6,0,0.1,False,0.5,2
"""


def test_evaluate_a_scored_file_at_its_threshold_column(store):
    path = write_predictions(store, SCORED)
    result = system.evaluate(store, path)
    metrics = result["metrics"]
    assert metrics["threshold"] == 0.5  # the column, not the lowest propensity flagged (0.6)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["ham_blocked"] == pytest.approx(1 / 3) and 0 < metrics["aucpr"] <= 1
    assert result["count"] == 6 and store.latest("evaluations") == result["run"]
    saved = store.read_json(result["output"])
    assert saved["metrics"] == metrics and saved["model_versions"] == ["2"] and saved["count"] == 6
    assert store.read_lineage("evaluations", result["run"])["inputs"]["scored"]["sha256"] == store.sha256(path)


def test_evaluate_without_a_threshold_column_or_with_several_thresholds(store):
    no_column = "\n".join(",".join(line.split(",")[:4]) for line in SCORED.strip().splitlines()) + "\n"
    assert system.evaluate(store, write_predictions(store, no_column))["metrics"]["threshold"] == 0.6
    mixed = SCORED.replace("6,0,0.1,False,0.5,2", "6,0,0.1,False,0.3,1")
    assert system.evaluate(store, write_predictions(store, mixed))["metrics"]["threshold"] == 0.6


def test_evaluate_labels_from_the_label_column_and_selected_metrics(store):
    labelled = SCORED.replace("id,y,", "id,label,").replace(",1,0.", ",spam,0.").replace(",0,0.", ",ham,0.")
    result = system.evaluate(store, write_predictions(store, labelled), system.EvaluateConfig(metrics=("recall",)))
    assert result["metrics"] == {"recall": pytest.approx(2 / 3)}


def test_evaluate_refuses_unlabelled_or_unscored_data(store):
    unlabelled = SCORED.replace("id,y,", "id,z,")
    with pytest.raises(system.StageError, match=r"labelled.*\['y'\] are missing"):
        system.evaluate(store, write_predictions(store, unlabelled))
    with pytest.raises(system.StageError, match="propensity"):
        system.evaluate(store, write_predictions(store, "id,y\n1,1\n2,0\n"))
    inconsistent = SCORED.replace("3,1,0.4,False", "3,1,0.4,True")
    with pytest.raises(ValueError, match="propensity >= threshold"):
        system.evaluate(store, write_predictions(store, inconsistent))
    with pytest.raises(StoreNotFoundError):
        system.evaluate(store, "predictions/none/predictions.csv")
    assert store.latest("evaluations") is None


# -- ingest and prepare ----------------------------------------------------------------------------------------------


def test_ingest_raw_never_overwrites(store, tmp_path):
    first_source = raw_file(tmp_path / "first")
    first = system.ingest_raw(store, first_source)
    run_1 = store.latest("raw")
    assert first == store.run_path("raw", run_1, system.RAW_FILE)
    before = store.local_path(first).stat()
    second = system.ingest_raw(store, raw_file(tmp_path / "second", offset=1000))
    run_2 = store.latest("raw")
    assert run_2 != run_1 and second == store.run_path("raw", run_2, system.RAW_FILE)
    assert store.runs("raw") == sorted([run_1, run_2])
    assert store.read_bytes(first) == first_source.read_bytes()  # the earlier file untouched
    after = store.local_path(first).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert store.read_bytes(second) == (tmp_path / "second").read_bytes()
    lineage = store.read_lineage("raw", run_2)
    assert lineage["source"] == str(tmp_path / "second")
    assert lineage["outputs"][system.RAW_FILE]["sha256"] == store.sha256(second)
    with pytest.raises(FileNotFoundError, match="raw data not found"):
        system.ingest_raw(store, tmp_path / "absent")
    assert store.latest("raw") == run_2


def test_ingest_raw_refuses_invalid_data_and_keeps_the_previous_latest(store, tmp_path):
    system.ingest_raw(store, raw_file(tmp_path / "good"))
    good = store.latest("raw")
    (tmp_path / "bad").write_text("this is not\ta labelled\tcollection\n", encoding="utf-8")
    with pytest.raises(DataValidationError):
        system.ingest_raw(store, tmp_path / "bad")
    assert store.latest("raw") == good


def test_prepare_from_a_source_writes_every_output(store, tmp_path):
    result = system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    run = result["run"]
    assert result["rows"]["processed"] == 120 and result["duplicates_removed"] == 0
    assert sum(result["rows"][s] for s in stages.SPLITS) == 120 and result["rows"]["scoring"] == result["rows"]["test"]
    for kind in ("processed", "split", "scoring"):
        assert store.latest(kind) == run and store.read_lineage(kind, run)["outputs"]["train"]["rows"] > 0
    scoring = store.read_csv(result["outputs"]["scoring"], dtype={"id": "string"})
    assert list(scoring.columns) == ["id", "text"] and scoring.id.iloc[0] == "test-0"
    again = system.prepare(store)  # the latest raw run: not ingested again
    assert len(store.runs("raw")) == 1 and again["run"] != run
    assert store.sha256(again["outputs"]["train"]) == store.sha256(result["outputs"]["train"])


def tmp_files(root) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names if name.startswith(".aml-tmp-")]


@pytest.mark.parametrize(
    ("failing_write", "written"),
    [
        (1, []),  # processed/messages.csv
        (3, ["processed/messages.csv", "split/train.csv"]),  # split/validation.csv, half written
        (5, ["processed/messages.csv", "split/train.csv", "split/validation.csv", "split/test.csv"]),
        (
            7,
            [  # the second lineage record: every data file is in place
                "processed/lineage.json",
                "processed/messages.csv",
                "scoring/messages.csv",
                "split/test.csv",
                "split/train.csv",
                "split/validation.csv",
            ],
        ),
    ],
)
def test_prepare_that_crashes_half_way_leaves_latest_unchanged(store, tmp_path, monkeypatch, failing_write, written):
    first = system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    before = {kind: store.latest(kind) for kind in ("processed", "split", "scoring")}
    runs_before = {kind: store.runs(kind) for kind in before}
    calls = {"n": 0}
    write_all = datastore._write_all

    def crash_on_nth_write(fh, data):
        calls["n"] += 1
        if calls["n"] == failing_write:
            fh.write(memoryview(data)[: len(data) // 2])  # half the file, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fh, data)

    monkeypatch.setattr(datastore, "_write_all", crash_on_nth_write)
    with pytest.raises(OSError, match="No space left"):
        system.prepare(store, system.PrepareConfig(seed=7))
    monkeypatch.setattr(datastore, "_write_all", write_all)

    assert {kind: store.latest(kind) for kind in before} == before == dict.fromkeys(before, first["run"])
    new_runs = {kind: sorted(set(store.runs(kind)) - set(runs_before[kind])) for kind in before}
    found = sorted(
        f"{kind}/{name}" for kind, runs in new_runs.items() for run in runs for name in store.list(f"{kind}/{run}")
    )
    assert found == sorted(
        written
    )  # what was written before the crash is complete; the half-written file never appears
    assert tmp_files(store.root) == []
    assert store.read_csv(store.run_path("split", first["run"], "train.csv")).shape[0] == first["rows"]["train"]
    later = system.prepare(store, system.PrepareConfig(seed=7))  # the store still works
    assert store.latest("split") == later["run"] != first["run"]


def test_prepare_of_invalid_raw_data_leaves_latest_unchanged(store, tmp_path):
    first = system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    store.write_bytes("raw/broken/SMSSpamCollection", b"ham\tfine\nspam\tWIN\nno label column here\n")
    with pytest.raises(DataValidationError, match="tab-separated"):
        system.prepare(store, system.PrepareConfig(raw="raw/broken/SMSSpamCollection"))
    with pytest.raises(FileNotFoundError, match="raw/none"):
        system.prepare(store, system.PrepareConfig(raw="raw/none/SMSSpamCollection"))
    assert all(store.latest(kind) == first["run"] for kind in ("processed", "split", "scoring"))
    assert len(store.runs("split")) == 1


# -- profile and data tests in prepare -------------------------------------------------------------------------------


def test_prepare_writes_the_profile_and_tests_against_the_latest(store, tmp_path):
    from aml.spam.profiling import Profile

    first = system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    assert set(first["outputs"]) == {"processed", *stages.SPLITS, "scoring"}  # the return contract is kept
    run = first["run"]
    assert first["profile"] == {"json": f"processed/{run}/profile.json", "html": f"processed/{run}/profile.html"}
    saved = Profile.from_dict(store.read_json(first["profile"]["json"]))
    assert saved.rows == first["rows"]["processed"] == 120 and saved.target["counts"] == {"ham": 90, "spam": 30}
    assert store.read_text(first["profile"]["html"]).startswith("<!DOCTYPE html>")
    lineage = store.read_lineage("split", run)
    assert lineage["profile"]["profile.json"]["sha256"] == store.sha256(first["profile"]["json"])
    tests = first["data_tests"]
    assert tests["passed"] and tests["reference"] is None and tests["failures"] == []  # no reference: schema only
    second = system.prepare(store, system.PrepareConfig(seed=3))  # the same data: within every bound
    assert second["data_tests"]["passed"] and second["data_tests"]["reference"] == f"processed/{run}"
    assert second["data_tests"]["checks"] > first["data_tests"]["checks"]


def test_prepare_refuses_shifted_data_listing_every_failed_check_and_keeps_latest(store, tmp_path):
    from aml.spam import datatests, profiling, sms

    first = system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw"))))
    before = {kind: store.latest(kind) for kind in ("processed", "split", "scoring")}
    shifted = raw_file(tmp_path / "shifted", n_ham=40, n_spam=60, offset=500)  # 60% spam instead of 25%
    store.write_bytes("raw/shifted/SMSSpamCollection", shifted.read_bytes())
    expected = datatests.check_data(
        sms.preprocess(sms.read_sms_file(shifted))[0],
        profiling.Profile.from_dict(store.read_json(first["profile"]["json"])),
    )
    assert len(expected.failures) >= 2 and "target.spam_share" in [f.name for f in expected.failures]

    with pytest.raises(DataValidationError) as caught:
        system.prepare(store, system.PrepareConfig(raw="raw/shifted/SMSSpamCollection"))
    message = str(caught.value)
    assert f"{len(expected.failures)} of {expected.checks} checks" in message
    assert all(f"- {failure.name}: " in message for failure in expected.failures), message
    assert {kind: store.latest(kind) for kind in before} == before == dict.fromkeys(before, first["run"])
    assert store.runs("split") == [first["run"]] and store.runs("scoring") == [first["run"]]  # no split written
    refused = message.rsplit("the refused data's profile: ", 1)[1].strip()
    assert refused.endswith("/profile.html") and store.read_text(refused).startswith("<!DOCTYPE html>")

    accepted = system.prepare(store, system.PrepareConfig(raw="raw/shifted/SMSSpamCollection", data_tests=False))
    assert accepted["data_tests"]["passed"] and accepted["data_tests"]["reference"] is None
    assert store.latest("split") == accepted["run"] != first["run"]  # a deliberate change, accepted explicitly


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_data_tests_must_be_true_or_false(value):
    with pytest.raises(system.StageError, match="data_tests"):
        system.make_config("prepare", {}, {"data_tests": value})


# -- experiments and monitoring --------------------------------------------------------------------------------------


def test_score_config_takes_a_version_number_as_the_challenger():
    assert system.make_config("score", {}, {"challenger": 3}).challenger == "3"  # YAML/JSON numbers
    config = system.make_config("score", {"challenger": "2", "mode": "ab", "share": 0.25}, {})
    assert (config.challenger, config.mode, config.share, config.monitoring) == ("2", "ab", 0.25, True)


@pytest.fixture
def two_versions(store, tmp_path, toy):
    """A prepared store and two served versions: "1" (linear SVM, lean) and "2" (naive Bayes, full model)."""
    from aml.mlops import registry

    system.prepare(store, system.PrepareConfig(source=str(raw_file(tmp_path / "raw", n_ham=300, n_spam=100))))
    _, frames = system.load_split(store)
    served = {}
    for version, name in (("1", "tfidf_linear_svm"), ("2", "tfidf_naive_bayes")):
        model = stages.fit(models.make_model(name), frames["train"])
        served[version] = system.serving_model(
            model, 0.5, registry.Served("m", version, None, "champion", False, tags={})
        )
    return served


def test_score_batch_stores_the_drift_report_of_the_batch(store, two_versions):
    result = system.score_batch(store, two_versions["1"], store.run_path("split", store.latest("split"), "test.csv"))
    assert result["monitoring"]["drift"] in (True, False) and "error" not in result["monitoring"]
    record = store.read_json(result["monitoring"]["report"])
    assert record["model_version"] == "1" and record["batch_size"] == result["count"]
    assert {s["name"] for s in record["stats"]} >= {"chars:ks", "propensity:psi", "text:domain_auc"}
    assert result["monitoring_seconds"] > 0 and result["experiment"] is None
    off = system.score_batch(
        store,
        two_versions["1"],
        "scoring/" + store.latest("scoring") + "/messages.csv",
        system.ScoreConfig(monitoring=False),
    )
    assert off["monitoring"] is None and not store.exists(off["output"].replace("predictions.csv", "drift.json"))


def test_a_failing_monitor_never_fails_the_scoring(store, two_versions, monkeypatch):
    from aml.project import monitoring

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(monitoring, "batch_report", broken)
    result = system.score_batch(store, two_versions["1"], "scoring/" + store.latest("scoring") + "/messages.csv")
    assert result["monitoring"] == {"error": "RuntimeError: disk on fire"} and store.exists(result["output"])


def test_shadow_scores_the_challenger_beside_the_champion(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    config = system.ScoreConfig(challenger="2", mode="shadow")
    result = system.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    df = store.read_csv(result["output"], dtype={"id": "string"})
    texts = stages.prepare_scoring_data(system.read_frame(store, test))["text"]
    assert np.allclose(df["propensity"], two_versions["1"].propensities(texts))  # the champion answers
    assert np.allclose(df["challenger_propensity"], two_versions["2"].propensities(texts))
    assert (df["model_version"].astype(str) == "1").all() and (df["challenger_version"].astype(str) == "2").all()
    assert result["experiment"]["mode"] == "shadow" and 0 <= result["experiment"]["agreement"] <= 1
    lineage = store.read_lineage("predictions", result["run"])
    assert lineage["challenger"]["version"] == "2" and lineage["model"]["version"] == "1"
    evaluation = system.evaluate(store, result["output"], models=two_versions.get)
    experiment = evaluation["monitoring"]["experiment"]
    assert experiment["mode"] == "shadow" and experiment["recommendation"] in ("promote", "keep")
    assert (experiment["champion_version"], experiment["challenger_version"]) == ("1", "2")
    assert store.exists(evaluation["output"].replace("metrics.json", "monitoring.json"))


def test_ab_serves_the_challengers_share_by_id(store, two_versions):
    from aml.mlops import experiments

    test = store.run_path("split", store.latest("split"), "test.csv")
    config = system.ScoreConfig(challenger="2", mode="ab", share=0.5)
    result = system.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    df = store.read_csv(result["output"], dtype={"id": "string", "model_version": "string"})
    to_challenger = experiments.assign(df["id"], 0.5)
    assert (df["arm"] == np.where(to_challenger, "challenger", "champion")).all()
    assert (df["model_version"] == np.where(to_challenger, "2", "1")).all()
    assert result["experiment"]["challenger_rows"] == int(to_challenger.sum()) > 0
    texts = stages.prepare_scoring_data(system.read_frame(store, test))["text"]
    expected = np.where(to_challenger, two_versions["2"].propensities(texts), two_versions["1"].propensities(texts))
    assert np.allclose(df["propensity"], expected)
    again = system.score_batch(store, two_versions["1"], test, config, challenger=two_versions["2"])
    assert store.read_csv(again["output"])["arm"].tolist() == df["arm"].tolist()  # sticky
    evaluation = system.evaluate(store, result["output"], models=two_versions.get)
    champion_rows = df[~to_challenger]
    assert evaluation["metrics"]["confusion_matrix"][0][0] + evaluation["metrics"]["confusion_matrix"][1][1] <= len(
        champion_rows
    )  # the champion arm's metrics
    assert evaluation["monitoring"]["experiment"]["mode"] == "ab"


def test_a_challenger_that_is_the_champion_is_no_experiment(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    config = system.ScoreConfig(challenger="1")
    result = system.score_batch(store, two_versions["1"], test, config, challenger=two_versions["1"])
    assert result["experiment"] is None
    assert "challenger_propensity" not in store.read_csv(result["output"]).columns


def test_evaluate_monitors_performance_history_and_slices(store, two_versions):
    test = store.run_path("split", store.latest("split"), "test.csv")
    first = system.evaluate(
        store, system.score_batch(store, two_versions["1"], test)["output"], models=two_versions.get
    )
    second = system.evaluate(
        store, system.score_batch(store, two_versions["1"], test)["output"], models=two_versions.get
    )
    monitoring = second["monitoring"]
    assert monitoring["performance"]["metrics"]["aucpr"] == pytest.approx(second["metrics"]["aucpr"])
    assert [h["run"] for h in monitoring["history"]] == [first["run"], "this evaluation"]
    assert monitoring["bias"]["worst"] and monitoring["bias"]["slices"][0]["slice"] == "all"  # texts via lineage
    assert isinstance(monitoring["drift"], bool)
    unknown = system.evaluate(store, system.score_batch(store, two_versions["1"], test)["output"], models=None)
    assert unknown["monitoring"]["performance"] is None and unknown["monitoring"]["bias"]["worst"]
