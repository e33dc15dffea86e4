"""The `horseshoe` command line."""

from __future__ import annotations

import argparse
import sys

import horseshoe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="horseshoe",
        description="Train image diffusion models on a folder of images (or built-in horseshoes) and sample them.",
    )
    parser.add_argument("--version", action="version", version=f"horseshoe {horseshoe.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
