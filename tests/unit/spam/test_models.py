import pickle

import numpy as np
import pytest

from aml.spam import models

HAM = [
    "see you at lunch",
    "ok i will call you later",
    "thanks for dinner",
    "are you home yet",
    "love you mum",
    "running late sorry",
    "what time is the match",
    "can you pick up milk",
]
SPAM = [
    "WIN a £1000 prize! call 09061701461 now",
    "FREE ringtone txt STOP to 85069",
    "Congratulations you have been selected to claim cash",
    "URGENT! your mobile won a bonus call 0800123456",
    "Claim your free entry www.win.com",
    "You won £500 txt WIN to 80086",
    "Free msg: reply YES for offer",
    "Cash prize awaits call 09050000327",
]
X = HAM + SPAM
Y = np.array([0] * len(HAM) + [1] * len(SPAM))


def test_keyword_heuristic_ranks_spam_above_ham():
    h = models.KeywordHeuristic().fit(X, Y)
    p = h.predict_proba(X)
    assert p.shape == (len(X), 2) and np.allclose(p.sum(1), 1) and ((p >= 0) & (p <= 1)).all()
    assert p[len(HAM) :, 1].mean() > p[: len(HAM), 1].mean() + 0.5
    assert h.predict(["hello friend"])[0] == 0 and h.predict(["WIN cash prize call 09061701461"])[0] == 1
    assert h.cue_score("nothing here") == 0


@pytest.mark.parametrize(
    "factory",
    [
        models.tfidf_logreg,
        models.tfidf_random_forest,
        models.tfidf_naive_bayes,
        models.tfidf_linear_svm,
        models.tfidf_cues_linear_svm,
    ],
)
def test_tfidf_models_fit_raw_text_and_pickle(factory):
    model = factory()
    if factory in (models.tfidf_linear_svm, models.tfidf_cues_linear_svm):
        model.set_params(clf__cv=2)
    model.fit(X, Y)
    p = model.predict_proba(["free prize call now", "see you at home"])[:, 1]
    assert p[0] > p[1]
    clone = pickle.loads(pickle.dumps(model))
    assert np.allclose(clone.predict_proba(X), model.predict_proba(X))


def test_word_char_tfidf_has_both_views():
    features = models.word_char_tfidf().fit(X)
    names = features.get_feature_names_out()
    assert any(n.startswith("word__") for n in names) and any(n.startswith("char__") for n in names)


def test_benchmark_models_order():
    names = list(models.benchmark_models(include_transformer=False))
    assert names[0] == "keyword_heuristic" and "tfidf_logreg" in names and "minilm_embedding_logreg" not in names
    assert "minilm_embedding_logreg" in models.benchmark_models()


def test_minilm_path_is_installed_model():
    assert (models.minilm_path() / "config.json").is_file()


def test_sentence_embedder_real_model_and_pickle():
    emb = models.SentenceEmbedder(batch_size=4, max_length=32)
    vectors = emb.fit(X).transform(X)
    assert vectors.shape == (len(X), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # order is preserved although batches are built in length order
    single = emb.transform([X[3]])
    assert np.allclose(single[0], vectors[3], atol=1e-5)
    state = pickle.dumps(emb)
    assert len(state) < 10_000  # the network is not pickled
    assert np.allclose(pickle.loads(state).transform([X[3]]), single, atol=1e-6)
    assert emb.transform([]).shape == (0, 384)


def test_sentence_embedder_reuses_the_last_batch(monkeypatch):
    emb = models.SentenceEmbedder(batch_size=4, max_length=32)
    first = emb.fit_transform(X)
    first[0, 0] = 99.0  # the caller's copy: the cache is not touched
    monkeypatch.setattr(emb, "_embed", lambda texts: pytest.fail("the same texts were embedded twice"))
    again = emb.transform(list(X))
    assert again[0, 0] != 99.0 and again.shape == (len(X), 384)
    monkeypatch.undo()
    assert "_last" not in pickle.loads(pickle.dumps(emb)).__dict__  # the cache is not saved with the model


def test_embedding_logreg_learns():
    model = models.embedding_logreg().fit(X, Y)
    assert (model.predict(X) == Y).mean() >= 0.9


def test_make_model_builds_every_catalogue_entry_with_params():
    for name in models.CATALOGUE:
        assert models.make_model(name, seed=3) is not None
    assert models.make_model("tfidf_logreg", C=2.0).get_params()["clf__C"] == 2.0


def test_make_model_rejects_unknown_names_and_params():
    with pytest.raises(ValueError, match="unknown model"):
        models.make_model("nope")
    with pytest.raises(ValueError, match="bad parameters"):
        models.make_model("tfidf_logreg", not_a_param=1)


def test_benchmark_models_without_transformer():
    assert "minilm_embedding_logreg" not in models.benchmark_models(include_transformer=False)
    assert list(models.benchmark_models())[0] == "keyword_heuristic"


def test_spam_cues_flag_numbers_prices_and_links():
    cues = models.SpamCues().fit(X)
    names = list(cues.get_feature_names_out())
    out = cues.transform(["Test text", "Call 09061234567 now", "£1.50/msg see www.example.com", "see you at 9:30"])
    assert out.shape == (4, len(models.STRUCTURAL_CUES) + 1)
    assert not out[0].any() and not out[3].any()  # placeholders and times carry no cue
    assert out[1, names.index("long_number")] == 1 and out[1, names.index("call_to_number")] == 1
    assert out[2, names.index("price")] == 1 and out[2, names.index("link")] == 1
    assert np.allclose(models.SpamCues(weight=3.0).transform(["Call 09061234567 now"]), 3 * out[1])


def test_linear_svm_default_has_no_cues():
    features = models.tfidf_linear_svm().named_steps["tfidf"]
    assert [name for name, _ in features.transformer_list] == ["word", "char"]
    assert features.get_params()["char__min_df"] == 2
    # the cues stay reachable through the parameters
    with_cues = models.tfidf_linear_svm(char_min_df=5, cue_weight=1.0).named_steps["tfidf"]
    assert [name for name, _ in with_cues.transformer_list] == ["word", "char", "cues"]
    assert with_cues.get_params()["char__min_df"] == 5 and with_cues.get_params()["cues__weight"] == 1.0


def test_word_char_features_come_from_core_text():
    from aml.core import text

    assert models.word_char_tfidf is text.word_char_tfidf and models.minilm_path is text.minilm_path


def test_cues_linear_svm_entry_fits_toy_data_and_pickles():
    assert "tfidf_cues_linear_svm" in models.CATALOGUE
    model = models.make_model("tfidf_cues_linear_svm", seed=1)
    features = model.named_steps["tfidf"]
    assert [name for name, _ in features.transformer_list] == ["word", "char", "cues"]
    assert features.get_params()["cues__weight"] == 0.5 and features.get_params()["char__min_df"] == 2
    model.set_params(clf__cv=2).fit(X, Y)
    p = model.predict_proba(["WIN cash call 09061701461 now", "see you at home", "Test text"])
    assert p.shape == (3, 2) and np.allclose(p.sum(1), 1)
    assert p[0, 1] > p[1, 1]
    clone = pickle.loads(pickle.dumps(model))
    assert np.allclose(clone.predict_proba(X), model.predict_proba(X))
    with pytest.raises(ValueError, match="cue_weight must be positive"):
        models.make_model("tfidf_cues_linear_svm", cue_weight=0)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("tfidf_linear_svm", {"C": "abc"}, "'C' of model 'tfidf_linear_svm' must be a number"),
        ("tfidf_linear_svm", {"C": -1}, "'C' parameter of LinearSVC must be a float in the range"),
        ("tfidf_linear_svm", {"C": float("inf")}, "must be a finite number"),
        ("tfidf_linear_svm", {"C": 10**400}, "got a number of 401 digits"),
        ("tfidf_linear_svm", {"C": True}, "must be a number"),
        ("tfidf_linear_svm", {"char_min_df": 2.5}, "must be an integer"),
        ("tfidf_linear_svm", {"C": {"a": 1}}, "must be a number, a string, true/false or null"),
        ("tfidf_linear_svm", {"seed": 1}, "unknown parameter 'seed'"),
        ("tfidf_naive_bayes", {"alpha": -1}, "'alpha' parameter of MultinomialNB"),
        ("tfidf_random_forest", {"n_estimators": 0}, "'n_estimators' parameter of RandomForestClassifier"),
        ("keyword_heuristic", {"scale": "x"}, "'scale' of model 'keyword_heuristic' must be a number"),
        ("no_such_model", {}, "unknown model"),
        (
            "tfidf_random_forest",
            {"n_estimators": 2**32 - 1},
            "'n_estimators' of model 'tfidf_random_forest' must be at most",
        ),
        ("minilm_finetuned", {"epochs": 1000}, "'epochs' of model 'minilm_finetuned' must be at most 20"),
        (
            "tfidf_minilm_cascade",
            {"max_length": "long"},
            "'max_length' of model 'tfidf_minilm_cascade' must be an integer",
        ),
        ("tfidf_minilm_stack", {"no_such": 1}, "unknown parameter 'no_such'"),
    ],
)
def test_check_params_refuses_bad_hyper_parameters_before_any_fit(name, params, message):
    with pytest.raises(ValueError, match=message):
        models.check_params(name, params)


def test_check_params_knows_the_transformer_settings_behind_a_factorys_params():
    cascade = models.check_params("tfidf_minilm_cascade", {"epochs": 1, "max_share": 0.1, "C": 2.0})
    assert cascade.second.epochs == 1 and cascade.max_share == 0.1
    assert models.check_params("minilm_finetuned", {"max_train": 64}).max_train == 64


def test_check_params_returns_the_unfitted_model():
    model = models.check_params("tfidf_linear_svm", {"C": 2, "char_min_df": 3}, seed=5)
    assert model.get_params()["clf__estimator__C"] == 2
    for name in models.CATALOGUE:
        models.check_params(name, {})


def test_missing_packages_names_what_fitting_a_transformer_model_needs(monkeypatch):
    import importlib.util

    assert models.missing_packages("tfidf_linear_svm") == []
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in models.TRANSFORMER_PACKAGES else real(name, *a)
    )
    assert models.missing_packages("tfidf_minilm_cascade") == ["torch", "transformers"]
    assert models.missing_packages("tfidf_linear_svm") == []
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if real("torch") is not None and real("transformers") is not None:
        assert models.missing_packages("minilm_finetuned") == []
