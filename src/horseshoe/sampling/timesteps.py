"""Which timesteps a sampler visits when it takes fewer steps than T.

The three spacings as defined in diffusers (Lin et al. 2023, Table 2), for T=1000 and 10 steps:
  trailing: round(arange(T, 0, -T/N)) - 1  -> 999, 899, ..., 99   (starts at the noisiest step)
  leading:  arange(N) * (T // N), reversed -> 900, 800, ..., 0
  linspace: round(linspace(0, T-1, N)), reversed -> 999, 888, ..., 0
'trailing' starts from t = T-1, so sampling begins where training's noise ends. The sample
section defaults to 'karras' with lambda_min = -3 (measured: docs/measurements/quality.md).

'karras' spaces the steps in noise level instead of t (Karras et al. 2022, Eq. 5): with
sigma_t = sqrt((1 - abar_t) / abar_t), the i-th of N levels is
  sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
from the noisiest kept timestep down to t = 0, each level mapped to the timestep nearest in log sigma.
A larger rho puts more steps at low noise (rho = 7 in the paper); rho = 1 is uniform in sigma.

lambda_min (diffusers' lambda_min_clipped) leaves out the timesteps whose half log-SNR
lambda_t = log(sqrt(abar_t) / sqrt(1 - abar_t)) is below it, and spaces the steps over the rest:
sampling then starts from pure noise at the noisiest kept level. With the cosine schedule the last
few timesteps fall off a cliff (abar_999 = 2.4e-9, abar_998 = 2.4e-6): a few-step sampler spends a
whole step crossing them and lands off the data (measured on the demo model: docs/measurements/quality.md).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from horseshoe.diffusion.schedules import NoiseSchedule

SPACINGS = ("trailing", "leading", "linspace", "karras")


class SpacingOptions(Protocol):
    """What sampler_timesteps reads of a SampleConfig (horseshoe.sampling.config, which imports this module)."""

    sampler: str
    steps: int | None
    spacing: str
    lambda_min: float | None
    rho: float


def check_num_steps(num_train_steps: int, num_steps: int | None) -> int:
    """num_steps (None: all T), or a one-line error when it is not an integer in 1..T."""
    T = num_train_steps
    n = T if num_steps is None else num_steps
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= T:
        raise ValueError(f"num_steps must be between 1 and T={T}, got {num_steps}")
    return int(n)


def make_timesteps(num_train_steps: int, num_steps: int | None, spacing: str = "trailing") -> list[int]:
    """Descending timesteps in 0..T-1 for a sampler of num_steps steps (None: all T)."""
    T = num_train_steps
    n = check_num_steps(T, num_steps)
    if spacing == "trailing":
        # arange's float step can overshoot by one element (e.g. T=1000, N=3): keep the first N.
        steps = (np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1)[:n]
    elif spacing == "leading":
        steps = (np.arange(0, n) * (T // n)).round()[::-1].astype(np.int64)
    elif spacing == "linspace":
        steps = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
    elif spacing == "karras":
        raise ValueError("the karras spacing depends on the noise schedule: use sampler_timesteps")
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return [int(s) for s in steps]


def karras_timesteps(schedule: NoiseSchedule, usable: int, num_steps: int, rho: float) -> list[int]:
    """Descending timesteps in 0..usable-1 at the noise levels of Karras et al. Eq. 5 (see the module doc).

    Levels that land on one timestep (where sigma_t changes fast between timesteps: at the cosine
    schedule's noisy end, and near t = 0 for large rho) are pushed apart, so a sampler never takes a
    zero-length step: down from the noisy end, then back up from t = 0 for any pushed below it.
    """
    if not 1 <= num_steps <= usable:
        raise ValueError(f"num_steps must be between 1 and {usable}, got {num_steps}")
    log_sigma = -schedule.half_log_snr()[:usable].numpy()  # sigma_t = exp(-lambda_t), increasing with t
    sigma_min, sigma_max = np.exp(log_sigma[0]), np.exp(log_sigma[-1])
    ramp = np.linspace(0.0, 1.0, num_steps)
    levels = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    steps = np.abs(log_sigma[None, :] - np.log(levels)[:, None]).argmin(axis=1)
    for i in range(1, num_steps):
        steps[i] = min(steps[i], steps[i - 1] - 1)
    steps[-1] = max(steps[-1], 0)
    for i in range(num_steps - 2, -1, -1):
        steps[i] = max(steps[i], steps[i + 1] + 1)
    return [int(s) for s in steps]


def usable_steps(schedule: NoiseSchedule, lambda_min: float | None) -> int:
    """How many timesteps, from t = 0 up, have lambda_t >= lambda_min (all T when lambda_min is None)."""
    if lambda_min is None:
        return schedule.num_steps
    half_log_snr = schedule.half_log_snr()
    usable = int((half_log_snr >= lambda_min).sum())
    if usable < 1:
        raise ValueError(f"lambda_min={lambda_min} leaves no timestep (lambda_0 = {float(half_log_snr[0]):.2f})")
    return usable


def sampler_timesteps(schedule: NoiseSchedule, config: SpacingOptions) -> list[int]:
    """The descending timesteps a sampler visits for this schedule and config.

    The consistency sampler's N levels are the first N of the spacing's N + 1: each of its steps jumps to
    clean data, so a last level at t = 0 would add nothing (on the karras spacing, 2 steps visit t = 967
    and t = 796, sigma ~ 3, at rho = 3; t = 967 and t = 518, sigma ~ 1, at a student's rho = 7).
    """
    if config.sampler == "consistency":
        steps = config.steps or 1
        return _spaced(schedule, config, steps + 1)[:steps]
    return _spaced(schedule, config, config.steps)


def _spaced(schedule: NoiseSchedule, config: SpacingOptions, steps: int | None) -> list[int]:
    usable = usable_steps(schedule, config.lambda_min)
    if steps is not None and usable < steps <= schedule.num_steps:
        raise ValueError(f"{steps} steps is more than the {usable} timesteps with lambda_t >= "
                         f"lambda_min={config.lambda_min}; take fewer steps or lower lambda_min")
    if config.spacing == "karras":
        check_num_steps(schedule.num_steps, steps)
        return karras_timesteps(schedule, usable, steps or usable, config.rho)
    return make_timesteps(usable, steps, config.spacing)
