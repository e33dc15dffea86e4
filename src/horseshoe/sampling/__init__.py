"""Samplers: plain generator functions with one signature, each yielding a StepRecord per step.

    sampler(denoiser, x_T, config: SamplerConfig, generator) -> Iterator[StepRecord]

``sample`` runs one to the end; grids and GIFs iterate the same generators.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.sampling.ddim import ddim, ddim_invert
from horseshoe.sampling.ddpm import ddpm
from horseshoe.sampling.dpm_solver import dpmpp_2m, dpmpp_2m_sde
from horseshoe.sampling.record import SamplerConfig, StepRecord
from horseshoe.sampling.timesteps import make_timesteps, sampler_timesteps

Sampler = Callable[[Denoiser, torch.Tensor, SamplerConfig, torch.Generator], Iterator[StepRecord]]

SAMPLERS: dict[str, Sampler] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
}


def get_sampler(name: str) -> Sampler:
    """Look a sampler up by name, with an error that lists the choices."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def initial_noise(
    shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """x_T ~ N(0, I) drawn from generator, on the generator's device."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)


def iterate(
    sampler: str, denoiser: Denoiser, x_T: torch.Tensor, config: SamplerConfig, generator: torch.Generator
) -> Iterator[StepRecord]:
    """The named sampler's step generator, with its step count checked against T up front."""
    fn = get_sampler(sampler)
    sampler_timesteps(denoiser.schedule, config)  # raises on bad steps, before any work
    return fn(denoiser, x_T, config, generator)


def sample(
    sampler: str, denoiser: Denoiser, x_T: torch.Tensor, config: SamplerConfig, generator: torch.Generator
) -> torch.Tensor:
    """Run the named sampler to the end and return the final sample."""
    (last,) = deque(iterate(sampler, denoiser, x_T, config, generator), maxlen=1)  # keep only the last step
    return last.x_prev


def generate(
    sampler: str,
    denoiser: Denoiser,
    count: int,
    image_shape: tuple[int, int, int],
    config: SamplerConfig,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw `count` images (C, H, W) in batches: float32 on the CPU, in [-1, 1] if clip_x0.

    x_T for all images comes from one CPU generator seeded with `seed` (the same noise on every
    device); per-step noise from a per-batch generator, so a seed and batch size reproduce a sample.
    Run it under the model's autocast context for mixed precision.
    """
    if count <= 0 or batch_size <= 0:
        raise ValueError(f"count and batch size must be positive, got {count} and {batch_size}")
    device = torch.device(device)
    x_T = initial_noise((count, *image_shape), torch.Generator().manual_seed(seed))
    out = []
    for start in range(0, count, batch_size):
        g = torch.Generator(device).manual_seed(seed + 1 + start)
        out.append(sample(sampler, denoiser, x_T[start:start + batch_size].to(device), config, g).float().cpu())
    return torch.cat(out)


__all__ = [
    "generate",
    "SAMPLERS",
    "SamplerConfig",
    "StepRecord",
    "Sampler",
    "ddim_invert",
    "get_sampler",
    "initial_noise",
    "iterate",
    "make_timesteps",
    "sampler_timesteps",
    "sample",
]
