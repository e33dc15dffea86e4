"""`make test-slow`: kill -9 at random moments, many times; the run must always load, sample and resume."""

import json
import os
import random
import subprocess
import sys
import time

import pytest
from training_helpers import cli_args

from horseshoe.cli import main
from horseshoe.training import checkpoint
from horseshoe.training.checkpoint import TENSOR_PARTS

KILLS = 30


def start(out, fresh: bool) -> subprocess.Popen:
    args = ["train", "--out", str(out), "--no-progress", "--steps", "100000"]
    args += cli_args("train.checkpoint_every=1") if fresh else ["--resume"]  # three kept: one pruned to weights
    return subprocess.Popen([sys.executable, "-m", "horseshoe", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def saved_step(out) -> int:
    """The step of the newest checkpoint (0 before the first). A step is logged before it is saved, so
    waiting for the log alone lets a kill land before the step's checkpoint: no progress that round."""
    found = checkpoint.latest(out)
    try:
        return json.loads((found / "state.json").read_text())["step"] if found else 0
    except (FileNotFoundError, ValueError, KeyError):  # mid-save
        return 0


@pytest.mark.slow
def test_kill_9_torture(tmp_path):
    # Checkpoints every step, so a kill lands mid-save, mid-prune or mid-step at random; after each,
    # the latest checkpoint must load, sample, and resume at the step it names, and every checkpoint
    # must be resumable or load its weights.
    rng, out, failures, last_step = random.Random(0), tmp_path / "run", [], 0
    for kill in range(KILLS):
        proc = start(out, fresh=kill == 0)
        saved = saved_step(out)
        deadline = time.time() + 120
        while saved_step(out) <= saved and time.time() < deadline:  # wait for one new checkpoint
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.communicate()
        try:
            found = checkpoint.latest(out)
            step = json.loads((found / "state.json").read_text())["step"]
            checkpoint.load(found)
            for path in (out / "checkpoints").glob("step-*"):
                checkpoint.load(path, parts=TENSOR_PARTS if checkpoint.is_resumable(path) else ("model", "ema", "rng"))
            assert main(["sample", str(out), "--count", "2", "--steps", "2", "--out", str(tmp_path / "s")]) == 0
            if step < last_step:
                failures.append(f"kill {kill}: latest went back from step {last_step} to {step}")
            last_step = step
        except Exception as error:  # counted, not raised: the test reports every failure at once
            failures.append(f"kill {kill}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)
    assert last_step >= KILLS  # every round trained at least one step past the one before
