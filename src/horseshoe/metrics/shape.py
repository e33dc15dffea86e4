"""Is this image a horseshoe? A geometric check of a one-channel silhouette.

A horseshoe here is: one solid white piece (8-connected) with no stray blobs, no enclosed hole, a
clean black background, and a U shape: a large part of its convex hull is empty (the space between
the branches), and that empty part opens to the outside on one side.

The side it opens to is where that empty part lies as seen from the shoe's own centre of mass: the
toe holds the mass, the mouth sits between the heels (`opening`, one of data.horseshoes.DIRECTIONS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from horseshoe.data.horseshoes import DIRECTIONS

_N4 = ((1, 0), (-1, 0), (0, 1), (0, -1))
_N8 = _N4 + ((1, 1), (1, -1), (-1, 1), (-1, -1))


def label(mask: np.ndarray, neighbours: tuple[tuple[int, int], ...] = _N8) -> tuple[np.ndarray, int]:
    """Connected components of a boolean (H, W) mask: labels 1..n (0 = outside the mask), and n."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    h, w = mask.shape
    n = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        n += 1
        labels[start] = n
        stack = [start]
        while stack:
            y, x = stack.pop()
            for dy, dx in neighbours:
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not labels[yy, xx]:
                    labels[yy, xx] = n
                    stack.append((yy, xx))
    return labels, n


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie in the convex hull of the mask's pixel corners (Andrew's monotone chain)."""
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    points = sorted(set(map(tuple, corners.tolist())))
    if len(points) < 3:
        return mask.copy()

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in points:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(points):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1], dtype=np.float64)  # counter-clockwise in (x, y-down)
    h, w = mask.shape
    cy, cx = np.mgrid[0:h, 0:w] + 0.5
    inside = np.ones(mask.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        inside &= (x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0) >= -1e-9
    return inside


@dataclass(frozen=True)
class ShapeReport:
    """Measurements of one silhouette (values in [0, 1], threshold 0.5)."""

    area: int  # white pixels
    pieces: int  # 8-connected white components
    stray: int  # white pixels outside the largest component
    holes: int  # black 4-connected regions not touching the border
    mouth: float  # empty fraction of the convex hull: ~0 for a blob, large for a U
    mouths: int  # separate empty regions of the hull with more than 3% of its area
    grey: float  # fraction of pixels neither black (< 0.15) nor white (> 0.85) away from edges
    opening: str | None = None  # the side the largest mouth faces (DIRECTIONS), None without a mouth

    def as_dict(self) -> dict:
        return asdict(self)


def analyse(image: np.ndarray) -> ShapeReport:
    """Measure one (H, W) silhouette with values in [0, 1]."""
    white = image > 0.5
    labels, pieces = label(white)
    sizes = np.bincount(labels.ravel())[1:] if pieces else np.zeros(0, np.int64)
    largest = int(sizes.max()) if pieces else 0
    background, regions = label(~white, _N4)
    border = set(np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])))
    holes = sum(1 for r in range(1, regions + 1) if r not in border)
    main = labels == (int(np.argmax(sizes)) + 1) if pieces else white
    hull = convex_hull_mask(main) if pieces else white
    empty = hull & ~main
    mouth = float(empty.sum() / max(hull.sum(), 1))
    gaps, n_gaps = label(empty, _N4)
    gap_sizes = np.bincount(gaps.ravel())[1:]
    mouths = int((gap_sizes > 0.03 * max(hull.sum(), 1)).sum())
    opening = _opening(main, gaps == int(np.argmax(gap_sizes)) + 1) if n_gaps and main.any() else None
    # Grey pixels farther than one pixel from the outline: noise or smears, not anti-aliasing.
    near_edge = _dilate(white) & _dilate(~white)
    grey = float((((image > 0.15) & (image < 0.85)) & ~near_edge).mean())
    return ShapeReport(area=int(white.sum()), pieces=pieces, stray=int(white.sum()) - largest, holes=holes,
                       mouth=mouth, mouths=mouths, grey=grey, opening=opening)


def _opening(shoe: np.ndarray, mouth: np.ndarray) -> str:
    """The side the mouth lies on from the shoe's centre of mass: the axis of the larger offset."""
    (sy, sx), (my, mx) = (np.argwhere(m).mean(axis=0) for m in (shoe, mouth))
    dy, dx = my - sy, mx - sx  # y points down
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def is_horseshoe(report: ShapeReport, image_pixels: int) -> bool:
    """One solid U-shaped piece, open at one end, no stray blobs, no holes, no noise."""
    return (
        report.area >= 0.04 * image_pixels
        and report.stray <= 2
        and report.holes == 0
        and report.mouth >= 0.2
        and report.mouths == 1
        and report.grey <= 0.01
    )


def _silhouettes(images: np.ndarray) -> np.ndarray:
    return images.reshape(images.shape[0], images.shape[1], images.shape[2])


def opening_accuracy(images: np.ndarray, wanted: Sequence[str]) -> float:
    """Share of (N, H, W[, 1]) images in [0, 1] whose opening faces the wanted direction (one per image)."""
    if len(wanted) != images.shape[0]:
        raise ValueError(f"{len(wanted)} wanted directions for {images.shape[0]} images")
    unknown = sorted(set(wanted) - set(DIRECTIONS))
    if unknown:
        raise ValueError(f"unknown direction {unknown[0]!r}; directions are {', '.join(DIRECTIONS)}")
    return float(np.mean([analyse(img).opening == w for img, w in zip(_silhouettes(images), wanted, strict=True)]))


def horseshoe_rate(images: np.ndarray) -> float:
    """Fraction of (N, H, W) or (N, H, W, 1) images in [0, 1] that pass is_horseshoe."""
    passed = [is_horseshoe(analyse(img), img.size) for img in _silhouettes(images)]
    return float(np.mean(passed))
