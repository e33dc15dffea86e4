"""Tiny folders: after the same time budget, with and without augmentation, are the samples
horseshoes, are they new, and are they like held-out images?

For each style (the grey silhouettes, and the colour 'rendered' horseshoes) and each N in --counts:
`horseshoe data export` writes the first N built-in images to a folder (and --heldout images of
another seed, never trained on); the folder is trained for --minutes in each augmentation setting
(--variant: a label and its settings; by default 'on' and 'off'), each run the way `horseshoe train
--data DIR --minutes M` trains it. Then --samples samples of each run are measured:

    shape check     the share that pass metrics.shape's horseshoe check (silhouettes only)
    near-copies     the share nearer to a training image than 1/3 of the data's spacing (metrics.novelty)
    NN ratio        the median of nearest-training distance / the data's nearest-neighbour spacing
    SWD x1e3        against the held-out images, beside fresh real images' score (the floor)
    orientation     the share of the samples that pass the shape check whose opening faces one of
                    the data's directions (the built-in silhouettes open up or down)

The orientation run shows that augmentation does not leak: 100 upright silhouettes trained with
rotations only (--rotations) must give samples that still open up or down.

    nice -n 10 python benchmarks/tiny_data.py --out runs/tiny_data [--minutes 10] [--counts 20 100 1000]
        [--variant on data.augment_p=0.15 --variant exact "data.augment=['xflip','translate']" ...] [--tag NAME]

The bar for tiny data: 20 images, 10 minutes on 2 CPU cores: >= 90% pass the shape check, <= 10%
near-copies, median NN ratio >= 0.5. With the defaults: 13 runs of --minutes each (~2.2 hours at 10
minutes) plus sampling. Writes benchmarks/results/tiny_data-<date>.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import horseshoe
from horseshoe.cli import main as cli
from horseshoe.data import DataConfig, builtin_images, training_images
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.novelty import novelty
from horseshoe.metrics.shape import analyse, horseshoe_rate, is_horseshoe
from horseshoe.metrics.swd import SWDReference
from horseshoe.recipe import AUTO_AUGMENT_P
from horseshoe.runtime import keep_memory_mapped

HERE = Path(__file__).resolve().parent
STYLES = {"silhouette": {"style": "silhouette", "channels": 1}, "rendered": {"style": "rendered", "channels": 3}}
HELDOUT_SEED, FLOOR_SEED = 1, 2  # other streams of the same generator: never trained on
ORIENTATION_COUNT = 100
# "on" is the automatic setting, made explicit so that 1,000 images get it too
DEFAULT_VARIANTS = [["on", f"data.augment_p={AUTO_AUGMENT_P}"], ["off", "data.augment_p=0"]]
MIN_DIRECTION_SHARE = 0.05  # a direction is the data's when at least this share of its images face it


def settings(style: str) -> list[str]:
    """The --set values of a style."""
    return [f"data.{key}={value!r}" for key, value in STYLES[style].items()]


def export(style: str, count: int, out: Path, seed: int = 0) -> Path:
    """The first `count` built-in images of a style as PNG files, with `horseshoe data export`."""
    args = ["data", "export", "--count", str(count), "--out", str(out)]
    for item in [*settings(style), f"data.seed={seed}"]:
        args += ["--set", item]
    if cli(args) != 0:
        raise SystemExit(f"horseshoe data export failed for {out}")
    return out


def train(folder: Path, out: Path, minutes: float, overrides: list[str]) -> dict:
    """Train the folder for `minutes`, as `horseshoe train --data FOLDER --minutes M --set ...` does.

    Not classes.train: a time budget may end at its deadline a few steps short of the step count it
    planned (stop_reason 'time'), which that one refuses; here it is recorded."""
    config = horseshoe.build_config(None, [f"data.path={str(folder)!r}", f"train.minutes={minutes}", *overrides])
    started = time.perf_counter()
    done = horseshoe.train(config, out, progress=False, overwrite=True)
    t = done.training
    return {"steps": t.step, "stop_reason": t.stop_reason, "train_seconds": round(t.seconds, 1),
            "wall_seconds": round(time.perf_counter() - started, 1), "images_per_sec": round(t.images_per_sec, 1),
            "end_of_training_copies": done.copies.line() if done.copies is not None else None}


def openings(images: np.ndarray) -> Counter:
    """How many of (N, H, W, 1) uint8 silhouettes open to each side (None: no opening found)."""
    return Counter(analyse(image[..., 0] / 255.0).opening for image in images)


def orientation(samples: np.ndarray, data_openings: Counter) -> dict:
    """The share of samples facing one of the data's own directions: among those that pass the shape check
    (whose opening is a horseshoe's), and among all in which an opening is found."""
    counted = sum(n for side, n in data_openings.items() if side is not None)
    directions = sorted(side for side, n in data_openings.items()
                        if side is not None and n >= MIN_DIRECTION_SHARE * counted)
    reports = [analyse(image[..., 0] / 255.0) for image in samples]
    shoes = Counter(r.opening for r in reports if is_horseshoe(r, samples.shape[1] * samples.shape[2]))
    opened = Counter(r.opening for r in reports if r.opening is not None)

    def share(found: Counter) -> float | None:
        total = sum(found.values())
        return sum(found[side] for side in directions) / total if total else None

    return {"data_directions": directions, "orientation_match": share(shoes), "orientation_match_any": share(opened),
            "horseshoe_openings": dict(sorted(shoes.items()))}


def measure(run_dir: Path, heldout: torch.Tensor, floor: float, data_openings: Counter | None, count: int,
            seed: int) -> dict:
    """Shape check, near-copies, NN ratio, SWD against held-out images and orientation of `count` samples."""
    run = horseshoe.load_run(run_dir)
    d = run.config.data
    samples = run.generate(run.sampler(), count, seed)
    training = training_images(d, 10_000, seed)
    found = novelty(samples, training, d.hflip, d.vflip, d.rot90, seed=seed)
    images = to_uint8(samples)
    out = {"step": run.step, "train_minutes": run.config.train.minutes, "samples": count,
           "training_images": int(training.shape[0]),
           "near_copy_fraction": found.near_copy_fraction, "nn_ratio_median": found.ratio_median,
           "swd_x1e3_heldout": SWDReference(heldout, seed=seed).distance(samples).mean, "swd_x1e3_real_floor": floor,
           "shape_check": horseshoe_rate(images / 255.0) if d.channels == 1 else None}
    if data_openings is not None:
        out.update(orientation(images, data_openings))
    return out


def plan(args: argparse.Namespace) -> list[dict]:
    """The runs: every style, count and augmentation setting, then the orientation run."""
    runs = [{"name": f"{style}-{n}-{label}", "style": style, "images": n, "augmentation": label,
             "overrides": [*settings(style), *flags, *args.overrides]}
            for style in args.styles for n in args.counts
            for label, *flags in args.variant or DEFAULT_VARIANTS]
    if not args.no_orientation:
        runs.append({"name": f"orientation-{ORIENTATION_COUNT}", "style": "silhouette", "images": ORIENTATION_COUNT,
                     "augmentation": "rotations", "overrides": [*settings("silhouette"), *args.rotations,
                                                                *args.overrides]})
    return runs


def table(rows: list[dict]) -> str:
    """The Markdown table of all runs."""
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    lines = ["| style | images | augmentation | steps | images/s | shape check | near-copies | NN ratio (median) "
             "| SWD x1e3 held-out (real) | orientation |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r.get("training", {})
        lines.append(f"| {r['style']} | {r['images']} | {r['augmentation']} | {r['step']} | "
                     f"{t.get('images_per_sec', '–')} | {pct(r['shape_check'])} | {pct(r['near_copy_fraction'])} | "
                     f"{r['nn_ratio_median']:.2f} | {r['swd_x1e3_heldout']:.1f} ({r['swd_x1e3_real_floor']:.1f}) | "
                     f"{pct(r.get('orientation_match'))} |")
    return "\n".join(lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/tiny_data", help="folder for the exported images and the runs")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of every run")
    parser.add_argument("--counts", type=int, nargs="+", default=[20, 100, 1000], help="training images")
    parser.add_argument("--styles", nargs="+", choices=list(STYLES), default=list(STYLES))
    parser.add_argument("--heldout", type=int, default=1000, help="held-out images for the SWD")
    parser.add_argument("--samples", type=int, default=1000, help="samples per run (SWD varies ~3%% at 1000)")
    parser.add_argument("--variant", action="append", nargs="+", metavar="LABEL [KEY=VALUE ...]",
                        help="an augmentation setting to train at every style and count, as a label and its "
                             f"settings (repeatable; default: 'on' data.augment_p={AUTO_AUGMENT_P} and 'off' "
                             "data.augment_p=0)")
    parser.add_argument("--rotations", nargs="+", default=["data.augment_p=0.12", "data.augment=['rotate90','rotate']"],
                        metavar="KEY=VALUE", help="the orientation run's augmentation: rotations only")
    parser.add_argument("--no-orientation", action="store_true", help="skip the orientation run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (repeatable), e.g. a smaller model to try the script")
    parser.add_argument("--skip-train", action="store_true", help="measure the runs already in --out")
    parser.add_argument("--results", default=str(HERE / "results"), help="where the JSON and Markdown go")
    parser.add_argument("--tag", help="added to the results' file names, so that one day's runs do not overwrite")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    keep_memory_mapped()  # as the CLI does: the same large buffers are allocated over and over
    out = Path(args.out)
    record = {"date": datetime.date.today().isoformat(), "minutes": args.minutes, "threads": torch.get_num_threads(),
              "variants": args.variant or DEFAULT_VARIANTS, "rotations": args.rotations,
              "overrides": args.overrides, "runs": []}
    heldout, floors, data_openings = {}, {}, {}
    for style in args.styles if args.no_orientation else sorted({*args.styles, "silhouette"}):
        folder = export(style, args.heldout, out / "data" / f"{style}-heldout", seed=HELDOUT_SEED)
        heldout[style] = training_images(DataConfig(path=str(folder), channels=STYLES[style]["channels"]),
                                         args.heldout, args.seed)
        real = builtin_images(DataConfig(**STYLES[style], seed=FLOOR_SEED), 0, args.samples)
        floors[style] = SWDReference(heldout[style], seed=args.seed).distance(real).mean
        if style == "silhouette":
            data_openings[style] = openings(to_uint8(heldout[style]))
    for run in plan(args):
        folder = out / "data" / f"{run['style']}-{run['images']}"
        run_dir = out / run["name"]
        row = {key: run[key] for key in ("name", "style", "images", "augmentation", "overrides")}
        if not args.skip_train:
            export(run["style"], run["images"], folder)
            row["training"] = train(folder, run_dir, args.minutes, run["overrides"])
        row.update(measure(run_dir, heldout[run["style"]], floors[run["style"]], data_openings.get(run["style"]),
                           args.samples, args.seed))
        record["runs"].append(row)
        print(json.dumps(row), flush=True)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    name = f"tiny_data-{record['date']}" + (f"-{args.tag}" if args.tag else "") + ("-eval" if args.skip_train else "")
    markdown = table(record["runs"])
    minutes = ", ".join(f"{m:g}" for m in sorted({r["train_minutes"] for r in record["runs"]}, key=str))
    (results / f"{name}.json").write_text(json.dumps(record, indent=2))
    (results / f"{name}.md").write_text(f"# Tiny folders, {minutes} minutes a run ({record['date']})\n\n{markdown}\n")
    print("\n" + markdown)
    print(f"wrote {results / name}.json and .md")


if __name__ == "__main__":
    main()
