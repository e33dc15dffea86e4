"""`horseshoe sample` and `horseshoe interpolate` (between seeds, or between real images through DDIM inversion)."""

from __future__ import annotations

import argparse

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
    noise_seed,
    open_run,
    output_dir,
    output_file,
    positive_int,
)
from horseshoe.data.transforms import to_uint8
from horseshoe.sampling import initial_noise
from horseshoe.sampling.edit import finish, inversion_config, invert, slerp_path
from horseshoe.viz.gif import save_gif
from horseshoe.viz.grid import display_scale, make_grid, save_png, save_samples


def register(subparsers) -> None:
    p = add_command(subparsers, "sample", "generate new images from a trained run (EMA weights by default)",
                    "horseshoe sample runs/demo --count 64 --sampler ddim --steps 50 --seed 0 --out samples/\n"
                    "  horseshoe sample runs/shapes --class all --guidance 2 --out samples/   # a row per class")
    p.add_argument("run", help="run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("--count", type=positive_int, default=64,
                   help="how many images (with several classes: in all, a whole row per class)")
    add_out_option(p, "samples", "grid.png and 000.png, 001.png, ...", folder=True)
    p.add_argument("--npz", action="store_true",
                   help="also write samples.npz (uint8 images, N x H x W x C; with --class, labels and classes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sampler_options(p)
    p.set_defaults(run_command=run_sample)

    p = add_command(subparsers, "interpolate",
                    "spherical interpolation between two noise seeds, or two images' inverted noises, through DDIM",
                    "horseshoe interpolate runs/demo --seeds 3 7 --count 10 --gif")
    p.add_argument("run", help="run directory or checkpoint directory")
    ends = p.add_mutually_exclusive_group()
    ends.add_argument("--seeds", type=noise_seed, nargs=2, metavar=("A", "B"),
                      help="the two noise seeds (default: 0 1)")
    ends.add_argument("--images", nargs=2, metavar=("A", "B"),
                      help="two images: their DDIM-inverted noises are the ends (see `horseshoe invert`)")
    p.add_argument("--count", type=positive_int, default=10, help="how many images along the path, ends included")
    p.add_argument("--steps", type=positive_int, default=50, help=f"deterministic DDIM {SAMPLER_STEPS}")
    p.add_argument("--gif", action="store_true", help="also write a back-and-forth GIF")
    add_out_option(p, "interpolation.png", "the strip, a PNG (the GIF goes beside it)", folder=False)
    add_run_options(p)
    add_class_options(p, several=False)
    add_sample_set_option(p)
    p.set_defaults(run_command=run_interpolate)


def run_sample(args: argparse.Namespace) -> int:
    run = open_run(args)
    config = run.sampler(args.sampler, args.steps, args.eta, args.spacing, args.guidance)
    labels, columns = class_labels(run, args.class_names, args.guidance, args.count)
    folder = output_dir(args.out)  # after every check: a bad --class writes nothing
    count = len(labels) if labels else args.count
    images = to_uint8(run.generate(config, count, seed=args.seed, batch_size=args.batch_size, labels=labels,
                                   progress=None if args.no_progress else "sampling"))
    arrays = {} if labels is None else {"labels": run.labels(labels, count).numpy(), "classes": np.array(run.classes)}
    save_samples(images, folder, npz=args.npz, columns=columns, arrays=arrays)
    what = "" if labels is None else (f" of class {labels[0]}" if columns is None else
                                      f", {columns} per class ({', '.join(dict.fromkeys(labels))}), a row each")
    guidance = "" if labels is None else f", guidance {config.guidance:g}"
    print(f"wrote {count} samples{what} ({config.sampler}, {config.steps} steps{guidance}, seed {args.seed}) "
          f"from {run.checkpoint} "
          f"to {folder}/ (grid.png, one PNG per image{', samples.npz' if args.npz else ''})")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    run = open_run(args)
    if args.count < 2:
        raise ValueError(f"--count must be at least 2 for an interpolation, got {args.count}")
    if args.class_names is not None and args.images:
        raise ValueError("--class goes with --seeds: --images interpolates between the images' own inverted noises")
    labels, _ = class_labels(run, args.class_names, args.guidance, args.count, several=False)
    if args.images:  # the noises that regenerate the images, and the exact way back (horseshoe invert)
        config = inversion_config(run.sampler("ddim", args.steps))
        images = torch.cat([run.load_image(path) for path in args.images])
        z0, z1 = finish(invert(run.denoiser, images, config), images).float().cpu().split(1)
    else:
        config = run.sampler("ddim", args.steps, eta=0.0, guidance=args.guidance)
        shape = (1, *run.image_shape)
        z0, z1 = (initial_noise(shape, torch.Generator().manual_seed(s)) for s in args.seeds or (0, 1))
    *_, last = run.records(config, args.count, x_T=slerp_path(z0, z1, args.count), labels=labels)
    images = to_uint8(last.x_prev.float().cpu())
    scale = display_scale(images.shape[1])
    path = save_png(make_grid(images, columns=args.count, scale=scale), output_file(args.out))
    print(f"wrote {path}")
    if args.gif:
        there_and_back = list(images) + list(images[-2:0:-1])  # endpoints once each: a seamless loop
        frames = [make_grid(img[None], padding=0, scale=scale) for img in there_and_back]
        gif = save_gif(frames, path.with_suffix(".gif"), fps=8, hold_seconds=0.0)
        print(f"wrote {gif}")
    return 0
