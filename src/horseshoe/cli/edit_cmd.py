"""`horseshoe inpaint`, `edit` and `invert`: change real images with a trained run."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from horseshoe.cli.common import (
    SAMPLER_STEPS,
    add_class_options,
    add_command,
    add_out_option,
    add_run_options,
    add_sample_set_option,
    add_sampler_options,
    class_labels,
    open_run,
    output_file,
    positive_int,
)
from horseshoe.data.transforms import to_uint8
from horseshoe.runs.load import Inversion, LoadedRun
from horseshoe.sampling import StepRecord, sampler_timesteps
from horseshoe.sampling.edit import MASKS, inversion_config, repaint_length, round_trip_records, sdedit_start
from horseshoe.viz.gif import save_gif
from horseshoe.viz.grid import display_scale, make_grid, save_png
from horseshoe.viz.pictures import beside, edit_picture, label_columns, sampling_frames


def _strength(text: str) -> float:
    """argparse type for --strength: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value} (0 keeps the image, 1 forgets it)")
    return value


def _output_options(p: argparse.ArgumentParser, out: str, what: str) -> None:
    add_out_option(p, out, f"{what}, a PNG (the GIF goes beside it)", folder=False)
    p.add_argument("--gif", action="store_true", help="also write a GIF of the steps")
    p.add_argument("--frames", type=positive_int, default=40, help="GIF frames, spread over the steps")


def register(subparsers) -> None:
    p = add_command(subparsers, "inpaint", "fill the white part of a mask so it fits the rest of an image (RePaint)",
                    "horseshoe inpaint runs/demo --image shoe.png --mask left-half --count 8 --resample 5 --gif")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--image", required=True, help="the image, fitted like the training data")
    p.add_argument("--mask", required=True,
                   help=f"a mask image of the same size (white = generate, black = keep) or one of {', '.join(MASKS)}")
    p.add_argument("--count", type=positive_int, default=8, help="how many fillings")
    p.add_argument("--resample", type=positive_int, default=5,
                   help="takes of each step, with a jump back between, so the kept part reaches the filled one "
                        "(RePaint's U; U times the network evaluations)")
    _output_options(p, "inpainting.png", "the image and the part kept beside the fillings")
    add_sampler_options(p, batch_size=False, classes=False)  # one batch
    add_class_options(p, several=False)
    p.set_defaults(run_command=run_inpaint)

    p = add_command(subparsers, "edit", "turn a rough image into one in the data's style (SDEdit)",
                    "horseshoe edit runs/demo --image sketch.png --strength 0.6 --count 8 --gif")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--image", required=True, help="the image, fitted like the training data")
    p.add_argument("--strength", type=_strength, default=0.6,
                   help="how much noise: the share of the sampler's steps re-run; 1 = sample from scratch")
    p.add_argument("--count", type=positive_int, default=8, help="how many variations")
    _output_options(p, "edit.png", "the image beside the variations")
    add_sampler_options(p, batch_size=False, classes=False)  # one batch
    add_class_options(p, several=False)
    p.set_defaults(run_command=run_edit)

    p = add_command(subparsers, "invert", "DDIM inversion: the noise that regenerates an image, and back",
                    "horseshoe invert runs/demo --image shoe.png --steps 50 --gif")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--image", required=True, help="the image, fitted like the training data")
    p.add_argument("--steps", type=positive_int, default=50, help=f"deterministic DDIM {SAMPLER_STEPS}, each way")
    _output_options(p, "inversion.png", "the image, its noise and the image regenerated")
    add_run_options(p)
    add_sample_set_option(p)
    p.set_defaults(run_command=run_invert)


def _tap(records: Iterable[StepRecord], seen: list[StepRecord]) -> Iterator[StepRecord]:
    """Pass records on, keeping the last one in seen (the result, once the pictures have used them)."""
    for record in records:
        seen[:] = [record]
        yield record


def _write(run: LoadedRun, records: Iterator[StepRecord], inputs: np.ndarray, total: int,
           args: argparse.Namespace, out: Path) -> None:
    """Run the records to the end: the inputs beside the results to --out, and with --gif the steps beside it."""
    scale = display_scale(run.config.data.height)
    last: list[StepRecord] = []
    steps = _tap(records, last)
    if args.gif:
        left = make_grid(inputs, columns=1, scale=scale)
        frames = [beside(left, frame) for frame in sampling_frames(steps, args.frames, total, scale=scale)]
        print(f"wrote {save_gif(frames, out.with_suffix('.gif'))} ({len(frames)} frames)")
    else:
        for _ in steps:  # run to the end, keeping only the last record
            pass
    results = to_uint8(last[0].x_prev.float().cpu())
    print(f"wrote {save_png(edit_picture(inputs, results, scale), out)}")


def run_inpaint(args: argparse.Namespace) -> int:
    run = open_run(args)
    config = run.sampler(args.sampler, args.steps, args.eta, args.spacing, args.guidance)
    labels, _ = class_labels(run, args.class_names, args.guidance, args.count, several=False)
    image, mask = run.load_image(args.image), run.load_mask(args.mask, args.image)  # errors before any file
    out = output_file(args.out)
    records = run.inpaint(image, mask, config, args.count, args.seed, args.resample, labels)
    inputs = to_uint8(torch.cat([image, image * (1 - mask)]).float().cpu())  # the part to fill shown mid grey
    total = repaint_length(run.denoiser, config, args.resample)
    _write(run, records, inputs, total, args, out)
    print(f"{args.count} fillings of {args.image} under mask {args.mask}: {config.sampler}, {config.steps} steps, "
          f"resample {args.resample}: {total} network evaluations")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    run = open_run(args)
    config = run.sampler(args.sampler, args.steps, args.eta, args.spacing, args.guidance)
    labels, _ = class_labels(run, args.class_names, args.guidance, args.count, several=False)
    image = run.load_image(args.image)
    out = output_file(args.out)
    timesteps = sampler_timesteps(run.denoiser.schedule, config)
    start = sdedit_start(len(timesteps), args.strength)
    records = run.edit(image, args.strength, config, args.count, args.seed, labels)
    _write(run, records, to_uint8(image.float().cpu()), len(timesteps) - start, args, out)
    print(f"{args.count} edits of {args.image} at strength {args.strength}: the last {len(timesteps) - start} of "
          f"{len(timesteps)} {config.sampler} steps, from t={timesteps[start]}")
    return 0


def run_invert(args: argparse.Namespace) -> int:
    run = open_run(args)
    config = inversion_config(run.sampler("ddim", args.steps))
    image = run.load_image(args.image)
    out = output_file(args.out)
    timesteps = sampler_timesteps(run.denoiser.schedule, config)
    n = len(timesteps)
    records = list(round_trip_records(run.denoiser, image, config))  # one image: 2n small records
    result = Inversion(images=image.float().cpu(), noise=records[n - 1].x_prev.float().cpu(),
                       regenerated=records[-1].x_prev.float().cpu())
    scale = display_scale(run.config.data.height)
    cells = to_uint8(torch.cat([result.images, result.noise, result.regenerated]))
    grid = make_grid(cells, columns=3, padding=2, pad_value=255, scale=scale)
    picture = label_columns(grid, ["image", f"x_T (t={timesteps[0]})", "regenerated"], cells.shape[2] * scale, 2)
    print(f"wrote {save_png(picture, out)}")
    if args.gif:
        frames = sampling_frames(records, args.frames, 2 * n, scale=scale)
        print(f"wrote {save_gif(frames, out.with_suffix('.gif'))} ({len(frames)} frames)")
    print(f"round trip over {n} DDIM steps each way: RMSE {result.rmse:.4f}, max {result.max_error:.4f} "
          f"(pixel values in [-1, 1]; {result.rmse * 127.5:.1f} and {result.max_error * 127.5:.1f} of 255 grey levels)")
    return 0
