"""The `horseshoe` command line: one module per command family, assembled in main.py."""

from horseshoe.cli.main import main

__all__ = ["main"]
