"""Training loops and extraction of the two representations (METHOD.md 1.3-1.4).

Images (``ZSLData.image_shape`` set):
  x = embedding of an :class:`ImageBackbone` trained with cross-entropy on the seen-class
      trainval images (labels re-indexed to 0..S-1);
  c = embedding of a second backbone trained with the supervised contrastive loss on two
      augmented views of the same images.
Feature datasets (``image_shape`` None): x = the given features; c = a feature-space
:class:`FeatureEncoder` trained with SupCon on the seen trainval features (METHOD.md 1.4
[PROPOSAL] fallback; augmentations: dropout + Gaussian noise).
``features.sc_source: x`` skips the SupCon training and sets c = x on either route (the
official runs on feature datasets did that; a learnt encoder can overfit a small training set).

Only seen-class TRAINVAL samples are ever used for training or for fitting the input
standardisation; test_seen / test_unseen samples are only passed through the frozen networks
in eval mode, without augmentation (unlike the official code, METHOD.md 8 item 5).
Training length is fixed by the config (no selection on any validation or test data).
All randomness (initialisation, shuffling, augmentation) comes from ``features.seed``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import FeaturesConfig
from ..io import DataError
from ..data.schema import ZSLData
from ..runtime import progress
from .backbones import (DEFAULT_WIDTHS, Classifier, ContrastiveModel, FeatureEncoder,
                        ImageBackbone)
from .supcon import supervised_contrastive_loss

IMAGE_SHIFT = 2          # random translation by up to 2 px (pad + crop)
IMAGE_NOISE = 0.05       # Gaussian pixel noise, in units of the (standardised) pixel std
EXTRACT_BATCH = 1000


@dataclass
class SeenTrainingSet:
    """The only samples the extractors may learn from: seen-class trainval rows."""

    rows: np.ndarray           # 0-based rows of ZSLData.features, in trainval_loc order
    targets: np.ndarray        # labels re-indexed to 0..S-1
    seen_classes: np.ndarray   # 0-based ids of the S seen classes, sorted


@dataclass
class ExtractedFeatures:
    x: np.ndarray              # (N, Dx) float32, one row per sample in res101 order
    c: np.ndarray              # (N, Dc) float32
    info: dict = field(default_factory=dict)


def seen_training_set(data: ZSLData) -> SeenTrainingSet:
    rows = data.idx("trainval").astype(np.int64)
    labels0 = data.labels[rows] - 1
    seen = np.unique(labels0)
    unseen_used = np.intersect1d(seen, data.unseen_classes())
    if unseen_used.size:
        raise DataError(f"{data.source or data.name}: trainval_loc contains samples of unseen "
                        f"class(es) {(unseen_used + 1).tolist()}; refusing to train on them")
    if seen.size < 2:
        raise DataError(f"{data.source or data.name}: need at least 2 seen classes to train "
                        f"the feature extractors, found {seen.size}")
    return SeenTrainingSet(rows=rows, targets=np.searchsorted(seen, labels0), seen_classes=seen)


def standardise(values: np.ndarray, train_rows: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """(values - mean) / std with statistics over the training rows only (zero std -> 1)."""
    train = values[train_rows].astype(np.float64)
    mean = train.mean(axis=axes, keepdims=True)
    std = train.std(axis=axes, keepdims=True)
    std[std == 0] = 1.0
    out = np.asarray(values, dtype=np.float32) - mean.astype(np.float32)
    out /= std.astype(np.float32)
    return out


# --------------------------------------------------------------------------- augmentation


def augment_images(images: torch.Tensor, generator: torch.Generator, shift: int = IMAGE_SHIFT,
                   flip: bool = True, noise: float = 0.0) -> torch.Tensor:
    """Random translation (replicate-pad by ``shift`` px, random crop back to H x W),
    random horizontal flip (p = 0.5) and optional Gaussian noise, drawn from ``generator``."""
    b, _, h, w = images.shape
    out = images
    if shift > 0:
        padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
        off_y = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        off_x = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        rows = off_y[:, None] + torch.arange(h)                      # (B, H)
        cols = off_x[:, None] + torch.arange(w)                      # (B, W)
        batch = torch.arange(b)[:, None, None]
        out = padded[batch, :, rows[:, :, None], cols[:, None, :]]   # (B, H, W, C)
        out = out.permute(0, 3, 1, 2)                                # channels-last layout
    if flip:
        flipped = torch.rand(b, generator=generator) < 0.5
        out = torch.where(flipped[:, None, None, None], out.flip(3), out)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator)
    return out


def augment_features(features: torch.Tensor, generator: torch.Generator, dropout: float,
                     noise: float) -> torch.Tensor:
    """Feature-space views (METHOD.md 1.4 fallback): inverted dropout + Gaussian noise."""
    out = features
    if dropout > 0:
        keep = torch.rand(out.shape, generator=generator) >= dropout
        out = out * keep / (1.0 - dropout)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator)
    return out


# --------------------------------------------------------------------------- training


def _autocast(precision: str, device: torch.device):
    import contextlib

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    if batch.ndim == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch.to(device, non_blocking=True)


def fit(model: nn.Module, batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        inputs: torch.Tensor, targets: torch.Tensor, *, epochs: int, cfg: FeaturesConfig,
        generator: torch.Generator, desc: str, show_progress: bool,
        on_epoch_start: Optional[Callable[[int], None]] = None) -> list[float]:
    """AdamW over shuffled mini-batches (batch of 1 dropped: BatchNorm needs 2);
    ``batch_loss(inputs, targets)`` gets CPU tensors.  Returns the mean loss of each epoch."""
    n, bs = inputs.shape[0], cfg.batch_size
    starts = [s for s in range(0, n, bs) if min(bs, n - s) >= 2]
    if not starts:
        raise DataError(f"{desc}: need at least 2 training samples, got {n}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    history = []
    bar = progress(total=epochs * len(starts), desc=desc, enabled=show_progress)
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for s in starts:
            idx = order[s:s + bs]
            loss = batch_loss(inputs[idx], targets[idx])
            if not torch.isfinite(loss):
                raise DataError(f"{desc}: training loss became {loss.item()} (non-finite inputs "
                                "or a too-large features.lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            bar.update(1)
        history.append(total / len(starts))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    bar.close()
    return history


@torch.no_grad()
def embed(encoder: nn.Module, inputs: torch.Tensor, device: torch.device,
          precision: str = "fp32", batch_size: int = EXTRACT_BATCH) -> np.ndarray:
    """Eval-mode embeddings of every row of ``inputs`` (no augmentation) as float32 numpy."""
    encoder.eval()
    parts = []
    for s in range(0, inputs.shape[0], batch_size):
        with _autocast(precision, device):
            out = encoder(_to_device(inputs[s:s + batch_size], device))
        parts.append(out.float().cpu())
    return torch.cat(parts).numpy().astype(np.float32, copy=False)


def _init_model(factory: Callable[[], nn.Module], seed: int, device: torch.device) -> nn.Module:
    """Build a model from its own seed, independent of the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def train_ce_backbone(images: torch.Tensor, targets: torch.Tensor, n_classes: int,
                      cfg: FeaturesConfig, device: torch.device, *, precision: str = "fp32",
                      widths=DEFAULT_WIDTHS, show_progress: bool = True) -> tuple[ImageBackbone, dict]:
    """Cross-entropy training of a backbone + linear head on (standardised) training images,
    with shift/flip augmentation.  Returns the backbone and a summary."""
    model = _init_model(lambda: Classifier(ImageBackbone(images.shape[1], cfg.feature_dim, widths),
                                           n_classes), cfg.seed, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    correct = {"n": 0, "total": 0}

    def batch_loss(x, y):
        x = _to_device(augment_images(x, gen), device)
        y = y.to(device)
        with _autocast(precision, device):
            logits = model(x)
        correct["n"] += int((logits.argmax(1) == y).sum())
        correct["total"] += int(y.numel())
        return F.cross_entropy(logits.float(), y)

    history = fit(model, batch_loss, images, targets, epochs=cfg.ce_epochs, cfg=cfg,
                  generator=gen, desc="features: CE CNN", show_progress=show_progress,
                  on_epoch_start=lambda _epoch: correct.update(n=0, total=0))
    summary = {"epochs": cfg.ce_epochs, "loss_per_epoch": history, "final_loss": history[-1],
               "final_epoch_train_accuracy": correct["n"] / max(correct["total"], 1)}
    return model.backbone, summary


def train_supcon_encoder(inputs: torch.Tensor, targets: torch.Tensor, encoder_factory,
                         make_view: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                         cfg: FeaturesConfig, device: torch.device, *, seed: int,
                         precision: str = "fp32", show_progress: bool = True,
                         desc: str = "features: SupCon encoder") -> tuple[nn.Module, dict]:
    """SupCon training of ``encoder_factory()`` + projection head on two views per sample
    (``make_view`` draws one augmented view from the generator).  Returns the encoder."""
    model = _init_model(lambda: ContrastiveModel(encoder_factory(), cfg.projection_dim), seed,
                        device)
    gen = torch.Generator().manual_seed(seed)

    def batch_loss(x, y):
        views = torch.cat([make_view(x, gen), make_view(x, gen)])
        with _autocast(precision, device):
            z = model(_to_device(views, device))
        return supervised_contrastive_loss(z.float(), torch.cat([y, y]).to(device),
                                           cfg.temperature)

    history = fit(model, batch_loss, inputs, targets, epochs=cfg.sc_epochs, cfg=cfg,
                  generator=gen, desc=desc, show_progress=show_progress)
    summary = {"epochs": cfg.sc_epochs, "loss_per_epoch": history, "final_loss": history[-1]}
    return model.encoder, summary


# --------------------------------------------------------------------------- orchestration


def extract_image_features(data: ZSLData, cfg: FeaturesConfig, device: torch.device, *,
                           precision: str = "fp32", widths=DEFAULT_WIDTHS,
                           show_progress: bool = True) -> ExtractedFeatures:
    """x from a CE-trained CNN, c from a SupCon-trained CNN (METHOD.md 1.4, image route), or
    c = x under ``features.sc_source: x``."""
    if data.image_shape is None:
        raise DataError(f"{data.name}: not an image dataset (image_shape is null)")
    shape = tuple(int(s) for s in data.image_shape)
    if len(shape) != 3 or int(np.prod(shape)) != data.features.shape[1]:
        raise DataError(f"{data.name}: image_shape {shape} must be (channels, H, W) with "
                        f"C*H*W = feature dim {data.features.shape[1]}")
    train = seen_training_set(data)
    pixels = data.features.reshape((-1,) + shape)
    all_images = torch.from_numpy(standardise(pixels, train.rows, axes=(0, 2, 3)))
    train_images = all_images[torch.from_numpy(train.rows)]
    targets = torch.from_numpy(train.targets)

    ce_backbone, ce_info = train_ce_backbone(
        train_images, targets, len(train.seen_classes), cfg, device, precision=precision,
        widths=widths, show_progress=show_progress)
    x = embed(ce_backbone, all_images, device, precision)
    common = {**_training_set_info(train), "backbone_widths": list(widths),
              "image_shape": list(shape), "ce": ce_info}
    if cfg.sc_source == "x":
        return ExtractedFeatures(x=x, c=x.copy(),
                                 info={"method": "c=x", "sc_source": "x", **common})

    sc_encoder, sc_info = train_supcon_encoder(
        train_images, targets, lambda: ImageBackbone(shape[0], cfg.feature_dim, widths),
        lambda v, g: augment_images(v, g, noise=IMAGE_NOISE), cfg, device, seed=cfg.seed + 1,
        precision=precision, show_progress=show_progress, desc="features: SupCon CNN")
    c = embed(sc_encoder, all_images, device, precision)
    info = {"method": "image-cnn", "sc_source": "supcon", **common, "supcon": sc_info,
            "augmentation": {"shift_px": IMAGE_SHIFT, "hflip": 0.5, "noise_std": IMAGE_NOISE}}
    return ExtractedFeatures(x=x, c=c, info=info)


def extract_feature_dataset(data: ZSLData, cfg: FeaturesConfig, device: torch.device, *,
                            precision: str = "fp32", show_progress: bool = True) -> ExtractedFeatures:
    """x = the given features; c = feature-space SupCon encoder (METHOD.md 1.4 fallback), or
    c = x under ``features.sc_source: x``."""
    train = seen_training_set(data)
    x = np.ascontiguousarray(data.features, dtype=np.float32)
    if cfg.sc_source == "x":
        return ExtractedFeatures(x=x, c=x.copy(), info={"method": "c=x", "sc_source": "x",
                                                         **_training_set_info(train)})
    dim = data.features.shape[1]
    all_feats = torch.from_numpy(standardise(data.features, train.rows, axes=(0,)))
    train_feats = all_feats[torch.from_numpy(train.rows)]
    encoder, sc_info = train_supcon_encoder(
        train_feats, torch.from_numpy(train.targets), lambda: FeatureEncoder(dim, dim),
        lambda v, g: augment_features(v, g, cfg.feature_dropout, cfg.feature_noise), cfg,
        device, seed=cfg.seed + 1, precision=precision, show_progress=show_progress,
        desc="features: SupCon MLP")
    c = embed(encoder, all_feats, device, precision)
    info = {"method": "feature-mlp", "sc_source": "supcon", **_training_set_info(train),
            "supcon": sc_info,
            "augmentation": {"dropout": cfg.feature_dropout, "noise_std": cfg.feature_noise}}
    return ExtractedFeatures(x=x, c=c, info=info)


def _training_set_info(train: SeenTrainingSet) -> dict:
    return {"n_train": int(train.rows.size), "n_seen_classes": int(train.seen_classes.size)}


def extract(data: ZSLData, cfg: FeaturesConfig, device: torch.device, *,
            precision: str = "fp32", show_progress: bool = True) -> ExtractedFeatures:
    """Dispatch on the dataset kind (images vs. precomputed features)."""
    if data.image_shape is not None:
        return extract_image_features(data, cfg, device, precision=precision,
                                      show_progress=show_progress)
    return extract_feature_dataset(data, cfg, device, precision=precision,
                                   show_progress=show_progress)
