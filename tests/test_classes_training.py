"""Training with classes (label dropout, exact resume) and asking a trained run for a class."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import tiny_trainer

from horseshoe.cli import main
from horseshoe.diffusion import NO_CLASS
from horseshoe.diffusion.objectives import draw_noise, drop_labels
from horseshoe.runs.by_class import class_scores
from horseshoe.runs.load import load_run
from horseshoe.training import checkpoint

FOUR = "data.rotation='four'"


class Recording:
    """Wraps the training network, keeping the labels of every call."""

    def __init__(self, network):
        self.network, self.labels = network, []

    def __call__(self, x, t, labels=None):
        self.labels.append(labels.clone())
        return self.network(x, t, labels)


def test_dropout_replaces_the_asked_share_of_labels():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    for p in (0.1, 0.5):
        dropped = drop_labels(torch.full((n,), 2), p, torch.rand(n, generator=g))
        share = (dropped == NO_CLASS).double().mean().item()
        assert share == pytest.approx(p, abs=5 * (p * (1 - p) / n) ** 0.5)
        assert set(dropped.unique().tolist()) == {NO_CLASS, 2}


def test_trainer_drops_labels_with_its_noise_stream(tmp_path):
    # The network sees the loader's labels with exactly the draws u < p replaced, u the batch's uniforms
    # drawn from the noise generator right after t and eps.
    trainer = tiny_trainer(tmp_path, FOUR, "train.steps=1", "train.label_dropout=0.5", "train.batch_size=32")
    recording = Recording(trainer.network)
    trainer.network = recording
    loader_labels = trainer.state.loader.next_with_labels()[1]
    trainer.state.loader.position = 0
    trainer.fit()
    g = torch.Generator().manual_seed(trainer.config.train.seed + 1)
    draw_noise(trainer.schedule, (32, *trainer.config.data.shape), g)
    drop = torch.rand(32, generator=g) < 0.5
    (seen,) = recording.labels
    assert torch.equal(seen, torch.where(drop, NO_CLASS, loader_labels))
    assert 0 < int(drop.sum()) < 32


def test_gradient_accumulation_sees_the_same_labels(tmp_path):
    runs = []
    for accum in (1, 4):
        trainer = tiny_trainer(tmp_path / str(accum), FOUR, "train.steps=2", f"train.grad_accum={accum}")
        recording = Recording(trainer.network)
        trainer.network = recording
        trainer.fit()
        runs.append(torch.cat(recording.labels))
    assert torch.equal(*runs)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_with_classes_resumes_bit_identically(tmp_path):
    extra = (FOUR, "train.label_dropout=0.3", "data.balance_classes=true")
    straight = tiny_trainer(tmp_path / "a", "train.steps=6", *extra)
    straight.fit()
    tiny_trainer(tmp_path / "b", "train.steps=3", *extra).fit()
    resumed = tiny_trainer(tmp_path / "b", "train.steps=6", *extra)
    resumed.resume(tmp_path / "b")
    resumed.fit()
    assert straight.config.model.num_classes == 4 and straight.state.model.class_embed is not None
    assert same_weights(straight.state.model, resumed.state.model)
    assert same_weights(straight.state.ema.model, resumed.state.ema.model)
    saved = json.loads((checkpoint.latest(tmp_path / "b") / "config.json").read_text())
    assert saved["data"]["classes"] == ["down", "left", "right", "up"] and saved["model"]["num_classes"] == 4


def test_resume_refuses_other_classes(tmp_path):
    tiny_trainer(tmp_path, "train.steps=1", FOUR).fit()
    other = tiny_trainer(tmp_path / "x", "train.steps=2")
    with pytest.raises(ValueError, match="different config: model.num_classes is 4 there and 0 now"):
        other.resume(tmp_path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    tiny_trainer(out / "classes", "train.steps=2", "sample.steps=2", FOUR).fit()
    tiny_trainer(out / "plain", "train.steps=1", "sample.steps=2").fit()
    return out


def test_sample_all_classes_draws_a_row_each(runs, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", str(runs / "classes"), "--class", "all", "--count", "8", "--guidance", "3",
                 "--out", str(out), "--npz"]) == 0
    assert "8 samples, 2 per class (down, left, right, up), a row each" in capsys.readouterr().out
    with Image.open(out / "grid.png") as grid:
        cell = 16 * 6 + 2
        assert grid.size == (2 * cell + 2, 4 * cell + 2)
    saved = np.load(out / "samples.npz")
    assert saved["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and saved["classes"].tolist()[3] == "up"


def test_generate_takes_names_and_guidance(runs):
    run = load_run(runs / "classes", device="cpu", sample_overrides=["sample.guidance_interval=none"])
    assert run.classes == ("down", "left", "right", "up")
    config = run.sampler(steps=2)
    a = run.generate(config, 3, labels="left", guidance=0.0)
    b = run.generate(config, 3, labels=[1, 1, 1], guidance=0.0)
    assert torch.equal(a, b)
    assert torch.equal(a, run.generate(config, 3))  # w = 0: the class is ignored
    with pytest.raises(ValueError, match="unknown class 'sideways'; this run's classes are down, left, right, up"):
        run.generate(config, 2, labels="sideways")
    with pytest.raises(ValueError, match="sample.guidance must be a number >= 0, got -1"):
        run.generate(config, 2, labels="up", guidance=-1.0)


@pytest.mark.parametrize("run, args, message", [
    ("classes", ["--class", "sideways"], "unknown class 'sideways'; this run's classes are down, left, right, up"),
    ("classes", ["--class", "up,sideways"], "unknown class 'sideways'"),
    ("classes", ["--guidance", "2"], "--guidance needs --class NAME"),
    ("plain", ["--class", "up"], "trained without classes: it cannot be asked for one"),
    ("plain", ["--class", "up", "--guidance", "2"], "trained without classes"),
    ("classes", ["--class", "up", "--guidance", "-1"], "argument --guidance: must be a number >= 0, got -1"),
])
def test_bad_classes_and_guidance_are_one_line_and_write_nothing(runs, tmp_path, capsys, run, args, message):
    out = tmp_path / "never"
    try:
        code = main(["sample", str(runs / run), "--out", str(out), *args])
    except SystemExit as done:  # argparse's own errors
        code = done.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_denoise_animate_interpolate_take_a_class(runs, tmp_path):
    run = str(runs / "classes")
    assert main(["denoise", run, "--class", "all", "--steps", "2", "--out", str(tmp_path / "d.png")]) == 0
    assert main(["animate", run, "--class", "up,down", "--count", "4", "--frames", "2", "--steps", "2",
                 "--out", str(tmp_path / "a.gif")]) == 0
    assert main(["interpolate", run, "--class", "up", "--count", "3", "--steps", "2",
                 "--out", str(tmp_path / "i.png")]) == 0
    assert main(["interpolate", run, "--class", "all", "--out", str(tmp_path / "j.png")]) == 2


def test_class_scores_at_the_run_guidance_and_a_sweep(runs, tmp_path):
    run = load_run(runs / "classes", device="cpu")
    at_run, swept = class_scores(run, run.sampler(steps=2), 8, 0, 8, (0.0,), tmp_path)
    assert [c.name for c in at_run.classes] == ["down", "left", "right", "up"] and at_run.scale == 2.0
    assert all(c.samples == 2 and c.swd > 0 for c in at_run.classes)
    assert all(c.accuracy in (0.0, 0.5, 1.0) for c in at_run.classes)  # a share of the class's own 2 samples
    assert sum(c.training_images for c in at_run.classes) == 24 and "down (" in at_run.names()  # from the log
    assert at_run.accuracy == pytest.approx(np.mean([c.accuracy for c in at_run.classes]))
    assert [row.scale for row in swept] == [0.0] and (tmp_path / "guidance.png").exists()
    assert re.match(r"w = 0: per-class SWD [\d.]+, accuracy [\d.]+%, horseshoes", swept[0].line())
    assert main(["evaluate", str(runs / "plain"), "--count", "8", "--guidance-sweep", "1"]) == 2


@pytest.mark.slow
def test_evaluate_writes_the_class_scores(runs, capsys):
    run = runs / "classes"
    assert main(["evaluate", str(run), "--count", "8", "--heldout", "4", "--bpd-timesteps", "2", "--steps", "2",
                 "--guidance-sweep", "0"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert [c["class"] for c in result["classes"]["per_class"]] == ["down", "left", "right", "up"]
    assert [row["guidance"] for row in result["guidance_sweep"]] == [0.0]
    assert "guidance w = 0: per-class SWD" in capsys.readouterr().out
    assert "by class at guidance 0" in (run / "index.html").read_text()


def test_train_on_class_folders_and_their_errors(tmp_path, capsys):
    for name, level in [("a/1.png", 0), ("a/2.png", 40), ("b/3.png", 255)]:
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), level).save(tmp_path / "data" / name)
    tiny = ["--set", "data.image_size=16", "--set", "model.base_channels=16", "--set", "model.channel_mults=[1,2]",
            "--set", "model.norm_groups=8", "--set", "model.num_res_blocks=1", "--set", "train.batch_size=4",
            "--set", "sample.steps=2", "--set", "sample.count=4", "--no-progress"]
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--steps", "1", *tiny]) == 0
    assert "2 classes: a (2), b (1)" in capsys.readouterr().out
    assert load_run(tmp_path / "run").classes == ("a", "b")
    Image.new("L", (16, 16), 9).save(tmp_path / "data" / "top.png")
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "bad"), "--steps", "1", *tiny]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "(top.png) beside the class folders a, b" in err
    assert not checkpoint.has_checkpoints(tmp_path / "bad")
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "none"), "--steps", "1",
                 "--set", "data.labels='none'", *tiny]) == 0
    assert load_run(tmp_path / "none").classes == ()


def test_edits_take_a_class(runs, tmp_path, capsys):
    image = tmp_path / "shoe.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)).save(image)
    run = load_run(runs / "classes", device="cpu", sample_overrides=["sample.guidance_interval=none"])
    config = run.sampler(steps=2)

    def last(records):
        return list(records)[-1].x_prev

    plain = last(run.edit(image, 0.5, config, 2))
    w0, w3 = (dataclasses.replace(config, guidance=w) for w in (0.0, 3.0))
    assert torch.equal(last(run.edit(image, 0.5, w0, 2, labels="up")), plain)  # w = 0 ignores the class
    assert not torch.equal(last(run.edit(image, 0.5, w3, 2, labels="up")), plain)
    filled = last(run.inpaint(image, "left-half", w3, 2, resample=1, labels="up"))
    assert not torch.equal(filled, last(run.inpaint(image, "left-half", w3, 2, resample=1)))

    out = tmp_path / "e.png"
    assert main(["edit", str(runs / "classes"), "--image", str(image), "--class", "up", "--guidance", "3",
                 "--steps", "2", "--count", "2", "--out", str(out)]) == 0 and out.exists()
    for command in (["inpaint", "--mask", "center"], ["edit"]):
        for run_name, args, message in [("classes", ["--class", "all"], "--class takes one class name in this command"),
                                        ("plain", ["--class", "up"], "trained without classes")]:
            never = tmp_path / "never" / "x.png"
            capsys.readouterr()
            assert main([command[0], str(runs / run_name), "--image", str(image), *command[1:], *args,
                         "--out", str(never)]) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and message in err, err
            assert not never.parent.exists()
