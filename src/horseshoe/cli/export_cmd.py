"""`horseshoe export`: a trained run's weights and config alone, small enough to share."""

from __future__ import annotations

import argparse

from horseshoe.cli.common import add_command
from horseshoe.training import checkpoint


def register(subparsers) -> None:
    p = add_command(subparsers, "export", "write a run's EMA weights and config alone (safetensors + JSON, a few MB) "
                    "into a folder that sample, denoise and evaluate accept in place of the run",
                    "horseshoe export runs/demo demo-model/ && horseshoe sample demo-model/ --count 16")
    p.add_argument("run", help="run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("out", help="folder to write (new, or empty)")
    p.add_argument("--weights", default="ema", choices=["ema", "model"], help="'ema' (averaged) or 'model' (raw)")
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    out = checkpoint.export(args.run, args.out, args.weights)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MB: {args.weights} weights, config.json, state.json)")
    return 0
