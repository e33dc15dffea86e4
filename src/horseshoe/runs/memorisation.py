"""Copies kept in check, and said: the share of samples that are near-copies of training images, a
picture of the closest pairs, and one line saying what to do when there are too many.

`horseshoe train` checks the samples of its end-of-training grid (RUN/copies.png); `horseshoe
evaluate` checks its own samples (RUN/eval/nearest.png). A near-copy is a sample whose nearest
training image lies closer than 1/3 of the data's own nearest-neighbour spacing (metrics.novelty).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from horseshoe.data import DataConfig, subset_images, training_images
from horseshoe.data.dataset import Dataset
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.novelty import NEAR_COPY_RATIO, NoveltyResult, matched_images, most_copied, novelty
from horseshoe.runs import page
from horseshoe.viz.grid import display_scale, save_png
from horseshoe.viz.nearest import pairs_picture

# Warn above a tenth of the samples: the share the issue sets as the target for 20 training images, and
# about where a user browsing a grid starts to meet their own images. At the 64 samples of the
# end-of-training grid the share is known to about +-4% (binomial standard error at 10%).
COPY_WARNING_SHARE = 0.10
TRAINING_LIMIT = 10_000  # training images compared with (a seeded subset of a larger set), as evaluate does
PAIRS = 8  # pairs in the picture
ADVICE = ("turn on or raise augmentation (--set data.augment_p=0.3 or more), stop earlier (fewer --steps or "
          "--minutes), or add images")


def warning(result: NoveltyResult | None, threshold: float = COPY_WARNING_SHARE) -> str | None:
    """The one line to print when more than `threshold` of the samples are near-copies, else None.

    result None: fewer than two training images, so every sample can only copy the one there is.
    """
    if result is None:
        return "warning: one training image: every sample is a copy of it; add images"
    if result.near_copy_fraction <= threshold:
        return None
    return (f"warning: {result.near_copy_fraction:.0%} of {len(result.ratios)} samples are near-copies of training "
            f"images (more than {threshold:.0%}): {ADVICE}")


def caption(result: NoveltyResult, pairs: int = PAIRS) -> str:
    """What the pairs picture shows, for the page."""
    shown = min(pairs, len(result.ratios))
    return (f"the {shown} samples closest to a training image, closest first: each sample (left) beside its "
            f"nearest training image (right, mirrored or turned as it matched), labelled with their distance "
            f"divided by the data's own nearest-neighbour spacing; under {NEAR_COPY_RATIO:.2f} is a near-copy")


def draw(samples: torch.Tensor, training: torch.Tensor, result: NoveltyResult, path: Path,
         pairs: int = PAIRS) -> Path:
    """The `pairs` most-copied samples beside their nearest training images, as a PNG at `path`."""
    order = most_copied(result, pairs)
    labels = [f"{r:.2f}" + (" copy" if r < NEAR_COPY_RATIO else "") for r in result.ratios[order]]
    picture = pairs_picture(to_uint8(samples[torch.as_tensor(order)]),
                            to_uint8(matched_images(training, result, order)), labels,
                            scale=display_scale(samples.shape[-2]))
    return save_png(picture, path)


def training_reference(dataset: Dataset, data: DataConfig, seed: int, limit: int = TRAINING_LIMIT) -> torch.Tensor:
    """The training images to compare samples with: a finite dataset's own images, already in memory (read
    or rendered again only for the endless stream, whose first `limit` images stand for it)."""
    if dataset.endless:
        return training_images(data, limit, seed)
    return subset_images(dataset, limit, seed)


@dataclass(frozen=True)
class CopyCheck:
    """The near-copies among some samples: the novelty measurements, the picture, what to say."""

    samples: int
    novelty: NoveltyResult | None  # None: fewer than two training images, no spacing to measure with
    picture: Path | None
    threshold: float = COPY_WARNING_SHARE

    @property
    def warning(self) -> str | None:
        return warning(self.novelty, self.threshold)

    def line(self) -> str:
        """The line a run prints: the warning, or the share and where the picture is."""
        if self.warning is not None:  # always, without a novelty measurement
            return self.warning
        return (f"near-copies of training images: {self.novelty.near_copy_fraction:.0%} of {self.samples} samples "
                f"(at most {self.threshold:.0%} is fine); the closest pairs: {self.picture}")

    def section(self, src: str) -> str:
        """HTML for the run's page; src: the picture relative to the run directory."""
        if self.novelty is None:
            return page.note(self.line())
        rows = {"samples": self.samples, "near-copies": f"{self.novelty.near_copy_fraction:.1%}",
                "nearest-neighbour ratio (median)": self.novelty.ratio_median}
        notice = page.note(self.warning) if self.warning else ""
        return notice + page.table(rows) + page.figure(src, caption(self.novelty))


def check(samples: torch.Tensor, training: torch.Tensor, data: DataConfig, picture: Path, seed: int = 0,
          threshold: float = COPY_WARNING_SHARE) -> CopyCheck:
    """Compare samples with the training images (flipped and turned as training does) and draw the pairs."""
    if training.shape[0] < 2:
        return CopyCheck(samples=len(samples), novelty=None, picture=None, threshold=threshold)
    found = novelty(samples, training, data.hflip, data.vflip, data.rot90, seed=seed)
    return CopyCheck(samples=len(samples), novelty=found, picture=draw(samples, training, found, picture),
                     threshold=threshold)
