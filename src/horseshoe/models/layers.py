"""Building blocks of the U-Net: time embedding, residual block, self-attention, resampling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps into (B, dim), as in Transformer positions (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so that the branch it ends starts as the identity's complement."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the time embedding as a per-channel scale and shift.

    h = conv1(silu(norm1(x))); h = conv2(dropout(silu(norm2(h) * (1 + scale) + shift))); out = skip(x) + h
    (the scale-shift form of improved-diffusion / BigGAN's conditional norm).
    """

    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_ch, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(self.dropout(h))
        return self.skip(x) + h


# Up to this many positions (32x32 feature maps), bf16 attention on CPU goes through two batched
# matmuls: the B * heads * L^2 weights are at most ~128 MB there (B = 64, one head).
CPU_MATMUL_ATTENTION_MAX_LEN = 1024


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (..., L, d) tensors (Vaswani et al. 2017, Eq. 1).

    In bf16 on CPU, PyTorch's fused kernel (flash attention) is 1.6-4x slower than two bf16 matmuls
    for the short sequences of a small U-Net, forward and backward (measured at B=64, L=16-1024,
    d=32-128). In float32 the two are even and on GPUs the fused kernels win, so those, and longer
    sequences, take the fused kernel, which never holds the L x L weights.
    """
    if q.device.type != "cpu" or q.dtype != torch.bfloat16 or q.shape[-2] > CPU_MATMUL_ATTENTION_MAX_LEN:
        return F.scaled_dot_product_attention(q, k, v)
    weights = torch.matmul(q, k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # in place: no copy of q kept
    return torch.matmul(weights.softmax(dim=-1), v)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual (see `attention`).

    Works on (B, HW, C) tokens with linear projections so that q, k and v keep the head dimension
    contiguous, as the fused (flash) kernels need.
    """

    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_init(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        qkv = self.qkv(tokens).view(b, h * w, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, HW, d) each, d contiguous
        out = attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Halve height and width with a stride-2 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double height and width: nearest-neighbour repeat, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
