"""aml.deep.principles: the transfer-learning grid on tiny synthetic data with a randomly initialised backbone
(shapes, seeded reproducibility, the verdict rule on known values); seconds, no pretrained weights needed."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aml.deep import principles as tl

SIZE = 32  # EfficientNet-Lite0 accepts it: block 10's output is 2x2, block 14's 1x1


@pytest.fixture(scope="module")
def net():
    return tl.load_backbone(pretrained=False, seed=0)


@pytest.fixture(scope="module")
def domain():
    """20 images of two classes that differ in brightness (learnable), as a Domain."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10)
    images = torch.tensor(rng.normal(0, 0.3, (20, 3, SIZE, SIZE)), dtype=torch.float32) + torch.tensor(
        labels, dtype=torch.float32
    ).view(-1, 1, 1, 1)
    return tl.Domain("photos", "high", images, labels, ["dark", "bright"])


@pytest.fixture(scope="module")
def cache(net, domain):
    return tl.precompute(net, domain.images, batch_size=8)


SETTINGS = tl.Settings(epochs=1, patience=None, batch_size=8, scratch_size={"photos": 16})


def test_render_digits_dark_ink_on_white():
    img = np.zeros((1, 8, 8))
    img[0, 3:5, 3:5] = 16
    (out,) = tl.render_digits(img, 16)
    arr = np.asarray(out)
    assert out.size == (16, 16) and arr.shape == (16, 16, 3)
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[8, 8].min() < 60
    with pytest.raises(ValueError, match="8x8"):
        tl.render_digits(np.zeros((2, 4, 4)), 16)


def test_digits_domain_is_a_stratified_subset():
    digits = tl.load_digits_domain(size=16, max_images=100)
    assert digits.images.shape == (100, 3, 16, 16) and digits.similarity == "low"
    assert len(digits.classes) == 10 and np.bincount(digits.labels).min() >= 9


def test_few_per_class_is_seeded_and_stays_in_the_pool():
    labels = np.array([0, 1, 2] * 10)
    pool = np.arange(24)
    a, b = tl.few_per_class(labels, pool, 3, seed=1), tl.few_per_class(labels, pool, 3, seed=1)
    assert a.tolist() == b.tolist() and len(a) == 9 and set(a) <= set(pool)
    assert np.bincount(labels[a]).tolist() == [3, 3, 3]
    assert tl.few_per_class(labels, pool, 3, seed=2).tolist() != a.tolist()


def test_cell_indices_keep_the_test_split_whole():
    labels = np.array([0, 1] * 20)
    splits = tl.domain_splits(labels)
    low = tl.cell_indices(labels, splits, "low", 2, seed=0)
    assert len(low["train"]) == 4 and len(low["validation"]) == 4 and low["test"].tolist() == splits["test"].tolist()
    assert tl.cell_indices(labels, splits, "high", 2, seed=0) == splits
    with pytest.raises(ValueError, match="availability"):
        tl.cell_indices(labels, splits, "medium", 2, seed=0)


def test_precompute_shapes(cache):
    assert cache["deeper"].shape == (20, 112, 2, 2) and cache["near_last"].shape == (20, 192, 1, 1)
    assert cache["features_head"].shape == (20, 1280) and cache["features_deeper"].shape == (20, 112)


def test_the_cached_suffix_equals_the_whole_network(net, domain, cache):
    """Training on cached activations is exact: the copied layers after the cut reproduce the network's output."""
    suffix = tl.Suffix(net, tl.CUTS["deeper"], 2).eval()
    with torch.no_grad():
        pooled = suffix.act(suffix.bn_head(suffix.conv_head(nn.Sequential(*suffix.blocks)(cache["deeper"]))))
    assert torch.allclose(pooled.mean((2, 3)), cache["features_head"], atol=1e-5)


def test_suffix_keeps_batch_norm_statistics(net):
    suffix = tl.Suffix(net, tl.CUTS["near_last"], 3).train()
    bns = [m for m in suffix.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and suffix.fc.training
    assert suffix(torch.zeros(4, 192, 1, 1)).shape == (4, 3)


def test_small_cnn_shape_and_parameters():
    model = tl.SmallCNN(10, width=4)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
    # three 3x3 convolutions (3->4->8->16) with biases, three batch norms, a 16->10 linear layer
    assert tl.count_parameters(model) == (3 * 9 * 4 + 4) + (4 * 9 * 8 + 8) + (8 * 9 * 16 + 16) + 2 * (4 + 8 + 16) + 170


@pytest.mark.parametrize("strategy", list(tl.STRATEGIES))
def test_each_strategy_runs_and_is_reproducible(strategy, net, domain, cache):
    idx = tl.cell_indices(domain.labels, tl.domain_splits(domain.labels), "high", 2, seed=0)
    a = tl.run_strategy(strategy, domain, cache, net, idx, SETTINGS, seed=3)
    b = tl.run_strategy(strategy, domain, cache, net, idx, SETTINGS, seed=3)
    assert 0 <= a["test_accuracy"] <= 1 and a["test_accuracy"] == b["test_accuracy"]
    assert a["trainable_parameters"] > 0


def test_feature_strategies_learn_a_separable_problem(net, domain, cache):
    idx = tl.cell_indices(domain.labels, tl.domain_splits(domain.labels), "high", 2, seed=0)
    result = tl.run_strategy("near_last_as_feature", domain, cache, net, idx, SETTINGS, seed=0)
    assert result["test_accuracy"] == 1.0
    assert result["trainable_parameters"] == 1281  # logistic regression on 1280 features, two classes
    with pytest.raises(ValueError, match="unknown strategy"):
        tl.run_strategy("retrain_everything", domain, cache, net, idx, SETTINGS, seed=0)


def _summary(means: dict, sd: float = 0.01) -> pd.DataFrame:
    rows = [
        {"domain": "d", "similarity": s, "availability": a, "strategy": k, "seed": seed, "train_examples": 10,
         "test_accuracy": m + (sd if seed else -sd) / np.sqrt(2), "trainable_parameters": 1, "seconds": 0.1}
        for (s, a), strategies in means.items() for k, m in strategies.items() for seed in (0, 1)
    ]  # fmt: skip
    return tl.summarise(pd.DataFrame(rows))


def test_summarise_and_the_verdict_rule():
    base = dict.fromkeys(tl.STRATEGIES, 0.5)
    means = {
        ("high", "high"): {**base, "fine_tune_near_last": 0.9},  # the course's pick wins
        ("high", "low"): {**base, "near_last_as_feature": 0.8, "fine_tune_near_last": 0.805},  # loses by < sd
        ("low", "high"): {**base, "fine_tune_deeper": 0.7, "from_scratch": 0.95},  # loses clearly
        ("low", "low"): {**base, "deeper_as_feature": 0.6},
    }
    summary = _summary(means, sd=0.01)
    assert summary.loc[("high", "high", "fine_tune_near_last"), "mean"] == pytest.approx(0.9)
    assert summary.loc[("high", "high", "fine_tune_near_last"), "sd"] == pytest.approx(0.01)
    comparison = tl.compare_with_course(summary)
    assert comparison["verdict"].tolist() == ["agrees", "tie", "disagrees", "agrees"]
    assert comparison.loc[2, "measured winner"] == "train from scratch" and comparison.loc[2, "gap"] == pytest.approx(
        0.25
    )
    sentences = tl.verdict_sentences(comparison)
    assert sentences[2].startswith("low similarity, high availability: DISAGREES: 'train from scratch'")
    assert "a tie within the seeds' spread" in sentences[1]


def test_as_course_table_layout():
    table = tl.as_course_table({cell: tl.STRATEGIES[s] for cell, s in tl.COURSE_TABLE.items()})
    assert list(table.columns) == ["high data availability", "low data availability"]
    assert table.loc["low domain similarity", "low data availability"] == "deeper layer as feature"


def test_cnn_facts_count_layers_and_residual_connections(net):
    from torchvision.models import resnet18

    facts = tl.cnn_facts(resnet18(weights=None))
    assert facts == {"weighted layers": 21, "residual connections": 8, "output classes": 1000, "parameters": 11689512}
    lite = tl.cnn_facts(net)
    assert lite["weighted layers"] == 50 and lite["residual connections"] == 9 and lite["output classes"] == 2


def test_transformer_facts_and_model_card(tmp_path):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64))
    facts = tl.transformer_facts(model)
    assert facts["transformer layers"] == 2 and facts["attention heads per layer"] == 4 and facts["hidden size"] == 32
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\ndatasets:\n- s2orc\n- ms_marco\n---\n# A model\n")
    assert tl.model_card_datasets(card) == ["s2orc", "ms_marco"]
    card.write_text("# no front matter\n")
    with pytest.raises(ValueError, match="front matter"):
        tl.model_card_datasets(card)


def test_use_case_table_puts_the_course_rows_first():
    table = tl.use_case_table({"a": {"number of parameters": "1", "extra": "x", "model": "m"}, "b": {"model": "n"}})
    assert list(table.index) == ["model", "number of parameters", "extra"] and table.loc["extra", "b"] == ""
