"""Unit tests of aml.spam.cascade: the band chosen on validation, routing, equality with its parts outside the band
(and the documented mix inside), fitting with and without validation, pickling, the lean first stage."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from aml.spam import behaviour, cascade, lean, outofdomain
from aml.spam.cascade import Band, Cascade


@pytest.fixture(scope="module")
def data():
    """Hand-written messages of both kinds (the out-of-domain set and the behavioural bank): (texts, labels)."""
    ood = outofdomain.load()
    bank = behaviour.bank_frame()
    texts = ood["text"].tolist() + bank["text"].tolist()
    labels = np.r_[(ood["label"] == "spam").astype(int).to_numpy(), bank["expected"].to_numpy()]
    return texts, labels


def first_model():
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(C=3.0, max_iter=1000))


def second_model():
    return make_pipeline(CountVectorizer(analyzer="char_wb", ngram_range=(2, 4)), MultinomialNB(alpha=0.5))


@pytest.fixture(scope="module")
def fitted(data):
    texts, labels = data
    return Cascade(first_model(), second_model(), max_share=0.5).fit(texts[::2], labels[::2], texts[1::2], labels[1::2])


# -- the band ---------------------------------------------------------------------------------------------------------


def test_band_is_the_overlap_of_the_classes_widened_by_the_margin():
    p = np.array([0.01, 0.05, 0.30, 0.60, 0.20, 0.70, 0.95, 0.99])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    bare = cascade.choose_band(p, y, margin=0.0, max_share=1.0)
    assert (bare.low, bare.high) == (0.20, 0.60)  # lowest spam, highest ham
    assert bare.share == pytest.approx(3 / 8) and bare.error_rate == 0.0
    wide = cascade.choose_band(p, y, margin=1.0, max_share=1.0)
    assert wide.low == pytest.approx(1 / (1 + np.exp(-(np.log(0.2 / 0.8) - 1))))
    assert wide.high == pytest.approx(1 / (1 + np.exp(-(np.log(0.6 / 0.4) + 1))))
    assert wide.margin == 1.0 and wide.low < 0.20 and wide.high > 0.60


def test_band_shrinks_to_fit_the_share_and_none_when_nothing_fits():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    p = np.r_[rng.uniform(0, 0.8, 500), rng.uniform(0.2, 1.0, 500)]  # classes overlap on [0.2, 0.8]
    band = cascade.choose_band(p, y, max_share=0.4)
    assert band.share <= 0.4 and band.error_rate > 0
    assert np.mean(band.contains(p)) == pytest.approx(band.share)
    assert cascade.choose_band(p, y, max_share=0.01, error_rates=(0.0,)) is None


def test_separated_classes_route_the_gap_between_them():
    p = np.array([0.01, 0.1, 0.2, 0.8, 0.9])
    band = cascade.choose_band(p, np.array([0, 0, 0, 1, 1]), margin=0.0, max_share=1.0)
    assert (band.low, band.high) == (0.2, 0.8)


@pytest.mark.parametrize(
    "p, y",
    [([0.1, 0.2], [0, 0]), ([0.1], [0, 1]), ([0.1, 0.2], [0, 2])],
)
def test_band_refuses_bad_validation(p, y):
    with pytest.raises(ValueError):
        cascade.choose_band(np.array(p), np.array(y))


def test_band_refuses_inverted_edges():
    with pytest.raises(ValueError, match="low <= high"):
        Band(0.6, 0.4)


# -- the propensity ---------------------------------------------------------------------------------------------------


def test_combine_maps_into_the_band_and_keeps_the_order():
    band = Band(0.1, 0.7)
    p1, p2 = np.array([0.1, 0.4, 0.7]), np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(cascade.combine(p1, p2, band, 0.0), [0.1, 0.4, 0.7])
    np.testing.assert_allclose(cascade.combine(p1, p2, band, 1.0), 0.1 + 0.6 * p1)
    out = cascade.combine(p1, p2, band, 0.5)
    assert np.all((out >= band.low) & (out <= band.high)) and np.all(np.diff(out) > 0)


def test_weight_chosen_by_validation_aucpr_ties_to_the_first():
    band = Band(0.0, 1.0)
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.6, 0.1, 0.4, 0.9])  # the first stage ranks one pair wrong
    p2 = np.array([0.1, 0.2, 0.8, 0.9])  # the second ranks all right
    weight, scores = cascade.choose_weight(p1, p2, y, band)
    assert weight == 0.0 and scores[0.0] == 1.0
    weight, _ = cascade.choose_weight(p2, p2, y, band)
    assert weight == 0.0  # every weight ties: the first listed


def test_cascade_equals_its_parts(fitted, data):
    texts, _ = data
    p1 = fitted.first_.predict_proba(texts)[:, 1]
    p2 = fitted.second_.predict_proba(texts)[:, 1]
    p = fitted.predict_proba(texts)
    inside = fitted.band_.contains(p1)
    assert 0 < inside.sum() < len(texts)  # both kinds exist in this data
    np.testing.assert_array_equal(p[~inside, 1], p1[~inside])  # outside: the first stage, exactly
    expected = cascade.combine(p1[inside], p2[inside], fitted.band_, fitted.weight_)
    np.testing.assert_allclose(p[inside, 1], expected, rtol=0, atol=1e-12)  # inside: the documented mix
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.shape == (len(texts), 2)


def test_routing_sends_only_the_band(fitted, data):
    texts, _ = data

    class Counting:
        def __init__(self, model):
            self.model, self.seen = model, []

        def predict_proba(self, batch):
            self.seen += list(batch)
            return self.model.predict_proba(batch)

    spy = Counting(fitted.second_)
    probe = Cascade.assemble(fitted.first_, spy, fitted.band_, fitted.weight_)
    p1, routed = probe.route(texts)
    probe.predict_proba(texts)
    assert spy.seen == [t for t, r in zip(texts, routed, strict=True) if r]
    assert probe.counts == {"scored": len(texts), "routed": int(routed.sum())}
    assert cascade.routed_share(probe, texts) == pytest.approx(routed.mean())
    spy.seen.clear()
    outside = texts[int(np.flatnonzero(~routed)[0])]
    inside = texts[int(np.flatnonzero(routed)[0])]
    assert probe.propensity(outside) == p1[texts.index(outside)] and spy.seen == []
    assert probe.propensity(inside) == pytest.approx(probe.predict_proba([inside])[0, 1], abs=1e-12)
    assert spy.seen[0] == inside


def test_no_band_is_the_first_stage(fitted, data):
    texts, _ = data
    alone = Cascade.assemble(fitted.first_, None, None)
    np.testing.assert_array_equal(alone.predict_proba(texts), fitted.first_.predict_proba(texts))
    assert alone.propensity(texts[0]) == fitted.first_.predict_proba([texts[0]])[0, 1]


def test_fit_chooses_band_and_weight_on_validation(fitted, data):
    texts, labels = data
    p1 = fitted.first_.predict_proba(texts[1::2])[:, 1]
    assert fitted.band_ == cascade.choose_band(p1, labels[1::2], max_share=0.5)
    assert fitted.weight_ in cascade.WEIGHTS and set(fitted.weight_scores_) == set(cascade.WEIGHTS)
    described = fitted.describe()
    assert described["band"]["low"] == fitted.band_.low and described["second"] == "Pipeline"


def test_fit_without_validation_holds_out_part_of_train(data):
    texts, labels = data
    model = Cascade(first_model(), second_model(), max_share=0.5, validation_fraction=0.25).fit(texts, labels)
    assert model.band_ is not None and model.predict(texts).shape == (len(texts),)
    with pytest.raises(ValueError, match="both"):
        Cascade(first_model(), second_model()).fit(texts, labels, X_val=texts)


class EarlyStopping(ClassifierMixin, BaseEstimator):
    """A second stage whose fit takes validation data (as the fine-tuned transformer's)."""

    def fit(self, X, y, X_val=None, y_val=None):
        self.n_val_ = None if X_val is None else len(X_val)
        self.model_ = second_model().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_fit_passes_validation_to_a_second_stage_that_takes_it(data):
    texts, labels = data
    model = Cascade(first_model(), EarlyStopping(), max_share=0.5).fit(
        texts[::2], labels[::2], texts[1::2], labels[1::2]
    )
    assert model.second_.n_val_ == len(texts[1::2])
    assert model.first_ is not None and not hasattr(model.first, "classes_")  # the given estimators stay unfitted


def test_unfitted_and_bad_input_are_refused(fitted):
    with pytest.raises(ValueError, match="not fitted"):
        Cascade(first_model(), second_model()).predict_proba(["hello"])
    with pytest.raises(ValueError, match="first and a second"):
        Cascade().fit(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="string object"):
        fitted.predict_proba("one text")
    assert fitted.predict_proba([]).shape == (0, 2)


def test_pickles_without_its_counts(fitted, data):
    texts, _ = data
    fitted.predict_proba(texts[:5])
    copy = pickle.loads(pickle.dumps(fitted))
    assert copy.counts == {"scored": 0, "routed": 0}
    np.testing.assert_array_equal(copy.predict_proba(texts), fitted.predict_proba(texts))


def test_with_a_lean_first_stage_gives_the_same_propensities(data):
    texts, labels = data
    first = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(C=3.0, max_iter=1000))
    model = Cascade(first, second_model(), max_share=0.5).fit(texts, labels, texts[:120], labels[:120])
    served = model.with_first(lean.compile_scorer(model.first_, texts))
    np.testing.assert_allclose(served.predict_proba(texts), model.predict_proba(texts), rtol=0, atol=1e-9)
    for text in texts[:40]:
        assert served.propensity(text) == pytest.approx(model.predict_proba([text])[0, 1], abs=1e-9)


def test_the_catalogue_cascade_is_the_tfidf_svm_and_the_fine_tuned_transformer():
    from aml.spam import models
    from aml.spam.transformer import FineTunedTransformer

    model = models.make_model(
        "tfidf_minilm_cascade", seed=3, C=2.0, max_share=0.2, **models.TRANSFORMER_BUDGETS["smoke"]
    )
    assert isinstance(model, Cascade) and isinstance(model.second, FineTunedTransformer)
    assert model.second.max_train == 64 and model.second.seed == 3 and model.max_share == 0.2
    assert model.first.named_steps["clf"].estimator.C == 2.0
    assert (
        "tfidf_minilm_cascade" in models.TRANSFORMER_MODELS and "tfidf_minilm_cascade" not in models.benchmark_models()
    )
    assert models.transformer_params("smoke")["tfidf_minilm_cascade"] == models.TRANSFORMER_BUDGETS["smoke"]
