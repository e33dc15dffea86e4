"""The training objective: regress the network onto eps, x0, v or the flow velocity at a random timestep."""

from __future__ import annotations

import torch

from horseshoe.diffusion import process
from horseshoe.diffusion.denoiser import NO_CLASS, PREDICTIONS, Network
from horseshoe.diffusion.schedules import NoiseSchedule

OBJECTIVES = PREDICTIONS  # the network is trained on exactly what it is later read as predicting


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma loss weight (Hang et al. 2023), expressed for each prediction target.

    The paper weights the x0-space loss by min(SNR, gamma); at one x_t an eps error is -sqrt(SNR) times
    the x0 error, so an eps loss is SNR times the x0 loss, a v loss (SNR + 1) times it and a flow loss
    (u = eps - x0) (sqrt(SNR) + 1)^2 times it; those targets divide by the same factor.
    """
    clipped = snr.clamp(max=gamma)
    if prediction == "eps":
        return clipped / snr
    if prediction == "x0":
        return clipped
    if prediction == "flow":
        return clipped / (snr.sqrt() + 1.0).pow(2)
    return clipped / (snr + 1.0)


def nearest_timesteps(schedule: NoiseSchedule, sigma: torch.Tensor) -> torch.Tensor:
    """The t whose sigma_t = sqrt((1 - abar_t) / abar_t) lies nearest each sigma in log space (int64, 0..T-1):
    a noise level of the variance-exploding view (Karras et al. 2022, Eq. 1) on this discrete schedule."""
    log_sigmas = -schedule.half_log_snr().to(sigma.device)  # log sigma_t = -lambda_t, increasing in t
    target = sigma.double().log()
    upper = torch.searchsorted(log_sigmas, target).clamp(1, schedule.num_steps - 1)
    nearer_lower = (target - log_sigmas[upper - 1]) < (log_sigmas[upper] - target)
    return torch.where(nearer_lower, upper - 1, upper)


def draw_noise(
    schedule: NoiseSchedule, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float32,
    lognormal: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """t per example and eps ~ N(0, I), drawn from generator (on its device).

    t ~ Uniform{0..T-1} (Ho et al. 2020), or with lognormal = (P_mean, P_std) the t of a noise level
    ln sigma ~ N(P_mean, P_std^2) (Karras et al. 2022, Table 1: -1.2, 1.2), which spends the training on
    the middle noise levels that decide an image's shape rather than on nearly clean or pure-noise ones.
    """
    if lognormal is None:
        t = torch.randint(0, schedule.num_steps, (shape[0],), generator=generator, device=generator.device)
    else:
        n = torch.randn(shape[0], generator=generator, device=generator.device, dtype=torch.float64)
        t = nearest_timesteps(schedule, (lognormal[0] + lognormal[1] * n).exp())
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return t, eps


def drop_labels(labels: torch.Tensor, p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Each label replaced by NO_CLASS with probability p (Ho & Salimans 2022, Algorithm 1: p_uncond),
    decided by one U(0, 1) draw per label, so one network learns both halves of guidance."""
    return torch.where(uniforms.to(labels.device) < p, NO_CLASS, labels)


def network_output(network: Network, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                   augment: torch.Tensor | None = None) -> torch.Tensor:
    """network(x_t, t[, labels][, augment=]): the class and augmentation inputs passed only where the run has them,
    so a network without them (and any plain (x_t, t) function) is called as it expects."""
    if augment is not None:
        return network(x_t, t, labels, augment=augment)
    return network(x_t, t) if labels is None else network(x_t, t, labels)


def loss_from_noise(
    network: Network,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    prediction: str = "eps",
    min_snr_gamma: float | None = None,
    labels: torch.Tensor | None = None,
    augment: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of || target - network(x_t, t[, labels][, augment=]) ||^2 per pixel (Ho et al. Eq. 14,
    'L_simple').

    With non-leaking augmentation x0 is the augmented image and `augment` its parameters (B, augment_dim):
    the network learns the augmented images told which they are (Karras et al. 2022, EDM, Appendix C.4).
    """
    if prediction not in OBJECTIVES:
        raise ValueError(f"unknown prediction target {prediction!r}; choose one of {', '.join(OBJECTIVES)}")
    if min_snr_gamma is not None and min_snr_gamma <= 0:
        raise ValueError(f"min_snr_gamma must be > 0, got {min_snr_gamma}")
    x_t = process.q_sample(schedule, x0, t, eps)
    if prediction == "eps":
        target = eps
    elif prediction == "x0":
        target = x0
    elif prediction == "flow":
        target = process.flow_target(x0, eps)
    else:
        target = process.v_target(schedule, x0, t, eps)
    out = network_output(network, x_t, t, labels, augment)
    dtype = torch.promote_types(target.dtype, torch.float32)  # bf16/fp16 autocast output: compare in float32
    per_example = (out.to(dtype) - target.to(dtype)).pow(2).mean(dim=tuple(range(1, x0.ndim)))
    if min_snr_gamma is not None:
        snr = schedule.snr().to(x0.device)[t].to(dtype)
        per_example = per_example * min_snr_weight(snr, min_snr_gamma, prediction)
    return per_example.mean()


def training_loss(
    network: Network,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    generator: torch.Generator,
    prediction: str = "eps",
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """The loss at a random t and eps drawn from ``generator`` (which must live on x0's device)."""
    t, eps = draw_noise(schedule, tuple(x0.shape), generator, x0.dtype)
    return loss_from_noise(network, schedule, x0, t, eps, prediction, min_snr_gamma)
