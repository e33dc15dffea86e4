"""The U-Net of Ho et al. 2020 (the PixelCNN++-style backbone) with scale-shift time conditioning."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from horseshoe.models.layers import Downsample, ResBlock, SelfAttention, Upsample, timestep_embedding, zero_init


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the U-Net.

    Level l works at 1/(patch_size * 2^l) of the input size with base_channels * channel_mults[l]
    channels; attention_levels lists the levels whose residual blocks are followed by self-attention
    (for a 32x32 input and patch_size 1, level 1 is 16x16). The middle block always has attention.
    patch_size p > 1 folds each p x p patch into channels before the first convolution and unfolds
    after the last (pixel unshuffle / shuffle, lossless): the network then works at 1/p of the image
    size, p^2 times cheaper per level, as in Hoogeboom et al. 2023 ("simple diffusion").
    """

    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (1,)
    dropout: float = 0.0
    norm_groups: int = 32
    head_channels: int = 64
    patch_size: int = 1

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) not in (1, 2, 3, 4):
                raise ValueError(f"{name} must be 1, 2, 3 or 4, got {getattr(self, name)}")
        if self.base_channels < 1 or not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(
                f"base_channels and channel_mults must be positive, got {self.base_channels} and {self.channel_mults}"
            )
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        bad = [lvl for lvl in self.attention_levels if not 0 <= lvl < len(self.channel_mults)]
        if bad:
            raise ValueError(f"attention_levels {bad} out of range for {len(self.channel_mults)} levels")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for width in self.widths:
            if width % self.norm_groups:
                raise ValueError(f"norm_groups={self.norm_groups} does not divide the channel count {width}")
        if self.head_channels < 1:
            raise ValueError(f"head_channels must be >= 1, got {self.head_channels}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels at each level."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def size_divisor(self) -> int:
        """Height and width must be multiples of this: patch_size * 2^(levels-1)."""
        return self.patch_size * 2 ** (len(self.channel_mults) - 1)


class _Level(nn.Module):
    """The residual blocks of one level, each optionally followed by attention, then a resampler."""

    def __init__(self, blocks: list[ResBlock], attention: bool, resample: nn.Module, cfg: UNetConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(
            SelfAttention(b.conv1.out_channels, cfg.head_channels, cfg.norm_groups) if attention else nn.Identity()
            for b in blocks
        )
        self.resample = resample


class UNet(nn.Module):
    """eps/x0/v-predicting U-Net: forward(x_t (B, C, H, W), t (B,)) -> (B, C_out, H, W)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        emb_ch = 4 * cfg.base_channels
        g, p = cfg.norm_groups, cfg.dropout
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.base_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        p2 = cfg.patch_size**2
        self.conv_in = nn.Conv2d(cfg.in_channels * p2, cfg.base_channels, 3, padding=1)

        # Down path: every block output (and conv_in's, and each downsample's) is a skip connection.
        skip_chs, ch, last = [cfg.base_channels], cfg.base_channels, len(cfg.widths) - 1
        self.down = nn.ModuleList()
        for level, width in enumerate(cfg.widths):
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, width, emb_ch, p, g))
                ch = width
                skip_chs.append(ch)
            down = Downsample(ch) if level < last else nn.Identity()
            if level < last:
                skip_chs.append(ch)
            self.down.append(_Level(blocks, level in cfg.attention_levels, down, cfg))

        self.mid1 = ResBlock(ch, ch, emb_ch, p, g)
        self.mid_attn = SelfAttention(ch, cfg.head_channels, g)
        self.mid2 = ResBlock(ch, ch, emb_ch, p, g)

        # Up path: one more block per level than going down, each eating one skip connection.
        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.widths))):
            width = cfg.widths[level]
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(ch + skip_chs.pop(), width, emb_ch, p, g))
                ch = width
            up = Upsample(ch) if level > 0 else nn.Identity()
            self.up.append(_Level(blocks, level in cfg.attention_levels, up, cfg))
        assert not skip_chs

        self.norm_out = nn.GroupNorm(g, ch)
        self.conv_out = zero_init(nn.Conv2d(ch, cfg.out_channels * p2, 3, padding=1))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError naming the problem if x is not (B, in_channels, H, W) with H, W divisible."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"expected input of shape (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % cfg.size_divisor or w % cfg.size_divisor:
            raise ValueError(
                f"input size {h}x{w} is not divisible by {cfg.size_divisor} "
                f"(patch_size x 2^(levels-1) for patch size {cfg.patch_size} and {len(cfg.channel_mults)} levels)"
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if t.shape != (x.shape[0],):
            raise ValueError(f"expected t of shape ({x.shape[0]},), got {tuple(t.shape)}")
        # The embedding follows the weights' dtype, so a network cast to bf16 runs without autocast.
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(self.conv_in.weight.dtype))
        p = self.config.patch_size
        h = self.conv_in(F.pixel_unshuffle(x, p) if p > 1 else x)
        skips = [h]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(h, emb))
                skips.append(h)
            if not isinstance(level.resample, nn.Identity):
                h = level.resample(h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            h = level.resample(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(out, p) if p > 1 else out
