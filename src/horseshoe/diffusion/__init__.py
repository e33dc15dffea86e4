"""The maths of denoising diffusion, kept apart from any network.

Timestep convention (the one used everywhere in horseshoe)
----------------------------------------------------------
There are T noising steps. A timestep is an integer index ``t`` in ``0 .. T-1``, and index ``t`` is
the paper's step ``t + 1`` (Ho et al. 2020 count 1..T). So ``alpha_bars[t]`` is the fraction of
signal variance left after ``t + 1`` noising steps: ``t = 0`` is the *least* noisy level
(``alpha_bars[0] = 1 - betas[0]``, almost clean) and ``t = T - 1`` is almost pure noise. Clean data
is ``x0`` and has no index; where a formula needs ``alpha_bar`` "before step 0" it is 1.
This is the convention of improved-diffusion and diffusers, so timesteps mean the same there.
"""

from horseshoe.diffusion.config import DiffusionConfig
from horseshoe.diffusion.denoiser import NO_CLASS, PREDICTIONS, Denoiser, Guidance, Prediction
from horseshoe.diffusion.objectives import OBJECTIVES, training_loss
from horseshoe.diffusion.process import (
    eps_from_v,
    eps_from_x0,
    flow_target,
    q_posterior_mean_variance,
    q_sample,
    v_target,
    x0_eps_from_flow,
    x0_from_eps,
    x0_from_v,
)
from horseshoe.diffusion.schedules import SCHEDULES, NoiseSchedule, make_schedule

__all__ = [
    "DiffusionConfig",
    "NoiseSchedule",
    "SCHEDULES",
    "make_schedule",
    "q_sample",
    "q_posterior_mean_variance",
    "x0_from_eps",
    "eps_from_x0",
    "v_target",
    "x0_from_v",
    "eps_from_v",
    "flow_target",
    "x0_eps_from_flow",
    "OBJECTIVES",
    "training_loss",
    "Denoiser",
    "Guidance",
    "NO_CLASS",
    "Prediction",
    "PREDICTIONS",
]
