"""Assemble the subcommands, run one, and turn user errors into one line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

import horseshoe
from horseshoe.cli import (
    config_cmd,
    data_cmd,
    demo_cmd,
    distill_cmd,
    edit_cmd,
    evaluate_cmd,
    export_cmd,
    pictures_cmd,
    sample_cmd,
    serve_cmd,
    train_cmd,
)
from horseshoe.cli.common import Parser
from horseshoe.runtime import keep_memory_mapped
from horseshoe.training.errors import NonFiniteLoss

COMMANDS = (demo_cmd, train_cmd, distill_cmd, sample_cmd, edit_cmd, evaluate_cmd, pictures_cmd, data_cmd, config_cmd,
            export_cmd, serve_cmd)
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="horseshoe",
        description="Train image diffusion models on a folder of images (or built-in horseshoes) and sample them.",
    )
    parser.add_argument("--version", action="version", version=f"horseshoe {horseshoe.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def plain_warnings() -> None:
    """Warnings and log messages meant for users as one plain line each, without a source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"horseshoe: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    logging.basicConfig(format="horseshoe: warning: %(message)s", level=logging.WARNING, force=True)
    said: set[str] = set()

    def once(record: logging.LogRecord) -> bool:  # a broken pointer is found by every look-up: say it once
        new = record.getMessage() not in said
        said.add(record.getMessage())
        return new

    logging.getLogger().handlers[0].addFilter(once)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    keep_memory_mapped()  # every command allocates the same large buffers over and over
    plain_warnings()
    try:
        return int(args.run_command(args) or 0)
    except USER_ERRORS as error:
        print(f"horseshoe: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(f"horseshoe: error: {error}", file=sys.stderr)
        return 3
    except OSError as error:  # disk full, I/O errors: the message says what is intact
        print(f"horseshoe: error: {error.strerror or error}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the last checkpoint is intact
        print("horseshoe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
