"""A generic PyTorch training loop shared by the image and the text notebooks of assignment 5.

One :func:`fit` trains any ``nn.Module`` classifier on any ``DataLoader``:

- a batch is either a ``(inputs, targets)`` pair (images) or a mapping with a ``labels`` entry whose other entries are
  the model's keyword arguments (a Hugging Face tokenizer's output); :func:`default_forward` turns either into
  ``(logits, targets)``, and an object with a ``logits`` attribute (a Hugging Face model output) is unwrapped;
- every epoch shows a progress bar with the running loss (:func:`progress_bar`: a widget in Jupyter and Colab, plain
  text in the executed copies ``make run`` and the tests save, where a widget would be stored as an empty "0/8");
- the model is evaluated on the validation loader once per epoch (or ``evals_per_epoch`` times: a 1-2 epoch
  transformer run would otherwise have only one or two checkpoints to choose from);
- **early stopping on validation loss**: training stops after ``patience`` evaluations without improvement, and the
  weights of the best evaluation (kept in memory, on the CPU) are restored before returning;
- **seeded**: :func:`seed_everything` seeds Python, NumPy and torch before training, so the data order (drawn from
  torch's global generator by a shuffling ``DataLoader`` with ``num_workers=0``) and dropout are reproducible;
- the wall time of every epoch (training and its evaluations) is recorded; :class:`FitResult` holds the history.

:func:`predict` returns class probabilities for a loader, :func:`classification_report_frame` the per-class
precision/recall/F1 table both notebooks print, and :func:`plot_training_curves` the loss and accuracy curves.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from aml.core import config

Forward = Callable[[nn.Module, object, torch.device], tuple[torch.Tensor, torch.Tensor]]
SCHEDULES = (None, "constant", "linear")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) random generators."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads; returns the number set. Default: ``OMP_NUM_THREADS`` when it is set (the test
    session sets it when its parallel workers outnumber the cores, see the workspace's ``conftest.py``), else the
    number of cores."""
    import os

    n = n or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available (Colab with a GPU), else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar: tqdm's notebook widget where it can render (Jupyter, Colab), plain text when
    ``AML_PROGRESS=text`` (set by ``make run`` and the tests). A saved notebook keeps only a widget's first state, so
    the executed copies would show every bar at 0; a text bar's last line is the finished one. Text bars redraw at
    most every 5 s (``mininterval``), so a long epoch leaves a few dozen updates in the saved notebook, not one a
    step."""
    if config.progress_style() == "text":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 5.0)  # a line every few seconds, not every step, in saved outputs and logs
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


def _to_device(value, device: torch.device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


def default_forward(model: nn.Module, batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on one batch and return ``(logits, targets)``.

    ``batch`` is ``(inputs, targets)`` or a mapping with ``labels`` plus the model's keyword arguments (the labels are
    not passed to the model: the loop computes the loss itself, the same way for every model).
    """
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ValueError(f"a mapping batch needs a 'labels' entry, found keys {sorted(batch)}")
        inputs = {k: _to_device(v, device) for k, v in batch.items() if k != "labels"}
        targets = batch["labels"]
        out = model(**inputs)
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, targets = batch
        out = model(_to_device(inputs, device))
    else:
        raise TypeError(f"a batch must be (inputs, targets) or a mapping with 'labels', got {type(batch).__name__}")
    logits = out.logits if hasattr(out, "logits") else out
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, expected a tensor of logits")
    return logits, torch.as_tensor(targets).to(device)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history`` has one row per validation evaluation: ``epoch`` (fractional when evaluating several times an epoch),
    ``step``, ``train_loss``/``train_accuracy`` (mean over the batches since the previous evaluation, with the model in
    training mode: augmentation and dropout on), ``val_loss``/``val_accuracy``, ``lr`` and ``seconds`` (wall time since
    the previous evaluation, evaluation included).
    """

    history: pd.DataFrame
    best_index: int
    epoch_seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    steps: int = 0

    @property
    def best(self) -> pd.Series:
        """The history row of the restored (best validation loss) checkpoint."""
        return self.history.iloc[self.best_index]

    @property
    def best_val_loss(self) -> float:
        """The validation loss of the restored checkpoint."""
        return float(self.best["val_loss"])

    @property
    def best_val_accuracy(self) -> float:
        """The validation accuracy of the restored checkpoint."""
        return float(self.best["val_accuracy"])

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of the completed epochs (training and evaluation)."""
        return float(np.mean(self.epoch_seconds)) if self.epoch_seconds else float("nan")

    def summary(self) -> dict:
        """The headline figures as a plain dict (for the metrics file): epochs run, steps, best epoch and its
        validation loss and accuracy, early stop, seconds per epoch."""
        return {
            "epochs_run": len(self.epoch_seconds),
            "steps": self.steps,
            "best_epoch": float(self.best["epoch"]),
            "best_val_loss": self.best_val_loss,
            "best_val_accuracy": self.best_val_accuracy,
            "stopped_early": self.stopped_early,
            "seconds_per_epoch": self.seconds_per_epoch,
        }


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate_loader(
    model: nn.Module,
    loader,
    device: torch.device | str | None = None,
    forward: Forward = default_forward,
    loss_fn: nn.Module | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` (in eval mode) over ``loader``."""
    device = pick_device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for batch in loader:
        logits, targets = forward(model, batch, device)
        total_loss += float(loss_fn(logits, targets)) * len(targets)
        correct += int((logits.argmax(1) == targets).sum())
        count += len(targets)
    model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation loader is empty")
    return total_loss / count, correct / count


def _schedule(optimizer: torch.optim.Optimizer, schedule: str | None, total_steps: int, warmup: float):
    if schedule in (None, "constant"):
        return None
    warmup_steps = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    model: nn.Module,
    train_loader,
    val_loader,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 10,
    patience: int | None = 3,
    seed: int | None = 42,
    device: str | torch.device | None = None,
    forward: Forward = default_forward,
    loss_fn: nn.Module | None = None,
    schedule: str | None = None,
    warmup: float = 0.1,
    max_steps_per_epoch: int | None = None,
    evals_per_epoch: int = 1,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "",
) -> FitResult:
    """Train ``model`` with ``optimizer``; early-stop on validation loss; restore the best weights.

    ``patience`` counts evaluations without a new best validation loss (``None``: never stop early).
    ``schedule="linear"`` warms the learning rate up over the first ``warmup`` fraction of the steps and decays it
    linearly to 0 at the last planned step (the usual transformer fine-tuning schedule); the scheduler steps per batch.
    ``max_steps_per_epoch`` caps the batches per epoch (the smoke budget's "a few optimisation steps").
    The model is moved to ``device`` (CUDA when available by default) and left there.
    """
    if epochs < 1 or int(epochs) != epochs:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience!r}")
    if evals_per_epoch < 1:
        raise ValueError(f"evals_per_epoch must be >= 1, got {evals_per_epoch!r}")
    if max_steps_per_epoch is not None and max_steps_per_epoch < 1:
        raise ValueError(f"max_steps_per_epoch must be >= 1 or None, got {max_steps_per_epoch!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    n_batches = len(train_loader)
    if n_batches == 0:
        raise ValueError("the training loader is empty")
    device = pick_device(device)
    if seed is not None:
        seed_everything(seed)
    model.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    steps_per_epoch = min(n_batches, max_steps_per_epoch or n_batches)
    scheduler = _schedule(optimizer, schedule, steps_per_epoch * epochs, warmup)
    # evaluate after these (1-based) steps of each epoch, the last one at the end of the epoch
    eval_at = sorted({math.ceil(steps_per_epoch * (i + 1) / evals_per_epoch) for i in range(evals_per_epoch)})

    rows: list[dict] = []
    best_loss, best_state, best_index, bad_evals = math.inf, _state_copy(model), 0, 0
    epoch_seconds: list[float] = []
    stopped, step = False, 0
    for epoch in range(epochs):
        model.train()
        epoch_start = last_eval = time.perf_counter()
        run_loss, run_correct, run_count = 0.0, 0, 0
        bar = progress_bar(
            total=steps_per_epoch, desc=f"{desc} epoch {epoch + 1}/{epochs}".strip(), disable=not progress
        )
        for i, batch in enumerate(itertools.islice(train_loader, steps_per_epoch), start=1):
            logits, targets = forward(model, batch, device)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            run_loss += loss.item() * len(targets)
            run_correct += int((logits.detach().argmax(1) == targets).sum())
            run_count += len(targets)
            bar.update(1)
            bar.set_postfix(loss=f"{run_loss / run_count:.4f}", refresh=False)  # shown at the next refresh
            if i in eval_at:
                val_loss, val_acc = evaluate_loader(model, val_loader, device, forward, loss_fn)
                now = time.perf_counter()
                rows.append(
                    {
                        "epoch": epoch + i / steps_per_epoch,
                        "step": step,
                        "train_loss": run_loss / run_count,
                        "train_accuracy": run_correct / run_count,
                        "val_loss": val_loss,
                        "val_accuracy": val_acc,
                        "lr": optimizer.param_groups[0]["lr"],
                        "seconds": now - last_eval,
                    }
                )
                last_eval = now
                run_loss, run_correct, run_count = 0.0, 0, 0
                bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
                if val_loss < best_loss:
                    best_loss, best_state, best_index, bad_evals = val_loss, _state_copy(model), len(rows) - 1, 0
                else:
                    bad_evals += 1
                    if patience is not None and bad_evals >= patience:
                        stopped = True
                        break
        bar.close()
        epoch_seconds.append(time.perf_counter() - epoch_start)
        if stopped:
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        history=pd.DataFrame(rows),
        best_index=best_index,
        epoch_seconds=epoch_seconds,
        stopped_early=stopped,
        steps=step,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    loader,
    device: str | torch.device | None = None,
    forward: Forward = default_forward,
    progress: bool = False,
    desc: str = "predict",
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (softmax of the logits, one row per example) and the targets, in the loader's order."""
    device = pick_device(device)
    model.to(device).eval()
    probs, targets = [], []
    for batch in progress_bar(loader, desc=desc, disable=not progress):
        logits, y = forward(model, batch, device)
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        targets.append(y.cpu().numpy())
    if not probs:
        raise ValueError("the loader is empty")
    return np.concatenate(probs), np.concatenate(targets)


def classification_report_frame(y_true, y_pred, class_names: Sequence[str]) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per class (all of ``class_names``, in order, even a
    class never predicted), then ``accuracy``, ``macro avg`` and ``weighted avg``."""
    from sklearn.metrics import classification_report

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    k = len(class_names)
    outside = sorted((set(np.unique(y_true)) | set(np.unique(y_pred))) - set(range(k)))
    if outside:
        raise ValueError(f"labels {outside} are outside 0..{k - 1} ({list(class_names)})")
    report = classification_report(
        y_true, y_pred, labels=list(range(k)), target_names=list(class_names), output_dict=True, zero_division=0
    )
    accuracy = report.pop("accuracy", float((y_true == y_pred).mean()))
    frame = pd.DataFrame(report).T
    frame.loc["accuracy"] = [np.nan, np.nan, accuracy, len(y_true)]
    frame = frame.loc[[*class_names, "accuracy", "macro avg", "weighted avg"]]
    frame["support"] = frame["support"].astype(int)
    return frame


def plot_training_curves(results: Mapping[str, FitResult], axes=None):
    """Loss and accuracy per epoch, training (dashed) and validation (solid), one colour per run; the restored
    (best) checkpoint is marked."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, (name, result) in enumerate(results.items()):
        h, color = result.history, f"C{k}"
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            ax.plot(h["epoch"], h[f"train_{metric}"], "--", color=color, label=f"{name} train")
            ax.plot(h["epoch"], h[f"val_{metric}"], "-o", color=color, ms=3, label=f"{name} validation")
            ax.plot(result.best["epoch"], result.best[f"val_{metric}"], "*", color=color, ms=12)
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss (★ = restored checkpoint)")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="Accuracy (★ = restored checkpoint)")
    for ax in axes:
        ax.plot([], [], "*", color="grey", ms=10, label="restored checkpoint")
        ax.legend(fontsize=8)
    return axes
