"""Batches for training, from a seeded order with a recorded position, so a resume continues exactly.

The sample order is one endless stream: epoch e is a permutation of the dataset drawn from
(seed, e), epochs follow each other, and global batch k is stream positions [k B, (k + 1) B). A batch
larger than the dataset simply spans several epochs. With several processes, rank r of W takes its
own contiguous B / W of every global batch. Augmentation is decided per stream position by hashing
(seed, position), so the images seen do not depend on the batch size, on gradient accumulation or
on how many processes share the work.

Class labels follow the images: the label at a stream position is that image's class, changed as
the dataset says by the flips decided for that position. With data.balance_classes an epoch is
classes x (the largest class's size) positions, every class filling its share with its own images
reshuffled as often as it takes, so a class of 3 images is drawn as often as one of 300.

Non-leaking augmentation (data.augment_p > 0, horseshoe.data.augment) is decided the same way, from
further hashes of each position; the loader hands its parameters over with the batch and the
trainer applies them on the training device. It leaves labels alone: the network is told the
transform, and the class describes the image before it (what sampling, with no transform, draws).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from horseshoe.data.augment import UNIFORMS, AugmentParams, draw_params
from horseshoe.data.config import DataConfig
from horseshoe.data.dataset import Dataset
from horseshoe.data.transforms import apply_augmentation, augmentation_from_bits, to_model_range


def hash_positions(seed: int, positions: np.ndarray) -> np.ndarray:
    """64 random bits per position: splitmix64 of (seed, position), vectorised."""
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def position_uniforms(seed: int, positions: np.ndarray, count: int) -> np.ndarray:
    """(N, count) float64 uniforms in [0, 1) per position, apart from the flips' bits: column j hashes
    those bits again with a constant of its own, and its top 53 bits make the number."""
    base = hash_positions(seed, positions)
    with np.errstate(over="ignore"):
        salts = (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03))
    bits = hash_positions(seed, base[:, None] ^ salts[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class TrainingBatch:
    """This rank's share of a global batch: images in [-1, 1], int64 labels (None when unlabelled), and the
    non-leaking augmentation to apply to it on the training device (None when data.augment_p is 0)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    augment: AugmentParams | None


def derived_generator(*keys: int) -> torch.Generator:
    """A torch.Generator seeded from a tuple of integers (numpy's SeedSequence mixes them)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@dataclass
class BatchLoader:
    """Endless float32 batches (B / W, C, H, W) in [-1, 1]; `position` is the next global batch.

    pin_memory (for a CUDA device) returns each batch in page-locked memory, so that its copy to the
    GPU with non_blocking=True runs asynchronously instead of through a staging copy.
    """

    dataset: Dataset
    config: DataConfig
    batch_size: int
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    position: int = 0
    pin_memory: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.batch_size % self.world_size:
            raise ValueError(f"batch size {self.batch_size} is not divisible by the {self.world_size} processes")
        self._perm_epoch, self._perm = -1, np.empty(0, np.int64)
        self._members: list[np.ndarray] | None = None  # each class's images, when balancing
        if self.config.balance_classes and self.dataset.classes and not self.endless:
            labels = self.dataset.get_labels(np.arange(len(self.dataset)))
            self._members = [np.flatnonzero(labels == c) for c in range(len(self.dataset.classes))]

    @property
    def endless(self) -> bool:
        return self.dataset.endless

    @property
    def labelled(self) -> bool:
        """Whether batches come with class labels."""
        return bool(self.dataset.classes)

    @property
    def epoch_length(self) -> int:
        """Stream positions per epoch: the dataset's size, or classes x the largest class when balancing."""
        if self._members is not None:
            return len(self._members) * max(len(m) for m in self._members)
        return len(self.dataset)

    def epochs_done(self) -> float:
        """How many passes over the data the batches so far make (0 for an endless stream)."""
        return 0.0 if self.endless else self.position * self.batch_size / self.epoch_length

    def _permutation(self, epoch: int) -> np.ndarray:
        """Dataset indices in the order of epoch `epoch`."""
        if epoch != self._perm_epoch:
            perm = torch.randperm(self.epoch_length, generator=derived_generator(self.seed, 0, epoch)).numpy()
            self._perm_epoch, self._perm = epoch, perm if self._members is None else self._balanced(epoch)[perm]
        return self._perm

    def _balanced(self, epoch: int) -> np.ndarray:
        """Every class's share of an epoch: its images in fresh random orders, one after another, cut to length."""
        share = max(len(m) for m in self._members)
        out = []
        for c, members in enumerate(self._members):
            rounds = -(-share // len(members))
            orders = [torch.randperm(len(members), generator=derived_generator(self.seed, 1, epoch, c, r)).numpy()
                      for r in range(rounds)]
            out.append(members[np.concatenate(orders)[:share]])
        return np.concatenate(out)

    def positions(self, batch: int) -> np.ndarray:
        """Stream positions of this rank's share of global batch `batch`."""
        share = self.batch_size // self.world_size
        start = batch * self.batch_size + self.rank * share
        return np.arange(start, start + share, dtype=np.int64)

    def indices(self, batch: int) -> np.ndarray:
        """Dataset indices of this rank's share of global batch `batch`."""
        positions = self.positions(batch)
        if self.endless:
            return positions
        n = self.epoch_length
        return np.array([self._permutation(int(p // n))[p % n] for p in positions], dtype=np.int64)

    def next_with_labels(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share of the next global batch, augmented, and its int64 class labels (None when
        unlabelled); advances the position."""
        k, c = self.position, self.config
        indices = self.indices(k)
        images = to_model_range(self.dataset.get_batch(indices))
        labels = self.dataset.get_labels(indices) if self.labelled else None
        if c.hflip or c.vflip or c.rot90:
            augmentation = augmentation_from_bits(hash_positions(self.seed, self.positions(k)), c.hflip, c.vflip,
                                                  c.rot90)
            images = apply_augmentation(images, augmentation)
            if labels is not None:
                labels = self.dataset.augmented_labels(labels, augmentation)
        self.position += 1
        if self.pin_memory:
            images = images.pin_memory()
        return images, None if labels is None else torch.from_numpy(labels)

    @property
    def augments(self) -> bool:
        """Whether batches come with non-leaking augmentation parameters (data.augment_p > 0, some enabled)."""
        return bool(self.config.augment_p) and bool(self.config.augment)

    def augment_params(self, batch: int) -> AugmentParams:
        """The non-leaking augmentation of this rank's share of global batch `batch`, drawn per stream position."""
        c = self.config
        uniforms = position_uniforms(self.seed, self.positions(batch), UNIFORMS)
        return draw_params(uniforms, c.augment_p, c.augment, c.height, c.width)

    def next_training_batch(self) -> TrainingBatch:
        """next_with_labels, with the augmentation drawn for the same positions; advances the position."""
        batch = self.position
        images, labels = self.next_with_labels()
        # The labels stay those of the images before this augmentation: the network is told the transform,
        # and a class asked for at sampling (with no transform) must mean the untransformed image.
        return TrainingBatch(images, labels, self.augment_params(batch) if self.augments else None)

    def next_batch(self) -> torch.Tensor:
        """This rank's share of the next global batch, augmented; advances the position."""
        return self.next_with_labels()[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"position": self.position, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["batch_size"] != self.batch_size or state["seed"] != self.seed:
            raise ValueError(
                f"data position was saved for batch size {state['batch_size']} and seed {state['seed']}, "
                f"not {self.batch_size} and {self.seed}"
            )
        self.position = int(state["position"])

