"""Line plots: the loss curve of a run and the noise schedules. matplotlib is imported when drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what they have)."""
    if window <= 1 or len(values) < 2:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumulative[idx] - cumulative[lo]) / (idx - lo)


def plot_loss(records: list[dict[str, Any]], path: str | Path, title: str = "training loss") -> Path:
    """Loss against step (raw and smoothed, log scale), with any evaluated quality on a second axis."""
    plt = _pyplot()
    steps = np.array([r["step"] for r in records if "loss" in r])
    loss = np.array([r["loss"] for r in records if "loss" in r])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if len(steps):
        ax.plot(steps, loss, "o-" if len(steps) < 10 else "-", color="#9bb7d4", lw=1, label="loss")  # 1 point: a dot
        ax.plot(steps, smooth(loss, max(1, len(loss) // 20)), color="#1f4e79", lw=2, label="smoothed")
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    quality = [(r["step"], r["swd"]) for r in records if "swd" in r]
    if quality:
        ax2 = ax.twinx()
        ax2.plot(*zip(*quality, strict=True), "o-", color="#c0504d", label="SWD x1e3 (eval)")
        ax2.set_ylabel("sliced Wasserstein distance x1e3", color="#c0504d")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return _save(plt, fig, path)


def plot_schedules(schedules: dict, path: str | Path) -> Path:
    """alpha_bar_t and the signal-to-noise ratio (log scale) against t/T for each schedule."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for name, schedule in schedules.items():
        t = np.arange(schedule.num_steps) / schedule.num_steps
        ax1.plot(t, schedule.alpha_bars.numpy(), label=f"{name} (T={schedule.num_steps})")
        ax2.plot(t, schedule.snr().numpy(), label=name)
    ax1.set_title(r"$\bar\alpha_t$ (signal fraction)")
    ax2.set_title(r"SNR $= \bar\alpha_t / (1 - \bar\alpha_t)$")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.set_xlabel("t / T")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, path)


def plot_sweep(rows: list[tuple[str, int, float, float]], path: str | Path) -> Path:
    """SWD against network evaluations (log scale) and against wall time, one line per sampler.

    rows: (sampler, network evaluations, seconds, SWD x1e3) per setting.
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for sampler in dict.fromkeys(r[0] for r in rows):
        mine = sorted((r for r in rows if r[0] == sampler), key=lambda r: r[1])
        ax1.plot([r[1] for r in mine], [r[3] for r in mine], "o-", label=sampler)
        ax2.plot([r[2] for r in mine], [r[3] for r in mine], "o-", label=sampler)
    ax1.set_xscale("log")
    ax1.set_xlabel("network evaluations")
    ax2.set_xscale("log")
    ax2.set_xlabel("wall time (s)")
    for ax in (ax1, ax2):
        ax.set_ylabel("SWD x1e3 (lower is better)")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(plt, fig, path)


def plot_guidance(rows: list[tuple[float, float, float | None]], path: str | Path) -> Path:
    """Per-class SWD (and the class accuracy, where measured) against the guidance scale w.

    rows: (w, SWD x1e3 averaged over classes, accuracy or None) per scale.
    """
    plt = _pyplot()
    rows = sorted(rows)
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=110)
    ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", color="#1f4e79", label="SWD x1e3 (per class)")
    ax.set_xlabel("guidance scale w (0: no class, 1: conditional)")
    ax.set_ylabel("SWD x1e3 (lower is better)")
    ax.grid(alpha=0.3)
    if all(r[2] is not None for r in rows):
        ax2 = ax.twinx()
        ax2.plot([r[0] for r in rows], [100 * r[2] for r in rows], "s--", color="#c0504d", label="class accuracy")
        ax2.set_ylabel("class accuracy (%)", color="#c0504d")
    ax.legend(loc="upper center")
    return _save(plt, fig, path)
