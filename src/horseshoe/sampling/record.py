"""What every sampler yields at every step, and the options every sampler takes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPACINGS = ("trailing", "leading", "linspace", "karras")
DDPM_VARIANCES = ("posterior", "beta")


@dataclass(frozen=True)
class StepRecord:
    """One step of a sampler: the model was evaluated at (x_t, t) and the update produced x_prev.

    index: 0-based step number in this run; t: the timestep evaluated; x0_hat: the predicted clean
    image at this step; x_prev: the sample after the step (on the last step: the final sample).
    """

    index: int
    t: int
    x_t: torch.Tensor
    x0_hat: torch.Tensor
    x_prev: torch.Tensor


@dataclass(frozen=True)
class SamplerConfig:
    """Options shared by all samplers; each sampler reads the ones that apply to it.

    num_steps: network evaluations (None: all T steps); spacing: how those steps are picked from
    0..T-1 (see horseshoe.sampling.timesteps); eta: DDIM's noise scale (0 = deterministic);
    variance: DDPM's sigma_t^2, 'posterior' (beta tilde) or 'beta'; clip_x0: clamp x0_hat to [-1, 1];
    lambda_min: start at the noisiest timestep whose half log-SNR is at least this (None: t = T-1);
    rho: the karras spacing's exponent (more steps at low noise as it grows).
    """

    num_steps: int | None = None
    spacing: str = "trailing"
    eta: float = 0.0
    variance: str = "posterior"
    clip_x0: bool = False
    lambda_min: float | None = None
    rho: float = 3.0

    def __post_init__(self) -> None:
        if self.num_steps is not None and (isinstance(self.num_steps, bool) or self.num_steps <= 0):
            raise ValueError(f"num_steps must be a positive integer, got {self.num_steps}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {self.spacing!r}; choose one of {', '.join(SPACINGS)}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.lambda_min is not None and not -1e3 < self.lambda_min < 1e3:
            raise ValueError(f"lambda_min must be a finite number (or None), got {self.lambda_min}")
        if not 0 < self.rho < 1e3:
            raise ValueError(f"rho must be a positive number, got {self.rho}")
        if self.variance not in DDPM_VARIANCES:
            raise ValueError(f"unknown DDPM variance {self.variance!r}; choose one of {', '.join(DDPM_VARIANCES)}")
