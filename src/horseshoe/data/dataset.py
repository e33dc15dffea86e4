"""What to train on: the data config, the built-in horseshoes, and building either dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from horseshoe.data import horseshoes
from horseshoe.data.folder import ImageFolder
from horseshoe.data.transforms import FITS, parse_colour


@dataclass(frozen=True)
class DataConfig:
    """The data section of the config.

    path: a folder of images, or None for the built-in horseshoes. image_size: side of square
    images, or [height, width]. count: how many horseshoes (None: an endless stream of new ones).
    """

    path: str | None = None
    image_size: int | tuple[int, int] = 32
    channels: int = 1
    fit: str = "pad"
    background: str = "black"
    hflip: bool = True
    vflip: bool = False
    rot90: bool = False
    skip_bad: bool = False
    memory_budget_mb: int = 2048
    count: int | None = 10_000
    style: str = "silhouette"
    rotation: str = "updown"
    seed: int = 0

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, (list, tuple)):
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"data.image_size must be an integer or [height, width], got {list(size)}")
            object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        elif size < 1:
            raise ValueError(f"data.image_size must be positive, got {size}")
        if self.channels not in (1, 3, 4):
            raise ValueError(f"data.channels must be 1, 3 or 4, got {self.channels}")
        if self.fit not in FITS:
            raise ValueError(f"data.fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        parse_colour(self.background)
        if self.count is not None and self.count < 1:
            raise ValueError(f"data.count must be positive (or omitted for an endless stream), got {self.count}")
        if self.style not in horseshoes.STYLES:
            raise ValueError(f"data.style must be one of {', '.join(horseshoes.STYLES)}, got {self.style!r}")
        if self.rotation not in horseshoes.ROTATIONS:
            raise ValueError(f"data.rotation must be one of {', '.join(horseshoes.ROTATIONS)}, got {self.rotation!r}")
        if self.path is None and self.height != self.width:
            raise ValueError(f"built-in horseshoes are square; got data.image_size={list(self.image_size)}")

    @property
    def height(self) -> int:
        return self.image_size[0] if isinstance(self.image_size, tuple) else self.image_size

    @property
    def width(self) -> int:
        return self.image_size[1] if isinstance(self.image_size, tuple) else self.image_size

    @property
    def is_builtin_silhouette(self) -> bool:
        """The built-in one-channel horseshoe silhouettes: the data metrics.shape can check samples against."""
        return self.path is None and self.style == "silhouette" and self.channels == 1


class Dataset(Protocol):
    """What the loader needs: a length (None for an endless stream) and batches of uint8 (N, H, W, C)."""

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
