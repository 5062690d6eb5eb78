"""Test fixtures shared by the service's tests, its container test and the load benchmark.

Why here: ``assignment3/test.py``, ``assignment3/benchmark.py`` and ``assignment4`` (``image.py``, ``test.py``) all
need the saved spam filter and the same obvious example messages; one place keeps them from depending on a
hard-coded path, on ``make run`` having run, or on each other's copies.

- :func:`ensure_model`: the saved spam filter, built (in ~15 s, without the transformer model) when the store has
  none yet;
- :data:`SPAM_EXAMPLES` / :data:`HAM_EXAMPLES`: obvious messages every served model must get right.
"""

from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path
from typing import Any

from aml.core import config, modelstore
from aml.spam import MODEL_NAME

#: obvious spam (prize, premium-rate number, claim code) that every served spam filter must flag
SPAM_EXAMPLES = (
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward! "
    "To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt the word: CLAIM to No: 81010",
)
#: obvious everyday ham that every served spam filter must let through
HAM_EXAMPLES = (
    "Hi mum, I'll be home for dinner around seven, do you need anything from the shop?",
    "Ok lar... see you at the cinema tomorrow then",
)


def ensure_model(
    store: str | Path | None = None, data_dir: str | Path | None = None, seed: int = 42
) -> tuple[Any, dict]:
    """``(model, meta)`` of the spam filter (:data:`aml.spam.MODEL_NAME`) in the model store, built first if the
    store has none.

    The build (``aml.spam.selection.build_spam_filter`` without the slow transformer model) prepares the splits in
    ``data_dir`` (default: a temporary folder) from the dataset ``aml.core.datasets.fetch`` finds (``AML_DATA_DIR``).
    A lock file in the store keeps parallel test processes from building the same model twice. A broken artefact
    (checksum, metadata) raises as :func:`aml.core.modelstore.load` does: it is never silently rebuilt.
    """
    store = Path(store or config.model_store_dir())
    path = modelstore.store_path(MODEL_NAME, store)
    try:
        return modelstore.load(path)
    except modelstore.ModelNotFoundError:
        pass
    store.mkdir(parents=True, exist_ok=True)
    with open(store / f".{MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return modelstore.load(path)  # built by another process meanwhile
        except modelstore.ModelNotFoundError:
            pass
        from aml.spam import selection  # training code (pandas): imported only when a build is needed

        with tempfile.TemporaryDirectory(prefix="aml-splits-") as tmp:
            selection.build_spam_filter(data_dir or tmp, seed=seed, store=store, include_transformer=False)
    return modelstore.load(path)
