"""Post-hoc EMA (Karras et al. 2024, EDM2): which EMA length scores best, chosen after training.

Trains the demo config once with train.posthoc_ema=[0.05,0.1] (two power-function EMAs, snapshotted
16 times), then samples the run's own EMA (a half-life of 10k images, about sigma_rel 0.17 at the end)
and post-hoc EMAs of each --lengths width reconstructed from the snapshots, all with the same noise,
and scores each like benchmarks/quality.py: SWD against real images, and the shape check (horseshoes)
or the digit judge (digits: recognised with confidence >= 0.9).

    python benchmarks/posthoc_ema.py [--data horseshoes|digits] --out runs/posthoc [--skip-train]
                                     [--lengths 0.02 0.05 0.1 0.15 0.2] [--samples 512] [--set KEY=VALUE]

Writes benchmarks/results/posthoc_ema-<data>[-<tag>]-<date>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

from quality import Scorer, base_config

import horseshoe

HERE = Path(__file__).resolve().parent
TRACKED = "train.posthoc_ema=[0.05,0.1]"  # EDM2's two profiles


def own_ema_sigma_rel(config, images: int) -> float:
    """The run's exponential EMA as a relative width: its kernel's standard deviation, half-life / ln 2 images
    (the half-life as capped by the warm-up ratio at the end), over the images trained."""
    tc = config.train
    half_life = min(tc.ema_half_life_images, tc.ema_warmup_ratio * images) if tc.ema_warmup_ratio else \
        tc.ema_half_life_images
    return half_life / math.log(2) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("horseshoes", "digits"), default="horseshoes")
    parser.add_argument("--out", default="runs/posthoc", help="run directory")
    parser.add_argument("--skip-train", action="store_true", help="evaluate the run already in --out")
    parser.add_argument("--lengths", type=float, nargs="+", default=[0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.17, 0.22],
                        help="post-hoc EMA widths sigma_rel to score")
    parser.add_argument("--samples", type=int, default=512, help="samples per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", help="added to the results' file name")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="further overrides of the demo config (not data.*)")
    args = parser.parse_args()
    out = Path(args.out)
    digits_dir = None
    if args.data == "digits":
        from digits import export_digits

        digits_dir = out.parent / f"{out.name}-images"
        if not digits_dir.exists():
            export_digits(digits_dir, 32, labelled=False)
    # The demo's 7-minute cap only guards a slow machine; here the step budget is the budget.
    config = base_config(args.data, digits_dir, [TRACKED, "train.max_minutes=600", *args.set])
    record = {"date": datetime.date.today().isoformat(), "data": args.data, "samples": args.samples,
              "seed": args.seed, "overrides": [TRACKED, *args.set]}
    if not args.skip_train:
        started = time.perf_counter()
        result = horseshoe.train(config, out, progress=False, overwrite=True)
        record["training"] = {"steps": result.training.step, "seconds": round(time.perf_counter() - started, 1),
                              "images_per_sec": round(result.training.images_per_sec, 1)}
    scorer = Scorer(config, args.data, args.samples, args.seed)
    record["floor"] = scorer.floor
    rows = []
    for length in [None, *args.lengths]:
        run = horseshoe.load_run(out, ema_length=length)
        images = run.step * run.config.train.batch_size
        started = time.perf_counter()
        samples = run.generate(run.sampler(), args.samples, args.seed)
        row = {"ema": "run's EMA" if length is None else f"sigma_rel {length:g}",
               "sigma_rel": own_ema_sigma_rel(run.config, images) if length is None else length,
               "fit_error": None if run.ema is None else run.ema.error, **scorer.score(samples),
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(f"{row['ema']:>16} (sigma_rel {row['sigma_rel']:.3f}): good {row['good']:.1%}, SWD {row['swd']:.2f}"
              + ("" if run.ema is None else f", profile fit error {run.ema.error:.2%}"), flush=True)
    record["rows"] = rows
    name = f"posthoc_ema-{args.data}{'-' + args.tag if args.tag else ''}-{record['date']}.json"
    (HERE / "results" / name).write_text(json.dumps(record, indent=2))
    what = "valid shapes" if args.data == "horseshoes" else "recognised (>= 0.9)"
    print(f"\n| EMA | sigma_rel | {what} | SWD x1e3 |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['ema']} | {row['sigma_rel']:.3f} | {row['good']:.1%} | {row['swd']:.1f} |")
    print(f"| real images | – | {scorer.floor['good']:.1%} | {scorer.floor['swd']:.1f} |")
    print(f"wrote {HERE / 'results' / name}")


if __name__ == "__main__":
    main()
