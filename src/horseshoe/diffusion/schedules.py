"""Noise schedules: the variances beta_t of the forward process and what follows from them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """betas, alphas = 1 - betas and alpha_bars = cumprod(alphas), float64, indexed by t in 0..T-1.

    alpha_bars_prev[t] is abar_{t-1}, with abar = 1 before the first step (clean data).
    """

    name: str
    betas: torch.Tensor  # (T,) float64
    alphas: torch.Tensor = field(init=False, repr=False)
    alpha_bars: torch.Tensor = field(init=False, repr=False)
    alpha_bars_prev: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        b = self.betas
        if b.ndim != 1 or b.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(b.shape)}")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError(f"schedule {self.name!r}: every beta must lie in (0, 1)")
        object.__setattr__(self, "betas", b.to(torch.float64))
        object.__setattr__(self, "alphas", 1.0 - self.betas)
        object.__setattr__(self, "alpha_bars", torch.cumprod(self.alphas, dim=0))
        object.__setattr__(self, "alpha_bars_prev", torch.cat([self.alpha_bars.new_ones(1), self.alpha_bars[:-1]]))

    @classmethod
    def from_alpha_bars(cls, name: str, alpha_bars: torch.Tensor) -> NoiseSchedule:
        """The schedule with these abar_t: beta_t = 1 - abar_t / abar_{t-1}."""
        return cls(name=name, betas=1.0 - alpha_bars / torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]]))

    @property
    def num_steps(self) -> int:
        """T, the number of noising steps."""
        return self.betas.numel()

    def alpha_bar(self, t: int) -> float:
        """abar_t as a Python float; t = -1 is clean data (abar = 1), where samplers end."""
        return 1.0 if t < 0 else float(self.alpha_bars[t])

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) per timestep."""
        return self.alpha_bars / (1.0 - self.alpha_bars)

    def half_log_snr(self) -> torch.Tensor:
        """lambda_t = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)) per timestep, DPM-Solver's time variable."""
        return 0.5 * self.snr().log()


def linear_betas(num_steps: int) -> torch.Tensor:
    """Ho et al. 2020: beta from 1e-4 to 0.02 at T=1000, scaled by 1000/T for other T.

    The scaling (as in improved-diffusion) keeps alpha_bar at the last step near zero for any T: T=500
    gets betas 2e-4 .. 0.04.
    """
    scale = 1000.0 / num_steps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64).clamp(max=0.999)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def sigmoid_betas(
    num_steps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, max_beta: float = 0.999
) -> torch.Tensor:
    """Jabri et al. 2022: abar(t) = (sig(e/tau) - sig((t (e - s) + s)/tau)) / (sig(e/tau) - sig(s/tau)), t in [0, 1]."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    alpha_bar = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=1e-8, max=max_beta)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


def make_schedule(name: str, num_steps: int = 1000) -> NoiseSchedule:
    """Build a schedule by name from SCHEDULES with T = num_steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}")
    return NoiseSchedule(name=name, betas=SCHEDULES[name](num_steps))
