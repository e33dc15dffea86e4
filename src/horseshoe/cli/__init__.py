"""The `horseshoe` command line: one module per command family, assembled in main.py."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """The `horseshoe` command; a Ctrl-C while torch and the commands load exits quietly with 130."""
    try:
        from horseshoe.cli.app import main as run
    except KeyboardInterrupt:
        print("horseshoe: interrupted", file=sys.stderr)
        return 130
    return run(argv)


__all__ = ["main"]
