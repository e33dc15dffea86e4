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


def class_gaussian_network(schedule: NoiseSchedule, mus: list[float], sigmas: list[float]):
    """The optimal eps predictor for data whose class c is N(mus[c], sigmas[c]^2) per pixel, classes equally
    likely, as a network(x_t, t, labels) with classes; label -1 (no class) predicts for the mixture.

    A one-pixel image of class c has x_t ~ N(a mu_c, a^2 s_c^2 + b^2); without a class the best
    prediction is the posterior mix sum_c r_c(x_t) E[eps | x_t, c], r_c proportional to that density.
    """
    mu_table, s_table = torch.tensor(mus, dtype=torch.float64), torch.tensor(sigmas, dtype=torch.float64)

    def given_class(x, a, b, mu, s):
        return b * (x - a * mu) / (a * a * s * s + b * b)

    def mixture(x, a, b):
        variances = [a * a * s * s + b * b for s in sigmas]
        log_density = torch.stack([-(x - a * m) ** 2 / (2 * v) - 0.5 * v.log()
                                   for m, v in zip(mus, variances, strict=True)])
        weights = torch.softmax(log_density, dim=0)
        return sum(w * given_class(x, a, b, m, s) for w, m, s in zip(weights, mus, sigmas, strict=True))

    def network(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        shape = (-1, *([1] * (x.ndim - 1)))
        abar = schedule.alpha_bars.to(x.dtype)[t].view(shape)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        if labels is None or bool((labels < 0).all()):
            return mixture(x, a, b)
        known = labels.clamp(min=0)
        out = given_class(x, a, b, mu_table.to(x.dtype)[known].view(shape), s_table.to(x.dtype)[known].view(shape))
        if bool((labels < 0).any()):
            out = torch.where((labels < 0).view(shape), mixture(x, a, b), out)
        return out

    return network
