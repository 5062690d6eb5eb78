"""Score one SMS with a trained spam model: ``score_text(text, model, threshold) -> (prediction, propensity)``.

Why a module of its own: the service (:mod:`aml.spam.service`), ``assignment3/score.py`` and the load benchmark
score single messages the same way, and the serving image carries NumPy, scikit-learn and Flask but neither pandas
nor the training code — so this module imports NumPy and the threshold rule of :mod:`aml.core.metrics`, nothing else.

The model is any fitted classifier that takes raw texts (its vectoriser inside) and has ``predict_proba``. Loading it
is the caller's job and happens once; scoring only predicts, it never refits or reloads.

Boundary rule: :func:`aml.core.metrics.apply_threshold` (spam when ``propensity >= threshold``), the rule the
threshold was chosen with on validation. Threshold 0 always predicts spam; threshold 1 only for a propensity of
exactly 1.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from aml.core.metrics import apply_threshold


def check_threshold(threshold) -> float:
    """``threshold`` as a float in [0, 1]; ``TypeError`` for a non-number (``bool`` included), ``ValueError`` for
    NaN, a value outside [0, 1], or an integer too large to be a float (a 400-digit number from a JSON body)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number in [0, 1], got {type(threshold).__name__} {threshold!r}")
    try:
        value = float(threshold)
    except OverflowError:
        raise ValueError(f"threshold must be in [0, 1], got an integer of {len(str(threshold))} digits") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return value


def score_text(text: str, model, threshold: float) -> tuple[bool, float]:
    """Prediction (``True`` = spam) and propensity (probability of spam, a float in [0, 1]) of one text.

    Raises ``TypeError`` when ``text`` is not a ``str``, ``threshold`` is not a number or ``model`` has no
    ``predict_proba``; ``ValueError`` when ``threshold`` is NaN or outside [0, 1], or when the model returns
    something that is not one probability pair in [0, 1].
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    threshold = check_threshold(threshold)
    predict_proba = getattr(model, "predict_proba", None)
    if not callable(predict_proba):
        raise TypeError(f"model must have a predict_proba method (a fitted classifier), got {type(model).__name__}")
    proba = np.asarray(predict_proba([text]), dtype=float)
    if proba.ndim != 2 or proba.shape[0] != 1 or proba.shape[1] < 2:
        raise ValueError(f"model.predict_proba returned shape {proba.shape}, expected (1, 2)")
    propensity = float(proba[0, 1])
    if not 0.0 <= propensity <= 1.0:  # also false for NaN
        raise ValueError(f"model returned propensity {propensity!r}, expected a probability in [0, 1]")
    return apply_threshold(propensity, threshold), propensity
