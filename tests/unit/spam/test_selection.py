import pytest

from aml.core import modelstore
from aml.spam import MODEL_NAME, models, selection, stages


@pytest.fixture
def splits(toy_frame):
    return {"train": toy_frame(80, 0), "validation": toy_frame(40, 1), "test": toy_frame(40, 2)}


def test_train_select_save(splits, tmp_path):
    candidates = {"rule": models.KeywordHeuristic(), "nb": models.tfidf_naive_bayes()}
    result = selection.train_and_select(splits, candidates)
    assert result.best in candidates and result.best == result.comparison.best
    assert result.comparison.table["bank_pass_rate"].between(0, 1).all()
    m = result.metrics()
    assert m["best_model"] == result.best and set(m["test_by_model"]) == set(candidates)
    assert set(m["test"]) == set(m["validation"]) == set(selection.REPORTED)
    assert 0 <= m["threshold"] <= 1
    path = selection.save_selected(result, store=tmp_path, extra={"seed": 1})
    loaded, meta = modelstore.load(modelstore.store_path(MODEL_NAME, tmp_path))
    assert path == result.artefact == tmp_path / MODEL_NAME and meta["model"] == result.best and meta["seed"] == 1
    assert meta["threshold"] == pytest.approx(result.threshold) and meta["validation"]["aucpr"] > 0


def test_build_spam_filter_on_real_data(built_spam_filter):
    result, folder = built_spam_filter
    assert (folder / "data" / "seed-42" / "train.csv").is_file()
    assert stages.split_manifest(folder / "data", 42)["seed"] == 42
    assert result.metrics()["test"]["aucpr"] > 0.97
    model, meta = modelstore.load(modelstore.store_path(MODEL_NAME, folder / "store"))
    assert model.predict_proba(["WINNER! claim your £1000 prize, call 09061701461"])[0, 1] >= meta["threshold"]
    assert meta["threshold"] == result.threshold and meta["seed"] == 42


def test_search_space_and_tuned_candidates(splits):
    smoke = selection.search_space("smoke")
    assert set(smoke) == set(selection.SEARCH_SPACE) and all(len(v) <= 2 for g in smoke.values() for v in g.values())
    assert smoke["tfidf_random_forest"] == {"n_estimators": [300, 600], "max_depth": [None]}
    assert selection.search_space("full") is selection.SEARCH_SPACE
    space = {"tfidf_naive_bayes": {"alpha": [0.05, 0.5]}}
    seen = []
    tables = selection.tune_benchmarks(splits, space, progress=seen.append)
    assert seen == ["tfidf_naive_bayes"] and len(tables["tfidf_naive_bayes"]) == 2
    summary = selection.search_table(tables)
    assert list(summary.index) == [("tfidf_naive_bayes", "alpha=0.05"), ("tfidf_naive_bayes", "alpha=0.5")]
    assert {"validation_aucpr", "chosen"} <= set(summary.columns) and summary["chosen"].sum() == 1
    candidates, chosen = selection.tuned_candidates(tables, include_transformer=False)
    assert chosen["tfidf_naive_bayes"]["alpha"] in (0.05, 0.5)
    assert candidates["tfidf_naive_bayes"].get_params()["clf__alpha"] == chosen["tfidf_naive_bayes"]["alpha"]
    assert "keyword_heuristic" in candidates and "minilm_embedding_logreg" not in candidates
    with_transformer, _ = selection.tuned_candidates(tables, params=models.transformer_params("smoke"))
    assert with_transformer["minilm_finetuned"].get_params()["max_train"] == 64
    assert with_transformer["tfidf_minilm_stack"].second.max_steps_per_epoch == 4
