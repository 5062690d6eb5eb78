"""The served spam filter as a cascade: a lean first stage scores every message, and only the messages it is unsure
of — its propensity inside a band chosen on validation — go to a second, slower and better-generalising stage (the
fine-tuned transformer, served through ONNX Runtime: :mod:`aml.spam.onnx`).

Why. The TF-IDF linear SVM answers in a fraction of a millisecond and ranks the collection's test split almost
perfectly, but blocks business-style ham and misses today's promotions (:mod:`aml.spam.outofdomain`); the
transformer generalises better and costs milliseconds a message. Most traffic is plainly ham or plainly spam to
the first stage; routing only its uncertain band keeps the service near the first stage's speed.

**The band** (:func:`choose_band`) is chosen on validation from the first stage's propensities ``p1``: the
*overlap* of its validation classes — from the lowest spam propensity to the highest ham propensity, the smallest
interval outside which the first stage made no validation error — widened by :data:`MARGIN` (one unit of log-odds
on each side: validation holds about 100 spam, so its overlap understates the overlap on new traffic; issue 24's
messages that the first stage gets wrong lie outside the bare overlap). When that band would route more than
:data:`MAX_SHARE` of validation traffic (a first stage that separates validation badly), the margin shrinks, then
the error tolerated outside the band grows (a quantile of each class instead of its extreme), until it fits.
The band is closed: ``low <= p1 <= high``.

**The propensity** (what ``/score`` returns, :func:`combine`): outside the band, the first stage's ``p1``, exactly;
inside, ``low + (high - low) * s`` with ``s = w * p1 + (1 - w) * p2`` (``p2`` the second stage's propensity, ``w``
the mixing weight chosen on validation from :data:`WEIGHTS` by the cascade's validation AUCPR, ties to the first
listed — the second stage alone). Mapping ``s`` into the band keeps the order: a routed message always ranks above
every confident ham and below every confident spam, so one threshold (chosen on validation as for any model)
applies to all, and the cascade's propensities are a ranking that AUCPR can score.

**Fitting** (:meth:`Cascade.fit`): both stages are fitted on train (the second, a fine-tuned transformer, early-
stops on validation: ``fit(X, y, X_val, y_val)`` as :func:`aml.spam.stages.fit` calls it); the band and the weight
are chosen on validation; a second stage that holds a torch model (``model``, ``tokenizer``, ``max_length``) is then
exported to ONNX (:func:`aml.spam.onnx.export_estimator`, equal within 1e-5 or refused), so the fitted cascade holds
no torch object and the serving image needs no torch. One fitted :class:`Cascade` is one registered model version.

**Serving** (:meth:`Cascade.with_first`): the service compiles the first stage into a
:class:`aml.spam.lean.LeanScorer` and swaps it in; :meth:`Cascade.propensity` scores one message (the lean
single-message path, the second stage only when routed). :attr:`Cascade.counts` counts the messages scored and routed
in this process (the share the transformer sees, for ``/metrics`` and the benchmark).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from aml.core.metrics import average_precision
from aml.spam.transformer import accepts_validation

__all__ = [
    "MARGIN",
    "MAX_SHARE",
    "WEIGHTS",
    "Band",
    "Cascade",
    "choose_band",
    "choose_weight",
    "combine",
    "routed_share",
    "tfidf_minilm_cascade",
]

#: log-odds added on each side of the validation overlap (see the module's docstring)
MARGIN = 1.0
#: the largest share of validation messages the band may route to the second stage
MAX_SHARE = 0.25
#: the in-band mixing weights of the first stage tried on validation, in order of preference (ties: the first)
WEIGHTS = (0.0, 0.25, 0.5, 0.75)
#: the error rates tolerated outside the band, tried in turn when the band routes more than ``max_share``
ERROR_RATES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
#: validation AUCPR differences below this are ties (as :data:`aml.spam.stages.AUCPR_TIE`)
AUCPR_TIE = 0.001
_EPS = 1e-12


@dataclass(frozen=True)
class Band:
    """The first stage's uncertain propensities ``[low, high]`` (closed), how they were chosen (``margin`` in
    log-odds, ``error_rate`` tolerated outside) and the ``share`` of validation messages inside."""

    low: float
    high: float
    margin: float = 0.0
    error_rate: float = 0.0
    share: float = float("nan")

    def __post_init__(self):
        if not (0.0 <= self.low <= self.high <= 1.0):
            raise ValueError(f"a band needs 0 <= low <= high <= 1, got [{self.low}, {self.high}]")

    def contains(self, propensity) -> np.ndarray:
        """Per propensity: inside the band (routed to the second stage)."""
        p = np.asarray(propensity, dtype=float)
        return (p >= self.low) & (p <= self.high)

    def to_dict(self) -> dict:
        """The band's fields as floats (JSON-able)."""
        return {k: float(v) for k, v in asdict(self).items()}


def _widen(p: float, margin: float, direction: int) -> float:
    if margin == 0.0:
        return float(p)
    return float(expit(logit(np.clip(p, _EPS, 1 - _EPS)) + direction * margin))


def choose_band(
    propensity,
    y,
    *,
    margin: float = MARGIN,
    max_share: float = MAX_SHARE,
    error_rates: Sequence[float] = ERROR_RATES,
) -> Band | None:
    """The band of the first stage's validation ``propensity`` (``y``: 1 = spam): the overlap of the classes (at
    each tolerated error rate in ``error_rates``: the rate-quantile of the spam propensities up to the (1 −
    rate)-quantile of the ham ones), widened by ``margin`` log-odds (then half, then none) — the first that routes at
    most ``max_share`` of the messages (classes that do not overlap: the gap between them, widened the same way).
    ``None`` when even the narrowest band routes more (the cascade is then the first stage)."""
    p = np.asarray(propensity, dtype=float)
    y = np.asarray(y).astype(int)
    if p.shape != y.shape or p.ndim != 1 or not set(np.unique(y)) <= {0, 1}:
        raise ValueError("choose_band needs one propensity per label, labels 0/1")
    if not ((y == 0).any() and (y == 1).any()):
        raise ValueError("choose_band needs validation messages of both classes")
    if not (0.0 < max_share <= 1.0) or margin < 0:
        raise ValueError(f"max_share must be in (0, 1] and margin >= 0, got {max_share}, {margin}")
    spam, ham = p[y == 1], p[y == 0]
    for rate in error_rates:
        # the overlap [lowest spam, highest ham]; classes that do not overlap leave a gap between them, which is
        # as uncertain (validation has no message there)
        low, high = sorted((float(np.quantile(spam, rate)), float(np.quantile(ham, 1.0 - rate))))
        for m in dict.fromkeys((margin, margin / 2, 0.0)):
            band = Band(_widen(low, m, -1), _widen(high, m, +1), m, float(rate))
            share = float(band.contains(p).mean())
            if share <= max_share:
                return Band(band.low, band.high, m, float(rate), share)
    return None


def combine(p1, p2, band: Band, weight: float) -> np.ndarray:
    """The in-band propensity: ``low + (high - low) * (weight * p1 + (1 - weight) * p2)`` (see the module's
    docstring)."""
    s = weight * np.asarray(p1, dtype=float) + (1.0 - weight) * np.asarray(p2, dtype=float)
    return band.low + (band.high - band.low) * np.clip(s, 0.0, 1.0)


def choose_weight(p1, p2, y, band: Band, weights: Sequence[float] = WEIGHTS) -> tuple[float, dict[float, float]]:
    """The mixing weight with the highest validation AUCPR of the cascade (``p1``: the first stage's propensities of
    every validation message, ``p2``: the second stage's of the same messages — only the routed ones are used),
    ties within :data:`AUCPR_TIE` to the first in ``weights``; also returns every weight's AUCPR."""
    p1 = np.asarray(p1, dtype=float)
    p2 = np.asarray(p2, dtype=float)
    inside = band.contains(p1)
    scores = {}
    for w in weights:
        p = p1.copy()
        p[inside] = combine(p1[inside], p2[inside], band, w)
        scores[float(w)] = average_precision(np.asarray(y).astype(int), p)
    top = max(scores.values())
    return next(w for w in scores if scores[w] >= top - AUCPR_TIE), scores


def tfidf_minilm_cascade(
    seed: int = 0, C: float = 1.0, margin: float = MARGIN, max_share: float = MAX_SHARE, **transformer_params
) -> Cascade:
    """The served cascade (catalogue entry ``tfidf_minilm_cascade``): the TF-IDF linear SVM
    (:func:`aml.spam.models.tfidf_linear_svm`, ``C``) first, the fine-tuned MiniLM
    (:class:`aml.spam.transformer.FineTunedTransformer`, ``transformer_params``) second, exported to ONNX."""
    from aml.spam.models import tfidf_linear_svm
    from aml.spam.transformer import FineTunedTransformer

    return Cascade(
        first=tfidf_linear_svm(C=C, seed=seed),
        second=FineTunedTransformer(seed=seed, **transformer_params),
        margin=margin,
        max_share=max_share,
        seed=seed,
    )


def routed_share(cascade: Cascade, texts: Iterable[str]) -> float:
    """The share of ``texts`` the cascade sends to its second stage."""
    docs = list(texts)
    if not docs:
        return 0.0
    return float(cascade.route(docs)[1].mean())


def _proba1(model, texts: list[str]) -> np.ndarray:
    proba = np.asarray(model.predict_proba(texts), dtype=float)
    if proba.ndim != 2 or proba.shape != (len(texts), 2):
        raise ValueError(f"{type(model).__name__}.predict_proba returned shape {proba.shape}, expected (n, 2)")
    return proba[:, 1]


class Cascade(ClassifierMixin, BaseEstimator):
    """Two spam models in a cascade: ``first`` scores every message, ``second`` only those in the band (see the
    module's docstring). Parameters: the two (unfitted) estimators, ``margin`` and ``max_share`` of
    :func:`choose_band`, ``weights`` tried by :func:`choose_weight`, ``export_onnx`` (export a torch second stage to
    ONNX after fitting) and ``validation_fraction``/``seed`` (the stratified hold-out of train used as validation
    when :meth:`fit` gets none).

    After :meth:`fit`: ``first_``, ``second_`` (the ONNX classifier when exported), ``band_`` (a :class:`Band`, or
    ``None``: nothing routed), ``weight_``, ``weight_scores_`` and ``classes_``. :meth:`assemble` builds one from
    fitted stages and a band directly."""

    def __init__(
        self,
        first=None,
        second=None,
        margin: float = MARGIN,
        max_share: float = MAX_SHARE,
        weights: Sequence[float] = WEIGHTS,
        export_onnx: bool = True,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ):
        self.first = first
        self.second = second
        self.margin = margin
        self.max_share = max_share
        self.weights = weights
        self.export_onnx = export_onnx
        self.validation_fraction = validation_fraction
        self.seed = seed

    # -- building ----------------------------------------------------------------------------------------------------

    @classmethod
    def assemble(cls, first, second, band: Band | None, weight: float = 0.0) -> Cascade:
        """A fitted cascade of fitted ``first`` and ``second`` stages with a given ``band`` and ``weight``."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        cascade = cls(first, second)
        cascade.first_, cascade.second_, cascade.band_, cascade.weight_ = first, second, band, float(weight)
        cascade.weight_scores_ = {}
        cascade.classes_ = np.array([0, 1])
        return cascade

    def fit(self, X, y, X_val=None, y_val=None):
        """Fit both stages on ``X``/``y`` (a second stage whose ``fit`` takes validation gets ``X_val``/``y_val``
        for early stopping), choose the band and the weight on ``X_val``/``y_val`` (default: a stratified
        ``validation_fraction`` of ``X`` held out), export a torch second stage to ONNX (checked on the validation
        texts)."""
        if self.first is None or self.second is None:
            raise ValueError("a Cascade needs a first and a second estimator")
        texts, labels = [str(t) for t in X], np.asarray(y).astype(int)
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if X_val is None:
            from sklearn.model_selection import train_test_split

            texts, val_texts, labels, val_labels = train_test_split(
                texts, labels, test_size=self.validation_fraction, stratify=labels, random_state=self.seed
            )
        else:
            val_texts, val_labels = [str(t) for t in X_val], np.asarray(y_val).astype(int)
        first = clone(self.first).fit(texts, labels)
        second = clone(self.second)
        if accepts_validation(second):
            second.fit(texts, labels, X_val=val_texts, y_val=val_labels)
        else:
            second.fit(texts, labels)
        if self.export_onnx:
            from aml.spam import onnx

            second = onnx.servable(second, val_texts)
        p1 = _proba1(first, val_texts)
        band = choose_band(p1, val_labels, margin=self.margin, max_share=self.max_share)
        self.first_, self.second_, self.band_ = first, second, band
        self.classes_ = np.array([0, 1])
        self.weight_, self.weight_scores_ = 0.0, {}
        if band is not None:
            inside = band.contains(p1)
            p2 = np.zeros_like(p1)
            if inside.any():
                p2[inside] = _proba1(second, [t for t, r in zip(val_texts, inside, strict=True) if r])
            self.weight_, self.weight_scores_ = choose_weight(p1, p2, val_labels, band, self.weights)
        return self

    def with_first(self, first) -> Cascade:
        """A copy of this fitted cascade whose first stage is ``first`` (the lean scorer compiled from
        ``first_``: the service's form). The copy counts its own traffic."""
        self._check_fitted()
        return Cascade.assemble(first, self.second_, self.band_, self.weight_)

    def _check_fitted(self):
        if not hasattr(self, "first_"):
            raise ValueError("this Cascade is not fitted: call fit() (or build it with Cascade.assemble)")

    # -- scoring -----------------------------------------------------------------------------------------------------

    @property
    def counts(self) -> dict:
        """``{"scored", "routed"}`` messages in this process since it was built or loaded."""
        return dict(getattr(self, "_counts", None) or {"scored": 0, "routed": 0})

    def _count(self, scored: int, routed: int) -> None:
        lock = self.__dict__.setdefault("_lock", threading.Lock())
        with lock:
            counts = self.__dict__.setdefault("_counts", {"scored": 0, "routed": 0})
            counts["scored"] += scored
            counts["routed"] += routed

    def __getstate__(self):
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in ("_lock", "_counts")}

    def route(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(p1, routed)``: the first stage's propensity of each text and whether it goes to the second stage."""
        self._check_fitted()
        docs = list(texts)
        p1 = _proba1(self.first_, docs) if docs else np.zeros(0)
        routed = self.band_.contains(p1) if self.band_ is not None else np.zeros(len(docs), dtype=bool)
        return p1, routed

    def predict_proba(self, X) -> np.ndarray:
        """``[1 - p, p]`` per text, ``p`` the cascade's propensity (the first stage's outside the band,
        :func:`combine` inside)."""
        if isinstance(X, (str, bytes)):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        docs = list(X)
        p1, routed = self.route(docs)
        p = p1.copy()
        if routed.any():
            inside = [d for d, r in zip(docs, routed, strict=True) if r]
            p[routed] = combine(p1[routed], _proba1(self.second_, inside), self.band_, self.weight_)
        self._count(len(docs), int(routed.sum()))
        return np.column_stack([1.0 - p, p])

    def propensity(self, text: str) -> float:
        """The cascade's propensity of one text (the first stage's single-message path when it has one)."""
        self._check_fitted()
        first = self.first_
        p1 = float(first.propensity(text)) if hasattr(first, "propensity") else float(_proba1(first, [text])[0])
        if self.band_ is None or not (self.band_.low <= p1 <= self.band_.high):
            self._count(1, 0)
            return p1
        self._count(1, 1)
        p2 = _proba1(self.second_, [text])
        return float(combine(np.array([p1]), p2, self.band_, self.weight_)[0])

    def predict(self, X) -> np.ndarray:
        """1 where the cascade's propensity is at least 0.5 (the service applies its own threshold)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def describe(self) -> dict:
        """The cascade's parts, band and weight (JSON-able), for ``/health`` and the training report."""
        self._check_fitted()
        return {
            "first": type(self.first_).__name__,
            "second": type(self.second_).__name__,
            "band": self.band_.to_dict() if self.band_ is not None else None,
            "weight": float(self.weight_),
            "weight_scores": {str(k): float(v) for k, v in self.weight_scores_.items()},
        }
