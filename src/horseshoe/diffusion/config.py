"""The diffusion section: the noise schedule, its length T, and what the network predicts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from horseshoe.diffusion.denoiser import PREDICTIONS
from horseshoe.diffusion.schedules import SCHEDULES, NoiseSchedule, make_schedule

TIMESTEPS = ("uniform", "lognormal")


@dataclass(frozen=True)
class DiffusionConfig:
    """The noise schedule, its length T, what the network predicts, and the loss weighting.

    timesteps: how training draws t: 'uniform' over 0..T-1 (Ho et al. 2020), or 'lognormal', the t
    nearest a noise level ln sigma ~ N(p_mean, p_std^2) (Karras et al. 2022, Table 1; their -1.2 and 1.2
    were set for data of standard deviation 0.5). With prediction 'v' the network already is EDM's
    preconditioned F for sigma_data = 1: with x = x_t / sqrt(abar), x0 = abar x + sqrt(1 - abar) (-v), so
    c_skip = abar, c_out = sqrt(1 - abar), c_in x = x_t, and the plain v loss is EDM's weighted loss (their
    Eq. 8 with lambda = 1 / c_out^2). 'lognormal' with 'v' therefore trains as EDM does, on this schedule.

    prediction 'flow' is rectified flow / flow matching (Liu et al. 2022; Esser et al. 2024, Sec. 2-3.1):
    the network predicts u = eps - x0, the velocity along the straight path x = (1 - s) x0 + s eps. That
    path is this one up to scale: x = x_t / (sqrt(abar_t) + sqrt(1 - abar_t)) at s = sigma_t / (1 + sigma_t),
    sigma_t = sqrt((1 - abar_t) / abar_t); the network sees x_t, the same point at unit variance (EDM's
    c_in). So ln sigma_t = logit(s), and Esser et al.'s logit-normal(m, std) sampling of s is 'lognormal'
    with p_mean = m, p_std = std (their default: 0, 1). The samplers need no change: DDIM's step is the
    Euler step of the flow's ODE in s (tests/test_samplers.py checks this).
    """

    schedule: str = "cosine"
    num_steps: int = 1000
    prediction: str = "v"
    min_snr_gamma: float | None = None
    timesteps: str = "uniform"
    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"diffusion.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.num_steps < 2:
            raise ValueError(f"diffusion.num_steps must be >= 2, got {self.num_steps}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"diffusion.prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.min_snr_gamma is not None and not 0 < self.min_snr_gamma < float("inf"):
            raise ValueError(f"diffusion.min_snr_gamma must be a positive number, got {self.min_snr_gamma}")
        if self.timesteps not in TIMESTEPS:
            raise ValueError(f"diffusion.timesteps must be one of {', '.join(TIMESTEPS)}, got {self.timesteps!r}")
        if not (math.isfinite(self.p_mean) and 0 < self.p_std < float("inf")):
            raise ValueError(f"diffusion.p_mean must be finite and diffusion.p_std positive, got {self.p_mean}, "
                             f"{self.p_std}")

    @property
    def lognormal(self) -> tuple[float, float] | None:
        """(P_mean, P_std) when training draws log-normal noise levels, else None (objectives.draw_noise)."""
        return (self.p_mean, self.p_std) if self.timesteps == "lognormal" else None

    def make_schedule(self) -> NoiseSchedule:
        """The schedule this section names, with T = num_steps."""
        return make_schedule(self.schedule, self.num_steps)
