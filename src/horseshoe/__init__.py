"""horseshoe: train small image diffusion models (DDPM, DDIM, DPM-Solver++) and generate new images.

    import horseshoe
    horseshoe.train(horseshoe.demo_config(), "runs/demo")           # built-in horseshoes
    run = horseshoe.load_run("runs/demo")
    images = run.generate(run.sampler("ddim", 50), count=16)

The names below load on first use, so `import horseshoe.diffusion` (or any one part) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_NAMES = {
    "Config": "horseshoe.config",
    "build_config": "horseshoe.config",
    "demo_config": "horseshoe.runs.demo",
    "train": "horseshoe.runs.train",
    "Trainer": "horseshoe.training.trainer",
    "TrainResult": "horseshoe.training.trainer",
    "load_run": "horseshoe.runs.load",
    "LoadedRun": "horseshoe.runs.load",
    "Denoiser": "horseshoe.diffusion",
    "NoiseSchedule": "horseshoe.diffusion",
    "make_schedule": "horseshoe.diffusion",
    "q_sample": "horseshoe.diffusion",
    "training_loss": "horseshoe.diffusion",
    "UNet": "horseshoe.models",
    "UNetConfig": "horseshoe.models",
    "SAMPLERS": "horseshoe.sampling",
    "SampleConfig": "horseshoe.sampling",
    "StepRecord": "horseshoe.sampling",
    "initial_noise": "horseshoe.sampling",
    "iterate": "horseshoe.sampling",
    "sample": "horseshoe.sampling",
}

__all__ = [*_NAMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'horseshoe' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
