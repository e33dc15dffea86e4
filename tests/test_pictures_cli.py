"""sample / noise / denoise / animate / schedule / interpolate on a tiny trained run."""

import numpy as np
import pytest
from PIL import Image
from training_helpers import tiny_trainer

from horseshoe.cli import main
from horseshoe.data.transforms import to_uint8
from horseshoe.diffusion import make_schedule
from horseshoe.runs.load import load_run
from horseshoe.sampling.timesteps import usable_steps
from horseshoe.viz.gif import read_gif
from horseshoe.viz.grid import display_scale, make_grid

SIZE = 16
SCALE = display_scale(SIZE)  # pictures of 16 px images are enlarged 6x


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = tiny_trainer(out, "train.steps=2", "sample.steps=3")
    trainer.fit()
    return out


def size_of(path):
    with Image.open(path) as image:
        return image.size  # (width, height)


def grid_size(rows, columns, cell=SIZE, scale=SCALE, padding=2):
    return (columns * (cell * scale + padding) + padding, rows * (cell * scale + padding) + padding)


def test_sample_writes_grid_pngs_and_npz(run_dir, tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["sample", str(run_dir), "--count", "5", "--out", str(out), "--npz", "--seed", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000.png", "001.png", "002.png", "003.png", "004.png",
                                                     "grid.png", "samples.npz"]
    assert size_of(out / "000.png") == (SIZE, SIZE)
    assert size_of(out / "grid.png") == grid_size(2, 3)  # 3 columns, 2 rows
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (5, SIZE, SIZE, 1)
    assert np.array_equal(np.asarray(Image.open(out / "004.png")), images[4, ..., 0])
    # The same seed gives the same images; another seed others.
    again = tmp_path / "again"
    main(["sample", str(run_dir), "--count", "5", "--out", str(again), "--npz", "--seed", "3"])
    assert np.array_equal(np.load(again / "samples.npz")["images"], images)
    main(["sample", str(run_dir), "--count", "5", "--out", str(again), "--npz", "--seed", "4"])
    assert not np.array_equal(np.load(again / "samples.npz")["images"], images)
    assert "wrote 5 samples" in capsys.readouterr().out


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m"])
def test_gif_last_frame_is_the_sample(run_dir, tmp_path, sampler):
    gif = tmp_path / "s.gif"
    assert main(["animate", str(run_dir), "--count", "4", "--frames", "5", "--sampler", sampler, "--steps", "6",
                 "--seed", "2", "--out", str(gif)]) == 0
    frames = read_gif(gif)
    assert len(frames) == 5
    run = load_run(run_dir)
    config = run.sampler(sampler, 6)
    final = to_uint8(run.generate(config, 4, seed=2))
    assert np.array_equal(frames[-1], make_grid(final, padding=2, pad_value=64, scale=SCALE))


def test_animate_with_x0_beside(run_dir, tmp_path):
    gif = tmp_path / "s.gif"
    assert main(["animate", str(run_dir), "--count", "4", "--frames", "3", "--steps", "5", "--with-x0",
                 "--out", str(gif)]) == 0
    frames = read_gif(gif)
    width, height = grid_size(2, 2)
    assert len(frames) == 3 and frames[0].shape[:2] == (height, 2 * width + 8)


def test_denoise_picture_layout(run_dir, tmp_path):
    out = tmp_path / "d.png"
    assert main(["denoise", str(run_dir), "--count", "3", "--columns", "4", "--steps", "10",
                 "--out", str(out)]) == 0
    width, height = grid_size(6, 4)  # x_t and x0_hat rows per sample, 4 chosen steps
    assert size_of(out) == (width + 44, height + 16)  # row labels left, column labels below


def test_noise_picture_layout(tmp_path):
    out = tmp_path / "n.png"
    assert main(["noise", "--count", "3", "--timesteps", "0,10,500,999", "--out", str(out),
                 "--set", "data.image_size=16", "--set", "data.count=8"]) == 0
    width, height = grid_size(3, 5)
    assert size_of(out) == (width, height + 16)
    picture = np.asarray(Image.open(out))
    # Column 1 is the clean image, the last is t=999: nearly pure noise (a wide spread of grey levels).
    step = SIZE * SCALE + 2

    def cell(r, c):
        return picture[2 + r * step:][:SIZE * SCALE, 2 + c * step:][:, :SIZE * SCALE]

    assert cell(0, 0).std() > 50 and len(np.unique(cell(0, 4))) > 100


def test_noise_on_given_files(tmp_path):
    Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "n.png"
    assert main(["noise", str(tmp_path / "a.png"), "--timesteps", "5,50", "--out", str(out)]) == 0
    assert size_of(out) == (3 * (32 * 3 + 2) + 2, (32 * 3 + 2) + 2 + 16)


def test_schedule_plot(tmp_path):
    out = tmp_path / "schedule.png"
    assert main(["schedule", "--num-steps", "500", "--out", str(out)]) == 0
    assert size_of(out)[0] > 500


def test_interpolate_strip_and_gif(run_dir, tmp_path):
    out = tmp_path / "i.png"
    assert main(["interpolate", str(run_dir), "--count", "5", "--steps", "4", "--gif", "--out", str(out)]) == 0
    assert size_of(out) == grid_size(1, 5)
    assert len(read_gif(out.with_suffix(".gif"))) == 8  # there and back, endpoints once


def test_set_changes_how_a_trained_run_samples(run_dir, tmp_path, capsys):
    # ddpm visits every usable timestep, so --set sample.lambda_min decides how many it takes; high floors keep
    # the test to a few dozen network calls (the default -3 keeps 968 of 1000)
    args = ["sample", str(run_dir), "--count", "2", "--sampler", "ddpm", "--out", str(tmp_path / "o")]
    schedule = make_schedule("cosine", 1000)
    own = usable_steps(schedule, load_run(run_dir).config.sample.lambda_min)  # what the run takes without --set
    for lambda_min in (3.0, 4.0):
        assert main(args + ["--set", f"sample.lambda_min={lambda_min}"]) == 0
        out = capsys.readouterr().out
        assert f"(ddpm, {usable_steps(schedule, lambda_min)} steps" in out and f"(ddpm, {own} steps" not in out


def test_bad_arguments_are_one_line(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["sample", str(tmp_path / "nope")], "no run or checkpoint at"),
        (["sample", str(run_dir), "--sampler", "euler", "--out", str(tmp_path / "o")], "unknown sampler 'euler'"),
        (["sample", str(run_dir), "--steps", "0"], "must be a positive integer, got 0"),
        (["sample", str(run_dir), "--count", "-3"], "must be a positive integer, got -3"),
        (["sample", str(run_dir), "--seed", "4294967296"], "--seed: must be an integer from 0 to 4294967295"),
        (["interpolate", str(run_dir), "--seeds", "0", "-1"], "--seeds: must be an integer from 0 to 4294967295"),
        (["sample", str(run_dir), "--out", str(blocker)], "is a file, not a directory"),
        (["denoise", str(run_dir), "--out", str(tmp_path)], f"--out '{tmp_path}' is a folder: --out takes a .png"),
        (["sample", str(run_dir), "--steps", "5000", "--out", str(tmp_path / "o")],
         "num_steps must be between 1 and T=1000, got 5000"),
        (["noise", "--timesteps", "0,1000"], "timesteps must lie in 0..999"),
        (["sample", str(run_dir), "--set", "model.base_channels=8"], "only sample.* settings can change"),
        (["sample", str(run_dir), "--set", "sample.lambda_min=50", "--out", str(tmp_path / "o")],
         "lambda_min=50.0 leaves no timestep"),
        (["sample", str(run_dir), "--sampler", "ddpm", "--steps", "1000", "--set", "sample.lambda_min=-3",
          "--out", str(tmp_path / "o")], "1000 steps is more than the"),
    ]
    for args, message in cases:
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        assert code == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (args, err)


@pytest.mark.parametrize("command, kind", [
    (["noise"], ".png"), (["schedule"], ".png"), (["data", "preview"], ".png"), (["denoise", "RUN"], ".png"),
    (["animate", "RUN"], ".gif"), (["interpolate", "RUN"], ".png"),
])
def test_a_folder_for_a_picture_is_one_line_that_asks_for_the_file(run_dir, tmp_path, capsys, command, kind):
    # Where --out names one picture, a folder (there or not) is refused before anything is written, with a
    # line that says which file is wanted, not PIL's "unknown file extension: ".
    command = [str(run_dir) if word == "RUN" else word for word in command]
    there, new = tmp_path / "there", tmp_path / "new"
    there.mkdir()
    for out, what in [(str(there), "a folder"), (f"{new}/", "a folder"), (str(new), "a name without a file")]:
        assert main([*command, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"horseshoe: error: --out {out!r} is {what}") and len(err.splitlines()) == 1, err
        assert f"--out takes a {kind} file, such as " in err and "unknown file extension" not in err
    assert list(tmp_path.iterdir()) == [there] and not any(there.iterdir())
