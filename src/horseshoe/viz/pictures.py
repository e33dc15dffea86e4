"""The pictures that show how diffusion works: forward noising, backward denoising, sampling frames.

Every backward picture is drawn from the StepRecords a sampler yields; none recomputes an update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from horseshoe.data.transforms import to_uint8
from horseshoe.diffusion import NoiseSchedule, q_sample
from horseshoe.sampling import StepRecord
from horseshoe.viz.grid import make_grid

LABEL_HEIGHT = 16


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def label_columns(picture: np.ndarray, labels: Sequence[str], cell_width: int, padding: int) -> np.ndarray:
    """Add a strip under a grid with one centred label per column."""
    h, w, c = picture.shape
    strip = Image.new("L" if c == 1 else "RGB", (w, LABEL_HEIGHT), 255 if c == 1 else (255, 255, 255))
    draw, font = ImageDraw.Draw(strip), _font()
    for i, text in enumerate(labels):
        x = padding + i * (cell_width + padding) + cell_width / 2
        draw.text((x, LABEL_HEIGHT / 2), text, fill=0 if c == 1 else (0, 0, 0), font=font, anchor="mm")
    strip_array = np.asarray(strip)
    strip_array = strip_array[..., None] if strip_array.ndim == 2 else strip_array
    if c == 4:  # RGBA: an opaque strip
        strip_array = np.concatenate([strip_array, np.full(strip_array.shape[:-1] + (1,), 255, np.uint8)], axis=-1)
    return np.concatenate([picture, strip_array], axis=0)


def label_rows(picture: np.ndarray, labels: Sequence[str], cell_height: int, padding: int,
               width: int = 30) -> np.ndarray:
    """Add a strip left of a grid with one label per row (labels repeat if fewer than rows)."""
    h, w, c = picture.shape
    strip = Image.new("L", (width, h), 255)
    draw, font = ImageDraw.Draw(strip), _font()
    rows = (h - padding) // (cell_height + padding)
    for r in range(rows):
        y = padding + r * (cell_height + padding) + cell_height / 2
        draw.text((width / 2, y), labels[r % len(labels)], fill=0, font=font, anchor="mm")
    strip_array = np.repeat(np.asarray(strip)[..., None], c, axis=-1)
    return np.concatenate([strip_array, picture], axis=1)


def default_noise_timesteps(num_train_steps: int, columns: int = 8) -> list[int]:
    """Timesteps spread over 0..T-1 for the noising picture (the first column shows the clean data)."""
    return [int(t) for t in np.linspace(0, num_train_steps - 1, columns - 1).round()]


def noising_picture(images: np.ndarray, schedule: NoiseSchedule, timesteps: Sequence[int], seed: int = 0,
                    scale: int = 1) -> np.ndarray:
    """Rows: images; columns: the clean image, then x_t ~ q(x_t | x0) at each timestep; t written below."""
    bad = [t for t in timesteps if not 0 <= t < schedule.num_steps]
    if bad:
        raise ValueError(f"timesteps must lie in 0..{schedule.num_steps - 1}, got {bad}")
    x0 = torch.as_tensor(images).permute(0, 3, 1, 2).double() / 127.5 - 1.0
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    columns = [x0] + [q_sample(schedule, x0, t, eps) for t in timesteps]  # the same eps along a row
    cells = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image i, column j
    return _labelled_grid(to_uint8(cells), len(columns), ["x0"] + [f"t={t}" for t in timesteps], scale)


def _labelled_grid(cells: np.ndarray, columns: int, labels: Sequence[str], scale: int) -> np.ndarray:
    grid = make_grid(cells, columns=columns, padding=2, pad_value=255, scale=scale)
    return label_columns(grid, labels, cells.shape[2] * scale, 2)


def pick_steps(num_records: int, columns: int) -> list[int]:
    """Evenly spread record indices, always including the first and the last."""
    if columns >= num_records:
        return list(range(num_records))
    return sorted({int(round(i)) for i in np.linspace(0, num_records - 1, columns)})


def denoising_picture(records: Sequence[StepRecord], columns: int = 8, samples: int = 4, scale: int = 1) -> np.ndarray:
    """For each of `samples` images: a row of x_t and, below it, a row of the predicted x0, at chosen steps.

    The last column shows the final sample (x_prev of the last step) above its x0 prediction.
    """
    chosen = pick_steps(len(records), columns)
    rows = []
    for i in range(min(samples, records[0].x_t.shape[0])):
        rows.append([records[k].x_t[i] for k in chosen[:-1]] + [records[-1].x_prev[i]])
        rows.append([records[k].x0_hat[i] for k in chosen])
    cells = torch.stack([torch.stack(r) for r in rows]).flatten(0, 1)
    labels = [f"t={records[k].t}" for k in chosen[:-1]] + ["final"]
    picture = _labelled_grid(to_uint8(cells.float().cpu()), len(chosen), labels, scale)
    cell = cells.shape[-2] * scale
    return label_rows(picture, ["x_t", "x0_hat"], cell, 2, width=44)


def sampling_frames(records: Iterable[StepRecord], frames: int, total_steps: int, with_x0: bool = False,
                    columns: int | None = None, scale: int = 1) -> list[np.ndarray]:
    """Grids of the samples after chosen steps (x_prev), optionally with x0_hat beside; the last is the final sample."""
    keep = set(pick_steps(total_steps, frames))
    out = []
    for record in records:
        if record.index not in keep:
            continue
        grid = _frame(record.x_prev, columns, scale)
        if with_x0:
            gap = np.full((grid.shape[0], 8, grid.shape[2]), 255, np.uint8)
            grid = np.concatenate([grid, gap, _frame(record.x0_hat, columns, scale)], axis=1)
        out.append(grid)
    return out


def beside(left: np.ndarray, right: np.ndarray, gap: int = 8, fill: int = 255) -> np.ndarray:
    """Two pictures side by side, tops aligned, the shorter one padded below."""
    height = max(left.shape[0], right.shape[0])

    def padded(p: np.ndarray) -> np.ndarray:
        return np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=fill)

    space = np.full((height, gap, left.shape[2]), fill, np.uint8)
    return np.concatenate([padded(left), space, padded(right)], axis=1)


def edit_picture(inputs: np.ndarray, results: np.ndarray, scale: int = 1) -> np.ndarray:
    """An edit's inputs (uint8 (K, H, W, C)) in a column, then its results in a grid as `sample` draws them."""
    return beside(make_grid(inputs, columns=1, scale=scale), make_grid(results, scale=scale))


def _frame(x: torch.Tensor, columns: int | None, scale: int) -> np.ndarray:
    return make_grid(to_uint8(x.float().cpu()), columns=columns, padding=2, pad_value=64, scale=scale)


def as_image(picture: np.ndarray) -> Image.Image:
    return Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
