import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aml.core import modelstore
from aml.core.splits import SplitMismatchError
from aml.mlops import versioning
from aml.spam import pipeline, stages

ROOT = Path(__file__).resolve().parents[3]


def raw_frame(n_ham=60, n_spam=20):
    return pd.DataFrame(
        {
            "label": ["ham"] * n_ham + ["spam"] * n_spam,
            "text": [f"see you at {i} tonight" for i in range(n_ham)]
            + [f"WIN a £{i}00 prize call 0906{i:05d} now" for i in range(n_spam)],
        }
    )


def test_stages(tmp_path):
    raw_frame().to_csv(tmp_path / "raw.csv", index=False)
    paths = pipeline.prepare(tmp_path / "raw.csv", tmp_path / "data", seed=1)
    assert sorted(paths) == ["test", "train", "validation"]
    assert json.loads((tmp_path / "data" / "splits.json").read_text())["seed"] == 1
    with pytest.raises(SplitMismatchError, match="made with seed 1, not 2.*dvc repro"):
        pipeline.train(tmp_path / "data", tmp_path / "model", {"model": "tfidf_logreg"}, seed=2)
    out = pipeline.train(tmp_path / "data", tmp_path / "model", {"model": "tfidf_logreg", "C": 10.0}, seed=1)
    assert 0 <= out["threshold"] <= 1
    model, meta = modelstore.load(tmp_path / "model")  # the model store's artefact format, checksum verified
    assert meta["threshold"] == out["threshold"] and meta["params"]["C"] == 10.0
    assert model.get_params()["clf__C"] == 10.0
    with pytest.raises(SplitMismatchError, match="not 2"):
        pipeline.evaluate(tmp_path / "data", tmp_path / "model", tmp_path / "metrics.json", seed=2)
    metrics = pipeline.evaluate(tmp_path / "data", tmp_path / "model", tmp_path / "metrics.json", seed=1)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics and metrics["test_aucpr"] > 0.9
    assert all(name.startswith("test_") for name in metrics)


def test_write_raw_is_the_validated_collection(tmp_path):
    path = pipeline.write_raw(tmp_path / "sub" / "raw_data.csv")
    raw = stages.load_data(path)
    assert list(raw.columns) == ["label", "text"] and len(raw) == 5574
    assert raw["label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}


def test_main_runs_each_stage_in_the_current_folder(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"split": {"seed": 5}, "train": {"model": "tfidf_naive_bayes", "alpha": 0.1}})
    )
    assert pipeline.main(["raw"]) == 0 and (tmp_path / "data" / "raw_data.csv").is_file()
    raw_frame().to_csv(tmp_path / "data" / "raw_data.csv", index=False)  # small: the stages below stay fast
    assert pipeline.main(["prepare"]) == 0
    assert sorted(p.name for p in (tmp_path / "data").glob("*.csv")) == [
        "raw_data.csv",
        "test.csv",
        "train.csv",
        "validation.csv",
    ]
    assert pipeline.main(["train"]) == 0 and (tmp_path / "model" / "model.joblib").is_file()
    assert (tmp_path / "model" / "meta.json").is_file()
    assert pipeline.main(["evaluate"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["test_aucpr"] > 0.8
    # params.yaml names another seed than the splits on disk: the train stage stops and says how to re-split
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"seed": 6}, "train": {"model": "tfidf_logreg"}}))
    with pytest.raises(SplitMismatchError, match="made with seed 5, not 6"):
        pipeline.main(["train"])
    with pytest.raises(SystemExit):
        pipeline.main(["deploy"])


def test_build_model_and_bad_name():
    assert pipeline.build_model({"model": "tfidf_naive_bayes", "alpha": 0.5}).get_params()["clf__alpha"] == 0.5
    with pytest.raises(ValueError, match="unknown model"):
        pipeline.build_model({"model": "nope"})


def test_prepare_validates_the_raw_data(tmp_path):
    raw_frame().assign(label="eggs").to_csv(tmp_path / "raw.csv", index=False)
    with pytest.raises(ValueError, match="unknown labels"):
        pipeline.prepare(tmp_path / "raw.csv", tmp_path / "data", seed=1)


def test_params_file_matches_pipeline():
    params = pipeline.load_params(ROOT / "assignment2" / "params.yaml")
    assert isinstance(params["split"]["seed"], int)
    pipeline.build_model(params["train"])
    stages = yaml.safe_load((ROOT / "assignment2" / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "train", "evaluate"]


def test_dvc_repro_and_exp_run(tmp_path, monkeypatch):
    """The real pipeline in a scratch repo: repro, then an experiment with another seed."""
    repo = versioning.init_repo(tmp_path / "repo", versioning.remote_settings("local", tmp_path / "remote"))
    shutil.copy(ROOT / "assignment2" / "dvc.yaml", repo)
    params = pipeline.load_params(ROOT / "assignment2" / "params.yaml")
    params["train"] = {"model": "tfidf_naive_bayes", "min_precision": 0.9}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "data").mkdir()
    raw_frame().to_csv(repo / "data" / "raw_data.csv", index=False)
    versioning.track(repo, ["data/raw_data.csv"], "raw", push=False)
    versioning.git(repo, "add", "dvc.yaml", "params.yaml")
    versioning.git(repo, "commit", "-q", "-m", "pipeline")
    versioning.dvc(repo, "repro")
    assert (repo / "dvc.lock").is_file() and json.loads((repo / "metrics.json").read_text())["test_aucpr"] > 0.8
    assert "didn't change" in versioning.dvc(repo, "repro") or "up to date" in versioning.dvc(repo, "status")
    versioning.git(repo, "add", "-A")
    versioning.git(repo, "commit", "-q", "-m", "repro")
    versioning.dvc(repo, "exp", "run", "-S", "split.seed=3")
    shown = versioning.dvc(repo, "exp", "show", "--csv")
    assert "split.seed" in shown and ",3," in shown
    assert json.loads((repo / "data" / "splits.json").read_text())["seed"] == 3  # the experiment's own splits


# -- the project's profile stage (project/dvc.yaml): python -m aml.spam.pipeline profile RAW OUTDIR ------------------


def write_sms(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label}\t{text}\n" for label, text in lines), encoding="utf-8")
    return path


SMS_LINES = [("ham", "see you at 6"), ("spam", "WIN £500 now, call 09061701461"), ("ham", "ok"), ("ham", "ok")]


def test_profile_raw_writes_json_and_html(tmp_path):
    raw = write_sms(tmp_path / "raw" / "SMSSpamCollection", SMS_LINES)
    result = pipeline.profile_raw(raw, tmp_path / "reports")
    data = json.loads((tmp_path / "reports" / "profile.json").read_text())
    assert data == json.loads(json.dumps(result.to_dict())) and data["rows"] == 4
    assert data["target"]["counts"] == {"ham": 3, "spam": 1} and data["duplicates"]["rows"] == 1
    page = (tmp_path / "reports" / "profile.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and str(raw) in page
    # the same data gives byte-identical files: DVC's run cache and the hashes compare versions
    first = {p.name: p.read_bytes() for p in (tmp_path / "reports").iterdir()}
    pipeline.profile_raw(raw, tmp_path / "reports")
    assert {p.name: p.read_bytes() for p in (tmp_path / "reports").iterdir()} == first
    # invalid values are counted (the profile is where they show), not refused
    bad = write_sms(tmp_path / "bad", [("eggs", "  "), *SMS_LINES])
    counted = pipeline.profile_raw(bad, tmp_path / "bad-reports")
    assert counted.invalid["unknown_label"]["count"] == 1 and counted.invalid["empty_text"]["count"] == 1


def test_profile_raw_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        pipeline.profile_raw(tmp_path / "missing", tmp_path / "reports")
    (tmp_path / "three").write_text("ham\ta\tb\n")
    with pytest.raises(ValueError, match="expected 2 tab-separated columns"):
        pipeline.profile_raw(tmp_path / "three", tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_main_profile_stage_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sms(tmp_path / pipeline.PROFILE_RAW, SMS_LINES)
    assert pipeline.main(["profile"]) == 0  # the defaults: data/raw/SMSSpamCollection -> reports/
    assert json.loads((tmp_path / "reports" / "profile.json").read_text())["rows"] == 4
    write_sms(tmp_path / "other.tsv", SMS_LINES[:2])
    assert pipeline.main(["profile", "other.tsv", "out"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["profile.html", "profile.json"]
    assert json.loads((tmp_path / "out" / "profile.json").read_text())["rows"] == 2
    for argv in (["profile", "a", "b", "c"], ["prepare", "data/raw_data.csv"]):
        with pytest.raises(SystemExit):
            pipeline.main(argv)


def test_project_dvc_yaml_is_the_profile_stage():
    """project/dvc.yaml calls this CLI on the DVC-tracked raw file, with the profiling code as dependencies."""
    stage = yaml.safe_load((ROOT / "project" / "dvc.yaml").read_text())["stages"]["profile"]
    assert stage["cmd"].split()[:4] == ["python", "-m", "aml.spam.pipeline", "profile"]
    assert stage["cmd"].split()[4:] == [pipeline.PROFILE_RAW, pipeline.PROFILE_DIR]
    assert stage["deps"][0] == pipeline.PROFILE_RAW
    assert stage["outs"] == [f"{pipeline.PROFILE_DIR}/{name}" for name in pipeline.PROFILE_FILES]
    library = yaml.safe_load((ROOT / "project" / "params.yaml").read_text())["library"]
    code = [d.replace("${library}", library) for d in stage["deps"][1:]]
    assert {Path(pipeline.__file__).name, "profiling.py", "sms.py"} == {Path(c).name for c in code}
    assert all((ROOT / "project" / c).resolve().is_file() for c in code)  # the paths resolve from project/
