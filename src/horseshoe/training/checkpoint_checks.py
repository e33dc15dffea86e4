"""What a loadable checkpoint's JSON and random states must hold, as one-line reasons for load() to raise.

A checkpoint is read as data, never run, so every field a resume relies on is checked here first: a
tampered, foreign or damaged file becomes "state.json field 'step' must be an integer >= 0, not -1",
not a crash a thousand steps later. Version 2 keeps the optimizer's JSON state (its param groups, the
fp16 gradient scaler) in the metadata of optimizer.safetensors, the one file pruning drops; version 1
kept it in state.json, and is still read.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

FORMAT = "horseshoe-checkpoint"  # state.json's "format"; anything else is not one of ours
VERSION = 2  # what a save writes
VERSIONS = (1, 2)  # what load reads
OPTIMIZER_KEYS = ("optimizer_groups", "grad_scaler")  # state.json in version 1, optimizer metadata in 2
RNG_KEYS = ("torch", "noise")  # required in rng.safetensors; "cuda" is optional
# Integer fields of state.json and of its "loader": name -> (least allowed value or None, required).
STATE_INTS = {"step": (0, True), "images_seen": (0, True), "nonfinite_skipped": (0, False),
              "scaler_skipped": (0, False), "world_size": (1, False), "planned_steps": (1, False)}
LOADER_INTS = {"position": (0, True), "seed": (None, True), "batch_size": (1, True)}
# The optional "grad_scaler" (fp16 runs): torch.amp.GradScaler.state_dict(), checked field by field.
SCALER_INTS = {"growth_interval": (1, True), "_growth_tracker": (0, True)}
SCALER_FLOATS = {"scale": (0.0, math.inf), "growth_factor": (1.0, math.inf), "backoff_factor": (0.0, 1.0)}


def _ints_problem(where: str, fields: dict, spec: dict[str, tuple[int | None, bool]]) -> str | None:
    """The first integer field of `spec` that `fields` lacks or holds out of range, as a reason; else None."""
    for key, (least, required) in spec.items():
        value = fields.get(key)
        if key not in fields:
            if required:
                return f"{where} lacks field {key!r}"
        elif isinstance(value, bool) or not isinstance(value, int) or (least is not None and value < least):
            kind = "an integer" if least is None else f"an integer >= {least}"
            return f"{where} field {key!r} must be {kind}, not {json.dumps(value)[:40]}"
    return None


def _scaler_problem(scaler: Any, source: str) -> str | None:
    """What is wrong with a "grad_scaler" object read from `source`, or None."""
    where = f"{source} grad_scaler"
    if not isinstance(scaler, dict):
        return f"{source} field 'grad_scaler' must be an object, not {json.dumps(scaler)[:40]}"
    for key, (low, high) in SCALER_FLOATS.items():  # open intervals: a scale of 0 or inf cannot resume
        value = scaler.get(key)
        if key not in scaler:
            return f"{where} lacks field {key!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            return f"{where} field {key!r} must be a number in ({low:g}, {high:g}), not {json.dumps(value)[:40]}"
    return _ints_problem(where, scaler, SCALER_INTS)


def state_problem(state: Any, config: Any) -> str | None:
    """What is wrong with the contents of state.json and config.json, or None."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return "state.json is not a horseshoe checkpoint"
    version = state.get("version")
    if type(version) is not int or version not in VERSIONS:
        return (f"state.json field 'version' is {json.dumps(version)[:40]}; this horseshoe reads versions "
                f"{' and '.join(map(str, VERSIONS))}")
    loader = state.get("loader", {})
    if not isinstance(loader, dict):
        return f"state.json field 'loader' must be an object, not {json.dumps(loader)[:40]}"
    if not isinstance(config, dict):
        return f"config.json must hold an object, not {json.dumps(config)[:40]}"
    return _ints_problem("state.json", state, STATE_INTS) or (
        _ints_problem("state.json loader", loader, LOADER_INTS) if "loader" in state else None) or (
        optimizer_problem(state, "state.json", required=False))


def optimizer_problem(fields: Any, source: str, required: bool = True) -> str | None:
    """What is wrong with the optimizer's JSON state (OPTIMIZER_KEYS) read from `source`, or None.

    required: whether "optimizer_groups" must be there (in optimizer.safetensors; state.json of a version 1
    checkpoint may lack it).
    """
    if not isinstance(fields, dict):
        return f"{source} must hold an object, not {json.dumps(fields)[:40]}"
    if required and "optimizer_groups" not in fields:
        return f"{source} lacks field 'optimizer_groups'"
    groups = fields.get("optimizer_groups", [])
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        return f"{source} field 'optimizer_groups' must be a list of objects, not {json.dumps(groups)[:40]}"
    return _scaler_problem(fields["grad_scaler"], source) if "grad_scaler" in fields else None


def rng_problem(rng: dict[str, torch.Tensor]) -> str | None:
    """What is wrong with the random states of rng.safetensors, or None."""
    missing = [key for key in RNG_KEYS if key not in rng]
    unknown = sorted(set(rng) - {*RNG_KEYS, "cuda"})
    if missing or unknown:
        return f"rng.safetensors {'lacks' if missing else 'holds unexpected'} {(missing or unknown)[0]!r}"
    for key, value in rng.items():
        if value.dtype != torch.uint8 or value.ndim != 1:
            return f"rng.safetensors {key!r} is {value.dtype} of shape {tuple(value.shape)}, not a 1-D uint8 state"
    return None
