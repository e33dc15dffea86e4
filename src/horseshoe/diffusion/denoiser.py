"""Turn a network's raw output into predictions of x0 and eps: the one place where the parameterisation
lives, and where classifier-free guidance mixes the conditional and unconditional predictions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from horseshoe.diffusion import process
from horseshoe.diffusion.schedules import NoiseSchedule

# What the network is trained to output (improved-diffusion's ModelMeanType, as plain names; 'flow' is the
# flow-matching velocity eps - x0, process.flow_target).
PREDICTIONS = ("eps", "x0", "v", "flow")
NO_CLASS = -1  # the networks' label for "no class" (horseshoe.models.NO_CLASS; the layers sit side by side)

# (x_t (B,C,H,W), t (B,)) -> output, and (x_t, t, labels (B,)) -> output for a network with classes
Network = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Prediction:
    """The denoiser's estimate at one (x_t, t): the clean image and the noise that was added."""

    x0: torch.Tensor
    eps: torch.Tensor


@dataclass(frozen=True)
class Guidance:
    """What to condition on and how hard: classifier-free guidance (Ho & Salimans 2022).

    labels: (B,) class indices, one per image. scale w: the prediction is uncond + w (cond - uncond);
    0 ignores the class, 1 is the conditional model alone, > 1 pushes towards the class (the paper's
    (1 + w) eps_c - w eps_u is our scale 1 + w). interval (sigma_lo, sigma_hi): guide only where
    sigma_lo < sigma_t <= sigma_hi, sigma_t = sqrt((1 - abar_t) / abar_t), and use the conditional
    model alone (w = 1) elsewhere (Kynkaanniemi et al. 2024); None: at every noise level.
    """

    labels: torch.Tensor
    scale: float = 1.0
    interval: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.scale < math.inf:
            raise ValueError(f"guidance scale must be a number >= 0, got {self.scale}")
        if self.interval is not None and not 0 <= self.interval[0] < self.interval[1]:
            raise ValueError(f"guidance interval must be (sigma_lo, sigma_hi) with 0 <= sigma_lo < sigma_hi, "
                             f"got {list(self.interval)}")


class Denoiser:
    """A network plus its prediction type and schedule; callable as denoiser(x_t, t) -> Prediction.

    With `guidance` every call predicts for those labels; `conditioned` makes such a denoiser, and the
    samplers use it as any other.
    """

    def __init__(self, network: Network, schedule: NoiseSchedule, prediction: str = "eps",
                 guidance: Guidance | None = None) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        self.network = network
        self.schedule = schedule
        self.prediction = prediction
        self.guidance = guidance

    def conditioned(self, labels: torch.Tensor, scale: float = 1.0,
                    interval: tuple[float, float] | None = None) -> Denoiser:
        """This denoiser predicting for class `labels` (B,), guided with `scale` (see Guidance)."""
        return Denoiser(self.network, self.schedule, self.prediction, Guidance(labels, scale, interval))

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor, clip_x0: bool = False) -> Prediction:
        """Predict x0 and eps at timestep t; with clip_x0, x0 is clamped to [-1, 1] and eps follows it."""
        t_batch = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        out = (self.network(x_t, t_batch) if self.guidance is None else self._guided(x_t, t, t_batch)).to(x_t.dtype)
        s = self.schedule
        if self.prediction == "eps":
            eps, x0 = out, process.x0_from_eps(s, x_t, t_batch, out)
        elif self.prediction == "x0":
            x0, eps = out, process.eps_from_x0(s, x_t, t_batch, out)
        elif self.prediction == "v":
            x0, eps = process.x0_from_v(s, x_t, t_batch, out), process.eps_from_v(s, x_t, t_batch, out)
        else:
            x0, eps = process.x0_eps_from_flow(s, x_t, t_batch, out)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = process.eps_from_x0(s, x_t, t_batch, x0)
        return Prediction(x0=x0, eps=eps)

    def _scale(self, t: int | torch.Tensor, t_batch: torch.Tensor) -> float | torch.Tensor:
        """w at t: the guidance scale inside the interval, 1 outside; a (B, 1, 1, 1) tensor for a tensor t."""
        g = self.guidance
        if g.interval is None:
            return g.scale
        if isinstance(t, int) or (torch.is_tensor(t) and t.ndim == 0):
            abar = self.schedule.alpha_bar(int(t))
            sigma = math.sqrt((1 - abar) / abar)
            return g.scale if g.interval[0] < sigma <= g.interval[1] else 1.0
        abar = self.schedule.alpha_bars.to(t_batch.device)[t_batch]
        sigma = ((1 - abar) / abar).sqrt()
        inside = (g.interval[0] < sigma) & (sigma <= g.interval[1])
        return (1.0 + (g.scale - 1.0) * inside.to(torch.float32)).view(-1, 1, 1, 1)

    def _guided(self, x_t: torch.Tensor, t: int | torch.Tensor, t_batch: torch.Tensor) -> torch.Tensor:
        """uncond + w (cond - uncond) of the raw output (Ho & Salimans 2022, Eq. 6), both halves in one call.

        eps, x0, v and flow are affine in the output with the same coefficients at one (x_t, t), and the two
        weights sum to 1, so mixing the raw output mixes eps (and x0) identically. w = 1 and w = 0 call
        the network once, on the conditional or the unconditional half alone: exactly those predictions.
        """
        labels = self.guidance.labels.to(x_t.device)
        if labels.shape != (x_t.shape[0],):
            raise ValueError(f"guidance has {tuple(labels.shape)} labels for a batch of {x_t.shape[0]} images")
        w = self._scale(t, t_batch)
        no_class = torch.full_like(labels, NO_CLASS)
        if isinstance(w, float) and w == 1.0:
            return self.network(x_t, t_batch, labels)
        if isinstance(w, float) and w == 0.0:
            return self.network(x_t, t_batch, no_class)
        both = self.network(torch.cat([x_t, x_t]), torch.cat([t_batch, t_batch]), torch.cat([labels, no_class]))
        cond, uncond = both.chunk(2)
        return uncond + w * (cond - uncond)
