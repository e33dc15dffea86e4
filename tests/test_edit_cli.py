"""inpaint / edit / invert / interpolate --images on a tiny trained run, and their one-line errors."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import tiny_trainer

from horseshoe.cli import main
from horseshoe.data.transforms import to_uint8
from horseshoe.runs.load import load_run
from horseshoe.sampling.edit import finish
from horseshoe.viz.gif import read_gif
from horseshoe.viz.grid import display_scale

SIZE = 16
SCALE = display_scale(SIZE)
CELL = SIZE * SCALE + 2  # a grid cell and its padding


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tiny_trainer(out, "train.steps=2", "sample.steps=3").fit()
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two RGB files of another size than the run's 16x16 greyscale (fitted like training data), and masks."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    left = np.zeros((40, 40), np.uint8)
    left[:, :20] = 255
    Image.fromarray(left).save(folder / "left.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "empty.png")
    Image.fromarray(left[:30]).save(folder / "small.png")
    return folder


def cell(picture, row, column, left=0):
    """The image in a grid cell of a picture, at its own size (one pixel of each SCALE x SCALE block)."""
    y, x = 2 + row * CELL, left + 2 + column * CELL
    return picture[y:y + SIZE * SCALE:SCALE, x:x + SIZE * SCALE:SCALE]


def test_inpaint_keeps_the_image_outside_the_mask_and_draws_its_steps(run_dir, images, tmp_path, capsys):
    out = tmp_path / "fill.png"
    assert main(["inpaint", str(run_dir), "--image", str(images / "a.png"), "--mask", str(images / "left.png"),
                 "--count", "4", "--resample", "2", "--gif", "--frames", "4", "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (2 * CELL + 2, CELL + 2 + 8 + 2 * CELL + 2)  # inputs column, gap, 2x2 results
    fitted = to_uint8(load_run(run_dir).load_image(images / "a.png"))[0, ..., 0]
    assert np.array_equal(cell(picture, 0, 0), fitted)
    for row, column in [(0, 0), (0, 1), (1, 1)]:
        result = cell(picture, row, column, left=CELL + 2 + 8)
        assert np.array_equal(result[:, SIZE // 2:], fitted[:, SIZE // 2:])  # kept: the image's pixels
    frames = read_gif(out.with_suffix(".gif"))
    assert len(frames) == 4 and np.array_equal(frames[-1][..., 0], picture)
    printed = capsys.readouterr().out
    assert "resample 2: 5 network evaluations" in printed  # 3 steps, the first two taken twice


def test_inpaint_api_with_a_builtin_mask(run_dir, images):
    run = load_run(run_dir)
    image = run.load_image(images / "b.png")
    out = finish(run.inpaint(images / "b.png", "top-half", count=3, seed=5), image)
    assert out.shape == (3, 1, SIZE, SIZE)
    assert torch.equal(out[..., SIZE // 2:, :], image.expand(3, -1, -1, -1)[..., SIZE // 2:, :])
    assert not torch.equal(out[0, ..., : SIZE // 2, :], out[1, ..., : SIZE // 2, :])  # each filling its own


def test_edit_at_strength_one_is_sampling_and_writes_its_steps(run_dir, images, tmp_path, capsys):
    run = load_run(run_dir)
    config = run.sampler("ddim", 6)
    edited = finish(run.edit(images / "a.png", 1.0, config, count=4, seed=2), run.load_image(images / "a.png"))
    assert torch.equal(edited.float().cpu(), run.generate(config, 4, seed=2))
    out = tmp_path / "e.png"
    assert main(["edit", str(run_dir), "--image", str(images / "a.png"), "--strength", "0.5", "--sampler", "ddim",
                 "--steps", "6", "--count", "4", "--gif", "--out", str(out)]) == 0
    assert "the last 3 of 6 ddim steps, from t=" in capsys.readouterr().out
    frames = read_gif(out.with_suffix(".gif"))
    assert len(frames) == 3 and np.array_equal(frames[-1][..., 0], np.asarray(Image.open(out)))


def test_invert_prints_the_round_trip_error_of_the_api(run_dir, images, tmp_path, capsys):
    out = tmp_path / "inv.png"
    assert main(["invert", str(run_dir), "--image", str(images / "a.png"), "--steps", "5", "--gif",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rmse = float(re.search(r"RMSE (\d+\.\d+)", printed).group(1))
    run = load_run(run_dir)
    inversion = run.invert(images / "a.png", run.sampler("ddim", 5))
    assert rmse == pytest.approx(inversion.rmse, abs=1e-4)
    assert Image.open(out).size == (3 * CELL + 2, CELL + 2 + 16)  # image, x_T, regenerated; labels below
    assert len(read_gif(out.with_suffix(".gif"))) == 10  # 5 steps each way


def test_interpolate_between_images_ends_on_their_regenerations(run_dir, images, tmp_path):
    out = tmp_path / "i.png"
    assert main(["interpolate", str(run_dir), "--images", str(images / "a.png"), str(images / "b.png"),
                 "--count", "4", "--steps", "5", "--out", str(out)]) == 0
    strip = np.asarray(Image.open(out))
    run = load_run(run_dir)
    for column, name in [(0, "a"), (3, "b")]:
        regenerated = to_uint8(run.invert(images / f"{name}.png", run.sampler("ddim", 5)).regenerated)[0, ..., 0]
        assert np.abs(cell(strip, 0, column).astype(int) - regenerated).max() <= 1  # batch of 2 vs 1: rounding


def test_bad_edit_arguments_are_one_line_and_write_nothing(run_dir, images, tmp_path, capsys):
    out = tmp_path / "never" / "o.png"
    run, a = str(run_dir), str(images / "a.png")
    cases = [
        (["inpaint", run, "--image", a, "--mask", str(images / "small.png")],
         f"--mask '{images / 'small.png'}' is 40x30 pixels but --image '{a}' is 40x40"),
        (["inpaint", run, "--image", a, "--mask", str(images / "empty.png")],
         f"--mask '{images / 'empty.png'}' marks no pixel to generate"),
        (["inpaint", run, "--image", a, "--mask", "middle"], "--mask 'middle' is neither a file nor one of left-half"),
        (["inpaint", run, "--image", str(images / "nope.png"), "--mask", "center"],
         f"--image '{images / 'nope.png'}' does not exist"),
        (["edit", run, "--image", a, "--strength", "0"], "argument --strength: must lie in (0, 1], got 0.0"),
        (["edit", run, "--image", a, "--strength", "1.5"], "argument --strength: must lie in (0, 1], got 1.5"),
        (["edit", run, "--image", a, "--strength", "half"], "argument --strength: expected a number in (0, 1]"),
        (["invert", run, "--image", str(images)], f"--image '{images}' is not a file"),
        (["interpolate", run, "--images", a, str(images / "nope.png")], f"--image '{images / 'nope.png'}' does not"),
        (["interpolate", run, "--images", a, a, "--seeds", "1", "2"], "not allowed with argument"),
    ]
    for args, message in cases:
        try:
            code = main([*args, "--out", str(out)])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        assert code == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (args, err)
        assert not out.parent.exists(), args


def test_a_folder_for_the_picture_is_one_line_in_every_edit_command(run_dir, images, tmp_path, capsys):
    a = str(images / "a.png")
    for command in (["inpaint", "--mask", "center"], ["edit"], ["invert"]):
        assert main([command[0], str(run_dir), "--image", a, *command[1:], "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"horseshoe: error: --out '{tmp_path}' is a folder: --out takes a .png file, such as "
                       f"'{tmp_path / 'picture.png'}'"), (command, err)


def test_the_manual_edit_example_runs(run_dir, images):
    text = (Path(__file__).resolve().parents[1] / "docs" / "how-it-works.md").read_text()
    block = re.search(r"## Editing with a trained model.*?```python\n(.*?)```", text, re.S).group(1)
    code = block.replace("runs/demo", str(run_dir)).replace("shoe.png", str(images / "a.png"))
    namespace: dict = {}
    exec(compile(code, "docs/how-it-works.md edit example", "exec"), namespace)
    assert tuple(namespace["filled"].shape) == tuple(namespace["variations"].shape) == (8, 1, SIZE, SIZE)
    inversion, image = namespace["inversion"], namespace["image"].float().cpu()
    # .rmse is the round trip's error against the image given, and DDIM inversion comes back close to it
    # (0.0055 measured, under one 8-bit grey level; a sample from fresh noise lies 0.69 from it).
    assert inversion.rmse == pytest.approx(float((inversion.regenerated - image).pow(2).mean().sqrt()), rel=1e-6)
    assert inversion.rmse < 0.02
