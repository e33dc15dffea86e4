"""`horseshoe noise`, `denoise`, `animate` and `schedule`: the pictures of how diffusion works."""

from __future__ import annotations

import argparse

import numpy as np

from horseshoe.cli.common import (
    add_command,
    add_config_options,
    add_out_option,
    add_sampler_options,
    class_labels,
    config_from_args,
    noise_seed,
    open_run,
    output_file,
    positive_int,
)
from horseshoe.data import first_images, load_like_training
from horseshoe.diffusion import SCHEDULES, make_schedule
from horseshoe.viz.gif import save_gif, save_mp4
from horseshoe.viz.grid import display_scale, save_png
from horseshoe.viz.pictures import default_noise_timesteps, denoising_picture, noising_picture, sampling_frames
from horseshoe.viz.plots import plot_schedules


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers) -> None:
    p = add_command(subparsers, "noise", "the forward-noising picture: images at increasing t",
                    "horseshoe noise --count 4 --timesteps 0,50,100,200,400,999 --out noising.png")
    p.add_argument("images", nargs="*", help="image files to noise (default: the first --count of the dataset)")
    p.add_argument("--count", type=positive_int, default=4, help="how many images of the dataset, a row each")
    p.add_argument("--timesteps", type=_int_list, help="comma-separated t in 0..T-1 (default: 7 spread over 0..T-1)")
    p.add_argument("--seed", type=noise_seed, default=0, help="seed of the noise")
    add_out_option(p, "noising.png", "the picture, a PNG", folder=False)
    add_config_options(p)
    p.set_defaults(run_command=run_noise)

    p = add_command(subparsers, "denoise", "the backward-denoising picture: x_t and predicted x0 along sampling",
                    "horseshoe denoise runs/demo --count 4 --columns 8 --out denoising.png")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--count", type=positive_int, default=4, help="how many samples, two rows each")
    p.add_argument("--columns", type=positive_int, default=8, help="sampler steps shown")
    add_out_option(p, "denoising.png", "the picture, a PNG", folder=False)
    add_sampler_options(p)
    p.set_defaults(run_command=run_denoise)

    p = add_command(subparsers, "animate", "a GIF of sampling a grid of images (MP4 too with imageio-ffmpeg)",
                    "horseshoe animate runs/demo --count 16 --sampler ddpm --frames 60 --fps 15 --out sampling.gif")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--count", type=positive_int, default=16, help="how many images, in a grid")
    p.add_argument("--frames", type=positive_int, default=40, help="frames, spread over the sampler's steps")
    p.add_argument("--fps", type=float, default=12.0, help="frames per second")
    p.add_argument("--hold", type=float, default=2.0, help="seconds the final frame stays up")
    p.add_argument("--with-x0", action="store_true", help="show the predicted x0 beside x_t")
    add_out_option(p, "sampling.gif", "the animation, a GIF (an MP4 goes beside it)", folder=False)
    add_sampler_options(p, steps_help="100; for ddpm, as for sample")
    p.set_defaults(run_command=run_animate)

    p = add_command(subparsers, "schedule", "plot alpha_bar_t and the signal-to-noise ratio of the schedules",
                    "horseshoe schedule --num-steps 1000 --out schedule.png")
    p.add_argument("--num-steps", type=positive_int, default=1000, metavar="T",
                   help="T, the number of noising steps (diffusion.num_steps)")
    p.add_argument("--schedules", default=",".join(SCHEDULES), help="comma-separated schedule names")
    add_out_option(p, "schedule.png", "the plot, a PNG", folder=False)
    p.set_defaults(run_command=run_schedule)


def run_noise(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    d = config.data
    if args.images:
        images = np.stack([load_like_training(f, d) for f in args.images])
    else:
        images = first_images(d, args.count)
    schedule = config.diffusion.make_schedule()
    timesteps = args.timesteps or default_noise_timesteps(schedule.num_steps)
    picture = noising_picture(images, schedule, timesteps, seed=args.seed, scale=display_scale(d.height))
    print(f"wrote {save_png(picture, output_file(args.out))}")
    return 0


def run_denoise(args: argparse.Namespace) -> int:
    run = open_run(args)
    config = run.sampler(args.sampler, args.steps, args.eta, args.spacing, args.guidance)
    labels, per_class = class_labels(run, args.class_names, args.guidance, args.count)
    if per_class is not None:  # several classes: one sample (two rows) each
        labels = labels[::per_class]
    count = len(labels) if labels else args.count
    out = output_file(args.out)
    recs = list(run.records(config, count, args.seed, labels=labels))
    picture = denoising_picture(recs, columns=args.columns, samples=count,
                                scale=display_scale(run.config.data.height))
    print(f"wrote {save_png(picture, out)}")
    return 0


def run_animate(args: argparse.Namespace) -> int:
    run = open_run(args)
    steps = args.steps or (None if (args.sampler or run.config.sample.sampler) == "ddpm" else 100)
    config = run.sampler(args.sampler, steps, args.eta, args.spacing, args.guidance)
    labels, columns = class_labels(run, args.class_names, args.guidance, args.count)
    out = output_file(args.out, suffix=".gif")
    count = len(labels) if labels else args.count
    frames = sampling_frames(run.records(config, count, args.seed, labels=labels), args.frames, config.steps,
                             with_x0=args.with_x0, columns=columns, scale=display_scale(run.config.data.height))
    gif = save_gif(frames, out, fps=args.fps, hold_seconds=args.hold)
    mp4 = save_mp4(frames, out.with_suffix(".mp4"), fps=args.fps, hold_seconds=args.hold)
    print(f"wrote {gif} ({len(frames)} frames, {config.sampler} {config.steps} steps)" + (f" and {mp4}" if mp4 else ""))
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.schedules.split(",") if n.strip()]
    schedules = {n: make_schedule(n, args.num_steps) for n in names}
    print(f"wrote {plot_schedules(schedules, output_file(args.out))}")
    return 0
