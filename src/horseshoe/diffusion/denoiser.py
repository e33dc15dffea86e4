"""Turn a network's raw output into predictions of x0 and eps: the one place where the parameterisation lives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from horseshoe.diffusion import process
from horseshoe.diffusion.schedules import NoiseSchedule

# What the network is trained to output (improved-diffusion's ModelMeanType, as plain names).
PREDICTIONS = ("eps", "x0", "v")

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B,C,H,W), t (B,)) -> output


@dataclass(frozen=True)
class Prediction:
    """The denoiser's estimate at one (x_t, t): the clean image and the noise that was added."""

    x0: torch.Tensor
    eps: torch.Tensor


class Denoiser:
    """A network plus its prediction type and schedule; callable as denoiser(x_t, t) -> Prediction."""

    def __init__(self, network: Network, schedule: NoiseSchedule, prediction: str = "eps") -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        self.network = network
        self.schedule = schedule
        self.prediction = prediction

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor, clip_x0: bool = False) -> Prediction:
        """Predict x0 and eps at timestep t; with clip_x0, x0 is clamped to [-1, 1] and eps follows it."""
        t_batch = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        out = self.network(x_t, t_batch).to(x_t.dtype)
        s = self.schedule
        if self.prediction == "eps":
            eps, x0 = out, process.x0_from_eps(s, x_t, t_batch, out)
        elif self.prediction == "x0":
            x0, eps = out, process.eps_from_x0(s, x_t, t_batch, out)
        else:
            x0, eps = process.x0_from_v(s, x_t, t_batch, out), process.eps_from_v(s, x_t, t_batch, out)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = process.eps_from_x0(s, x_t, t_batch, x0)
        return Prediction(x0=x0, eps=eps)
