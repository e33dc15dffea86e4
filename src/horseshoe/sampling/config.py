"""The sample section: which sampler a run uses, on which timesteps, and the options samplers read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from horseshoe.diffusion.schedules import NoiseSchedule
from horseshoe.sampling.timesteps import SPACINGS, usable_steps

DDPM_VARIANCES = ("posterior", "beta")
# The consistency sampler's steps: what `horseshoe distill` tunes a model for (horseshoe.sampling.consistency).
MAX_CONSISTENCY_STEPS = 4
CONSISTENCY_STEPS = 2  # its default: 94% valid shoes on the demo's student at half the time of 4 (96%); few-step.md


@dataclass(frozen=True)
class SampleConfig:
    """How a run samples; every sampler takes this and reads the fields that apply to it.

    steps: network evaluations (None: every usable timestep); spacing: how they are picked from
    0..T-1, see horseshoe.sampling.timesteps; lambda_min: start at the noisiest timestep whose half
    log-SNR is at least this (None: t = T-1); clip_x0: clamp x0_hat to [-1, 1].
    One sampler's or one spacing's own options: rho (karras spacing; more steps at low noise as it
    grows), eta (ddim: 0 deterministic, 1 the ancestral step), ddpm_variance (ddpm: sigma_t^2 is
    beta tilde, 'posterior', or beta_t, 'beta'). count and seed are the run's sample grids.
    guidance: the classifier-free guidance scale w for a run with classes, asked for a class
    (uncond + w (cond - uncond): 0 ignores the class, 1 is the conditional model alone);
    guidance_interval: [sigma_lo, sigma_hi], guide only at noise levels in between and use the
    conditional model elsewhere (None: guide at every step); see horseshoe.diffusion.Guidance.
    w = 2 on [0.3, 5] was measured on the four-direction horseshoes (with the classes' earlier
    training defaults): the accuracy of w = 2 everywhere (99.6% against 100%) at about the per-class
    SWD of w = 1 (32 against 55; docs/measurements/classes.md).
    The defaults are the demo's, measured on its model (docs/measurements/quality.md).
    """

    sampler: str = "dpmpp_2m_sde"
    steps: int | None = 20
    spacing: str = "karras"
    lambda_min: float | None = -3.0
    clip_x0: bool = True
    rho: float = 3.0  # karras spacing only
    eta: float = 0.0  # ddim only
    ddpm_variance: str = "posterior"  # ddpm only
    count: int = 64
    seed: int = 0
    guidance: float = 2.0
    guidance_interval: tuple[float, float] | None = (0.3, 5.0)

    def __post_init__(self) -> None:
        from horseshoe.sampling import SAMPLERS  # the registry imports the samplers, which import this

        if self.sampler not in SAMPLERS:
            raise ValueError(f"sample.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps <= 0):
            raise ValueError(f"sample.steps must be a positive integer (or none for every timestep), got {self.steps}")
        if self.sampler == "consistency" and not 1 <= (self.steps or 0) <= MAX_CONSISTENCY_STEPS:
            raise ValueError(f"the consistency sampler takes 1 to {MAX_CONSISTENCY_STEPS} steps, got {self.steps}")
        if self.count <= 0:
            raise ValueError(f"sample.count must be positive, got {self.count}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"sample.spacing must be one of {', '.join(SPACINGS)}, got {self.spacing!r}")
        if self.lambda_min is not None and not -1e3 < self.lambda_min < 1e3:
            raise ValueError(f"sample.lambda_min must be a finite number (or none), got {self.lambda_min}")
        if not 0 < self.rho < 1e3:
            raise ValueError(f"sample.rho must be a positive number, got {self.rho}")
        if not 0 <= self.eta < 1e3:
            raise ValueError(f"sample.eta must be a number >= 0, got {self.eta}")
        if not 0 <= self.guidance < 1e3:
            raise ValueError(f"sample.guidance must be a number >= 0, got {self.guidance}")
        interval = self.guidance_interval
        if interval is not None and not (len(interval) == 2 and 0 <= interval[0] < interval[1]):
            raise ValueError(f"sample.guidance_interval must be [sigma_lo, sigma_hi] with 0 <= sigma_lo < sigma_hi, "
                             f"got {list(interval)}")
        if self.ddpm_variance not in DDPM_VARIANCES:
            raise ValueError(f"sample.ddpm_variance must be one of {', '.join(DDPM_VARIANCES)}, "
                             f"got {self.ddpm_variance!r}")

    def for_sampler(self, schedule: NoiseSchedule, sampler: str | None = None, steps: int | None = None,
                    eta: float | None = None, spacing: str | None = None,
                    guidance: float | None = None) -> SampleConfig:
        """This config with another sampler and the given options over its own.

        Without `steps` it keeps self.steps (fewer when the schedule has fewer usable timesteps),
        except ddpm asked for in place of the run's own sampler: ancestral sampling is meant to visit
        every usable timestep; the consistency sampler in place of another takes CONSISTENCY_STEPS, and
        another in place of it the default 20.
        """
        sampler = sampler or self.sampler
        usable = usable_steps(schedule, self.lambda_min)
        if steps is None:
            own = usable if self.steps is None else min(self.steps, usable)
            if sampler == "consistency" != self.sampler:
                own = CONSISTENCY_STEPS
            elif self.sampler == "consistency" != sampler:
                own = min(SampleConfig.steps, usable)
            steps = usable if sampler == "ddpm" != self.sampler else own
        return dataclasses.replace(self, sampler=sampler, steps=steps, spacing=spacing or self.spacing,
                                   eta=self.eta if eta is None else eta,
                                   guidance=self.guidance if guidance is None else guidance)
