"""Samplers: plain generator functions with one signature, each yielding a StepRecord per step.

    sampler(denoiser, x_T, config: SampleConfig, generator, start=0) -> Steps

``iterate`` runs the one config.sampler names, ``sample`` runs it to the end; grids and GIFs
iterate the same generators. Two extras let edits (sampling/edit.py) drive any sampler: ``start``
begins at that position of the sampler's timesteps (x_T is then the sample at that level), and a
tensor sent into the generator (``steps.send(x)``) replaces the last step's x_prev as the next
step's input; a plain ``for`` loop sends nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from typing import Protocol

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.consistency import consistency
from horseshoe.sampling.ddim import ddim, ddim_invert
from horseshoe.sampling.ddpm import ddpm
from horseshoe.sampling.dpm_solver import dpmpp_2m, dpmpp_2m_sde
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import make_timesteps, sampler_timesteps

Steps = Generator[StepRecord, torch.Tensor | None, None]  # yields records; send() replaces x_prev


class Sampler(Protocol):
    """The one signature every sampler has (see the module docstring)."""

    def __call__(self, denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator,
                 start: int = 0) -> Steps: ...


SAMPLERS: dict[str, Sampler] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "consistency": consistency,
}


# The samplers of a diffusion model's denoiser: all but the consistency sampler, which needs a model tuned into a
# consistency function (`horseshoe distill`) and takes 1 to 4 steps.
DIFFUSION_SAMPLERS = tuple(name for name in SAMPLERS if name != "consistency")


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


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (keeps the norm a Gaussian sample expects)."""
    a, b = z0.flatten(), z1.flatten()
    omega = torch.arccos(torch.clamp(torch.dot(a, b) / (a.norm() * b.norm()), -1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - alpha) * z0 + alpha * z1
    return (torch.sin((1 - alpha) * omega) * z0 + torch.sin(alpha * omega) * z1) / torch.sin(omega)


def iterate(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator
) -> Iterator[StepRecord]:
    """The step generator of config.sampler, with its step count checked against T up front."""
    fn = get_sampler(config.sampler)
    sampler_timesteps(denoiser.schedule, config)  # raises on bad steps, before any work
    return fn(denoiser, x_T, config, generator)


def sample(denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator) -> torch.Tensor:
    """Run config.sampler to the end and return the final sample."""
    (last,) = deque(iterate(denoiser, x_T, config, generator), maxlen=1)  # keep only the last step
    return last.x_prev


def guided(denoiser: Denoiser, labels: torch.Tensor | None, config: SampleConfig) -> Denoiser:
    """The denoiser asked for class `labels` with the config's guidance (itself when labels is None)."""
    if labels is None:
        return denoiser
    return denoiser.conditioned(labels, config.guidance, config.guidance_interval)


def generate(
    denoiser: Denoiser,
    count: int,
    image_shape: tuple[int, int, int],
    config: SampleConfig,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    labels: torch.Tensor | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """Draw `count` images (C, H, W) in batches: float32 on the CPU, in [-1, 1] if clip_x0.

    x_T for all images comes from one CPU generator seeded with `seed` (the same noise on every
    device); per-step noise from a per-batch generator, so a seed and batch size reproduce a sample.
    labels (count,): the class of each image, guided by config.guidance (None: no class).
    Run it under the model's autocast context for mixed precision. With `progress` (its label), a
    progress bar over all steps on a terminal.
    """
    from tqdm import tqdm

    if count <= 0 or batch_size <= 0:
        raise ValueError(f"count and batch size must be positive, got {count} and {batch_size}")
    if labels is not None and labels.shape != (count,):
        raise ValueError(f"expected {count} labels, got shape {tuple(labels.shape)}")
    device = torch.device(device)
    x_T = initial_noise((count, *image_shape), torch.Generator().manual_seed(seed))
    steps = len(sampler_timesteps(denoiser.schedule, config))
    bar = tqdm(total=steps * -(-count // batch_size), desc=progress, unit="step", leave=False,
               disable=True if progress is None else None)  # None: only on a terminal
    out = []
    with bar:
        for start in range(0, count, batch_size):
            g = torch.Generator(device).manual_seed(seed + 1 + start)
            batch = None if labels is None else labels[start:start + batch_size]
            steps = iterate(guided(denoiser, batch, config), x_T[start:start + batch_size].to(device), config, g)
            for last in steps:  # noqa: B007
                bar.update(1)  # the last record's x_prev is the sample
            out.append(last.x_prev.float().cpu())
    return torch.cat(out)


__all__ = [
    "DIFFUSION_SAMPLERS",
    "generate",
    "SAMPLERS",
    "SampleConfig",
    "StepRecord",
    "Sampler",
    "Steps",
    "ddim_invert",
    "get_sampler",
    "guided",
    "initial_noise",
    "iterate",
    "make_timesteps",
    "sampler_timesteps",
    "sample",
    "slerp",
]
