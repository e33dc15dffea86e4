"""Editing real images with a trained model, through the same sampler generators as sampling.

- ``repaint``: fill a masked region so it fits the rest (Lugmayr et al. 2022, RePaint).
- ``sdedit``: noise an image part of the way and denoise it back (Meng et al. 2022, SDEdit).
- ``invert`` / ``regenerate``: deterministic DDIM inversion to noise and back (Song et al. 2021).

Each is a generator of StepRecords like a sampler, so the pictures and GIFs of sampling work on
them; ``finish`` takes the final image. Masks are 1 where the model is to generate (white), 0
where the image is kept; ``MASKS`` are ready-made ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from horseshoe.diffusion.denoiser import Denoiser
from horseshoe.diffusion.process import q_sample
from horseshoe.sampling import Steps, get_sampler, slerp
from horseshoe.sampling.config import SampleConfig
from horseshoe.sampling.ddim import ddim, ddim_invert
from horseshoe.sampling.record import StepRecord
from horseshoe.sampling.timesteps import sampler_timesteps


def _half(side: str) -> Callable[[int, int], torch.Tensor]:
    def mask(height: int, width: int) -> torch.Tensor:
        m = torch.zeros(height, width)
        if side == "left":
            m[:, : width // 2] = 1
        elif side == "right":
            m[:, width // 2:] = 1
        elif side == "top":
            m[: height // 2] = 1
        else:
            m[height // 2:] = 1
        return m

    return mask


def _center(height: int, width: int) -> torch.Tensor:
    """The middle half of each side (a quarter of the area)."""
    m = torch.zeros(height, width)
    m[height // 4: height - height // 4, width // 4: width - width // 4] = 1
    return m


MASKS: dict[str, Callable[[int, int], torch.Tensor]] = {
    "left-half": _half("left"),
    "right-half": _half("right"),
    "top-half": _half("top"),
    "bottom-half": _half("bottom"),
    "center": _center,
}


def builtin_mask(name: str, height: int, width: int) -> torch.Tensor:
    """A ready-made mask (1, 1, H, W): 1 = to generate."""
    if name not in MASKS:
        raise ValueError(f"unknown mask {name!r}; choose one of {', '.join(MASKS)} or give a mask image")
    return MASKS[name](height, width)[None, None]


def finish(records: Iterable[StepRecord], x: torch.Tensor) -> torch.Tensor:
    """The final image of a run of records: the last x_prev, or x when there were no steps."""
    for record in records:
        x = record.x_prev
    return x


def _randn(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def repaint_length(denoiser: Denoiser, config: SampleConfig, resample: int) -> int:
    """How many records `repaint` yields: each step `resample` times, but the last (no jump back from clean)."""
    return (len(sampler_timesteps(denoiser.schedule, config)) - 1) * resample + 1


def repaint(denoiser: Denoiser, x0: torch.Tensor, mask: torch.Tensor, x_T: torch.Tensor, config: SampleConfig,
            generator: torch.Generator, resample: int = 1) -> Iterator[StepRecord]:
    """Inpainting by RePaint's Algorithm 1 (Lugmayr et al. 2022) on config.sampler's own steps.

    Notation: t -> s    one step of the sampler between its visited timesteps (s = -1: clean data)
              m         mask, 1 = to generate (the paper's m marks the known pixels: ours is 1 - m)
              U         resample: how often each step is taken, with a jump back between takes
    x_s^known   = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps, fresh eps; x0 itself at s = -1   # Alg. 1, lines 4-5
    x_s^unknown = the sampler's step from x_t                                              # lines 6-7
    x_s         = (1 - m) x_s^known + m x_s^unknown                                        # line 8
    jump back:  x_t ~ q(x_t | x_s) = N(sqrt(abar_t / abar_s) x_s, (1 - abar_t / abar_s) I)  # line 10, respaced
    The kept pixels of the final image are x0's exactly. Each jump restarts the sampler at t, so a
    multistep solver takes a first-order step there (its history belongs to the pre-jump path).
    """
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be a positive integer, got {resample}")
    return _repaint(denoiser, x0, mask, x_T, config, generator, resample)


@torch.no_grad()
def _repaint(denoiser: Denoiser, x0: torch.Tensor, mask: torch.Tensor, x_T: torch.Tensor, config: SampleConfig,
             generator: torch.Generator, resample: int) -> Iterator[StepRecord]:
    schedule = denoiser.schedule
    timesteps = sampler_timesteps(schedule, config)
    sampler = get_sampler(config.sampler)
    x0, mask = x0.to(x_T).expand_as(x_T), mask.to(x_T)  # x0 may be one image for a batch
    steps: Steps = sampler(denoiser, x_T, config, generator)
    record, i, take, index = next(steps), 0, 1, 0
    while True:
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        known = x0 if s < 0 else q_sample(schedule, x0, s, _randn(x0, generator))
        x_s = (1 - mask) * known + mask * record.x_prev
        yield StepRecord(index=index, t=record.t, x_t=record.x_t, x0_hat=record.x0_hat, x_prev=x_s)
        index += 1
        if take < resample and s >= 0:
            alpha = schedule.alpha_bar(timesteps[i]) / schedule.alpha_bar(s)  # the respaced step's alpha
            x_t = alpha**0.5 * x_s + (1 - alpha) ** 0.5 * _randn(x_s, generator)
            steps.close()
            steps = sampler(denoiser, x_t, config, generator, start=i)
            record, take = next(steps), take + 1
        elif s >= 0:
            record, i, take = steps.send(x_s), i + 1, 1
        else:
            return


def sdedit_start(num_steps: int, strength: float) -> int:
    """The position in a sampler's num_steps timesteps where SDEdit at this strength starts.

    round(strength * num_steps) steps are left to run, at least one for any strength > 0.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    left = 0 if strength == 0 else max(1, round(strength * num_steps))
    return num_steps - left


def sdedit(denoiser: Denoiser, x0: torch.Tensor, eps: torch.Tensor, config: SampleConfig,
           generator: torch.Generator, strength: float) -> Iterator[StepRecord]:
    """SDEdit (Meng et al. 2022): noise x0 to the level `strength` names, then run config.sampler from there.

    Notation: t_0 > t_1 > ... > t_{N-1}  the sampler's timesteps; k = sdedit_start(N, strength)
    x_{t_k} = sqrt(abar_{t_k}) x0 + sqrt(1 - abar_{t_k}) eps          # Eq. 4 of Ho et al.; SDEdit Alg. 1
    then the sampler's steps t_k -> ... -> clean. Strength 1 (k = 0) starts from eps itself, as plain
    sampling does (the sampler takes its first level as pure noise); strength 0 runs no step and
    returns x0 unchanged (see `finish`).
    """
    timesteps = sampler_timesteps(denoiser.schedule, config)
    k = sdedit_start(len(timesteps), strength)  # errors now, not at the first step
    if k == len(timesteps):
        return iter(())
    x_t = eps if k == 0 else q_sample(denoiser.schedule, x0.to(eps).expand_as(eps), timesteps[k], eps)
    return get_sampler(config.sampler)(denoiser, x_t, config, generator, start=k)


def inversion_config(config: SampleConfig) -> SampleConfig:
    """The config that inverts exactly: deterministic DDIM (eta = 0) on config's timesteps, x0_hat unclipped.

    ddim_invert never clips, so the way back must not either to retrace the same path.
    """
    return dataclasses.replace(config, sampler="ddim", eta=0.0, clip_x0=False)


def invert(denoiser: Denoiser, x0: torch.Tensor, config: SampleConfig) -> Iterator[StepRecord]:
    """Image -> noise by DDIM inversion on inversion_config(config)'s timesteps; the last x_prev is x_T."""
    return ddim_invert(denoiser, x0, inversion_config(config))


def regenerate(denoiser: Denoiser, x_T: torch.Tensor, config: SampleConfig) -> Iterator[StepRecord]:
    """Noise -> image by deterministic DDIM, the inverse of `invert` on the same config."""
    return ddim(denoiser, x_T, inversion_config(config), torch.Generator(x_T.device))


def round_trip_records(denoiser: Denoiser, x0: torch.Tensor, config: SampleConfig) -> Iterator[StepRecord]:
    """`invert` then `regenerate` as one run of 2N records, indexed 0..2N-1 (one GIF: image, noise, image).

    Record N-1's x_prev is the noise x_T; the last record's x_prev is the regenerated image.
    """
    x_T = x0
    for record in invert(denoiser, x0, config):
        x_T = record.x_prev
        yield record
    n = record.index + 1
    for record in regenerate(denoiser, x_T, config):
        yield dataclasses.replace(record, index=n + record.index)


def round_trip(denoiser: Denoiser, x0: torch.Tensor, config: SampleConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, the image regenerated from it); their gap is the inversion's error (the eps(x_r, t) ~ eps(x_t, t) step)."""
    n = len(sampler_timesteps(denoiser.schedule, config))
    x_T = back = x0
    for record in round_trip_records(denoiser, x0, config):
        x_T = record.x_prev if record.index == n - 1 else x_T
        back = record.x_prev
    return x_T, back


def slerp_path(z0: torch.Tensor, z1: torch.Tensor, count: int) -> torch.Tensor:
    """`count` noises from z0 to z1 (ends included) by spherical interpolation, stacked on dim 0."""
    if count < 2:
        raise ValueError(f"an interpolation needs at least 2 points, got {count}")
    return torch.cat([slerp(z0, z1, float(a)) for a in np.linspace(0.0, 1.0, count)])
