"""Score one SMS with a trained spam model: ``score(text, model, threshold) -> (prediction, propensity)``.

The assignment's scoring file. The implementation lives in the library (:func:`aml.spam.scoring.score_text`), where
the service, the load benchmark and the tests share it; this file names it as the assignment does::

    from score import score

Boundary rule: spam when ``propensity >= threshold`` (:func:`aml.core.metrics.apply_threshold`, the rule the
threshold was chosen with on validation). Bad input raises ``TypeError`` / ``ValueError``; see the library function.
"""

from aml.spam.scoring import check_threshold, score_text

score = score_text

__all__ = ["check_threshold", "score"]
