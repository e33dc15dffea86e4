"""The demo's outputs (tiny and fast here; the real demo's quality is checked in test_demo_slow.py)."""

import re

from PIL import Image
from training_helpers import TINY

from horseshoe.cli import main
from horseshoe.runs.demo import PICTURES, demo_config

FAST = [arg for item in TINY + ["train.steps=2", "data.count=16", "train.max_minutes=5"] for arg in ("--set", item)]


def test_demo_config_is_valid_and_documented():
    config = demo_config()
    assert config.diffusion.prediction == "v" and config.model.patch_size == 2
    assert config.train.max_minutes is not None and config.train.max_minutes < 10


def test_demo_writes_every_picture_and_the_page(tmp_path, capsys):
    out, gallery = tmp_path / "demo", tmp_path / "docs"
    assert main(["demo", "--out", str(out), "--gallery", str(gallery), "--no-progress", *FAST]) == 0
    for picture in PICTURES:
        assert (out / picture).exists(), picture
    singles = sorted(p.name for p in (out / "samples").glob("[0-9]*.png"))
    assert singles == [f"{i:03d}.png" for i in range(64)]
    with Image.open(out / "samples" / "000.png") as image:
        assert image.size == (16, 16)
    page = (out / "index.html").read_text()
    for picture in PICTURES:
        assert f'src="{picture}"' in page
    assert "training steps" in page and 'prediction = "v"' in page  # the config, as TOML
    assert sorted(p.name for p in gallery.iterdir()) == ["denoising.png", "loss.png", "noising.png",
                                                        "samples.png", "sampling.gif"]
    printed = capsys.readouterr().out
    assert re.search(r"demo done in \d+ s", printed) and str(out / "index.html") in printed
    # The copy check, as `horseshoe train` does it: two-step samples are noise, not copies.
    assert "near-copies of training images: 0% of 64 samples" in printed and (out / "copies.png").is_file()
    assert 'src="copies.png"' in page and "near-copies of training images</th><td>0%" in page
    # Running it again continues the finished run instead of training anew.
    assert main(["demo", "--out", str(out), "--no-progress", *FAST]) == 0
    assert "was already trained (2 steps)" in capsys.readouterr().out
