"""The architectures lecture (``lectures/architectures.ipynb``) in PyTorch: feed-forward networks, CNNs, residual
connections, RNN, LSTM and a small Transformer encoder, on the course's offline data.

- **Digits** (scikit-learn's bundled 8×8 ``load_digits``, 1,797 images): :class:`DigitsMLP` against :class:`DigitsCNN`
  (parameters, accuracy, first-layer weights), and :class:`DeepCNN`, a deep stack of 3×3 convolutions with or without
  identity skip connections (the ResNet idea: the same depth trains when each block only adds a residual).
- **SMS spam** (assignment 1's deduplicated split, seed 42, :func:`aml.spam.stages.prepare_train_validation_test_split`):
  :class:`SequenceClassifier` reads token ids with an RNN, an LSTM or a Transformer encoder, trained from scratch,
  beside assignment 1's selected TF-IDF model (:data:`TFIDF_MODEL`).

Training and prediction reuse :func:`aml.transfer.training.fit` / :func:`~aml.transfer.training.predict` (early
stopping on validation loss, seeded); metrics come from :mod:`aml.core.metrics`. The tokeniser is a regular
expression on purpose: a learned sub-word vocabulary would carry knowledge from outside these 3,600 messages.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aml.core import metrics
from aml.core.splits import stratified_indices
from aml.transfer import training

#: assignment 1's selected model (README, "Assignment 1": TF-IDF word 1-2 + char 2-5 grams + linear SVM, C = 1)
TFIDF_MODEL = "tfidf_linear_svm"


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of ``model``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


# -- digits ------------------------------------------------------------------------------------------------------------


def digits_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's 8×8 digits, pixels scaled to [0, 1], as ``{split: (images (n, 1, 8, 8), labels)}`` on a
    stratified 70/15/15 split (:func:`aml.core.splits.stratified_indices`)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    idx = stratified_indices(digits.target, seed=seed)
    return {name: (images[i], labels[i]) for name, i in idx.items()}


def loaders(
    splits: Mapping[str, tuple[torch.Tensor, ...]], batch_size: int = 64, seed: int = 0
) -> dict[str, DataLoader]:
    """One ``DataLoader`` per split; only ``train`` is shuffled (by a generator seeded with ``seed``)."""
    return {
        name: DataLoader(
            TensorDataset(*tensors),
            batch_size=batch_size,
            shuffle=name == "train",
            generator=torch.Generator().manual_seed(seed) if name == "train" else None,
        )
        for name, tensors in splits.items()
    }


class DigitsMLP(nn.Module):
    """Flatten the 64 pixels, one hidden ReLU layer, 10 logits: every pixel connected to every unit."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the 10 digits for images ``(n, 1, 8, 8)``."""
        return self.net(x)

    @property
    def first_layer(self) -> torch.Tensor:
        """The first layer's weights as ``hidden`` 8×8 images."""
        return self.net[1].weight.detach().reshape(-1, 8, 8)


class DigitsCNN(nn.Module):
    """Two 3×3 convolutions (``channels`` and twice as many), max-pooling to 4×4 then 2×2, one linear layer: local,
    shared filters instead of one weight per pixel and unit."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the 10 digits for images ``(n, 1, 8, 8)``."""
        return self.net(x)

    @property
    def first_layer(self) -> torch.Tensor:
        """The first convolution's filters as ``channels`` 3×3 images."""
        return self.net[0].weight.detach()[:, 0]


class _Block(nn.Module):
    def __init__(self, channels: int, residual: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.residual = residual

    def forward(self, x):
        out = self.conv(torch.relu(x))
        return x + out if self.residual else out


class DeepCNN(nn.Module):
    """A stem convolution, ``depth`` blocks of one 3×3 convolution each (pre-activation ReLU), global average pooling
    and a linear layer. ``residual=True`` adds the identity: ``x ← x + conv(relu(x))``. No batch normalisation, so
    the difference between the two is the skip connection alone."""

    def __init__(self, depth: int = 20, channels: int = 16, residual: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(channels, residual) for _ in range(depth)])
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the 10 digits for images ``(n, 1, 8, 8)``."""
        return self.head(self.blocks(self.stem(x)))


def build(factory, seed: int, *args, **kwargs) -> nn.Module:
    """``factory(*args, **kwargs)`` with torch seeded first, so the initial weights are reproducible."""
    training.seed_everything(seed)
    return factory(*args, **kwargs)


@dataclass
class Trained:
    """A trained model with its :class:`~aml.transfer.training.FitResult` and training wall time."""

    model: nn.Module
    fit: training.FitResult
    seconds: float


def train(
    model: nn.Module,
    loader_by_split: Mapping[str, DataLoader],
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int | None = None,
    seed: int = 0,
    max_steps_per_epoch: int | None = None,
    grad_clip: float | None = None,
    desc: str = "",
) -> Trained:
    """Adam on the ``train`` loader with early stopping on ``validation`` (:func:`aml.transfer.training.fit`, best
    weights restored), on the CPU; timed."""
    start = time.perf_counter()
    result = training.fit(
        model,
        loader_by_split["train"],
        loader_by_split["validation"],
        torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay),
        epochs=epochs,
        patience=patience,
        seed=seed,
        device="cpu",
        max_steps_per_epoch=max_steps_per_epoch,
        grad_clip=grad_clip,
        progress=False,
        desc=desc,
    )
    return Trained(model, result, time.perf_counter() - start)


def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Accuracy of ``model`` on ``loader``."""
    probs, y = training.predict(model, loader, device="cpu")
    return float((probs.argmax(1) == y).mean())


def plot_first_layers(mlp: DigitsMLP, cnn: DigitsCNN, n: int = 8, axes=None):
    """Two rows: ``n`` of the MLP's first-layer weight images (8×8, one per hidden unit) and the CNN's first
    3×3 filters."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.2))
    for row, (name, weights) in enumerate((("MLP unit", mlp.first_layer), ("CNN filter", cnn.first_layer))):
        for k in range(n):
            ax = axes[row, k]
            if k < len(weights):
                w = weights[k].numpy()
                lim = float(np.abs(w).max()) or 1.0
                ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
                ax.set_title(f"{name} {k}", fontsize=7)
            ax.axis("off")
    return axes


def plot_loss_curves(results: Mapping[str, training.FitResult], ax=None, key: str = "train_loss"):
    """Training loss (mean over each epoch's batches) per epoch, one line per run, log scale."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for name, result in results.items():
        ax.semilogy(result.history["epoch"], result.history[key], "-o", ms=3, label=name)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title="training loss")
    ax.legend()
    return ax


# -- SMS spam ---------------------------------------------------------------------------------------------------------

TOKEN = re.compile(r"[a-z]+|\d+|[£$€!?]")
PAD, UNK = 0, 1


def tokenize(text: str) -> list[str]:
    """Lower-case words, digit runs and the symbols ``£ $ € ! ?`` (spam's prices and shouting)."""
    return TOKEN.findall(str(text).lower())


def build_vocabulary(texts: Sequence[str], min_count: int = 2) -> dict[str, int]:
    """Token → id for the tokens seen at least ``min_count`` times in ``texts`` (ids from 2; 0 = padding,
    1 = unknown), most frequent first."""
    counts = Counter(tok for t in texts for tok in tokenize(t))
    kept = sorted((tok for tok, c in counts.items() if c >= min_count), key=lambda tok: (-counts[tok], tok))
    return {tok: i + 2 for i, tok in enumerate(kept)}


def encode(texts: Sequence[str], vocabulary: Mapping[str, int], max_length: int = 64) -> torch.Tensor:
    """Token ids, one row per text, truncated to ``max_length`` and right-padded with 0 (an empty text is one
    unknown token, so every row has a length of at least 1)."""
    rows = torch.zeros(len(texts), max_length, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = [vocabulary.get(tok, UNK) for tok in tokenize(t)][:max_length] or [UNK]
        rows[i, : len(ids)] = torch.tensor(ids)
    return rows


def sms_tensors(
    frames: Mapping[str, pd.DataFrame], vocabulary: Mapping[str, int], max_length: int = 64
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{split: (token ids, labels)}`` from assignment 1's split frames (columns ``text`` and ``y``)."""
    return {
        name: (encode(df["text"].tolist(), vocabulary, max_length), torch.tensor(df["y"].to_numpy(), dtype=torch.long))
        for name, df in frames.items()
    }


class SequenceClassifier(nn.Module):
    """Token ids ``(n, length)`` (0 = padding) → 2 logits, through an embedding and one of three readers:

    - ``rnn``: an Elman RNN (tanh), the last hidden state of each message (padding skipped by packing);
    - ``lstm``: the same with LSTM cells (gates that let information and gradients survive long messages);
    - ``transformer``: learned positions, ``layers`` Transformer encoder layers (self-attention over the message,
      padding masked), mean over the tokens.
    """

    KINDS = ("rnn", "lstm", "transformer")

    def __init__(
        self,
        kind: str,
        vocab_size: int,
        dim: int = 64,
        layers: int = 1,
        heads: int = 4,
        max_length: int = 64,
        dropout: float = 0.1,
    ):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        if kind == "transformer":
            self.position = nn.Embedding(max_length, dim)
            layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            cell = nn.RNN if kind == "rnn" else nn.LSTM
            self.encoder = cell(dim, dim, num_layers=layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 2)`` (ham, spam)."""
        mask = ids != PAD
        lengths = mask.sum(1).clamp(min=1)
        x = self.embed(ids)
        if self.kind == "transformer":
            x = x + self.position(torch.arange(ids.shape[1], device=ids.device))
            x = self.encoder(x, src_key_padding_mask=~mask)
            pooled = (x * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.encoder(packed)
            pooled = (hidden[0] if self.kind == "lstm" else hidden)[-1]
        return self.head(self.dropout(pooled))


def spam_scores(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """``(propensity of spam, labels)`` of ``model`` over ``loader``."""
    probs, y = training.predict(model, loader, device="cpu")
    return probs[:, 1], y


def evaluate_spam(y_val, p_val, y_test, p_test, min_precision: float = metrics.MIN_PRECISION) -> dict:
    """Test AUCPR, and precision/recall/F1 at the threshold chosen on validation (highest recall with validation
    precision ≥ ``min_precision``), as in assignment 1."""
    threshold = metrics.choose_threshold(y_val, p_val, min_precision)
    m = metrics.binary_metrics(y_test, p_test, threshold)
    return {
        "test_aucpr": metrics.average_precision(y_test, p_test),
        "validation_aucpr": metrics.average_precision(y_val, p_val),
        "test_precision": m["precision"],
        "test_recall": m["recall"],
        "test_f1": m["f1"],
        "threshold": threshold,
    }


def tfidf_parameter_count(pipeline) -> int:
    """The learned weights of a fitted TF-IDF pipeline: the classifier's coefficients and intercepts (for a
    calibrated SVM, those of each cross-validation fold's SVM and its Platt scaling), plus one IDF weight per
    feature."""
    clf = pipeline.steps[-1][1]
    estimators = [c.estimator for c in getattr(clf, "calibrated_classifiers_", [])] or [clf]
    n = sum(int(np.size(e.coef_) + np.size(e.intercept_)) for e in estimators)
    n += 2 * len(getattr(clf, "calibrated_classifiers_", []))  # Platt's a and b per fold
    features = pipeline.steps[0][1]
    parts = [t for _, t in getattr(features, "transformer_list", [("", features)])]
    n += sum(int(np.size(t.idf_)) for t in parts if hasattr(t, "idf_"))
    return n


def train_tfidf(frames: Mapping[str, pd.DataFrame], seed: int = 0, name: str = TFIDF_MODEL) -> tuple[object, float]:
    """Assignment 1's selected model (:data:`TFIDF_MODEL`, from :func:`aml.spam.models.make_model`) fitted on the
    training split; returns ``(pipeline, seconds)``."""
    from aml.spam import models, stages

    model = models.make_model(name, seed=seed)
    start = time.perf_counter()
    stages.fit(model, frames["train"])
    return model, time.perf_counter() - start
