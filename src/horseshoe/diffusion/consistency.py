"""Consistency objectives: tune a diffusion model into a consistency function f(x_t, t) ~ x0 of the whole ODE path,
which a sampler of 1 to 4 network evaluations can use (horseshoe.sampling.consistency).

Two ways to build the point x_r one step nearer the data on the path through x_t (r < t, same eps):
- 'ect', easy consistency tuning (Geng et al. 2024): x_r = sqrt(abar_r) x0 + sqrt(1 - abar_r) eps from the
  data itself, the consistency-training estimate; no teacher is called, and the distance t - r shrinks
  stage by stage from the diffusion loss (r = clean) towards the consistency condition.
- 'cd', consistency distillation (Song et al. 2023, Alg. 2): x_r is the teacher's DDIM step from x_t, so the
  student follows the teacher's ODE, and inherits its errors.
Either way the loss is d(f_theta(x_t, t), stopgrad f_theta(x_r, r)) / (sigma_t - sigma_r), with the pseudo-Huber
d of Song & Dhariwal 2023 and the 1 / (t - r) weighting of Geng et al.; f at r = clean is x0 itself (CT) or the
teacher's x0_hat (CD). Noise levels live in sigma_t = sqrt((1 - abar_t) / abar_t) (x_t / sqrt(abar_t) =
x0 + sigma_t eps, EDM's variance-exploding view), each mapped to the nearest timestep of the discrete schedule.
The third method, 'trajectory' (the default of `horseshoe distill`), needs no x_r: trajectory_loss regresses f at
points of the teacher's ODE paths onto where those paths end (horseshoe.sampling.trajectories).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from horseshoe.diffusion.denoiser import Denoiser, Network
from horseshoe.diffusion.objectives import nearest_timesteps, network_output
from horseshoe.diffusion.process import eps_from_x0, q_sample
from horseshoe.diffusion.schedules import NoiseSchedule

METHODS = ("ect", "cd", "trajectory")
CLEAN = -1  # r's "timestep" of clean data: f(x0, clean) = x0


@dataclass(frozen=True)
class PairDraws:
    """One batch's draws: t, and eps (B, C, H, W) for the diffusion loss; also the nearer level r (CLEAN: the
    data) for a consistency loss; or, for trajectory distillation, which teacher path each example takes (index)
    at which of its levels (level, t being that level's timestep)."""

    t: torch.Tensor  # (B,) int64
    eps: torch.Tensor | None = None
    r: torch.Tensor | None = None  # (B,) int64
    index: torch.Tensor | None = None  # (B,) int64
    level: torch.Tensor | None = None  # (B,) int64

    def rows(self, rows: slice) -> PairDraws:
        """The draws of a micro-batch."""
        return PairDraws(*(None if v is None else v[rows] for v in (self.t, self.eps, self.r, self.index, self.level)))


def sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t) per timestep, float64 (T,)."""
    return ((1.0 - schedule.alpha_bars) / schedule.alpha_bars).sqrt()


def nearer_sigma(sigma_t: torch.Tensor, stage: int, q: float = 2.0, k: float = 8.0, b: float = 0.5) -> torch.Tensor:
    """sigma_r = sigma_t (1 - (1 + k sigmoid(-b sigma_t)) / q^(stage + 1)), at least 0 (Geng et al. 2024, Sec. 3).

    Stage 0 puts r at the clean data for most levels (the diffusion loss the model was trained with); each
    later stage divides t - r by q. The sigmoid widens the gap at low noise, where the path is short. b = 0.5
    is the paper's b = 1 for data of standard deviation 1 rather than EDM's 0.5.
    """
    adjust = 1.0 + k * torch.sigmoid(-b * sigma_t)
    return (sigma_t * (1.0 - adjust / q ** (stage + 1))).clamp(min=0.0)


def draw_pairs(schedule: NoiseSchedule, shape: tuple[int, ...], generator: torch.Generator, stage: int,
               p_mean: float, p_std: float, usable: int, q: float = 2.0) -> PairDraws:
    """t at ln sigma ~ N(p_mean, p_std^2) (EDM's log-normal; ECT's -1.1, 2.0 shifted by ln 2 for data of std 1),
    among the `usable` lowest timesteps (those a sampler starts from), r from nearer_sigma, and eps ~ N(0, I)."""
    n = torch.randn(shape[0], generator=generator, device=generator.device, dtype=torch.float64)
    t = nearest_timesteps(schedule, (p_mean + p_std * n).exp()).clamp(max=usable - 1)
    table = sigmas(schedule).to(t.device)
    sigma_r = nearer_sigma(table[t], stage, q)
    r = nearest_timesteps(schedule, sigma_r.clamp(min=float(table[0]) / 2))
    r = torch.where(sigma_r < table[0] / 2, CLEAN, torch.minimum(r, t - 1))  # t = 0: r = t - 1 = CLEAN
    eps = torch.randn(shape, generator=generator, device=generator.device)
    return PairDraws(t=t, r=r, eps=eps)


def pseudo_huber(diff: torch.Tensor, c: float) -> torch.Tensor:
    """sqrt(||diff||^2 + c^2) - c per example (Song & Dhariwal 2023, Eq. 11): L2 near 0, L1-like far away."""
    return (diff.flatten(1).pow(2).sum(1) + c * c).sqrt() - c


def huber_c(shape: tuple[int, ...]) -> float:
    """c = 0.00054 sqrt(d) for images of d values (Song & Dhariwal 2023, Sec. 3.3), doubled for data in [-1, 1]
    against their sigma_data 0.5."""
    return 2 * 0.00054 * math.sqrt(math.prod(shape[1:]))


def x0_of(network: Network, schedule: NoiseSchedule, prediction: str, x_t: torch.Tensor, t: torch.Tensor,
          labels: torch.Tensor | None, augment: torch.Tensor | None) -> torch.Tensor:
    """The network's x0_hat at (x_t, t): the consistency function f (clamped to t >= 0; callers handle CLEAN)."""
    def net(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return network_output(network, x, steps, labels, augment)

    return Denoiser(net, schedule, prediction)(x_t, t.clamp(min=0)).x0


def consistency_loss(network: Network, schedule: NoiseSchedule, x0: torch.Tensor, draws: PairDraws,
                     prediction: str, c: float, labels: torch.Tensor | None = None,
                     augment: torch.Tensor | None = None, teacher: Network | None = None) -> torch.Tensor:
    """Mean over the batch of pseudo_huber(f(x_t, t) - stopgrad f(x_r, r)) / (sigma_t - sigma_r).

    teacher None: consistency tuning, x_r from the data with the same eps. teacher given: consistency
    distillation, x_r the teacher's DDIM step from x_t. The target's forward pass reuses the random
    state of the online one, so both see the same dropout mask (Geng et al. 2024).
    """
    t, r = draws.t, draws.r
    x_t = q_sample(schedule, x0, t, draws.eps)
    rng = _rng_state(x_t.device)
    f_t = x0_of(network, schedule, prediction, x_t, t, labels, augment).float()
    clean = (r == CLEAN).view(-1, 1, 1, 1)
    with torch.no_grad():
        if teacher is None:
            x_r, target_clean = q_sample(schedule, x0, r.clamp(min=0), draws.eps), x0
        else:
            x0_hat = x0_of(teacher, schedule, prediction, x_t, t, labels, augment)
            eps_hat = eps_from_x0(schedule, x_t, t, x0_hat)  # DDIM (eta = 0) from t to r
            x_r, target_clean = q_sample(schedule, x0_hat, r.clamp(min=0), eps_hat), x0_hat
        target = target_clean.float()
        if not bool(clean.all()):  # early in tuning most r are clean: no second pass then
            _set_rng_state(x_t.device, rng)
            f_r = x0_of(network, schedule, prediction, x_r, r, labels, augment).float()
            target = torch.where(clean, target, f_r)
    table = sigmas(schedule).to(t.device)
    gap = (table[t] - torch.where(r == CLEAN, 0.0, table[r.clamp(min=0)])).float()
    return (pseudo_huber(f_t - target, c) / gap).mean()


def trajectory_loss(x0_hat: torch.Tensor, x0: torch.Tensor, c: float) -> torch.Tensor:
    """Mean over the batch of pseudo_huber(f(x_t, t) - x0): x0_hat = f at points x_t of the teacher's ODE paths
    (x0_of), x0 where those paths end (horseshoe.sampling.trajectories)."""
    return pseudo_huber(x0_hat.float() - x0.float(), c).mean()


def _rng_state(device: torch.device) -> tuple[torch.Tensor, ...]:
    """The random state dropout draws from on `device` (the CPU's, and the GPU's there)."""
    return (torch.get_rng_state(),) + ((torch.cuda.get_rng_state(device),) if device.type == "cuda" else ())


def _set_rng_state(device: torch.device, state: tuple[torch.Tensor, ...]) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)
