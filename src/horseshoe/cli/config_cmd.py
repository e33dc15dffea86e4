"""`horseshoe config`: the full resolved config as TOML, to start a file of one's own from."""

from __future__ import annotations

import argparse

from horseshoe.cli.common import add_command, add_config_options, config_from_args


def register(subparsers) -> None:
    p = add_command(subparsers, "config", "print the full config (defaults, then --config, then --set) as TOML",
                    "horseshoe config --set train.steps=5000 > mine.toml; horseshoe train --config mine.toml")
    p.add_argument("--demo", action="store_true", help="start from the demo's config (configs/demo.toml)")
    add_config_options(p)
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    base = None
    if args.demo:
        from horseshoe.runs.demo import demo_config

        base = demo_config()
    print(config_from_args(args, base).to_toml(), end="")
    return 0
