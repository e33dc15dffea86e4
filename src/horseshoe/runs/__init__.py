"""Everything that makes or reads a run directory, in reading order:

    train.py         train into a run directory: the trainer plus its hooks, the end pictures, the page
    load.py          open a trained run (load_run, LoadedRun): sample from it, edit images with it
    page.py          the run's index.html, built from named sections that each command adds
    memorisation.py  near-copies of training images among samples: the check, the picture, the warning
    evaluate.py      `horseshoe evaluate`: quality, novelty, likelihood, sampler sweeps
    by_class.py      a run with classes scored class by class, and against the guidance scale
    demo.py          `horseshoe demo`: train on the built-in horseshoes and draw every picture

`from horseshoe.runs import load_run, LoadedRun` loads runs.load on first use, so importing one module
(say runs.page) does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"load_run": "horseshoe.runs.load", "LoadedRun": "horseshoe.runs.load"}

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'horseshoe.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value  # the next access is a plain lookup
    return value
