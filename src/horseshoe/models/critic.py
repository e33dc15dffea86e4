"""A small convolutional critic (discriminator) that tells training images from a few-step student's, for the
adversarial term of distillation (horseshoe.training.students).

SNGAN's recipe (Miyato et al. 2018): spectrally normalised 3x3 convolutions, LeakyReLU, strided halving down to
about 4x4, a sum over positions, then a linear score. It sees no class: on the four-direction horseshoes a critic
with SNGAN's class projection (Miyato & Koyama 2018) left the student as it was (2-step SWD 42.4 -> 41.2), and one
without it gave 25.4 and a class read right more often (docs/measurements/few-step.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Critic(nn.Module):
    """score(x): one number per image, high for training images. shape: (C, H, W). 16 channels at full size,
    doubling at each halving up to 128: about a quarter of the work of 32 to 256, and as good (few-step.md)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 16, max_width: int = 128) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x).sum(dim=(2, 3))).squeeze(1)  # a sum, as SNGAN's: every position counts
