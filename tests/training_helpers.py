"""A tiny configuration that trains in a fraction of a second per step, for trainer tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from horseshoe.config import build_config

TINY = [
    "data.image_size=16", "data.count=24", "data.vflip=true",
    "model.base_channels=16", "model.channel_mults=[1,2]", "model.norm_groups=8",
    "model.attention_resolutions=[8]", "model.num_res_blocks=1", "model.dropout=0.1",
    "train.batch_size=8", "train.warmup_steps=2", "train.log_every=1", "train.checkpoint_every=0",
    "train.precision='fp32'", "sample.steps=2", "sample.count=4",
]


def tiny_config(*extra: str):
    return build_config(None, TINY + list(extra))


def tiny_trainer(run_dir: Path, *extra: str):
    """A Trainer of the tiny config with the hooks `horseshoe train` registers, writing into run_dir."""
    from horseshoe.pipeline import run_hooks
    from horseshoe.training.trainer import Trainer

    return Trainer(tiny_config(*extra), run_hooks(Path(run_dir), progress=False))


def cli_args(*extra: str) -> list[str]:
    """--set flags for the tiny config."""
    out = []
    for item in TINY + list(extra):
        out += ["--set", item]
    return out


def run_cli(args: list[str], cwd: Path | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "horseshoe", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, **kwargs)
