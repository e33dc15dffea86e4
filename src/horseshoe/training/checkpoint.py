"""Checkpoints that survive a crash: a directory of safetensors and JSON, written aside and renamed in.

    RUN/checkpoints/step-00001000/  model.safetensors  ema.safetensors  optimizer.safetensors
                                    rng.safetensors    state.json       config.json
    RUN/checkpoints/latest          the name of the newest complete checkpoint

A save writes everything into a temporary directory, fsyncs it, renames it into place, then
replaces `latest` the same way, and only then prunes old checkpoints. A crash or kill -9 at any
moment leaves `latest` naming a complete checkpoint. Loading reads safetensors and JSON only:
nothing in a checkpoint is ever executed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "horseshoe-checkpoint"
VERSION = 1
TENSOR_PARTS = ("model", "ema", "optimizer", "rng")
PREFIX = "step-"


@dataclass
class Checkpoint:
    """The contents of one checkpoint: tensors by part, plus JSON-able state and config."""

    config: dict[str, Any]
    state: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def save(run_dir: str | Path, step: int, checkpoint: Checkpoint, keep: int) -> Path:
    """Write a checkpoint atomically, point `latest` at it, then keep only the newest `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}-{os.getpid()}"
    previous = latest(run_dir)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for part, tensors in checkpoint.tensors.items():
            path = tmp / f"{part}.safetensors"
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
            _fsync(path)
        _write_json(tmp / "state.json", {"format": FORMAT, "version": VERSION, **checkpoint.state})
        _write_json(tmp / "config.json", checkpoint.config)
        _fsync(tmp)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
        pointer = root / ".latest.tmp"
        pointer.write_text(final.name + "\n")
        _fsync(pointer)
        os.replace(pointer, root / "latest")
        _fsync(root)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous checkpoint {str(previous)!r} is intact" if previous else "no earlier checkpoint exists"
        if error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"disk full while saving checkpoint {str(final)!r}; {kept}") from None
        raise OSError(error.errno, f"could not save checkpoint {str(final)!r} ({error.strerror}); {kept}") from None
    prune(root, keep)
    return final


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (never the one `latest` names) and stale temporaries."""
    pointer = root / "latest"
    current = pointer.read_text().strip() if pointer.exists() else None
    for stale in root.glob(".tmp-*"):  # left by a save that crashed (only one process ever saves)
        shutil.rmtree(stale, ignore_errors=True)
    steps = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def latest(run_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names in a run directory, or None if there is none yet."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if path.is_dir() else None


def resolve(path: str | Path) -> Path:
    """A run directory (-> its latest checkpoint) or a checkpoint directory; one-line errors otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no run or checkpoint at {str(path)!r}")
    if (path / "state.json").exists():
        return path
    found = latest(path)
    if found is None:
        raise FileNotFoundError(f"{str(path)!r} is not a checkpoint and holds no checkpoints/latest")
    return found


def load(path: str | Path, parts: tuple[str, ...] = TENSOR_PARTS) -> Checkpoint:
    """Read a checkpoint directory; a missing, truncated or foreign file is a one-line error."""
    path = Path(path)

    def corrupt(reason: str) -> ValueError:
        return ValueError(f"checkpoint {str(path)!r} is corrupt or incomplete: {reason}")

    try:
        state = json.loads((path / "state.json").read_text())
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError as error:
        raise corrupt(f"missing {Path(error.filename).name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt(f"unreadable JSON ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise corrupt("state.json is not a horseshoe checkpoint")
    tensors = {}
    for part in parts:
        file = path / f"{part}.safetensors"
        if not file.exists():
            raise corrupt(f"missing {file.name}")
        try:
            tensors[part] = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as error:
            raise corrupt(f"{file.name}: {error}") from None
    return Checkpoint(config=config, state=state, tensors=tensors)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Flatten an optimizer's state_dict into named tensors plus JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, values in sd["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    """The inverse of optimizer_to_tensors: a state_dict for Optimizer.load_state_dict."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    param_groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": param_groups}
