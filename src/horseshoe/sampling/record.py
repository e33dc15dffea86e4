"""What every sampler yields at every step."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
