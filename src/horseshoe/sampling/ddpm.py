"""Ancestral sampling, Algorithm 2 of Ho et al. 2020, on all T steps or a respaced subset."""

from __future__ import annotations

from collections.abc import Generator

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.diffusion.process import gather, q_posterior_mean_variance
from horseshoe.diffusion.schedules import NoiseSchedule
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import sampler_timesteps


def respace(schedule: NoiseSchedule, timesteps: list[int]) -> NoiseSchedule:
    """The schedule that jumps straight between the given timesteps (Nichol & Dhariwal 2021, Sec. 4).

    Its k-th beta is 1 - abar[s_k] / abar[s_{k-1}] over the ascending timesteps s, so its alpha_bars
    are the originals at s, and every formula for a T-step process holds for the shorter one.
    """
    return NoiseSchedule.from_alpha_bars(f"{schedule.name}-respaced", schedule.alpha_bars[sorted(timesteps)])


@torch.no_grad()
def ddpm(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, start: int = 0
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """x_{t-1} = mu_tilde(x_t, x0_hat) + sigma_t z, z = 0 on the last step.

    mu_tilde is the posterior mean of Eq. 7 with x0 replaced by the prediction; with the eps
    parameterisation this is exactly line 4 of Algorithm 2, 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1-abar_t) eps).
    sigma_t^2 is beta tilde ('posterior') or beta_t ('beta'), the two choices of Ho et al. Sec. 3.2.
    """
    timesteps = sampler_timesteps(denoiser.schedule, config)
    spaced = respace(denoiser.schedule, timesteps)
    x = x_T
    for i in range(start, len(timesteps)):
        t = timesteps[i]
        k = len(timesteps) - 1 - i  # index of t in the respaced schedule
        pred = denoiser(x, t, clip_x0=config.clip_x0)
        mean, variance = q_posterior_mean_variance(spaced, pred.x0, x, k)
        if config.ddpm_variance == "beta":
            variance = gather(spaced.betas, k, x).expand_as(x)
        if k > 0:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_prev = mean + variance.sqrt() * z
        else:
            x_prev = mean  # Algorithm 2: z = 0 at the last step
        sent = yield StepRecord(index=i - start, t=t, x_t=x, x0_hat=pred.x0, x_prev=x_prev)
        x = x_prev if sent is None else sent
