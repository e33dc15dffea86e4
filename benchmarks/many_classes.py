"""Many classes, few images each: the built-in shapes (16 classes) at 20 images a class, as a user's folder.

Each variant trains the default config (what `horseshoe train --data DIR` uses) with its overrides on
`--per-class` images of each class, for a fixed number of steps: 500 is what the slowest machine of this
kind (~72 images/s) trains in 15 minutes at batch 128, so a result at 500 steps holds on that machine
whatever the speed of the one measuring. The run is then scored per class (horseshoe.runs.by_class) at
guidance 2: the share of its samples the judge (metrics.judge) calls by the class asked for, over the
judge's accuracy on real images of the class (target >= 0.9 in every class), the variety (samples' mean
pairwise distance over the training images'; a collapsed class is near 0) and near-copies (<= 10%).

    python benchmarks/many_classes.py --variant defaults= --variant "ld01=train.label_dropout=0.1" \\
        --steps 500 --tag recipe

Writes benchmarks/results/many-classes-<tag>-<date>.{json,md}, and prints the table as it goes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch

import horseshoe
from horseshoe.config import build_config
from horseshoe.runs.by_class import ClassReference, score_classes

HERE = Path(__file__).resolve().parent


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'name=key=value;key=value' -> (name, [overrides]); 'name=' has none."""
    name, _, rest = text.partition("=")
    return name, [part for part in rest.split(";") if part]


def train_variant(name: str, changes: list[str], args: argparse.Namespace) -> dict:
    """Train one variant and score it; the record of one table row."""
    budget = [f"train.minutes={args.minutes}"] if args.minutes else [f"train.steps={args.steps}"]
    base = ["data.builtin='shapes'", f"data.count={16 * args.per_class}", f"train.seed={args.seed}", *budget]
    config = build_config(None, base + changes)
    out = Path(args.out) / name
    started = time.perf_counter()
    result = horseshoe.train(config, out, progress=False, overwrite=True)
    seconds = time.perf_counter() - started
    run = horseshoe.load_run(out)
    reference = ClassReference(run, 16 * args.per_class, args.seed)
    rows = {}
    for w in args.scales:
        score = score_classes(run, reference, run.sampler(guidance=w), args.samples, args.seed, 64)
        rows[f"{w:g}"] = score
        print(f"  {name}: {score.line()}", flush=True)
    record = {"variant": name, "overrides": changes, "steps": result.training.step,
              "images_per_sec": round(result.training.images_per_sec, 1), "train_seconds": round(seconds, 1),
              "augment": result.augment, "guidance": {w: s.to_json() for w, s in rows.items()}}
    main = rows[f"{args.scales[0]:g}"]
    ratios = [c.judged_ratio for c in main.classes]
    worst = int(np.argmin(ratios))
    record["summary"] = {
        "guidance": args.scales[0], "judged_mean": main.accuracy, "worst_ratio": ratios[worst],
        "worst_class": main.classes[worst].name, "classes_at_0.9": int(sum(r >= 0.9 for r in ratios)),
        "min_variety": min(c.variety for c in main.classes),
        "near_copies_mean": float(np.mean([c.near_copy_fraction for c in main.classes])),
        "near_copies_max": max(c.near_copy_fraction for c in main.classes)}
    return record


def table(records: list[dict]) -> str:
    lines = ["| variant | overrides | steps | images/s | judged (mean) | lowest class / judge's real | classes >= 0.9 "
             "| lowest variety | near-copies mean / max |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r["summary"]
        lines.append(f"| {r['variant']} | {'; '.join(r['overrides']) or '(defaults)'} | {r['steps']} | "
                     f"{r['images_per_sec']} | {s['judged_mean']:.1%} | {s['worst_ratio']:.2f} ({s['worst_class']}) | "
                     f"{s['classes_at_0.9']}/16 | {s['min_variety']:.2f} | {s['near_copies_mean']:.0%} / "
                     f"{s['near_copies_max']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=KEY=VALUE;...",
                        help="a name and its config overrides (repeatable; 'NAME=' for the defaults)")
    parser.add_argument("--per-class", type=int, default=20, help="training images per class")
    parser.add_argument("--steps", type=int, default=500, help="training steps (default: the slow machine's 15 min)")
    parser.add_argument("--minutes", type=float, help="train for this long instead of --steps")
    parser.add_argument("--samples", type=int, default=32, help="samples per class at each guidance scale")
    parser.add_argument("--scales", type=float, nargs="+", default=[2.0], help="guidance scales (the first is "
                        "summarised)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (and the samples' seed)")
    parser.add_argument("--out", default="runs/many-classes")
    parser.add_argument("--tag", default="recipe")
    args = parser.parse_args()
    date = datetime.date.today().isoformat()
    stem = HERE / "results" / f"many-classes-{args.tag}-{date}"
    header = (f"# Many classes: built-in shapes, 16 classes x {args.per_class} images, "
              + (f"{args.minutes} min" if args.minutes else f"{args.steps} steps") + f", seed {args.seed}, {date}\n\n"
              f"Guidance {args.scales[0]:g}, {args.samples} samples per class; threads {torch.get_num_threads()}. "
              f"Made by `python benchmarks/many_classes.py` (see its docstring).\n\n")
    records = []
    for text in args.variant:
        name, changes = parse_variant(text)
        print(f"{name}: {'; '.join(changes) or '(defaults)'}", flush=True)
        records.append(train_variant(name, changes, args))
        print(table(records[-1:]).splitlines()[-1], flush=True)
        # written after every variant, so that a run cut short keeps what it measured
        stem.with_suffix(".json").write_text(json.dumps({"date": date, "args": vars(args), "records": records},
                                                        indent=2))
        stem.with_suffix(".md").write_text(header + table(records) + "\n")
    print("\n" + table(records) + f"\n\nwrote {stem}.json and .md")


if __name__ == "__main__":
    main()
