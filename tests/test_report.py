"""Every run ends with a page: its pictures exist, and its config reads back as the run's config."""

import html
import re

from training_helpers import cli_args

from horseshoe.cli import main
from horseshoe.config import from_dict, load_toml


def test_a_train_run_writes_its_page_with_working_links_and_its_config_as_toml(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", "--no-progress", *cli_args()]) == 0
    page = (out / "index.html").read_text()
    links = set(re.findall(r'src="([^"]+)"', page))
    assert links == {"samples.png", "copies.png", "loss.png"} and all((out / link).is_file() for link in links)
    printed = capsys.readouterr().out
    assert "near-copies of training images: 0% of 4 samples" in printed  # two-step samples are noise
    assert "warning:" not in printed and "warning:" not in page
    for title in ("Samples", "Near-copies of training images", "Training", "Config (as a file for --config)",
                  "Next"):
        assert f"<h2>{title}</h2>" in page
    toml = html.unescape(re.search(r"<h2>Config[^<]*</h2>\s*<pre>(.*?)</pre>", page, re.S).group(1))
    (tmp_path / "run.toml").write_text(toml)
    saved = from_dict(__import__("json").loads((out / "config.json").read_text()))
    assert load_toml(tmp_path / "run.toml") == saved
    assert f"horseshoe sample {out}" in page and "dpmpp_2m_sde, 2 steps" in page
