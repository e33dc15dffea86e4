"""Held-out denoising loss, and the variational bound on the negative log-likelihood in bits per dimension.

The bound (Ho et al. 2020, Eq. 5 and Sec. 3.3; improved-diffusion's calc_bpd_loop), per image:

    L = L_prior + sum_{t=1}^{T-1} L_t + L_0
    L_prior = KL( q(x_{T-1} | x0) || N(0, I) )
    L_t     = KL( q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t) ),  x_t ~ q(x_t | x0)
    L_0     = -log p(x0 | x at t=0), a Gaussian discretised to the 256 levels of 8-bit data (Eq. 13)

p(x_{t-1} | x_t) = N(posterior mean with x0_hat clipped to [-1, 1], beta_tilde_t), with beta_tilde_1
also at t = 0 where beta_tilde_0 = 0 ("fixedsmall" in improved-diffusion). Summing all T-1 terms
costs T-1 network evaluations per image; with K < T-1 the sum is estimated from one random timestep
in each of K equal strata, weighted by the stratum's size: unbiased, with far less variance than K
uniform draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from horseshoe.diffusion import Denoiser, q_sample
from horseshoe.diffusion.process import gather, q_posterior_mean_variance

LOSS_TIMESTEPS_FRACTIONS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9)


def normal_kl(mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) per element, in nats."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log P(x) per element for 8-bit data in [-1, 1]: the N(mean, std^2) mass of x's bin (Ho et al. Eq. 13)."""
    upper = (x + 1.0 / 255 - mean) / std
    lower = (x - 1.0 / 255 - mean) / std
    log_cdf_upper = torch.special.log_ndtr(upper)  # P(X < upper), for the bottom bin x = -1
    log_sf_lower = torch.special.log_ndtr(-lower)  # P(X > lower), for the top bin x = +1
    middle = torch.log((torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp_min(1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, middle))


@dataclass(frozen=True)
class BoundResult:
    """The bound in bits/dim and its parts (mean over images)."""

    bits_per_dim: float
    prior_bpd: float
    terms_bpd: float
    decoder_bpd: float
    timesteps_used: int
    images: int

    def as_dict(self) -> dict:
        return {"bits_per_dim": self.bits_per_dim, "prior_bpd": self.prior_bpd, "diffusion_terms_bpd": self.terms_bpd,
                "decoder_bpd": self.decoder_bpd, "timesteps_used": self.timesteps_used, "images": self.images}


def stratified_timesteps(num_steps: int, k: int, rng: np.random.Generator) -> list[tuple[int, float]]:
    """(t, weight) pairs covering t = 1..T-1: all of them, or one per stratum when k < T-1."""
    ts = np.arange(1, num_steps)
    if k >= len(ts):
        return [(int(t), 1.0) for t in ts]
    return [(int(rng.choice(stratum)), float(len(stratum))) for stratum in np.array_split(ts, k)]


@torch.no_grad()
def variational_bound(denoiser: Denoiser, x0: torch.Tensor, timesteps: int = 50, seed: int = 0) -> BoundResult:
    """Bits per dimension of 8-bit images x0 (float (N, C, H, W) in [-1, 1]) under the model."""
    s = denoiser.schedule
    T = s.num_steps
    x0 = x0.double()
    dims = x0[0].numel()
    g = torch.Generator(x0.device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    beta_tilde = (1 - s.alpha_bars_prev) / (1 - s.alpha_bars) * s.betas  # Eq. 7, Ho et al.

    abar_T = gather(s.alpha_bars, T - 1, x0)
    prior = normal_kl(abar_T.sqrt() * x0, 1 - abar_T, torch.zeros_like(x0), torch.ones_like(x0)).flatten(1).sum(1)

    def predicted(x_t: torch.Tensor, t: int) -> torch.Tensor:
        x0_hat = denoiser(x_t.float(), t, clip_x0=True).x0.double()
        return q_posterior_mean_variance(s, x0_hat, x_t, t)[0]

    terms = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    pairs = stratified_timesteps(T, timesteps, rng)
    for t, weight in pairs:
        eps = torch.randn(x0.shape, generator=g, device=x0.device, dtype=torch.float64)
        x_t = q_sample(s, x0, t, eps)
        true_mean, true_var = q_posterior_mean_variance(s, x0, x_t, t)
        var = gather(beta_tilde, t, x0).expand_as(x0)
        terms += weight * normal_kl(true_mean, true_var, predicted(x_t, t), var).flatten(1).sum(1)

    eps = torch.randn(x0.shape, generator=g, device=x0.device, dtype=torch.float64)
    x_first = q_sample(s, x0, 0, eps)
    std_first = gather(beta_tilde, 1, x0).sqrt()  # beta_tilde_0 = 0: use beta_tilde_1 (fixedsmall)
    decoder = -discretized_gaussian_log_likelihood(x0, predicted(x_first, 0), std_first).flatten(1).sum(1)

    def bpd(nats: torch.Tensor) -> float:
        return float(nats.mean()) / (dims * math.log(2))

    return BoundResult(bits_per_dim=bpd(prior + terms + decoder), prior_bpd=bpd(prior), terms_bpd=bpd(terms),
                       decoder_bpd=bpd(decoder), timesteps_used=len(pairs) + 1, images=x0.shape[0])


@dataclass(frozen=True)
class DenoisingLoss:
    """Mean squared errors of the eps and x0 predictions at one timestep t, on fixed noise."""

    t: int
    eps_mse: float
    x0_mse: float


@dataclass(frozen=True)
class DenoisingLosses:
    """DenoisingLoss at each of a few fixed timesteps, in the order of their fractions of T."""

    losses: tuple[DenoisingLoss, ...]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """{str(t): {"eps_mse": ..., "x0_mse": ...}}, as eval.json has it."""
        return {str(loss.t): {"eps_mse": loss.eps_mse, "x0_mse": loss.x0_mse} for loss in self.losses}


@torch.no_grad()
def denoising_losses(denoiser: Denoiser, x0: torch.Tensor, seed: int = 0,
                     fractions: tuple[float, ...] = LOSS_TIMESTEPS_FRACTIONS) -> DenoisingLosses:
    """Mean squared error of the eps and x0 predictions at fixed timesteps (t = fraction * T), fixed noise."""
    s = denoiser.schedule
    g = torch.Generator(x0.device).manual_seed(seed)
    out = []
    for fraction in fractions:
        t = min(s.num_steps - 1, int(round(fraction * s.num_steps)))
        eps = torch.randn(x0.shape, generator=g, device=x0.device, dtype=x0.dtype)
        pred = denoiser(q_sample(s, x0, t, eps), t)
        out.append(DenoisingLoss(t, eps_mse=float((pred.eps - eps).pow(2).mean()),
                                 x0_mse=float((pred.x0 - x0).pow(2).mean())))
    return DenoisingLosses(tuple(out))
