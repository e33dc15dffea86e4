"""horseshoe: train small image diffusion models (DDPM, DDIM, DPM-Solver++) and generate new images."""

from horseshoe.diffusion import Denoiser, NoiseSchedule, make_schedule, q_sample, training_loss
from horseshoe.models import UNet, UNetConfig
from horseshoe.sampling import SAMPLERS, SamplerConfig, StepRecord, initial_noise, iterate, sample

__version__ = "0.1.0"

__all__ = [
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
