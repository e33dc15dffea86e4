"""Batches for training, from a seeded order with a recorded position, so a resume continues exactly.

The sample order is one endless stream: epoch e is a permutation of the dataset drawn from
(seed, e), epochs follow each other, and global batch k is stream positions [k B, (k + 1) B). A batch
larger than the dataset simply spans several epochs. With several processes, rank r of W takes its
own contiguous B / W of every global batch. Augmentation is decided per stream position by hashing
(seed, position), so the images seen do not depend on the batch size, on gradient accumulation or
on how many processes share the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

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

    @property
    def endless(self) -> bool:
        return self.dataset.endless

    def epochs_done(self) -> float:
        """How many passes over the data the batches so far make (0 for an endless stream)."""
        return 0.0 if self.endless else self.position * self.batch_size / len(self.dataset)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            perm = torch.randperm(len(self.dataset), generator=derived_generator(self.seed, 0, epoch))
            self._perm_epoch, self._perm = epoch, perm.numpy()
        return self._perm

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
        n = len(self.dataset)
        return np.array([self._permutation(int(p // n))[p % n] for p in positions], dtype=np.int64)

    def next_batch(self) -> torch.Tensor:
        """This rank's share of the next global batch, augmented; advances the position."""
        k, c = self.position, self.config
        images = to_model_range(self.dataset.get_batch(self.indices(k)))
        if c.hflip or c.vflip or c.rot90:
            bits = hash_positions(self.seed, self.positions(k))
            images = apply_augmentation(images, augmentation_from_bits(bits, c.hflip, c.vflip, c.rot90))
        self.position += 1
        return images.pin_memory() if self.pin_memory else images

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

