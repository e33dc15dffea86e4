"""Sliced Wasserstein distance between two image sets on Laplacian-pyramid patches.

The recipe of Karras et al. 2018 (ProGAN, Sec. 5 and their sliced_wasserstein.py): build a Laplacian
pyramid of every image down to 16x16; at each level draw 128 random 7x7 neighbourhoods per image
(all channels); normalise each channel of the descriptors; project both sets on 512 random unit
directions (4 repeats of 128), sort the projections and average |difference|. Reported x1e3 per
level (the finest first) and as their mean.

Two deviations, on purpose. Both sets are normalised with the *reference* set's per-channel mean
and standard deviation: ProGAN normalised each set by its own, which hides a global brightness or
contrast shift. And both sets draw their patches at the same positions and are projected on the
same directions (common random numbers): a set against itself then scores exactly 0, and
comparisons between sets or samplers carry much less sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NEIGHBOURHOOD = 7
PER_IMAGE = 128
DIRECTIONS = 512
MIN_RESOLUTION = 16

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The 5x5 binomial filter of cv2.pyrDown / pyrUp, reflect-padded, per channel."""
    c = x.shape[1]
    k = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x.dtype).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def laplacian_pyramid(images: torch.Tensor, min_resolution: int = MIN_RESOLUTION) -> list[torch.Tensor]:
    """Laplacian levels from full size down, the last one the Gaussian level at >= min_resolution."""
    levels, current = [], images
    while min(current.shape[-2:]) // 2 >= min_resolution and min(current.shape[-2:]) % 2 == 0:
        down = _blur(current)[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down * 4.0  # zero-insertion upsampling, then the same blur (cv2.pyrUp)
        levels.append(current - _blur(up))
        current = down
    levels.append(current)
    return levels


def patch_descriptors(level: torch.Tensor, per_image: int, rng: np.random.Generator) -> torch.Tensor:
    """per_image random 7x7 neighbourhoods (all channels) from each image: (N * per_image, C, 7, 7)."""
    n, c, h, w = level.shape
    half = NEIGHBOURHOOD // 2
    if h < NEIGHBOURHOOD or w < NEIGHBOURHOOD:
        raise ValueError(f"images of {h}x{w} are too small for {NEIGHBOURHOOD}x{NEIGHBOURHOOD} neighbourhoods")
    ys = torch.from_numpy(rng.integers(half, h - half, size=(n, per_image)))
    xs = torch.from_numpy(rng.integers(half, w - half, size=(n, per_image)))
    offsets = torch.arange(-half, half + 1)
    rows = (ys[..., None] + offsets)[..., :, None].expand(n, per_image, NEIGHBOURHOOD, NEIGHBOURHOOD)
    cols = (xs[..., None] + offsets)[..., None, :].expand(n, per_image, NEIGHBOURHOOD, NEIGHBOURHOOD)
    image = torch.arange(n)[:, None, None, None].expand_as(rows)
    patches = level.permute(0, 2, 3, 1)[image, rows, cols]  # (N, P, 7, 7, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(n * per_image, c, NEIGHBOURHOOD, NEIGHBOURHOOD)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein distance between the projections."""
    if a.shape[0] != b.shape[0]:  # compare equal-size sets: subsample the larger
        n = min(a.shape[0], b.shape[0])
        a = a[torch.from_numpy(rng.choice(a.shape[0], n, replace=False))]
        b = b[torch.from_numpy(rng.choice(b.shape[0], n, replace=False))]
    results = []
    for _ in range(directions // 128):
        dirs = torch.from_numpy(rng.standard_normal((a.shape[1], 128)))
        dirs /= dirs.norm(dim=0, keepdim=True)
        proj_a, _ = torch.sort(a @ dirs, dim=0)
        proj_b, _ = torch.sort(b @ dirs, dim=0)
        results.append((proj_a - proj_b).abs().mean().item())
    return float(np.mean(results))


@dataclass(frozen=True)
class SWDResult:
    """SWD x1e3 per pyramid level (finest first, keyed by resolution) and their mean."""

    levels: dict[str, float]
    mean: float
    samples: int
    reference: int
    seed: int

    def as_dict(self) -> dict:
        return {"swd_x1e3_per_level": self.levels, "swd_x1e3_mean": self.mean, "samples": self.samples,
                "reference_images": self.reference, "seed": self.seed}


class SWDReference:
    """A reference set's pyramid descriptors and per-level normalisation, computed once and reused."""

    def __init__(self, images: torch.Tensor, seed: int = 0, per_image: int = PER_IMAGE) -> None:
        """images: float (N, C, H, W) in [-1, 1]."""
        self.seed, self.per_image, self.count = seed, per_image, images.shape[0]
        positions = np.random.default_rng([seed, 1])  # the same stream places the compared set's patches
        self.descriptors, self.stats, self.resolutions = [], [], []
        for level in laplacian_pyramid(images.double()):
            d = patch_descriptors(level, per_image, positions)
            mean, std = d.mean(dim=(0, 2, 3), keepdim=True), d.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
            self.stats.append((mean, std))
            self.descriptors.append(((d - mean) / std).flatten(1))
            self.resolutions.append(f"{level.shape[-2]}x{level.shape[-1]}")

    def distance(self, images: torch.Tensor) -> SWDResult:
        """SWD between `images` (float (N, C, H, W) in [-1, 1]) and the reference, x1e3."""
        positions, projections = np.random.default_rng([self.seed, 1]), np.random.default_rng([self.seed, 2])
        levels = laplacian_pyramid(images.double())
        if len(levels) != len(self.descriptors):
            raise ValueError(f"images of {tuple(images.shape[-2:])} do not match the reference's pyramid")
        values = {}
        for level, ref, (mean, std), name in zip(levels, self.descriptors, self.stats, self.resolutions, strict=True):
            d = ((patch_descriptors(level, self.per_image, positions) - mean) / std).flatten(1)
            values[name] = 1e3 * sliced_wasserstein(d, ref, DIRECTIONS, projections)
        return SWDResult(levels=values, mean=float(np.mean(list(values.values()))), samples=images.shape[0],
                         reference=self.count, seed=self.seed)


def swd(images: torch.Tensor, reference: torch.Tensor, seed: int = 0) -> SWDResult:
    """Sliced Wasserstein distance x1e3 between two image sets (float (N, C, H, W) in [-1, 1])."""
    return SWDReference(reference, seed).distance(images)
