"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from horseshoe.config import Config, apply_overrides, load_toml, merge
from horseshoe.data.config import BUILTINS
from horseshoe.runtime import SEED_MAX


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults, keep the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        # A help text that already says its default ('default: the run's ...') or an option without
        # one (None, a False flag, an empty list) would otherwise end in '(default: None)' and the like.
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or action.default == []:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line ('horseshoe CMD: error: ...') with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_command(subparsers, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows defaults and an example."""
    return subparsers.add_parser(name, help=help, description=f"{help}\n\nexample:\n  {example}",
                                 formatter_class=HelpFormatter)


def add_sampler_options(parser: argparse.ArgumentParser, steps_help: str = "the run's sample.steps",
                        batch_size: bool = True, classes: bool = True) -> None:
    """--sampler, --steps, --eta, --spacing, --seed, --weights, --device, --batch-size (unless the command
    runs one batch), --class and --guidance (unless the command cannot take them yet), --set."""
    from horseshoe.sampling import SAMPLERS

    parser.add_argument("--sampler", help=f"one of {', '.join(SAMPLERS)} (default: the run's sample.sampler)")
    parser.add_argument("--steps", type=positive_int, help=f"{SAMPLER_STEPS} (default: {steps_help})")
    parser.add_argument("--eta", type=float, help="DDIM noise scale, 0 = deterministic (default: the run's sample.eta)")
    parser.add_argument("--spacing",
                        help="timestep spacing: trailing, leading, linspace or karras (default: the run's)")
    parser.add_argument("--seed", type=noise_seed, default=0, help="seed of the initial noise")
    add_run_options(parser)
    if batch_size:
        add_batch_size_option(parser)
    if classes:
        add_class_options(parser)
    add_sample_set_option(parser)


# The words the flags' help texts share, so that one flag means one thing in every command
# (tests/test_cli_vocabulary.py holds them to it; README "Command line" says it to users).
SAMPLER_STEPS = "sampler steps, one network evaluation each"
OPTIMIZER_STEPS = "optimizer steps"
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """--weights, --ema-length and --device: which of a trained run's weights to load, and where."""
    parser.add_argument("--weights", default="ema", choices=["ema", "model"],
                        help="'ema' (averaged) or 'model' (raw) weights")
    parser.add_argument("--ema-length", type=float, metavar="SIGMA_REL",
                        help="a post-hoc EMA of this width relative to the training so far (e.g. 0.05), "
                             "reconstructed from the snapshots of a run trained with train.posthoc_ema "
                             "(default: the run's own EMA)")
    parser.add_argument("--device", default="auto", help=DEVICES)


def open_run(args: argparse.Namespace):
    """The run of the command's `run` argument, with the weights, device, EMA length and --set it was given."""
    from horseshoe.runs.load import load_run

    return load_run(args.run, weights=args.weights, device=args.device, sample_overrides=args.overrides,
                    ema_length=args.ema_length)


def add_batch_size_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per network call (memory)")


def add_out_option(parser: argparse.ArgumentParser, default: str | None, what: str, folder: bool) -> None:
    """--out: where the command writes, a folder (several files) or a file (one picture), said in its help."""
    kind = "folder" if folder else "file"
    required = "" if default is not None else " (required)"
    parser.add_argument("--out", default=default, metavar="DIR" if folder else "FILE",
                        help=f"{kind} to write: {what}{required}")


def add_legacy_out_positional(parser: argparse.ArgumentParser) -> None:
    """The folder as a positional argument, as before --out: still read, with a warning; not in --help."""
    parser.add_argument("legacy_out", nargs="?", metavar="DIR", help=argparse.SUPPRESS)


def required_out(args: argparse.Namespace) -> str:
    """--out, or the deprecated positional folder (with a warning); a one-line error without either."""
    legacy = getattr(args, "legacy_out", None)
    if legacy is not None and args.out is not None:
        raise ValueError(f"give the folder once: --out {args.out} and {legacy!r} as well")
    if legacy is not None:
        import warnings

        warnings.warn(f"the folder as a positional argument is deprecated: use --out {legacy}", FutureWarning,
                      stacklevel=2)
        return legacy
    if args.out is None:
        raise ValueError("--out DIR is required: the folder to write")
    return args.out


def add_class_options(parser: argparse.ArgumentParser, several: bool = True) -> None:
    """--class NAME and --guidance W, for a run trained with classes."""
    rows = ", several as a,b, or 'all' for each of the run's classes in turn" if several else ""
    parser.add_argument("--class", dest="class_names", metavar="NAME",
                        help=f"draw this class (a run trained with classes){rows}")
    parser.add_argument("--guidance", type=non_negative_float, metavar="W",
                        help="classifier-free guidance scale with --class, at the noise levels of the run's "
                             "sample.guidance_interval: 0 ignores the class, 1 is the conditional model alone, more "
                             "pushes harder (default: the run's sample.guidance)")


def class_labels(run: Any, text: str | None, guidance: float | None, count: int,
                 several: bool = True) -> tuple[list[str] | None, int | None]:
    """--class and --guidance checked against a loaded run: one class name per image, and the grid's columns.

    One class: `count` images of it. Several (or 'all'), where the command takes several: ceil(count /
    classes) of each, one row per class, so the images number that times the classes. Without
    --class: (None, None).
    """
    if guidance is not None and not run.classes:
        raise ValueError(f"--guidance: run {str(run.checkpoint)!r} was trained without classes")
    if text is None:
        if guidance is not None:
            raise ValueError("--guidance needs --class NAME (without a class the run samples unconditionally)")
        return None, None
    names = list(run.classes) if text == "all" else [name.strip() for name in text.split(",")]
    run.labels(names, len(names))  # one-line errors: no classes, unknown names
    if len(names) > 1 and not several:
        raise ValueError(f"--class takes one class name in this command, got {text!r}")
    if len(names) == 1:
        return names * count, None
    per_class = -(-count // len(names))
    return [name for name in names for _ in range(per_class)], per_class


def add_sample_set_option(parser: argparse.ArgumentParser) -> None:
    """--set sample.key=value: change how a trained run samples, e.g. sample.lambda_min=none."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="sample.KEY=VALUE",
                        help="override one of the run's sample settings, e.g. --set sample.lambda_min=none")


def add_config_options(parser: argparse.ArgumentParser, data: bool = True, trains: bool = False) -> None:
    """--config FILE.toml, --set section.key=value (repeatable) and --data DIR (training data only if trains)."""
    parser.add_argument("--config", metavar="FILE.toml", help="config file applied over the defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.batch_size=16 (repeatable)")
    if data:
        what = "folder of images to train on" if trains else "folder of images"
        parser.add_argument("--data", metavar="DIR", help=f"{what}, or a built-in set: {' or '.join(BUILTINS)} "
                            "(default: horseshoes)")


def config_from_args(args: argparse.Namespace, base: Config | None = None,
                     flags: dict[str, dict[str, Any]] | None = None) -> Config:
    """Defaults (or base), then --config, then the command's own flags as typed values, then --set.

    Flags go into the config as the values they are (a path stays the path it was typed as), never
    through TOML text.
    """
    config = base or Config()
    if args.config:
        config = load_toml(args.config, config)
    flags = {section: dict(values) for section, values in (flags or {}).items()}
    if getattr(args, "data", None):
        flags.setdefault("data", {}).update(data_flag(args.data))
    return apply_overrides(merge(config, flags), list(args.overrides))


def data_flag(value: str) -> dict[str, Any]:
    """--data VALUE as data settings: an existing folder wins; else a built-in set's name; else the folder
    (whose absence the dataset then names)."""
    if value in BUILTINS and not Path(value).exists():
        return {"path": None, "builtin": value}
    return {"path": value}


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def noise_seed(text: str) -> int:
    """argparse type: a noise seed, an integer from 0 to SEED_MAX."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {SEED_MAX}, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def output_dir(path: str | Path) -> Path:
    """A directory to write into, created if needed; a one-line error if it is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output path {str(path)!r} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"cannot create output directory {str(path)!r}: {error.strerror}") from None
    try:  # a probe file of its own: the ranks of a torchrun job check the same directory at once
        with tempfile.NamedTemporaryFile(dir=path, prefix=".horseshoe-write-test-"):
            pass
    except OSError as error:
        raise PermissionError(f"output directory {str(path)!r} is not writable: {error.strerror}") from None
    return path


def output_file(path: str | Path, suffix: str = ".png", flag: str = "--out") -> Path:
    """A file path to write one picture to, its folder created.

    A folder, or a name without a file extension (which PIL refuses with only "unknown file extension: "),
    is a one-line error that names the flag, the value and the kind of file wanted (`suffix`).
    """
    text, path = str(path), Path(path)
    folder = path.is_dir() or text.endswith(("/", os.sep))
    if folder or not path.suffix:
        example = path / f"picture{suffix}" if folder else path.with_suffix(suffix)
        error = IsADirectoryError if path.is_dir() else ValueError
        raise error(f"{flag} {text!r} is {'a folder' if folder else 'a name without a file extension'}: "
                    f"{flag} takes a {suffix} file, such as {str(example)!r}")
    output_dir(path.parent if str(path.parent) else ".")
    return path
