"""`horseshoe evaluate`."""

from __future__ import annotations

import argparse

from horseshoe.cli.common import (
    SAMPLER_STEPS,
    add_batch_size_option,
    add_command,
    add_run_options,
    add_sample_set_option,
    noise_seed,
    non_negative_float,
    positive_int,
)


def register(subparsers) -> None:
    p = add_command(subparsers, "evaluate", "measure a run: sample quality (SWD, FID/KID), novelty, held-out "
                    "loss and bits/dim, and quality against sampler steps",
                    "horseshoe evaluate runs/demo --sweep ddim:10,20,50,100 dpmpp_2m:10,20 dpmpp_2m_sde:10,20 ddpm")
    p.add_argument("run", help="run directory or checkpoint directory")
    p.add_argument("--reference", metavar="DATA",
                   help="images to compare with: a folder, or 'horseshoes' for fresh built-in ones "
                        "(default: the run's training data)")
    p.add_argument("--count", type=positive_int, default=1000,
                   help="how many samples to draw (and reference images); SWD varies ~3%% between seeds at 1000, "
                        "~9%% at 256")
    p.add_argument("--sampler", help="sampler for the main samples (default: the run's sample.sampler)")
    p.add_argument("--steps", type=positive_int, help=f"its {SAMPLER_STEPS} (default: the run's sample.steps)")
    p.add_argument("--eta", type=float, help="DDIM eta (default: the run's sample.eta)")
    p.add_argument("--seed", type=noise_seed, default=0, help="seed of samples, patches and projections")
    add_batch_size_option(p)
    p.add_argument("--heldout", type=positive_int, default=128, help="held-out images for loss and bits/dim")
    p.add_argument("--bpd-timesteps", type=positive_int, default=50,
                   help="timesteps for the bits/dim bound (all T-1: exact; fewer: a stratified estimate)")
    p.add_argument("--inception-weights", metavar="PATH", help="pytorch-fid's pt_inception-2015-12-05 weights "
                   "(default: the torch hub cache; without them FID/KID are skipped)")
    p.add_argument("--sweep", nargs="+", metavar="SAMPLER:STEPS", default=[],
                   help="settings to compare with the same seeds, e.g. ddim:10,20,50 dpmpp_2m:10,20 ddpm "
                        "(no steps: the run's default; for ddpm every timestep)")
    p.add_argument("--guidance-sweep", nargs="+", type=non_negative_float, metavar="W", default=[],
                   help="a run with classes: score every class at each guidance scale, e.g. 0 1 2 3 "
                        "(a table, and eval/guidance.png)")
    add_run_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_sample_set_option(p)
    p.set_defaults(run_command=run)


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


def run(args: argparse.Namespace) -> int:
    from horseshoe.runs.evaluate import EvalOptions, evaluate

    options = EvalOptions(count=args.count, reference=args.reference, sampler=args.sampler, steps=args.steps,
                          eta=args.eta, seed=args.seed, batch_size=args.batch_size, heldout=args.heldout,
                          bpd_timesteps=args.bpd_timesteps, inception_weights=args.inception_weights,
                          sweep=parse_sweep(args.sweep), sample_overrides=tuple(args.overrides),
                          progress=not args.no_progress, guidance_sweep=tuple(args.guidance_sweep))
    result = evaluate(args.run, options, weights=args.weights, device=args.device, ema_length=args.ema_length)
    for line in result.summary():
        print(line)
    print(f"wrote {result.run}/eval.json, {result.run}/eval/ and the Evaluation section of index.html")
    return 0
