"""The U-Net of Ho et al. 2020 (the PixelCNN++-style backbone) with scale-shift time conditioning,
and optionally a class: a learned embedding added to the time embedding (Dhariwal & Nichol 2021, ADM;
diffusers' num_class_embeds), with one extra entry for "no class" (label NO_CLASS = -1), so that one
network is both conditional and unconditional (Ho & Salimans 2022). A network trained with non-leaking
augmentation is also told the augmentation's parameters, through a linear map added there too
(Karras et al. 2022, EDM, Appendix C.4: augment_dim)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from horseshoe.models.layers import Downsample, ResBlock, SelfAttention, Upsample, timestep_embedding, zero_init

NO_CLASS = -1  # the label of an image without a class: the unconditional half of classifier-free guidance


@dataclass(frozen=True)
class UNetConfig:
    """The model section: the U-Net's architecture; its image channels and size come from the data.

    Level l works at 1/(patch_size * 2^l) of the input size with base_channels * channel_mults[l]
    channels. attention_resolutions lists feature-map sizes (of the smaller image side) whose
    residual blocks are followed by self-attention; the middle block always has it. patch_size p > 1
    folds each p x p patch into channels before the first convolution and unfolds after the last
    (pixel unshuffle / shuffle, lossless): the network then works at 1/p of the image size, p^2
    times cheaper per level, as in Hoogeboom et al. 2023 ("simple diffusion"). num_classes > 0 adds
    a class embedding (training sets it from the data's classes; 0: unconditional). The defaults are
    the demo's, measured on a 2-core CPU (docs/tuning.md): widths 64-128-128, attention in the middle only.
    augment_dim > 0 adds a bias-free linear map of that many augmentation parameters (training sets
    it when data.augment_p > 0; 0: none). class_embed_std scales the class rows' N(0, 1) start (1: as
    ADM and nn.Embedding, rows about twice the time embedding's length; 0: every class, and no class,
    starts as the time embedding alone, and AdamW grows them too slowly for a short run). None (auto):
    training sets it from the number of classes (recipe.with_class_recipe): 0.3 for a few, which tells
    them apart from the first step without drowning the time embedding (docs/measurements/classes.md),
    1 for many (docs/measurements/many-classes.md); a network built outside training takes 1.
    """

    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    norm_groups: int = 32
    head_channels: int = 64
    patch_size: int = 2
    num_classes: int = 0
    augment_dim: int = 0
    class_embed_std: float | None = None

    def __post_init__(self) -> None:
        if self.base_channels < 1 or not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"model.base_channels and model.channel_mults must be positive, "
                             f"got {self.base_channels} and {list(self.channel_mults)}")
        if self.num_res_blocks < 1:
            raise ValueError(f"model.num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        for width in self.widths:
            if self.norm_groups < 1 or width % self.norm_groups:
                raise ValueError(f"model.norm_groups={self.norm_groups} does not divide the channel count {width}")
        if self.head_channels < 1:
            raise ValueError(f"model.head_channels must be >= 1, got {self.head_channels}")
        if self.patch_size < 1:
            raise ValueError(f"model.patch_size must be >= 1, got {self.patch_size}")
        if self.num_classes < 0:
            raise ValueError(f"model.num_classes must be >= 0 (0: no classes), got {self.num_classes}")
        if self.augment_dim < 0:
            raise ValueError(f"model.augment_dim must be >= 0 (0: no augmentation input), got {self.augment_dim}")
        if self.class_embed_std is not None and not self.class_embed_std >= 0:
            raise ValueError(f"model.class_embed_std must be >= 0, got {self.class_embed_std}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels at each level."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def size_divisor(self) -> int:
        """Height and width must be multiples of this: patch_size * 2^(levels-1)."""
        return self.patch_size * 2 ** (len(self.channel_mults) - 1)

    def check_size(self, height: int, width: int) -> None:
        """A one-line error unless height and width divide by size_divisor."""
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(f"image size {height}x{width} is not divisible by {self.size_divisor} "
                             f"(model.patch_size x 2^(levels-1) for {len(self.channel_mults)} levels)")

    def attention_levels(self, height: int, width: int) -> tuple[int, ...]:
        """The levels whose feature maps (smaller side) have one of the attention_resolutions."""
        side = min(height, width) // self.patch_size
        sizes = [side // 2**level for level in range(len(self.channel_mults))]
        for res in self.attention_resolutions:
            if res not in sizes:
                raise ValueError(f"model.attention_resolutions: {res} is not a feature-map size of this U-Net "
                                 f"(sizes {sizes} for {height}x{width} images)")
        return tuple(sizes.index(res) for res in self.attention_resolutions)


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
    """eps/x0/v-predicting U-Net: forward(x_t (B, C, H, W), t (B,), labels (B,) or None, augment (B, augment_dim)
    or None) -> (B, C, H, W).

    image_shape (C, H, W) fixes the channels in and out and where attention_resolutions fall.
    """

    def __init__(self, config: UNetConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = cfg = config
        channels, height, width = image_shape
        if channels not in (1, 2, 3, 4):
            raise ValueError(f"image channels must be 1, 2, 3 or 4, got {channels}")
        cfg.check_size(height, width)
        self.image_shape = (channels, height, width)
        attention_levels = cfg.attention_levels(height, width)
        emb_ch = 4 * cfg.base_channels
        g, p = cfg.norm_groups, cfg.dropout
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.base_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        p2 = cfg.patch_size**2
        self.conv_in = nn.Conv2d(channels * p2, cfg.base_channels, 3, padding=1)

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
            self.down.append(_Level(blocks, level in attention_levels, down, cfg))

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
            self.up.append(_Level(blocks, level in attention_levels, up, cfg))
        assert not skip_chs

        self.norm_out = nn.GroupNorm(g, ch)
        self.conv_out = zero_init(nn.Conv2d(ch, channels * p2, 3, padding=1))
        # Made last, so every other weight is initialised as in an unconditional network of the same seed.
        # Row num_classes is "no class"; N(0, 1) rows (ADM's and diffusers' nn.Embedding), scaled below.
        self.class_embed = nn.Embedding(cfg.num_classes + 1, emb_ch) if cfg.num_classes else None
        if self.class_embed is not None:  # scaled after drawing, so the random stream is the same for any std
            with torch.no_grad():
                self.class_embed.weight.mul_(1.0 if cfg.class_embed_std is None else cfg.class_embed_std)
        # After the class embedding, for the same reason. Bias-free, so the zero vector (no augmentation,
        # as at sampling) adds exactly nothing; zero at the start (made without drawing random numbers,
        # so dropout draws as without it), so a fresh network ignores the augmentation at first.
        self.augment_embed = (zero_init(nn.utils.skip_init(nn.Linear, cfg.augment_dim, emb_ch, bias=False))
                              if cfg.augment_dim else None)

    def check_input(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                    augment: torch.Tensor | None = None) -> None:
        """Raise ValueError naming the problem if x is not (B, C, H, W) with H, W divisible, t not (B,),
        labels not (B,) integers for a network with classes, or augment not (B, augment_dim)."""
        cfg, channels = self.config, self.image_shape[0]
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"expected input of shape (B, {channels}, H, W), got {tuple(x.shape)}")
        cfg.check_size(*x.shape[-2:])
        if t.shape != (x.shape[0],):
            raise ValueError(f"expected t of shape ({x.shape[0]},), got {tuple(t.shape)}")
        if augment is not None and not cfg.augment_dim:
            raise ValueError("this network takes no augmentation (model.augment_dim = 0); pass augment=None")
        if augment is not None and augment.shape != (x.shape[0], cfg.augment_dim):
            raise ValueError(f"expected augment of shape ({x.shape[0]}, {cfg.augment_dim}), got {tuple(augment.shape)}")
        if labels is None:
            return
        if not cfg.num_classes:
            raise ValueError("this network has no classes (model.num_classes = 0); pass labels=None")
        # Their values are not read here (that would wait for the device every call): an index out of
        # 0..num_classes-1 and NO_CLASS fails in the embedding.
        if labels.shape != (x.shape[0],) or labels.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"expected integer labels of shape ({x.shape[0]},), got {labels.dtype} "
                             f"{tuple(labels.shape)}")

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None = None,
              augment: torch.Tensor | None = None) -> torch.Tensor:
        """The one conditioning vector every residual block reads: (B,) timesteps, classes and augmentation
        parameters -> (B, 4 base_channels).

        The class embedding is added to the time embedding (ADM's label_emb); labels None, or NO_CLASS
        entries, read the "no class" row. The augmentation's linear map is added too (EDM's map_augment);
        augment None means no augmentation, the zero vector, which adds nothing: how samples are drawn.
        """
        # The embedding follows the weights' dtype, so a network cast to bf16 runs without autocast.
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(self.conv_in.weight.dtype))
        if self.class_embed is not None:
            no_class = self.config.num_classes
            rows = torch.full_like(t, no_class) if labels is None else torch.where(labels == NO_CLASS, no_class,
                                                                                    labels)
            emb = emb + self.class_embed(rows.to(device=emb.device, dtype=torch.int64)).to(emb.dtype)
        if self.augment_embed is not None and augment is not None:
            emb = emb + self.augment_embed(augment.to(device=emb.device, dtype=emb.dtype)).to(emb.dtype)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                augment: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x, t, labels, augment)
        emb = self.embed(t, labels, augment)
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
