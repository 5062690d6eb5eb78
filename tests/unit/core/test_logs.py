import io
import logging
import os

import pytest

from aml.core.logs import setup_logging


def test_setup_logging_is_idempotent_and_quietens_noisy_libraries(monkeypatch):
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    setup_logging("INFO", stream=stream)  # twice: still one line per record
    logging.getLogger("aml.something").info("hello")
    logging.getLogger("aml.something").debug("hidden")
    assert stream.getvalue().count("hello") == 1 and "hidden" not in stream.getvalue()
    assert "INFO aml.something: hello" in stream.getvalue()
    assert logging.getLogger("mlflow").level == logging.WARNING
    assert logging.getLogger("alembic").level == logging.WARNING
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"  # read by MLflow when it is imported later


def test_setup_logging_rejects_unknown_levels():
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("LOUD")


def test_quieted_raises_a_logger_for_the_block_and_puts_it_back():
    import logging

    from aml.core import logs

    logger = logging.getLogger("aml-test.quieted")
    logger.setLevel(logging.INFO)
    with logs.quieted("aml-test.quieted") as quiet:
        assert quiet is logger and logger.level == logging.ERROR
    assert logger.level == logging.INFO
    try:
        with logs.quieted("aml-test.quieted", logging.CRITICAL):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert logger.level == logging.INFO
