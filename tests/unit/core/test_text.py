from aml.core import text


def test_word_char_tfidf_settings():
    union = text.word_char_tfidf(char_min_df=5)
    params = union.get_params()
    assert params["word__ngram_range"] == (1, 2) and params["char__ngram_range"] == (2, 5)
    assert params["char__min_df"] == 5 and params["char__analyzer"] == "char_wb"


def test_minilm_is_installed_offline():
    assert (text.minilm_path() / "config.json").is_file()


def test_quiet_pretrained_loading_restores_the_settings():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    with text.quiet_pretrained_loading(errors_only=True):
        assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before
