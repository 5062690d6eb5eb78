"""A lean, exact, fast scorer compiled from a fitted spam pipeline: :func:`compile_scorer` reads the parameters of a
word + character TF-IDF linear model and returns a :class:`LeanScorer` that gives the same propensities (within
``1e-9``, checked when compiling) without calling scikit-learn's transformers or classifiers.

Why it exists. The served model (:func:`aml.spam.models.tfidf_linear_svm`) spends a single prediction on overhead,
not arithmetic: ``CalibratedClassifierCV`` runs its 5 calibrated copies one by one, each through scikit-learn's input
validation, and the ``TfidfVectorizer.transform`` calls build sparse matrices for one row. In a batch the ``char_wb``
vectoriser dominates: it makes every character n-gram of every word occurrence in Python. The selected model
(``tfidf_linear_svm()``, default parameters, fitted on the train split) against its LeanScorer on all 5,160
distinct SMS, ``python -m aml.devtools.leanbench`` (:func:`aml.devtools.leanbench.benchmark`) on the 2-core development machine, shared with other
jobs (load average 1.2-1.9 during the run; every variant is timed in turn, so the ratios hold when the load drifts);
largest propensity difference 8.9e-16:

=====================================  ===========================  ==============================================
                                       full scikit-learn pipeline   LeanScorer
=====================================  ===========================  ==============================================
one message, ``predict_proba([t])``    9.0 ms mean, 15.6 ms p99     0.18 ms mean, 0.41 ms p99 (``score_text``)
one message, ``propensity(t)``                                      0.19 ms mean, 0.45 ms p99 (warm word cache);
                                                                    0.30 ms mean, 0.77 ms p99 (cold cache)
batch of 5,160, ``predict_proba``      4,100 msg/s (1.26 s)         30,000 msg/s warm (0.17 s); 15,600 msg/s cold
                                                                    (0.33 s, every word's n-grams made afresh)
=====================================  ===========================  ==============================================

A second run gave 9.5 ms against 0.20 ms for one message, and 4,100 against 23,000 (warm) and 12,400 (cold)
messages per second for the batch.

How. All linear models are stacked into one weight matrix ``W`` (features × k; k = 5 calibrated SVMs, or 1 logistic
regression), so one sparse product gives every decision value; each TF-IDF block is divided by its norm after the
product (``(x @ W) / |x|`` instead of ``(x / |x|) @ W``). The single-message path (:meth:`LeanScorer.propensity`)
looks the message's few n-grams up in the vocabulary dicts, counts them, and multiplies only the weight rows of the
features present. The batch path builds one count matrix per block: for ``char_wb`` it uses that those n-grams never
cross whitespace-separated words (``_char_wb_ngrams`` in ``sklearn/feature_extraction/text.py``), so a document's
counts are the sum over its words of each word's counts: the n-grams are made once per *distinct* word (13,627
distinct words against 79,521 word occurrences in the collection), kept in a bounded word cache (also used by the
single-message path), and combined by one sparse product ``(documents × words) @ (words × features)``. Word
unigrams and bigrams of the default token pattern are looked up as token ids (a bigram is the key ``id1 · n + id2``
searched in a sorted array) instead of joined strings. Sublinear tf, idf and the norm then follow
``TfidfTransformer``; the calibration follows ``CalibratedClassifierCV.predict_proba``.

Why hand-written. No installed package compiles a scikit-learn text pipeline into a fast exact scorer: neither
sklearn-onnx nor onnxruntime (nor hummingbird, treelite, m2cgen, numba) is in this environment, and the project
adds no packages for this. Even with them it would not do: sklearn-onnx raises ``NotImplementedError`` for
``analyzer="char_wb"``, replaces the default token pattern ``(?u)\\b\\w\\w+\\b`` by the ASCII ``[a-zA-Z0-9_]+``
(its re2 tokenizer), says itself that the converted vectoriser "does not produce the exact same results", and keeps
the TF-IDF weights in float32. The scorer here is a few hundred lines of NumPy/SciPy in which each step mirrors one
scikit-learn step, and :func:`compile_scorer` checks the mirror on sample texts.

Supported (anything else raises :class:`NotCompilable`, and the caller serves the full model):

- a ``Pipeline`` whose only transforming step is a ``CountVectorizer``/``TfidfVectorizer`` or a ``FeatureUnion`` of
  them (``transformer_weights`` and ``"drop"`` allowed), optionally with :class:`aml.spam.models.SpamCues`;
- vectorisers with analyzer ``"word"`` (any token pattern, stop words, any n-gram range), ``"char"`` or
  ``"char_wb"``; ``lowercase``, ``strip_accents`` ``None``/``"ascii"``/``"unicode"``, ``binary``, ``sublinear_tf``,
  ``use_idf``, norm ``"l2"``/``"l1"``/``None``, float64 output (or integer counts for ``CountVectorizer``); no
  callable analyzer, preprocessor or tokenizer; input ``"content"`` only;
- classifier: a binary ``LogisticRegression`` (``expit(x·w + b)``), or a binary ``CalibratedClassifierCV`` with
  ``method="sigmoid"`` over linear classifiers (``LinearSVC``, ``LogisticRegression``, ``SGDClassifier``: anything
  whose ``decision_function`` is ``LinearClassifierMixin``'s): propensity = the mean over the calibrated copies of
  ``expit(-(a·d + b))``, summed in the same order as ``CalibratedClassifierCV.predict_proba``.

``SpamCues`` is recognised by name, not handled by calling an arbitrary transformer's ``transform``: the scorer
keeps the cue weight and the cue patterns as they were at compile time (:data:`aml.spam.models.STRUCTURAL_CUES`)
and computes the same features itself, so it holds no estimator and needs no :mod:`aml.spam.models` to load. Any
other dense transformer is refused (its output cannot be checked to be stateless and pure).

Exactness. Every step is scikit-learn's floating-point arithmetic except the order of a few sums (dot products,
norms, the folded ``transformer_weights``), so the propensities differ by a few ulps: at most 8.9e-16 (calibrated
SVM) and 2.5e-15 (logistic regression) on the whole collection. :func:`compile_scorer` checks both the batch path
and the single-message path against ``model.predict_proba`` on ``sample_texts`` and refuses a scorer whose largest
difference exceeds ``tolerance`` (``1e-9`` by default). Texts must be ``str`` (bytes are refused, not decoded: the
served texts are JSON strings). ``predict_proba([])`` gives an empty ``(0, 2)`` array where scikit-learn raises.

This module imports NumPy, SciPy and scikit-learn only (no pandas, no training code): the serving image can load a
pickled :class:`LeanScorer`.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

__all__ = ["DEFAULT_CACHE_SIZE", "LeanScorer", "NotCompilable", "compile_scorer"]

#: at most this many distinct words keep their character n-gram counts between calls (about 300 bytes each); the
#: cache is emptied when full (the SMS collection has 13,627 distinct lower-cased words)
DEFAULT_CACHE_SIZE = 50_000

#: scikit-learn's whitespace normalisation before character n-grams (``_VectorizerMixin._white_spaces``)
_WHITE_SPACES = re.compile(r"\s\s+")
#: scikit-learn's default ``token_pattern``: tokens of two or more word characters, never a space
_DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
#: the words whose upper-case share :class:`aml.spam.models.SpamCues` measures
_CUE_WORDS = re.compile(r"[A-Za-z]{2,}")


class NotCompilable(ValueError):
    """The model cannot be compiled into a :class:`LeanScorer` (an unsupported step, or the compiled scorer differs
    from the model by more than the tolerance): serve the full model instead."""


# -- the blocks of the feature union, as plain data ------------------------------------------------------------------


class _TextBlock:
    """One fitted ``CountVectorizer``/``TfidfVectorizer`` as plain data, with its rows of the stacked weights."""

    def __init__(self, name: str, params: dict, vocabulary: dict, idf, weights: np.ndarray):
        self.name = name
        self.analyzer: str = params["analyzer"]
        self.lowercase: bool = params["lowercase"]
        self.strip_accents: str | None = params["strip_accents"]
        self.token_pattern: str = params["token_pattern"]
        self.stop_words: frozenset | None = params["stop_words"]
        self.ngram_range: tuple[int, int] = params["ngram_range"]
        self.binary: bool = params["binary"]
        self.sublinear_tf: bool = params["sublinear_tf"]
        self.norm: str | None = params["norm"]
        self.vocabulary: dict[str, int] = vocabulary
        self.idf: np.ndarray | None = idf
        self.weights: np.ndarray = np.ascontiguousarray(weights, dtype=np.float64)  # (n_features, k)
        self.n_features = len(vocabulary)
        self.cache_size = DEFAULT_CACHE_SIZE
        self._setup()

    # derived, not pickled: the compiled token pattern, the accent function and the word cache
    def _setup(self) -> None:
        self._tokenize = re.compile(self.token_pattern).findall if self.analyzer == "word" else None
        if self.strip_accents is None:
            self._accents = None
        else:
            from sklearn.feature_extraction import text as sk_text

            self._accents = {"ascii": sk_text.strip_accents_ascii, "unicode": sk_text.strip_accents_unicode}[
                self.strip_accents
            ]
        self._cache: dict[str, np.ndarray] = {}
        self._id_dtype = np.int32 if self.n_features < 2**31 else np.int64
        self._tokens = self._token_tables()

    def _token_tables(self):
        """For the batch path of a word analyzer with sklearn's default token pattern (tokens are runs of word
        characters, so a feature with one space is a bigram) and n-grams of at most 2 words: token -> token id, token
        id -> unigram feature (-1 for none), and the sorted keys ``id1 * n_tokens + id2`` of the bigram features
        with their feature ids. ``None`` where this does not apply (the batch path then makes the n-gram strings)."""
        if self.analyzer != "word" or self.token_pattern != _DEFAULT_TOKEN_PATTERN or self.stop_words is not None:
            return None
        if self.ngram_range[1] > 2:
            return None
        parts = [(term.split(" "), index) for term, index in self.vocabulary.items()]
        if any(len(p) > 2 or "" in p for p, _ in parts):
            return None
        token_ids: dict[str, int] = {}
        for p, _ in parts:
            for token in p:
                token_ids.setdefault(token, len(token_ids))
        n_tokens = len(token_ids)
        unigram = np.full(n_tokens, -1, dtype=np.int64)
        keys, features = [], []
        for p, index in parts:
            if len(p) == 1:
                unigram[token_ids[p[0]]] = index
            else:
                keys.append(token_ids[p[0]] * n_tokens + token_ids[p[1]])
                features.append(index)
        order = np.argsort(np.asarray(keys, dtype=np.int64))
        return token_ids, unigram, np.asarray(keys, dtype=np.int64)[order], np.asarray(features, dtype=np.int64)[order]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._setup()

    # -- analysis: the same steps as CountVectorizer.build_analyzer() ------------------------------------------------

    def preprocess(self, doc: str) -> str:
        if self.lowercase:
            doc = doc.lower()
        if self._accents is not None:
            doc = self._accents(doc)
        return doc

    def preprocess_many(self, docs: list[str]) -> list[str]:
        out = list(map(str.lower, docs)) if self.lowercase else list(docs)
        if self._accents is not None:
            out = list(map(self._accents, out))
        return out

    def grams(self, doc: str) -> list[str]:
        """The n-grams of a preprocessed document (``_word_ngrams`` / ``_char_ngrams`` / ``_char_wb_ngrams``)."""
        min_n, max_n = self.ngram_range
        if self.analyzer == "word":
            tokens = self._tokenize(doc)
            if self.stop_words is not None:
                tokens = [w for w in tokens if w not in self.stop_words]
            if max_n == 1:
                return tokens
            out = list(tokens) if min_n == 1 else []
            for n in range(max(min_n, 2), min(max_n, len(tokens)) + 1):
                # " ".join(tokens[i : i + n]) for every i, as zips of shifted token lists
                out += map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False))
            return out
        if self.analyzer == "char":
            text = _WHITE_SPACES.sub(" ", doc)
            out = []
            for n in range(min_n, min(max_n, len(text)) + 1):
                out += [text[i : i + n] for i in range(len(text) - n + 1)]
            return out
        out = []
        for word in _WHITE_SPACES.sub(" ", doc).split():
            out += _wb_grams(word, min_n, max_n)
        return out

    # -- one document ------------------------------------------------------------------------------------------------

    def counts_one(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids (ascending) and counts of one preprocessed document."""
        if self.analyzer == "char_wb":
            per_word = list(map(self._word_ids, _WHITE_SPACES.sub(" ", doc).split()))
            if not per_word:
                return _count_sorted(_NO_IDS)
            return _count_sorted(np.concatenate(per_word) if len(per_word) > 1 else per_word[0].copy())
        ids = _lookup(self.vocabulary, self.grams(doc))
        return _count_sorted(ids[ids >= 0])

    def _word_ids(self, word: str) -> np.ndarray:
        """The feature ids of a word's character n-grams, one per occurrence (cached; do not modify)."""
        ids = self._cache.get(word)
        if ids is None:  # one word: plain Python beats _new_word_ids' dozen NumPy calls
            found = [j for j in map(self.vocabulary.get, _wb_grams(word, *self.ngram_range)) if j is not None]
            ids = np.array(found, dtype=self._id_dtype)
            self._remember([word], [ids])
        return ids

    def _new_word_ids(self, words: list[str]) -> list[np.ndarray]:
        # all the words' n-grams looked up at once, then split per word
        grams: list[str] = []
        lengths = np.empty(len(words), dtype=np.int64)
        min_n, max_n = self.ngram_range
        for i, word in enumerate(words):
            g = _wb_grams(word, min_n, max_n)
            lengths[i] = len(g)
            grams += g
        ids = _lookup(self.vocabulary, grams)
        keep = ids >= 0
        kept = np.bincount(np.repeat(np.arange(len(words)), lengths)[keep], minlength=len(words))
        ids = ids[keep].astype(self._id_dtype)
        ends = np.cumsum(kept).tolist()
        return [ids[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def _remember(self, words: list[str], ids: list[np.ndarray]) -> None:
        if self.cache_size <= 0:
            return
        if len(self._cache) + len(words) > self.cache_size:
            self._cache.clear()  # bounded: start again rather than track recency on every lookup
        self._cache.update(zip(words[: self.cache_size], ids[: self.cache_size], strict=False))

    def decision_one(self, doc: str) -> np.ndarray:
        """This block's share of the k decision values of one raw document."""
        ids, counts = self.counts_one(self.preprocess(doc))
        if len(ids) == 0:
            return np.zeros(self.weights.shape[1])
        values = self._tf_idf(ids, counts)
        out = values @ self.weights[ids]
        if self.norm == "l2":
            scale = math.sqrt(values @ values)
        elif self.norm == "l1":
            scale = float(np.abs(values).sum())
        else:
            return out
        return out / scale if scale else out

    def _tf_idf(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        values = np.ones(len(ids)) if self.binary else counts  # counts: a new array, changed in place
        if self.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[ids]
        return values

    # -- a batch -----------------------------------------------------------------------------------------------------

    def counts_batch(self, docs: list[str]) -> sp.csr_array:
        """(documents × features) count matrix of preprocessed documents, duplicates summed."""
        n = len(docs)
        if self.analyzer == "char_wb":
            return self._char_wb_counts(docs)
        if self._tokens is not None:
            return self._word_counts(docs)
        grams: list[str] = []
        lengths = np.empty(n, dtype=np.int64)
        for i, doc in enumerate(docs):
            g = self.grams(doc)
            lengths[i] = len(g)
            grams += g
        ids = _lookup(self.vocabulary, grams)
        rows = np.repeat(np.arange(n), lengths)
        keep = ids >= 0
        return sp.csr_array((np.ones(int(keep.sum())), (rows[keep], ids[keep])), shape=(n, self.n_features))

    def _word_counts(self, docs: list[str]) -> sp.csr_array:
        # word unigrams and bigrams without making the bigram strings: each token becomes a token id (one dict
        # lookup per token), a unigram is a table lookup and a bigram a search for id1 * n_tokens + id2
        token_ids, unigram, bigram_keys, bigram_features = self._tokens
        min_n, max_n = self.ngram_range
        n = len(docs)
        per_doc = list(map(self._tokenize, docs))
        lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=n)
        tokens = list(itertools.chain.from_iterable(per_doc))
        ids = np.fromiter(map(token_ids.get, tokens, itertools.repeat(-1)), dtype=np.int64, count=len(tokens))
        rows = np.repeat(np.arange(n), lengths)
        found_rows, found_features = [], []
        if min_n == 1:
            known = ids >= 0
            features = unigram[ids[known]]
            found_rows.append(rows[known][features >= 0])
            found_features.append(features[features >= 0])
        if max_n == 2 and len(ids) > 1 and len(bigram_keys):
            pair = (rows[1:] == rows[:-1]) & (ids[1:] >= 0) & (ids[:-1] >= 0)
            keys = ids[:-1][pair] * len(unigram) + ids[1:][pair]
            at = np.minimum(np.searchsorted(bigram_keys, keys), len(bigram_keys) - 1)
            hit = bigram_keys[at] == keys
            found_rows.append(rows[:-1][pair][hit])
            found_features.append(bigram_features[at[hit]])
        r = np.concatenate(found_rows) if found_rows else _NO_IDS
        c = np.concatenate(found_features) if found_features else _NO_IDS
        return sp.csr_array((np.ones(len(r)), (r, c)), shape=(n, self.n_features))  # duplicates summed

    def _char_wb_counts(self, docs: list[str]) -> sp.csr_array:
        # (documents × distinct words) @ (distinct words × features): n-grams are generated once per distinct word
        sub = _WHITE_SPACES.sub
        split_docs = [sub(" ", doc).split() for doc in docs]
        indptr = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, split_docs), dtype=np.int64, count=len(docs)), out=indptr[1:])
        words = list(itertools.chain.from_iterable(split_docs))
        distinct = list(dict.fromkeys(words))
        local = dict(zip(distinct, range(len(distinct)), strict=True))
        columns = np.fromiter(map(local.__getitem__, words), dtype=np.int64, count=len(words))
        cache = self._cache
        entries = list(map(cache.get, distinct))
        missing = [j for j, e in enumerate(entries) if e is None]
        if missing:
            new_words = [distinct[j] for j in missing]
            new_ids = self._new_word_ids(new_words)
            for j, ids in zip(missing, new_ids, strict=True):
                entries[j] = ids
            self._remember(new_words, new_ids)
        lengths = np.fromiter(map(len, entries), dtype=np.int64, count=len(entries))
        word_indptr = np.zeros(len(entries) + 1, dtype=np.int64)
        np.cumsum(lengths, out=word_indptr[1:])
        ids = np.concatenate(entries) if entries else _NO_IDS
        # one row per distinct word, an n-gram repeated in a word left as repeated entries: the product sums them
        by_word = sp.csr_array((np.ones(len(ids)), ids, word_indptr), shape=(len(entries), self.n_features))
        occurrences = sp.csr_array((np.ones(len(columns)), columns, indptr), shape=(len(docs), len(entries)))
        return occurrences @ by_word  # also sums a word repeated in a document

    def decision_batch(self, docs: list[str]) -> np.ndarray:
        """This block's share of the (documents × k) decision values of raw documents."""
        counts = self.counts_batch(self.preprocess_many(docs))
        data = np.ones(len(counts.data)) if self.binary else np.asarray(counts.data, dtype=np.float64)
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1.0
        if self.idf is not None:
            data *= self.idf[counts.indices]
        x = sp.csr_array((data, counts.indices, counts.indptr), shape=counts.shape)
        out = np.asarray(x @ self.weights)
        if self.norm is not None:
            rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            if self.norm == "l2":
                scale = np.sqrt(np.bincount(rows, weights=data * data, minlength=x.shape[0]))
            else:
                scale = np.bincount(rows, weights=np.abs(data), minlength=x.shape[0])
            scale[scale == 0.0] = 1.0
            out /= scale[:, None]
        return out


class _CueBlock:
    """:class:`aml.spam.models.SpamCues` as plain data: its weight and cue patterns at compile time."""

    def __init__(self, name: str, weight: float, patterns: tuple[str, ...], weights: np.ndarray):
        self.name = name
        self.weight = weight
        self.patterns = patterns
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)  # (n_cues + 1, k)
        self.n_features = len(patterns) + 1
        self._setup()

    def _setup(self) -> None:
        self._compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._setup()

    def features(self, docs: list[str]) -> np.ndarray:
        rows = []
        for text in docs:
            words = _CUE_WORDS.findall(text)
            upper = sum(w.isupper() for w in words) / len(words) if words else 0.0
            rows.append([1.0 if p.search(text) else 0.0 for p in self._compiled] + [upper])
        return self.weight * np.asarray(rows, dtype=float).reshape(len(rows), self.n_features)

    def decision_one(self, doc: str) -> np.ndarray:
        return self.features([doc])[0] @ self.weights

    def decision_batch(self, docs: list[str]) -> np.ndarray:
        return self.features(docs) @ self.weights


def _wb_grams(word: str, min_n: int, max_n: int) -> list[str]:
    """``_char_wb_ngrams`` of one word: padded with spaces; a padded word shorter than n is counted once, whole."""
    w = " " + word + " "
    return list(map(w.__getitem__, _wb_slices(len(w), min_n, max_n)))


@functools.lru_cache(maxsize=256)
def _wb_slices(size: int, min_n: int, max_n: int) -> tuple[slice, ...]:
    # the slices _char_wb_ngrams takes of a padded word of ``size`` characters: for each n, every window of n; when
    # n >= size, the whole word once and no larger n (its ``if offset == 0: break``)
    out: list[slice] = []
    for n in range(min_n, max_n + 1):
        if n >= size:
            out.append(slice(0, size))
            break
        out += [slice(i, i + n) for i in range(size - n + 1)]
    return tuple(out)


_NO_IDS = np.zeros(0, dtype=np.int64)


def _count_sorted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``ids`` (ascending) and how often each occurs, as float64; sorts ``ids`` in place. A lean
    ``np.unique(ids, return_counts=True)``: this runs for every single message."""
    if len(ids) == 0:
        return ids, np.zeros(0)
    ids.sort()
    last = np.empty(len(ids), dtype=bool)  # the last of each run of equal ids
    last[-1] = True
    np.not_equal(ids[1:], ids[:-1], out=last[:-1])
    ends = np.flatnonzero(last)
    counts = np.empty(len(ends))
    counts[0] = ends[0] + 1
    np.subtract(ends[1:], ends[:-1], out=counts[1:])
    return ids[ends], counts


def _lookup(vocabulary: dict[str, int], grams: list[str]) -> np.ndarray:
    return np.fromiter(map(vocabulary.get, grams, itertools.repeat(-1)), dtype=np.int64, count=len(grams))


# -- the scorer ------------------------------------------------------------------------------------------------------


class LeanScorer:
    """Spam propensities of a compiled linear text model (build it with :func:`compile_scorer`).

    ``predict_proba(texts)`` has scikit-learn's contract (an ``(n, 2)`` array, column 1 = spam), so
    :func:`aml.spam.scoring.score_text` and :func:`aml.spam.stages.predict_propensity` take it in place of the model;
    ``propensity(text)`` is the single-message fast path. Plain data only (dicts of n-grams, NumPy arrays): it
    pickles with joblib and holds no reference to the scikit-learn model. Safe to share between threads (the word
    cache is a dict whose single operations are atomic).

    Attributes describing the compilation: ``source`` (the model's class name), ``description`` (its steps),
    ``n_features``, ``n_models`` (k, the stacked linear models), ``classes_``, ``max_abs_diff`` (largest
    ``|propensity difference|`` from the model on the compile samples, batch and single-message paths),
    ``n_verified`` (how many samples), ``tolerance``, ``sklearn_version``.
    """

    def __init__(self, blocks, intercept, alpha, beta, classes, source: str, description: str, sklearn_version: str):
        self.blocks: list[_TextBlock | _CueBlock] = blocks
        self.intercept = np.asarray(intercept, dtype=np.float64)  # (k,)
        self.alpha = np.asarray(alpha, dtype=np.float64)  # p_j = expit(alpha_j * d_j + beta_j)
        self.beta = np.asarray(beta, dtype=np.float64)
        self.classes_ = np.asarray(classes)
        self.source = source
        self.description = description
        self.sklearn_version = sklearn_version
        self.n_features = sum(b.n_features for b in blocks)
        self.n_models = len(self.intercept)
        self.max_abs_diff: float | None = None
        self.n_verified = 0
        self.tolerance: float | None = None

    def __repr__(self) -> str:
        return (
            f"LeanScorer({self.description}; {self.n_features} features, {self.n_models} linear model(s), "
            f"max |diff| {self.max_abs_diff} on {self.n_verified} texts)"
        )

    # -- scoring -----------------------------------------------------------------------------------------------------

    def propensity(self, text: str) -> float:
        """Probability of spam of one message (the single-message fast path)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._proba_one(self._decision_one(text))[1]

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """``(n, 2)`` probabilities of ham and spam, as the compiled model's ``predict_proba``."""
        docs = _as_texts(texts)
        if len(docs) == 1:  # score_text's case: the single-message path avoids building sparse matrices
            return np.array([self._proba_one(self._decision_one(docs[0]))])
        return self._proba(self._decision_batch(docs))

    def predict(self, texts: Iterable[str]) -> np.ndarray:
        """The class of highest probability (ties to the first class), as scikit-learn's ``predict``."""
        return self.classes_[np.argmax(self.predict_proba(texts), axis=1)]

    def clear_cache(self) -> None:
        """Forget the cached character n-grams of words (benchmarks use it to time a cold scorer)."""
        for block in self.blocks:
            if isinstance(block, _TextBlock):
                block._cache.clear()

    def set_cache_size(self, cache_size: int) -> None:
        """At most ``cache_size`` words keep their n-gram counts between calls (0 = none)."""
        for block in self.blocks:
            if isinstance(block, _TextBlock):
                block.cache_size = int(cache_size)
                block._cache.clear()

    def _decision_one(self, text: str) -> np.ndarray:
        out = self.intercept.copy()
        for block in self.blocks:
            out += block.decision_one(text)
        return out

    def _decision_batch(self, docs: list[str]) -> np.ndarray:
        out = np.zeros((len(docs), self.n_models))
        for block in self.blocks:
            out += block.decision_batch(docs)
        out += self.intercept
        return out

    def _proba_one(self, decision: np.ndarray) -> tuple[float, float]:
        # _proba for one message in Python floats: 1 / (1 + exp(-z)) is scipy's expit, bit for bit
        p0 = p1 = 0.0
        for z in (decision * self.alpha + self.beta).tolist():
            p = _expit(z)
            p0 += 1.0 - p
            p1 += p
        return p0 / self.n_models, p1 / self.n_models

    def _proba(self, decision: np.ndarray) -> np.ndarray:
        # CalibratedClassifierCV: each copy gives [1 - p_j, p_j]; their sum is divided by k (LogisticRegression: k = 1)
        p = expit(decision * self.alpha + self.beta)
        proba = np.zeros((decision.shape[0], 2))
        for j in range(self.n_models):
            proba[:, 0] += 1.0 - p[:, j]
            proba[:, 1] += p[:, j]
        proba /= self.n_models
        return proba

    # -- the exactness check -----------------------------------------------------------------------------------------

    def verify(self, model, texts: Iterable[str], tolerance: float = 1e-9) -> float:
        """Largest ``|propensity difference|`` between this scorer (batch and single-message paths) and
        ``model.predict_proba`` on ``texts``; raises :class:`NotCompilable` when it exceeds ``tolerance``. Records
        ``max_abs_diff``, ``n_verified`` and ``tolerance``."""
        docs = _as_texts(texts)
        if not docs:
            raise NotCompilable("no texts to verify the compiled scorer on: pass sample texts (e.g. a split's texts)")
        expected = np.asarray(model.predict_proba(docs), dtype=np.float64)
        batch = self._proba(self._decision_batch(docs))
        single = np.array([self.propensity(d) for d in docs])
        if expected.shape != batch.shape:
            raise NotCompilable(f"the model returned probabilities of shape {expected.shape}, expected {batch.shape}")
        diff_batch = float(np.max(np.abs(batch - expected)))
        diff_single = float(np.max(np.abs(single - expected[:, 1])))
        diff = max(diff_batch, diff_single)
        if not diff <= tolerance:  # also true for NaN
            worst = int(np.argmax(np.abs(batch[:, 1] - expected[:, 1])))
            raise NotCompilable(
                f"the compiled scorer differs from the model by {diff:.3g} (batch {diff_batch:.3g}, single-message "
                f"{diff_single:.3g}) on {len(docs)} texts, more than the tolerance {tolerance:g}; worst text "
                f"{docs[worst][:80]!r}: model {expected[worst, 1]!r}, compiled {batch[worst, 1]!r}"
            )
        self.max_abs_diff, self.n_verified, self.tolerance = diff, len(docs), float(tolerance)
        return diff


def _expit(z: float) -> float:
    """scipy's ``expit`` (``1 / (1 + exp(-z))``, the same C ``exp``) on a Python float."""
    try:
        return 1.0 / (1.0 + math.exp(-z))
    except OverflowError:  # exp(-z) is inf: scipy gives 1 / inf = 0
        return 0.0


def _as_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise ValueError("Iterable over raw text documents expected, string object received.")
    docs = list(texts)
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"text {i} must be a str, got {type(doc).__name__}")
    return docs


# -- compiling -------------------------------------------------------------------------------------------------------


def compile_scorer(
    model, sample_texts: Iterable[str], tolerance: float = 1e-9, *, cache_size: int = DEFAULT_CACHE_SIZE
) -> LeanScorer:
    """A :class:`LeanScorer` equal to the fitted ``model`` within ``tolerance`` on ``sample_texts``.

    Raises :class:`NotCompilable` (a ``ValueError``) when the model has a step it does not support (its message
    says which and why) or when the compiled scorer's propensities differ from ``model.predict_proba`` by more than
    ``tolerance`` (max absolute difference, batch and single-message paths); the caller then serves ``model``.
    """
    import sklearn

    blocks, intercept, alpha, beta, classes, description = _read_model(model)
    scorer = LeanScorer(blocks, intercept, alpha, beta, classes, type(model).__name__, description, sklearn.__version__)
    scorer.set_cache_size(cache_size)
    scorer.verify(model, sample_texts, tolerance)
    return scorer


def _read_model(model):
    from sklearn.pipeline import FeatureUnion, Pipeline

    if not isinstance(model, Pipeline):
        raise NotCompilable(
            f"{type(model).__name__} is not a scikit-learn Pipeline: only vectoriser(s) + linear classifier "
            "pipelines compile"
        )
    steps = [(name, step) for name, step in model.steps if step is not None and not _is_str(step, "passthrough")]
    if len(steps) != 2:
        raise NotCompilable(
            f"the pipeline has steps {[name for name, _ in model.steps]}: expected one feature step and a classifier"
        )
    (feature_name, features), (_, clf) = steps
    if isinstance(features, FeatureUnion):
        union_weights = features.transformer_weights or {}
        parts = [(n, t, union_weights.get(n)) for n, t in features.transformer_list if not _is_str(t, "drop")]
    else:
        parts = [(feature_name, features, None)]
    blocks = [_read_transformer(name, transformer) for name, transformer, _ in parts]  # the features first: a
    # SentenceEmbedder pipeline is refused for its transformer, not for its classifier
    (coef, intercept, alpha, beta), classes, clf_description = _read_classifier(clf)
    n_features = sum(block.n_features for block in blocks)
    if n_features != coef.shape[0]:
        raise NotCompilable(f"the feature step gives {n_features} features but the classifier has {coef.shape[0]}")
    start = 0
    for block, (_, _, weight) in zip(blocks, parts, strict=True):
        rows = coef[start : start + block.n_features]
        block.weights = np.ascontiguousarray(rows * float(weight) if weight is not None else rows, dtype=np.float64)
        start += block.n_features
    described = ", ".join(_describe(block) for block in blocks)
    if isinstance(features, FeatureUnion):
        described = f"FeatureUnion[{described}]"
    return blocks, intercept, alpha, beta, classes, f"{described} -> {clf_description}"


def _is_str(value, text: str) -> bool:
    return isinstance(value, str) and value == text


def _describe(block) -> str:
    if isinstance(block, _CueBlock):
        return f"{block.name}: SpamCues(weight={block.weight})"
    return f"{block.name}: {block.analyzer} {block.ngram_range} ({block.n_features} features)"


def _read_classifier(clf):
    """((coef (n_features × k), intercept (k,), alpha (k,), beta (k,)), classes, description) of the classifier."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    if isinstance(clf, LogisticRegression):
        if type(clf).predict_proba is not LogisticRegression.predict_proba:
            raise NotCompilable(f"{type(clf).__name__} overrides predict_proba: its formula is unknown")
        coef, intercept = _linear(clf)
        return (coef, intercept, np.ones(1), np.zeros(1)), clf.classes_, type(clf).__name__
    if isinstance(clf, CalibratedClassifierCV):
        if not hasattr(clf, "calibrated_classifiers_"):
            raise NotCompilable("the CalibratedClassifierCV is not fitted")
        if len(clf.classes_) != 2:
            raise NotCompilable(f"the classifier has {len(clf.classes_)} classes: only binary models compile")
        coefs, intercepts, alpha, beta, names = [], [], [], [], set()
        for calibrated in clf.calibrated_classifiers_:
            if calibrated.method != "sigmoid":
                raise NotCompilable(
                    f"CalibratedClassifierCV(method={calibrated.method!r}) is not supported: only 'sigmoid' calibration"
                )
            calibrators = list(calibrated.calibrators)
            if len(calibrators) != 1 or not (hasattr(calibrators[0], "a_") and hasattr(calibrators[0], "b_")):
                raise NotCompilable("expected one sigmoid calibrator (a_, b_) per calibrated classifier")
            coef, intercept = _linear(calibrated.estimator)
            coefs.append(coef)
            intercepts.append(intercept[0])
            # _SigmoidCalibration.predict: expit(-(a * d + b)) == expit((-a) * d + (-b)) exactly (negation is exact)
            alpha.append(-float(calibrators[0].a_))
            beta.append(-float(calibrators[0].b_))
            names.add(type(calibrated.estimator).__name__)
        description = f"CalibratedClassifierCV({'/'.join(sorted(names))} x{len(coefs)}, sigmoid)"
        return (np.hstack(coefs), np.array(intercepts), np.array(alpha), np.array(beta)), clf.classes_, description
    raise NotCompilable(
        f"classifier {type(clf).__name__} is not supported: only a binary LogisticRegression or a sigmoid "
        "CalibratedClassifierCV over linear classifiers compiles to a weight matrix"
    )


def _linear(estimator) -> tuple[np.ndarray, np.ndarray]:
    """(coef as an n_features × 1 column, intercept (1,)) of a binary linear classifier."""
    from sklearn.linear_model._base import LinearClassifierMixin

    if not isinstance(estimator, LinearClassifierMixin) or (
        type(estimator).decision_function is not LinearClassifierMixin.decision_function
    ):
        raise NotCompilable(
            f"{type(estimator).__name__} is not a linear classifier with LinearClassifierMixin's decision_function"
        )
    if not hasattr(estimator, "coef_"):
        raise NotCompilable(f"{type(estimator).__name__} is not fitted")
    coef = estimator.coef_
    coef = coef.toarray() if sp.issparse(coef) else np.asarray(coef)
    if coef.ndim != 2 or coef.shape[0] != 1 or len(estimator.classes_) != 2:
        raise NotCompilable(f"{type(estimator).__name__} has coef_ of shape {coef.shape}: only binary models compile")
    intercept = np.broadcast_to(np.asarray(estimator.intercept_, dtype=np.float64), (1,)).copy()
    return np.asarray(coef, dtype=np.float64).T, intercept


def _read_transformer(name: str, transformer):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if type(transformer) in (CountVectorizer, TfidfVectorizer):
        return _read_vectorizer(name, transformer)
    if type(transformer).__name__ == "SpamCues" and type(transformer).__module__ == "aml.spam.models":
        from aml.spam.models import STRUCTURAL_CUES

        patterns = tuple(p for _, p in STRUCTURAL_CUES)
        if len(transformer.get_feature_names_out()) != len(patterns) + 1:
            raise NotCompilable("SpamCues gives a different number of features than its cue patterns + upper share")
        return _CueBlock(name, float(transformer.weight), patterns, np.zeros((len(patterns) + 1, 0)))
    raise NotCompilable(
        f"transformer {name!r} ({type(transformer).__name__}) is not supported: only CountVectorizer, "
        "TfidfVectorizer and aml.spam.models.SpamCues compile"
    )


def _read_vectorizer(name: str, vec) -> _TextBlock:
    from sklearn.feature_extraction.text import TfidfVectorizer

    why = None
    if not hasattr(vec, "vocabulary_"):
        why = "is not fitted"
    elif vec.input != "content":
        why = f"reads input={vec.input!r}"
    elif callable(vec.analyzer) or vec.analyzer not in ("word", "char", "char_wb"):
        why = f"has analyzer {vec.analyzer!r}"
    elif vec.preprocessor is not None or (vec.analyzer == "word" and vec.tokenizer is not None):
        why = "has a custom preprocessor or tokenizer"
    elif vec.strip_accents not in (None, "ascii", "unicode"):
        why = f"has strip_accents={vec.strip_accents!r}"
    elif isinstance(vec, TfidfVectorizer) and np.dtype(vec.dtype) != np.float64:
        why = f"computes in {np.dtype(vec.dtype)}, not float64"
    elif not isinstance(vec, TfidfVectorizer) and not (
        np.issubdtype(np.dtype(vec.dtype), np.integer) or np.dtype(vec.dtype) == np.float64
    ):
        why = f"counts in {np.dtype(vec.dtype)}"
    if why:
        raise NotCompilable(f"vectoriser {name!r} ({type(vec).__name__}) {why}: not supported")
    if vec.analyzer == "word" and re.compile(vec.token_pattern).groups > 1:
        raise NotCompilable(f"vectoriser {name!r} has more than one group in its token pattern")
    tfidf = isinstance(vec, TfidfVectorizer)
    stop_words = vec.get_stop_words() if vec.analyzer == "word" else None
    params = {
        "analyzer": vec.analyzer,
        "lowercase": bool(vec.lowercase),
        "strip_accents": vec.strip_accents,
        "token_pattern": vec.token_pattern,
        "stop_words": frozenset(stop_words) if stop_words is not None else None,
        "ngram_range": tuple(int(n) for n in vec.ngram_range),
        "binary": bool(vec.binary),
        "sublinear_tf": bool(tfidf and vec.sublinear_tf),
        "norm": vec.norm if tfidf else None,
    }
    if params["norm"] not in (None, "l1", "l2"):
        raise NotCompilable(f"vectoriser {name!r} has norm {params['norm']!r}")
    idf = np.asarray(vec.idf_, dtype=np.float64).copy() if tfidf and vec.use_idf else None
    vocabulary = {str(term): int(index) for term, index in vec.vocabulary_.items()}
    if sorted(vocabulary.values()) != list(range(len(vocabulary))):
        raise NotCompilable(f"vectoriser {name!r} has a vocabulary whose indices are not 0..n-1")
    return _TextBlock(name, params, vocabulary, idf, np.zeros((len(vocabulary), 0)))
