"""The built-in many-class set: everyday silhouettes drawn procedurally, sixteen classes, no download.

Each class is a union and difference of signed distance functions (negative inside) in its own frame
(x right, y down, the shape inside [-1, 1]^2), with its proportions, thicknesses and parts drawn per
image. Every shape is then thickened or thinned a little, given uneven edges (low-frequency ripples
of the outline), scaled to fill 60-90% of the frame, turned a few degrees and placed; each pixel's
coverage gives anti-aliased edges, as for the horseshoes (data.horseshoes), whose shoes are the
sixteenth class.

Image i of seed s is of class i mod 16 (CLASSES, sorted as class folders are), so any count of
images is as balanced as it can be, and its pixels depend only on (s, i): its parameters come from
numpy's PCG64 seeded with (s, i, SALT).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from horseshoe.data import horseshoes

SALT = 0x5EA5  # keeps shape i of seed s apart from horseshoe i of seed s
Field = np.ndarray  # a signed distance field over the pixel grid, in the shape's own units


# --- primitives: signed distances at points (x, y) -----------------------------------------------------------

def circle(x, y, cx: float, cy: float, r: float) -> Field:
    return np.hypot(x - cx, y - cy) - r


def box(x, y, cx: float, cy: float, hw: float, hh: float, r: float = 0.0) -> Field:
    """An axis-aligned box of half-sizes (hw, hh), its corners rounded by r."""
    qx, qy = np.abs(x - cx) - (hw - r), np.abs(y - cy) - (hh - r)
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r


def capsule(x, y, a: tuple[float, float], b: tuple[float, float], r: float) -> Field:
    """The points within r of the segment a-b."""
    px, py, bx, by = x - a[0], y - a[1], b[0] - a[0], b[1] - a[1]
    h = np.clip((px * bx + py * by) / (bx * bx + by * by), 0, 1)
    return np.hypot(px - h * bx, py - h * by) - r


def ellipse(x, y, cx: float, cy: float, a: float, b: float) -> Field:
    """An ellipse of half-axes (a, b); distance to first order, exact enough for anti-aliasing."""
    return (np.hypot((x - cx) / a, (y - cy) / b) - 1) * min(a, b)


def polygon(x, y, points: Sequence[tuple[float, float]]) -> Field:
    """A simple polygon: distance to its nearest edge, negative where a crossing count says inside."""
    pts = np.asarray(points, dtype=np.float64)
    distance = np.full(np.broadcast(x, y).shape, np.inf)
    inside = np.zeros(distance.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
        distance = np.minimum(distance, capsule(x, y, (ax, ay), (bx, by), 0.0))
        crosses = (ay > y) != (by > y)
        at = ax + (y - ay) * (bx - ax) / np.where(by == ay, 1e-12, by - ay)
        inside ^= crosses & (x < at)
    return np.where(inside, -distance, distance)


def union(*fields: Field) -> Field:
    return np.minimum.reduce(fields)


def minus(a: Field, b: Field) -> Field:
    return np.maximum(a, -b)


# --- the classes: (x, y, rng) -> distance field ------------------------------------------------------------

def arrow(x, y, rng):
    shaft, head_w, head_y = rng.uniform(0.07, 0.12), rng.uniform(0.35, 0.55), rng.uniform(-0.45, -0.3)
    parts = [box(x, y, 0, (head_y + 0.95) / 2, shaft, (0.95 - head_y) / 2),
             polygon(x, y, [(0, -0.95), (head_w, head_y), (-head_w, head_y)])]
    if rng.random() < 0.5:  # fletching
        f = rng.uniform(0.18, 0.28)
        parts.append(polygon(x, y, [(0, 0.55), (f, 0.8), (f, 0.98), (0, 0.75), (-f, 0.98), (-f, 0.8)]))
    return union(*parts)


def bell(x, y, rng):
    top, flare, rim = rng.uniform(0.32, 0.45), rng.uniform(0.68, 0.88), rng.uniform(0.5, 0.62)
    return union(circle(x, y, 0, -0.4, top),
                 polygon(x, y, [(-top, -0.4), (top, -0.4), (flare, rim), (-flare, rim)]),
                 box(x, y, 0, rim, flare + 0.04, 0.08, 0.03),
                 circle(x, y, 0, rim + 0.2, rng.uniform(0.1, 0.15)),
                 capsule(x, y, (0, -0.4 - top), (0, -0.92), rng.uniform(0.06, 0.1)))


def bird(x, y, rng):
    """A bird in flight, seen from below: two bent wings and a small body."""
    t = rng.uniform(0.07, 0.12)
    elbow, tip = (rng.uniform(0.35, 0.5), rng.uniform(-0.45, -0.25)), (rng.uniform(0.85, 0.97), rng.uniform(-0.2, 0.1))
    wings = [capsule(x, y, (0, 0.15), (s * elbow[0], elbow[1]), t) for s in (-1, 1)]
    wings += [capsule(x, y, (s * elbow[0], elbow[1]), (s * tip[0], tip[1]), t * rng.uniform(0.6, 0.9)) for s in (-1, 1)]
    return union(*wings, ellipse(x, y, 0, 0.2, rng.uniform(0.1, 0.15), rng.uniform(0.18, 0.28)))


def bottle(x, y, rng):
    hw, top, neck = rng.uniform(0.28, 0.42), rng.uniform(-0.2, 0.05), rng.uniform(0.1, 0.15)
    shoulder = top - rng.uniform(0.15, 0.3)
    return union(box(x, y, 0, (top + 0.95) / 2, hw, (0.95 - top) / 2, 0.08),
                 polygon(x, y, [(-hw, top + 0.01), (hw, top + 0.01), (neck, shoulder), (-neck, shoulder)]),
                 box(x, y, 0, (shoulder - 0.8) / 2, neck, (shoulder + 0.8) / 2),
                 box(x, y, 0, -0.86, neck + 0.04, 0.08, 0.02))


def crescent(x, y, rng):
    r, d, phi = rng.uniform(0.8, 0.95), rng.uniform(0.35, 0.55), np.deg2rad(rng.uniform(-30, 30))
    return minus(circle(x, y, 0, 0, r), circle(x, y, d * np.cos(phi), d * np.sin(phi), r * rng.uniform(0.85, 1.0)))


def cross(x, y, rng):
    t, bar, arm = rng.uniform(0.12, 0.2), rng.uniform(-0.45, 0.0), rng.uniform(0.5, 0.8)
    return union(box(x, y, 0, 0, t, rng.uniform(0.85, 0.97)), box(x, y, 0, bar, arm, t))


def cup(x, y, rng):
    w_top = rng.uniform(0.42, 0.52)
    w_bottom, bottom = w_top * rng.uniform(0.7, 0.95), rng.uniform(0.5, 0.7)
    ring_r = rng.uniform(0.25, 0.33)
    inner = ring_r * rng.uniform(0.45, 0.6)
    handle = minus(circle(x, y, w_top - 0.2, -0.05, ring_r), circle(x, y, w_top - 0.2, -0.05, inner))
    parts = [polygon(x, y, [(-w_top - 0.2, -0.55), (w_top - 0.2, -0.55), (w_bottom - 0.2, bottom),
                            (-w_bottom - 0.2, bottom)]), handle]
    if rng.random() < 0.5:  # a saucer
        parts.append(box(x, y, -0.2, bottom + 0.08, w_top + rng.uniform(0.1, 0.25), 0.05, 0.04))
    return union(*parts)


def fish(x, y, rng):
    a, b, tail = rng.uniform(0.5, 0.65), rng.uniform(0.26, 0.4), rng.uniform(0.3, 0.45)
    body = ellipse(x, y, -0.2, 0, a, b)
    fin = polygon(x, y, [(a - 0.35, 0), (0.95, -tail), (rng.uniform(0.75, 0.85), 0), (0.95, tail)])
    return minus(union(body, fin), circle(x, y, -0.2 - 0.55 * a, -0.25 * b, rng.uniform(0.05, 0.08)))


def hammer(x, y, rng):
    hw, hh, grip = rng.uniform(0.5, 0.7), rng.uniform(0.14, 0.22), rng.uniform(0.07, 0.11)
    parts = [box(x, y, 0, -0.65, hw, hh, 0.03), box(x, y, 0, 0.15, grip, 0.8, 0.03)]
    if rng.random() < 0.5:  # a claw: one end of the head tapers
        parts[0] = minus(parts[0], polygon(x, y, [(hw * 0.4, -0.65 + hh + 0.01), (hw + 0.05, -0.65 + hh + 0.01),
                                                  (hw + 0.05, -0.65 - hh * 0.2)]))
    return union(*parts)


def heart(x, y, rng):
    r = rng.uniform(0.4, 0.5)
    dx, cy, tip = r * rng.uniform(0.75, 0.95), rng.uniform(-0.45, -0.3), rng.uniform(0.75, 0.95)
    a = np.deg2rad(rng.uniform(30, 45))  # where the sides leave the lobes
    side = (dx + r * np.cos(a), cy + r * np.sin(a))
    return union(circle(x, y, -dx, cy, r), circle(x, y, dx, cy, r),
                 polygon(x, y, [(-side[0], side[1]), (0, cy), (side[0], side[1]), (0, tip)]))


def key(x, y, rng):
    outer = rng.uniform(0.3, 0.4)
    bow = minus(circle(x, y, -0.6, 0, outer), circle(x, y, -0.6, 0, outer * rng.uniform(0.4, 0.6)))
    shaft = rng.uniform(0.07, 0.11)
    parts = [bow, box(x, y, 0.3, 0, 0.62, shaft)]
    for k in range(rng.integers(2, 4)):  # teeth
        parts.append(box(x, y, 0.85 - 0.18 * k, shaft + 0.1, 0.06, rng.uniform(0.08, 0.16) + 0.05))
    return union(*parts)


def ring(x, y, rng):
    r, t = rng.uniform(0.55, 0.72), rng.uniform(0.1, 0.22)
    band = minus(circle(x, y, 0, 0.15, r), circle(x, y, 0, 0.15, r - t))
    if rng.random() < 0.5:
        return band
    g = rng.uniform(0.14, 0.22)  # a stone
    return union(band, polygon(x, y, [(0, 0.15 - r - 2 * g), (g, 0.15 - r - g), (0, 0.15 - r + 0.02),
                                      (-g, 0.15 - r - g)]))


def spoon(x, y, rng):
    a, b = rng.uniform(0.22, 0.34), rng.uniform(0.32, 0.44)
    return union(ellipse(x, y, 0, -0.9 + b, a, b),
                 capsule(x, y, (0, -0.9 + 1.5 * b), (0, 0.92), rng.uniform(0.05, 0.09)))


def star(x, y, rng):
    points, outer = 5, rng.uniform(0.88, 1.0)
    inner = outer * rng.uniform(0.38, 0.55)
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return polygon(x, y, list(zip(radii * np.cos(angles), radii * np.sin(angles) + 0.05, strict=True)))


def tree(x, y, rng):
    tiers, trunk = int(rng.integers(2, 4)), rng.uniform(0.08, 0.14)
    parts = [box(x, y, 0, 0.72, trunk, 0.26)]
    top, base = -0.95, 0.6
    for k in range(tiers):  # the lowest tier reaches the trunk
        apex = top + k * (base - top) / (tiers + 1)
        bottom = base if k == tiers - 1 else apex + (base - top) * rng.uniform(0.45, 0.6)
        width = rng.uniform(0.45, 0.6) + 0.35 * (k + 1) / tiers
        parts.append(polygon(x, y, [(0, apex), (width, bottom), (-width, bottom)]))
    return union(*parts)


DRAWN: dict[str, Callable] = {"arrow": arrow, "bell": bell, "bird": bird, "bottle": bottle, "crescent": crescent,
                              "cross": cross, "cup": cup, "fish": fish, "hammer": hammer, "heart": heart,
                              "key": key, "ring": ring, "spoon": spoon, "star": star, "tree": tree}
CLASSES = tuple(sorted([*DRAWN, "horseshoe"]))


def class_of(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """The class (index into CLASSES) of each image index: i mod the number of classes."""
    return np.asarray(indices, dtype=np.int64) % len(CLASSES)


def _distance_px(seed: int, index: int, size: int) -> np.ndarray:
    """Signed distance in pixels (size, size) of image `index`: its class's field, roughened, turned and placed."""
    name = CLASSES[int(class_of([index])[0])]
    rng = np.random.default_rng([seed, index, SALT])
    if name == "horseshoe":  # the built-in shoes, opening up or down, placed by their own rule
        params = horseshoes.draw_params(int(rng.integers(2**31)), 0, "updown")
        return horseshoes.shoe_distance([params], size)[0][0]
    scale, angle = rng.uniform(0.6, 0.9), np.deg2rad(np.clip(rng.normal(0, 7), -15, 15))
    cx, cy = rng.uniform(-(0.97 - scale), 0.97 - scale, 2)
    coords = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    dx, dy = (coords[None, :] - cx) / scale, (coords[:, None] - cy) / scale
    u, v = np.cos(angle) * dx + np.sin(angle) * dy, -np.sin(angle) * dx + np.cos(angle) * dy
    field = DRAWN[name](u, v, rng)
    theta, phase = np.arctan2(v, u), rng.uniform(0, 2 * np.pi, 3)
    ripple = sum(np.sin(k * theta + phase[i]) / k for i, k in enumerate((3, 5, 7)))
    field = field + rng.uniform(-0.03, 0.02) + rng.uniform(0.0, 0.025) * ripple
    return field * scale * size / 2  # shape units -> pixels


def render_labelled(seed: int, indices: Sequence[int], size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Images `indices` of the shapes set `seed` as white silhouettes on black, uint8 (N, size, size, 1),
    and their classes (int64 indices into CLASSES)."""
    if not 16 <= size <= 256:
        raise ValueError(f"shape image size must be between 16 and 256, got {size}")
    indices = [int(i) for i in indices]
    images = np.zeros((len(indices), size, size, 1), dtype=np.uint8)
    for n, i in enumerate(indices):
        images[n, ..., 0] = np.round(np.clip(0.5 - _distance_px(seed, i, size), 0, 1) * 255)
    return images, class_of(indices)
