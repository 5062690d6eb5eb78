import matplotlib
import numpy as np

from aml.core import plots

matplotlib.use("Agg")

Y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])


def test_pr_curves_are_steps_with_operating_points_explained():
    ax = plots.plot_pr_curves(Y, {"m": P}, {"m": 0.5})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("m (AP") and any("operating point" in label for label in labels)
    curve = ax.get_lines()[0]
    assert curve.get_drawstyle() == "steps-post"
    dot = ax.get_lines()[1]
    assert dot.get_marker() == "o" and dot.get_xdata()[0] == 1.0 and dot.get_ydata()[0] == 0.75


def test_pr_curves_without_thresholds_or_floor():
    ax = plots.plot_pr_curves(Y, {"a": P, "b": P[::-1]}, min_precision=None)
    assert len(ax.get_legend().get_texts()) == 2


def test_confusion_matrix_counts_drawn():
    ax = plots.plot_confusion([[4, 1], [0, 3]], labels=("ham", "spam"))
    assert ax.get_title() == "Confusion matrix"
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "3", "4"]


def test_search_panels_mark_the_chosen_combination():
    import pandas as pd

    table = pd.DataFrame(
        {"C": [1.0, 0.3], "train_aucpr": [1.0, 0.99], "validation_aucpr": [0.98, 0.97], "chosen": [True, False]}
    )
    (ax,) = plots.plot_search({"svm": table}, {"svm": ["C"]})
    assert ax.get_title() == "svm" and [t.get_text() for t in ax.get_xticklabels()] == ["C=1.0", "C=0.3"]
    chosen = ax.get_lines()[2]
    assert list(chosen.get_xdata()) == [0] and list(chosen.get_ydata()) == [0.98]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation", "chosen"]


def test_search_labels_use_the_grid_values():
    import pandas as pd

    table = pd.DataFrame(
        {"n": [300.0, 300.0], "depth": [float("nan"), 40.0], "train_aucpr": [1.0, 1.0], "validation_aucpr": [0.9, 0.8]}
    ).assign(chosen=[True, False])
    table.attrs["grid"] = {"n": [300], "depth": [None, 40]}
    (ax,) = plots.plot_search({"rf": table}, {"rf": ["n", "depth"]})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["n=300\ndepth=None", "n=300\ndepth=40"]
