"""ChatGPT's building blocks in miniature on the SMS collection (the lecture lab ``lectures/language_models.ipynb``):
next-word (here: next-character) prediction, fill in the blanks, next-sentence prediction, attention, and learning
from a preference signal.

- :class:`CharVocabulary`: characters as tokens, plus the special tokens the tasks need (``<bos>``, ``<eos>``,
  ``<pad>``, ``<unk>``, ``<mask>``, ``<cls>``, ``<sep>``). Characters keep the vocabulary tiny (about a hundred
  tokens), so a model trained from scratch on 400,000 characters has something to learn in a few CPU minutes; GPT's
  byte-pair tokens are the same idea with merged frequent character sequences.
- :class:`TransformerLM`: a pre-LayerNorm Transformer (token + position + segment embeddings, multi-head
  self-attention written out so its weights can be drawn, GELU MLP) with ``causal=True`` for a GPT-style model
  (position ``t`` sees only ``<= t``) or ``causal=False`` for a BERT-style encoder.
- :class:`BigramLM`: the baseline, ``P(next | previous)`` from counts with add-``k`` smoothing.
- Tasks: :func:`lm_windows` (next-token training pairs), :func:`masked_examples` (BERT's 15% masking),
  :func:`sentence_pairs` (a message's second half after its first half, or after another message's first half),
  each trained with :func:`aml.transfer.training.fit` through the ``forward_*`` adapters.
- :func:`generate`: sampling with a temperature; :func:`spam_reward` and :func:`reward_finetune`: a *toy* of learning
  from human preference, with assignment 1's spam model as the "preference" (non-spam text is preferred).

Written by hand rather than with ``nn.TransformerEncoder`` (which hides the attention weights inside a fused kernel)
or Hugging Face (whose pretrained checkpoints cannot be downloaded here, and whose from-scratch configs would hide the
twenty lines the lecture is about).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aml.transfer import training

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<cls>", "<sep>")
IGNORE = -100  # the target of positions that carry no loss (cross-entropy's ignore_index)


def load_sms_splits(seed: int = 42) -> dict[str, pd.DataFrame]:
    """The deduplicated SMS collection (:mod:`aml.spam.sms`) split 70/15/15, stratified by spam, as assignment 1
    splits it: ``{"train", "validation", "test"}`` -> frames with ``text`` and ``y`` (spam = 1)."""
    from aml.core.splits import stratified_indices
    from aml.spam import sms

    df, _ = sms.preprocess(sms.load_sms()[0])
    return {name: df.iloc[idx].reset_index(drop=True) for name, idx in stratified_indices(df["y"], seed=seed).items()}


class CharVocabulary:
    """Characters seen at least ``min_count`` times in ``texts``, after the special tokens; rarer characters
    encode as ``<unk>``."""

    def __init__(self, texts: Sequence[str], min_count: int = 3):
        counts = Counter(ch for text in texts for ch in text)
        chars = sorted(ch for ch, n in counts.items() if n >= min_count)
        self.itos = list(SPECIALS) + chars
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        for name in SPECIALS:
            setattr(self, name.strip("<>"), self.stoi[name])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """The character ids of ``text`` (unknown characters map to the unknown id), with begin/end markers when asked."""
        ids = [self.stoi.get(ch, self.unk) for ch in text]
        return ([self.bos] if bos else []) + ids + ([self.eos] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Characters of ``ids``; ``<eos>`` ends the text; other special tokens are dropped, except ``<mask>`` (shown
        as ``_``) and ``<unk>`` (shown as ``?``)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i == self.mask:
                out.append("_")
            elif i == self.unk:
                out.append("?")
            elif i >= len(SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def stream(self, texts: Sequence[str]) -> np.ndarray:
        """All ``texts`` as one token stream, each as ``<bos> text <eos>``: what the language models read."""
        return np.array([i for t in texts for i in self.encode(t, bos=True, eos=True)], dtype=np.int64)


# -- the baseline ------------------------------------------------------------------------------------------------


class BigramLM:
    """``P(b | a) = (count(a, b) + k) / (count(a) + k * V)``: a bigram model with add-``k`` smoothing, so a pair
    never seen still has a probability."""

    def __init__(self, vocab_size: int, k: float = 0.1):
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        self.vocab_size, self.k = vocab_size, k
        self.counts = np.zeros((vocab_size, vocab_size))

    def fit(self, stream: np.ndarray) -> BigramLM:
        """Count every adjacent pair of the token stream (the add-k smoothing is applied when the probabilities are read)."""
        np.add.at(self.counts, (stream[:-1], stream[1:]), 1)
        return self

    def log_probs(self) -> np.ndarray:
        """``log P(b | a)`` as a ``(V, V)`` table (rows: previous token)."""
        smoothed = self.counts + self.k
        return np.log(smoothed / smoothed.sum(1, keepdims=True))

    def nll(self, previous: np.ndarray, following: np.ndarray) -> float:
        """Mean negative log-likelihood (nats per token) of ``following`` given ``previous`` (same shapes)."""
        return float(-self.log_probs()[np.asarray(previous).ravel(), np.asarray(following).ravel()].mean())


def choose_bigram_k(train: np.ndarray, validation: np.ndarray, vocab_size: int, ks=(0.001, 0.01, 0.1, 0.5, 1.0)):
    """The smoothing ``k`` with the lowest validation NLL, the fitted model and the table of NLL per ``k``."""
    table = {k: BigramLM(vocab_size, k).fit(train).nll(validation[:-1], validation[1:]) for k in ks}
    best = min(table, key=table.get)
    return best, BigramLM(vocab_size, best).fit(train), table


def perplexity(nll: float) -> float:
    """``exp(mean negative log-likelihood per token)``: the number of equally likely tokens the model hesitates
    between, on average."""
    return float(math.exp(nll))


# -- the Transformer ---------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, ``softmax(QKᵀ / sqrt(d)) V``, with an optional causal mask
    (position ``t`` attends to positions ``<= t`` only) and padding mask. The last weights are kept in
    ``weights`` (``batch, heads, query, key``)."""

    def __init__(self, dim: int, heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-head scaled dot-product attention (causal when the model is), keeping the weights for the attention maps."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        if padding_mask is not None:  # finite: a padding query whose keys are all padding stays a number, not NaN
            scores = scores.masked_fill(padding_mask[:, None, None, :], -1e9)
        weights = scores.softmax(-1)
        self.weights = weights.detach()
        out = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: ``x + attention(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, causal: bool, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads, causal, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """A pre-norm Transformer block: attention, then the MLP, each with a residual connection."""
        x = x + self.attention(self.ln1(x), padding_mask)
        return x + self.mlp(self.ln2(x))


class TransformerLM(nn.Module):
    """Token, position and segment (sentence A/B) embeddings, ``layers`` blocks, a final LayerNorm and an output
    layer tied to the token embedding. ``causal=True``: GPT (next-token prediction); ``causal=False``: BERT (masked
    prediction, plus ``nsp_head`` on the ``<cls>`` position for next-sentence prediction)."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 4,
        context: int = 64,
        causal: bool = True,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.context, self.causal = context, causal
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(context, dim)
        self.segments = nn.Embedding(2, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, causal, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.nsp_head = nn.Linear(dim, 2)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def features(
        self, ids: torch.Tensor, segments: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The last hidden states, ``(batch, time, dim)``."""
        t = ids.shape[1]
        if t > self.context:
            raise ValueError(f"sequence of {t} tokens is longer than the context ({self.context})")
        x = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))
        if segments is not None:
            x = x + self.segments(segments)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, padding_mask)
        return self.ln(x)

    def forward(
        self, ids: torch.Tensor, segments: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token logits, ``(batch, time, vocab)``."""
        return self.features(ids, segments, padding_mask) @ self.tokens.weight.T

    def attention_maps(self) -> list[torch.Tensor]:
        """The attention weights of the last forward pass, one ``(batch, heads, query, key)`` tensor per layer."""
        return [block.attention.weights for block in self.blocks]


def attention_distance(weights: torch.Tensor) -> np.ndarray:
    """How far back each head looks: the attention-weighted mean of ``query - key`` positions, averaged over the
    queries, one number per head (``weights``: ``(heads, query, key)`` of a causal layer). 1 means "the previous
    token" on average, like a bigram; larger means further back."""
    t = weights.shape[-1]
    distance = (torch.arange(t)[:, None] - torch.arange(t)[None, :]).clamp(min=0).float()
    return (weights * distance).sum(-1).mean(-1).numpy()


def bidirectional_copy(model: TransformerLM) -> TransformerLM:
    """A copy of ``model`` with the causal mask removed from every layer (same weights, every position now sees every
    other): a trained GPT-style model as the starting point of a BERT-style encoder."""
    import copy

    encoder = copy.deepcopy(model)
    encoder.causal = False
    for block in encoder.blocks:
        block.attention.causal = False
    return encoder


# -- next-token prediction ---------------------------------------------------------------------------------------


def lm_windows(stream: np.ndarray, context: int, stride: int | None = None) -> TensorDataset:
    """Training pairs for next-token prediction: windows of ``context + 1`` tokens every ``stride`` tokens (default
    ``context``: non-overlapping), as ``(inputs, targets)`` shifted by one."""
    stride = stride or context
    if len(stream) < context + 1:
        raise ValueError(f"a stream of {len(stream)} tokens is shorter than one window ({context + 1})")
    starts = np.arange(0, len(stream) - context, stride)
    windows = torch.as_tensor(np.stack([stream[s : s + context + 1] for s in starts]))
    return TensorDataset(windows[:, :-1], windows[:, 1:])


def forward_lm(model: TransformerLM, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`aml.transfer.training.fit` adapter: every position's logits against the next token."""
    x, y = (v.to(device) for v in batch)
    return model(x).flatten(0, 1), y.flatten()


def train_lm(
    model: TransformerLM,
    train_stream: np.ndarray,
    validation_stream: np.ndarray,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 3e-3,
    max_steps_per_epoch: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> training.FitResult:
    """Next-token training with :func:`aml.transfer.training.fit` (AdamW, linear warm-up and decay, gradient
    clipping, early stopping on the validation loss), on windows overlapping by half."""
    train = DataLoader(lm_windows(train_stream, model.context, model.context // 2), batch_size, shuffle=True)
    val = DataLoader(lm_windows(validation_stream, model.context), batch_size=256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return training.fit(
        model, train, val, optimizer, epochs=epochs, seed=seed, forward=forward_lm, schedule="linear",
        max_steps_per_epoch=max_steps_per_epoch, grad_clip=1.0, patience=None, progress=progress, desc="causal LM",
        device="cpu",
    )  # fmt: skip


@torch.no_grad()
def lm_nll(model: TransformerLM, stream: np.ndarray) -> float:
    """Mean negative log-likelihood (nats per token) of ``stream`` in non-overlapping windows of the model's
    context (the same targets :meth:`BigramLM.nll` scores on :func:`held_out_pairs`)."""
    loss, _ = training.evaluate_loader(model, DataLoader(lm_windows(stream, model.context), 256), "cpu", forward_lm)
    return loss


def held_out_pairs(stream: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """The (previous, next) token pairs :func:`lm_nll` scores: the bigram baseline is scored on exactly these."""
    x, y = lm_windows(stream, context).tensors
    return x.numpy(), y.numpy()


@torch.no_grad()
def generate(
    model: TransformerLM,
    vocab: CharVocabulary,
    prompts: Sequence[str],
    temperature: float = 1.0,
    max_new: int = 120,
    seed: int = 0,
) -> list[str]:
    """Sample a continuation of each prompt (after ``<bos>``), one character at a time from
    ``softmax(logits / temperature)``, until ``<eos>`` or ``max_new`` characters. Low temperatures pick likely
    characters (safe, repetitive), high ones flatten the distribution (varied, more mistakes). Special tokens
    other than ``<eos>`` are never sampled. Returns prompt + continuation."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    seqs = [vocab.encode(p, bos=True) for p in prompts]
    done = [False] * len(seqs)
    banned = [i for i in range(len(SPECIALS)) if i != vocab.eos]
    for _ in range(max_new):
        width = min(model.context, max(len(s) for s in seqs))
        batch = torch.tensor([([vocab.pad] * width + s)[-width:] for s in seqs])
        # left-padded rows: the pads sit before the text, and the causal mask lets the last position see them, so
        # the mask hides them as keys
        logits = model(batch, padding_mask=batch == vocab.pad)[:, -1] / temperature
        logits[:, banned] = float("-inf")
        nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1).tolist()
        for i, token in enumerate(nxt):
            if not done[i]:
                seqs[i].append(token)
                done[i] = token == vocab.eos
        if all(done):
            break
    return [vocab.decode(s[1:]) for s in seqs]


# -- fill in the blanks (masked prediction) ----------------------------------------------------------------------


def _encode_padded(vocab: CharVocabulary, texts: Sequence[str], length: int) -> torch.Tensor:
    rows = [([vocab.cls] + vocab.encode(t))[:length] for t in texts]
    return torch.tensor([r + [vocab.pad] * (length - len(r)) for r in rows])


def masked_examples(
    vocab: CharVocabulary, texts: Sequence[str], context: int, rate: float = 0.15, seed: int = 0
) -> TensorDataset:
    """BERT's masked-language-model examples: ``<cls> text <pad>...`` with ``rate`` of the characters chosen; of
    those 80% become ``<mask>``, 10% a random character, 10% stay; the targets are the original characters at the
    chosen positions and ``IGNORE`` (-100) elsewhere. Seeded: the same texts give the same masks."""
    generator = torch.Generator().manual_seed(seed)
    ids = _encode_padded(vocab, texts, context)
    eligible = ids >= len(SPECIALS)
    chosen = (torch.rand(ids.shape, generator=generator) < rate) & eligible
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    random_chars = torch.randint(len(SPECIALS), len(vocab), ids.shape, generator=generator)
    inputs = torch.where(chosen & (roll < 0.8), torch.full_like(ids, vocab.mask), ids)
    inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_chars, inputs)
    return TensorDataset(inputs, targets)


def forward_masked(model: TransformerLM, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`aml.transfer.training.fit` adapter: logits and targets at the masked positions only."""
    x, y = (v.to(device) for v in batch)
    chosen = y != IGNORE
    return model(x, padding_mask=x == 0)[chosen], y[chosen]


def train_encoder(
    model: TransformerLM,
    train: TensorDataset,
    validation: TensorDataset,
    forward: training.Forward,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 3e-3,
    max_steps_per_epoch: int | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "",
) -> training.FitResult:
    """Train the encoder on masked examples (``forward_masked``) or sentence pairs (``forward_nsp``) with
    :func:`aml.transfer.training.fit`; the best validation checkpoint is kept."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return training.fit(
        model, DataLoader(train, batch_size, shuffle=True), DataLoader(validation, 256), optimizer, epochs=epochs,
        seed=seed, forward=forward, schedule="linear", max_steps_per_epoch=max_steps_per_epoch, grad_clip=1.0,
        patience=None, progress=progress, desc=desc, device="cpu",
    )  # fmt: skip


@torch.no_grad()
def masked_accuracy(model: TransformerLM, examples: TensorDataset) -> float:
    """Share of the masked characters the encoder predicts exactly."""
    _, accuracy = training.evaluate_loader(model, DataLoader(examples, 256), "cpu", forward_masked)
    return accuracy


def bigram_fill_accuracy(bigram: BigramLM, vocab: CharVocabulary, examples: TensorDataset) -> dict[str, float]:
    """Baselines for the blanks, reading the same masked inputs: the most frequent character everywhere, and the
    bigram's best guess from both neighbours, ``argmax_c log P(c | left) + log P(right | c)`` (a neighbour that is
    itself masked or padding is left out; ``<cls>`` counts as the start of the text)."""
    inputs, targets = (t.numpy() for t in examples.tensors)
    table = bigram.log_probs()
    real = np.arange(len(SPECIALS), len(vocab))
    rows, cols = np.nonzero(targets != IGNORE)
    truth = targets[rows, cols]
    most_frequent = real[np.argmax(bigram.counts[:, real].sum(0))]
    correct_bigram = 0
    for r, c, y in zip(rows, cols, truth, strict=True):
        score = np.zeros(len(real))
        left = inputs[r, c - 1] if c > 0 else vocab.bos
        left = vocab.bos if left == vocab.cls else left
        if left not in (vocab.mask, vocab.pad):
            score += table[left, real]
        right = inputs[r, c + 1] if c + 1 < inputs.shape[1] else vocab.pad
        right = vocab.eos if right == vocab.pad else right
        if right != vocab.mask:
            score += table[real, right]
        correct_bigram += real[np.argmax(score)] == y
    return {
        "most_frequent_character": float(np.mean(truth == most_frequent)),
        "bigram_both_neighbours": float(correct_bigram / len(truth)),
    }


@torch.no_grad()
def fill_blanks(model: TransformerLM, vocab: CharVocabulary, text: str, blank: str) -> str:
    """Replace every character of the first occurrence of ``blank`` in ``text`` by ``<mask>`` and let the encoder
    fill them all at once (each with its most likely character)."""
    start = text.find(blank)
    if start < 0:
        raise ValueError(f"{blank!r} is not in {text!r}")
    ids = _encode_padded(vocab, [text], min(model.context, len(text) + 1))
    positions = torch.arange(start, start + len(blank)) + 1  # +1: <cls>
    ids[0, positions] = vocab.mask
    logits = model(ids, padding_mask=ids == vocab.pad)[0, positions]
    logits[:, : len(SPECIALS)] = float("-inf")
    filled = ids[0].clone()
    filled[positions] = logits.argmax(-1)
    return vocab.decode(filled[1:])


# -- next-sentence prediction ------------------------------------------------------------------------------------


def split_halves(text: str) -> tuple[str, str] | None:
    """A message cut at the space nearest its middle into a first and a second half; ``None`` when it has no space
    or a half would be shorter than 8 characters."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if not spaces:
        return None
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    first, second = text[:cut].strip(), text[cut + 1 :].strip()
    return (first, second) if min(len(first), len(second)) >= 8 else None


def sentence_pairs(texts: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """Next-sentence-prediction pairs from the messages that split in halves: for each, ``first`` with its own
    ``second`` half (``is_next = 1``) or, half the time, with the second half of another random message
    (``is_next = 0``). Second halves on both sides, so capitalisation or a message's opening words give nothing
    away."""
    rng = np.random.default_rng(seed)
    halves = [h for h in (split_halves(t) for t in texts) if h is not None]
    if len(halves) < 2:
        raise ValueError("need at least two messages that split in halves")
    rows = []
    for i, (first, second) in enumerate(halves):
        is_next = int(rng.random() < 0.5)
        if not is_next:
            j = int(rng.integers(len(halves) - 1))
            second = halves[j + (j >= i)][1]
        rows.append({"first": first, "second": second, "is_next": is_next})
    return pd.DataFrame(rows)


def encode_pairs(vocab: CharVocabulary, pairs: pd.DataFrame, context: int) -> TensorDataset:
    """``<cls> first <sep> second <sep>`` (the end of the first half and the start of the second, each cut to fit
    ``context``), segment ids 0 then 1, and the ``is_next`` labels."""
    half = (context - 3) // 2
    ids, segs = [], []
    for first, second in zip(pairs["first"], pairs["second"], strict=True):
        a = [vocab.cls] + vocab.encode(first)[-half:] + [vocab.sep]
        b = vocab.encode(second)[:half] + [vocab.sep]
        pad = context - len(a) - len(b)
        ids.append(a + b + [vocab.pad] * pad)
        segs.append([0] * len(a) + [1] * (len(b) + pad))
    return TensorDataset(torch.tensor(ids), torch.tensor(segs), torch.tensor(pairs["is_next"].tolist()))


def forward_nsp(model: TransformerLM, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`aml.transfer.training.fit` adapter: the ``<cls>`` position's features through the NSP head."""
    ids, segs, y = (v.to(device) for v in batch)
    return model.nsp_head(model.features(ids, segs, padding_mask=ids == 0)[:, 0]), y


@torch.no_grad()
def nsp_accuracy(model: TransformerLM, pairs: TensorDataset) -> float:
    """Accuracy of the next-sentence head on labelled pairs (is the second half the first half's true continuation?)."""
    _, accuracy = training.evaluate_loader(model, DataLoader(pairs, 256), "cpu", forward_nsp)
    return accuracy


def overlap_baseline(train_pairs: pd.DataFrame, test_pairs: pd.DataFrame) -> float:
    """The simple baseline for next-sentence prediction: the cosine similarity of the two halves' character 1-3-gram
    TF-IDF vectors ("do they share words?"), with the threshold that is most accurate on the training pairs;
    returns its test accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).fit(
        pd.concat([train_pairs["first"], train_pairs["second"]])
    )

    def similarity(pairs: pd.DataFrame) -> np.ndarray:
        a, b = vec.transform(pairs["first"]), vec.transform(pairs["second"])
        return np.asarray(a.multiply(b).sum(1)).ravel()

    s, y = similarity(train_pairs), train_pairs["is_next"].to_numpy()
    candidates = np.unique(s)
    threshold = max(candidates, key=lambda th: np.mean((s >= th) == y))
    return float(np.mean((similarity(test_pairs) >= threshold) == test_pairs["is_next"].to_numpy()))


# -- learning from a preference (a toy) --------------------------------------------------------------------------


def spam_reward(train: pd.DataFrame, seed: int = 0) -> Callable[[Sequence[str]], np.ndarray]:
    """The reward model of the toy: assignment 1's spam filter (:func:`aml.spam.models.tfidf_logreg`) trained on
    the training messages; the reward of a text is its probability of being **ham**, 1 - P(spam)."""
    from aml.spam.models import tfidf_logreg

    model = tfidf_logreg(seed=seed).fit(train["text"], train["y"])

    def reward(texts: Sequence[str]) -> np.ndarray:
        return 1.0 - model.predict_proba(pd.Series(list(texts), dtype=object))[:, 1]

    return reward


def best_of_n(texts: Sequence[str], rewards: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
    """Rank by reward within consecutive groups of ``n`` samples and keep each group's best: rejection sampling,
    the simplest way a reward model steers generation. Returns the kept texts and rewards."""
    rewards = np.asarray(rewards)
    if len(texts) % n:
        raise ValueError(f"{len(texts)} samples do not split into groups of {n}")
    best = rewards.reshape(-1, n).argmax(1) + np.arange(0, len(texts), n)
    return [texts[i] for i in best], rewards[best]


def reward_finetune(
    model: TransformerLM,
    vocab: CharVocabulary,
    reward: Callable[[Sequence[str]], np.ndarray],
    rounds: int = 2,
    samples: int = 256,
    keep: float = 0.25,
    epochs: int = 1,
    lr: float = 5e-4,
    temperature: float = 1.0,
    max_new: int = 120,
    seed: int = 0,
) -> pd.DataFrame:
    """Steer ``model`` (in place) towards high reward: each round samples ``samples`` texts, keeps the top ``keep``
    share by reward and trains the model on them (next-token loss): reward-ranked fine-tuning, a cheap cousin of
    RLHF's policy-gradient step. Returns one row per round: mean reward of the samples and of the kept ones."""
    rows = []
    for r in range(rounds):
        texts = generate(model, vocab, [""] * samples, temperature=temperature, max_new=max_new, seed=seed + r)
        rewards = reward(texts)
        kept = np.argsort(-rewards)[: max(1, int(keep * samples))]
        stream = vocab.stream([texts[i] for i in kept])
        stream = np.concatenate([stream] * max(1, (model.context + 1) * 4 // len(stream) + 1))  # at least 4 windows
        loader = DataLoader(lm_windows(stream, model.context, model.context // 2), 32, shuffle=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        training.fit(
            model, loader, DataLoader(lm_windows(stream, model.context), 256), optimizer, epochs=epochs,
            seed=seed + r, forward=forward_lm, patience=None, progress=False, device="cpu",
        )  # fmt: skip
        rows.append({"round": r + 1, "mean_reward_sampled": float(rewards.mean()),
                     "mean_reward_kept": float(rewards[kept].mean())})  # fmt: skip
    return pd.DataFrame(rows)
