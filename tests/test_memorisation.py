"""Copies kept in check, and said: the pairing finds the true nearest neighbour, the picture shows the
pairs, and the run warns in one line exactly when too many samples are near-copies."""

import re

import numpy as np
import pytest
import torch
from training_helpers import cli_args

from horseshoe.cli import main
from horseshoe.data import DataConfig
from horseshoe.data.transforms import to_model_range
from horseshoe.metrics.novelty import NoveltyResult, matched_images, most_copied, novelty
from horseshoe.runs import memorisation
from horseshoe.training.trainer import Trainer
from horseshoe.viz.nearest import PAIR_GAP, PAIR_SPACING, pairs_picture


def images(n: int, seed: int, size: int = 6) -> torch.Tensor:
    """n random images (1, size, size) in [-1, 1], asymmetric, so that a flip is another image."""
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def result_with(ratios: list[float]) -> NoveltyResult:
    r = np.array(ratios)
    return NoveltyResult(distances=r, neighbours=np.zeros(len(r), int), matched_variants=np.zeros(len(r), int),
                         ratios=r, typical_spacing=1.0, near_copy_fraction=float((r < 1 / 3).mean()))


def test_pairing_picks_the_true_nearest_neighbour_as_it_matched():
    training = images(5, 0)
    samples = torch.cat([training[3:4].flip(-1) + 0.01, training[1:2] + 0.2, images(1, 9), training[4:5]])
    result = novelty(samples, training, hflip=True)
    # Brute force over every training image and its mirror: the independent reference.
    candidates = torch.cat([training, training.flip(-1)]).flatten(1)
    brute = torch.cdist(samples.flatten(1), candidates).argmin(dim=1)
    assert list(result.neighbours) == list((brute % 5).numpy()) and list(result.neighbours[[0, 1, 3]]) == [3, 1, 4]
    assert list(result.matched_variants[[0, 1, 3]]) == [1, 0, 0]  # the first sample copies the mirrored image
    order = most_copied(result, 3)
    assert list(order) == [3, 0, 1]  # the exact copy, then the mirrored one, then the noisier one
    shown = matched_images(training, result, order)
    assert torch.equal(shown[0], training[4]) and torch.equal(shown[1], training[3].flip(-1))
    assert torch.equal(shown[2], training[1])


def test_pairs_picture_puts_each_sample_left_of_its_neighbour_in_the_given_order():
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8) for _ in range(2))
    picture = pairs_picture(left, right, ["a", "b", "c"], columns=2)
    h, w = 5, 4
    cell_w = 2 * w + PAIR_GAP
    for i in range(3):
        row, col = divmod(i, 2)
        y = PAIR_SPACING + row * (picture.shape[0] - PAIR_SPACING) // 2
        x = PAIR_SPACING + col * (cell_w + PAIR_SPACING)
        assert np.array_equal(picture[y:y + h, x:x + w], left[i])
        assert np.array_equal(picture[y:y + h, x + w + PAIR_GAP:x + cell_w], right[i])
    with pytest.raises(ValueError, match="as many samples, neighbours and labels"):
        pairs_picture(left, right, ["a"])


def test_warning_only_above_the_threshold_in_one_line_with_what_to_do():
    threshold = memorisation.COPY_WARNING_SHARE
    assert memorisation.warning(result_with([0.1] + [1.0] * 9)) is None  # exactly 10%: at the threshold, fine
    assert memorisation.warning(result_with([1.0] * 10)) is None
    line = memorisation.warning(result_with([0.1, 0.2] + [1.0] * 8))
    assert line is not None and "\n" not in line and line.startswith("warning: 20% of 10 samples")
    assert "data.augment_p" in line and "fewer --steps" in line and "add images" in line
    assert memorisation.warning(result_with([0.1, 0.2] + [1.0] * 8), threshold=0.25) is None
    assert "every sample is a copy" in memorisation.warning(None)
    assert threshold == 0.10


def test_check_draws_the_pairs_and_warns_for_copies_not_for_new_images(tmp_path):
    training = images(12, 0)
    data = DataConfig(path="unused", hflip=True)
    copied = memorisation.check(torch.cat([training[:3], training[3:6].flip(-1), images(2, 5)]), training, data,
                                tmp_path / "copies.png")
    assert copied.novelty.near_copy_fraction == pytest.approx(6 / 8) and copied.picture.is_file()
    assert copied.line() == copied.warning and copied.line().startswith("warning: 75% of 8 samples")
    fresh = memorisation.check(images(8, 7), training, data, tmp_path / "fresh.png")
    assert fresh.warning is None and fresh.line().startswith("near-copies of training images: 0% of 8 samples")
    one = memorisation.check(images(4, 7), training[:1], data, tmp_path / "one.png")
    assert one.picture is None and "every sample is a copy" in one.line()


def test_train_says_so_when_its_samples_are_copies(tmp_path, monkeypatch, capsys):
    def copying(self, count, labels=None, progress=None):  # a network that learnt its data by heart
        dataset = self.state.dataset
        return to_model_range(dataset.get_batch(np.arange(count) % len(dataset)))

    monkeypatch.setattr(Trainer, "ema_samples", copying)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "1", "--no-progress", *cli_args()]) == 0
    printed = capsys.readouterr().out.splitlines()
    warnings = [line for line in printed if line.startswith("warning:")]
    assert warnings == [memorisation.warning(result_with([0.0] * 4))]  # all 4 samples: one line, once
    page = (out / "index.html").read_text()
    assert "100% of 4 samples are near-copies" in page and 'src="copies.png"' in page
    assert (out / "copies.png").is_file()
    assert re.search(r"<h2>Near-copies of training images</h2>", page)
