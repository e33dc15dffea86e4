"""`make test-slow`: the real demo, from nothing, must make real horseshoes."""

import numpy as np
import pytest
from PIL import Image
from training_helpers import run_cli

from horseshoe.metrics.shape import analyse, is_horseshoe


@pytest.mark.slow
def test_demo_makes_horseshoes(tmp_path):
    out = tmp_path / "demo"
    done = run_cli(["demo", "--out", str(out), "--no-progress"], timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    images = [np.asarray(Image.open(out / "samples" / f"{i:03d}.png")) / 255.0 for i in range(64)]
    reports = [analyse(img) for img in images]
    passed = [is_horseshoe(r, img.size) for r, img in zip(reports, images, strict=True)]
    failures = [(i, r) for i, (r, ok) in enumerate(zip(reports, passed, strict=True)) if not ok]
    # At least 8 in 10 are one solid U-shaped piece, open at one end, no stray blobs, no noise.
    assert np.mean(passed) >= 0.8, failures
