import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from aml.spam import scoring


def constant(propensity_of_spam: int):
    return DummyClassifier(strategy="constant", constant=propensity_of_spam).fit(["a", "b"], [0, 1])


@pytest.fixture(scope="module")
def model():
    texts = ["win cash prize now", "free prize claim", "see you at lunch", "call mum tonight"] * 3
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 1, 0, 0] * 3)


@pytest.mark.parametrize("value, expected", [(0, 0.0), (1, 1.0), (0.25, 0.25), (np.float32(0.5), 0.5)])
def test_check_threshold_accepts_numbers_in_0_1(value, expected):
    result = scoring.check_threshold(value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize(
    "value, error, match",
    [
        (None, TypeError, "real number"),
        ("0.5", TypeError, "real number"),
        (True, TypeError, "real number"),
        (-0.01, ValueError, r"\[0, 1\]"),
        (1.01, ValueError, r"\[0, 1\]"),
        (math.nan, ValueError, r"\[0, 1\]"),
        (math.inf, ValueError, r"\[0, 1\]"),
        (10**400, ValueError, "integer of 401 digits"),  # float() would raise OverflowError
        (-(10**400), ValueError, "integer of 402 digits"),
    ],
)
def test_check_threshold_rejects(value, error, match):
    with pytest.raises(error, match=match):
        scoring.check_threshold(value)


def test_score_text_types_and_range(model):
    prediction, propensity = scoring.score_text("win a free prize", model, 0.5)
    assert type(prediction) is bool and type(propensity) is float and 0 <= propensity <= 1
    assert prediction is True and scoring.score_text("lunch with mum", model, 0.5)[0] is False


def test_score_text_uses_the_threshold_rule_of_core_metrics(model, monkeypatch):
    calls = []

    def rule(propensity, threshold):
        calls.append((propensity, threshold))
        return True

    monkeypatch.setattr(scoring, "apply_threshold", rule)
    assert scoring.score_text("lunch", model, 0.9)[0] is True and calls[0][1] == 0.9


def test_score_text_boundary_is_inclusive(model):
    propensity = scoring.score_text("lunch", model, 0.5)[1]
    assert scoring.score_text("lunch", model, propensity)[0] is True
    assert scoring.score_text("lunch", model, float(np.nextafter(propensity, 1.0)))[0] is False
    assert scoring.score_text("x", constant(1), 1.0) == (True, 1.0)
    assert scoring.score_text("x", constant(0), 0.0) == (True, 0.0)
    assert scoring.score_text("x", constant(0), 0.5) == (False, 0.0)


class Returns:
    def __init__(self, value):
        self.value = value

    def predict_proba(self, texts):
        return np.asarray(self.value)


@pytest.mark.parametrize(
    "text, model, threshold, error, match",
    [
        (None, constant(1), 0.5, TypeError, "text must be a str"),
        (b"x", constant(1), 0.5, TypeError, "text must be a str"),
        ("x", constant(1), "0.5", TypeError, "real number"),
        ("x", None, 0.5, TypeError, "predict_proba"),
        ("x", Returns([[1.0]]), 0.5, ValueError, r"expected \(1, 2\)"),
        ("x", Returns([0.2, 0.8]), 0.5, ValueError, r"expected \(1, 2\)"),
        ("x", Returns([[-0.5, 1.5]]), 0.5, ValueError, "expected a probability"),
        ("x", Returns([[0.5, math.nan]]), 0.5, ValueError, "expected a probability"),
    ],
)
def test_score_text_rejects_bad_input(text, model, threshold, error, match):
    with pytest.raises(error, match=match):
        scoring.score_text(text, model, threshold)


def test_serving_modules_import_neither_pandas_nor_training_code():
    """The serving image carries numpy, scipy, scikit-learn, joblib, Flask and gunicorn only."""
    code = (
        "import sys, aml.spam.scoring, aml.spam.service; "
        "bad = [m for m in ('pandas', 'aml.spam.selection', 'aml.spam.stages', 'aml.spam.models', 'torch') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
