"""Are the samples new? Nearest training images, and how near they are compared with the data itself.

For each sample: its nearest training image by L2 in pixel space, also against the flipped/turned
training images when training augmented with flips/turns (a mirrored copy is still a copy). The
distance is divided by the typical spacing of the data: the median, over training images, of the
distance to their own nearest other training image. A ratio below 1/3 marks a near-copy (the
threshold Carlini et al. 2023 used for memorised images, there relative to nearby neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NEAR_COPY_RATIO = 1 / 3


def variants(images: torch.Tensor, hflip: bool, vflip: bool, rot90: bool) -> torch.Tensor:
    """The images and their augmented versions, stacked (K, N, C, H, W)."""
    out = [images]
    if hflip:
        out.append(images.flip(-1))
    if vflip:
        out += [v.flip(-2) for v in list(out)]
    if rot90 and images.shape[-1] == images.shape[-2]:
        out += [torch.rot90(v, k, dims=(-2, -1)) for v in list(out) for k in (1, 2, 3)]
    return torch.stack(out)


def nearest(queries: torch.Tensor, candidates: torch.Tensor, exclude: torch.Tensor | None = None,
            chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query (N, D), the smallest L2 distance to candidates (K, M, D) and where that candidate
    lies: its flat index variant * M + image.

    exclude (N,), if given, is a candidate index per query to skip in all K variants (a training
    image is not its own neighbour).
    """
    k, m, _ = candidates.shape
    flat = candidates.reshape(k * m, -1)
    best_d, best_i = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk]
        d = torch.cdist(q, flat)  # (n, K*M)
        if exclude is not None:
            rows = torch.arange(q.shape[0])
            for variant in range(k):
                d[rows, variant * m + exclude[start:start + chunk]] = float("inf")
        value, index = d.min(dim=1)
        best_d.append(value)
        best_i.append(index)
    return torch.cat(best_d), torch.cat(best_i)


@dataclass(frozen=True)
class NoveltyResult:
    """Nearest-training-image distances of the samples, relative to the data's own spacing."""

    distances: np.ndarray  # per sample
    neighbours: np.ndarray  # index of each sample's nearest training image
    matched_variants: np.ndarray  # which variant of it was nearest (0: as is; the order of `variants`)
    ratios: np.ndarray  # distance / typical training-to-training nearest distance
    typical_spacing: float
    near_copy_fraction: float
    flips: tuple[bool, bool, bool] = (False, False, False)  # hflip, vflip, rot90 of the comparison

    @property
    def ratio_median(self) -> float:
        return float(np.median(self.ratios))

    @property
    def ratio_min(self) -> float:
        return float(self.ratios.min())

    def as_dict(self) -> dict:
        return {"nn_ratio_median": self.ratio_median, "nn_ratio_min": self.ratio_min,
                "near_copy_fraction": self.near_copy_fraction, "near_copy_threshold": NEAR_COPY_RATIO,
                "typical_train_spacing_l2": self.typical_spacing, "samples": int(len(self.ratios))}


def novelty(samples: torch.Tensor, training: torch.Tensor, hflip: bool = False, vflip: bool = False,
            rot90: bool = False, spacing_queries: int = 1000, seed: int = 0) -> NoveltyResult:
    """Compare samples (N, C, H, W) with training images (M, C, H, W), both float in [-1, 1]."""
    if training.shape[0] < 2:
        raise ValueError("novelty needs at least 2 training images to measure their spacing")
    train = training.float().flatten(1)
    candidates = variants(training.float(), hflip, vflip, rot90).flatten(2)
    dist, where = nearest(samples.float().flatten(1), candidates)
    variant, index = where // train.shape[0], where % train.shape[0]
    # Typical spacing: a random subset of training images against all training images.
    rng = np.random.default_rng(seed)
    subset = torch.from_numpy(rng.choice(train.shape[0], min(spacing_queries, train.shape[0]), replace=False))
    spacing_d, _ = nearest(train[subset], candidates, exclude=subset)
    spacing = float(spacing_d.median())
    ratios = (dist / max(spacing, 1e-12)).numpy()
    return NoveltyResult(distances=dist.numpy(), neighbours=index.numpy(), matched_variants=variant.numpy(),
                         ratios=ratios, typical_spacing=spacing,
                         near_copy_fraction=float((ratios < NEAR_COPY_RATIO).mean()), flips=(hflip, vflip, rot90))


def most_copied(result: NoveltyResult, count: int) -> np.ndarray:
    """Indices of the `count` samples nearest to a training image relative to the spacing, nearest first."""
    return np.argsort(result.ratios, kind="stable")[:count]


def matched_images(training: torch.Tensor, result: NoveltyResult, indices: np.ndarray) -> torch.Tensor:
    """The training images nearest to samples `indices`, flipped or turned the way they matched: a mirrored
    copy shown beside its sample looks like the copy it is."""
    picked = variants(training[torch.as_tensor(result.neighbours[indices])], *result.flips)  # (K, n, C, H, W)
    return picked[torch.as_tensor(result.matched_variants[indices]), torch.arange(len(indices))]
