import pytest

from aml import models, modelstore, spam_filter

from .test_evaluation import toy_frame


@pytest.fixture
def splits():
    return {"train": toy_frame(80, 0), "validation": toy_frame(40, 1), "test": toy_frame(40, 2)}


def test_train_select_save(splits, tmp_path):
    candidates = {"rule": models.KeywordHeuristic(), "nb": models.tfidf_naive_bayes()}
    result = spam_filter.train_and_select(splits, candidates)
    assert result.best in candidates and result.best == result.validation.table.index[0]
    m = result.metrics()
    assert m["best_model"] == result.best and set(m["models"]) == set(candidates)
    assert set(m["test"]) == {"aucpr", "precision", "recall", "f1", "ham_blocked"}
    assert 0 <= m["threshold"] <= 1
    path = spam_filter.save_selected(result, store=tmp_path, extra={"seed": 1})
    loaded, meta = modelstore.load_model(spam_filter.MODEL_NAME, store=tmp_path)
    assert path == result.artefact and meta["model"] == result.best and meta["seed"] == 1
    assert meta["threshold"] == pytest.approx(result.threshold)


def test_build_spam_filter_on_real_data(tmp_path):
    from aml import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    result = spam_filter.build_spam_filter(tmp_path / "data", seed=42, store=tmp_path / "store")
    assert (tmp_path / "data" / "train.csv").is_file()
    assert result.metrics()["test"]["aucpr"] > 0.97
    model, meta = modelstore.load_model(spam_filter.MODEL_NAME, store=tmp_path / "store")
    assert model.predict_proba(["WINNER! claim your £1000 prize, call 09061701461"])[0, 1] >= meta["threshold"]
