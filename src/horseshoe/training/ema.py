"""Exponential moving average of the weights, with its length set as a half-life in images.

Karras et al. 2022 (EDM): after each step of B images, ema <- beta ema + (1 - beta) theta with
beta = 0.5 ** (B / half_life). The same half-life in images gives the same averaging at any batch
size. Early in training the half-life is capped at warmup_ratio * images_seen, so the average does
not drag the random initial weights along.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A float32 copy of a model whose parameters trail the model's."""

    def __init__(self, model: nn.Module, half_life_images: float, warmup_ratio: float = 0.05) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.half_life_images = half_life_images
        self.warmup_ratio = warmup_ratio

    def beta(self, batch_images: int, images_seen: int) -> float:
        """The decay for one step of batch_images, after images_seen images in total (this step's included)."""
        half_life = self.half_life_images
        if self.warmup_ratio > 0:
            half_life = min(half_life, images_seen * self.warmup_ratio)
        return 0.5 ** (batch_images / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, batch_images: int, images_seen: int) -> None:
        """ema <- beta ema + (1 - beta) model, parameter by parameter; buffers are copied."""
        beta = self.beta(batch_images, images_seen)
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - beta)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)
