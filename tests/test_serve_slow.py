"""`horseshoe serve` in a real browser: headless Chromium opens the page of a tiny trained run, draws on the
canvas, presses every button and reads back that images came, at 1280 and 400 pixels wide.

The page drives itself when opened with ?selftest=1 (page.html: pointer strokes on both canvases, clicks
on the buttons, a bad request first) and writes the outcome into its title, which --dump-dom returns.
The server is the real command, `python -m horseshoe serve RUN --port 0`, in a process of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from browser_helpers import CHROMIUM, FLAGS, need_chromium
from PIL import Image
from training_helpers import tiny_trainer

pytestmark = pytest.mark.slow
# Virtual time: the page's polling waits no real time, and a pending fetch pauses the clock, so a slow
# job does not use the budget up.
BROWSER = [flag for flag in FLAGS if not flag.startswith("--virtual-time-budget")] + ["--virtual-time-budget=120000"]
TITLE = re.compile(r"<title>([^<]*)</title>")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    need_chromium()
    run = tmp_path_factory.mktemp("run")
    tiny_trainer(run, "train.steps=2", "sample.steps=3").fit()
    server = subprocess.Popen([sys.executable, "-m", "horseshoe", "serve", str(run), "--port", "0"], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = server.stdout.readline()  # "serving RUN/checkpoints/step-... at http://127.0.0.1:PORT/ (Ctrl-C stops)"
        found = re.search(r" at (http://127\.0\.0\.1:\d+/) ", line)
        assert found, f"no URL in {line!r}; stderr: {server.stderr.read() if server.poll() is not None else ''}"
        yield found.group(1)
    finally:
        server.terminate()
        server.wait(timeout=30)


def browse(url: str, *args: str) -> str:
    """Chromium on `url` with a fresh profile; its standard output (the DOM, with --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run([str(CHROMIUM), *BROWSER, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("width", [1280, 400])
def test_in_a_browser_a_drawing_and_every_button_bring_images_back(url, width, tmp_path):
    window = f"--window-size={width},900"
    found = TITLE.search(browse(url + f"?selftest=1&width={width}", "--dump-dom", window))
    assert found, "the page has no title"
    title = found.group(1)
    assert title.startswith("selftest ok: "), title
    for said in ("bad steps refused (steps must lie in [1, 1000]", "sample 8,", "inpaint 8,", "interpolate 6,",
                 f"fits {width} px"):
        assert said in title, title
    drawn = re.search(r"edit 8 from (\d+) drawn pixels", title)
    assert drawn and int(drawn.group(1)) > 1000, title  # the strokes reached the canvas, and 8 images came back

    shot = tmp_path / f"serve-{width}.png"
    browse(url + "?selftest=1", f"--screenshot={shot}", window, "--hide-scrollbars")
    with Image.open(shot) as image:
        assert image.size == (width, 900)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50, "a blank or flat page"
