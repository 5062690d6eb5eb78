"""Drift monitoring, generic: does a batch of served data still look like the data the model was trained on, and does
the model still perform as validated? Arrays, frames and texts in, :class:`Stat` out; nothing here knows the spam
filter (the service and the experiment scripts pass their own columns).

Why hand-written: evidently (0.7.x) does not import with our pandas pin and alibi-detect needs ``numpy<2``
(``shared/notes/mlops-components.md`` §2); nannyml works only in a separate 2.4 GB environment. Every check below is
a few lines of scipy/scikit-learn, so writing them keeps the serving image small and makes each threshold visible.

Data drift (inputs):

- :func:`ks`: two-sample Kolmogorov–Smirnov on a numeric feature. Drift = p-value < ``alpha`` (0.01) **and**
  statistic > ``min_effect`` (0.1): the p-value alone flags negligible shifts once batches are large (with 10,000
  messages a CDF gap of 0.03 is "significant"); at a 300-message batch the 1% critical gap is already ≈ 0.1, so the
  effect size only bites on large batches. :func:`feature_drift` and :func:`drift_report` divide ``alpha`` by the
  number of KS tests (Bonferroni), so a report's false-alarm rate from KS stays ≤ ``alpha`` however many features.
- :func:`psi`: population stability index over quantile bins of the reference. Drift = PSI > 0.2. The usual
  convention reads < 0.1 as stable, 0.1–0.25 as a moderate shift and > 0.25 as a major one; 0.2 sits inside the
  moderate band, well above the sampling noise of a few-hundred-message batch (≈ ``(bins-1)·(1/n + 1/m)``, 0.03
  for 10 bins and 300 messages, reported as ``noise_floor``) yet before the shift is "major".
- :func:`oov_rate`: the share of the batch's tokens never seen in the reference vocabulary, divided by the
  reference's own held-out OOV rate (a split of the reference against the vocabulary of the rest), so the threshold
  is relative: drift = ratio > 1.5 (new words at 1.5× the usual rate: a new campaign, a new language, a new source).
- :func:`domain_classifier_auc`: hashed word uni/bigram counts + naive Bayes trained to tell reference texts from
  current texts, cross-validated ROC AUC on balanced samples. Drift = AUC > 0.7: with no drift the AUC is 0.5 ± ≈ 0.03 for
  300 + 300 texts; 0.7 is "acceptable discrimination" in the usual reading of AUC (Hosmer & Lemeshow), i.e. the
  batch is recognisably different text, not noise.

Concept drift (labels, when they arrive): :func:`bootstrap_interval` / :func:`expected_interval` give the interval a
metric of :func:`aml.core.metrics.binary_metrics` should fall in (optionally for a batch of a given size), and
:func:`performance_alert` flags a served metric outside it. Bias by slice: :func:`slice_metrics`, :func:`worst_slice`.

The input checks are a registry (:data:`CHECKS`: one :class:`DriftCheck` subclass per check, numeric or text):
the report, the monitoring and the pages iterate over it, so a new check is one class and :func:`register`.
:func:`drift_report` runs the input checks on two frames and returns a :class:`DriftReport` (``drift`` = any check
drifted; ``to_dict()`` is JSON-able, with histogram counts; :func:`report_page` renders it — or a stored copy — as
one self-contained page with reference-vs-current histograms).

Evidence (``project/drift_study.py``, SMS train split as reference, 300-message batches): over 50 validation batches
the largest values were KS 0.092, PSI 0.089, OOV ratio 1.23, domain AUC 0.545 (each below its threshold with a
margin); 0/50 test batches raised an alarm; 50/50 tweet batches and 50/50 synthetic phishing batches did.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

KS_ALPHA = 0.01
KS_MIN_EFFECT = 0.1
PSI_THRESHOLD = 0.2
PSI_EPSILON = 1e-4
OOV_MAX_RATIO = 1.5
DOMAIN_AUC_THRESHOLD = 0.7
#: hashed features of the domain classifier (word uni- and bigrams): 2**16 keeps collisions rare for a few hundred
#: texts while naive Bayes' dense per-class arrays stay small
DOMAIN_FEATURES = 2**16
#: additive (Laplace/Lidstone) smoothing of the domain classifier's n-gram counts
NB_ALPHA = 0.1
#: the domain classifier's cross-validation folds
DOMAIN_FOLDS = 5
#: the names of the two text checks in a report
OOV_CHECK, DOMAIN_CHECK = "text:oov_ratio", "text:domain_auc"


@dataclass
class Stat:
    """One check: ``value`` compared with ``threshold`` gives ``drifted``; ``detail`` holds the rest (p-value,
    sample sizes, bins...), JSON-able."""

    name: str
    value: float
    threshold: float
    drifted: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-able values (NumPy numbers as Python ones, NaN and infinities as ``None``)."""
        return _jsonable(
            {"name": self.name, "value": self.value, "threshold": self.threshold, "drifted": self.drifted}
            | {"detail": self.detail}
        )


def _jsonable(obj):
    """Nested dicts/lists with NumPy scalars → plain Python (NaN and ±inf → None, so that strict JSON accepts it)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _numeric(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{what} contains {int(np.isnan(arr).sum())} NaN value(s): impute or drop them first")
    return arr


# --- numeric features -----------------------------------------------------------------------------------------------


def ks(reference, current, alpha: float = KS_ALPHA, min_effect: float = KS_MIN_EFFECT, name: str = "ks") -> Stat:
    """Two-sample Kolmogorov–Smirnov: ``value`` is the statistic D (largest gap between the two empirical CDFs),
    drifted when ``p < alpha`` and ``D > min_effect``.

    Ties (discrete features such as counts or flags) are handled by scipy's ECDFs, which step at each distinct value,
    so D is exact; the p-value is then conservative (too large), so discrete features false-alarm less, not more.
    """
    ref, cur = _numeric(reference, "reference"), _numeric(current, "current")
    return _ks_columns(ref[:, None], cur[:, None], [name], alpha, min_effect)[0]


def _ks_columns(
    reference: np.ndarray, current: np.ndarray, names: Sequence[str], alpha: float, min_effect: float
) -> list[Stat]:
    """:func:`ks` of each column of two 2-D arrays (NaN-free), in one scipy call along ``axis=0``: the same statistics
    and p-values as one call per column, but scipy's per-call overhead (about 0.8 ms, more than the test itself on
    a few hundred values) is paid once — the service runs nine of these on every scored batch."""
    from scipy import stats

    result = stats.ks_2samp(reference, current, axis=0)
    d, p = np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)
    return [
        Stat(
            name,
            float(d[i]),
            min_effect,
            bool(p[i] < alpha and d[i] > min_effect),
            {"p_value": float(p[i]), "alpha": alpha, "n_reference": reference.shape[0], "n_current": current.shape[0]},
        )
        for i, name in enumerate(names)
    ]


def quantile_edges(reference, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's ``1/bins … (bins-1)/bins`` quantiles, taken as observed values
    (``inverted_cdf``) and deduplicated. Bins are right-closed, ``(-inf, e1], (e1, e2], …, (e_k, inf)``, so a value
    carrying a large share of a discrete feature (0 URLs, say) gets a bin of its own instead of being split across
    several equal edges; a discrete feature simply ends with fewer bins."""
    if bins < 2:
        raise ValueError(f"bins must be ≥ 2, got {bins}")
    ref = _numeric(reference, "reference")
    return np.unique(np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf"))


def psi(
    reference,
    current,
    bins: int = 10,
    threshold: float = PSI_THRESHOLD,
    epsilon: float = PSI_EPSILON,
    name: str = "psi",
) -> Stat:
    """Population stability index ``Σ (c - r) · ln(c / r)`` over the reference's quantile bins
    (:func:`quantile_edges`), ``r``/``c`` the reference/current shares per bin, each floored at ``epsilon`` so that
    an empty bin adds a large but finite term. Drifted when PSI > ``threshold``."""
    ref, cur = _numeric(reference, "reference"), _numeric(current, "current")
    edges = quantile_edges(ref, bins)
    k = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=k) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=k) / cur.size
    r, c = np.maximum(r, epsilon), np.maximum(c, epsilon)
    value = float(np.sum((c - r) * np.log(c / r)))
    return Stat(
        name,
        value,
        threshold,
        bool(value > threshold),
        {
            "bins": k,
            "edges": edges.tolist(),
            "reference_share": r.round(4).tolist(),
            "current_share": c.round(4).tolist(),
            "noise_floor": (k - 1) * (1 / ref.size + 1 / cur.size),
            "n_reference": ref.size,
            "n_current": cur.size,
        },
    )


def feature_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    columns: Sequence[str],
    alpha: float = KS_ALPHA,
    min_effect: float = KS_MIN_EFFECT,
    bins: int = 10,
    psi_threshold: float = PSI_THRESHOLD,
    n_tests: int | None = None,
    checks: Sequence[NumericCheck] | None = None,
) -> list[Stat]:
    """KS and PSI for each of ``columns`` (names ``<column>:ks``, ``<column>:psi``). KS uses ``alpha / n_tests``
    (Bonferroni; ``n_tests`` defaults to ``len(columns)``) so the family's false-alarm rate stays ≤ ``alpha``.
    ``checks`` replaces KS and PSI (built from the other arguments) with other numeric checks, e.g. the registered
    ones (:data:`CHECKS`); the stats come column by column, each column's in the order of ``checks``."""
    missing = [c for c in columns if c not in reference_df.columns or c not in current_df.columns]
    if missing:
        raise KeyError(f"columns {missing} missing from the reference or the current frame")
    per_test = alpha / (n_tests or max(len(columns), 1))
    if not columns:
        return []
    ref = np.column_stack([_numeric(reference_df[c], f"reference column {c!r}") for c in columns])
    cur = np.column_stack([_numeric(current_df[c], f"current column {c!r}") for c in columns])
    checks = (KSCheck(alpha, min_effect), PSICheck(bins, psi_threshold)) if checks is None else checks
    results = [check.run(ref, cur, columns, alpha=per_test) for check in checks]
    return [per_check[i] for i in range(len(columns)) for per_check in results]  # <column>:ks, <column>:psi, ...


# --- texts ----------------------------------------------------------------------------------------------------------


def default_analyzer() -> Callable[[str], list[str]]:
    """scikit-learn's default word analyzer: lower-cased tokens of ≥ 2 word characters (what the TF-IDF models see)."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer().build_analyzer()


def _texts(texts, what: str) -> list[str]:
    out = [t for t in (texts.tolist() if isinstance(texts, (pd.Series, np.ndarray)) else list(texts))]
    bad = sum(1 for t in out if not isinstance(t, str))
    if bad:
        raise ValueError(f"{what}: {bad} non-string text(s) (missing values?); drop or fill them first")
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def _oov(tokens: Iterable[list[str]], vocabulary: set[str]) -> tuple[int, int]:
    total = unseen = 0
    for toks in tokens:
        total += len(toks)
        unseen += sum(1 for t in toks if t not in vocabulary)
    return unseen, total


def _hashed(token_lists: Iterable[list[str]]):
    """Word uni- and bigram counts of tokenised texts, hashed into :data:`DOMAIN_FEATURES` columns (CSR, one row per
    text): what ``HashingVectorizer(ngram_range=(1, 2), alternate_sign=False, norm=None)`` gives for the texts (its
    bigrams are two tokens joined by a space), but from tokens the OOV check has already made, so that each text is
    tokenised once."""
    from sklearn.feature_extraction import FeatureHasher

    grams = (toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)] for toks in token_lists)
    hasher = FeatureHasher(n_features=DOMAIN_FEATURES, input_type="string", alternate_sign=False)
    return hasher.transform(grams).tocsr()


@dataclass
class TextReference:
    """The reference side of the text checks, computed once (:func:`text_reference`) and reused for every batch:
    the OOV vocabulary and baseline rate, and the hashed n-gram counts of a seeded sample for the domain
    classifier."""

    vocabulary: set[str]
    baseline: float
    baseline_tokens: int
    hashed: Any  # scipy.sparse CSR, one row per sampled reference text (None when prepared for the OOV check only)
    analyzer: Callable[[str], list[str]]


def text_reference(
    reference_texts,
    max_samples: int = 500,
    holdout: float = 0.2,
    seed: int = 0,
    analyzer: Callable[[str], list[str]] | None = None,
) -> TextReference:
    """Prepare the reference side of :func:`oov_rate` and :func:`domain_classifier_auc` once (a service compares
    every batch with the same reference: this is most of their cost). Both checks see the texts through
    ``analyzer`` (default :func:`default_analyzer`)."""
    analyzer = analyzer or default_analyzer()
    ref = _texts(reference_texts, "reference_texts")
    if len(ref) < 2 or not 0 < holdout < 1:
        raise ValueError("oov_rate needs ≥ 2 reference texts and 0 < holdout < 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ref))
    n_held = min(max(1, round(holdout * len(ref))), len(ref) - 1)
    held, fit = order[:n_held], order[n_held:]
    vocabulary = {tok for i in fit for tok in analyzer(ref[i])}
    base_unseen, base_total = _oov((analyzer(ref[i]) for i in held), vocabulary)
    if base_total == 0:
        raise ValueError("no tokens in the held-out reference texts")
    hashed = None  # max_samples 0: for the OOV check only
    if max_samples > 0:
        sample = rng.choice(len(ref), min(len(ref), max_samples), replace=False)
        hashed = _hashed(analyzer(ref[i]) for i in sample)
    return TextReference(vocabulary, base_unseen / base_total, base_total, hashed, analyzer)


_prepare_texts = text_reference  # for drift_report, whose parameter of that name (a prepared reference) hides it


def oov_rate(
    reference_texts,
    current_texts,
    analyzer: Callable[[str], list[str]] | None = None,
    holdout: float = 0.2,
    max_ratio: float = OOV_MAX_RATIO,
    seed: int = 0,
    name: str = OOV_CHECK,
) -> Stat:
    """Out-of-vocabulary rate of the current texts relative to the reference's own.

    The reference is split (``holdout`` share, seeded): the vocabulary comes from the rest, the baseline is the OOV
    rate of the held-out part, and the current OOV rate is measured against the same vocabulary, so both rates see a
    vocabulary of the same size. ``value`` = current rate / baseline rate (baseline floored at one token of the
    held-out part); drifted when above ``max_ratio``. ``reference_texts`` may be a :class:`TextReference`
    (prepared once; ``analyzer`` and ``holdout`` are then its own).
    """
    prepared = (
        reference_texts
        if isinstance(reference_texts, TextReference)
        else text_reference(reference_texts, max_samples=0, holdout=holdout, seed=seed, analyzer=analyzer)
    )
    cur = _texts(current_texts, "current_texts")
    return _oov_stat(prepared, [prepared.analyzer(t) for t in cur], max_ratio, name)


def _oov_stat(prepared: TextReference, tokens: list[list[str]], max_ratio: float, name: str) -> Stat:
    vocabulary, baseline, base_total = prepared.vocabulary, prepared.baseline, prepared.baseline_tokens
    cur_unseen, cur_total = _oov(tokens, vocabulary)
    if cur_total == 0:
        raise ValueError("no tokens in the current texts")
    current = cur_unseen / cur_total
    # floored at one unseen token's worth, so that a held-out part with none (a tiny or repetitive reference) still
    # gives a finite ratio
    ratio = current / max(baseline, 1 / base_total)
    return Stat(
        name,
        ratio,
        max_ratio,
        bool(ratio > max_ratio),
        {
            "current_oov": current,
            "reference_oov": baseline,
            "vocabulary": len(vocabulary),
            "current_tokens": cur_total,
            "reference_heldout_tokens": base_total,
        },
    )


def domain_classifier_auc(
    reference_texts,
    current_texts,
    seed: int = 0,
    folds: int = DOMAIN_FOLDS,
    max_samples: int = 500,
    threshold: float = DOMAIN_AUC_THRESHOLD,
    name: str = DOMAIN_CHECK,
) -> Stat:
    """Can a classifier tell current texts from reference texts? ``min(len(ref), len(cur), max_samples)`` texts are
    drawn (seeded) from each side, so the classes are balanced; word uni- and bigram counts (hashed) feed a
    multinomial naive Bayes classifier, scored by stratified ``folds``-fold ROC AUC. ``value`` is the mean AUC;
    drifted when above ``threshold``. Deterministic for a given ``seed``.

    Why hashing + naive Bayes, written out: the hashing vectorizer has no fitted state (no vocabulary), so
    vectorising once before the folds leaks nothing between them; multinomial naive Bayes' decision score is the
    message's counts times the log-ratio of the two classes' smoothed n-gram frequencies (the class prior only shifts
    every score alike, which no AUC sees), so every fold's model comes from one sparse product (the counts per fold
    and class) and every text's score from another, and the AUC is the Mann–Whitney rank statistic. That is a few
    milliseconds for 300 + 300 texts on this 2-core machine, where scikit-learn's ``MultinomialNB`` +
    ``roc_auc_score`` (same numbers) spent 40 ms more on input validation and a TF-IDF + logistic-regression
    pipeline refitted per fold 0.2–0.8 s (70 ms even on these hashed counts, with scikit-learn's TF-IDF transform
    and liblinear per fold, against 11 ms here; the same discrimination in the drift study) — and the check runs on
    every scored batch (its budget: ≤ 20% of the batch's scoring time, ``project/benchmark.py``).
    ``reference_texts`` may be a :class:`TextReference` (its hashed sample is used as it is; the current texts go
    through its analyzer)."""
    prepared = (
        reference_texts
        if isinstance(reference_texts, TextReference)
        else text_reference(reference_texts, max_samples=max_samples, seed=seed)
    )
    cur = _texts(current_texts, "current_texts")
    return _domain_stat(prepared, [prepared.analyzer(t) for t in cur], seed, folds, max_samples, threshold, name)


def _domain_stat(
    prepared: TextReference,
    tokens: list[list[str]],
    seed: int,
    folds: int,
    max_samples: int,
    threshold: float,
    name: str,
) -> Stat:
    from scipy import sparse
    from scipy.stats import rankdata
    from sklearn.model_selection import StratifiedKFold

    reference = prepared.hashed
    if reference is None:
        raise ValueError("the text reference was prepared with max_samples=0 (for the OOV check only)")
    n = min(reference.shape[0], len(tokens), max_samples)
    if n < folds:
        raise ValueError(f"domain_classifier_auc needs ≥ {folds} texts on each side, got {n}")
    pick_cur = np.random.default_rng(seed).choice(len(tokens), n, replace=False)
    x = sparse.vstack([reference[:n], _hashed(tokens[i] for i in pick_cur)], format="csr")
    # only the hashed columns some text uses can score: renumber them 0..k-1 (each class's smoothed total keeps the
    # unused columns' share, NB_ALPHA each)
    used, columns = np.unique(x.indices, return_inverse=True)
    x = sparse.csr_matrix((x.data, columns, x.indptr), shape=(x.shape[0], used.size))
    y = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
    fold_of = np.empty(2 * n, dtype=int)
    for k, (_, held) in enumerate(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y)):
        fold_of[held] = k
    group = sparse.csr_matrix((np.ones(2 * n), (fold_of * 2 + y, np.arange(2 * n))), shape=(2 * folds, 2 * n))
    held_counts = (group @ x).toarray().reshape(folds, 2, used.size)  # n-gram counts per fold and class
    counts = held_counts.sum(axis=0) - held_counts + NB_ALPHA  # each fold's training counts, smoothed
    totals = counts.sum(axis=2, keepdims=True) + NB_ALPHA * (DOMAIN_FEATURES - used.size)
    log_ratio = np.log(counts[:, 1] / totals[:, 1]) - np.log(counts[:, 0] / totals[:, 0])  # (folds, used)
    scores = np.asarray(x @ log_ratio.T)[np.arange(2 * n), fold_of]  # each text scored by the fold holding it out
    fold_auc = []
    for k in range(folds):
        truth, ranks = y[fold_of == k], rankdata(scores[fold_of == k])
        positives = int(truth.sum())
        negatives = truth.size - positives
        fold_auc.append(float((ranks[truth == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)))
    value = float(np.mean(fold_auc))
    return Stat(
        name,
        value,
        threshold,
        bool(value > threshold),
        {"fold_auc": np.round(fold_auc, 4).tolist(), "n_per_side": n, "folds": folds, "seed": seed},
    )


# --- performance (concept drift) ------------------------------------------------------------------------------------


def metric_function(metric: str | Callable) -> Callable[[np.ndarray, np.ndarray, float], float]:
    """``metric`` as a function ``(y_true, propensity, threshold) -> float``: a callable is returned as it is, a name
    is a key of :func:`aml.core.metrics.binary_metrics` (not ``threshold`` or ``confusion_matrix``)."""
    if callable(metric):
        return metric
    from aml.core.metrics import METRICS, binary_metrics

    if metric not in METRICS or metric in ("threshold", "confusion_matrix"):
        raise ValueError(f"unknown metric {metric!r}; choose one of {[m for m in METRICS[:-1] if m != 'threshold']}")
    return lambda y, p, t: binary_metrics(y, p, t)[metric]


def bootstrap_interval(
    y_true,
    propensity,
    threshold: float,
    metric: str | Callable = "aucpr",
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    size: int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of ``metric`` (a key of :func:`aml.core.metrics.binary_metrics`, or a
    function ``(y_true, propensity, threshold) -> float``) at ``threshold``: ``n`` resamples with replacement of
    ``size`` rows (default: as many as given). With ``size`` = a serving batch's size, the interval is the range a
    batch of that size shows by chance alone, which is what :func:`performance_alert` should compare with.
    Resamples with a single class (metric undefined) are skipped; fewer than half usable raises."""
    fn = metric_function(metric)
    y = np.asarray(y_true).astype(int)
    p = np.asarray(propensity, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and propensity {p.shape} must be 1-D of the same length")
    size = size or y.size
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, y.size, size)
        if y[idx].min() == y[idx].max():
            continue
        values.append(fn(y[idx], p[idx], threshold))
    if len(values) < n / 2:
        raise ValueError(f"only {len(values)} of {n} resamples had both classes: too few positives or negatives")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def expected_interval(
    y_true, propensity, threshold: float, metric: str | Callable = "aucpr", **kwargs
) -> dict[str, float]:
    """``{"mean", "low", "high"}`` for :func:`performance_alert`: the point estimate on the given (validation) data
    and its :func:`bootstrap_interval` (``kwargs`` passed on, e.g. ``size=`` the serving batch size)."""
    low, high = bootstrap_interval(y_true, propensity, threshold, metric, **kwargs)
    mean = metric_function(metric)(np.asarray(y_true).astype(int), np.asarray(propensity, dtype=float), threshold)
    return {"mean": float(mean), "low": low, "high": high}


def performance_alert(
    observed, expected: Mapping[str, float], name: str = "metric", window: int = 1, below_only: bool = False
) -> Stat:
    """Is a served metric outside the interval the validation estimate allows? ``observed`` is a number or a history
    (sequence or Series, oldest first; the mean of the last ``window`` values is judged). ``expected`` has ``mean``,
    ``low`` and ``high`` (:func:`expected_interval`). Drifted when below ``low`` (the model got worse) or above
    ``high`` (better than validated: usually the mix changed, e.g. more spam raises precision — worth a look too);
    ``below_only``: only the first is an alert (``detail["side"]`` still says "above"). ``threshold`` is ``low``."""
    for key in ("mean", "low", "high"):
        if key not in expected:
            raise KeyError(f"expected needs 'mean', 'low' and 'high', missing {key!r}")
    if isinstance(observed, (int, float, np.number)):
        history = np.array([float(observed)])
    else:
        history = _numeric(list(observed), f"{name} history")
    if window < 1:
        raise ValueError(f"window must be ≥ 1, got {window}")
    value = float(np.mean(history[-window:]))
    low, high = float(expected["low"]), float(expected["high"])
    side = "below" if value < low else "above" if value > high else "within"
    return Stat(
        name,
        value,
        low,
        side == "below" if below_only else side != "within",
        {"side": side, "expected_mean": float(expected["mean"]), "low": low, "high": high, "window": window},
    )


def performance_alerts(
    metrics: Mapping[str, Any], expected: Mapping[str, Mapping[str, float]], window: int = 1, below_only: bool = False
):
    """:func:`performance_alert` for each metric named in both ``metrics`` (values or histories) and ``expected``."""
    return [
        performance_alert(metrics[k], expected[k], name=k, window=window, below_only=below_only)
        for k in expected
        if k in metrics
    ]


# --- slices ---------------------------------------------------------------------------------------------------------


def slice_metrics(
    df: pd.DataFrame, slices: Mapping[str, Any], metric_fn: Callable[[pd.DataFrame], float | Mapping[str, float]]
) -> pd.DataFrame:
    """One row per slice (plus ``all``): its size and ``metric_fn(rows)`` (a number → column ``metric``; a mapping →
    one column per key). ``slices`` maps a name to a boolean mask aligned with ``df``. A slice where the metric is
    undefined (``ValueError``, e.g. a single class) or empty gets NaN and the reason in ``note``."""
    rows = []
    for name, mask in {"all": np.ones(len(df), dtype=bool), **dict(slices)}.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(df),):
            raise ValueError(f"slice {name!r}: mask of shape {mask.shape} for a frame of {len(df)} rows")
        part = df[mask]
        row: dict[str, Any] = {"slice": name, "n": int(mask.sum()), "note": ""}
        try:
            if part.empty:
                raise ValueError("empty slice")
            result = metric_fn(part)
            row |= dict(result) if isinstance(result, Mapping) else {"metric": float(result)}
        except ValueError as err:
            row["note"] = str(err)
        rows.append(row)
    return pd.DataFrame(rows).set_index("slice")


def worst_slice(table: pd.DataFrame, metric: str | None = None, higher_is_better: bool = True) -> str:
    """Name of the slice (not ``all``) with the worst ``metric`` (default: the table's first metric column);
    slices where it is undefined are ignored."""
    columns = [c for c in table.columns if c not in ("n", "note")]
    metric = metric or (columns[0] if columns else None)
    if metric not in table.columns:
        raise KeyError(f"metric {metric!r} not in the table's columns {columns}")
    values = table.loc[table.index != "all", metric].dropna()
    if values.empty:
        raise ValueError(f"no slice has a defined {metric!r}")
    return str(values.idxmin() if higher_is_better else values.idxmax())


# --- the checks, as a registry ------------------------------------------------------------------------------------


class DriftCheck:
    """One kind of input check of a drift report: its short ``name`` (the suffix of the stats it gives,
    ``<column>:ks``), the ``kind`` of input it reads (``"numeric"`` columns or ``"text"``), its ``threshold`` and a
    one-line ``description`` of when it flags drift. The report (:func:`drift_report`), the monitoring and the pages
    iterate over :data:`CHECKS`, so a new check is one subclass registered with :func:`register` (and its test)."""

    name: str = ""
    kind: str = ""
    description: str = ""
    threshold: float = float("nan")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold!r})"

    def as_row(self) -> dict[str, Any]:
        """The check as a row of the pages' "checks" table: name, kind, threshold, description."""
        return {"name": self.name, "kind": self.kind, "threshold": self.threshold, "description": self.description}


class NumericCheck(DriftCheck):
    """A check of numeric columns: :meth:`run` compares each column of two 2-D arrays (rows = values)."""

    kind = "numeric"

    def run(
        self, reference: np.ndarray, current: np.ndarray, columns: Sequence[str], alpha: float | None = None
    ) -> list[Stat]:
        """One :class:`Stat` per column (named ``<column>:<name>``), in the order of ``columns``. ``alpha``: the
        significance level of each test of a report (its family's level over its number of tests), for checks that
        test a hypothesis; default the check's own."""
        raise NotImplementedError


class TextCheck(DriftCheck):
    """A check of texts: :meth:`run` compares the tokenised current texts with a prepared :class:`TextReference`."""

    kind = "text"
    #: the stat's name in a report (the text column's name is not part of it: a report has one text column)
    stat_name: str = ""

    def run(self, reference: TextReference, tokens: list[list[str]], seed: int, max_samples: int) -> Stat:
        """The :class:`Stat` of the current texts (``tokens``: each text through the reference's analyzer)."""
        raise NotImplementedError


class KSCheck(NumericCheck):
    """Kolmogorov–Smirnov per column (:func:`ks`): drifted when ``p < alpha`` and ``D > min_effect``."""

    name = "ks"
    description = "largest gap between the two empirical CDFs; drift when p < alpha and the gap > min_effect"

    def __init__(self, alpha: float = KS_ALPHA, min_effect: float = KS_MIN_EFFECT):
        self.alpha, self.threshold = alpha, min_effect

    def run(
        self, reference: np.ndarray, current: np.ndarray, columns: Sequence[str], alpha: float | None = None
    ) -> list[Stat]:
        """:func:`ks` of every column in one scipy call (``_ks_columns``), at ``alpha`` (default the check's)."""
        level = self.alpha if alpha is None else alpha
        return _ks_columns(reference, current, [f"{c}:{self.name}" for c in columns], level, self.threshold)


class PSICheck(NumericCheck):
    """Population stability index per column (:func:`psi`) over ``bins`` quantile bins of the reference."""

    name = "psi"
    description = "population stability index over the reference's quantile bins; drift when above the threshold"

    def __init__(self, bins: int = 10, threshold: float = PSI_THRESHOLD):
        self.bins, self.threshold = bins, threshold

    def run(
        self, reference: np.ndarray, current: np.ndarray, columns: Sequence[str], alpha: float | None = None
    ) -> list[Stat]:
        """:func:`psi` of each column (no hypothesis test: ``alpha`` is not used)."""
        return [
            psi(reference[:, i], current[:, i], bins=self.bins, threshold=self.threshold, name=f"{c}:{self.name}")
            for i, c in enumerate(columns)
        ]


class OOVCheck(TextCheck):
    """Out-of-vocabulary ratio (:func:`oov_rate`): new words at ``threshold`` times the reference's own rate."""

    name, stat_name = "oov_ratio", OOV_CHECK
    description = "share of unseen words relative to the reference's own held-out share; drift when above"

    def __init__(self, threshold: float = OOV_MAX_RATIO):
        self.threshold = threshold

    def run(self, reference: TextReference, tokens: list[list[str]], seed: int, max_samples: int) -> Stat:
        """:func:`oov_rate` of the tokenised texts."""
        return _oov_stat(reference, tokens, self.threshold, self.stat_name)


class DomainCheck(TextCheck):
    """Domain-classifier AUC (:func:`domain_classifier_auc`): can naive Bayes tell the batch from the reference?"""

    name, stat_name = "domain_auc", DOMAIN_CHECK
    description = "cross-validated AUC of a classifier telling current from reference texts; drift when above"

    def __init__(self, threshold: float = DOMAIN_AUC_THRESHOLD, folds: int = DOMAIN_FOLDS):
        self.threshold, self.folds = threshold, folds

    def run(self, reference: TextReference, tokens: list[list[str]], seed: int, max_samples: int) -> Stat:
        """:func:`domain_classifier_auc` of the tokenised texts."""
        return _domain_stat(reference, tokens, seed, self.folds, max_samples, self.threshold, self.stat_name)


#: the registry: every input check of a report, in report order (numeric checks per column, then text checks)
CHECKS: list[DriftCheck] = [KSCheck(), PSICheck(), OOVCheck(), DomainCheck()]


def register(check: DriftCheck) -> DriftCheck:
    """Add ``check`` to :data:`CHECKS` (after those of its kind): every later report runs it. A check's ``name`` is
    unique; registering a name twice is an error."""
    if not isinstance(check, (NumericCheck, TextCheck)):
        raise TypeError(f"a drift check is a NumericCheck or a TextCheck, got {type(check).__name__}")
    if check.name in {c.name for c in CHECKS}:
        raise ValueError(f"a drift check named {check.name!r} is already registered")
    last_of_kind = max((i for i, c in enumerate(CHECKS) if c.kind == check.kind), default=len(CHECKS) - 1)
    CHECKS.insert(last_of_kind + 1, check)
    return check


def unregister(name: str) -> DriftCheck:
    """Remove the check named ``name`` from :data:`CHECKS` and return it (for tests and experiments)."""
    for i, check in enumerate(CHECKS):
        if check.name == name:
            return CHECKS.pop(i)
    raise KeyError(f"no drift check named {name!r}; registered: {[c.name for c in CHECKS]}")


def thresholds() -> dict[str, float]:
    """The registered checks' thresholds by name (``{"ks": 0.1, "psi": 0.2, ...}``)."""
    return {check.name: check.threshold for check in CHECKS}


def check_of(stat_name: str) -> DriftCheck | None:
    """The registered check that gives a stat named ``stat_name`` (``"length:ks"``, ``"text:oov_ratio"``)."""
    for check in CHECKS:
        if stat_name == getattr(check, "stat_name", None) or stat_name.rpartition(":")[2] == check.name:
            return check
    return None


# --- report ---------------------------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """The checks of one batch against the reference. ``samples`` (column → (reference, current) arrays) feeds the
    histograms; :meth:`to_dict` keeps their counts, not the samples."""

    stats: list[Stat]
    n_reference: int = 0
    n_current: int = 0
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def drift(self) -> bool:
        """Whether any check drifted: the report's overall flag."""
        return any(s.drifted for s in self.stats)

    def drifted(self) -> list[str]:
        """The names of the checks that drifted."""
        return [s.name for s in self.stats if s.drifted]

    def summary(self) -> pd.DataFrame:
        """One row per check: value, threshold, drifted (for a notebook)."""
        return pd.DataFrame(
            [{"check": s.name, "value": s.value, "threshold": s.threshold, "drifted": s.drifted} for s in self.stats]
        ).set_index("check")

    def histograms(self, bins: int = 30) -> dict[str, dict[str, list]]:
        """Per sampled column: shared ``edges`` (``bins`` bins over both samples' range) and the ``reference`` and
        ``current`` counts — what the HTML page plots, small enough to store with every batch."""
        out = {}
        for column, (reference, current) in self.samples.items():
            edges = np.histogram_bin_edges(np.r_[reference, current], bins=bins)
            out[column] = {
                "edges": edges.tolist(),
                "reference": np.histogram(reference, edges)[0].tolist(),
                "current": np.histogram(current, edges)[0].tolist(),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON: the overall ``drift`` flag, every check (:meth:`Stat.to_dict`) and the
        :meth:`histograms`; :func:`report_page` renders it."""
        return {
            "drift": self.drift,
            "drifted": self.drifted(),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "stats": [s.to_dict() for s in self.stats],
            "histograms": self.histograms(),
        }

    def to_html(self, title: str = "Drift report") -> str:
        """:func:`report_page` of :meth:`to_dict`."""
        return report_page(self.to_dict(), title)


def report_page(record: Mapping[str, Any], title: str = "Drift report") -> str:
    """One self-contained HTML page of a drift record (:meth:`DriftReport.to_dict`, e.g. read back from a store):
    verdict, the checks' table and a reference-vs-current histogram per column (PNG embedded as base64; no external
    link, script or style sheet), and what each registered check that ran measures. Rendered from the template
    ``drift_report.html`` (:func:`aml.core.pages.render`) when asked for, so scoring a batch never pays for the
    plots."""
    from aml.core import pages

    stats = record.get("stats", [])
    return pages.render(
        "drift_report.html",
        title=title,
        drift=bool(record.get("drift")),
        n_reference=record.get("n_reference", 0),
        n_current=record.get("n_current", 0),
        drifted=[s["name"] for s in stats if s["drifted"]],
        stats=stats,
        images=[(column, _histogram_png(column, h)) for column, h in (record.get("histograms") or {}).items()],
        checks=[check.as_row() for check in CHECKS if any(check_of(s["name"]) is check for s in stats)],
    )


def _draw_histogram(ax, column: str, histogram: Mapping[str, list]) -> None:
    edges = np.asarray(histogram["edges"], dtype=float)
    for side in ("reference", "current"):
        counts = np.asarray(histogram[side], dtype=float)
        density = counts / max(counts.sum(), 1) / np.maximum(np.diff(edges), 1e-12)
        ax.stairs(density, edges, fill=True, alpha=0.5, label=f"{side} ({int(counts.sum())})")
    ax.set_title(column)
    ax.legend(fontsize=7)


def histogram_figure(record: Mapping[str, Any], columns: Sequence[str] | None = None, per_row: int = 3):
    """The reference-vs-current histograms of a drift record (:meth:`DriftReport.to_dict`) as one matplotlib figure
    (``columns``: default all), each titled with its checks' verdict — for a notebook."""
    import matplotlib.pyplot as plt

    histograms = record.get("histograms") or {}
    columns = list(columns or histograms)
    if not columns:
        raise ValueError("the record has no histograms")
    rows = -(-len(columns) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(4 * per_row, 2.8 * rows), squeeze=False)
    flagged = {s["name"].split(":")[0] for s in record.get("stats", []) if s["drifted"]}
    for ax, column in zip(axes.flat, columns, strict=False):
        _draw_histogram(ax, f"{column}{' — DRIFT' if column in flagged else ''}", histograms[column])
    for ax in list(axes.flat)[len(columns) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _histogram_png(column: str, histogram: Mapping[str, list]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.8), dpi=80)
    _draw_histogram(ax, column, histogram)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_report(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    numeric_columns: Sequence[str] = (),
    text_column: str | None = None,
    propensity_column: str | None = None,
    seed: int = 0,
    alpha: float = KS_ALPHA,
    max_samples: int = 1000,
    reference_propensity=None,
    text_reference: TextReference | None = None,
) -> DriftReport:
    """The registered checks (:data:`CHECKS`): by default KS + PSI on ``numeric_columns`` and on
    ``propensity_column`` (prediction drift), and, with ``text_column``, :func:`oov_rate` and
    :func:`domain_classifier_auc`. KS alphas are Bonferroni-corrected over all KS tests of the report.

    The propensity reference must be what the *served* model gives on unseen data: its in-sample propensities on the
    training split are more extreme, and even cross-validated ones come from other fits (the SMS study saw a KS gap
    of ≈ 0.12 between either and served batches from the same distribution, a false alarm on every batch). When the
    reference frame is the training split, pass ``reference_propensity``: the served model's propensities on the
    validation split; it replaces ``reference_df[propensity_column]`` (which may then be absent).

    ``text_reference`` (:func:`text_reference` of the reference texts, prepared once) replaces the reference frame's
    ``text_column`` (which may then be absent) in the text checks."""
    if reference_propensity is not None:
        if not propensity_column:
            raise ValueError("reference_propensity needs propensity_column (the current frame's propensity)")
        reference_propensity = _numeric(reference_propensity, "reference_propensity")
    columns = list(numeric_columns)
    propensity = [propensity_column] if propensity_column else []
    if not columns and not propensity and not text_column:
        raise ValueError("nothing to check: give numeric_columns, text_column or propensity_column")
    n_tests = len(columns) + len(propensity)
    numeric = [check for check in CHECKS if isinstance(check, NumericCheck)]
    stats = feature_drift(reference_df, current_df, columns, alpha=alpha, n_tests=n_tests, checks=numeric)
    if propensity_column:
        if reference_propensity is None:
            reference_propensity = reference_df[propensity_column].to_numpy(dtype=float)
        reference_side = pd.DataFrame({propensity_column: reference_propensity})
        stats += feature_drift(reference_side, current_df, propensity, alpha=alpha, n_tests=n_tests, checks=numeric)
    if text_column:
        frames = [(current_df, "current")] + ([] if text_reference else [(reference_df, "reference")])
        for frame, what in frames:
            if text_column not in frame.columns:
                raise KeyError(f"text column {text_column!r} missing from the {what} frame")
        prepared = text_reference or _prepare_texts(reference_df[text_column], max_samples=max_samples, seed=seed)
        cur_texts = _texts(current_df[text_column], "current_texts")
        tokens = [prepared.analyzer(t) for t in cur_texts]  # tokenised once for both checks
        stats += [check.run(prepared, tokens, seed, max_samples) for check in CHECKS if isinstance(check, TextCheck)]
    samples = {c: (reference_df[c].to_numpy(dtype=float), current_df[c].to_numpy(dtype=float)) for c in columns}
    if propensity_column:
        samples[propensity_column] = (reference_propensity, current_df[propensity_column].to_numpy(dtype=float))
    return DriftReport(stats, len(reference_df), len(current_df), samples)
