"""`horseshoe train` as a user runs it: signals, kill -9, bad input, and torchrun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from training_helpers import cli_args, run_cli, tiny_trainer

from horseshoe.cli import main
from horseshoe.training import checkpoint


def start_training(out, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "horseshoe", "train", "--out", str(out), "--steps", "100000", "--no-progress",
            *cli_args(*extra)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_steps(out, proc, n=1, timeout=60):
    metrics = out / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and sum('"loss"' in line for line in metrics.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not start")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_step_saves_and_exits_with_the_signal_code(tmp_path, sig):
    proc = start_training(tmp_path)
    wait_for_steps(tmp_path, proc, 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err  # 130 for SIGINT, 143 for SIGTERM: scripts can tell it from done
    assert "stopped by signal" in out
    saved = checkpoint.latest(tmp_path)
    assert f"checkpoint: {saved}" in out
    state = json.loads((saved / "state.json").read_text())
    assert state["step"] >= 2


def test_second_ctrl_c_exits_at_once(tmp_path):
    proc = start_training(tmp_path, "train.batch_size=4096")  # slow steps (~1 s), so the second signal lands mid-step
    wait_for_steps(tmp_path, proc, 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.15)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err


def test_kill_9_never_leaves_a_broken_checkpoint(tmp_path):
    # Save every step and kill the process at arbitrary moments, mid-save included; each time the
    # latest checkpoint must load and training must resume from it.
    for round_ in range(3):
        extra = ["train.checkpoint_every=1"]
        proc = start_training(tmp_path, *extra) if round_ == 0 else subprocess.Popen(
            [sys.executable, "-m", "horseshoe", "train", "--out", str(tmp_path), "--resume", "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_steps(tmp_path, proc, 2 + 2 * round_)
        time.sleep(0.05 + 0.1 * round_)
        proc.kill()
        proc.communicate()
        latest = checkpoint.latest(tmp_path)
        checkpoint.load(latest)
        assert json.loads((latest / "state.json").read_text())["step"] >= 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["train", "--out", str(tmp_path / "a"), "--set", "train.batchsize=4"], "unknown config key train.batchsize"),
        (["train", "--out", str(tmp_path / "a"), "--set", "train.batch_size=big"],
         "train.batch_size must be an integer, got 'big'"),
        (["train", "--out", str(tmp_path / "a"), "--set", "nosuch"], "--set expects section.key=value"),
        (["train", "--out", str(tmp_path / "a"), "--data", str(tmp_path / "missing")], "does not exist"),
        (["train", "--out", str(tmp_path / "a"), "--resume"], "holds no checkpoints/latest"),
        (["train", "--out", str(tmp_path / "a"), "--resume", str(tmp_path / "b")], "no run or checkpoint at"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_existing_run_is_not_overwritten_without_resume(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--steps", "1", "--no-progress", *cli_args()]) == 0
    before = checkpoint.latest(tmp_path)
    assert main(["train", "--out", str(tmp_path), "--steps", "1", "--no-progress", *cli_args()]) == 2
    assert "already has checkpoints; pass --resume" in capsys.readouterr().err
    assert checkpoint.latest(tmp_path) == before
    assert main(["train", "--out", str(tmp_path), "--resume", "--steps", "2", "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert checkpoint.latest(tmp_path).name == "step-00000002"
    assert (tmp_path / "loss.png").exists() and (tmp_path / "samples.png").exists()


def test_output_dir_checks_from_many_processes_at_once_do_not_collide(tmp_path):
    # The ranks of a torchrun job all check the output directory at the same moment; each must
    # probe with a file of its own (a shared probe name made one rank's unlink fail).
    from concurrent.futures import ProcessPoolExecutor

    from horseshoe.cli.common import output_dir

    with ProcessPoolExecutor(4) as pool:
        assert list(pool.map(output_dir, [tmp_path / "out"] * 400)) == [tmp_path / "out"] * 400
    assert list((tmp_path / "out").iterdir()) == []


def test_output_path_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--out", str(blocker), "--steps", "1", *cli_args()]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_two_processes_match_one(tmp_path):
    # torchrun with 2 CPU processes (gloo) against one process, same global batch of 8. Data,
    # augmentation and noise are identical by construction, so only float summation order differs
    # (allreduce of two half-batch gradients vs one full-batch mean): weights agree to 1.5e-8 after
    # 5 Adam steps (measured); the bound leaves ~60x margin. Dropout is off: each process has its own
    # dropout RNG.
    extra = ["train.steps=5", "model.dropout=0.0"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "horseshoe", "train", "--out", str(tmp_path / "ddp"), "--no-progress", *cli_args(*extra)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    ours = [line for line in done.stderr.splitlines() if "horseshoe" in line and "error" in line]
    assert done.returncode == 0, "\n".join(ours) or done.stderr[-2000:]  # a rank's own message first
    single = tiny_trainer(tmp_path / "one", *extra)
    single.fit()
    ddp = checkpoint.load(checkpoint.latest(tmp_path / "ddp"), parts=("model",)).tensors["model"]
    for name, value in single.state.model.state_dict().items():
        torch.testing.assert_close(ddp[name], value, rtol=0, atol=1e-6)

    def losses(run):
        return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    assert json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[0])["processes"] == 2


def test_help_shows_defaults_and_example():
    done = run_cli(["train", "--help"])
    assert done.returncode == 0
    assert "example:" in done.stdout and "(default: runs/train)" in done.stdout
