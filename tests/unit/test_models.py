import pickle

import numpy as np
import pytest

from aml import models

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
    "factory", [models.tfidf_logreg, models.tfidf_random_forest, models.tfidf_naive_bayes, models.tfidf_linear_svm]
)
def test_tfidf_models_fit_raw_text_and_pickle(factory):
    model = factory()
    if factory is models.tfidf_linear_svm:
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


def test_embedding_logreg_learns():
    model = models.embedding_logreg().fit(X, Y)
    assert (model.predict(X) == Y).mean() >= 0.9


def test_set_threads():
    import torch

    assert models.set_threads(1) == 1 and torch.get_num_threads() == 1
    models.set_threads()
