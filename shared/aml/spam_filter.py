"""The SMS spam filter end to end: benchmark → select by validation AUCPR → threshold on validation →
test report → one saved artefact. ``assignment1/train.ipynb`` walks through these steps; later assignments (the
DVC pipeline, the scoring service, test fixtures) call :func:`build_spam_filter` to get the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aml import evaluation, models, modelstore, sms

MODEL_NAME = "sms-spam-filter"


@dataclass
class SpamFilterResult:
    validation: evaluation.Validation
    test: pd.DataFrame  # one row per model, test metrics at the validation-chosen threshold
    best: str
    artefact: Path | None = None

    @property
    def best_model(self):
        return self.validation.models[self.best]

    @property
    def threshold(self) -> float:
        return self.validation.thresholds[self.best]

    def metrics(self) -> dict:
        """The ``assignment1`` block of ``build/metrics.json``."""
        keys = ("aucpr", "precision", "recall", "f1", "ham_blocked")
        per_model = {name: {k: float(row[k]) for k in keys} for name, row in self.test.iterrows()}
        return {
            "best_model": self.best,
            "threshold": self.threshold,
            "test": per_model[self.best],
            "models": per_model,
        }


def train_and_select(
    splits: dict[str, pd.DataFrame],
    candidates: dict | None = None,
    min_precision: float = evaluation.MIN_PRECISION,
    progress=None,
) -> SpamFilterResult:
    """Fit every candidate on train, select the best by validation AUCPR, report every model on test."""
    candidates = candidates if candidates is not None else models.benchmark_models()
    validation = evaluation.validate(candidates, splits["train"], splits["validation"], min_precision, progress)
    test = evaluation.test_report(validation, splits["test"])
    return SpamFilterResult(validation=validation, test=test, best=validation.best)


def save_selected(result: SpamFilterResult, store: str | Path | None = None, extra: dict | None = None) -> Path:
    """Save the selected model (vectoriser included) with its threshold and test metrics."""
    meta = {"model": result.best, "threshold": result.threshold, "test": result.metrics()["test"], **(extra or {})}
    result.artefact = modelstore.save_model(result.best_model, MODEL_NAME, meta, store=store)
    return result.artefact


def build_spam_filter(
    data_dir: str | Path, seed: int = 42, store: str | Path | None = None, include_transformer: bool = False
) -> SpamFilterResult:
    """Prepare (or reuse) the splits in ``data_dir``, train the benchmarks, save the best: one call.

    ``include_transformer=False`` leaves out the (slow) transformer-embedding model; it is used where a model is
    needed quickly (test fixtures), not for the assignment's headline comparison.
    """
    splits = sms.ensure_splits(data_dir, seed=seed)
    result = train_and_select(splits, models.benchmark_models(seed=seed, include_transformer=include_transformer))
    save_selected(result, store=store, extra={"seed": seed})
    return result
