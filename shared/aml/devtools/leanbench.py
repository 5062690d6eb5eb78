"""The lean scorer's benchmark: the full scikit-learn pipeline against its compiled :class:`aml.spam.lean.LeanScorer`,
one message at a time and in a batch (``python -m aml.devtools.leanbench``; the figures and their conditions are in
:mod:`aml.spam.lean`'s docstring).

A measurement, kept apart from the scorer it measures: :mod:`aml.spam.lean` computes propensities and nothing else,
so the serving image carries no timing code, and a benchmark can change without touching what is served.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from aml.spam.lean import compile_scorer


def benchmark(model, texts: Sequence[str], repeats: int = 3, single_messages: int = 500, verbose: bool = True) -> dict:
    """Time the full model against its compiled :class:`~aml.spam.lean.LeanScorer` on ``texts`` and return (and, when ``verbose``,
    print) the figures.

    - one message at a time, ``single_messages`` texts spread over ``texts``, each scored once per pass: mean and
      p99 in ms of the model's ``predict_proba([t])``, of the scorer's ``propensity(t)`` with a cold word cache
      (cleared before the pass, so each word's n-grams are made when first seen) and a warm one, and of its
      ``predict_proba([t])`` (the path of :func:`aml.spam.scoring.score_text`); the pass of lowest mean of ``repeats``;
    - the whole batch, best of ``repeats``: messages per second of the model and of the scorer, cold and warm.

    Each repeat times every variant in turn (a pass of one variant at a time, as a server running only that model
    would), so a machine shared with other work slows all of them alike and the ratios hold when the absolute
    figures drift."""
    texts = list(texts)
    start = time.perf_counter()
    lean = compile_scorer(model, texts)
    compile_s = time.perf_counter() - start
    picks = [texts[i] for i in np.linspace(0, len(texts) - 1, min(single_messages, len(texts))).astype(int)]

    def timed(fn, arg) -> float:
        t0 = time.perf_counter()
        fn(arg)
        return time.perf_counter() - t0

    def summary(seconds: list[float]) -> dict:
        ms = np.array(seconds) * 1e3
        return {"mean_ms": float(ms.mean()), "p99_ms": float(np.percentile(ms, 99))}

    passes: dict[str, list[list[float]]] = {k: [] for k in ("full", "cold", "warm", "one")}
    for _ in range(repeats):
        passes["full"].append([timed(model.predict_proba, [text]) for text in picks])
        lean.clear_cache()  # the cold pass sees each word for the first time
        passes["cold"].append([timed(lean.propensity, text) for text in picks])
        passes["warm"].append([timed(lean.propensity, text) for text in picks])
        passes["one"].append([timed(lean.predict_proba, [text]) for text in picks])
    full, cold, warm, one = (min(passes[k], key=sum) for k in ("full", "cold", "warm", "one"))
    batch: dict[str, list[float]] = {"full_batch": [], "lean_batch_cold": [], "lean_batch": []}
    for _ in range(repeats):
        batch["full_batch"].append(timed(model.predict_proba, texts))
        lean.clear_cache()
        batch["lean_batch_cold"].append(timed(lean.predict_proba, texts))
        batch["lean_batch"].append(timed(lean.predict_proba, texts))

    results: dict = {"messages": len(texts), "single_messages": len(picks), "repeats": repeats}
    results.update(compile_s=compile_s, max_abs_diff=lean.max_abs_diff, scorer=repr(lean))
    results.update(full_single=summary(full), lean_single_cold=summary(cold), lean_single=summary(warm))
    results["lean_predict_proba_single"] = summary(one)
    results["load_average"] = tuple(round(x, 2) for x in os.getloadavg()) if hasattr(os, "getloadavg") else None
    for key, seconds in batch.items():
        results[key] = {"seconds": min(seconds), "msg_per_s": len(texts) / min(seconds)}
    if verbose:
        print(f"{lean!r}\ncompiled and verified in {compile_s:.2f} s; max |difference| {lean.max_abs_diff:.3g}")
        for key, label in [
            ("full_single", "full model, predict_proba([t])"),
            ("lean_single_cold", "lean propensity(t), cold cache"),
            ("lean_single", "lean propensity(t), warm cache"),
            ("lean_predict_proba_single", "lean predict_proba([t]), warm cache"),
        ]:
            r = results[key]
            print(f"{label:<40} {r['mean_ms']:8.3f} ms mean {r['p99_ms']:8.3f} ms p99  ({len(picks)} messages)")
        print(f"(one message: the best of {repeats} passes; load average at the end {results['load_average']})")
        for key, label in [
            ("full_batch", "full model, batch"),
            ("lean_batch_cold", "lean, batch, cold cache"),
            ("lean_batch", "lean, batch, warm cache"),
        ]:
            r = results[key]
            print(f"{label:<40} {r['msg_per_s']:8.0f} msg/s ({r['seconds']:.3f} s for {len(texts)}, best of {repeats})")
    return results


def main() -> None:  # pragma: no cover - a measurement, run by hand: python -m aml.devtools.leanbench
    """Benchmark the selected model (``tfidf_linear_svm()`` fitted on the train split) on every distinct SMS."""
    from aml.spam import models, sms, stages

    df, _ = sms.load_sms()
    clean, _ = sms.preprocess(df)
    df_train, _, _ = stages.prepare_train_validation_test_split(df)
    model = stages.fit(models.tfidf_linear_svm(), df_train)
    benchmark(model, clean["text"].tolist(), repeats=3)


if __name__ == "__main__":  # pragma: no cover
    main()
