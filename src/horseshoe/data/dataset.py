"""What to train on: the built-in horseshoes or a folder, built from the data section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from horseshoe.data import horseshoes, shapes
from horseshoe.data.config import DataConfig
from horseshoe.data.folder import ImageFolder, load_image
from horseshoe.data.transforms import Augmentation, parse_colour, to_model_range


class Dataset(Protocol):
    """What the loader needs: batches of uint8 (N, H, W, C), and a length unless the dataset is endless.

    A labelled dataset has class names (`classes`, empty when unlabelled), the class index of each
    image, and says what flipping or turning an image does to its class.
    """

    classes: tuple[str, ...]

    @property
    def endless(self) -> bool: ...

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray) -> np.ndarray: ...

    def get_labels(self, indices: np.ndarray) -> np.ndarray: ...

    def augmented_labels(self, labels: np.ndarray, augmentation: Augmentation) -> np.ndarray: ...


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


class Rendered:
    """A built-in set drawn from a seed: `count` images rendered once (`images`), or, for the endless stream
    (count None), each batch rendered when asked for. Subclasses render with `_render_images` and name
    themselves in `kind`."""

    kind = "built-in"
    count: int | None
    images: np.ndarray | None

    def _render_images(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def endless(self) -> bool:
        return self.count is None

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError(f"an endless {self.kind} stream has no length")
        return self.count

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices] if self.images is not None else self._render_images(indices)


class Horseshoes(Rendered):
    """The built-in horseshoes: `count` fixed images rendered once, or an endless stream (count=None).

    With rotation 'four' (and data.labels 'auto') they are labelled by the direction they open to;
    a flip or a quarter turn changes that direction, and the label follows it.
    """

    kind = "horseshoe"

    def __init__(self, config: DataConfig, render_batch: int = 512) -> None:
        self.config = config
        self.count = config.count
        self.classes = horseshoes.DIRECTIONS if config.rotation == "four" and config.labels == "auto" else ()
        self.images, self.labels = None, None
        if self.count is not None:
            parts = [self._render(np.arange(i, min(i + render_batch, self.count)))
                     for i in range(0, self.count, render_batch)]
            self.images = np.concatenate([images for images, _ in parts])
            self.labels = np.concatenate([labels for _, labels in parts])

    def _render(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        images, labels = horseshoes.render_labelled(c.seed, indices, c.height, c.style, c.rotation)
        return _match_channels(images, c.channels), labels

    def _render_images(self, indices: np.ndarray) -> np.ndarray:
        return self._render(indices)[0]

    def get_labels(self, indices: np.ndarray) -> np.ndarray:
        """Class indices (int64, into DIRECTIONS) of the given shoes."""
        if not self.classes:
            raise TypeError("these horseshoes are unlabelled (labels need data.rotation='four')")
        if self.labels is not None:
            return self.labels[indices]
        return horseshoes.directions(self.config.seed, indices, self.config.rotation)

    def augmented_labels(self, labels: np.ndarray, augmentation: Augmentation) -> np.ndarray:
        """A mirror swaps left and right (or up and down), a quarter turn moves every direction on."""
        a = augmentation
        return horseshoes.flipped_directions(labels, a.hflip.numpy(), a.vflip.numpy(), a.turns.numpy())


class Shapes(Rendered):
    """The built-in many-class silhouettes (data.shapes): `count` images rendered once, or an endless stream.

    Labelled by class unless data.labels is 'none'; flips and turns keep the class (a mirrored key is a key).
    """

    kind = "shape"

    def __init__(self, config: DataConfig) -> None:
        self.config, self.count = config, config.count
        self.classes = shapes.CLASSES if config.labels == "auto" else ()
        self.images = None if self.count is None else self._render_images(np.arange(self.count))

    def _render_images(self, indices: np.ndarray) -> np.ndarray:
        images, _ = shapes.render_labelled(self.config.seed, indices, self.config.height)
        return _match_channels(images, self.config.channels)

    def get_labels(self, indices: np.ndarray) -> np.ndarray:
        """Class indices (int64, into shapes.CLASSES)."""
        if not self.classes:
            raise TypeError("these shapes are unlabelled (data.labels is 'none')")
        return shapes.class_of(indices)

    def augmented_labels(self, labels: np.ndarray, augmentation: Augmentation) -> np.ndarray:
        return labels


def builtin_dataset(config: DataConfig) -> Horseshoes | Shapes:
    """The built-in set data.builtin names, with the data section's count (None: endless)."""
    return Shapes(config) if config.builtin == "shapes" else Horseshoes(config)


def build_dataset(config: DataConfig) -> Horseshoes | Shapes | ImageFolder:
    """The dataset a DataConfig describes."""
    if config.path is None:
        return builtin_dataset(config)
    return ImageFolder(config.path, (config.height, config.width), config.channels, config.fit,
                       parse_colour(config.background), config.skip_bad, config.memory_budget_mb * 2**20,
                       config.labels)


def first_labelled(config: DataConfig, count: int) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """The first `count` images the data section describes (all when it has fewer), uint8 (N, H, W, C),
    with their class indices and the class names (None and () without classes)."""
    if config.path is None and config.count is not None:
        config = dataclasses.replace(config, count=min(count, config.count))  # render only what is asked for
    dataset = build_dataset(config)
    indices = np.arange(count if dataset.endless else min(count, len(dataset)))
    labels = dataset.get_labels(indices) if dataset.classes else None
    return dataset.get_batch(indices), labels, tuple(dataset.classes)


def load_like_training(path: str | Path, config: DataConfig) -> np.ndarray:
    """One image file converted and fitted as the training images are: uint8 (H, W, C); errors name the file."""
    return load_image(Path(path), (config.height, config.width), config.channels, config.fit,
                      parse_colour(config.background))[0]


def first_images(config: DataConfig, count: int) -> np.ndarray:
    """The first `count` images the data section describes (all when it has fewer), uint8 (N, H, W, C)."""
    return first_labelled(config, count)[0]


def class_counts(dataset: Dataset) -> dict[str, int | None]:
    """Images per class name ({} without classes; None per class for an endless stream, which has no count)."""
    if not dataset.classes:
        return {}
    if dataset.endless:
        return {name: None for name in dataset.classes}
    counts = np.bincount(dataset.get_labels(np.arange(len(dataset))), minlength=len(dataset.classes))
    return {name: int(n) for name, n in zip(dataset.classes, counts, strict=True)}


@dataclass(frozen=True)
class ImageSet:
    """Images in [-1, 1] (N, C, H, W) with their class indices and names (None and () when unlabelled)."""

    images: torch.Tensor
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    def of_class(self, index: int) -> torch.Tensor:
        """The images of class `index`."""
        if self.labels is None:
            raise ValueError("these images have no classes")
        return self.images[torch.from_numpy(np.flatnonzero(self.labels == index))]


def _image_set(dataset: Dataset, indices: np.ndarray) -> ImageSet:
    labels = dataset.get_labels(indices) if dataset.classes else None
    return ImageSet(to_model_range(dataset.get_batch(indices)), labels, tuple(dataset.classes))


def builtin_set(config: DataConfig, start: int, count: int) -> ImageSet:
    """Built-in images start .. start+count-1 of the endless stream with these data settings (and their classes)."""
    return _image_set(builtin_dataset(dataclasses.replace(config, count=None)), np.arange(start, start + count))


def builtin_images(config: DataConfig, start: int, count: int) -> torch.Tensor:
    """Built-in images start .. start+count-1 of the endless stream with these data settings, in [-1, 1]."""
    return builtin_set(config, start, count).images


def subset(dataset: Dataset, limit: int, seed: int) -> ImageSet:
    """All of a finite dataset's images (and classes), or a seeded choice of `limit` of them when it has more."""
    n = len(dataset)
    indices = np.arange(n) if n <= limit else np.random.default_rng(seed).choice(n, limit, replace=False)
    return _image_set(dataset, indices)


def subset_images(dataset: Dataset, limit: int, seed: int) -> torch.Tensor:
    """All of a finite dataset's images in [-1, 1], or a seeded choice of `limit` of them when it has more."""
    return subset(dataset, limit, seed).images


def training_set(config: DataConfig, limit: int, seed: int) -> ImageSet:
    """Up to `limit` images of the training data (a seeded subset when there are more), with their classes."""
    if config.path is None:
        return builtin_set(config, 0, limit if config.count is None else min(limit, config.count))
    return subset(build_dataset(config), limit, seed)


def training_images(config: DataConfig, limit: int, seed: int) -> torch.Tensor:
    """Up to `limit` images of the training data in [-1, 1] (a seeded subset when there are more)."""
    return training_set(config, limit, seed).images
