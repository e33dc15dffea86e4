"""Few images per class on real data nobody here drew: scikit-learn's digits, the first `--per-class` of each
digit (20: 200 images) in ten class folders, trained with the default config (what `horseshoe train --data
DIR` uses, mirroring off: a mirrored 2 is not a 2) for a fixed number of steps, then read by the digits'
judge (benchmarks/digits.py): the share recognised (the judge sure of some digit), the share read as the
digit asked for, and how many digits appear. 340 steps at batch 128 are what the slowest machine of this
kind (~72 images/s) trains in 10 minutes.

    python benchmarks/few_digits.py --variant defaults= --variant "ld01=train.label_dropout=0.1" --steps 340
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from digits import DigitJudge, digit_images
from PIL import Image

import horseshoe
from horseshoe.config import build_config

HERE = Path(__file__).resolve().parent


def export_few(folder: Path, per_class: int) -> Path:
    """The first `per_class` images of each digit, as folder/<digit>/<index>.png."""
    images, labels = digit_images(32)
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == digit)[:per_class]:
            Image.fromarray(images[i], "L").save(folder / str(digit) / f"{i:04d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=KEY=VALUE;...")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--steps", type=int, default=340)
    parser.add_argument("--samples", type=int, default=32, help="samples per digit")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--out", default="runs/few-digits")
    parser.add_argument("--tag", default="recipe")
    args = parser.parse_args()
    folder = export_few(Path(args.out) / "images", args.per_class)
    judge = DigitJudge().fit()
    records = []
    for text in args.variant:
        name, _, rest = text.partition("=")
        changes = [part for part in rest.split(";") if part]
        config = build_config(None, [f"data.path='{folder}'", "data.hflip=false", f"train.steps={args.steps}",
                                     *changes])
        started = time.perf_counter()
        result = horseshoe.train(config, Path(args.out) / name, progress=False, overwrite=True)
        seconds = time.perf_counter() - started
        run = horseshoe.load_run(Path(args.out) / name)
        labels = torch.arange(10).repeat_interleave(args.samples)
        samples = run.generate(run.sampler(guidance=args.guidance), len(labels), 0, 64, labels=labels)
        score = judge.judge(samples)
        asked = np.array([int(run.classes[i]) for i in labels])
        record = {"variant": name, "overrides": changes, "steps": result.training.step,
                  "images_per_sec": round(result.training.images_per_sec, 1), "train_seconds": round(seconds, 1),
                  "augment": result.augment, "accuracy": score.accuracy(asked), "recognised": score.recognised,
                  "digits_covered": score.covered, "judge": score.to_json()}
        records.append(record)
        print(f"| {name} | {'; '.join(changes) or '(defaults)'} | {record['steps']} | {record['images_per_sec']} | "
              f"{record['accuracy']:.1%} | {record['recognised']:.1%} | {record['digits_covered']} |", flush=True)
    date = datetime.date.today().isoformat()
    stem = HERE / "results" / f"few-digits-{args.tag}-{date}"
    stem.with_suffix(".json").write_text(json.dumps({"date": date, "args": vars(args), "records": records,
                                                     "judge_held_out": judge.held_out_accuracy}, indent=2))
    print(f"wrote {stem}.json")


if __name__ == "__main__":
    main()
