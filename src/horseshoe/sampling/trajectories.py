"""A teacher's ODE paths through a few-step sampler's levels: what trajectory distillation regresses a student onto.

For noise x_T, the teacher's probability-flow ODE (DPM-Solver++(2M), on the teacher's own karras steps with the
student's levels added) passes through x at each level and ends at an image x0. A student that maps every
(x at level l, l) to that x0 is the ODE's consistency function at those levels (Song et al. 2023), learned by
plain regression on the teacher's answers instead of by bootstrapping from its own (Luhman & Luhman 2021 do
this for the noise level alone).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from horseshoe.diffusion.denoiser import NO_CLASS, Denoiser
from horseshoe.sampling.config import MAX_CONSISTENCY_STEPS, SampleConfig
from horseshoe.sampling.dpm_solver import dpmpp_2m_path
from horseshoe.sampling.timesteps import sampler_timesteps

# The paths' noise is drawn from seed + PATHS_SEED_OFFSET, never from the seed itself: sampling at seed S draws
# torch.randn from S, so paths of seed 0 would start from the very noise `horseshoe sample` (default seed 0), the
# student's page and the benchmarks draw. A student is near exact on its own paths' noise and flattered there
# (docs/measurements/few-step.md, round 6). Modulo 2^32: a CPU generator uses a seed's low 32 bits only.
PATHS_SEED_OFFSET = 0x9E3779B9  # 2^32 / golden ratio: far from the small seeds people pick


@dataclass(frozen=True)
class TeacherPaths:
    """N paths: x (N, L, C, H, W) at each of `levels` (descending), the end x0 (N, C, H, W), the class of each path
    (NO_CLASS: unconditional; None for a run without classes). Stored in bfloat16 on the CPU: half the memory,
    and the student's forward runs in bf16 anyway where it can."""

    levels: tuple[int, ...]
    x: torch.Tensor
    x0: torch.Tensor
    labels: torch.Tensor | None


def sampler_levels(schedule, config: SampleConfig) -> list[list[int]]:
    """The levels the consistency sampler visits with this config at 1, 2, ... MAX_CONSISTENCY_STEPS steps."""
    return [sampler_timesteps(schedule, dataclasses.replace(config, sampler="consistency", steps=steps))
            for steps in range(1, MAX_CONSISTENCY_STEPS + 1)]


def student_levels(schedule, config: SampleConfig) -> tuple[int, ...]:
    """Every level the consistency sampler visits at 1 to MAX_CONSISTENCY_STEPS steps with this config, descending."""
    return tuple(sorted({t for levels in sampler_levels(schedule, config) for t in levels}, reverse=True))


def level_visits(schedule, config: SampleConfig, levels: tuple[int, ...]) -> tuple[int, ...]:
    """How many of the 1- to MAX_CONSISTENCY_STEPS-step samplers visit each level: the first level all of them."""
    visited = sampler_levels(schedule, config)
    return tuple(sum(level in steps for steps in visited) for level in levels)


def path_grid(schedule, teacher: SampleConfig, levels: tuple[int, ...], steps: int) -> list[int]:
    """The teacher's ODE steps: `steps` of its karras spacing (deterministic) with the levels added. On the demo's
    model 10 steps of the ODE score as well as 20 (docs/measurements/quality.md)."""
    own = sampler_timesteps(schedule, dataclasses.replace(teacher, sampler="dpmpp_2m", spacing="karras", steps=steps))
    return sorted(set(own) | set(levels), reverse=True)


@torch.no_grad()
def teacher_paths(denoiser: Denoiser, count: int, shape: tuple[int, int, int], teacher: SampleConfig,
                  levels: tuple[int, ...], seed: int, classes: int = 0, steps: int = 12, batch_size: int = 256,
                  unconditional: float = 0.1, device: torch.device | str = "cpu") -> TeacherPaths:
    """`count` ODE paths from noise drawn with `seed` (offset by PATHS_SEED_OFFSET): `steps` of the teacher's own,
    plus the levels. With classes, each path is of a random class, guided as the teacher's config says (its
    guidance scale and interval), and a share `unconditional` has no class."""
    generator = torch.Generator().manual_seed((seed + PATHS_SEED_OFFSET) % 2**32)
    noise = torch.randn((count, *shape), generator=generator)
    labels = None
    if classes:
        labels = torch.randint(0, classes, (count,), generator=generator)
        labels = torch.where(torch.rand(count, generator=generator) < unconditional, NO_CLASS, labels)
    grid = path_grid(denoiser.schedule, teacher, levels, steps)
    xs, ends = [], []
    for start in range(0, count, batch_size):
        x_T = noise[start:start + batch_size]
        model = denoiser
        if labels is not None:
            batch = labels[start:start + batch_size]
            model = denoiser.conditioned(batch, teacher.guidance, teacher.guidance_interval)
        at = {}
        for record in dpmpp_2m_path(model, x_T.to(device), grid, teacher.clip_x0):
            if record.t in levels:
                at[record.t] = record.x_t.to("cpu", torch.bfloat16)
            last = record.x_prev
        xs.append(torch.stack([at[t] for t in levels], dim=1))
        ends.append(last.to("cpu", torch.bfloat16))
    return TeacherPaths(levels=tuple(levels), x=torch.cat(xs), x0=torch.cat(ends), labels=labels)
