"""Image grids and PNG writing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, pad_value: int = 64,
              scale: int = 1) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 picture, filled row by row; cells enlarged `scale` times (sharp pixels)."""
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
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


def save_samples(images: np.ndarray, folder: str | Path, npz: bool = False, columns: int | None = None,
                 arrays: dict[str, np.ndarray] | None = None) -> list[Path]:
    """grid.png plus one PNG per image (000.png, 001.png, ...) and optionally samples.npz (the images and
    any further `arrays`, such as labels), in folder."""
    folder = Path(folder)
    paths = [save_png(make_grid(images, columns=columns, scale=display_scale(images.shape[1])), folder / "grid.png")]
    width = max(3, len(str(len(images) - 1)))
    paths += [save_png(image, folder / f"{i:0{width}d}.png") for i, image in enumerate(images)]
    if npz:
        np.savez_compressed(folder / "samples.npz", images=images, **(arrays or {}))
        paths.append(folder / "samples.npz")
    return paths
