"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) and its SDE variant: second-order multistep solvers
for 10-25 steps, deterministic (the probability-flow ODE) and stochastic (the reverse SDE)."""

from __future__ import annotations

import math
from collections.abc import Generator

import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import sampler_timesteps


@torch.no_grad()
def _multistep(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, stochastic: bool,
    start: int = 0, timesteps: list[int] | None = None,
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """The shared loop: one network evaluation per step, the previous step's x0_hat reused.

    Notation: alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t)
              step from s to t: h = lambda_t - lambda_s; previous step's length h_prev; r = h_prev / h
              D = x0_hat(x_s, s) (first step)  or  (1 + 1/(2r)) x0_hat_s - 1/(2r) x0_hat_prev
    ODE: x_t = (sigma_t / sigma_s) x_s - alpha_t (exp(-h) - 1) D                            # Eq. 9 / Alg. 2
    SDE: x_t = (sigma_t / sigma_s) exp(-h) x_s + alpha_t (1 - exp(-2h)) D
               + sigma_t sqrt(1 - exp(-2h)) z,  z ~ N(0, I)          # SDE-DPM-Solver++(2M), Lu et al. 2022
    The last step goes to clean data (sigma = 0), where both first-order updates give x = x0_hat, as in
    diffusers' DPMSolverMultistepScheduler with final_sigmas_type='zero'.
    """
    schedule = denoiser.schedule
    timesteps = sampler_timesteps(schedule, config) if timesteps is None else timesteps

    def alpha_sigma_lambda(t: int) -> tuple[float, float, float]:
        abar = schedule.alpha_bar(t)
        alpha, sigma = math.sqrt(abar), math.sqrt(1.0 - abar)
        return alpha, sigma, math.log(alpha) - math.log(sigma)

    x, x0_prev, h_prev = x_T, None, None  # the first step (also from `start`) is first order
    for i in range(start, len(timesteps)):
        s = timesteps[i]
        pred = denoiser(x, s, clip_x0=config.clip_x0)
        if i + 1 == len(timesteps):
            x_next = pred.x0  # sigma_t = 0: the update reduces to x0_hat
        else:
            _, sigma_s, lambda_s = alpha_sigma_lambda(s)
            alpha_t, sigma_t, lambda_t = alpha_sigma_lambda(timesteps[i + 1])
            h = lambda_t - lambda_s
            if x0_prev is None:
                d = pred.x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * pred.x0 - (1 / (2 * r)) * x0_prev
            if stochastic:
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x_next = (((sigma_t / sigma_s) * math.exp(-h)) * x - alpha_t * math.expm1(-2 * h) * d
                          + (sigma_t * math.sqrt(-math.expm1(-2 * h))) * z)
            else:
                x_next = (sigma_t / sigma_s) * x - alpha_t * math.expm1(-h) * d
            h_prev = h
        sent = yield StepRecord(index=i - start, t=s, x_t=x, x0_hat=pred.x0, x_prev=x_next)
        x, x0_prev = x_next if sent is None else sent, pred.x0


def dpmpp_2m(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, start: int = 0
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """DPM-Solver++(2M): integrate the probability-flow ODE in log-SNR time. generator is unused."""
    return _multistep(denoiser, x_T, config, generator, stochastic=False, start=start)


def dpmpp_2m_sde(
    denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig, generator: torch.Generator, start: int = 0
) -> Generator[StepRecord, torch.Tensor | None, None]:
    """SDE-DPM-Solver++(2M): the same steps on the reverse SDE, fresh noise each step but the last.

    Its first-order step is exactly DDPM's ancestral step with the posterior variance (DDIM, eta = 1);
    the injected noise corrects part of an imperfect model's error, as in ancestral sampling.
    """
    return _multistep(denoiser, x_T, config, generator, stochastic=True, start=start)


def dpmpp_2m_path(denoiser: Denoiser, x_T: torch.Tensor, timesteps: list[int], clip_x0: bool = True
                  ) -> Generator[StepRecord, torch.Tensor | None, None]:
    """DPM-Solver++(2M) on the probability-flow ODE over these descending timesteps, ending at clean data: the
    teacher's path through chosen levels (horseshoe.sampling.trajectories)."""
    if any(a <= b for a, b in zip(timesteps, timesteps[1:], strict=False)) or timesteps[-1] < 0:
        raise ValueError(f"timesteps must descend to 0 or above, got {timesteps}")
    config = SampleConfig(sampler="dpmpp_2m", steps=len(timesteps), clip_x0=clip_x0)
    return _multistep(denoiser, x_T, config, torch.Generator(x_T.device), stochastic=False, timesteps=timesteps)
