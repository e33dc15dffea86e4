"""Closed-form denoisers for Gaussian data, shared by the sampler tests.

For x0 ~ N(mu, s^2 I) and x_t = a x0 + b eps (a = sqrt(abar_t), b = sqrt(1 - abar_t)), x_t is
N(a mu, a^2 s^2 + b^2) per pixel and the best noise predictor is
    E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2).
The probability-flow ODE keeps each sample's standardised value fixed, so deterministic samplers
started at x_T must end at mu + s (x_T - a_T mu) / sqrt(a_T^2 s^2 + b_T^2).
"""

from __future__ import annotations

import torch

from horseshoe.diffusion import Denoiser, NoiseSchedule
from horseshoe.sampling import SampleConfig


def plain(sampler: str, **options) -> SampleConfig:
    """The sampler as its paper states it: every timestep, trailing spacing, from t = T-1, no clipping."""
    return SampleConfig(**{"sampler": sampler, "steps": None, "spacing": "trailing", "lambda_min": None,
                           "clip_x0": False, **options})


def gaussian_denoiser(schedule: NoiseSchedule, mu: float, s: float) -> Denoiser:
    """A Denoiser whose eps prediction is optimal for data N(mu, s^2 I)."""

    def eps_oracle(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.alpha_bars.to(x.dtype)[t].view(-1, *([1] * (x.ndim - 1)))
        a, b = abar.sqrt(), (1 - abar).sqrt()
        return b * (x - a * mu) / (a * a * s * s + b * b)

    return Denoiser(eps_oracle, schedule, "eps")


def equicorrelated_denoiser(schedule: NoiseSchedule, mu: float, s: float, rho: float) -> Denoiser:
    """The optimal eps predictor for images whose pixels are N(mu, s^2) with correlation rho between any two.

    Sigma = s^2 ((1 - rho) I + rho 1 1^T) has eigenvalue s^2 (1 - rho + rho d) along the all-ones
    direction (d pixels) and s^2 (1 - rho) across it; E[eps | x_t] = b (a^2 Sigma + b^2 I)^-1 (x_t - a mu)
    is applied in those two parts: each image's pixel mean, and the rest.
    """

    def eps_oracle(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.alpha_bars.to(x.dtype)[t].view(-1, *([1] * (x.ndim - 1)))
        a, b = abar.sqrt(), (1 - abar).sqrt()
        along, across = s * s * (1 - rho + rho * x[0].numel()), s * s * (1 - rho)
        y = x - a * mu
        mean = y.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
        return b * (mean / (a * a * along + b * b) + (y - mean) / (a * a * across + b * b))

    return Denoiser(eps_oracle, schedule, "eps")


def one_point_denoiser(schedule: NoiseSchedule, point: torch.Tensor) -> Denoiser:
    """The exact eps predictor for data that is the single point `point`: eps = (x_t - a point) / b."""
    abar = schedule.alpha_bars
    return Denoiser(lambda x, t: (x - abar[t].sqrt().view(-1, 1, 1, 1) * point)
                    / (1 - abar[t]).sqrt().view(-1, 1, 1, 1), schedule, "eps")


def ode_endpoint(schedule: NoiseSchedule, x_T: torch.Tensor, mu: float, s: float) -> torch.Tensor:
    """Exact probability-flow ODE solution at t=0 (clean) from x_T at t=T-1, for data N(mu, s^2)."""
    abar = schedule.alpha_bars[-1]
    a, b = abar.sqrt(), (1 - abar).sqrt()
    return mu + s * (x_T - a * mu) / (a * a * s * s + b * b).sqrt()
