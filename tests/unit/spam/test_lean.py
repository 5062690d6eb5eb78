"""The lean scorer (:mod:`aml.spam.lean`) against the real fitted pipelines it is compiled from: equal propensities
(within 1e-9) on the SMS collection and on awkward texts, refusals for what it cannot compile, pickling, and the
scoring functions taking it in place of the model. No timing assertions (the benchmark is run by hand)."""

import copy
import io
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from aml.devtools import leanbench
from aml.spam import lean, models, scoring, sms, stages

TOLERANCE = 1e-9

#: texts that stress the analyzers: empty and whitespace-only, every kind of whitespace, words shorter than the
#: n-gram sizes, very long words, upper case, accents (composed and combining), emoji, other scripts, case mappings
#: that change length (İ, ß), numbers and links
TRICKY = [
    "",
    " ",
    "   ",
    "\t",
    "\n\n",
    "\r\n\r\n",
    "a",
    "I",
    "ok",
    "Ok!",
    "A b C d E f G",
    "  leading and trailing  ",
    "tab\tseparated\twords and  double  spaces",
    "line\nbreaks\r\nvertical\x0btab form\x0cfeed",
    "no\u00a0break em\u2003space ideographic\u3000space",
    "zero\u200bwidth joiner\u200d",
    "\x1c\x1d\x1e\x1f unit separators",
    "été ÉCOLE naïve café",
    "combining e\u0301 and n\u0303",
    "İstanbul straße STRASSE ΣΑΣ ﬁne",
    "日本語のテキスト 한국어",
    "emoji 😀🎉 win 👍🏽",
    "😀",
    "x" * 500,
    "supercalifragilisticexpialidocious" * 10,
    "WIN £1000 CASH NOW!!! Call 09061701461 T&Cs apply 18+",
    "FREE entry: txt WIN to 80086 now, £1.50/msg",
    "www.example.com http://x.co.uk",
    "12345 67890 £5 5p",
    "...!!!???",
]


@pytest.fixture(scope="module")
def splits():
    from aml.core import config

    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set: the scorer is compiled from models fitted on the real collection")
    df, _ = sms.load_sms()
    df_train, df_val, df_test = stages.prepare_train_validation_test_split(df)
    clean, _ = sms.preprocess(df)
    return {"train": df_train, "validation": df_val, "test": df_test, "all": clean}


def texts_of(frame) -> list[str]:
    return frame["text"].tolist()


@pytest.fixture(scope="module")
def svm(splits):
    """The selected model (``tfidf_linear_svm``, default parameters) fitted on train, and its compiled scorer."""
    model = stages.fit(models.tfidf_linear_svm(), splits["train"])
    return model, lean.compile_scorer(model, texts_of(splits["validation"]))


def max_diff(scorer, model, texts) -> float:
    expected = model.predict_proba(texts)[:, 1]
    batch = scorer.predict_proba(texts)[:, 1]
    single = np.array([scorer.propensity(t) for t in texts])
    return max(float(np.max(np.abs(batch - expected))), float(np.max(np.abs(single - expected))))


# -- exactness -------------------------------------------------------------------------------------------------------


def test_equal_to_the_model_on_the_test_split_and_tricky_texts(svm, splits):
    model, scorer = svm
    assert scorer.max_abs_diff <= TOLERANCE and scorer.n_verified == len(splits["validation"])
    assert max_diff(scorer, model, texts_of(splits["test"])) <= TOLERANCE
    assert max_diff(scorer, model, TRICKY) <= TOLERANCE
    full = model.predict_proba(TRICKY)
    assert np.max(np.abs(scorer.predict_proba(TRICKY) - full)) <= TOLERANCE  # both columns
    assert (scorer.predict(TRICKY) == model.predict(TRICKY)).all()


def test_counts_equal_sklearn_on_the_whole_collection(svm, splits):
    """The n-gram counts (before tf-idf) are integers: they must be identical, not close, for every analyzer."""
    model, scorer = svm
    texts = texts_of(splits["all"]) + TRICKY
    vectorizers = dict(model.named_steps["tfidf"].transformer_list)
    for block in scorer.blocks:
        expected = CountVectorizer.transform(vectorizers[block.name], texts)  # counts, without the tf-idf step
        got = block.counts_batch(block.preprocess_many(texts))
        assert got.shape == expected.shape and (got != expected).nnz == 0, block.name
    assert max_diff(scorer, model, texts) <= TOLERANCE


def test_single_message_path_equals_batch_path(svm, splits):
    _, scorer = svm
    texts = texts_of(splits["test"])[:300] + TRICKY
    batch = scorer.predict_proba(texts)
    single = np.array([scorer.propensity(t) for t in texts])
    assert np.max(np.abs(single - batch[:, 1])) <= 1e-12
    one = np.vstack([scorer.predict_proba([t]) for t in texts])  # the path score_text takes
    assert one.shape == batch.shape and np.max(np.abs(one - batch)) <= 1e-12
    assert np.allclose(batch.sum(axis=1), 1.0)


def test_word_cache_is_bounded_and_does_not_change_results(svm, splits):
    _, scorer = svm
    scorer = copy.deepcopy(scorer)
    texts = texts_of(splits["test"])
    expected = scorer.predict_proba(texts)
    char = next(b for b in scorer.blocks if getattr(b, "analyzer", None) == "char_wb")
    scorer.set_cache_size(50)
    assert np.array_equal(scorer.predict_proba(texts), expected) and 0 < len(char._cache) <= 50
    [scorer.propensity(t) for t in texts[:100]]
    assert len(char._cache) <= 50
    scorer.set_cache_size(0)
    assert np.array_equal(scorer.predict_proba(texts), expected) and len(char._cache) == 0


def test_with_structural_cues(splits):
    model = stages.fit(models.tfidf_cues_linear_svm(), splits["train"])
    scorer = lean.compile_scorer(model, texts_of(splits["validation"]))
    assert "SpamCues(weight=0.5)" in scorer.description and scorer.n_features == scorer.blocks[0].n_features + (
        scorer.blocks[1].n_features + 6
    )
    assert max_diff(scorer, model, texts_of(splits["test"]) + TRICKY) <= TOLERANCE


def test_with_logistic_regression(splits):
    model = stages.fit(models.tfidf_logreg(), splits["train"])
    scorer = lean.compile_scorer(model, texts_of(splits["validation"]))
    assert scorer.n_models == 1 and "LogisticRegression" in scorer.description
    assert max_diff(scorer, model, texts_of(splits["test"]) + TRICKY) <= TOLERANCE


@pytest.mark.parametrize(
    "features, clf",
    [
        (  # stop words, accents stripped, binary tf, l1 norm, trigrams; char (not char_wb) n-grams without idf
            FeatureUnion(
                [
                    (
                        "w",
                        TfidfVectorizer(
                            stop_words="english", strip_accents="unicode", binary=True, norm="l1", ngram_range=(1, 3)
                        ),
                    ),
                    ("c", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), use_idf=False, lowercase=False)),
                ],
                transformer_weights={"w": 2.0, "c": 0.5},
            ),
            LogisticRegression(C=10, max_iter=2000),
        ),
        (  # raw counts, a custom token pattern, ascii accents; one calibrated logistic regression
            CountVectorizer(token_pattern=r"(?u)\b\w+\b", strip_accents="ascii", ngram_range=(2, 2)),
            CalibratedClassifierCV(LogisticRegression(max_iter=2000), cv=3, method="sigmoid", ensemble=False),
        ),
        (  # char_wb n-grams from single characters, no norm, a dropped transformer
            FeatureUnion(
                [
                    ("cwb", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), norm=None, sublinear_tf=True)),
                    ("bigrams", TfidfVectorizer(ngram_range=(2, 2), lowercase=False)),
                    ("off", "drop"),
                ]
            ),
            CalibratedClassifierCV(LinearSVC(C=0.1), cv=3, method="sigmoid"),
        ),
        (  # unigrams only; binary unigram + bigram counts (the token-id batch path of the default token pattern)
            FeatureUnion([("uni", TfidfVectorizer()), ("bin", CountVectorizer(binary=True, ngram_range=(1, 2)))]),
            LogisticRegression(C=3, max_iter=2000),
        ),
    ],
    ids=["word-options-and-char", "counts-calibrated-logreg", "char_wb-1-4-no-norm-bigrams", "unigrams-binary-counts"],
)
def test_other_vectoriser_options(splits, features, clf):
    train = splits["train"].iloc[:1200]
    model = stages.fit(Pipeline([("features", features), ("clf", clf)]), train)
    scorer = lean.compile_scorer(model, texts_of(splits["validation"].iloc[:300]))
    assert max_diff(scorer, model, texts_of(splits["test"].iloc[:300]) + TRICKY) <= TOLERANCE


# -- refusals --------------------------------------------------------------------------------------------------------


def test_refuses_models_it_does_not_know(splits):
    train, texts = splits["train"].iloc[:300], texts_of(splits["validation"].iloc[:20])
    refused = {
        "classifier MultinomialNB is not supported": stages.fit(models.tfidf_naive_bayes(), train),
        "classifier RandomForestClassifier is not supported": stages.fit(
            models.tfidf_random_forest(n_estimators=5), train
        ),
        "KeywordHeuristic is not a scikit-learn Pipeline": stages.fit(models.KeywordHeuristic(), train),
        r"\(SentenceEmbedder\) is not supported": models.embedding_logreg(),  # refused before anything is loaded
        r"\(FunctionTransformer\) is not supported": stages.fit(
            Pipeline(
                [
                    (
                        "u",
                        FeatureUnion(
                            [("w", TfidfVectorizer()), ("len", FunctionTransformer(lambda x: [[len(t)] for t in x]))]
                        ),
                    ),
                    ("clf", LogisticRegression()),
                ]
            ),
            train,
        ),
        r"method='isotonic'\) is not supported": stages.fit(
            Pipeline([("w", TfidfVectorizer()), ("clf", CalibratedClassifierCV(LinearSVC(), cv=3, method="isotonic"))]),
            train,
        ),
        "has analyzer": stages.fit(
            Pipeline([("w", TfidfVectorizer(analyzer=str.split)), ("clf", LogisticRegression())]), train
        ),
        "is not fitted": Pipeline([("w", TfidfVectorizer()), ("clf", LogisticRegression())]),
    }
    for match, model in refused.items():
        with pytest.raises(lean.NotCompilable, match=match):
            lean.compile_scorer(model, texts)
    with pytest.raises(lean.NotCompilable, match="no texts"):
        lean.compile_scorer(stages.fit(models.tfidf_logreg(), train), [])
    assert issubclass(lean.NotCompilable, ValueError)


def test_tolerance_violation_is_caught(svm, splits):
    """A scorer that no longer matches its model is refused with the difference: the weights of one calibrated SVM
    are perturbed after compiling, and a model whose probabilities drift by 1e-6 does not compile."""
    model, scorer = svm
    texts = texts_of(splits["test"])
    tampered = copy.deepcopy(model)
    tampered.named_steps["clf"].calibrated_classifiers_[2].estimator.coef_ *= 1.001
    with pytest.raises(lean.NotCompilable, match=r"differs from the model by [0-9.e-]+ .*tolerance 1e-09"):
        scorer.verify(tampered, texts)
    drifting = copy.deepcopy(model)
    drifting.predict_proba = lambda x: model.predict_proba(x) + np.array([-1e-6, 1e-6])
    with pytest.raises(lean.NotCompilable, match="more than the tolerance"):
        lean.compile_scorer(drifting, texts)
    assert lean.compile_scorer(drifting, texts, tolerance=1e-5).max_abs_diff == pytest.approx(1e-6, rel=1e-3)


# -- contract --------------------------------------------------------------------------------------------------------


def pickled_modules(obj) -> set[str]:
    """The modules whose classes or functions the pickle of ``obj`` refers to."""
    found = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(pickle.dumps(obj))).load()
    return found


def test_pickles_as_plain_data(svm, splits, tmp_path):
    model, scorer = svm
    texts = texts_of(splits["test"])
    joblib.dump(scorer, tmp_path / "lean.joblib")
    loaded = joblib.load(tmp_path / "lean.joblib")
    assert np.array_equal(loaded.predict_proba(texts), scorer.predict_proba(texts))
    assert loaded.propensity(texts[0]) == scorer.propensity(texts[0])
    assert (loaded.source, loaded.n_features, loaded.max_abs_diff) == (
        "Pipeline",
        scorer.n_features,
        scorer.max_abs_diff,
    )
    assert not any(m.split(".")[0] in ("sklearn", "scipy") for m in pickled_modules(scorer)), pickled_modules(scorer)
    assert len(pickle.dumps(scorer)) < len(pickle.dumps(model))


def test_a_loaded_scorer_imports_neither_pandas_nor_the_training_code(splits, tmp_path):
    """The serving image has no pandas: a pickled scorer (with the cues, so SpamCues is involved) loads and scores
    without pandas, aml.spam.models or the stages."""
    model = stages.fit(models.tfidf_cues_linear_svm(), splits["train"].iloc[:1000])
    scorer = lean.compile_scorer(model, texts_of(splits["validation"].iloc[:100]))
    joblib.dump(scorer, tmp_path / "lean.joblib")
    code = (
        "import sys, joblib; from aml.spam import scoring; "
        f"s = joblib.load({str(tmp_path / 'lean.joblib')!r}); print(scoring.score_text('WIN cash now', s, 0.5)); "
        "bad = [m for m in ('pandas', 'aml.spam.models', 'aml.spam.stages', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = scoring.score_text("WIN cash now", model, 0.5)
    assert result.stdout.startswith(f"({expected[0]}, ")


def test_scoring_functions_take_a_lean_scorer(svm, splits):
    model, scorer = svm
    df_test = splits["test"]
    for text in texts_of(df_test)[:50] + TRICKY:
        prediction, propensity = scoring.score_text(text, scorer, 0.5)
        full_prediction, full_propensity = scoring.score_text(text, model, 0.5)
        assert type(propensity) is float and abs(propensity - full_propensity) <= TOLERANCE
        assert prediction == full_prediction or abs(full_propensity - 0.5) <= TOLERANCE
    p = stages.predict_propensity(scorer, df_test)
    assert np.max(np.abs(p - stages.predict_propensity(model, df_test))) <= TOLERANCE


def test_input_contract(svm):
    _, scorer = svm
    with pytest.raises(ValueError, match="string object received"):
        scorer.predict_proba("one text, not a list")
    with pytest.raises(TypeError, match="text 1 must be a str"):
        scorer.predict_proba(["ok", 1])
    with pytest.raises(TypeError, match="must be a str"):
        scorer.propensity(b"bytes")
    assert scorer.predict_proba([]).shape == (0, 2)
    assert scorer.predict_proba(iter(["a", "b"])).shape == (2, 2)
    assert "LinearSVC x5" in repr(scorer) and scorer.n_models == 5 and list(scorer.classes_) == [0, 1]


def test_benchmark_reports_the_figures(svm, splits):
    model, _ = svm
    results = leanbench.benchmark(model, texts_of(splits["test"])[:40], repeats=1, single_messages=5, verbose=False)
    assert results["single_messages"] == 5 and results["max_abs_diff"] <= TOLERANCE
    for key in ("full_single", "lean_single", "lean_single_cold", "lean_predict_proba_single"):
        assert results[key]["mean_ms"] > 0 and results[key]["p99_ms"] > 0
    for key in ("full_batch", "lean_batch", "lean_batch_cold"):
        assert results[key]["msg_per_s"] > 0
