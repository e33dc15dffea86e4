"""A judge for the built-in shapes: a small classifier fitted on the generator's own images, which says
which class a sample looks like.

A class-conditional run is scored per class by the share of its samples the judge calls by the class
they were asked for, set against the judge's own accuracy on fresh real images of that class
(metrics.judge.judged_accuracy). The fitted weights ship with the package (judges/shapes.safetensors,
a few hundred kB, with the classes and the accuracy they were fitted to in its metadata); refit them with
`python benchmarks/shapes_judge.py` whenever data.shapes changes (tests/test_shapes.py checks they still
call fresh real images right).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from horseshoe.data.config import DataConfig

JUDGE_SIZE = 32  # the judge reads 32x32 grey images; samples of another size are resized to it


class JudgeNet(nn.Module):
    """Three stages of two 3x3 convolutions (32, 64, 128 channels) with max-pooling, global average, linear."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = 1
        for width in (32, 64, 128):
            layers += [nn.Conv2d(width_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 32, 32) in [-1, 1] -> (B, classes) logits
        return self.head(self.features(x).mean(dim=(2, 3)))


@dataclass(frozen=True)
class Judge:
    """A fitted judge: its network (eval mode), the class names it tells apart, and its accuracy on fresh real
    images of each class when it was fitted."""

    net: JudgeNet
    classes: tuple[str, ...]
    real_accuracy: tuple[float, ...]

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """The class index the judge reads in each image (N, 1, H, W) in [-1, 1]."""
        images = images.float().cpu()
        if images.shape[-2:] != (JUDGE_SIZE, JUDGE_SIZE):
            images = F.interpolate(images, size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear", antialias=True)
        return torch.cat([self.net(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
                         ).numpy()


def fit_judge(images: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...], epochs: int = 4,
              batch_size: int = 128, seed: int = 0) -> JudgeNet:
    """Fit a JudgeNet on images (N, 1, 32, 32) in [-1, 1] with AdamW and a one-cycle learning rate, mirroring
    half the images of each batch (runs flip their training images, so samples come mirrored too)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net, targets = JudgeNet(len(classes)), torch.as_tensor(labels, dtype=torch.long)
    steps = epochs * (len(images) // batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(len(images) // batch_size):
            batch = order[i * batch_size:(i + 1) * batch_size]
            x = images[batch]
            mirror = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def save_judge(judge: Judge, path: str | Path, fitted_on: str) -> Path:
    """The judge's weights as safetensors, its classes and accuracy in the file's metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"classes": json.dumps(list(judge.classes)),
                "real_accuracy": json.dumps([round(a, 6) for a in judge.real_accuracy]),
                "fitted_on": fitted_on}
    save_file({k: v.contiguous() for k, v in judge.net.state_dict().items()}, str(path), metadata=metadata)
    return path


def load_judge(path: str | Path | None = None) -> Judge:
    """A saved judge (by default the packaged judge of the built-in shapes); loading runs no code from the file."""
    if path is None:
        with resources.as_file(resources.files("horseshoe.metrics") / "judges" / "shapes.safetensors") as found:
            return load_judge(found)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    classes = tuple(json.loads(metadata["classes"]))
    net = JudgeNet(len(classes))
    net.load_state_dict(load_file(str(path)))
    return Judge(net.eval(), classes, tuple(json.loads(metadata["real_accuracy"])))


def judge_for(data: DataConfig, classes: tuple[str, ...]) -> Judge | None:
    """The packaged judge for a run trained on the built-in grey shapes with their classes (else None)."""
    if not (data.is_builtin_shapes and data.channels == 1) or not classes:
        return None
    judge = load_judge()
    return judge if judge.classes == classes else None


def per_class_accuracy(predicted: np.ndarray, asked: np.ndarray, num_classes: int) -> np.ndarray:
    """For each class, the share of the images asked of it that were read as it (NaN for a class never asked)."""
    hits = np.bincount(asked[predicted == asked], minlength=num_classes).astype(np.float64)
    counts = np.bincount(asked, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / counts
