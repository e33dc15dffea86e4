"""DDIM (Song et al. 2021): Eq. 12 with eta, on any number of steps, and its deterministic inversion."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import sampler_timesteps


@torch.no_grad()
def ddim(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, start: int = 0
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """Generalised DDIM step from t to the next visited timestep s (s = -1 after the last).

    Notation: abar_t, abar_s   signal fractions at t and s (abar_{-1} = 1)
              x0_hat, eps_hat  the denoiser's predictions at (x_t, t)
              sigma_t          eta * sqrt((1 - abar_s)/(1 - abar_t)) * sqrt(1 - abar_t/abar_s)   # Eq. 16
    x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma_t^2) eps_hat + sigma_t z                  # Eq. 12
    eta = 0 is the deterministic DDIM; eta = 1 is DDPM's ancestral step with the posterior variance.
    """
    timesteps = sampler_timesteps(denoiser.schedule, config)
    x = x_T
    for i in range(start, len(timesteps)):
        t = timesteps[i]
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        abar_t, abar_s = denoiser.schedule.alpha_bar(t), denoiser.schedule.alpha_bar(s)
        pred = denoiser(x, t, clip_x0=config.clip_x0)
        sigma = config.eta * ((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)) ** 0.5
        x_prev = abar_s**0.5 * pred.x0 + max(1 - abar_s - sigma**2, 0.0) ** 0.5 * pred.eps
        if sigma > 0:
            x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        sent = yield StepRecord(index=i - start, t=t, x_t=x, x0_hat=pred.x0, x_prev=x_prev)
        x = x_prev if sent is None else sent


@torch.no_grad()
def ddim_invert(denoiser: Denoiser, x0: torch.Tensor, config: SampleConfig) -> Iterator[StepRecord]:
    """Run deterministic DDIM backwards, image -> noise, over the same timesteps ascending.

    Each step goes from level r (clean at first) to the next visited timestep t, reading eps_hat at
    (x_r, t): the usual approximation eps(x_r, t) ~ eps(x_t, t) that makes the step explicit.
    x0_hat = (x_r - sqrt(1 - abar_r) eps_hat) / sqrt(abar_r); x_t = sqrt(abar_t) x0_hat + sqrt(1 - abar_t) eps_hat.
    The last record's x_prev is the recovered noise x_T.
    """
    timesteps = sampler_timesteps(denoiser.schedule, config)[::-1]
    x, r = x0, -1
    for i, t in enumerate(timesteps):
        abar_r, abar_t = denoiser.schedule.alpha_bar(r), denoiser.schedule.alpha_bar(t)
        eps = denoiser(x, t).eps
        x0_hat = (x - (1 - abar_r) ** 0.5 * eps) / abar_r**0.5
        x_next = abar_t**0.5 * x0_hat + (1 - abar_t) ** 0.5 * eps
        yield StepRecord(index=i, t=t, x_t=x, x0_hat=x0_hat, x_prev=x_next)
        x, r = x_next, t
