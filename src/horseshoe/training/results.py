"""What the trainer reports: one optimizer step (StepResult), and how a call to Trainer.fit ended (TrainResult)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class StepResult:
    """One optimizer step: its loss, and unless it was skipped (non-finite loss, or fp16 overflow), lr and
    gradient norm."""

    step: int
    loss: float
    seconds: float
    lr: float = math.nan
    grad_norm: float = math.nan
    skipped: bool = False


class StopReason(str, Enum):
    """Why Trainer.fit stopped. A str: it compares, hashes, prints and serialises as its value."""

    BUDGET = "budget"  # the step budget is trained
    SIGNAL = "signal"  # SIGINT or SIGTERM
    TIME = "time"  # train.max_minutes or the end of train.minutes passed
    NOTHING = "nothing to do"  # already at the budget (a resume of a finished run)

    __hash__ = str.__hash__  # a dict keyed by the values finds the members

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrainResult:
    """How a call to Trainer.fit ended."""

    step: int
    steps_trained: int
    loss: float
    images_per_sec: float
    seconds: float
    stop_reason: StopReason
    nonfinite_skipped: int
    scaler_skipped: int = 0  # fp16: steps whose gradients overflowed, skipped by the gradient scaler

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == StopReason.SIGNAL
