"""Finding and reading checkpoints: which folder `latest` names (or the fallback when it is broken), a run
or checkpoint path resolved, and load(), which checks every field and reads safetensors and JSON only.

The layout and the save that writes it are described in horseshoe.training.checkpoint, which is the
module to import: it re-exports the public names here.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from horseshoe.training import checkpoint_checks
from horseshoe.training.checkpoint_checks import OPTIMIZER_KEYS

TENSOR_PARTS = ("model", "ema", "optimizer", "rng")
RESUME_PART = "optimizer"  # the part only resume needs, and the bulk of a checkpoint: pruned from older ones
RESUME_FILE = f"{RESUME_PART}.safetensors"
RESUMABLE_KEPT = 2  # the newest checkpoints that keep RESUME_FILE: `latest` and its fallback
# Complete = every file a save writes but RESUME_FILE is there. Folders are renamed in whole, so a crash
# never leaves a step-* folder short of a file; a missing one means later damage (a partial copy, a hand edit).
REQUIRED_FILES = tuple(f"{part}.safetensors" for part in TENSOR_PARTS if part != RESUME_PART) + (
    "state.json", "config.json")
PREFIX = "step-"
STEP_NAME = re.compile(rf"{PREFIX}(\d+)")
# The checkpoint module's logger: one name for every checkpoint warning, whichever module says it.
log = logging.getLogger("horseshoe.training.checkpoint")


@dataclass
class Checkpoint:
    """The contents of one checkpoint: tensors by part, plus JSON-able state and config."""

    config: dict[str, Any]
    state: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def checkpoint_name(step: int) -> str:
    """The folder name of a step's checkpoint: step-00001000."""
    return f"{PREFIX}{step:08d}"


def missing_files(path: Path) -> list[str]:
    """The files a loadable checkpoint needs that `path` lacks: empty for a complete checkpoint."""
    return [name for name in REQUIRED_FILES if not (path / name).is_file()]


def is_resumable(path: Path) -> bool:
    """Whether `path` is a complete checkpoint that still holds the optimizer state resume needs."""
    return not missing_files(path) and (path / RESUME_FILE).is_file()


def weights_only_error(path: Path) -> ValueError:
    """The one line that refuses to resume from `path`, which lacks RESUME_FILE, naming the ones that can."""
    others = [p.name for p in step_folders(path.parent) if p != path and is_resumable(p)]
    where = f"resumable: {', '.join(others)}" if others else "none of its neighbours is resumable either"
    return ValueError(f"checkpoint {str(path)!r} holds weights only (no {RESUME_FILE}: a run keeps the optimizer "
                      f"state in its newest {RESUMABLE_KEPT} checkpoints), so it can be sampled, evaluated and "
                      f"exported but not resumed; {where}")


# ---- finding ---------------------------------------------------------------------------------------

def step_folders(root: Path) -> list[Path]:
    """The step-* folders under root, complete or not, oldest step first."""
    found = [(int(m.group(1)), p) for p in root.glob(f"{PREFIX}*") if (m := STEP_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def named_by_latest(root: Path) -> tuple[Path | None, str]:
    """The complete checkpoint `latest` names, else None and what is wrong ('' when there is no pointer)."""
    try:
        name = (root / "latest").read_text().strip()
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as error:
        return None, f"is unreadable ({getattr(error, 'strerror', None) or error})"
    if name in ("", ".", "..") or name != Path(name).name:
        return None, f"holds {name[:40]!r}, which is not a checkpoint name"
    if not (root / name).is_dir():
        return None, f"names {name}, which does not exist"
    missing = missing_files(root / name)
    return (None, f"names {name}, which is incomplete (no {missing[0]})") if missing else (root / name, "")


def _find(root: Path) -> tuple[Path | None, str]:
    """The checkpoint to resume from, and what is wrong with `latest` ('' when nothing is)."""
    named, problem = named_by_latest(root)
    if named is not None:
        return named, ""
    steps = step_folders(root)
    newest = next((p for p in reversed(steps) if is_resumable(p)), None) or next(
        (p for p in reversed(steps) if not missing_files(p)), None)  # else one to sample, at least
    problem = problem or ("is missing" if steps else "")
    return newest, f"{str(root / 'latest')!r} {problem}" if problem else ""


def _fallback(found: Path | None) -> str:
    if found is None:
        return "no complete checkpoint exists"
    if is_resumable(found):
        return f"using the newest resumable checkpoint, {found.name}"
    return f"using the newest complete checkpoint, {found.name} (weights only: none is resumable)"


def latest(run_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names; where that is missing, broken or incomplete, the newest resumable
    step-* folder, else the newest complete one (with a one-line warning saying so); None when there is none."""
    found, problem = _find(Path(run_dir) / "checkpoints")
    if problem:
        log.warning("%s; %s", problem, _fallback(found))
    return found


def resolve(path: str | Path, resume: bool = False) -> Path:
    """A run directory (-> its latest checkpoint) or a checkpoint directory; one-line errors otherwise.

    resume: refuse a checkpoint without the optimizer state (weights_only_error).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no run or checkpoint at {str(path)!r}")
    if (path / "state.json").exists():
        found = path
    else:
        root = path / "checkpoints"
        found, problem = _find(root)
        if found is None and problem:
            raise FileNotFoundError(f"{problem}, and {str(root)!r} holds no complete checkpoint")
        if found is None:
            raise FileNotFoundError(f"{str(path)!r} is not a checkpoint (no state.json) and holds no "
                                    f"checkpoints/latest")
        found = latest(path)  # the same one, with the warning if `latest` was broken
    if resume and not (found / RESUME_FILE).is_file():
        raise weights_only_error(found)
    return found


def has_checkpoints(run_dir: str | Path) -> bool:
    """Whether a run holds any step-* folder, complete or not, or a `latest` pointer."""
    root = Path(run_dir) / "checkpoints"
    return os.path.lexists(root / "latest") or bool(step_folders(root))


# ---- loading ---------------------------------------------------------------------------------------

def load(path: str | Path, parts: tuple[str, ...] = TENSOR_PARTS) -> Checkpoint:
    """Read a checkpoint directory; a missing, truncated, foreign or tampered file is a one-line ValueError."""
    path = Path(path)

    def corrupt(reason: str) -> ValueError:
        return ValueError(f"checkpoint {str(path)!r} is corrupt or incomplete: {reason}")

    try:
        state = json.loads((path / "state.json").read_text())
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError as error:
        raise corrupt(f"missing {Path(error.filename).name}") from None
    except OSError as error:
        raise corrupt(f"{Path(error.filename or '?').name}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt(f"unreadable JSON ({error})") from None
    problem = checkpoint_checks.state_problem(state, config)
    if problem:
        raise corrupt(problem)
    tensors = {}
    for part in parts:
        file = path / f"{part}.safetensors"
        if not file.exists():
            raise weights_only_error(path) if part == RESUME_PART else corrupt(f"missing {file.name}")
        try:
            with safe_open(str(file), framework="pt") as opened:
                tensors[part] = {name: opened.get_tensor(name) for name in opened.keys()}
                metadata = opened.metadata() or {}
        except (SafetensorError, OSError, ValueError) as error:
            raise corrupt(f"{file.name}: {error}") from None
        if part == RESUME_PART and state["version"] >= 2:  # version 1 kept this in state.json
            moved, problem = _optimizer_state(metadata)
            if problem:
                raise corrupt(problem)
            state = {**state, **moved}
    problem = checkpoint_checks.rng_problem(tensors["rng"]) if "rng" in tensors else None
    if problem:
        raise corrupt(problem)
    return Checkpoint(config=config, state=state, tensors=tensors)


def _optimizer_state(metadata: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The optimizer's JSON state (OPTIMIZER_KEYS) from the metadata of RESUME_FILE, and what is wrong with it."""
    source = f"{RESUME_FILE} metadata"
    if "state" not in metadata:
        return {}, f"{source} lacks 'state'"
    try:
        fields = json.loads(metadata["state"])
    except json.JSONDecodeError as error:
        return {}, f"{source}: unreadable JSON ({error})"
    problem = checkpoint_checks.optimizer_problem(fields, source)
    return ({} if problem else {key: fields[key] for key in OPTIMIZER_KEYS if key in fields}), problem
