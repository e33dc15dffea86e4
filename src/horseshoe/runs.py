"""Open a trained run: rebuild the network from the config saved with a checkpoint, load its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from horseshoe import config as config_module
from horseshoe.config import Config
from horseshoe.diffusion import Denoiser, make_schedule
from horseshoe.models import UNet
from horseshoe.runtime import autocast, pick_device, resolve_precision
from horseshoe.training import checkpoint

WEIGHTS = ("ema", "model")


def build_model(config: Config) -> UNet:
    """The U-Net a config describes (random weights)."""
    return UNet(config.unet())


@dataclass
class LoadedRun:
    """A trained model ready to sample: config, network, denoiser, where it came from."""

    config: Config
    model: UNet
    denoiser: Denoiser
    checkpoint: Path
    step: int
    device: torch.device
    precision: str

    def autocast(self):
        """The run's precision for inference (bf16 where fast, as in training)."""
        return autocast(self.device, self.precision)


def load_run(path: str | Path, weights: str = "ema", device: str = "auto", precision: str = "auto") -> LoadedRun:
    """Load a run directory (its latest checkpoint) or a checkpoint directory for sampling."""
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    found = checkpoint.resolve(path)
    data = checkpoint.load(found, parts=(weights,))
    try:
        config = config_module.from_dict(data.config)
    except ValueError as error:
        raise ValueError(f"checkpoint {str(found)!r} has an invalid config: {error}") from None
    model = build_model(config)
    try:
        model.load_state_dict(data.tensors[weights])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"checkpoint {str(found)!r} does not match its config: {first}") from None
    dev = pick_device(device)
    model = model.to(dev).eval().requires_grad_(False)
    schedule = make_schedule(config.diffusion.schedule, config.diffusion.num_steps)
    denoiser = Denoiser(model, schedule, config.diffusion.prediction)
    return LoadedRun(config=config, model=model, denoiser=denoiser, checkpoint=found,
                     step=int(data.state.get("step", 0)), device=dev, precision=resolve_precision(precision, dev))
