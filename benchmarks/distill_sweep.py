"""Students of one teacher under several settings, scored quickly: 512 samples at 1, 2 (at rho 7 and 3) and 4 steps,
the share of valid horseshoes and SWD x1e3 against 512 training images, for the student's EMA and at 2 steps for its
raw weights too. One JSON line per variant.

    python benchmarks/distill_sweep.py runs/teacher 300 trajectory "base:" "lr1e3:train.lr=1e-3;train.seed=1"

Each variant is NAME:SETTINGS, the settings `--set` values for `horseshoe distill` separated by ';' (so that a value
may be a list, "train.betas=[0.5, 0.99]"); the students go to runs/sweep/NAME. For the full comparison against the
teacher in one process, see benchmarks/distill.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from horseshoe.data import training_images
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.shape import horseshoe_rate
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs.distill import distill
from horseshoe.runs.load import load_run

COUNT = 512


def main() -> None:
    teacher, steps, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    reference = None
    for name, settings in (variant.split(":", 1) for variant in sys.argv[4:]):
        out, started = f"runs/sweep/{name}", time.perf_counter()
        distill(teacher, out, method, steps=steps, overwrite=True, progress=False,
                overrides=tuple(s.strip() for s in settings.split(";") if s.strip()))
        row = {"name": name, "sets": settings, "seconds": round(time.perf_counter() - started)}
        run, raw = load_run(out), load_run(out, weights="model")
        reference = reference or SWDReference(training_images(run.config.data, COUNT, 0), seed=0)
        for label, weights, n, rho in [("", run, 1, 7.0), ("", run, 2, 7.0), ("", run, 2, 3.0), ("", run, 4, 7.0),
                                       ("raw ", raw, 2, 7.0)]:
            samples = weights.generate(dataclasses.replace(weights.sampler(steps=n), rho=rho), COUNT, seed=0)
            row[f"{label}{n}@{rho:g}"] = (round(horseshoe_rate(to_uint8(samples) / 255.0), 3),
                                          round(reference.distance(samples).mean, 1))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
