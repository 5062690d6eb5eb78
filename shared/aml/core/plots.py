"""Plots shared by every assignment: precision-recall curves with operating points, confusion matrices.

Each function draws on an ``ax`` (created when not given) and returns it, so a notebook composes figures freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import TYPE_CHECKING

import numpy as np

from aml.core import metrics

if TYPE_CHECKING:
    import pandas as pd


def plot_pr_curves(
    y_true,
    propensities: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float] | None = None,
    ax=None,
    title: str = "Precision-recall (test split)",
    min_precision: float | None = metrics.MIN_PRECISION,
):
    """Precision-recall curves of several models as step plots (the curve is a staircase: interpolating between
    its points, as a straight line would, shows precision that no threshold reaches), with each model's operating
    point (its threshold) marked by a dot and the precision floor as a dashed line."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    for name, p in propensities.items():
        precision, recall, _ = precision_recall_curve(y_true, p)
        (line,) = ax.step(
            recall, precision, where="post", label=f"{name} (AP {metrics.average_precision(y_true, p):.3f})"
        )
        if thresholds and name in thresholds:
            m = metrics.binary_metrics(y_true, p, thresholds[name])
            ax.plot(m["recall"], m["precision"], "o", color=line.get_color(), ms=6)
    if thresholds:
        ax.plot([], [], "o", color="grey", label="dot: operating point at the validation-chosen threshold")
    if min_precision is not None:
        ax.axhline(min_precision, ls="--", c="grey", lw=0.8, label=f"precision floor {min_precision:.2f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1.01), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=8)
    return ax


def plot_confusion(matrix, ax=None, labels: Sequence[str] = ("ham", "spam"), title: str = "Confusion matrix"):
    """Draw a 2×2 (or k×k) confusion matrix with counts (rows: true class, columns: predicted class)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(labels)).plot(ax=ax, colorbar=False)
    ax.set_title(title)
    return ax


def plot_search(tables: Mapping[str, pd.DataFrame], params: Mapping[str, Sequence[str]], axes=None):
    """One panel per model of a hyper-parameter search: train and validation AUCPR for every combination (labelled
    ``name=value``), the chosen combination circled. ``tables`` holds one search table per model (columns: the
    parameters, ``train_aucpr``, ``validation_aucpr``, ``chosen``) and ``params`` each model's parameter names."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.4), squeeze=False)
        axes = axes[0]
    for ax, (name, table) in zip(axes, tables.items(), strict=True):
        grid = table.attrs.get("grid")  # the values as searched (a table column turns None into NaN, 300 into 300.0)
        combos = product(*grid.values()) if grid else table[list(params[name])].itertuples(index=False)
        labels = ["\n".join(f"{p}={v}" for p, v in zip(params[name], combo, strict=True)) for combo in combos]
        x = np.arange(len(table))
        ax.plot(x, table["train_aucpr"], "s--", color="grey", ms=4, label="train")
        ax.plot(x, table["validation_aucpr"], "o-", color="C0", label="validation")
        chosen = np.flatnonzero(table["chosen"].to_numpy())
        ax.plot(
            x[chosen],
            table["validation_aucpr"].to_numpy()[chosen],
            "o",
            mfc="none",
            mec="C3",
            ms=14,
            mew=2,
            label="chosen",
        )
        ax.set_xticks(x, labels, fontsize=7)
        ax.set(title=name, ylabel="AUCPR")
        ax.legend(fontsize=7)
    return axes
