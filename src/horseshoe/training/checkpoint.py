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

This module writes, prunes and exports. Finding and loading are in `checkpoint_read` (and importable
from here, the one module callers need), the crash-safe file steps in `atomic`, the field checks in
`checkpoint_checks`.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from horseshoe.training import atomic, checkpoint_checks
from horseshoe.training.checkpoint_checks import FORMAT, OPTIMIZER_KEYS, VERSION
from horseshoe.training.checkpoint_read import (
    PREFIX,
    REQUIRED_FILES,
    RESUMABLE_KEPT,
    RESUME_FILE,
    RESUME_PART,
    STEP_NAME,
    TENSOR_PARTS,
    Checkpoint,
    checkpoint_name,
    has_checkpoints,
    is_resumable,
    latest,
    load,
    log,
    missing_files,
    named_by_latest,
    resolve,
    step_folders,
    weights_only_error,
)

__all__ = ["PREFIX", "REQUIRED_FILES", "RESUMABLE_KEPT", "RESUME_FILE", "RESUME_PART", "STEP_NAME", "TENSOR_PARTS",
           "Checkpoint", "checkpoint_name", "has_checkpoints", "is_resumable", "latest", "load", "missing_files",
           "resolve", "weights_only_error", "RNG_KEYS", "STATE_INTS", "LOADER_INTS", "save", "clean_stale", "prune",
           "export", "optimizer_to_tensors", "optimizer_from_tensors"]
# The fields load() checks, defined in checkpoint_checks and kept importable from here.
RNG_KEYS, STATE_INTS, LOADER_INTS = (checkpoint_checks.RNG_KEYS, checkpoint_checks.STATE_INTS,
                                     checkpoint_checks.LOADER_INTS)


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


# ---- pruning and cleaning --------------------------------------------------------------------------

def _clean(root: Path) -> list[Path]:
    named = named_by_latest(root)[0]  # spared: a swap without renameat2 can leave `latest` on a .tmp- twin
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
    named = named_by_latest(root)[0]
    for old in step_folders(root)[:-keep] if keep > 0 else []:
        if old != named:
            try:
                atomic.delete(old)
            except OSError as error:  # the new checkpoint is saved; an old one left over only costs space
                log.warning("could not delete old checkpoint %r: %s", str(old), error.strerror)
    for old in [p for p in step_folders(root) if is_resumable(p)][:-RESUMABLE_KEPT]:
        if old != named:
            try:  # one unlink: `old` is resumable or weights only at every instant, complete throughout
                atomic.unlink(old / RESUME_FILE)
            except OSError as error:
                log.warning("could not drop the optimizer state of old checkpoint %r: %s", str(old), error.strerror)


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
