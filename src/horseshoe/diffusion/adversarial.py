"""The hinge adversarial losses (Lim & Ye 2017; SNGAN, BigGAN) that a few-step student may add to its distillation
loss (horseshoe.training.students): a critic scores training images high and the student's images low, and the
student is pushed towards images the critic scores high. Against a critic of the data itself, this is what lets a
student of the teacher's deterministic ODE land nearer the data than that ODE does (Kim et al. 2023, CTM;
Sauer et al. 2023, ADD)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(real))] + E[max(0, 1 + D(fake))], of the critic's scores."""
    return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(fake)]: the student's share of the hinge game."""
    return -fake.float().mean()
