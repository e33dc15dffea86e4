"""Every run ends with a page: its pictures exist, and its config reads back as the run's config."""

import html
import re

from training_helpers import cli_args

from horseshoe.cli import main
from horseshoe.config import from_dict, load_toml
from horseshoe.data import shapes
from horseshoe.runs.by_class import class_scores
from horseshoe.runs.load import load_run


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


def test_a_run_with_many_classes_shows_a_labelled_row_per_class_with_the_judges_reading(tmp_path, capsys):
    out = tmp_path / "shapes"
    args = ["train", "--data", "shapes", "--out", str(out), "--steps", "1", "--no-progress",
            *cli_args("data.count=32", "train.batch_size=16")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "16 classes: arrow (2), bell (2)" in printed and "drawn in proportion to their images" in printed
    page = (out / "index.html").read_text()
    names = re.findall(r'<div class="class"><h3>([^<]+)</h3>', page)
    assert names == list(shapes.CLASSES)
    pictures = re.findall(r'src="(classes/\d{3}\.png)"', page)
    assert len(pictures) == 16 and all((out / p).is_file() for p in pictures)
    assert page.count("judged ") == 16 and page.count("near-copies ") >= 16
    assert f"horseshoe sample {out} --class arrow" in page
    # evaluate's per-class scores read the same judge: each class's judged share beside its real-image accuracy
    run = load_run(out)
    score, _ = class_scores(run, run.sampler(), 32, 0, 32, (), tmp_path)
    assert [c.name for c in score.classes] == list(shapes.CLASSES)
    assert all(c.judge_real >= 0.75 and c.accuracy in (0.0, 0.5, 1.0) for c in score.classes)  # 2 samples a class
    assert score.worst_judged_ratio == min(c.accuracy / c.judge_real for c in score.classes)
