import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from aml.deep import architectures as arch


@pytest.fixture(scope="module")
def digits():
    return arch.digits_splits(seed=0)


def test_digits_splits_shapes_and_range(digits):
    sizes = {name: len(t[1]) for name, t in digits.items()}
    assert sum(sizes.values()) == 1797 and sizes["train"] > sizes["validation"]
    x, y = digits["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (arch.DigitsMLP, {}),
        (arch.DigitsCNN, {}),
        (arch.DeepCNN, {"depth": 3}),
        (arch.DeepCNN, {"depth": 3, "residual": True}),
    ],
)
def test_digit_models_give_ten_logits(factory, kwargs):
    net = arch.build(factory, 0, **kwargs)
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_parameter_counts_and_first_layers():
    mlp, cnn = arch.DigitsMLP(64), arch.DigitsCNN(8)
    assert arch.count_parameters(mlp) == 64 * 64 + 64 + 64 * 10 + 10
    assert arch.count_parameters(cnn) == (9 * 8 + 8) + (8 * 9 * 16 + 16) + (16 * 4 * 10 + 10)
    assert mlp.first_layer.shape == (64, 8, 8) and cnn.first_layer.shape == (8, 3, 3)
    plain, res = arch.DeepCNN(4, residual=False), arch.DeepCNN(4, residual=True)
    assert arch.count_parameters(plain) == arch.count_parameters(res)  # the skip adds no parameters
    with pytest.raises(ValueError, match="depth"):
        arch.DeepCNN(0)


def test_build_is_seeded():
    a, b = arch.build(arch.DigitsCNN, 3), arch.build(arch.DigitsCNN, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds synchronisation
    yield
    torch.set_num_threads(before)


def test_train_learns_digits_and_is_reproducible(digits, one_thread):
    small = {k: (v[0][:200], v[1][:200]) for k, v in digits.items()}
    runs = []
    for _ in range(2):
        loaders = arch.loaders(small, batch_size=32, seed=0)
        t = arch.train(arch.build(arch.DigitsMLP, 0), loaders, epochs=2, lr=3e-3, seed=0)
        runs.append((t, arch.accuracy(t.model, loaders["test"])))
    (t, acc), (t2, acc2) = runs
    assert t.seconds > 0 and len(t.fit.history) == 2 and acc > 0.3
    pd.testing.assert_series_equal(t.fit.history["train_loss"], t2.fit.history["train_loss"])
    assert acc == acc2


def test_tokenize_vocabulary_and_encode():
    assert arch.tokenize("WIN £100 now!! call 09061") == ["win", "£", "100", "now", "!", "!", "call", "09061"]
    vocab = arch.build_vocabulary(["free free call", "call me", "free"], min_count=2)
    assert vocab == {"free": 2, "call": 3}
    ids = arch.encode(["free call me", "", "x " * 100], vocab, max_length=4)
    assert ids.shape == (3, 4)
    assert ids[0].tolist() == [2, 3, arch.UNK, arch.PAD]
    assert ids[1].tolist() == [arch.UNK, 0, 0, 0]  # an empty text still has length 1
    assert (ids[2] == arch.UNK).all()  # truncated to max_length


@pytest.mark.parametrize("kind", arch.SequenceClassifier.KINDS)
def test_sequence_classifier_shapes_and_padding_invariance(kind):
    net = arch.build(arch.SequenceClassifier, 0, kind, vocab_size=20, dim=16, max_length=10).eval()
    ids = torch.tensor([[2, 3, 4, 0, 0, 0], [5, 0, 0, 0, 0, 0]])
    out = net(ids)
    assert out.shape == (2, 2)
    longer = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)  # more padding: same logits
    assert torch.allclose(net(longer), out, atol=1e-5)
    with pytest.raises(ValueError, match="kind"):
        arch.SequenceClassifier("gru", 10)


def test_evaluate_spam_uses_the_validation_threshold():
    y_val, p_val = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.9])
    y_test, p_test = np.array([0, 1, 1, 0]), np.array([0.2, 0.8, 0.3, 0.5])
    out = arch.evaluate_spam(y_val, p_val, y_test, p_test, min_precision=0.9)
    assert out["threshold"] == pytest.approx(0.9)  # the only cut with validation precision >= 0.9
    assert out["test_recall"] == 0.0 and out["validation_aucpr"] == pytest.approx(0.8333, abs=1e-4)
    assert out["test_aucpr"] == pytest.approx(1 / 2 * 1 + 1 / 2 * 2 / 3)


def test_tfidf_parameter_count_on_a_small_pipeline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())])
    pipe.fit(["win cash now", "see you soon", "cash prize", "soon home"], [1, 0, 1, 0])
    n_features = len(pipe.steps[0][1].vocabulary_)
    assert arch.tfidf_parameter_count(pipe) == 2 * n_features + 1


def test_plots_draw():
    import matplotlib.pyplot as plt

    arch.plot_first_layers(arch.DigitsMLP(), arch.DigitsCNN())
    from aml.transfer.training import FitResult

    fit = FitResult(history=pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}), best_index=1)
    arch.plot_loss_curves({"x": fit})
    plt.close("all")
