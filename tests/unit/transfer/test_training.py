import os
import types

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aml.transfer import training


def blobs(n=64, seed=0, flip=False):
    """Two separable Gaussian blobs in 2-D; ``flip`` swaps the labels (a validation set the model must get wrong)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None].float() * 2 - 1) * 2
    return TensorDataset(x, 1 - y if flip else y)


def loaders(batch_size=8, flip_val=False):
    train = DataLoader(blobs(64, 0), batch_size=batch_size, shuffle=True)
    val = DataLoader(blobs(32, 1, flip=flip_val), batch_size=16)
    return train, val


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))


def test_seed_everything_makes_torch_and_numpy_repeatable():
    training.seed_everything(3)
    a, na = torch.rand(3), np.random.rand(3)
    training.seed_everything(3)
    assert torch.equal(a, torch.rand(3)) and np.allclose(na, np.random.rand(3))
    with pytest.raises(TypeError, match="seed must be an int"):
        training.seed_everything("3")
    with pytest.raises(TypeError):
        training.seed_everything(True)


def test_pick_device():
    assert training.pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert training.pick_device().type == expected


def test_progress_bar_text_or_auto(monkeypatch, capsys):
    import tqdm.auto
    import tqdm.std

    monkeypatch.setenv("AML_PROGRESS", "text")
    bar = training.progress_bar(range(3), desc="steps")
    assert type(bar) is tqdm.std.tqdm and bar.mininterval == 5.0 and list(bar) == [0, 1, 2]
    assert "steps: 100%" in capsys.readouterr().err  # the finished bar is what a saved notebook keeps
    monkeypatch.setenv("AML_PROGRESS", "auto")
    bar = training.progress_bar(total=2, disable=True)
    assert isinstance(bar, tqdm.auto.tqdm)
    bar.close()


def test_default_forward_tuple_mapping_and_hf_style_outputs():
    model = nn.Linear(2, 3)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 0])
    logits, targets = training.default_forward(model, (x, y), torch.device("cpu"))
    assert logits.shape == (4, 3) and torch.equal(targets, y)

    class HFLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, features, scale=1.0):
            return types.SimpleNamespace(logits=self.lin(features) * scale)

    logits, targets = training.default_forward(HFLike(), {"features": x, "labels": [0, 1, 2, 0]}, "cpu")
    assert logits.shape == (4, 3) and targets.tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="labels"):
        training.default_forward(HFLike(), {"features": x}, "cpu")
    with pytest.raises(TypeError, match="batch must be"):
        training.default_forward(model, x, "cpu")

    class NotLogits(nn.Module):
        def forward(self, x):
            return "nope"

    with pytest.raises(TypeError, match="expected a tensor of logits"):
        training.default_forward(NotLogits(), (x, y), "cpu")


def test_fit_learns_records_history_and_restores_best():
    train, val = loaders()
    model = make_model()
    result = training.fit(model, train, val, torch.optim.Adam(model.parameters(), 0.05), epochs=4, progress=False)
    h = result.history
    assert list(h.columns) == [
        "epoch",
        "step",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
    ]
    assert len(h) == 4 and h["epoch"].tolist() == [1.0, 2.0, 3.0, 4.0] and h["step"].iloc[-1] == 32
    assert h["val_loss"].iloc[-1] < h["val_loss"].iloc[0] and result.best_val_accuracy == 1.0
    assert len(result.epoch_seconds) == 4 and result.seconds_per_epoch > 0 and result.steps == 32
    assert result.best_index == int(h["val_loss"].idxmin())
    # the restored weights are the best evaluation's
    val_loss, val_acc = training.evaluate_loader(model, val, "cpu")
    assert val_loss == pytest.approx(result.best_val_loss, abs=1e-6) and val_acc == result.best_val_accuracy
    assert not model.training
    summary = result.summary()
    assert summary["epochs_run"] == 4 and summary["stopped_early"] is False


def test_fit_is_seeded():
    histories = []
    for _ in range(2):
        train, val = loaders()
        model = make_model()
        result = training.fit(
            model, train, val, torch.optim.SGD(model.parameters(), 0.1), epochs=2, seed=7, progress=False
        )
        histories.append(result.history.drop(columns="seconds"))
    pd.testing.assert_frame_equal(*histories)


def test_early_stopping_on_validation_loss():
    # the validation labels are flipped: the better the model learns train, the worse its validation loss
    train, val = loaders(flip_val=True)
    model = make_model()
    result = training.fit(
        model, train, val, torch.optim.Adam(model.parameters(), 0.05), epochs=20, patience=2, progress=False
    )
    assert result.stopped_early and len(result.history) == result.best_index + 3 < 20
    val_loss, _ = training.evaluate_loader(model, val)
    assert val_loss == pytest.approx(result.best_val_loss, abs=1e-6)
    assert val_loss < result.history["val_loss"].iloc[-1]


def test_max_steps_evals_per_epoch_and_linear_schedule():
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    result = training.fit(
        model,
        train,
        val,
        opt,
        epochs=3,
        max_steps_per_epoch=4,
        evals_per_epoch=2,
        schedule="linear",
        warmup=0.25,
        patience=None,
        progress=False,
    )
    h = result.history
    assert result.steps == 12 and len(h) == 6
    assert h["epoch"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0] and h["step"].tolist() == [2, 4, 6, 8, 10, 12]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # decayed to zero at the last planned step
    assert h["lr"].iloc[0] > h["lr"].iloc[-1]


def test_fit_rejects_bad_arguments():
    train, val = loaders()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    for kwargs, match in [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"patience": 0}, "patience"),
        ({"evals_per_epoch": 0}, "evals_per_epoch"),
        ({"max_steps_per_epoch": 0}, "max_steps_per_epoch"),
        ({"schedule": "cosine"}, "schedule"),
    ]:
        with pytest.raises(ValueError, match=match):
            training.fit(model, train, val, opt, progress=False, **kwargs)
    with pytest.raises(TypeError, match="optimizer"):
        training.fit(model, train, val, "adam", progress=False)
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="training loader is empty"):
        training.fit(model, empty, val, opt, progress=False)
    with pytest.raises(ValueError, match="evaluation loader is empty"):
        training.evaluate_loader(model, empty)


def test_predict_returns_probabilities_in_order():
    model = make_model()
    ds = blobs(20)
    probs, targets = training.predict(model, DataLoader(ds, batch_size=6))
    assert probs.shape == (20, 2) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert targets.tolist() == ds.tensors[1].tolist()
    with torch.no_grad():
        expected = torch.softmax(model(ds.tensors[0]), 1).numpy()
    assert np.allclose(probs, expected, atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        training.predict(model, [])


def test_classification_report_frame_keeps_every_class():
    frame = training.classification_report_frame([0, 1, 2, 2], [0, 1, 1, 1], ["neg", "neu", "pos"])
    assert list(frame.index) == ["neg", "neu", "pos", "accuracy", "macro avg", "weighted avg"]
    assert frame.loc["pos", "recall"] == 0 and frame.loc["accuracy", "f1-score"] == pytest.approx(0.5)
    assert frame.loc["macro avg", "support"] == 4 and frame["support"].dtype.kind == "i"
    # a class absent from both y_true and y_pred still gets its row
    frame = training.classification_report_frame([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    assert list(frame.index[:3]) == ["a", "b", "c"] and frame.loc["c", "support"] == 0
    with pytest.raises(ValueError, match="shape"):
        training.classification_report_frame([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="outside"):
        training.classification_report_frame([0, 3], [0, 1], ["a", "b"])


def test_plot_training_curves():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = {}
    for name in ("a", "b"):
        train, val = loaders()
        model = make_model()
        results[name] = training.fit(
            model, train, val, torch.optim.SGD(model.parameters(), 0.1), epochs=2, progress=False
        )
    axes = training.plot_training_curves(results)
    # train, validation, best mark per run, plus the legend's marker entry
    assert len(axes[0].lines) == 7 and axes[1].get_ylabel() == "accuracy"
    for ax in axes:  # both panels carry a legend naming every curve
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert {"a train", "a validation", "b train", "b validation", "restored checkpoint"} <= set(labels)
    plt.close("all")


def test_set_threads(monkeypatch):
    before = torch.get_num_threads()
    assert training.set_threads(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert training.set_threads() == 2 and torch.get_num_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert training.set_threads() == os.cpu_count()
    training.set_threads(before)
