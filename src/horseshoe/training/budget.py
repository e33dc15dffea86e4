"""A time budget (train.minutes) turned into a step count, so that warm-up, decay and EMA fit the time.

The trainer trains the first few steps and times them (`timed_steps` of them), then fixes the step count
that fits PLAN_SHARE of the time left at their median speed (`TimeBudget.first_plan`). Those few steps
can read a machine's speed badly (a busy moment, caches still cold: measured once at 75% of the later
speed, which ended a 10-minute run after 7), so the loop plans once more at `replan_step` from its own
speed, logging and hooks included (`TimeBudget.replan`). Done at the end of the learning-rate warm-up,
where the rate does not yet depend on the total, the second plan changes nothing already trained; it
keeps less in reserve (REPLAN_SHARE), since it has measured the logging too. A resume keeps its plan.

Pure arithmetic on the trainer's clock: the trainer times the steps, and makes every process agree.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A time budget's plans: the share of the time left they fill (the rest is kept for checkpoints, evaluations
# and jitter), and how many steps of the loop the second plan measures at least.
PLAN_SHARE, REPLAN_SHARE, REPLAN_AFTER = 0.85, 0.92, 20


def timed_steps(warmup_steps: int) -> int:
    """How many first steps the first plan times: 3 to 8, no more than the warm-up where that is shorter.

    Inside the warm-up the learning rate does not depend on the total; a timed step past it (a short
    warm-up, or a resume) keeps the rate it finds.
    """
    return max(3, min(8, warmup_steps or 8))


def replan_step(warmup_steps: int, loop_first_step: int) -> int:
    """Where the second plan runs: the end of the warm-up, and at least REPLAN_AFTER steps into the loop."""
    return max(warmup_steps, loop_first_step + REPLAN_AFTER)


@dataclass(frozen=True)
class TimeBudget:
    """train.minutes, counted from `started` on the trainer's clock (seconds)."""

    minutes: float
    started: float

    def steps_to(self, step: int, now: float, per_step: float, share: float) -> int:
        """The step to end at: `step` plus the steps of `per_step` seconds that fit `share` of the time left."""
        left = 60 * self.minutes - (now - self.started)
        return step + max(0, int(share * left / max(per_step, 1e-6)))

    def first_plan(self, step: int, now: float, seconds: Sequence[float]) -> int:
        """The plan from the timed first steps' `seconds`: their median speed, the first left out (it pays
        one-off costs), PLAN_SHARE of the time left."""
        return self.steps_to(step, now, statistics.median(seconds[1:]), PLAN_SHARE)

    def replan(self, step: int, now: float, loop_started: float, loop_first_step: int) -> int:
        """The plan from the loop's own speed since it began at `loop_started` (on step `loop_first_step`),
        REPLAN_SHARE of the time left."""
        per_step = (now - loop_started) / max(1, step - loop_first_step)
        return self.steps_to(step, now, per_step, REPLAN_SHARE)
