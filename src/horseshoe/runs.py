"""Open a trained run: rebuild the network from the config saved with a checkpoint, load its weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from horseshoe import config as config_module
from horseshoe.config import Config
from horseshoe.diffusion import Denoiser
from horseshoe.models import UNet
from horseshoe.runtime import autocast, pick_device, resolve_precision
from horseshoe.sampling import SampleConfig, StepRecord, generate, get_sampler, guided, initial_noise, iterate
from horseshoe.training import checkpoint

WEIGHTS = ("ema", "model")
# A class for every image, or one per image (names or indices); None: no class.
Labels = str | int | Sequence[str | int] | torch.Tensor | None


@dataclass
class LoadedRun:
    """A trained model ready to sample: config, network, denoiser (at the run's precision), its origin."""

    config: Config
    model: UNet
    denoiser: Denoiser
    checkpoint: Path
    step: int
    device: torch.device
    precision: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the run makes."""
        return self.config.data.shape

    @property
    def classes(self) -> tuple[str, ...]:
        """The run's class names, in label order (() for a run trained without classes)."""
        return self.config.classes

    def labels(self, classes: Labels, count: int) -> torch.Tensor | None:
        """`count` class indices from names or indices: one class for all, or one per image (None: None).

        One-line errors for a run without classes and for unknown names (listing the run's classes).
        """
        if classes is None:
            return None
        if torch.is_tensor(classes):
            classes = classes.tolist()
        if not self.classes:
            raise ValueError(f"run {str(self.checkpoint)!r} was trained without classes: it cannot be asked for one")
        items = [classes] if isinstance(classes, (str, int)) else list(classes)
        indices = [self._class_index(item) for item in items]
        if len(indices) == 1:
            indices *= count
        if len(indices) != count:
            raise ValueError(f"{len(indices)} classes given for {count} images (give one, or one per image)")
        return torch.tensor(indices, dtype=torch.int64)

    def _class_index(self, item: str | int) -> int:
        if isinstance(item, str) and item in self.classes:
            return self.classes.index(item)
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(self.classes):
            return item
        raise ValueError(f"unknown class {item!r}; this run's classes are {', '.join(self.classes)}")

    def sampler(self, name: str | None = None, steps: int | None = None, eta: float | None = None,
                spacing: str | None = None, guidance: float | None = None) -> SampleConfig:
        """The run's sample section with the given sampler and options over it (SampleConfig.for_sampler)."""
        if name is not None:
            get_sampler(name)  # a one-line error for unknown names
        if guidance is not None and not self.classes:
            raise ValueError(f"run {str(self.checkpoint)!r} was trained without classes: guidance needs them")
        return self.config.sample.for_sampler(self.denoiser.schedule, name, steps, eta, spacing, guidance)

    def generate(self, config: SampleConfig, count: int, seed: int = 0, batch_size: int = 64,
                 labels: Labels = None, guidance: float | None = None) -> torch.Tensor:
        """`count` final samples, float32 on the CPU (see horseshoe.sampling.generate).

        labels: a class (name or index) for every image, or one per image; None: no class. guidance:
        the scale w over the config's sample.guidance.
        """
        if guidance is not None:
            self.sampler(guidance=guidance)  # the same one-line error for a run without classes
            config = dataclasses.replace(config, guidance=guidance)  # and SampleConfig's for w < 0
        return generate(self.denoiser, count, self.image_shape, config, seed, batch_size, self.device,
                        self.labels(labels, count))

    def records(self, config: SampleConfig, count: int, seed: int = 0, x_T: torch.Tensor | None = None,
                labels: Labels = None) -> Iterator[StepRecord]:
        """The step records of sampling `count` images in one batch (the same noise as `generate`)."""
        if x_T is None:
            x_T = initial_noise((count, *self.image_shape), torch.Generator().manual_seed(seed))
        generator = torch.Generator(self.device).manual_seed(seed + 1)
        denoiser = guided(self.denoiser, self.labels(labels, x_T.shape[0]), config)
        return iterate(denoiser, x_T.to(self.device), config, generator)


def with_precision(model: torch.nn.Module, device: torch.device, precision: str):
    """The network as a function that runs under the given precision (bf16 autocast or fp32)."""

    def network(x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with autocast(device, precision):
            return model(x_t, t, labels)

    return network


def load_run(path: str | Path, weights: str = "ema", device: str = "auto", precision: str = "auto",
             sample_overrides: Sequence[str] = ()) -> LoadedRun:
    """Load a run directory (its latest checkpoint) or a checkpoint directory for sampling.

    sample_overrides ('sample.key=value', as `--set`) change how this run samples, nothing else.
    """
    for text in sample_overrides:
        if not text.strip().startswith("sample."):
            raise ValueError(f"--set {text!r}: only sample.* settings can change after training")
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    found = checkpoint.resolve(path)
    data = checkpoint.load(found, parts=(weights,))
    try:
        config = config_module.from_dict(data.config)
    except ValueError as error:
        raise ValueError(f"checkpoint {str(found)!r} has an invalid config: {error}") from None
    config = config_module.apply_overrides(config, list(sample_overrides))
    model = UNet(config.model, config.data.shape)
    try:
        model.load_state_dict(data.tensors[weights])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"checkpoint {str(found)!r} does not match its config: {first}") from None
    dev = pick_device(device)
    model = model.to(dev).eval().requires_grad_(False)
    schedule = config.diffusion.make_schedule()
    precision = resolve_precision(precision, dev)
    denoiser = Denoiser(with_precision(model, dev, precision), schedule, config.diffusion.prediction)
    return LoadedRun(config=config, model=model, denoiser=denoiser, checkpoint=found,
                     step=int(data.state["step"]), device=dev, precision=precision)
