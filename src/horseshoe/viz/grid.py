"""Image grids and PNG writing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, pad_value: int = 64) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows*(H+p)+p, cols*(W+p)+p, C) picture, filled row by row."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), pad_value, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = image
    return grid


def to_pil(array: np.ndarray, scale: int = 1) -> Image.Image:
    """uint8 (H, W, 1|3|4) -> PIL image, enlarged `scale` times with sharp pixels."""
    squeezed = array[..., 0] if array.shape[-1] == 1 else array
    image = Image.fromarray(squeezed)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def save_png(array: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 (H, W, C) array as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(array, scale).save(path)
    return path


def display_scale(height: int, target: int = 96) -> int:
    """An integer enlargement that shows small images at a readable size (32 px -> x3)."""
    return max(1, round(target / height))
