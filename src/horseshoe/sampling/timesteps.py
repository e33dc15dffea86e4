"""Which timesteps a sampler visits when it takes fewer steps than T.

The three spacings as defined in diffusers (Lin et al. 2023, Table 2), for T=1000 and 10 steps:
  trailing: round(arange(T, 0, -T/N)) - 1  -> 999, 899, ..., 99   (starts at the noisiest step)
  leading:  arange(N) * (T // N), reversed -> 900, 800, ..., 0
  linspace: round(linspace(0, T-1, N)), reversed -> 999, 888, ..., 0
'trailing' is the default: it starts from t = T-1, so sampling begins where training's noise ends.
"""

from __future__ import annotations

import numpy as np

from horseshoe.sampling.record import SPACINGS


def make_timesteps(num_train_steps: int, num_steps: int | None, spacing: str = "trailing") -> list[int]:
    """Descending timesteps in 0..T-1 for a sampler of num_steps steps (None: all T)."""
    T = num_train_steps
    n = T if num_steps is None else num_steps
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= T:
        raise ValueError(f"num_steps must be between 1 and T={T}, got {num_steps}")
    if spacing == "trailing":
        # arange's float step can overshoot by one element (e.g. T=1000, N=3): keep the first N.
        steps = (np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1)[:n]
    elif spacing == "leading":
        steps = (np.arange(0, n) * (T // n)).round()[::-1].astype(np.int64)
    elif spacing == "linspace":
        steps = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return [int(s) for s in steps]
