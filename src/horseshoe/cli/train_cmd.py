"""`horseshoe train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from horseshoe.cli.common import (
    DEVICES,
    OPTIMIZER_STEPS,
    add_command,
    add_config_options,
    add_out_option,
    config_from_args,
    output_dir,
    positive_float,
    positive_int,
)
from horseshoe.config import Config, TrainConfig, from_dict
from horseshoe.runtime import PRECISIONS
from horseshoe.training import checkpoint
from horseshoe.training.results import StopReason


def register(subparsers) -> None:
    t = TrainConfig()
    p = add_command(subparsers, "train", "train a diffusion model (no --data: the built-in horseshoes)",
                    "horseshoe train --data my_sprites/ --out runs/sprites --steps 5000 --set data.channels=3")
    add_out_option(p, "runs/train", "the run directory, for checkpoints, logs and pictures", folder=True)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int,
                        help=f"{OPTIMIZER_STEPS} to train to (default: {t.steps}, train.steps)")
    budget.add_argument("--epochs", type=float, help="passes over the data to train to, instead of --steps")
    budget.add_argument("--minutes", type=positive_float, help="train for this long: the first steps are timed and "
                        "the step count fixed so that the learning-rate decay and the EMA fit, then fixed again "
                        "at the end of the warm-up (train.minutes)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="PATH",
                   help="continue from the run's latest checkpoint, or from PATH (a run or checkpoint directory; a "
                   "run's newest two checkpoints can resume, older ones hold its weights only)")
    p.add_argument("--device", help=f"{DEVICES} (default: {t.device}, train.device)")
    p.add_argument("--precision", choices=PRECISIONS, help="fp16 trains with a gradient scaler; auto: bf16 where it "
                   f"is fast, else fp16 on CUDA, else fp32 (default: {t.precision}, train.precision)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow to start, faster after)")
    p.add_argument("--eval-every", type=int, metavar="N", help="every N steps, a small evaluation (SWD, novelty) "
                   f"of the EMA weights logged to metrics.jsonl (default: {t.eval_every}, train.eval_every; 0 = off)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already has checkpoints (they are deleted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_options(p, trains=True)
    p.set_defaults(run_command=run)


def _config(args: argparse.Namespace, base: Config | None) -> Config:
    train = {key: value for key, value in (("steps", args.steps), ("epochs", args.epochs), ("minutes", args.minutes),
                                           ("device", args.device),
                                           ("precision", args.precision), ("eval_every", args.eval_every))
             if value is not None}
    if args.compile:
        train["compile"] = True
    return config_from_args(args, base, {"train": train} if train else None)


def run(args: argparse.Namespace) -> int:
    from horseshoe.runs.train import train

    out, base, resume_from = Path(args.out), None, None
    if args.resume:
        resume_from = checkpoint.resolve(out if args.resume == "latest" else Path(args.resume), resume=True)
        base = from_dict(checkpoint.load(resume_from, parts=()).config)
        if args.resume != "latest" and args.out == "runs/train":
            out = resume_from.parent.parent  # keep writing into the run the checkpoint belongs to
    config = _config(args, base)
    output_dir(out)
    done = train(config, out, resume=resume_from, progress=not args.no_progress, overwrite=args.overwrite)
    result = done.training
    if result.stop_reason == StopReason.NOTHING:
        print(f"{done.resumed_from} is already at step {result.step}, the budget: nothing to train, nothing written "
              f"(raise --steps to train further)")
        return 0
    if done.resumed_from is not None:
        print(f"resumed from {done.resumed_from}")
    if done.classes:
        named = [name if n is None else f"{name} ({n})" for name, n in done.classes.items()]
        shown = ", ".join(named[:16]) + (f", ... ({len(named) - 16} more)" if len(named) > 16 else "")
        print(f"{len(done.classes)} classes: {shown}")
        print(done.balance)
    print(done.augment)
    how = {StopReason.SIGNAL: "stopped by signal",
           StopReason.TIME: "stopped at the time limit (train.minutes or train.max_minutes)",
           StopReason.BUDGET: "done"}[result.stop_reason]
    print(f"{how}: {result.step} steps; this call {result.images_per_sec:.0f} images/s with checkpoints and "
          f"evaluations, last step's loss {result.loss:.4f}")
    print(f"checkpoint: {done.checkpoint}")
    if done.copies is not None:
        print(done.copies.line())
    if result.stop_reason != StopReason.SIGNAL:
        print(f"report: {out / 'index.html'} (samples.png, copies.png, loss.png)")
    if result.nonfinite_skipped:
        print(f"skipped {result.nonfinite_skipped} steps with a non-finite loss")
    if result.scaler_skipped:
        print(f"the fp16 gradient scaler skipped {result.scaler_skipped} steps whose gradients overflowed")
    return 128 + done.stop_signal if done.stop_signal else 0  # 130 after Ctrl-C, 143 after SIGTERM, as shells do
