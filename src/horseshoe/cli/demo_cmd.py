"""`horseshoe demo`: the main job, from nothing to pictures of new horseshoes."""

from __future__ import annotations

import argparse

from horseshoe.cli.common import add_command, add_out_option, output_dir


def register(subparsers) -> None:
    p = add_command(subparsers, "demo", "train on the built-in horseshoes (~5 min on 2 CPU cores) and draw "
                    "samples, noising/denoising pictures, a GIF, the loss curve and index.html",
                    "horseshoe demo --out runs/demo")
    add_out_option(p, "runs/demo", "the run directory; an earlier demo there is continued", folder=True)
    p.add_argument("--fresh", action="store_true", help="delete an earlier demo in --out and start over")
    p.add_argument("--gallery", metavar="DIR", help="also copy the pictures into DIR (the README's docs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the demo config (configs/demo.toml), e.g. --set train.steps=300")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    from horseshoe.runs.demo import run_demo

    output_dir(args.out)
    result = run_demo(args.out, args.overrides, args.gallery, args.fresh, progress=not args.no_progress)
    n = result.report
    if n.steps_trained:
        print(f"\ndemo done in {n.seconds:.0f} s: {n.steps} training steps at {n.images_per_sec:.0f} images/s on "
              f"{n.device} ({n.precision})")
    else:
        print(f"\ndemo done in {n.seconds:.0f} s: the run in {result.out} was already trained ({n.steps} steps); "
              f"pictures redrawn")
    if n.horseshoe_rate is not None:
        print(f"{n.horseshoe_rate:.0%} of the 64 samples pass the horseshoe check")
    print(result.copies.line())
    print(f"open {result.out / 'index.html'} to see everything:")
    for path in result.pictures[:-1]:
        print(f"  {path}")
    if args.gallery:
        print(f"pictures copied to {args.gallery}/")
    return 0
