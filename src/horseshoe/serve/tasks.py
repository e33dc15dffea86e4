"""A request's JSON checked against the run, turned into the work a job will run.

Everything that can be wrong with a request (a field unknown or out of range, a class the run lacks, an
upload that is not an image) is found here, in the request's own thread, and answered at once as an
error; the worker thread only ever runs requests that passed. Limits are the server's, never the
request's: it says how many images and steps, within them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from horseshoe.runs.load import LoadedRun
from horseshoe.runtime import SEED_MAX
from horseshoe.sampling import DIFFUSION_SAMPLERS, SampleConfig, StepRecord, initial_noise, sampler_timesteps
from horseshoe.sampling.edit import repaint_length, sdedit_start, slerp_path
from horseshoe.serve.uploads import Limits, RequestError, decode_image, fitted_image, fitted_mask

STOCHASTIC = ("ddpm", "dpmpp_2m_sde")  # fresh noise at every step, different for each image of a batch
GUIDANCE_MAX = 20.0


@dataclass(frozen=True)
class Task:
    """A checked request: how many steps its job reports, the work (run later, on the worker), its input."""

    kind: str
    total: int
    work: Callable[[], Iterator[StepRecord]]
    inputs: torch.Tensor | None = None  # (1, C, H, W): what the model was given, shown beside the results


class Fields:
    """A request's JSON object, read field by field with its range; a field nobody reads is an error."""

    def __init__(self, body: object) -> None:
        if not isinstance(body, dict):
            raise RequestError("the request must be a JSON object")
        self.body, self.read = body, set()

    def get(self, name: str) -> object:
        self.read.add(name)
        return self.body.get(name)

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{name}: expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise RequestError(f"{name} must lie in [{low}, {high}], got {value}")
        return value

    def number(self, name: str, default: float | None, low: float, high: float) -> float | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RequestError(f"{name}: expected a number, got {value!r}")
        if not low <= value <= high:
            raise RequestError(f"{name} must lie in [{low:g}, {high:g}], got {value:g}")
        return float(value)

    def text(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise RequestError(f"{name}: expected text, got {value!r}")
        return value or None

    def finish(self) -> None:
        unknown = sorted(set(self.body) - self.read)
        if unknown:
            raise RequestError(f"unknown field {unknown[0]!r}")


def suited_samplers(run: LoadedRun) -> tuple[str, ...]:
    """The samplers that make sense for this run: a distilled run's few-step one, or a diffusion model's."""
    return ("consistency",) if run.config.distill.student else DIFFUSION_SAMPLERS


def sampler_settings(run: LoadedRun, fields: Fields) -> tuple[SampleConfig, str | None, int]:
    """The sampler, steps, class and guidance a request asks for (the run's own where it says none):
    the config, the class name (None: no class) and how many timesteps the sampler visits."""
    name = fields.text("sampler")
    if name is not None and name not in suited_samplers(run):
        raise RequestError(f"sampler {name!r} does not suit this run; choose one of {', '.join(suited_samplers(run))}")
    steps = fields.integer("steps", None, 1, run.denoiser.schedule.num_steps)
    label = fields.text("class")
    guidance = fields.number("guidance", None, 0.0, GUIDANCE_MAX)
    if label is not None and not run.classes:
        raise RequestError(f"class {label!r}: this run was trained without classes")
    if label is not None and label not in run.classes:
        raise RequestError(f"unknown class {label!r}; this run's classes are {', '.join(run.classes)}")
    if guidance is not None and label is None:
        raise RequestError("guidance needs a class (without one the run samples unconditionally)")
    config = run.sampler(name, steps, guidance=guidance)
    return config, label, len(sampler_timesteps(run.denoiser.schedule, config))


def sample(run: LoadedRun, fields: Fields, limits: Limits) -> Task:
    """A grid of new images from seeded noise."""
    count = fields.integer("count", 16, 1, limits.count)
    seed = fields.integer("seed", 0, 0, SEED_MAX)
    config, label, steps = sampler_settings(run, fields)
    return Task("sample", steps, lambda: run.records(config, count, seed, labels=label))


def edit(run: LoadedRun, fields: Fields, limits: Limits) -> Task:
    """SDEdit variations of an uploaded image (a drawing): noised to `strength`, then denoised."""
    x0 = fitted_image(decode_image(fields.get("image"), "image", limits), run.config.data)
    strength = fields.number("strength", 0.6, 0.0, 1.0)
    if strength == 0:
        raise RequestError("strength must be above 0 (0 keeps the image, 1 forgets it)")
    count = fields.integer("count", 8, 1, limits.count)
    seed = fields.integer("seed", 0, 0, SEED_MAX)
    config, label, steps = sampler_settings(run, fields)
    total = steps - sdedit_start(steps, strength)
    return Task("edit", total, lambda: run.edit(x0, strength, config, count, seed, label), x0)


def inpaint(run: LoadedRun, fields: Fields, limits: Limits) -> Task:
    """Fillings of the brushed part of an image (RePaint); the rest stays the image's own pixels."""
    image = decode_image(fields.get("image"), "image", limits)
    mask = decode_image(fields.get("mask"), "mask", limits)
    x0, m = fitted_image(image, run.config.data), fitted_mask(mask, image, run.config.data)
    count = fields.integer("count", 8, 1, limits.count)
    seed = fields.integer("seed", 0, 0, SEED_MAX)
    resample = fields.integer("resample", 5, 1, limits.resample)
    config, label, _ = sampler_settings(run, fields)
    total = repaint_length(run.denoiser, config, resample)
    kept = x0 * (1 - m)  # the part to fill shown mid-grey
    return Task("inpaint", total, lambda: run.inpaint(x0, m, config, count, seed, resample, label), kept)


def interpolate(run: LoadedRun, fields: Fields, limits: Limits) -> Task:
    """Images along the spherical path between two seeds' noises (smooth with a deterministic sampler)."""
    seeds = fields.get("seeds")
    seeds = [0, 1] if seeds is None else seeds
    if (not isinstance(seeds, list) or len(seeds) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds)):
        raise RequestError(f"seeds: expected two whole numbers in [0, {SEED_MAX}], got {seeds!r}")
    count = fields.integer("count", 8, 2, limits.count)
    config, label, steps = sampler_settings(run, fields)
    if config.sampler == "ddim":
        config = dataclasses.replace(config, eta=0.0)  # no fresh noise per image: a smooth path
    z0, z1 = (initial_noise((1, *run.image_shape), torch.Generator().manual_seed(s)) for s in seeds)
    return Task("interpolate", steps, lambda: run.records(config, count, x_T=slerp_path(z0, z1, count), labels=label))


TASKS: dict[str, Callable[[LoadedRun, Fields, Limits], Task]] = {
    "sample": sample, "edit": edit, "inpaint": inpaint, "interpolate": interpolate,
}


def parse(run: LoadedRun, kind: str, body: object, limits: Limits) -> Task:
    """The task of a request to /api/<kind>, every field checked; RequestError (400 or 413) if it is wrong."""
    fields = Fields(body)
    try:
        task = TASKS[kind](run, fields, limits)
    except RequestError:
        raise
    except ValueError as error:  # the run's own one-line checks (a sampler's steps, a guidance scale)
        raise RequestError(str(error)) from None
    fields.finish()
    return task
