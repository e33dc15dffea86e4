"""Open a report page in headless Chromium (Debian's `chromium` package): a screenshot, and which images loaded.

Only the slow tests use it; where /usr/bin/chromium is absent they skip, saying so.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet: no sandbox (tests may run as root), no GPU, no network or profile chatter.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]  # virtual time: the page settles without real waiting
WINDOW = (1200, 1600)
# Injected into a copy of the page: once every image has loaded or failed, the title counts the loaded ones.
PROBE = """<script>window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
  var broken = images.filter(function (image) { return !(image.complete && image.naturalWidth > 0); });
  document.title = "loaded " + loaded.length + " of " + images.length + " images; broken: " +
    broken.map(function (image) { return image.getAttribute("src"); }).join(" ");
});</script>"""
COUNT = re.compile(r"<title>loaded (\d+) of (\d+) images; broken: ([^<]*)</title>")


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page: the images it loaded, of how many, the broken ones' src, a screenshot."""

    loaded: int
    images: int
    broken: list[str]
    screenshot: Path


def need_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no headless Chromium at {CHROMIUM} (Debian: apt-get install chromium); "
                    "the browser checks run where it is installed")


def chromium(args: list[str]) -> subprocess.CompletedProcess:
    """Chromium with a fresh profile of its own, so that no earlier state or other test interferes."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def render(page: Path, shots: Path) -> Rendered:
    """Load `page` from disk twice: once for a screenshot into `shots`, once, with PROBE, to count its images."""
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / f"{page.stem}.png"
    chromium([f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri()])
    probe = page.with_name(f".probe-{page.name}")  # beside the page, so that its relative links still resolve
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = chromium(["--dump-dom", probe.resolve().as_uri()]).stdout
    finally:
        probe.unlink()
    found = COUNT.search(dom)
    assert found, f"the page's load event never ran the image count; its DOM begins {dom[:300]!r}"
    return Rendered(int(found.group(1)), int(found.group(2)), found.group(3).split(), screenshot)


def assert_a_page(screenshot: Path) -> None:
    """The screenshot is a PNG of the window's size with a page on it: mostly background, some ink, pictures."""
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == WINDOW, (image.format, image.size)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    ink = (pixels.min(axis=1) < 128).mean()  # text, borders and dark picture pixels
    colours = len(np.unique(pixels, axis=0))
    assert 0.005 < ink < 0.6, f"{screenshot}: {ink:.1%} dark pixels, not a rendered page"
    assert colours > 20, f"{screenshot}: only {colours} colours, a blank or flat page"
