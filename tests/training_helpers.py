"""A tiny configuration that trains in a fraction of a second per step, for trainer tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

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
    from horseshoe.runs.train import run_hooks
    from horseshoe.training.trainer import Trainer

    return Trainer(tiny_config(*extra), run_hooks(Path(run_dir), progress=False))


def on_device(device: str) -> list[str]:
    """Overrides that train on `device`; on CUDA also without cuDNN autotuning, which may pick other kernels
    in another process (so a resumed run would not repeat a straight one bit for bit)."""
    return [f"train.device={device!r}"] + (["train.cudnn_benchmark=false"] if device.startswith("cuda") else [])


@contextlib.contextmanager
def deterministic_kernels(device: str) -> Iterator[None]:
    """On CUDA, deterministic cuDNN and cuBLAS kernels (gpu_check.sh sets CUBLAS_WORKSPACE_CONFIG); on a CPU,
    nothing (its kernels already repeat bit for bit)."""
    if not device.startswith("cuda"):
        yield
        return
    previous = torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled()
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = previous[0]
        torch.use_deterministic_algorithms(previous[1])


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
