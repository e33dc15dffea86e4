"""What a run records as it goes: metrics.jsonl (append-only), an optional TensorBoard log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def tensorboard_writer() -> type:
    """TensorBoard's SummaryWriter, or a one-line error saying how to install it (an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("train.tensorboard=true needs the tensorboard package: "
                         "pip install 'horseshoe[tensorboard]'") from None
    return SummaryWriter


class RunLog:
    """Appends one JSON object per line to RUN/metrics.jsonl, and mirrors scalars to RUN/tensorboard/ if asked."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = tensorboard_writer()(str(Path(run_dir) / "tensorboard")) if tensorboard else None
        self._file = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The step records of metrics.jsonl, the last one kept where a resume repeated a step."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if "step" in record and "event" not in record:
            by_step[int(record["step"])] = {**by_step.get(int(record["step"]), {}), **record}
    return [by_step[s] for s in sorted(by_step)]
