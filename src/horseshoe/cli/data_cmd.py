"""`horseshoe data preview` and `horseshoe data export`."""

from __future__ import annotations

import argparse

import numpy as np

from horseshoe.cli.common import (
    add_command,
    add_config_options,
    add_legacy_out_positional,
    add_out_option,
    config_from_args,
    output_dir,
    output_file,
    positive_int,
    required_out,
)
from horseshoe.data import first_images, first_labelled
from horseshoe.viz.grid import display_scale, make_grid, save_png


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="look at the training data: preview grid, export as PNG files")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    preview = add_command(commands, "preview", "write a grid PNG of the dataset",
                          "horseshoe data preview --count 64 --out preview.png")
    preview.add_argument("--count", type=positive_int, default=64, help="how many images, in a grid")
    add_out_option(preview, "data-preview.png", "the grid, a PNG", folder=False)
    add_config_options(preview)
    preview.set_defaults(run_command=run_preview)
    export = add_command(commands, "export", "write the dataset's images as PNG files (a subfolder per class "
                         "when it has classes)", "horseshoe data export --count 500 --out horseshoes/")
    export.add_argument("--count", type=positive_int, default=100, help="how many images")
    add_out_option(export, None, "000000.png, 000001.png, ... (DIR/CLASS/... with classes)", folder=True)
    add_legacy_out_positional(export)
    add_config_options(export)
    export.set_defaults(run_command=run_export)


def _first(args: argparse.Namespace) -> np.ndarray:
    """The first --count images of the configured dataset."""
    return first_images(config_from_args(args).data, args.count)


def run_preview(args: argparse.Namespace) -> int:
    images = _first(args)
    path = save_png(make_grid(images), output_file(args.out), scale=display_scale(images.shape[1]))
    print(f"wrote a grid of {len(images)} images to {path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    images, labels, classes = first_labelled(config_from_args(args).data, args.count)
    folder = output_dir(required_out(args))
    for i, image in enumerate(images):  # class folders as `train --data` reads them back
        save_png(image, (folder / classes[labels[i]] if classes else folder) / f"{i:06d}.png")
    where = f" in {len(classes)} class folders ({', '.join(classes)})" if classes else ""
    print(f"wrote {len(images)} PNG files to {folder}{where}")
    return 0
