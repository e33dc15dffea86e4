"""`horseshoe distill`."""

from __future__ import annotations

import argparse
from pathlib import Path

from horseshoe.cli.common import DEVICES, OPTIMIZER_STEPS, add_command, output_dir, positive_float, positive_int
from horseshoe.diffusion.consistency import METHODS
from horseshoe.distill_config import METHOD, STUDENT_STEPS
from horseshoe.training.results import StopReason

DEFAULT_STEPS = STUDENT_STEPS


def register(subparsers) -> None:
    p = add_command(subparsers, "distill",
                    "tune a finished run into a student that samples in 1 to 4 steps (a run of its own)",
                    "horseshoe distill runs/demo --out runs/demo-fast && horseshoe sample runs/demo-fast --steps 2")
    p.add_argument("run", help="the finished run (or checkpoint directory) to distil: the teacher")
    p.add_argument("--out", help="folder to write: the student's run directory (default: RUN-fast, beside the run)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int,
                        help=f"{OPTIMIZER_STEPS} to tune for (default: {DEFAULT_STEPS}: the demo's model in about "
                        "7 minutes on a 2-core CPU, the teacher's paths included)")
    budget.add_argument("--minutes", type=positive_float, help="tune for this long instead: the teacher's paths, "
                        "then steps timed as `train --minutes` times them")
    p.add_argument("--method", choices=METHODS,
                   help=f"{METHOD} (the default, measured best here): regress onto the ends of the teacher's ODE "
                   "paths, against a critic of the training images (distill.adversarial; none for a teacher of "
                   "under 100 images); ect: consistency tuning on the data (Geng et al. 2024); cd: consistency "
                   "distillation along the teacher's ODE (Song et al. 2023)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="PATH",
                   help="continue the student in --out from its latest checkpoint, or from PATH (one of its "
                   "checkpoints), with its own settings: only --steps, --minutes and --set given now change them")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already has checkpoints (they are deleted)")
    p.add_argument("--device", help=f"{DEVICES} (default: the teacher's train.device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting of the student (e.g. distill.paths=4096, train.batch_size=64); "
                   "repeatable")
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    from horseshoe.runs.distill import distill  # the trainer loads only when a command trains

    out = Path(args.out) if args.out else Path(str(Path(args.run)).rstrip("/") + "-fast")
    output_dir(out)
    resume = None if args.resume is None else (out if args.resume == "latest" else Path(args.resume))
    device = () if args.device is None else (f"train.device={args.device!r}",)
    done = distill(args.run, out, args.method, args.steps, args.minutes, resume=resume, overwrite=args.overwrite,
                   progress=not args.no_progress, overrides=(*device, *args.set))
    result = done.training
    if result.stop_reason == StopReason.NOTHING:
        print(f"{done.resumed_from} is already at step {result.step}: nothing to tune")
        return 0
    how = "stopped by signal" if result.stop_reason == StopReason.SIGNAL else "done"
    print(f"{how}: {result.step} steps in {result.seconds:.0f} s; checkpoint: {done.checkpoint}")
    if result.stop_reason != StopReason.SIGNAL:
        print(f"report: {out / 'index.html'} (teacher and student side by side); sample it: "
              f"horseshoe sample {out} --steps 2")
    return 128 + done.stop_signal if done.stop_signal else 0
