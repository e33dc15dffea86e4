"""A run's samplers scored as benchmarks/distill.py scores students: SWD x1e3 against 1024 training images, the share
of valid horseshoes and near-copies, 1024 samples at seed 0. Says how far the teacher's ODE lands from the data,
which a student of that ODE cannot beat.

    python benchmarks/teacher_samplers.py runs/teacher dpmpp_2m:12 dpmpp_2m:20 dpmpp_2m_sde:20
"""

from __future__ import annotations

import sys
import time

import torch
from distill import score

from horseshoe.data import training_images
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs.load import load_run


def main() -> None:
    torch.manual_seed(0)
    run = load_run(sys.argv[1])
    training = training_images(run.config.data, 1024, run.config.train.seed)
    reference = SWDReference(training, seed=0)
    for sampler, steps in (spec.split(":") for spec in sys.argv[2:]):
        started = time.perf_counter()
        row = score(run, run.sampler(sampler, steps=int(steps)), 1024, reference, training)
        print({**row, "seconds": round(time.perf_counter() - started, 1)}, flush=True)


if __name__ == "__main__":
    main()
