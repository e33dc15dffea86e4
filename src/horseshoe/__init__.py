"""horseshoe: train small image diffusion models (DDPM, DDIM, DPM-Solver++) and generate new images.

    import horseshoe
    horseshoe.train(horseshoe.demo_config(), "runs/demo")           # built-in horseshoes
    run = horseshoe.load_run("runs/demo")
    images = run.generate(*run.sampler("ddim", 50), count=16)
"""

from horseshoe.config import Config, build_config
from horseshoe.demo import demo_config
from horseshoe.diffusion import Denoiser, NoiseSchedule, make_schedule, q_sample, training_loss
from horseshoe.models import UNet, UNetConfig
from horseshoe.runs import LoadedRun, load_run
from horseshoe.sampling import SAMPLERS, SamplerConfig, StepRecord, initial_noise, iterate, sample
from horseshoe.training.trainer import Trainer, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "Config",
    "build_config",
    "demo_config",
    "train",
    "Trainer",
    "TrainResult",
    "load_run",
    "LoadedRun",
    "Denoiser",
    "NoiseSchedule",
    "make_schedule",
    "q_sample",
    "training_loss",
    "UNet",
    "UNetConfig",
    "SAMPLERS",
    "SamplerConfig",
    "StepRecord",
    "initial_noise",
    "iterate",
    "sample",
    "__version__",
]
