"""Samples beside their nearest training images: pairs side by side, each with a label under it.

Which samples and which neighbours is for the caller to choose (metrics.novelty); this only draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from horseshoe.viz.grid import make_grid
from horseshoe.viz.pictures import label_columns

PAIR_GAP = 2  # between a sample and its neighbour: close, so that they read as one pair
PAIR_SPACING = 10  # between pairs


def pairs_picture(samples: np.ndarray, neighbours: np.ndarray, labels: Sequence[str], columns: int = 4,
                  scale: int = 1) -> np.ndarray:
    """uint8 (N, H, W, C) samples and neighbours -> one picture: pair i is sample i (left) beside
    neighbour i (right) with labels[i] under it, `columns` pairs a row, in the order given."""
    if samples.shape != neighbours.shape or len(labels) != len(samples):
        raise ValueError(f"pairs need as many samples, neighbours and labels: got {samples.shape}, "
                         f"{neighbours.shape} and {len(labels)} labels")
    if len(samples) == 0:
        raise ValueError("no pairs to draw")
    if scale > 1:
        samples, neighbours = (a.repeat(scale, axis=1).repeat(scale, axis=2) for a in (samples, neighbours))
    n, h, w, c = samples.shape
    gap = np.full((n, h, PAIR_GAP, c), 255, np.uint8)
    pairs = np.concatenate([samples, gap, neighbours], axis=2)  # (N, H, 2W + gap, C)
    cells = np.stack([label_columns(pair, [text], pair.shape[1], 0) for pair, text in zip(pairs, labels, strict=True)])
    return make_grid(cells, columns=min(columns, n), padding=PAIR_SPACING, pad_value=255)
