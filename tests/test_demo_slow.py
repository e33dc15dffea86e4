"""`make test-slow`: the real demo, from nothing, must make real horseshoes and a page that shows them."""

import numpy as np
import pytest
from browser_helpers import assert_a_page, need_chromium, render
from PIL import Image
from training_helpers import run_cli

from horseshoe.metrics.shape import analyse, is_horseshoe
from horseshoe.runs.demo import PICTURES


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One real demo run for the tests of this module (minutes)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    done = run_cli(["demo", "--out", str(out), "--no-progress"], timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    return out


@pytest.mark.slow
def test_demo_makes_horseshoes(demo):
    images = [np.asarray(Image.open(demo / "samples" / f"{i:03d}.png")) / 255.0 for i in range(64)]
    reports = [analyse(img) for img in images]
    passed = [is_horseshoe(r, img.size) for r, img in zip(reports, images, strict=True)]
    failures = [(i, r) for i, (r, ok) in enumerate(zip(reports, passed, strict=True)) if not ok]
    # At least 8 in 10 are one solid U-shaped piece, open at one end, no stray blobs, no noise.
    assert np.mean(passed) >= 0.8, failures


@pytest.mark.slow
def test_the_demo_page_shows_every_picture_in_a_browser(demo, tmp_path):
    need_chromium()
    page = demo / "index.html"
    rendered = render(page, tmp_path)
    assert rendered.images == page.read_text().count("<img ") >= len(PICTURES)
    assert rendered.broken == [] and rendered.loaded == rendered.images
    assert_a_page(rendered.screenshot)
