"""A small convolutional critic (discriminator) that tells training images from a few-step student's, for the
adversarial term of distillation (horseshoe.training.students).

SNGAN's recipe (Miyato et al. 2018): spectrally normalised 3x3 convolutions, LeakyReLU, strided halving down to
about 4x4, a sum over positions, then a linear score; with classes, the projection term <embed(y), h> of Miyato &
Koyama 2018, so that the critic also judges whether an image is of its class.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from horseshoe.models.unet import NO_CLASS


class Critic(nn.Module):
    """score(x, y): one number per image, high for training images. shape: (C, H, W); classes: 0 for none."""

    def __init__(self, shape: tuple[int, int, int], classes: int = 0, width: int = 16, max_width: int = 128) -> None:
        super().__init__()
        channels, height, width_px = shape
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, width, 3, padding=1)), nn.LeakyReLU(0.2)]
        size, ch = min(height, width_px), width
        while size > 4:
            out = min(2 * ch, max_width)
            layers += [spectral_norm(nn.Conv2d(ch, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
                       spectral_norm(nn.Conv2d(out, out, 3, padding=1)), nn.LeakyReLU(0.2)]
            size, ch = (size + 1) // 2, out
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(ch, 1))
        self.embed = spectral_norm(nn.Embedding(classes, ch)) if classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))  # (B, ch): a sum, as in SNGAN, so every position counts
        out = self.score(h).squeeze(1)
        if self.embed is not None and labels is not None:
            has = labels != NO_CLASS
            projection = (self.embed(labels.clamp(min=0)) * h).sum(1)
            out = out + torch.where(has, projection, torch.zeros_like(projection))
        return out
