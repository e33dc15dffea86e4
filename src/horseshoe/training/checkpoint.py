"""Checkpoints that survive a crash: a directory of safetensors and JSON, written aside and renamed in.

    RUN/checkpoints/step-00001000/  model.safetensors  ema.safetensors  optimizer.safetensors
                                    rng.safetensors    state.json       config.json
    RUN/checkpoints/latest          the name of the newest complete checkpoint

A checkpoint is complete (it loads for sampling, evaluation and export) with every file but
optimizer.safetensors, and resumable with that one too: AdamW's moments, with the optimizer's param
groups and the fp16 gradient scaler in its metadata, twice the model's size. Pruning drops it from all
but the newest two resumable checkpoints (two, so that a broken `latest` still has a resumable
fallback); the rest of what resume needs (random states, data position) is a few KB and stays.

A save writes everything into a hidden `.tmp-*` directory, fsyncs it, renames it into place (swapping
it atomically with an existing one of the same step), replaces `latest` the same way, and only then
prunes old checkpoints: each one past the kept count renamed to a hidden `.trash-*` name before it is
deleted, then older ones' optimizer.safetensors unlinked (one atomic step: the checkpoint is resumable
or weights only, never between). A crash, Ctrl-C or kill -9 at any moment leaves `latest` naming a
complete resumable checkpoint, plus at worst hidden leftovers that `clean_stale` removes. Loading
checks every field, and reads safetensors and JSON only: nothing in a checkpoint is ever executed.
The crash-safe file steps are in `atomic`, the field checks in `checkpoint_checks`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from horseshoe.training import atomic, checkpoint_checks
from horseshoe.training.checkpoint_checks import FORMAT, OPTIMIZER_KEYS, VERSION

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
log = logging.getLogger(__name__)
# The fields load() checks, defined in checkpoint_checks and kept importable from here.
RNG_KEYS, STATE_INTS, LOADER_INTS = (checkpoint_checks.RNG_KEYS, checkpoint_checks.STATE_INTS,
                                     checkpoint_checks.LOADER_INTS)


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
    others = [p.name for p in _steps(path.parent) if p != path and is_resumable(p)]
    where = f"resumable: {', '.join(others)}" if others else "none of its neighbours is resumable either"
    return ValueError(f"checkpoint {str(path)!r} holds weights only (no {RESUME_FILE}: a run keeps the optimizer "
                      f"state in its newest {RESUMABLE_KEPT} checkpoints), so it can be sampled, evaluated and "
                      f"exported but not resumed; {where}")


# ---- the steps of a save: module functions, so a test can kill a save between any two -------------

def _write_folder(folder: Path, checkpoint: Checkpoint) -> None:
    """Every file of a checkpoint into a fresh folder, flushed to disk."""
    atomic.remove(folder)
    folder.mkdir()
    moved = {key: checkpoint.state[key] for key in OPTIMIZER_KEYS if key in checkpoint.state}
    for part, tensors in checkpoint.tensors.items():
        path = folder / f"{part}.safetensors"
        # The optimizer's JSON state goes with its moments, so that pruning one file drops all of it.
        metadata = {"state": json.dumps(moved)} if part == RESUME_PART else None
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)
        atomic.fsync(path)
    kept = {key: value for key, value in checkpoint.state.items() if key not in OPTIMIZER_KEYS}
    state = {"format": FORMAT, "version": VERSION, **kept}
    atomic.write_text(folder / "state.json", json.dumps(state, indent=2))
    atomic.write_text(folder / "config.json", json.dumps(checkpoint.config, indent=2))
    atomic.fsync(folder)


def _write_pointer(root: Path, name: str) -> None:
    """Point `latest` at `name`: written aside, flushed, renamed over the old pointer."""
    aside = root / f".tmp-latest-{os.getpid()}"
    try:
        atomic.write_text(aside, name + "\n")
        atomic.rename(aside, root / "latest")
    finally:
        atomic.remove(aside)
    atomic.fsync(root)


def _install(folder: Path, final: Path) -> None:
    """Put the complete `folder` at `final`; an existing `final` is swapped out, never half-replaced."""
    root = final.parent
    if not final.exists():
        atomic.rename(folder, final)
    elif atomic.exchange(folder, final):  # `final` is the whole old or the whole new checkpoint at every instant
        atomic.fsync(root)
        atomic.remove(folder)  # the old checkpoint, now under the temporary name
    else:
        # No atomic swap: point `latest` at a hard-linked twin of the new checkpoint first, so it names
        # a complete folder while `final` is deleted and replaced. A kill in between leaves `latest` on
        # the twin, a .tmp-* folder that clean_stale spares while `latest` names it.
        twin = folder.with_name(folder.name + "-twin")
        atomic.link_copy(folder, twin)
        _write_pointer(root, twin.name)
        atomic.delete(final)
        atomic.rename(folder, final)
    atomic.fsync(root)


def _save_error(error: Exception, final: Path, previous: Path | None) -> OSError:
    """One line for a failed save: the errno and reason, the checkpoint, and what is still safe."""
    code = error.errno if isinstance(error, OSError) else None
    reason = (error.strerror if isinstance(error, OSError) else None) or (str(error) or repr(error)).splitlines()[0]
    found = re.search(r"\(os error (\d+)\)", str(error))  # a SafetensorError has its errno only in its text
    if code is None and found:
        code = int(found.group(1))
        reason = os.strerror(code)
    code = errno.EIO if code is None else code
    kept = f"the previous checkpoint {str(previous)!r} is intact" if previous else "no earlier checkpoint exists"
    if code == errno.ENOSPC:
        return OSError(code, f"disk full while saving checkpoint {str(final)!r}; {kept}")
    return OSError(code, f"could not save checkpoint {str(final)!r} ({reason}); {kept}")


def save(run_dir: str | Path, step: int, checkpoint: Checkpoint, keep: int) -> Path:
    """Write a checkpoint aside, swap it into place, point `latest` at it, then keep the newest `keep`.

    Any failed write raises a one-line OSError with the cause's errno (ENOSPC: "disk full while saving
    checkpoint ..."); the temporary folder is removed and `latest` still names the previous checkpoint.
    """
    lacking = [part for part in TENSOR_PARTS if part not in checkpoint.tensors]
    if lacking:  # the folder would not count as complete
        raise ValueError(f"checkpoint for step {step} has no {lacking[0]!r} tensors; a save writes "
                         f"{', '.join(TENSOR_PARTS)}")
    root = Path(run_dir) / "checkpoints"
    final = root / checkpoint_name(step)
    folder = root / f".tmp-{final.name}-{os.getpid()}"
    previous = latest(run_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_folder(folder, checkpoint)
        _install(folder, final)
        _write_pointer(root, final.name)
    except (OSError, SafetensorError) as error:
        atomic.remove(folder)
        raise _save_error(error, final, previous) from None
    prune(root, keep)
    return final


# ---- finding, pruning and cleaning -----------------------------------------------------------------

def _steps(root: Path) -> list[Path]:
    """The step-* folders under root, complete or not, oldest step first."""
    found = [(int(m.group(1)), p) for p in root.glob(f"{PREFIX}*") if (m := STEP_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def _named(root: Path) -> tuple[Path | None, str]:
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
    named, problem = _named(root)
    if named is not None:
        return named, ""
    steps = _steps(root)
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
    return os.path.lexists(root / "latest") or bool(_steps(root))


def _clean(root: Path) -> list[Path]:
    named = _named(root)[0]  # spared: a swap without renameat2 can leave `latest` on a .tmp- twin
    removed = []
    for stale in sorted([*root.glob(".tmp-*"), *root.glob(f"{atomic.TRASH_PREFIX}*")]):
        if stale != named:
            atomic.remove(stale)
            if not os.path.lexists(stale):
                removed.append(stale)
    return removed


def clean_stale(run_dir: str | Path) -> list[Path]:
    """Remove the .tmp-* and .trash-* leftovers of interrupted saves and prunes under RUN/checkpoints
    (only one process ever saves: call this at start-up); returns what was removed."""
    return _clean(Path(run_dir) / "checkpoints")


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints and stale leftovers, then the optimizer state of all
    but the newest RESUMABLE_KEPT resumable ones; never touches the one `latest` names."""
    _clean(root)
    named = _named(root)[0]
    for old in _steps(root)[:-keep] if keep > 0 else []:
        if old != named:
            try:
                atomic.delete(old)
            except OSError as error:  # the new checkpoint is saved; an old one left over only costs space
                log.warning("could not delete old checkpoint %r: %s", str(old), error.strerror)
    for old in [p for p in _steps(root) if is_resumable(p)][:-RESUMABLE_KEPT]:
        if old != named:
            try:  # one unlink: `old` is resumable or weights only at every instant, complete throughout
                atomic.unlink(old / RESUME_FILE)
            except OSError as error:
                log.warning("could not drop the optimizer state of old checkpoint %r: %s", str(old), error.strerror)


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


def export(source: str | Path, out: str | Path, weights: str = "ema") -> Path:
    """A checkpoint's weights (EMA by default) and config alone, in a folder `horseshoe sample` reads as
    a checkpoint: a few MB, without the optimizer state and the raw weights that only resume needs."""
    source, out = resolve(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"export folder {str(out)!r} already exists and is not empty")
    data = load(source, parts=(weights,))
    state = {"step": data.state["step"], "images_seen": data.state["images_seen"], "exported_from": str(source)}
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_folder(tmp, Checkpoint(config=data.config, state=state, tensors={"ema": data.tensors[weights]}))
        if out.exists():
            out.rmdir()
        atomic.rename(tmp, out)
    except (OSError, SafetensorError) as error:
        atomic.remove(tmp)
        raise _save_error(error, out, source) from None  # "the previous checkpoint": the source, untouched
    return out


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
