"""Networks of the feature-extraction stage (METHOD.md 1.4, CPU-sized).

* :class:`ImageBackbone` - a small CNN for low-resolution images (e.g. 1 x 28 x 28): a few
  conv-BN-ReLU blocks with 2x2 max-pooling between them, global average pooling, then a
  Linear-BN-ReLU embedding of width ``feature_dim``.  Its output plays the role of the
  ResNet-101 avg-pool feature of ZeroDiff (x from the CE-trained copy, c from the
  SupCon-trained copy).
* :class:`FeatureEncoder` - the METHOD.md 1.4 [PROPOSAL] fallback for datasets that ship
  features instead of images: Linear-BN-ReLU-Linear in feature space, output = c.
* :class:`ProjectionHead` - the MLP that maps an embedding to the (L2-normalised) space in
  which the supervised contrastive loss is computed; discarded after training.
* :class:`Classifier` - backbone + linear head for cross-entropy training.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Channel widths of the conv blocks (28 -> 14 -> 7 -> 3 pixels for 28x28 inputs).  Chosen on
# the animals data (5,600 seen 28x28 training images, default params) for CPU cost: about a
# third of the single-thread time of (32, 64, 128) with 28x28 / 14x14 / 7x7 maps, and equal
# or better nearest-class-mean accuracy of the extracted features on test_seen.
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ImageBackbone(nn.Module):
    """CNN image encoder: (B, C, H, W) -> (B, feature_dim) non-negative embeddings.

    Block i is conv3x3-BN-ReLU with ``widths[i]`` channels; every block but the last is
    followed by 2x2 max-pooling (28 -> 14 -> 7 -> 3 for four blocks).  Global average pooling
    and a Linear-BN-ReLU layer give the embedding (post-ReLU like a ResNet avg-pool feature).
    """

    def __init__(self, in_channels: int, feature_dim: int,
                 widths: Sequence[int] = DEFAULT_WIDTHS):
        super().__init__()
        if not widths:
            raise ValueError("ImageBackbone needs at least one conv block")
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(widths):
            layers.append(_conv_block(prev, width))
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = width
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Sequential(
            nn.Linear(prev, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.conv(images)
        h = h.mean(dim=(2, 3))          # global average pooling
        return self.embed(h)


class FeatureEncoder(nn.Module):
    """Feature-space SC encoder (METHOD.md 1.4 fallback): Linear-BN-ReLU-Linear, D -> out_dim."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.feature_dim = out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ProjectionHead(nn.Module):
    """Embedding -> L2-normalised projection used only by the SupCon loss (Khosla et al.)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, in_dim),
            nn.ReLU(inplace=True),
            nn.Linear(in_dim, out_dim),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(embedding), dim=1)


class Classifier(nn.Module):
    """Backbone followed by a linear layer over the seen classes (CE fine-tuning, METHOD.md 1.4)."""

    def __init__(self, backbone: nn.Module, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.feature_dim, n_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(inputs))


class ContrastiveModel(nn.Module):
    """Encoder + projection head; ``forward`` returns the normalised projections."""

    def __init__(self, encoder: nn.Module, projection_dim: int):
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.feature_dim, projection_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(inputs))
