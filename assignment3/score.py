"""Score one SMS with a trained spam model: ``score(text, model, threshold) -> (prediction, propensity)``.

The model is any fitted classifier that takes raw texts (its vectoriser inside) and has ``predict_proba`` — the
champion of Assignment 2 or the artefact Assignment 1 saved in the model store. Loading the model is the caller's job
and happens once (``app.py`` loads it at start-up); ``score`` only predicts, it never refits or reloads.

Boundary rule: a text is spam when ``propensity >= threshold`` (the same rule as ``aml.evaluation.evaluate``, so a
threshold chosen on validation means the same thing here). Hence threshold 0 always predicts spam, and threshold 1
predicts spam only for a propensity of exactly 1.

This file is copied into the serving image, which carries scikit-learn but not pandas or the training code, so it
depends on numpy alone (the model brings scikit-learn with it).
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def check_threshold(threshold) -> float:
    """``threshold`` as a float in [0, 1]; ``TypeError`` for a non-number (``bool`` included), ``ValueError`` for
    NaN or a value outside [0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number in [0, 1], got {type(threshold).__name__} {threshold!r}")
    value = float(threshold)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return value


def score(text: str, model, threshold: float) -> tuple[bool, float]:
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
    return bool(propensity >= threshold), propensity
