"""`horseshoe evaluate`: are the samples good, are they new, and which sampler and step count to use.

Writes RUN/eval.json, RUN/eval/nearest.png (the most-copied samples beside their training
neighbours), RUN/eval/sweep.png with --sweep, and an "Evaluation" section in RUN/index.html; when
more than memorisation.COPY_WARNING_SHARE of the samples are near-copies, the summary and the page say so. A run
with classes is also scored class by class (runs.by_class), and against the guidance scale
with --guidance-sweep (RUN/eval/guidance.png). Its main samples are drawn without a class.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from horseshoe.config import Config
from horseshoe.data import build_dataset, builtin_images, subset_images, training_images
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics import inception, likelihood
from horseshoe.metrics.fid import FIDResult, fid_kid
from horseshoe.metrics.novelty import NoveltyResult, novelty
from horseshoe.metrics.shape import horseshoe_rate
from horseshoe.metrics.swd import SWDReference, SWDResult
from horseshoe.runs import memorisation, page
from horseshoe.runs.by_class import GuidanceScore, class_scores
from horseshoe.runs.load import LoadedRun, load_run


@dataclass(frozen=True)
class EvalOptions:
    """What to measure and how much: see `horseshoe evaluate --help`.

    SWD from ~1000 samples varies by ~3% between seeds (measured on the demo model: sd 1.5 at a mean
    of 45); from 256 samples by ~9%, too much to rank samplers.
    """

    count: int = 1000
    reference: str | None = None
    sampler: str | None = None
    steps: int | None = None
    eta: float | None = None
    seed: int = 0
    batch_size: int = 64
    heldout: int = 128
    bpd_timesteps: int = 50
    inception_weights: str | None = None
    sweep: tuple[tuple[str, int | None], ...] = field(default_factory=tuple)
    sample_overrides: tuple[str, ...] = ()  # 'sample.key=value', as --set
    progress: bool = False  # progress bars while sampling (on a terminal)
    guidance_sweep: tuple[float, ...] = ()  # guidance scales to score a run with classes at

    def __post_init__(self) -> None:
        for name in ("count", "batch_size", "heldout", "bpd_timesteps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if any(not 0 <= w < float("inf") for w in self.guidance_sweep):
            raise ValueError(f"--guidance-sweep scales must be numbers >= 0, got {list(self.guidance_sweep)}")


def reference_sets(config: Config, options: EvalOptions) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(reference images, held-out images or None, description). The reference defaults to the training data.

    For the built-in horseshoes the held-out set is images past data.count: the same generator,
    never trained on. A --reference folder serves as both reference and held-out set.
    """
    d = config.data
    if options.reference is not None:
        if options.reference == "horseshoes":
            ref_config = dataclasses.replace(d, path=None, builtin="horseshoes", count=options.count, seed=d.seed + 1)
        else:
            ref_config = dataclasses.replace(d, path=options.reference)
        images = subset_images(build_dataset(ref_config), options.count, options.seed)
        return images, images[:options.heldout], f"--reference {options.reference} ({images.shape[0]} images)"
    training = training_images(d, options.count, options.seed)
    heldout = None
    if d.path is None:
        start = d.count if d.count is not None else 10**9  # the stream: far beyond any training position
        heldout = builtin_images(d, start, options.heldout)
    return training, heldout, f"the run's training data ({training.shape[0]} images)"


def real_floor(config: Config, options: EvalOptions) -> torch.Tensor | None:
    """`count` real images the reference does not contain (built-in horseshoes only), or None."""
    d = config.data
    if d.path is not None or options.reference is not None:
        return None
    start = (d.count if d.count is not None else 10**9) + 10**6  # past the held-out images too
    return builtin_images(d, start, options.count)


@dataclass(frozen=True)
class Quality:
    """Sample quality: SWD against the reference, and for the built-in silhouettes the horseshoe rate."""

    swd: SWDResult
    horseshoe_rate: float | None = None
    swd_floor: float | None = None  # fresh real images against the same reference: a perfect model's score

    def to_json(self) -> dict:
        out = self.swd.as_dict()
        if self.horseshoe_rate is not None:
            out["horseshoe_rate"] = self.horseshoe_rate
        if self.swd_floor is not None:
            out["swd_x1e3_floor"] = self.swd_floor
        return out


@dataclass(frozen=True)
class SweepRow:
    """One sampler setting of --sweep: its quality, network evaluations and wall time."""

    sampler: str
    steps: int
    seconds: float
    quality: Quality

    def to_json(self) -> dict:
        return {"sampler": self.sampler, "steps": self.steps, "nfe": self.steps, "seconds": round(self.seconds, 2),
                **self.quality.to_json()}


@dataclass(frozen=True)
class HeldOut:
    """Denoising errors and the variational bound on images the model was (ideally) never trained on."""

    description: str
    denoising: likelihood.DenoisingLosses
    bound: likelihood.BoundResult

    def to_json(self) -> dict:
        return {"set": self.description, "denoising_mse": self.denoising.as_dict(), **self.bound.as_dict()}


@dataclass(frozen=True)
class EvalResult:
    """Everything `horseshoe evaluate` measured; eval.json is to_json(), the printout summary()."""

    run: Path
    checkpoint: Path
    step: int
    weights: str
    sampler: str
    sampler_steps: int
    lambda_min: float | None
    samples: int
    seed: int
    sampling_seconds: float
    reference: str
    quality: Quality
    novelty: NoveltyResult | None  # None: one training image, so no spacing to measure with (each sample copies it)
    heldout: HeldOut
    fid: FIDResult
    sweep: tuple[SweepRow, ...] = ()
    classes: GuidanceScore | None = None  # a run with classes, at its sample.guidance
    guidance_sweep: tuple[GuidanceScore, ...] = ()

    def to_json(self) -> dict:
        out = {"run": str(self.run), "checkpoint": str(self.checkpoint), "step": self.step, "weights": self.weights,
               "sampler": self.sampler, "sampler_steps": self.sampler_steps, "lambda_min": self.lambda_min,
               "samples": self.samples, "seed": self.seed, "sampling_seconds": round(self.sampling_seconds, 2),
               "reference": self.reference, "quality": self.quality.to_json(),
               "novelty": self.novelty.as_dict() if self.novelty is not None else None,
               "heldout": self.heldout.to_json(), "fid": self.fid.to_json()}
        if self.sweep:
            out["sweep"] = [row.to_json() for row in self.sweep]
        if self.classes is not None:
            out["classes"] = self.classes.to_json()
        if self.guidance_sweep:
            out["guidance_sweep"] = [row.to_json() for row in self.guidance_sweep]
        return out

    def summary(self) -> list[str]:
        """The readable lines `horseshoe evaluate` prints."""
        q, n, bound = self.quality, self.novelty, self.heldout.bound
        levels = ", ".join(f"{k}: {v:.2f}" for k, v in q.swd.levels.items())
        floor = f"; real images score {q.swd_floor:.2f}" if q.swd_floor is not None else ""
        lines = [f"{self.samples} samples, {self.sampler} {self.sampler_steps} steps, seed {self.seed}, step "
                 f"{self.step} ({self.weights} weights); reference: {self.reference}",
                 f"SWD x1e3: mean {q.swd.mean:.2f} ({levels}){floor}"]
        if q.horseshoe_rate is not None:
            lines.append(f"horseshoe rate: {q.horseshoe_rate:.1%} pass the geometric check")
        if n is not None:
            lines.append(f"novelty: nearest-training-image distance / data spacing: median {n.ratio_median:.2f}, "
                         f"min {n.ratio_min:.2f}; near-copies (< 1/3): {n.near_copy_fraction:.1%}")
        notice = memorisation.warning(n)
        if notice is not None:
            lines.append(notice)
        lines.append(f"variational bound: {bound.bits_per_dim:.3f} bits/dim on {bound.images} "
                     f"{self.heldout.description} ({bound.timesteps_used} timesteps)")
        lines.append(self.fid.line())
        if self.classes is not None:
            lines.append(f"by class ({self.classes.classes[0].samples} samples each), " + self.classes.line() + ": "
                         + ", ".join(f"{c.name} {c.swd:.1f}" for c in self.classes.classes))
        lines += [f"  guidance {row.line()}" for row in self.guidance_sweep]
        for row in self.sweep:
            rate = row.quality.horseshoe_rate
            lines.append(f"  {row.sampler:>9} {row.steps:>5} steps: SWD {row.quality.swd.mean:7.2f}"
                         + (f", horseshoes {rate:.0%}" if rate is not None else "") + f", {row.seconds:.1f} s")
        return lines

    def rows(self) -> dict[str, object]:
        """The numbers of the Evaluation section of index.html."""
        q, n = self.quality, self.novelty
        rows: dict[str, object] = {"samples / sampler": f"{self.samples} / {self.sampler}, {self.sampler_steps} steps",
                                   "reference": self.reference, "SWD x1e3 (mean)": q.swd.mean}
        if q.swd_floor is not None:
            rows["SWD x1e3 of real images (floor)"] = q.swd_floor
        rows.update({f"SWD x1e3 at {k}": v for k, v in q.swd.levels.items()})
        if q.horseshoe_rate is not None:
            rows["horseshoe rate"] = q.horseshoe_rate
        if n is not None:
            rows["nearest-neighbour ratio (median)"] = n.ratio_median
            rows["near-copy fraction"] = n.near_copy_fraction
        rows.update({"bits/dim (bound)": self.heldout.bound.bits_per_dim, "FID": self.fid.fid or self.fid.skipped})
        if self.classes is not None:
            rows["classes (training images)"] = self.classes.names()
        for row in (self.classes, *self.guidance_sweep) if self.classes is not None else ():
            rows[f"by class at guidance {row.scale:g}"] = row.numbers()
        return rows


def quality(samples: torch.Tensor, reference: SWDReference, config: Config) -> Quality:
    """SWD and, for the built-in silhouettes, the horseshoe rate."""
    rate = horseshoe_rate(to_uint8(samples) / 255.0) if config.data.is_builtin_silhouette else None
    return Quality(swd=reference.distance(samples), horseshoe_rate=rate)


def sweep(run: LoadedRun, options: EvalOptions, reference: SWDReference, out_dir: Path) -> tuple[SweepRow, ...]:
    """Quality against network evaluations and wall time, every setting with the same seed."""
    from horseshoe.viz.plots import plot_sweep

    rows = []
    for name, steps in options.sweep:
        config = run.sampler(name, steps, options.eta)
        started = time.perf_counter()
        samples = run.generate(config, options.count, options.seed, options.batch_size,
                               progress=f"sweep {name} {config.steps}" if options.progress else None)
        seconds = time.perf_counter() - started
        rows.append(SweepRow(name, config.steps, seconds, quality(samples, reference, run.config)))
    plot_sweep([(r.sampler, r.steps, r.seconds, r.quality.swd.mean) for r in rows], out_dir / "sweep.png")
    return tuple(rows)


def evaluate(run_dir: str | Path, options: EvalOptions, weights: str = "ema", device: str = "auto",
             ema_length: float | None = None) -> EvalResult:
    """Run every measurement on a trained run and write eval.json, pictures and the HTML section.

    ema_length: a post-hoc EMA of that relative width (runs.load.load_run), reported as the weights 'ema@<width>'.
    """
    run = load_run(run_dir, weights=weights, device=device, sample_overrides=options.sample_overrides,
                   ema_length=ema_length)
    if ema_length is not None:
        weights = f"ema@{ema_length:g}"
    if options.guidance_sweep and not run.classes:  # before any work
        raise ValueError(f"--guidance-sweep: run {str(run.checkpoint)!r} was trained without classes")
    run_dir = run.run_dir
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = inception.find_weights(options.inception_weights)  # a missing --inception-weights fails now
    reference, heldout, described = reference_sets(run.config, options)
    swd_reference = SWDReference(reference, seed=options.seed)

    config = run.sampler(options.sampler, options.steps, options.eta)
    started = time.perf_counter()
    samples = run.generate(config, options.count, options.seed, options.batch_size,
                           progress="samples" if options.progress else None)
    sampling_seconds = time.perf_counter() - started
    found_quality = quality(samples, swd_reference, run.config)
    floor = real_floor(run.config, options)
    if floor is not None:
        found_quality = dataclasses.replace(found_quality, swd_floor=swd_reference.distance(floor).mean)

    training = training_images(run.config.data, memorisation.TRAINING_LIMIT, options.seed)
    d = run.config.data
    found = None
    if training.shape[0] >= 2:  # one image has no spacing to measure with: memorisation.warning(None) says so
        found = novelty(samples, training, d.hflip, d.vflip, d.rot90, seed=options.seed)
        memorisation.draw(samples, training, found, out_dir / "nearest.png")
    else:
        (out_dir / "nearest.png").unlink(missing_ok=True)  # an earlier evaluation's, of other weights

    held = (heldout if heldout is not None else training[:options.heldout]).to(run.device)
    held_out = HeldOut(
        description="held-out images (never trained on)" if heldout is not None
        else "training images (no held-out set: pass --reference DIR)",
        denoising=likelihood.denoising_losses(run.denoiser, held, seed=options.seed),
        bound=likelihood.variational_bound(run.denoiser, held, options.bpd_timesteps, options.seed))
    by_class, guided = class_scores(run, config, options.count, options.seed, options.batch_size,
                                    options.guidance_sweep, out_dir)
    result = EvalResult(
        run=run_dir, checkpoint=run.checkpoint, step=run.step, weights=weights, sampler=config.sampler,
        sampler_steps=config.steps, lambda_min=config.lambda_min, samples=options.count, seed=options.seed,
        sampling_seconds=sampling_seconds, reference=described, quality=found_quality, novelty=found,
        heldout=held_out, fid=fid_kid(weights_path, samples, reference, run.device, options.seed),
        sweep=sweep(run, options, swd_reference, out_dir) if options.sweep else (), classes=by_class,
        guidance_sweep=guided)
    (run_dir / "eval.json").write_text(json.dumps(result.to_json(), indent=2))
    write_section(run_dir, result)
    return result


def write_section(run_dir: Path, result: EvalResult) -> Path:
    """The Evaluation section of the run's index.html."""
    notice = memorisation.warning(result.novelty)
    body = (page.note(notice) if notice else "") + page.table(result.rows())
    if result.novelty is not None:
        body += page.figure("eval/nearest.png", memorisation.caption(result.novelty))
    if result.sweep:
        body += page.figure("eval/sweep.png", "quality against network evaluations and wall time")
    if result.guidance_sweep:
        body += page.figure("eval/guidance.png", "per-class quality (and accuracy) against the guidance scale")
    return page.add_section(run_dir, "evaluation", "Evaluation", body, order=40)
