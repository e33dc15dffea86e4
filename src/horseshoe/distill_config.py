"""The distill section of a run's config: whether the run is a few-step student tuned from a teacher run, and how.

Beside train_config for the same reason: the training package reads it, and horseshoe.config composes it.
An ordinary run has method 'none'; `horseshoe distill` (horseshoe.runs.distill) writes the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from horseshoe.diffusion.consistency import METHODS

METHOD = "trajectory"  # what `horseshoe distill` uses: measured best on the demo (docs/measurements/few-step.md)
# Its batches of 64 images: the game with the critic gains from more, smaller steps (with ADVERSARIAL 2, 2-step SWD
# 33 -> 25 on the demo in 600 steps, the images of 300 of 128; docs/measurements/few-step.md). 520 of them, the
# teacher's paths included, take about as long as the demo's teacher trained (2-step SWD 30).
STUDENT_BATCH, STUDENT_STEPS = 64, 520
ADVERSARIAL = 2.0  # its critic's weight: 2-step SWD 51 -> 30 on the demo at 95% valid (0.3 to 3 measured, few-step.md)


@dataclass(frozen=True)
class DistillConfig:
    """A student's recipe (horseshoe.diffusion.consistency for the maths).

    method: 'none' (an ordinary run), 'ect' (consistency tuning on the data), 'cd' (consistency
    distillation along the teacher's ODE, one DDIM step at a time) or 'trajectory' (regression onto the ends
    of `paths` whole ODE paths of the teacher, each path_steps steps of DPM-Solver++(2M) plus the student's
    levels, horseshoe.sampling.trajectories; level_weights 'visits' draws each level in proportion to how many
    of the 1- to 4-step samplers visit it, 'even' all as often: 'visits' measured better at 1 and 2 steps,
    docs/measurements/few-step.md). teacher: the teacher's
    checkpoint folder the student starts from (cd and trajectory also call it), teacher_step its step.
    ect and cd: p_mean, p_std, the log-normal of the noise levels trained (ln sigma); stages: how often t - r
    is divided by q over the run (Geng et al. 2024).
    adversarial: the weight of a hinge adversarial term (trajectory only; 0: none) against a small critic of the
    training images (horseshoe.models.critic), which learns with Adam at critic_lr.
    """

    method: str = "none"
    teacher: str = ""
    teacher_step: int = 0
    p_mean: float = -0.4
    p_std: float = 2.0
    stages: int = 4
    q: float = 2.0
    paths: int = 2048
    path_steps: int = 12
    level_weights: str = "visits"
    adversarial: float = 0.0
    critic_lr: float = 2e-4

    def __post_init__(self) -> None:
        if self.method not in ("none", *METHODS):
            raise ValueError(f"distill.method must be one of none, {', '.join(METHODS)}, got {self.method!r}")
        if not (math.isfinite(self.p_mean) and 0 < self.p_std < 100):
            raise ValueError(f"distill.p_mean must be finite and distill.p_std positive, got {self.p_mean}, "
                             f"{self.p_std}")
        if isinstance(self.stages, bool) or self.stages < 1:
            raise ValueError(f"distill.stages must be a positive integer, got {self.stages}")
        for name in ("paths", "path_steps"):
            if isinstance(getattr(self, name), bool) or getattr(self, name) < 1:
                raise ValueError(f"distill.{name} must be a positive integer, got {getattr(self, name)}")
        if self.level_weights not in ("even", "visits"):
            raise ValueError(f"distill.level_weights must be 'even' or 'visits', got {self.level_weights!r}")
        if not (math.isfinite(self.adversarial) and self.adversarial >= 0):
            raise ValueError(f"distill.adversarial must be a number of at least 0, got {self.adversarial}")
        if self.adversarial and self.method != "trajectory":
            raise ValueError(f"distill.adversarial needs method 'trajectory', got {self.method!r}")
        if not (math.isfinite(self.critic_lr) and self.critic_lr > 0):
            raise ValueError(f"distill.critic_lr must be a positive number, got {self.critic_lr}")
        if not 1 < self.q < 100:
            raise ValueError(f"distill.q must be a number above 1, got {self.q}")

    @property
    def student(self) -> bool:
        """Whether this run is a distilled few-step student."""
        return self.method != "none"

    def stage(self, step: int, total: int) -> int:
        """The stage of step `step` of `total`: 0 .. stages - 1, evenly over the run."""
        return min(self.stages - 1, step * self.stages // max(total, 1))
