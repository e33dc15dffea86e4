"""`horseshoe train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from horseshoe.cli.common import add_command, add_config_options, config_from_args, output_dir, positive_int
from horseshoe.config import Config, from_dict
from horseshoe.training import checkpoint


def register(subparsers) -> None:
    p = add_command(subparsers, "train", "train a diffusion model (no --data: the built-in horseshoes)",
                    "horseshoe train --data my_sprites/ --out runs/sprites --steps 5000 --set data.channels=3")
    p.add_argument("--out", default="runs/train", help="run directory for checkpoints, logs and pictures")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="optimizer steps to train to (default: train.steps)")
    budget.add_argument("--epochs", type=float, help="passes over the data to train to, instead of --steps")
    p.add_argument("--resume", nargs="?", const="latest", metavar="PATH",
                   help="continue from the run's latest checkpoint, or from PATH (a run or checkpoint directory)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: train.device, auto)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], help="default: train.precision (auto)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow to start, faster after)")
    p.add_argument("--eval-every", type=int, metavar="N", help="every N steps, a small evaluation (SWD, novelty) "
                   "of the EMA weights logged to metrics.jsonl (default: train.eval_every, 0 = off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_options(p)
    p.set_defaults(run_command=run)


def _config(args: argparse.Namespace, base: Config | None) -> Config:
    flags = []
    if args.steps is not None:
        flags.append(f"train.steps={args.steps}")
    if args.epochs is not None:
        flags.append(f"train.epochs={args.epochs}")
    if args.device:
        flags.append(f"train.device={args.device!r}")
    if args.precision:
        flags.append(f"train.precision={args.precision!r}")
    if args.compile:
        flags.append("train.compile=true")
    if args.eval_every is not None:
        flags.append(f"train.eval_every={args.eval_every}")
    args.overrides = flags + list(args.overrides)
    return config_from_args(args, base)


def run(args: argparse.Namespace) -> int:
    from horseshoe.training.runlog import read_metrics
    from horseshoe.training.trainer import Trainer
    from horseshoe.viz.plots import plot_loss

    out = Path(args.out)
    base, resume_from = None, None
    if args.resume:
        source = out if args.resume == "latest" else Path(args.resume)
        resume_from = checkpoint.resolve(source)
        base = from_dict(checkpoint.load(resume_from, parts=()).config)
        if args.resume != "latest" and args.out == "runs/train":
            out = resume_from.parent.parent  # keep writing into the run the checkpoint belongs to
    elif checkpoint.latest(out) is not None:
        raise ValueError(f"run directory {str(out)!r} already has checkpoints; pass --resume to continue it "
                         f"or choose another --out")
    config = _config(args, base)
    output_dir(out)
    trainer = Trainer(config, out, progress=not args.no_progress)
    try:
        if resume_from:
            trainer.resume(resume_from)
            if trainer.world.is_main:
                print(f"resumed from {resume_from} at step {trainer.step}")
        result = trainer.fit()
        if trainer.world.is_main:
            plot_loss(read_metrics(out), out / "loss.png")
            trainer.sample_grid(out / "samples.png")
            how = {"signal": "stopped by signal", "time": "stopped at train.max_minutes", "budget": "done"}[
                result.stop_reason]
            print(f"{how}: {result.step} steps, {result.images_per_sec:.0f} images/s, last loss {result.loss:.4f}")
            print(f"checkpoint: {result.checkpoint}")
            print(f"samples: {out / 'samples.png'}   loss curve: {out / 'loss.png'}")
            if result.nonfinite_skipped:
                print(f"skipped {result.nonfinite_skipped} steps with a non-finite loss")
    finally:
        trainer.close()
    return 0
