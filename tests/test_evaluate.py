"""`horseshoe evaluate` and training-time evaluation on a tiny run."""

import html
import json
import re

import pytest
import torch
from training_helpers import tiny_trainer

from horseshoe.cli import main
from horseshoe.data import training_images
from horseshoe.metrics.inception import FIDInception
from horseshoe.runs.by_class import ClassScore, GuidanceScore
from horseshoe.runs.load import LoadedRun
from horseshoe.training.runlog import read_metrics

FAST = ["--count", "8", "--heldout", "4", "--bpd-timesteps", "3", "--steps", "2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tiny_trainer(out, "train.steps=2", "sample.steps=3").fit()
    return out


def test_evaluate_writes_json_pictures_and_html(run_dir, capsys):
    assert main(["evaluate", str(run_dir), *FAST, "--sweep", "ddim:2,3", "dpmpp_2m:2", "dpmpp_2m"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    q = result["quality"]
    assert set(q["swd_x1e3_per_level"]) == {"16x16"} and q["swd_x1e3_mean"] > 0
    assert 0 < q["swd_x1e3_floor"] < q["swd_x1e3_mean"]  # fresh real images score below two-step samples
    assert (q["horseshoe_rate"] * 8).is_integer()  # a share of the 8 samples
    assert result["samples"] == 8 and result["seed"] == 0
    assert result["novelty"]["near_copy_fraction"] == 0  # two-step samples are noise, copies of nothing
    assert result["heldout"]["set"].startswith("held-out") and result["heldout"]["bits_per_dim"] > 0
    assert set(result["heldout"]["denoising_mse"]) == {"10", "100", "250", "500", "750", "900"}
    assert "skipped" in result["fid"] and "--inception-weights" in result["fid"]["skipped"]
    assert [(r["sampler"], r["steps"]) for r in result["sweep"]] == [("ddim", 2), ("ddim", 3), ("dpmpp_2m", 2),
                                                                ("dpmpp_2m", 3)]  # no steps: sample.steps
    assert (run_dir / "eval" / "nearest.png").exists() and (run_dir / "eval" / "sweep.png").exists()
    page = (run_dir / "index.html").read_text()
    assert "Evaluation" in page and "eval/nearest.png" in page and "eval/sweep.png" in page
    assert "beside its nearest training image" in page  # the picture's caption
    out = capsys.readouterr().out
    assert "SWD x1e3: mean" in out and "FID/KID skipped" in out and "ddim     2 steps" in out
    assert "warning:" not in out and "warning:" not in page  # two-step samples are noise, not copies


def test_evaluate_says_so_when_the_samples_are_copies(run_dir, monkeypatch, capsys):
    def copying(self, config, count, seed=0, batch_size=64, labels=None, guidance=None, progress=None):
        return training_images(self.config.data, count, seed)  # a network that learnt its data by heart

    monkeypatch.setattr(LoadedRun, "generate", copying)
    assert main(["evaluate", str(run_dir), *FAST]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 100% of 8 samples are near-copies")
    assert warnings[0] in html.unescape((run_dir / "index.html").read_text())


def test_evaluate_with_inception_weights_and_a_reference_folder(run_dir, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(FIDInception().state_dict(), weights)
    assert main(["data", "export", "--count", "6", "--out", str(tmp_path / "ref"), "--set", "data.image_size=16",
                 "--set", "data.seed=5"]) == 0
    assert main(["evaluate", str(run_dir), *FAST, "--reference", str(tmp_path / "ref"),
                 "--inception-weights", str(weights)]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    fid = result["fid"]
    assert fid["weights"] == str(weights) and 0 < fid["fid"] < float("inf")  # computed, with these weights
    assert f"FID {fid['fid']:.2f}, KID {fid['kid']:.4f} +- {fid['kid_std']:.4f}" in capsys.readouterr().out
    assert "--reference" in result["reference"] and result["heldout"]["images"] == 4
    assert "swd_x1e3_floor" not in result["quality"]


def test_evaluate_errors_name_the_path(run_dir, tmp_path, capsys):
    for args, message in [
        (["--reference", str(tmp_path / "missing")], "image folder '.*missing' does not exist"),
        (["--inception-weights", str(tmp_path / "w.pth")], "Inception weights file '.*w.pth' does not exist"),
        (["--sweep", "ddim:"], r"--sweep entries look like sampler\[:steps"),
    ]:
        assert main(["evaluate", str(run_dir), *FAST, *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert re.search(message, err), err


def test_eval_every_logs_quality_beside_the_loss(tmp_path):
    trainer = tiny_trainer(tmp_path, "train.steps=4", "train.eval_every=2")
    trainer.fit()
    records = read_metrics(tmp_path)
    evaluated = [r for r in records if "swd" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert all("loss" in r and "near_copy_fraction" in r for r in evaluated)  # merged with the step's loss


def test_a_guidance_scale_says_the_means_and_the_lowest_class_against_the_judge():
    # Two classes: judged 75% and 65% where the judge reads 90% of real images; the lowest is 0.65 / 0.9.
    scores = tuple(ClassScore(name, 2, 10.0 + i, 0.0, accuracy=0.75 - i / 10, judge_real=0.9)
                   for i, name in enumerate("ab"))
    line = GuidanceScore(2.0, 3.456, scores).line()
    assert line == ("w = 2: per-class SWD 10.50, accuracy 70.0%, lowest class at 0.72 of the judge's real-image "
                    "accuracy, 3.5 s")
    plain = GuidanceScore(0.5, 1.0, tuple(ClassScore(n, 2, 4.0, 0.0) for n in "ab")).line()
    assert plain == "w = 0.5: per-class SWD 4.00, 1.0 s"
