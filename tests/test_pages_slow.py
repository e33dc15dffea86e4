"""`make test-slow`: a run's report page, opened in a real browser (headless Chromium), shows every picture."""

import pytest
from browser_helpers import assert_a_page, need_chromium, render
from training_helpers import cli_args

from horseshoe.cli import main

EVALUATE = ["--count", "8", "--heldout", "4", "--bpd-timesteps", "3", "--steps", "2", "--sweep", "ddim:2"]


@pytest.mark.slow
def test_a_train_runs_page_shows_every_picture_in_a_browser(tmp_path):
    need_chromium()
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", "--no-progress", *cli_args()]) == 0
    assert main(["evaluate", str(out), "--no-progress", *EVALUATE]) == 0  # adds its section, pictures in eval/
    page = out / "index.html"
    rendered = render(page, tmp_path / "shots")
    assert rendered.images == page.read_text().count("<img ") >= 4  # samples, loss, nearest, sweep
    assert rendered.broken == [] and rendered.loaded == rendered.images
    assert_a_page(rendered.screenshot)
