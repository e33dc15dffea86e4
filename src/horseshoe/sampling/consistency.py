"""Multistep consistency sampling (Song et al. 2023, Algorithm 1): 1 to 4 network evaluations with a model
tuned into a consistency function (horseshoe.diffusion.consistency, `horseshoe distill`)."""

from __future__ import annotations

from collections.abc import Generator

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import sampler_timesteps


@torch.no_grad()
def consistency(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, start: int = 0
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """x0_hat = f(x, t_i); then x = sqrt(abar_{t_{i+1}}) x0_hat + sqrt(1 - abar_{t_{i+1}}) z, z ~ N(0, I) fresh.

    Every step maps to clean data and the next one noises that guess again to a lower level (Song et al.
    2023, Alg. 1); the last x0_hat is the sample. Deterministic for a generator's seed.
    """
    timesteps = sampler_timesteps(denoiser.schedule, config)  # N = config.steps, 1 to 4 (SampleConfig checks)
    x = x_T
    for i in range(start, len(timesteps)):
        t = timesteps[i]
        pred = denoiser(x, t, clip_x0=config.clip_x0)
        if i + 1 < len(timesteps):
            abar = denoiser.schedule.alpha_bar(timesteps[i + 1])
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_prev = abar**0.5 * pred.x0 + (1 - abar) ** 0.5 * z
        else:
            x_prev = pred.x0
        sent = yield StepRecord(index=i - start, t=t, x_t=x, x0_hat=pred.x0, x_prev=x_prev)
        x = x_prev if sent is None else sent
