"""The building blocks of Stable Diffusion, in miniature on scikit-learn's 8×8 digits (the lecture lab
``lectures/stable_diffusion_building_blocks.ipynb``).

The course's pipeline, one function or class per step:

- **VAE** (:class:`VAE`): ``input_image -> latent_encoding -> sampling -> latent_decoding -> output_image``, trained
  on :func:`reconstruction_loss` ``(input_image, output_image)`` plus :func:`latent_loss` ``(latent_encoding,
  Gaussian Normal)``. Its latent is spatial (``2 × 4 × 4`` for an 8×8 digit), as Stable Diffusion's is (``4 × 64 ×
  64`` for a 512×512 photo): diffusion then runs on 32 numbers instead of 64 pixels.
- **Diffusion process** (:class:`NoiseSchedule`): the forward noising ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`` with
  DDPM's linear β schedule, and the ancestral sampler that reverses it (:func:`sample_latents`).
- **U-Net** (:class:`TinyUNet`): convolutions, a strided convolution down, a transpose convolution up, a skip
  connection, and **self-attention** at the bottleneck, predicting the noise ``ε`` in the VAE's latent space.
- **Multi-modal embeddings** (:class:`CaptionEncoder`): a caption (``"a handwritten seven"``) becomes a vector that
  conditions the U-Net; with probability ``p_uncond`` the caption is replaced by the empty one during training, so
  one network learns both the conditional and the unconditional noise, and sampling mixes them with
  **classifier-free guidance** (:func:`guided_noise`).

Written by hand because no library here does it at this size: ``diffusers`` would bring the same U-Net and scheduler
but is not installed and its models are sized for 64×64 images and up; the point of the lab is to see every step.
The caption encoder is learned jointly with the U-Net (as in the first text-to-image diffusion models), not a frozen
CLIP text tower: no CLIP weights can be downloaded here, and ten captions need no pre-training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aml.transfer.training import seed_everything

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NULL_CAPTION = ""


def caption_for(digit: int) -> str:
    """The caption of a digit class: ``caption_for(7) == "a handwritten seven"``."""
    return f"a handwritten {DIGIT_WORDS[int(digit)]}"


def load_digit_images(seed: int = 0, test_fraction: float = 0.25) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled 8×8 digits (1,797 images, grey levels 0-16) as ``float32`` images in ``[0, 1]`` of
    shape ``(n, 1, 8, 8)``, split stratified into ``{"train": (X, y), "test": (X, y)}``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    train, test = train_test_split(
        np.arange(len(images)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return {"train": (images[train], digits.target[train]), "test": (images[test], digits.target[test])}


# -- VAE ---------------------------------------------------------------------------------------------------------


class LatentEncoding(NamedTuple):
    """The encoder's output: the mean and log-variance of a diagonal Gaussian over the latent (same shapes)."""

    mean: torch.Tensor
    logvar: torch.Tensor


def reconstruction_loss(input_image: torch.Tensor, output_image: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the input pixels (grey levels in ``[0, 1]``) and the decoded pixel
    probabilities, summed over an image's pixels and averaged over the batch."""
    if input_image.shape != output_image.shape:
        raise ValueError(f"input {tuple(input_image.shape)} and output {tuple(output_image.shape)} differ in shape")
    per_pixel = F.binary_cross_entropy(output_image.clamp(1e-6, 1 - 1e-6), input_image, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def latent_loss(latent_encoding: LatentEncoding, prior: str = "Gaussian Normal") -> torch.Tensor:
    """KL divergence from the encoder's Gaussian ``N(mean, exp(logvar))`` to the prior, the standard ("Gaussian
    Normal") ``N(0, I)``: ``0.5 * sum(mean² + exp(logvar) - 1 - logvar)`` per image, averaged over the batch. Zero
    exactly when the encoding is the prior itself."""
    if prior != "Gaussian Normal":
        raise ValueError(f"only the standard Gaussian prior is implemented, got {prior!r}")
    mean, logvar = latent_encoding
    return (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).flatten(1).sum(1).mean()


class VAE(nn.Module):
    """A small convolutional VAE for ``1 × 8 × 8`` images with a ``latent_channels × 4 × 4`` latent.

    ``forward(input_image)`` returns ``(output_image, latent_encoding)``, computed as the course writes it:
    :meth:`encode` → :meth:`sampling` → :meth:`decode`.
    """

    def __init__(self, latent_channels: int = 2, width: int = 32):
        super().__init__()
        self.latent_channels = latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1),  # 8×8 -> 4×4
            nn.SiLU(),
            nn.Conv2d(width, 2 * latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),  # 4×4 -> 8×8
            nn.SiLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def encode(self, input_image: torch.Tensor) -> LatentEncoding:
        """``input_image -> latent_encoding``: the mean and log-variance of the latent."""
        mean, logvar = self.encoder(input_image).chunk(2, dim=1)
        return LatentEncoding(mean, logvar.clamp(-10.0, 10.0))

    @staticmethod
    def sampling(latent_encoding: LatentEncoding) -> torch.Tensor:
        """``latent_encoding -> latent``: one draw ``mean + exp(logvar / 2) * ε`` (the reparameterisation trick,
        so the gradient flows through the mean and the variance)."""
        mean, logvar = latent_encoding
        return mean + (0.5 * logvar).exp() * torch.randn_like(mean)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``latent -> output_image``: pixel probabilities in ``[0, 1]``."""
        return torch.sigmoid(self.decoder(latent))

    def forward(self, input_image: torch.Tensor) -> tuple[torch.Tensor, LatentEncoding]:
        """The course's flow: input_image -> latent_encoding -> sampling -> latent_decoding -> output_image; returns the output image and the latent encoding (for the latent loss)."""
        latent_encoding = self.encode(input_image)
        output_image = self.decode(self.sampling(latent_encoding))
        return output_image, latent_encoding


@dataclass
class History:
    """Per-epoch training losses (name -> list of floats) and the wall time."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, **values: float) -> None:
        """Append one epoch's value of each named loss."""
        for name, value in values.items():
            self.losses.setdefault(name, []).append(float(value))

    def last(self) -> dict[str, float]:
        """The latest value of each loss (the end of training)."""
        return {name: values[-1] for name, values in self.losses.items()}


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_vae(
    images: np.ndarray,
    epochs: int = 60,
    batch_size: int = 64,
    lr: float = 2e-3,
    beta: float = 0.5,
    latent_channels: int = 2,
    seed: int = 0,
) -> tuple[VAE, History]:
    """Train a :class:`VAE` on ``images`` (``(n, 1, 8, 8)`` in ``[0, 1]``) with Adam on ``reconstruction_loss +
    beta * latent_loss``. A ``beta`` below 1 keeps the latent informative (Stable Diffusion's VAE uses a tiny KL
    weight for the same reason); the returned history holds both losses per epoch (per image, averaged)."""
    import time

    seed_everything(seed)
    x = torch.as_tensor(images, dtype=torch.float32)
    model = VAE(latent_channels=latent_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history, start = History(), time.perf_counter()
    for _ in range(epochs):
        totals = np.zeros(2)
        for idx in _batches(len(x), batch_size, generator):
            output_image, latent_encoding = model(x[idx])
            rec, kl = reconstruction_loss(x[idx], output_image), latent_loss(latent_encoding)
            optimizer.zero_grad()
            (rec + beta * kl).backward()
            optimizer.step()
            totals += np.array([rec.item(), kl.item()]) * len(idx)
        history.add(reconstruction=totals[0] / len(x), latent=totals[1] / len(x))
    history.seconds = time.perf_counter() - start
    return model.eval(), history


@torch.no_grad()
def encode_means(vae: VAE, images: np.ndarray) -> torch.Tensor:
    """The latent means of ``images`` (no sampling): what the diffusion model learns to generate."""
    return vae.encode(torch.as_tensor(images, dtype=torch.float32)).mean


@torch.no_grad()
def decode_latents(vae: VAE, latents: torch.Tensor) -> np.ndarray:
    """Decoded images, ``(n, 1, 8, 8)`` in ``[0, 1]``, as a NumPy array."""
    return vae.decode(latents).numpy()


# -- diffusion process -------------------------------------------------------------------------------------------


class NoiseSchedule:
    """DDPM's forward process: ``steps`` noise levels with β rising linearly from ``beta_start`` to ``beta_end``,
    ``ᾱ_t = prod_{s<=t} (1 - β_s)``. :meth:`add_noise` jumps straight to step ``t``."""

    def __init__(self, steps: int = 200, beta_start: float = 1e-4, beta_end: float = 0.05):
        if steps < 2 or not 0 < beta_start < beta_end < 1:
            raise ValueError(
                f"need steps >= 2 and 0 < beta_start < beta_end < 1, got {steps}, {beta_start}, {beta_end}"
            )
        self.steps = steps
        self.betas = torch.linspace(beta_start, beta_end, steps)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`` for a batch of steps ``t`` (one per row)."""
        abar = self.alpha_bars[t].view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def signal_to_noise(self) -> np.ndarray:
        """``ᾱ_t / (1 - ᾱ_t)`` per step: how much of the original survives."""
        return (self.alpha_bars / (1 - self.alpha_bars)).numpy()


# -- the conditional U-Net ---------------------------------------------------------------------------------------


class CaptionEncoder(nn.Module):
    """Captions -> vectors: the mean of learned word embeddings (a bag of words), the empty caption mapped to a
    learned "no caption" vector. The vocabulary is fixed at construction from the captions it will see."""

    def __init__(self, captions: Sequence[str], dim: int = 64):
        super().__init__()
        words = sorted({w for c in captions for w in c.split()})
        self.vocabulary = {w: i + 1 for i, w in enumerate(words)}  # 0: padding
        self.words = nn.EmbeddingBag(len(words) + 1, dim, mode="mean", padding_idx=0)
        self.null = nn.Parameter(torch.zeros(dim))

    def tokenize(self, caption: str) -> list[int]:
        """The caption's word ids (every word must be in the vocabulary: a caption the model never saw is an error, not noise)."""
        unknown = [w for w in caption.split() if w not in self.vocabulary]
        if unknown:
            raise KeyError(f"words not in the caption vocabulary: {unknown}; known: {sorted(self.vocabulary)}")
        return [self.vocabulary[w] for w in caption.split()]

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        """One embedding per caption: the mean of its word embeddings; the empty caption gives the learned null embedding that classifier-free guidance needs."""
        ids = [self.tokenize(c) for c in captions]
        width = max(1, max(len(i) for i in ids))
        padded = torch.tensor([i + [0] * (width - len(i)) for i in ids])
        out = self.words(padded)
        empty = torch.tensor([len(i) == 0 for i in ids])
        return torch.where(empty[:, None], self.null.expand_as(out), out)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position encoding, used for the diffusion step ``t``: ``(batch, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection; the (step + caption) embedding is added in between."""

    def __init__(self, channels_in: int, channels: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Two convolutions with the step-and-caption embedding added between them, plus the skip path."""
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the positions of a feature map (every position attends to every other);
    the last attention weights are kept in ``weights`` for plotting."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention over the feature map's positions (each pixel of the bottleneck attends to all), added back to the input."""
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (b, h*w, c)
        out, weights = self.attention(tokens, tokens, tokens, need_weights=True)
        self.weights = weights.detach()
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class TinyUNet(nn.Module):
    """A U-Net for ``latent_channels × 4 × 4`` latents: a residual block at 4×4, a strided convolution down to 2×2,
    residual blocks with self-attention at the bottleneck, a transpose convolution back up to 4×4, the 4×4 features
    concatenated through the **skip connection**, a residual block and a 3×3 convolution out. Conditioned on the
    diffusion step and a caption embedding (added to every residual block). Predicts the noise ``ε``."""

    def __init__(self, captions: Sequence[str], latent_channels: int = 2, width: int = 64, emb_dim: int = 64):
        super().__init__()
        self.emb_dim = emb_dim
        self.captions = CaptionEncoder(captions, emb_dim)
        self.time = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(latent_channels, width, 3, padding=1)
        self.down_block = ResBlock(width, width, emb_dim)
        self.down = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)  # 4×4 -> 2×2
        self.mid1 = ResBlock(2 * width, 2 * width, emb_dim)
        self.attention = SelfAttention2d(2 * width)
        self.mid2 = ResBlock(2 * width, 2 * width, emb_dim)
        self.up = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)  # 2×2 -> 4×4
        self.up_block = ResBlock(2 * width, width, emb_dim)  # after concatenating the skip
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, latent_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        """The predicted noise in the latent ``x`` at steps ``t``, conditioned on ``captions`` (same shape as ``x``)."""
        if len(captions) != len(x):
            raise ValueError(f"{len(captions)} captions for a batch of {len(x)}")
        emb = self.time(timestep_embedding(t, self.emb_dim)) + self.captions(captions)
        skip = self.down_block(self.inp(x), emb)
        h = self.mid2(self.attention(self.mid1(self.down(skip), emb)), emb)
        h = self.up_block(torch.cat([self.up(h), skip], dim=1), emb)
        return self.out(h)


def train_diffusion(
    latents: torch.Tensor,
    labels: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 4000,
    batch_size: int = 128,
    lr: float = 2e-3,
    p_uncond: float = 0.15,
    seed: int = 0,
    width: int = 64,
) -> tuple[TinyUNet, History]:
    """Train a :class:`TinyUNet` to predict the noise added to ``latents`` (already scaled to unit variance) at a
    random step, each captioned ``caption_for(label)`` or, with probability ``p_uncond``, not at all (the empty
    caption: what classifier-free guidance needs). ``p_uncond=1`` trains a purely unconditional model. Adam with a
    cosine-decayed learning rate; the history holds the mean MSE per 100 steps."""
    import time

    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond}")
    seed_everything(seed)
    captions = [caption_for(d) for d in range(10)]
    model = TinyUNet(captions + [NULL_CAPTION], latent_channels=latents.shape[1], width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    generator = torch.Generator().manual_seed(seed)
    labels = np.asarray(labels)
    history, start, running = History(), time.perf_counter(), []
    for step in range(steps):
        idx = torch.randint(len(latents), (min(batch_size, len(latents)),), generator=generator)
        x0 = latents[idx]
        t = torch.randint(schedule.steps, (len(idx),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        drop = torch.rand(len(idx), generator=generator) < p_uncond
        batch_captions = [
            NULL_CAPTION if d else caption_for(labels[i]) for i, d in zip(idx.tolist(), drop.tolist(), strict=True)
        ]
        loss = F.mse_loss(model(schedule.add_noise(x0, t, noise), t, batch_captions), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        running.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            history.add(mse=float(np.mean(running)))
            running = []
    history.seconds = time.perf_counter() - start
    return model.eval(), history


def guided_noise(
    model: TinyUNet, x: torch.Tensor, t: torch.Tensor, captions: Sequence[str], guidance: float
) -> torch.Tensor:
    """Classifier-free guidance: ``ε_uncond + guidance * (ε_cond - ε_uncond)``. ``guidance=1`` is the plain
    conditional prediction, ``0`` the unconditional one, larger values push harder towards the caption. One forward
    pass on the doubled batch."""
    if guidance == 1.0:
        return model(x, t, captions)
    both = model(torch.cat([x, x]), torch.cat([t, t]), list(captions) + [NULL_CAPTION] * len(captions))
    cond, uncond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample_latents(
    model: TinyUNet,
    schedule: NoiseSchedule,
    captions: Sequence[str],
    guidance: float = 3.0,
    seed: int = 0,
    shape: tuple[int, int, int] = (2, 4, 4),
    keep_every: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """DDPM ancestral sampling, from pure noise at step ``T-1`` down to step 0, one latent per caption:
    ``x_{t-1} = (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t) + sqrt(β_t) z``. Returns the final latents and, when
    ``keep_every > 0``, the intermediate ones every ``keep_every`` steps (for the denoising strip)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((len(captions), *shape), generator=generator)
    trajectory = []
    for step in reversed(range(schedule.steps)):
        if keep_every and step % keep_every == 0:
            trajectory.append(x.clone())
        t = torch.full((len(captions),), step, dtype=torch.long)
        eps = guided_noise(model, x, t, captions, guidance)
        beta, alpha, abar = schedule.betas[step], schedule.alphas[step], schedule.alpha_bars[step]
        x = (x - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
        if step > 0:
            x = x + beta.sqrt() * torch.randn(x.shape, generator=generator)
    return x, trajectory


def train_digit_classifier(images: np.ndarray, labels: Sequence[int], seed: int = 0):
    """The judge: an RBF support-vector classifier on the raw pixels of real digits (about 99% accuracy on the
    held-out real digits), trained apart from every generative model. Predict with ``clf.predict(images.reshape(n,
    -1))``."""
    from sklearn.svm import SVC

    return SVC(C=10.0, gamma="scale", random_state=seed).fit(np.asarray(images).reshape(len(images), -1), labels)


def caption_accuracy(classifier, images: np.ndarray, digits: Sequence[int]) -> float:
    """Share of generated ``images`` that ``classifier`` recognises as the digit their caption asked for."""
    predicted = classifier.predict(np.asarray(images).reshape(len(images), -1))
    return float(np.mean(predicted == np.asarray(digits)))


def plot_images(images: np.ndarray, ncols: int = 10, ax=None, row_labels: Sequence[str] | None = None, title: str = ""):
    """Draw ``images`` (``(n, 1, 8, 8)`` or ``(n, 8, 8)``, values in ``[0, 1]``) as one mosaic, ``ncols`` per row,
    white digits on black as in ``load_digits``; ``row_labels`` name the rows. Returns the axes."""
    import matplotlib.pyplot as plt

    images = np.asarray(images).reshape(len(images), 8, 8)
    nrows = math.ceil(len(images) / ncols)
    mosaic = np.full((nrows * 9 - 1, ncols * 9 - 1), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        mosaic[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = image
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * ncols + (1.6 if row_labels else 0), 0.55 * nrows + 0.4))
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([r * 9 + 3.5 for r in range(nrows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    return ax
