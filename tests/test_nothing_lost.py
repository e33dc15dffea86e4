"""Nothing lost, ever: what a run directory holds survives resumes, broken pointers and odd input."""

import os
import sys

import numpy as np
import pytest
from PIL import Image
from training_helpers import cli_args

from horseshoe.cli import main
from horseshoe.training import checkpoint


def train(out, *args):
    return main(["train", "--out", str(out), "--no-progress", *args])


def snapshot(run):
    """Every file under a run with its size, inode and modification time: what 'nothing written' means."""
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*"))}


def test_resuming_a_finished_run_trains_and_writes_nothing(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2", *cli_args()) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert train(tmp_path, "--resume") == 0
    out = capsys.readouterr().out
    assert "already at step 2, the budget: nothing to train, nothing written" in out
    assert snapshot(tmp_path) == before  # the checkpoint latest names was neither removed nor rewritten


def test_a_broken_latest_is_never_trained_over_and_resumes_from_the_newest_complete(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2", *cli_args("train.checkpoint_every=1")) == 0
    (tmp_path / "checkpoints" / "latest").write_text("step-00000099\n")
    before = snapshot(tmp_path / "checkpoints")
    capsys.readouterr()
    assert train(tmp_path, "--steps", "3", *cli_args()) == 2
    assert "already has checkpoints; pass --resume" in capsys.readouterr().err
    assert snapshot(tmp_path / "checkpoints") == before
    assert train(tmp_path, "--resume", "--steps", "3") == 0
    captured = capsys.readouterr()
    assert captured.err.count("horseshoe: warning:") == 1, captured.err
    assert ("latest' names step-00000099, which does not exist; using the newest resumable checkpoint, "
            "step-00000002") in captured.err
    assert "resumed from" in captured.out and checkpoint.latest(tmp_path).name == "step-00000003"


def test_overwrite_starts_over(tmp_path, capsys):
    assert train(tmp_path, "--steps", "2", *cli_args("train.checkpoint_every=1")) == 0
    assert train(tmp_path, "--steps", "1", "--overwrite", *cli_args()) == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000001"]


def test_leftovers_of_a_crashed_save_are_cleared_at_start_up(tmp_path):
    assert train(tmp_path, "--steps", "1", *cli_args()) == 0
    stale = [tmp_path / "checkpoints" / ".tmp-step-00000002-999", tmp_path / "checkpoints" / ".trash-step-00000001-9"]
    for folder in stale:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    assert train(tmp_path, "--resume", "--steps", "2") == 0
    assert not any(folder.exists() for folder in stale)


@pytest.mark.parametrize("name", ["back\\slash", "quotes ' and \"", "bytes-\udcff\udcfe"])
def test_folder_names_pass_through_as_typed(tmp_path, name, capsys):
    if "\udcff" in name and sys.getfilesystemencoding() != "utf-8":
        pytest.skip("non-UTF-8 names are tested where the file system encoding is UTF-8")
    folder = tmp_path / name
    os.makedirs(os.fsencode(folder))
    for i in range(2):
        Image.fromarray(np.full((8, 8), 60 * i, np.uint8)).save(os.fsencode(folder / f"{i}.png"))
    out = tmp_path / "preview.png"
    assert main(["data", "preview", "--data", str(folder), "--out", str(out), "--set", "data.image_size=8"]) == 0
    assert "wrote a grid of 2 images" in capsys.readouterr().out


@pytest.mark.parametrize("setting, message", [
    ("train.lr=inf", "train.lr must be a positive number, got inf"),
    ("train.lr=nan", "train.lr must be a positive number, got nan"),
    ("train.seed=12345678901234567890", "train.seed must be an integer from 0 to 4294967295, got 12345678901234567890"),
    # a CPU generator reads 32 bits: 2^32 would draw seed 0's noise
    ("train.seed=4294967296", "train.seed must be an integer from 0 to 4294967295, got 4294967296"),
    ("train.grad_clip=-1", "train.grad_clip must be > 0"),
])
def test_settings_that_fail_later_are_refused_up_front_by_name(tmp_path, capsys, setting, message):
    assert train(tmp_path / "run", "--steps", "1", *cli_args(setting)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_warnings_for_users_are_one_plain_line(tmp_path, capsys):
    for i in range(2):
        Image.fromarray(np.full((4, 4), 100, np.uint8)).save(tmp_path / f"{i}.png")
    assert main(["data", "preview", "--data", str(tmp_path), "--out", str(tmp_path / "p.png"),
                 "--set", "data.image_size=8"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"horseshoe: warning: 2 of 2 images in {str(tmp_path)!r} are smaller than 8x8 and were upscaled"]


@pytest.mark.parametrize("args, message", [
    (["--minutes", "0"], "--minutes: must be a positive number, got 0"),
    (["--minutes", "1", "--steps", "3"], "argument --steps: not allowed with argument --minutes"),
])
def test_time_budget_flags(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        train(tmp_path / "run", *args)
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
