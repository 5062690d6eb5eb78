"""The course's stage functions (aml.spam.stages) on small, known data."""

import json

import numpy as np
import pandas as pd
import pytest

from aml.core.hashing import sha256
from aml.core.splits import SPLITS, SplitMismatchError
from aml.spam import models, stages
from aml.spam.sms import DataValidationError


def raw(n_ham=200, n_spam=40):
    rows = [("ham", f"see you at {i} pm") for i in range(n_ham)] + [
        ("spam", f"WIN £{i}00 call 0800{i}") for i in range(n_spam)
    ]
    return pd.DataFrame(rows, columns=["label", "text"])


def test_load_data_reads_the_raw_collection_and_csv(tmp_path):
    (tmp_path / "sms").write_text("ham\t hi there \nspam\tWIN now\n", encoding="utf-8")
    df = stages.load_data(tmp_path / "sms")
    assert df.to_dict("list") == {"label": ["ham", "spam"], "text": [" hi there ", "WIN now"]}
    path = stages.save_data(df.assign(text=["NA", "null"]), tmp_path / "d" / "x.csv")
    assert stages.load_data(path)["text"].tolist() == ["NA", "null"]  # strings stay strings, not missing values
    with pytest.raises(FileNotFoundError, match="not found"):
        stages.load_data(tmp_path / "absent.csv")
    pd.DataFrame({"message": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataValidationError, match="no 'text' column"):
        stages.load_data(tmp_path / "bad.csv")
    pd.DataFrame({"label": ["ham", "spam"], "text": ["a", "b"], "y": [1, 0]}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(DataValidationError, match="disagrees"):
        stages.load_data(tmp_path / "y.csv")


def test_save_data_is_atomic(tmp_path, monkeypatch):
    path = stages.save_data(raw(3, 1), tmp_path / "x.csv")
    before = path.read_bytes()

    def broken_to_csv(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        stages.save_data(raw(9, 9), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_split_is_deduplicated_stratified_disjoint_and_seeded():
    df = pd.concat([raw(), raw().iloc[:5]], ignore_index=True)  # 5 duplicates
    train, val, test = stages.prepare_train_validation_test_split(df, seed=1)
    assert [len(train), len(val), len(test)] == [168, 36, 36]
    for part in (train, val, test):
        assert part["y"].mean() == pytest.approx(40 / 240, abs=0.02) and list(part.columns) == ["label", "text", "y"]
    assert not set(train["text"]) & set(test["text"]) and not set(val["text"]) & set(test["text"])
    assert stages.prepare_train_validation_test_split(df, seed=1)[2]["text"].tolist() == test["text"].tolist()
    assert stages.prepare_train_validation_test_split(df, seed=2)[2]["text"].tolist() != test["text"].tolist()
    with pytest.raises(ValueError, match="fractions"):
        stages.prepare_train_validation_test_split(df, fractions=(0.5, 0.5, 0.5))


def write_raw(path):
    path.write_text(
        "\n".join([f"ham\tsee you at {i}" for i in range(60)] + [f"spam\tWIN {i}" for i in range(20)] + ["spam\tWIN 1"])
    )
    return path


def test_save_load_prepare_and_ensure_splits(tmp_path):
    parts = stages.prepare(tmp_path / "out", seed=3, raw_path=write_raw(tmp_path / "raw"))
    assert sum(len(p) for p in parts.values()) == 80  # the duplicate was removed
    manifest = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert manifest["seed"] == 3 and manifest["rows"] == {name: len(parts[name]) for name in SPLITS}
    assert manifest["fractions"] == list(stages.FRACTIONS)
    assert manifest["source"]["name"] == "raw" and len(manifest["source"]["sha256"]) == 64
    assert sorted(manifest["files"]) == ["test.csv", "train.csv", "validation.csv"]
    loaded = stages.load_splits(tmp_path / "out", seed=3)
    assert list(loaded) == list(SPLITS) and loaded["test"]["text"].tolist() == parts["test"]["text"].tolist()
    with pytest.raises(SplitMismatchError, match="made with seed 3, not 4.*seed=4"):
        stages.load_splits(tmp_path / "out", seed=4)
    loaded["train"].assign(y=0).to_csv(tmp_path / "out" / "train.csv", index=False)
    with pytest.raises(SplitMismatchError, match="train.csv in .* changed"):
        stages.load_splits(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="prepare"):
        stages.load_splits(tmp_path / "empty")


def test_ensure_splits_gives_each_seed_its_own_folder_and_never_another_seeds(tmp_path, monkeypatch, caplog):
    raw = write_raw(tmp_path / "raw")
    from aml.core import datasets

    monkeypatch.setattr(datasets, "fetch", lambda name: tmp_path)  # the registry's copy: our small file
    monkeypatch.setattr(stages.sms, "FILENAME", "raw")
    data = tmp_path / "data"
    s42 = stages.ensure_splits(data, seed=42)
    assert "no splits of seed 42" in caplog.text
    s7 = stages.ensure_splits(data, seed=7)
    assert sorted(p.name for p in data.iterdir()) == ["seed-42", "seed-7"]  # both stay
    assert stages.split_dir(data, 7) == data / "seed-7"
    assert s42["train"]["text"].tolist() != s7["train"]["text"].tolist()
    m7, m42 = stages.split_manifest(data, 7), stages.split_manifest(data, 42)
    assert m7["seed"] == 7 and m42["seed"] == 42 and m7["files"]["train.csv"] != m42["files"]["train.csv"]
    assert m7["source"] == m42["source"] and m7["source"]["sha256"] == sha256(raw)
    caplog.clear()
    again = stages.ensure_splits(data, seed=7)  # found, checked, not prepared again
    assert "preparing" not in caplog.text and again["test"].equals(s7["test"])
    # a seed-7 folder holding seed-42 files (copied by hand) is refused, not used and not overwritten
    for f in (data / "seed-42").iterdir():
        (data / "seed-7" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(SplitMismatchError, match="made with seed 42, not 7"):
        stages.ensure_splits(data, seed=7)
    assert json.loads((data / "seed-7" / "splits.json").read_text())["seed"] == 42
    with pytest.raises(TypeError, match="integer"):
        stages.split_dir(data, "7")


def test_load_splits_refuses_files_without_a_manifest(tmp_path):
    stages.prepare(tmp_path / "out", seed=3, raw_path=write_raw(tmp_path / "raw"))
    (tmp_path / "out" / "splits.json").unlink()
    with pytest.raises(SplitMismatchError, match="no splits.json: the seed of its split files is unknown"):
        stages.load_splits(tmp_path / "out", seed=3)


def test_prepare_scoring_data_keeps_ids_and_refuses_empty_text():
    out = stages.prepare_scoring_data(pd.DataFrame({"text": [" hi ", "WIN"]}))
    assert out.to_dict("list") == {"id": ["0", "1"], "text": ["hi", "WIN"]}
    labelled = stages.prepare_scoring_data(pd.DataFrame({"id": ["a"], "text": ["x"], "label": ["ham"], "y": [0]}))
    assert list(labelled.columns) == ["id", "text", "label", "y"] and labelled["id"].tolist() == ["a"]
    with pytest.raises(DataValidationError, match=r"empty text, ids \['b'\]"):
        stages.prepare_scoring_data(pd.DataFrame({"id": ["a", "b"], "text": ["x", "  "]}))
    with pytest.raises(DataValidationError, match="needs a 'text' column"):
        stages.prepare_scoring_data(pd.DataFrame({"message": ["x"]}))


def test_fit_score_evaluate(toy_frame):
    train, val = toy_frame(60, 0), toy_frame(30, 1)
    model = stages.fit(models.tfidf_logreg(), train)
    p = stages.predict_propensity(model, val)
    assert p.shape == (len(val),) and ((0 <= p) & (p <= 1)).all()
    assert np.allclose(stages.predict_propensity(model, val["text"].tolist()), p)
    scored = stages.score(model, val, threshold=0.5)
    assert list(scored.columns) == ["text", "y", "propensity", "prediction"] and "propensity" not in val
    assert (scored["prediction"] == (scored["propensity"] >= 0.5)).all()
    results = stages.evaluate(scored, ["aucpr", "recall", "threshold"])
    assert list(results) == ["aucpr", "recall", "threshold"] and results["threshold"] == 0.5
    assert results["aucpr"] > 0.9
    assert stages.evaluate(scored)["confusion_matrix"] == stages.evaluate(scored.copy())["confusion_matrix"]


def test_evaluate_of_scored_data_read_back_infers_the_threshold():
    df = pd.DataFrame({"y": [0, 1, 1, 0], "propensity": [0.1, 0.8, 0.6, 0.3], "prediction": [False, True, True, False]})
    assert stages.evaluate(df, ["threshold", "recall"]) == {"threshold": 0.6, "recall": 1.0}
    with pytest.raises(ValueError, match="do not follow the rule"):
        stages.evaluate(df.assign(prediction=[True, True, False, False]))
    with pytest.raises(ValueError, match=r"\['propensity'\] are missing"):
        stages.evaluate(df.drop(columns="propensity"))
    with pytest.raises(ValueError, match="unknown metrics"):
        stages.evaluate(df, ["auc"])


def test_validate_flags_overfitting_and_a_weak_model(toy_frame):
    train, val = toy_frame(60, 0), toy_frame(30, 1)
    good = stages.validate(stages.fit(models.tfidf_logreg(), train), train, val)
    assert good["passed"] and set(good["checks"]) == {"overfit", "min_aucpr"}
    weak = stages.validate(stages.fit(models.tfidf_logreg(), train), train, val, min_aucpr=1.01)
    assert not weak["passed"] and not weak["checks"]["min_aucpr"]["passed"] and weak["checks"]["overfit"]["passed"]
    noisy = val.assign(y=np.random.default_rng(0).permutation(val["y"].to_numpy()))  # labels unrelated to text
    overfit = stages.validate(stages.fit(models.tfidf_logreg(), train), train, noisy)
    assert not overfit["checks"]["overfit"]["passed"] and overfit["checks"]["overfit"]["value"] > 0.05


@pytest.fixture
def prior(toy):
    """A model that ranks nothing: the same propensity for every text (AUCPR = the share of spam)."""
    from sklearn.dummy import DummyClassifier

    return stages.fit(DummyClassifier(strategy="prior"), toy["train"])


def test_validate_without_a_champion(toy, naive_bayes, prior):
    result = stages.validate(naive_bayes, toy["train"], toy["validation"])
    assert result["passed"] and set(result["checks"]) == {"overfit", "min_aucpr"}
    assert result["test_aucpr"] == pytest.approx(1.0) and result["checks"]["min_aucpr"]["limit"] == stages.MIN_AUCPR
    weak = stages.validate(prior, toy["train"], toy["validation"])
    assert not weak["passed"] and not weak["checks"]["min_aucpr"]["passed"] and weak["checks"]["overfit"]["passed"]
    assert weak["test_aucpr"] == pytest.approx(toy["validation"].y.mean())


def test_validate_with_a_champion(toy, naive_bayes, prior):
    lenient = {"max_gap": 1.0, "min_aucpr": 0.0}  # only the comparison with the champion can fail
    worse = stages.validate(prior, toy["train"], toy["validation"], champion=naive_bayes, **lenient)
    assert not worse["passed"] and set(worse["checks"]) == {"overfit", "min_aucpr", "champion"}
    champion = worse["checks"]["champion"]
    assert not champion["passed"] and champion["limit"] == pytest.approx(1.0)
    assert champion["value"] == pytest.approx(toy["validation"].y.mean())
    assert worse["checks"]["overfit"]["passed"] and worse["checks"]["min_aucpr"]["passed"]
    better = stages.validate(naive_bayes, toy["train"], toy["validation"], champion=prior, **lenient)
    assert better["passed"] and better["checks"]["champion"]["passed"]
    tie = stages.validate(naive_bayes, toy["train"], toy["validation"], champion=naive_bayes)
    assert tie["passed"] and tie["checks"]["champion"]["passed"]  # as good as the champion: may replace it
    strict = stages.validate(naive_bayes, toy["train"], toy["validation"], champion=prior, min_aucpr=1.5)
    assert not strict["passed"] and strict["checks"]["champion"]["passed"]  # every check counts


def test_validate_runs_the_behavioural_gate_at_the_threshold(toy, naive_bayes, prior):
    from aml.spam import behaviour

    lenient = {"max_gap": 1.0, "min_aucpr": 0.0}  # only the behavioural checks can fail
    result = stages.validate(naive_bayes, toy["train"], toy["validation"], threshold=0.5, **lenient)
    summary = result["behaviour"]
    assert summary == behaviour.summary(naive_bayes, 0.5)
    gated = {k: v for k, v in result["checks"].items() if k.startswith("behaviour:")}
    assert gated == behaviour.gate_checks(summary)
    assert set(gated) == {f"behaviour:{name}" for name in behaviour.GATE}
    assert gated["behaviour:bank"]["value"] == summary["bank_pass_rate"]
    assert result["passed"] == all(c["passed"] for c in gated.values())
    # a model that ranks nothing (one propensity for every text) catches no spam: the gate must say so
    flat = stages.validate(prior, toy["train"], toy["validation"], threshold=0.5, **lenient)
    assert not flat["passed"] and not flat["checks"]["behaviour:spam"]["passed"]
    only_bank = stages.validate(
        naive_bayes, toy["train"], toy["validation"], threshold=0.5, behaviour_limits={"bank": 0.0}, **lenient
    )
    assert only_bank["passed"] and set(only_bank["checks"]) == {"overfit", "min_aucpr", "behaviour:bank"}
    json.dumps(result)  # logged to MLflow as JSON


def test_validate_samples_predictions_of_both_classes(toy, naive_bayes):
    result = stages.validate(naive_bayes, toy["train"], toy["validation"], samples=2, seed=3)
    rows = result["samples"]
    assert [r["prediction"] for r in rows] == [1, 1, 0, 0]
    texts = set(toy["validation"]["text"])
    for row in rows:
        assert row["text"] in texts and 0 <= row["propensity"] <= 1
        assert (row["propensity"] >= 0.5) == bool(row["prediction"]) and row["correct"] == (
            row["y"] == row["prediction"]
        )
    assert rows == stages.validate(naive_bayes, toy["train"], toy["validation"], samples=2, seed=3)["samples"]
    assert stages.validate(naive_bayes, toy["train"], toy["validation"])["samples"] == []


def test_sample_predictions_takes_fewer_when_a_class_is_rare():
    df = pd.DataFrame({"text": ["a", "b", "c"]})
    rows = stages.sample_predictions(df, [0.9, 0.1, 0.2], threshold=0.5, per_class=2)
    assert [(r["text"], r["prediction"]) for r in rows] == [("a", 1), ("b", 0), ("c", 0)]
    assert "y" not in rows[0]


def test_load_and_save_model_are_the_model_store_format(tmp_path, toy_frame):
    model = stages.fit(models.tfidf_naive_bayes(), toy_frame(20, 0))
    path = stages.save_model(model, tmp_path / "m")
    assert (path / "meta.json").is_file()
    assert np.allclose(stages.load_model(path).predict_proba(["hi"]), model.predict_proba(["hi"]))


def test_train_compare_report(toy_frame):
    train, val, test = toy_frame(60, 0), toy_frame(30, 1), toy_frame(30, 2)
    trained = stages.train(models.tfidf_logreg(), train, val, name="lr")
    assert trained.name == "lr" and set(trained.metrics) == {"train", "validation"}
    assert trained.metrics["validation"]["threshold"] == trained.threshold
    assert trained.metrics["validation"]["precision"] >= 0.9 and len(trained.input_example) == 3
    seen = []
    result = stages.compare(
        {"rule": models.KeywordHeuristic(), "lr": models.tfidf_logreg()}, train, val, progress=seen.append
    )
    assert seen == ["rule", "lr"]
    assert list(result.table.columns[:3]) == ["train_aucpr", "validation_aucpr", "threshold"]
    assert result.table["validation_aucpr"].is_monotonic_decreasing and result.best == result.table.index[0]
    assert result.thresholds["lr"] == result.trained["lr"].threshold
    table = stages.report(result, test)
    assert list(table.index) == list(result.table.index) and "test" in result.trained["lr"].scored
    assert table.loc["lr", "aucpr"] > 0.9 and table.loc["lr", "threshold"] == result.thresholds["lr"]


def test_error_examples():
    df = pd.DataFrame({"text": list("abcdefgh"), "y": [0, 0, 0, 0, 1, 0, 1, 1]})
    scored = df.assign(propensity=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    scored["prediction"] = scored["propensity"] >= 0.5
    ex = stages.error_examples(scored, n=3)
    assert ex["false_positives"]["text"].tolist() == ["f"] and ex["false_negatives"].empty


def test_seed_study(toy_frame):
    data = pd.concat([toy_frame(60, 0), toy_frame(60, 1)], ignore_index=True).drop_duplicates("text")
    data = data.assign(label=np.where(data["y"] == 1, "spam", "ham"))[["label", "text"]]
    study = stages.seed_study(lambda seed: models.tfidf_logreg(seed=seed), data, seeds=(0, 1))
    assert list(study.index) == [0, 1] and (study["aucpr"] > 0.8).all()


def test_selection_prefers_the_simpler_model_within_noise():
    table = pd.DataFrame({"validation_aucpr": [0.9950, 0.9942, 0.9900]}, index=["complex", "simple", "weak"])
    trained = {name: None for name in ["weak", "simple", "complex"]}  # candidate order: simplest first
    assert stages.Comparison(table=table, trained=trained).best == "simple"  # 0.0008 below the top: a tie
    table.loc["complex", "validation_aucpr"] = 0.9960  # 0.0018 better: a real difference
    assert stages.Comparison(table=table, trained=trained).best == "complex"


def test_tune_keeps_the_default_unless_clearly_better(toy_frame):
    train, val = toy_frame(60, 0), toy_frame(30, 1)
    grid = {"C": [30.0, 0.001], "seed": [0]}
    table = stages.tune(lambda C, seed: models.tfidf_logreg(C=C, seed=seed), grid, train, val)
    assert list(table.columns[:2]) == ["C", "seed"] and len(table) == 2 and table["chosen"].sum() == 1
    assert {"train_aucpr", "validation_aucpr", "validation_recall", "fit_seconds"} <= set(table.columns)
    params = stages.best_params(table)
    assert stages.best_params(table, grid) == params
    top = table["validation_aucpr"].max()
    assert table.loc[table["chosen"], "validation_aucpr"].iloc[0] >= top - stages.AUCPR_TIE
    assert params == {"C": 30.0, "seed": 0}  # the toy data is separable: a tie, the default (listed first) stays
    forced = table.assign(validation_aucpr=[0.5, 0.9], chosen=[False, True])
    assert stages.best_params(forced, grid) == {"C": 0.001, "seed": 0}
    with pytest.raises(ValueError, match="combinations"):
        stages.best_params(table, {"C": [1.0]})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00\x81binary", "not a readable CSV file"),
        (b"", "not a readable CSV file: No columns"),
        (b"id,text\n1,a\n2,b,c,d\n", "not a readable CSV file"),
        (b"id,text\n1,hello, there\n2,see you, later\n", "rows have more fields than the header"),
        (b"id,text\n" + b"".join(b"%d,a, b, c\n" % (i % 3) for i in range(50)), "quote the texts that contain commas"),
    ],
    ids=["binary", "empty", "ragged", "unquoted commas", "unquoted commas, repeated ids"],
)
def test_load_data_refuses_what_pandas_cannot_parse_naming_the_file(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=message) as caught:
        stages.load_data(path, name="split/run/x.csv")
    assert str(caught.value).startswith("split/run/x.csv") and str(tmp_path) not in str(caught.value)


def test_load_data_names_the_file_in_every_message(tmp_path):
    cases = {
        "header.csv": (b"label,text\n", "split/x/header.csv: the SMS data is empty"),
        "notext.csv": (b"id,body\n1,a\n", "split/x/notext.csv: no 'text' column"),
        "raw": ("ham\tcaf\xe9\n".encode("latin-1"), "split/x/raw:1: not UTF-8 text"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataValidationError, match=message) as caught:
            stages.load_data(tmp_path / name, name=f"split/x/{name}")
        assert str(tmp_path) not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="data file not found: split/x/none.csv"):
        stages.load_data(tmp_path / "none.csv", name="split/x/none.csv")


def test_validate_reports_the_out_of_domain_figures_and_gate(toy, naive_bayes):
    result = stages.validate(naive_bayes, toy["train"], toy["validation"], threshold=0.5, out_of_domain=True)
    assert set(result["out_of_domain"]) >= {"ham_kept", "spam_caught", "aucpr"}
    assert "out_of_domain:ham_lost" not in result["checks"]  # no champion
    result = stages.validate(
        naive_bayes,
        toy["train"],
        toy["validation"],
        threshold=0.5,
        out_of_domain=True,
        champion=naive_bayes,
        champion_threshold=0.5,
    )
    assert result["checks"]["out_of_domain:ham_lost"]["value"] == 0.0 and result["out_of_domain"]["ham_lost"] == []
    assert stages.validate(naive_bayes, toy["train"], toy["validation"], threshold=0.5)["out_of_domain"] is None
