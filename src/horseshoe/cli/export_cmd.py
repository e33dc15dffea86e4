"""`horseshoe export`: a trained run's weights and config alone, small enough to share."""

from __future__ import annotations

import argparse

from horseshoe.cli.common import add_command, add_legacy_out_positional, add_out_option, required_out
from horseshoe.training import checkpoint


def register(subparsers) -> None:
    p = add_command(subparsers, "export", "write a run's EMA weights and config alone (safetensors + JSON, a few MB) "
                    "into a folder that sample, denoise and evaluate accept in place of the run",
                    "horseshoe export runs/demo --out demo-model/ && horseshoe sample demo-model/ --count 16")
    p.add_argument("run", help="run directory (its latest checkpoint) or a checkpoint directory")
    add_legacy_out_positional(p)
    add_out_option(p, None, "the weights, config.json and state.json (a new or empty folder)", folder=True)
    p.add_argument("--weights", default="ema", choices=["ema", "model"],
                   help="'ema' (averaged) or 'model' (raw) weights")
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    out = checkpoint.export(args.run, required_out(args), args.weights)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MB: {args.weights} weights, config.json, state.json)")
    return 0
