"""A fine-tuned transformer served without torch: :func:`export` turns a fitted text classifier (a Hugging Face
``AutoModelForSequenceClassification`` and its fast tokenizer, e.g. :class:`aml.spam.transformer.FineTunedTransformer`)
into an :class:`OnnxTextClassifier` — the ONNX graph (bytes) run by ONNX Runtime and the tokenizer's
``tokenizer.json`` run by the ``tokenizers`` package — and refuses it unless its probabilities equal the torch
model's within :data:`TOLERANCE` on sample texts.

Why. The serving image must stay lean (issue 24): the workspace's torch is a multi-GB CUDA build, and transformers
pulls it in. ONNX Runtime (about 20 MB of wheel) and ``tokenizers`` (the Rust tokenizer transformers itself uses)
give the same numbers on a CPU, faster for one message (2.8 ms against 7.8 ms for torch on 2 cores, measured
2026-12-02, the workspace's notes on pretrained models). Nothing here imports torch or transformers except
:func:`export`; a pickled :class:`OnnxTextClassifier` loads with numpy, onnxruntime and tokenizers alone.

How the export is checked. ``torch.onnx.export`` (the TorchScript exporter: ``dynamo=False``, opset 17, dynamic
batch and sequence axes) writes the graph with inputs ``input_ids`` and ``attention_mask`` (``token_type_ids`` are
zeros for one sequence, BERT's default). The classifier then scores ``sample_texts`` through its own path
(``tokenizers`` encoding, length-sorted batches padded to their longest text) and the reference scores them
through the torch model (the Hugging Face tokenizer, or the fitted estimator's own ``predict_proba`` when given);
the largest difference of the probabilities (and of the logits, against torch) must be within ``tolerance``
(:data:`TOLERANCE`), and the token ids must be the same, else :class:`ExportMismatch` is raised and nothing is
returned. The figures are kept on the classifier (``max_abs_diff``, ``n_verified``).

Why hand-written (this module, not a library): the Hugging Face exporter ``optimum`` is not in this environment and
would pull torch into the export only — which :func:`export` does anyway; what is left (tokenise, batch, pad, run,
softmax) is a few lines over onnxruntime's and tokenizers' own APIs.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from aml.spam.lean import _as_texts  # the same input check as the lean scorer

__all__ = [
    "TOLERANCE",
    "ExportMismatch",
    "OnnxTextClassifier",
    "export",
    "export_estimator",
    "is_torch_classifier",
    "servable",
]

#: the largest difference of probabilities (and logits) allowed between the ONNX graph and the torch model
TOLERANCE = 1e-5
#: the ONNX opset of the export (verified with onnxruntime 1.32 and torch 2.14)
OPSET = 17
#: ONNX Runtime's intra-op threads per process unless ``AML_ONNX_THREADS`` says otherwise: 1, because the service runs
#: one gunicorn worker per core (two workers each asking for every core only fight over them)
THREADS_ENV = "AML_ONNX_THREADS"
INPUTS = ("input_ids", "attention_mask")


class ExportMismatch(ValueError):
    """The exported graph does not give the torch model's outputs within the tolerance: it must not serve."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxTextClassifier:
    """A text classifier run by ONNX Runtime: ``predict_proba(texts)`` → ``(n, n_classes)`` softmax probabilities,
    ``predict``, ``classes_``, as a scikit-learn classifier. Holds the ONNX graph (``onnx_model``, bytes) and the
    fast tokenizer's JSON (``tokenizer_json``); the session and the tokenizer are made on first use and are not
    pickled, so the registry stores the classifier like any other model.

    ``max_length``: texts are truncated to this many tokens (the fine-tuning's); ``batch_size``: texts per ONNX
    run (sorted by length, each batch padded to its longest); ``threads``: ONNX Runtime's intra-op threads (``None``:
    ``AML_ONNX_THREADS``, default 1)."""

    _estimator_type = "classifier"

    def __init__(
        self,
        onnx_model: bytes,
        tokenizer_json: str,
        max_length: int,
        *,
        pad_id: int = 0,
        classes: Sequence = (0, 1),
        batch_size: int = 32,
        threads: int | None = None,
    ):
        if not isinstance(onnx_model, (bytes, bytearray)) or not onnx_model:
            raise ValueError("onnx_model must be the non-empty bytes of an ONNX graph")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.onnx_model = bytes(onnx_model)
        self.tokenizer_json = str(tokenizer_json)
        self.max_length = max_length
        self.pad_id = int(pad_id)
        self.classes_ = np.asarray(list(classes))
        self.batch_size = batch_size
        self.threads = threads
        self.max_abs_diff: float | None = None
        self.n_verified = 0
        self._session = None
        self._tokenizer = None

    def __repr__(self) -> str:
        return (
            f"OnnxTextClassifier({len(self.onnx_model) / 1e6:.1f} MB graph, max_length={self.max_length}, "
            f"classes={self.classes_.tolist()}, max_abs_diff={self.max_abs_diff})"
        )

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_session", "_tokenizer")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._session = None
        self._tokenizer = None

    # -- the runtime parts, made on first use --------------------------------------------------------------------------

    @property
    def session(self):
        """The ONNX Runtime session (CPU provider)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            threads = self.threads if self.threads is not None else int(os.environ.get(THREADS_ENV, "1") or 1)
            options.intra_op_num_threads = max(1, int(threads))
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(self.onnx_model, options, providers=["CPUExecutionProvider"])
        return self._session

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer``: truncation at ``max_length``, no padding (batches pad themselves)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(self.tokenizer_json)
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_length)
            self._tokenizer = tokenizer
        return self._tokenizer

    # -- scoring -------------------------------------------------------------------------------------------------------

    def encode(self, texts: Iterable[str]) -> list[list[int]]:
        """The token ids of each text (special tokens added, truncated to ``max_length``)."""
        docs = _as_texts(texts)
        if len(docs) == 1:
            return [self.tokenizer.encode(docs[0]).ids]
        return [e.ids for e in self.tokenizer.encode_batch(docs)]

    def logits(self, texts: Iterable[str]) -> np.ndarray:
        """The graph's logits ``(n, n_classes)`` (float32), in the order of ``texts``."""
        ids = self.encode(texts)
        out = np.zeros((len(ids), len(self.classes_)), dtype=np.float32)
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(ids[r]) for r in rows)
            input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            out[rows] = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return out

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Softmax probabilities ``(n, n_classes)`` (float64); an empty input gives ``(0, n_classes)``."""
        return _softmax(self.logits(texts))

    def predict(self, texts: Iterable[str]) -> np.ndarray:
        """The class of highest probability."""
        return self.classes_[np.argmax(self.predict_proba(texts), axis=1)]


# -- export ---------------------------------------------------------------------------------------------------------


def _onnx_bytes(model, tokenizer, max_length: int) -> bytes:
    import torch

    example = tokenizer(["an example text", "a second one"], padding=True, truncation=True, max_length=max_length)
    args = (torch.tensor(example["input_ids"]), torch.tensor(example["attention_mask"]))
    buffer = io.BytesIO()
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export's, which needs onnxscript (not installed);
        # its trace warnings are about Python conditions on shapes that the dynamic axes cover
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        # BERT's index ops use no negative indices; the export is checked on sample texts anyway
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        torch.onnx.export(
            model,
            args,
            buffer,
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _torch_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 32):
    """(token ids, logits) of the torch model, through the Hugging Face tokenizer (the reference path)."""
    import torch

    ids, logits = [], []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            logits.append(out.float().numpy())
            for row, mask in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist(), strict=True):
                ids.append(row[: sum(mask)])
    return ids, np.concatenate(logits) if logits else np.zeros((0, model.config.num_labels), dtype=np.float32)


def export(
    model,
    tokenizer,
    max_length: int,
    sample_texts: Iterable[str],
    *,
    reference=None,
    tolerance: float = TOLERANCE,
    classes: Sequence | None = None,
    batch_size: int = 32,
    threads: int | None = None,
) -> OnnxTextClassifier:
    """Export the torch sequence classifier ``model`` (put in eval mode) with its fast ``tokenizer`` to an
    :class:`OnnxTextClassifier`, checked on ``sample_texts``: same token ids, logits and probabilities within
    ``tolerance`` of the torch model's (and, with ``reference`` — a fitted estimator with ``predict_proba``, e.g.
    the fine-tuned transformer — probabilities within ``tolerance`` of its own). Raises :class:`ExportMismatch`
    otherwise, ``ValueError`` for a slow (non-Rust) tokenizer or no sample texts."""
    docs = _as_texts(sample_texts)
    if not docs:
        raise ValueError("export needs sample texts to check the exported graph on")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: it has no tokenizer.json to serve")
    model.eval()
    n_labels = int(model.config.num_labels)
    classifier = OnnxTextClassifier(
        _onnx_bytes(model, tokenizer, max_length),
        tokenizer.backend_tokenizer.to_str(),
        max_length,
        pad_id=tokenizer.pad_token_id or 0,
        classes=list(range(n_labels)) if classes is None else classes,
        batch_size=batch_size,
        threads=threads,
    )
    ref_ids, ref_logits = _torch_logits(model, tokenizer, docs, max_length)
    ids = classifier.encode(docs)
    differ = [i for i, (a, b) in enumerate(zip(ids, ref_ids, strict=True)) if list(a) != list(b)]
    if differ:
        raise ExportMismatch(
            f"the tokenizers package encodes {len(differ)} of {len(docs)} sample texts differently from the Hugging "
            f"Face tokenizer, first {docs[differ[0]][:80]!r}"
        )
    logits = classifier.logits(docs)
    diffs = {
        "logits": float(np.max(np.abs(logits.astype(np.float64) - ref_logits))),
        "probabilities": float(np.max(np.abs(_softmax(logits) - _softmax(ref_logits)))),
    }
    if reference is not None:
        expected = np.asarray(reference.predict_proba(docs), dtype=np.float64)
        diffs["estimator probabilities"] = float(np.max(np.abs(_softmax(logits) - expected)))
    worst = max(diffs.values())
    if not worst <= tolerance:  # NaN too
        raise ExportMismatch(
            f"the ONNX graph differs from the torch model by more than {tolerance:g} on {len(docs)} sample texts: "
            + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items())
        )
    classifier.max_abs_diff, classifier.n_verified = worst, len(docs)
    return classifier


def export_estimator(estimator, sample_texts: Iterable[str], **kwargs) -> OnnxTextClassifier:
    """:func:`export` of a fitted estimator that holds ``model`` (torch), ``tokenizer`` and ``max_length`` (e.g.
    :class:`aml.spam.transformer.FineTunedTransformer`), checked against the estimator's own ``predict_proba`` too;
    its ``classes_`` carry over."""
    for name in ("model", "tokenizer", "max_length"):
        if getattr(estimator, name, None) is None:
            raise ValueError(f"{type(estimator).__name__} has no {name!r}: not a fitted transformer classifier")
    classes = getattr(estimator, "classes_", None)
    return export(
        estimator.model,
        estimator.tokenizer,
        int(estimator.max_length),
        sample_texts,
        reference=estimator if hasattr(estimator, "predict_proba") else None,
        classes=None if classes is None else list(np.asarray(classes).tolist()),
        **kwargs,
    )


def is_torch_classifier(model) -> bool:
    """Whether ``model`` is a fitted transformer text classifier that needs torch to score: it holds ``model`` (a
    ``transformers`` module), ``tokenizer`` and ``max_length`` (e.g. :class:`aml.spam.transformer.FineTunedTransformer`)."""
    return all(getattr(model, a, None) is not None for a in ("model", "tokenizer", "max_length")) and (
        type(getattr(model, "model", None)).__module__.startswith("transformers")
    )


def servable(model, sample_texts: Iterable[str], **kwargs):
    """``model`` in the form that serves without torch: a fitted transformer classifier
    (:func:`is_torch_classifier`) exported to an :class:`OnnxTextClassifier` checked on ``sample_texts``
    (:func:`export_estimator`, ``kwargs`` passed on); any other model unchanged (the same object). The training stage
    (:func:`aml.spam.stages.train`), the stack and the cascade call it, so a saved or registered model never needs
    torch to load."""
    return export_estimator(model, sample_texts, **kwargs) if is_torch_classifier(model) else model
