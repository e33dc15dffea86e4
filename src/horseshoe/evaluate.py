"""`horseshoe evaluate`: are the samples good, are they new, and which sampler and step count to use.

Writes RUN/eval.json, RUN/eval/nearest.png (the most-copied samples beside their training
neighbours), RUN/eval/sweep.png with --sweep, and an "Evaluation" section in RUN/index.html.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from horseshoe import report
from horseshoe.config import Config
from horseshoe.data import DataConfig, build_dataset
from horseshoe.data.dataset import Horseshoes
from horseshoe.data.transforms import to_model_range, to_uint8
from horseshoe.metrics import fid, inception, likelihood
from horseshoe.metrics.novelty import NoveltyResult, novelty
from horseshoe.metrics.shape import horseshoe_rate
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs import LoadedRun, load_run
from horseshoe.viz.grid import display_scale, make_grid, save_png

FID_NOTE = (f"FID/KID skipped: no Inception weights. Download {inception.WEIGHTS_URL} and pass "
            f"--inception-weights PATH (or put it in ~/.cache/torch/hub/checkpoints/)")


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

    def __post_init__(self) -> None:
        for name in ("count", "batch_size", "heldout", "bpd_timesteps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


def parse_sweep(items: list[str]) -> tuple[tuple[str, int | None], ...]:
    """['ddpm', 'ddim:10,20'] -> (('ddpm', None), ('ddim', 10), ('ddim', 20)); None: the run's default
    (for ddpm every usable timestep, for the others sample.steps)."""
    out: list[tuple[str, int | None]] = []
    for item in items:
        name, colon, steps = item.partition(":")
        if not colon:
            out.append((name, None))
            continue
        if not steps:
            raise ValueError(f"--sweep entries look like sampler[:steps[,steps...]], got {item!r}")
        try:
            out += [(name, int(s)) for s in steps.split(",") if s]
        except ValueError:
            raise ValueError(f"--sweep {item!r}: steps must be integers") from None
    return tuple(out)


def _images(dataset, indices: np.ndarray) -> torch.Tensor:
    return to_model_range(dataset.get_batch(indices))


def _subset(dataset, limit: int, seed: int) -> torch.Tensor:
    """All of a dataset's images, or a seeded choice of `limit` of them when it has more."""
    n = len(dataset)
    return _images(dataset, np.arange(n) if n <= limit else np.random.default_rng(seed).choice(n, limit, replace=False))


def _builtin(d: DataConfig, start: int, count: int) -> torch.Tensor:
    """Built-in horseshoes start .. start+count-1 of the endless stream with the run's data settings."""
    return _images(Horseshoes(dataclasses.replace(d, count=None)), np.arange(start, start + count))


def reference_sets(config: Config, options: EvalOptions) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(reference images, held-out images or None, description). The reference defaults to the training data.

    For the built-in horseshoes the held-out set is images past data.count: the same generator,
    never trained on. A --reference folder serves as both reference and held-out set.
    """
    d = config.data
    if options.reference is not None:
        if options.reference == "horseshoes":
            ref_config = dataclasses.replace(d, path=None, count=options.count, seed=d.seed + 1)
        else:
            ref_config = dataclasses.replace(d, path=options.reference)
        images = _subset(build_dataset(ref_config), options.count, options.seed)
        return images, images[:options.heldout], f"--reference {options.reference} ({images.shape[0]} images)"
    training = training_images(config, options.count, options.seed)
    heldout = None
    if d.path is None:
        start = d.count if d.count is not None else 10**9  # the stream: far beyond any training position
        heldout = _builtin(d, start, options.heldout)
    return training, heldout, f"the run's training data ({training.shape[0]} images)"


def training_images(config: Config, limit: int, seed: int) -> torch.Tensor:
    """Up to `limit` images of the run's training data (a seeded subset when there are more)."""
    d = config.data
    if d.path is None:
        return _builtin(d, 0, limit if d.count is None else min(limit, d.count))
    return _subset(build_dataset(d), limit, seed)


def real_floor(config: Config, options: EvalOptions) -> torch.Tensor | None:
    """`count` real images the reference does not contain (built-in horseshoes only), or None."""
    d = config.data
    if d.path is not None or options.reference is not None:
        return None
    start = (d.count if d.count is not None else 10**9) + 10**6  # past the held-out images too
    return _builtin(d, start, options.count)


def nearest_picture(samples: torch.Tensor, training: torch.Tensor, result: NoveltyResult, path: Path,
                    columns: int = 8) -> Path:
    """Top row: the samples closest to a training image; bottom row: those training images."""
    order = np.argsort(result.ratios)[:columns]
    top = to_uint8(samples[order])
    bottom = to_uint8(training[result.neighbours[order]])
    grid = make_grid(np.concatenate([top, bottom]), columns=len(order), scale=display_scale(samples.shape[-2]))
    return save_png(grid, path)


def quality(samples: torch.Tensor, reference: SWDReference, config: Config) -> dict:
    """SWD and, for the built-in silhouettes, the horseshoe rate."""
    out = reference.distance(samples).as_dict()
    if config.data.is_builtin_silhouette:
        out["horseshoe_rate"] = horseshoe_rate(to_uint8(samples) / 255.0)
    return out


def sweep(run: LoadedRun, options: EvalOptions, reference: SWDReference, out_dir: Path) -> list[dict]:
    """Quality against network evaluations and wall time, every setting with the same seed."""
    rows = []
    for name, steps in options.sweep:
        sampler_name, config = run.sampler(name, steps, options.eta)
        started = time.perf_counter()
        samples = run.generate(sampler_name, config, options.count, options.seed, options.batch_size)
        seconds = time.perf_counter() - started
        rows.append({"sampler": name, "steps": config.num_steps, "nfe": config.num_steps, "seconds": round(seconds, 2),
                     **quality(samples, reference, run.config)})
    from horseshoe.viz.plots import plot_sweep

    plot_sweep(rows, out_dir / "sweep.png")
    return rows


def evaluate(run_dir: str | Path, options: EvalOptions, weights: str = "ema") -> dict:
    """Run every measurement on a trained run and write eval.json, pictures and the HTML section."""
    run = load_run(run_dir, weights=weights, sample_overrides=options.sample_overrides)
    run_dir = run.checkpoint.parent.parent
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = inception.find_weights(options.inception_weights)  # a missing --inception-weights fails now
    reference, heldout, described = reference_sets(run.config, options)
    swd_reference = SWDReference(reference, seed=options.seed)

    name, config = run.sampler(options.sampler, options.steps, options.eta)
    started = time.perf_counter()
    samples = run.generate(name, config, options.count, options.seed, options.batch_size)
    result: dict = {"run": str(run_dir), "checkpoint": str(run.checkpoint), "step": run.step, "weights": weights,
                    "sampler": name, "sampler_steps": config.num_steps, "lambda_min": config.lambda_min,
                    "samples": options.count,
                    "seed": options.seed, "sampling_seconds": round(time.perf_counter() - started, 2),
                    "reference": described}
    result["quality"] = quality(samples, swd_reference, run.config)
    floor = real_floor(run.config, options)
    if floor is not None:  # what a perfect model would score: fresh real images against the same reference
        result["quality"]["swd_x1e3_floor"] = swd_reference.distance(floor).mean

    training = training_images(run.config, 10_000, options.seed)
    d = run.config.data
    found = novelty(samples, training, d.hflip, d.vflip, d.rot90, seed=options.seed)
    result["novelty"] = found.as_dict()
    nearest_picture(samples, training, found, out_dir / "nearest.png")

    held = heldout if heldout is not None else training[:options.heldout]
    held = held.to(run.device)
    result["heldout"] = {
        "set": "held-out images (never trained on)" if heldout is not None
        else "training images (no held-out set: pass --reference DIR)",
        "denoising_mse": likelihood.denoising_losses(run.denoiser, held, seed=options.seed),
        **likelihood.variational_bound(run.denoiser, held, options.bpd_timesteps, options.seed).as_dict(),
    }
    if weights_path is None:
        result["fid"] = {"skipped": FID_NOTE}
    else:
        model = inception.load_inception(weights_path).to(run.device)
        a, b = fid.inception_features(model, samples), fid.inception_features(model, reference)
        kid_mean, kid_std = fid.kid_from_features(a, b, seed=options.seed)
        result["fid"] = {"fid": fid.fid_from_features(a, b), "kid": kid_mean, "kid_std": kid_std,
                         "weights": str(weights_path)}
    if options.sweep:
        result["sweep"] = sweep(run, options, swd_reference, out_dir)
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    write_section(run_dir, result)
    return result


def summary(result: dict) -> list[str]:
    """The readable lines `horseshoe evaluate` prints."""
    q, n, h = result["quality"], result["novelty"], result["heldout"]
    levels = ", ".join(f"{k}: {v:.2f}" for k, v in q["swd_x1e3_per_level"].items())
    floor = f"; real images score {q['swd_x1e3_floor']:.2f}" if "swd_x1e3_floor" in q else ""
    lines = [f"{result['samples']} samples, {result['sampler']} {result['sampler_steps']} steps, seed "
             f"{result['seed']}, step {result['step']} ({result['weights']} weights); reference: {result['reference']}",
             f"SWD x1e3: mean {q['swd_x1e3_mean']:.2f} ({levels}){floor}"]
    if "horseshoe_rate" in q:
        lines.append(f"horseshoe rate: {q['horseshoe_rate']:.1%} pass the geometric check")
    lines.append(f"novelty: nearest-training-image distance / data spacing: median {n['nn_ratio_median']:.2f}, "
                 f"min {n['nn_ratio_min']:.2f}; near-copies (< 1/3): {n['near_copy_fraction']:.1%}")
    lines.append(f"variational bound: {h['bits_per_dim']:.3f} bits/dim on {h['images']} {h['set']} "
                 f"({h['timesteps_used']} timesteps)")
    fid_part = result["fid"]
    lines.append(fid_part["skipped"] if "skipped" in fid_part else
                 f"FID {fid_part['fid']:.2f}, KID {fid_part['kid']:.4f} +- {fid_part['kid_std']:.4f}")
    for row in result.get("sweep", []):
        lines.append(f"  {row['sampler']:>9} {row['steps']:>5} steps: SWD {row['swd_x1e3_mean']:7.2f}"
                     + (f", horseshoes {row['horseshoe_rate']:.0%}" if "horseshoe_rate" in row else "")
                     + f", {row['seconds']:.1f} s")
    return lines


def write_section(run_dir: Path, result: dict) -> Path:
    """The Evaluation section of the run's index.html."""
    q, n, h = result["quality"], result["novelty"], result["heldout"]
    numbers = {"samples / sampler": f"{result['samples']} / {result['sampler']}, {result['sampler_steps']} steps",
               "reference": result["reference"], "SWD x1e3 (mean)": q["swd_x1e3_mean"],
               **({"SWD x1e3 of real images (floor)": q["swd_x1e3_floor"]} if "swd_x1e3_floor" in q else {}),
               **{f"SWD x1e3 at {k}": v for k, v in q["swd_x1e3_per_level"].items()}}
    if "horseshoe_rate" in q:
        numbers["horseshoe rate"] = q["horseshoe_rate"]
    numbers.update({"nearest-neighbour ratio (median)": n["nn_ratio_median"],
                    "near-copy fraction": n["near_copy_fraction"], "bits/dim (bound)": h["bits_per_dim"],
                    "FID": result["fid"].get("fid", result["fid"].get("skipped"))})
    body = report.table(numbers) + report.figure("eval/nearest.png", "most-copied samples (top) and their nearest "
                                                                     "training images (bottom)")
    if "sweep" in result:
        body += report.figure("eval/sweep.png", "quality against network evaluations and wall time")
    return report.add_section(run_dir, "evaluation", "Evaluation", body, order=40)
