"""Evaluate a run trained with classes: each class's samples against that class's training images, the
class accuracy on the built-in four-direction horseshoes, and both against the guidance scale w.

For every class the same number of samples is drawn with the same seed; SWD and novelty compare them
with the training images of that class alone, so a model that draws the right shapes for the wrong
class scores badly. The accuracy is the share of samples asked for a direction whose opening faces
it (metrics.shape: `opening`); the horseshoe rate is the share that passes the shape check at all. On
the built-in shapes, the judge (metrics.judge) reads each sample: its judged share is the share read as
the class asked for, set beside the judge's accuracy on fresh real images of that class. The variety is
the samples' mean pairwise distance over the class's training images' own: near 1 where the class
varies as the data does, near 0 where it collapsed to one shape.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from horseshoe.data import ImageSet, training_set
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.judge import judge_for, per_class_accuracy
from horseshoe.metrics.novelty import novelty
from horseshoe.metrics.shape import horseshoe_rate, opening_accuracy
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs.load import LoadedRun
from horseshoe.sampling import SampleConfig


@dataclass(frozen=True)
class ClassScore:
    """One class's samples: SWD x1e3 against its training images, near-copies, variety, and on the built-in
    four-direction silhouettes the accuracy and the horseshoe rate, on the built-in shapes the judged share
    (`accuracy`) beside the judge's accuracy on real images of the class (`judge_real`)."""

    name: str
    samples: int
    swd: float
    near_copy_fraction: float | None  # None: fewer than 2 training images in the class
    accuracy: float | None = None
    horseshoe_rate: float | None = None
    training_images: int | None = None  # as the run's log counted them (None: not logged, or endless)
    variety: float | None = None  # None: fewer than 2 samples or training images
    judge_real: float | None = None

    @property
    def judged_ratio(self) -> float | None:
        """The judged share over the judge's accuracy on real images of the class (None without a judge)."""
        return None if self.judge_real is None or self.accuracy is None else self.accuracy / self.judge_real

    def to_json(self) -> dict:
        out = {"class": self.name, "samples": self.samples, "swd_x1e3_mean": self.swd,
               "near_copy_fraction": self.near_copy_fraction, "training_images": self.training_images,
               "variety": self.variety}
        if self.accuracy is not None:
            out.update(accuracy=self.accuracy, horseshoe_rate=self.horseshoe_rate)
        if self.judge_real is not None:
            out.update(judge_real_accuracy=self.judge_real, judged_ratio=self.judged_ratio)
        return out


def _mean(values: list[float | None]) -> float | None:
    return None if not values or values[0] is None else float(np.mean(values))


@dataclass(frozen=True)
class GuidanceScore:
    """Every class at one guidance scale w; the means over classes summarise it."""

    scale: float
    seconds: float
    classes: tuple[ClassScore, ...]

    @property
    def swd(self) -> float:
        return float(np.mean([c.swd for c in self.classes]))

    @property
    def accuracy(self) -> float | None:
        return _mean([c.accuracy for c in self.classes])

    @property
    def horseshoe_rate(self) -> float | None:
        return _mean([c.horseshoe_rate for c in self.classes])

    @property
    def worst_judged_ratio(self) -> float | None:
        """The lowest class's judged share over the judge's real-image accuracy (None without a judge)."""
        ratios = [c.judged_ratio for c in self.classes]
        return None if None in ratios or not ratios else float(min(ratios))

    def to_json(self) -> dict:
        out = {"guidance": self.scale, "swd_x1e3_class_mean": self.swd, "seconds": round(self.seconds, 2),
               "per_class": [c.to_json() for c in self.classes]}
        if self.accuracy is not None:
            out.update(accuracy=self.accuracy, horseshoe_rate=self.horseshoe_rate)
        return out

    def names(self) -> str:
        """The classes, with their training images where the log counted them."""
        return ", ".join(c.name if c.training_images is None else f"{c.name} ({c.training_images})"
                         for c in self.classes)

    def numbers(self) -> str:
        """Its numbers, comma-separated: the summary line's and the page's cell."""
        cells = [f"per-class SWD {self.swd:.2f}"]
        if self.accuracy is not None:
            cells.append(f"accuracy {self.accuracy:.1%}")
        if self.horseshoe_rate is not None:
            cells.append(f"horseshoes {self.horseshoe_rate:.1%}")
        if self.worst_judged_ratio is not None:
            cells.append(f"lowest class at {self.worst_judged_ratio:.2f} of the judge's real-image accuracy")
        return ", ".join([*cells, f"{self.seconds:.1f} s"])

    def line(self) -> str:
        """One line of the summary."""
        return f"w = {self.scale:g}: {self.numbers()}"


class ClassReference:
    """The training images of each class and their SWD references, built once for every scale."""

    def __init__(self, run: LoadedRun, limit: int, seed: int) -> None:
        found: ImageSet = training_set(run.config.data, limit, seed)
        if found.classes != run.classes:
            raise ValueError(f"the run's data now has classes {list(found.classes)}, it was trained on "
                             f"{list(run.classes)}")
        self.images = [found.of_class(c) for c in range(len(run.classes))]
        self.swd = [SWDReference(images, seed=seed) for images in self.images]
        d = run.config.data
        self.flips = (d.hflip, d.vflip, d.rot90)
        self.directions = d.is_builtin_silhouette and d.has_directions  # the accuracy can be measured
        self.judge = judge_for(d, run.classes)
        self.spread = [mean_distance(images) for images in self.images]


def mean_distance(images: torch.Tensor) -> float | None:
    """The mean L2 distance between two different images of a set (None for fewer than two)."""
    if len(images) < 2:
        return None
    flat = images.flatten(1).float()
    distances = torch.cdist(flat, flat)
    return float(distances.sum() / (len(flat) * (len(flat) - 1)))


def logged_counts(run: LoadedRun) -> dict[str, int | None]:
    """Training images per class, from the last start (or resume) record of the run's metrics.jsonl ({} if none)."""
    path = run.run_dir / "metrics.jsonl"
    found: dict[str, int | None] = {}
    for line in path.read_text().splitlines() if path.exists() else ():
        if '"classes"' in line:
            try:
                found = json.loads(line)["classes"]
            except (json.JSONDecodeError, KeyError):  # a line cut short by a crash
                continue
    return found


def score_classes(run: LoadedRun, reference: ClassReference, config: SampleConfig, per_class: int, seed: int,
                  batch_size: int) -> GuidanceScore:
    """`per_class` samples of every class at config.guidance, scored against each class's training images."""
    classes = len(run.classes)
    labels = torch.arange(classes).repeat_interleave(per_class)
    started = time.perf_counter()
    samples = run.generate(config, len(labels), seed, batch_size, labels=labels)
    seconds = time.perf_counter() - started
    scores, counts = [], logged_counts(run)
    judged = None
    if reference.judge is not None:
        judged = per_class_accuracy(reference.judge.predict(samples), labels.numpy(), classes)
    for c, name in enumerate(run.classes):
        mine, training = samples[labels == c], reference.images[c]
        copies = novelty(mine, training, *reference.flips, seed=seed).near_copy_fraction if len(training) > 1 else None
        accuracy = rate = judge_real = None
        if reference.directions:
            pixels = to_uint8(mine) / 255.0
            accuracy, rate = opening_accuracy(pixels, [name] * len(mine)), horseshoe_rate(pixels)
        elif judged is not None:
            accuracy, judge_real = float(judged[c]), reference.judge.real_accuracy[c]
        spread, own = mean_distance(mine), reference.spread[c]
        variety = None if spread is None or not own else spread / own
        scores.append(ClassScore(name, len(mine), reference.swd[c].distance(mine).mean, copies, accuracy, rate,
                                 counts.get(name), variety, judge_real))
    return GuidanceScore(config.guidance, seconds, tuple(scores))


def class_scores(run: LoadedRun, config: SampleConfig, count: int, seed: int, batch_size: int,
                 scales: tuple[float, ...], out_dir: Path) -> tuple[GuidanceScore | None, tuple[GuidanceScore, ...]]:
    """Every class at config.guidance, and at each of `scales` (then eval/guidance.png): `count` samples
    in all, split evenly over the classes. (None, ()) for a run without classes."""
    if not run.classes:
        if scales:
            raise ValueError(f"run {str(run.checkpoint)!r} was trained without classes: no guidance to sweep")
        return None, ()
    from horseshoe.viz.plots import plot_guidance

    reference = ClassReference(run, count, seed)
    per_class = max(1, count // len(run.classes))
    score = score_classes(run, reference, config, per_class, seed, batch_size)
    swept = tuple(score_classes(run, reference, dataclasses.replace(config, guidance=w), per_class, seed, batch_size)
                  for w in scales)
    if swept:
        plot_guidance([(row.scale, row.swd, row.accuracy) for row in swept], out_dir / "guidance.png")
    return score, swept
