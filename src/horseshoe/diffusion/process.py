"""The forward process q(x_t | x0), its posterior q(x_{t-1} | x_t, x0), and eps / x0 / v / flow conversions.

All functions are pure: they take a NoiseSchedule and tensors, gather the schedule's float64 values at
``t`` and compute in the dtype of ``x``. ``t`` is an int or a LongTensor of shape (B,).
"""

from __future__ import annotations

import torch

from horseshoe.diffusion.schedules import NoiseSchedule


def gather(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast over ``like`` (B, C, H, W), in like's dtype and device."""
    if isinstance(t, int):
        return values[t].to(device=like.device, dtype=like.dtype)
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """Draw x_t from q(x_t | x0): x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.  # Eq. 4, Ho et al."""
    alpha_bar = gather(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * eps


def q_posterior_mean_variance(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0).  # Eqs. 6-7, Ho et al.

    mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    variance = beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
    """
    abar_prev = schedule.alpha_bars_prev
    coef_x0 = abar_prev.sqrt() * schedule.betas / (1.0 - schedule.alpha_bars)
    coef_xt = schedule.alphas.sqrt() * (1.0 - abar_prev) / (1.0 - schedule.alpha_bars)
    variance = (1.0 - abar_prev) / (1.0 - schedule.alpha_bars) * schedule.betas
    mean = gather(coef_x0, t, x_t) * x0 + gather(coef_xt, t, x_t) * x_t
    return mean, gather(variance, t, x_t).expand_as(x_t)


def x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """Invert Eq. 4 for x0: x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    alpha_bar = gather(schedule.alpha_bars, t, x_t)
    return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
    """Invert Eq. 4 for eps: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    alpha_bar = gather(schedule.alpha_bars, t, x_t)
    return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()


def v_target(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """The velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0.  # Salimans & Ho 2022, Sec. 4"""
    alpha_bar = gather(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0


def x0_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v."""
    alpha_bar = gather(schedule.alpha_bars, t, x_t)
    return alpha_bar.sqrt() * x_t - (1.0 - alpha_bar).sqrt() * v


def eps_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v."""
    alpha_bar = gather(schedule.alpha_bars, t, x_t)
    return (1.0 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


def flow_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The flow-matching velocity u = eps - x0: d/ds of the straight path x = (1 - s) x0 + s eps.  # Liu et al. 2022,
    Eq. 1; Lipman et al. 2023; Esser et al. 2024, Sec. 2. It does not depend on t: every t's target is the same line."""
    return eps - x0


def x0_eps_from_flow(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 and eps from u = eps - x0 and x_t = a x0 + b eps (a = sqrt(abar_t), b = sqrt(1 - abar_t)):
    x0 = (x_t - b u) / (a + b), eps = (x_t + a u) / (a + b)."""
    alpha_bar = gather(schedule.alpha_bars, t, x_t)
    a, b = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    return (x_t - b * u) / (a + b), (x_t + a * u) / (a + b)
