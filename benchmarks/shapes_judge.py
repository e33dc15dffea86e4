"""Fit the judge of the built-in shapes and write it into the package (src/horseshoe/metrics/judges/).

The judge (horseshoe.metrics.judge) is fitted on fresh images of data.shapes that no run trains on (seed
1000; runs use seed 0 by default) and scored on another fresh set (seed 1001). Run it again whenever
data/shapes.py changes; tests/test_shapes.py checks that the shipped judge still reads fresh images right.

    python benchmarks/shapes_judge.py [--per-class 500] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from horseshoe.data import shapes
from horseshoe.data.transforms import to_model_range
from horseshoe.metrics.judge import Judge, fit_judge, per_class_accuracy, save_judge

OUT = Path(__file__).resolve().parents[1] / "src" / "horseshoe" / "metrics" / "judges" / "shapes.safetensors"
FIT_SEED, TEST_SEED = 1000, 1001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=500, help="fitting images per class")
    parser.add_argument("--test-per-class", type=int, default=250, help="held-out images per class")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(2)
    k = len(shapes.CLASSES)
    started = time.perf_counter()
    images, labels = shapes.render_labelled(FIT_SEED, range(k * args.per_class), 32)
    test, test_labels = shapes.render_labelled(TEST_SEED, range(k * args.test_per_class), 32)
    print(f"rendered {len(images)} + {len(test)} images in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    net = fit_judge(to_model_range(images), labels, shapes.CLASSES, epochs=args.epochs)
    print(f"fitted in {time.perf_counter() - started:.1f} s")
    judge = Judge(net, shapes.CLASSES, ())
    accuracy = per_class_accuracy(judge.predict(to_model_range(test)), test_labels, k)
    for name, a in zip(shapes.CLASSES, accuracy, strict=True):
        print(f"  {name:10s} {a:.1%}")
    print(f"held-out accuracy {np.mean(accuracy):.2%} (lowest {accuracy.min():.1%})")
    fitted_on = (f"data.shapes seed {FIT_SEED}, {args.per_class} a class, {args.epochs} epochs; "
                 f"tested on seed {TEST_SEED}")
    path = save_judge(Judge(net, shapes.CLASSES, tuple(float(a) for a in accuracy)), args.out, fitted_on)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
