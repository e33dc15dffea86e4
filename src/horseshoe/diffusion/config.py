"""The diffusion section: the noise schedule, its length T, and what the network predicts."""

from __future__ import annotations

from dataclasses import dataclass

from horseshoe.diffusion.denoiser import PREDICTIONS
from horseshoe.diffusion.schedules import SCHEDULES, NoiseSchedule, make_schedule


@dataclass(frozen=True)
class DiffusionConfig:
    """The noise schedule, its length T, what the network predicts, and the loss weighting."""

    schedule: str = "cosine"
    num_steps: int = 1000
    prediction: str = "v"
    min_snr_gamma: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"diffusion.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.num_steps < 2:
            raise ValueError(f"diffusion.num_steps must be >= 2, got {self.num_steps}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"diffusion.prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.min_snr_gamma is not None and not 0 < self.min_snr_gamma < float("inf"):
            raise ValueError(f"diffusion.min_snr_gamma must be a positive number, got {self.min_snr_gamma}")

    def make_schedule(self) -> NoiseSchedule:
        """The schedule this section names, with T = num_steps."""
        return make_schedule(self.schedule, self.num_steps)
