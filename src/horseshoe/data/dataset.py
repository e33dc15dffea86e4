"""What to train on: the built-in horseshoes or a folder, built from the data section."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import torch

from horseshoe.data import horseshoes
from horseshoe.data.config import DataConfig
from horseshoe.data.folder import ImageFolder
from horseshoe.data.transforms import parse_colour, to_model_range


class Dataset(Protocol):
    """What the loader needs: batches of uint8 (N, H, W, C), and a length unless the dataset is endless."""

    @property
    def endless(self) -> bool: ...

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray) -> np.ndarray: ...


def _match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, 1 or 3) -> (N, H, W, channels): grey to colour by repetition, colour to grey by luma."""
    have = images.shape[-1]
    if have == 1 and channels > 1:
        images = np.repeat(images, 3, axis=-1)
    elif have == 3 and channels == 1:
        luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.round(luma)[..., None].astype(np.uint8)
    if channels == 4:
        images = np.concatenate([images, np.full(images.shape[:-1] + (1,), 255, np.uint8)], axis=-1)
    return images


class Horseshoes:
    """The built-in horseshoes: `count` fixed images rendered once, or an endless stream (count=None)."""

    def __init__(self, config: DataConfig, render_batch: int = 512) -> None:
        self.config = config
        self.count = config.count
        self.images = None
        if self.count is not None:
            self.images = np.concatenate([self._render(np.arange(i, min(i + render_batch, self.count)))
                                          for i in range(0, self.count, render_batch)])

    def _render(self, indices: np.ndarray) -> np.ndarray:
        c = self.config
        return _match_channels(horseshoes.render(c.seed, indices, c.height, c.style, c.rotation), c.channels)

    @property
    def endless(self) -> bool:
        return self.count is None

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("an endless horseshoe stream has no length")
        return self.count

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices] if self.images is not None else self._render(indices)


def build_dataset(config: DataConfig) -> Horseshoes | ImageFolder:
    """The dataset a DataConfig describes."""
    if config.path is None:
        return Horseshoes(config)
    return ImageFolder(config.path, (config.height, config.width), config.channels, config.fit,
                       parse_colour(config.background), config.skip_bad, config.memory_budget_mb * 2**20)


def first_images(config: DataConfig, count: int) -> np.ndarray:
    """The first `count` images the data section describes (all when it has fewer), uint8 (N, H, W, C)."""
    if config.path is None and config.count is not None:
        config = dataclasses.replace(config, count=min(count, config.count))  # render only what is asked for
    dataset = build_dataset(config)
    n = count if dataset.endless else min(count, len(dataset))
    return dataset.get_batch(np.arange(n))


def builtin_images(config: DataConfig, start: int, count: int) -> torch.Tensor:
    """Built-in horseshoes start .. start+count-1 of the endless stream with these data settings, in [-1, 1]."""
    stream = Horseshoes(dataclasses.replace(config, count=None))
    return to_model_range(stream.get_batch(np.arange(start, start + count)))


def subset_images(dataset: Dataset, limit: int, seed: int) -> torch.Tensor:
    """All of a finite dataset's images in [-1, 1], or a seeded choice of `limit` of them when it has more."""
    n = len(dataset)
    indices = np.arange(n) if n <= limit else np.random.default_rng(seed).choice(n, limit, replace=False)
    return to_model_range(dataset.get_batch(indices))


def training_images(config: DataConfig, limit: int, seed: int) -> torch.Tensor:
    """Up to `limit` images of the training data in [-1, 1] (a seeded subset when there are more)."""
    if config.path is None:
        return builtin_images(config, 0, limit if config.count is None else min(limit, config.count))
    return subset_images(build_dataset(config), limit, seed)
