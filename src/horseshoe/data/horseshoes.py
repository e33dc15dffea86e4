"""The built-in dataset: procedural horseshoes, drawn from a seed, no download.

A shoe is built in its own frame (u right, v down, outer half-width 1) from signed distances
(negative inside):

    band   = outer superellipse  minus  inner superellipse shifted towards the heels
    shoe   = band cut at v = v_heel (square heels, or rounded with radius rho)
    extras = a small toe notch, uneven edges (low-frequency ripples of the outline)

Shifting the inner curve down makes the toe thicker than the heels; cutting below the outer
curve's widest point makes the branches converge, so the opening is narrower than the inside. The
inner curve always reaches past the cut, so the shoe is one open piece without enclosed holes.
The shoe is then scaled to fill 55-95% of the frame, rotated (open end down or up, a few degrees
either way; down, left, right or up likewise; or any angle) and placed, and every pixel's coverage
gives anti-aliased edges.

Rotation "four" is the labelled form: the class of a shoe is the direction its opening faces, one
of DIRECTIONS (sorted, as class folders are), drawn evenly.

Image i of seed s depends only on (s, i): its parameters come from numpy's PCG64 seeded with
(s, i), so any subset, order or batch size gives the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STYLES = ("silhouette", "rendered")
ROTATIONS = ("updown", "four", "full")
DIRECTIONS = ("down", "left", "right", "up")  # where the opening faces, by class index
# The rotation that turns the canonical shoe (open end down, at angle 0) to face each direction. The
# frame is rotated back by `angle` (u = cos dx + sin dy, v = -sin dx + cos dy, y pointing down), so
# the heels (+v) point along (-sin, cos): angle pi/2 opens to the left.
DIRECTION_ANGLES = {"down": 0.0, "left": np.pi / 2, "right": -np.pi / 2, "up": np.pi}


@dataclass(frozen=True)
class ShoeParams:
    """The drawn parameters of one shoe (canonical frame: outer half-width 1, v pointing to the heels)."""

    b: float  # outer half-height (aspect ratio b / 1)
    p_toe: float  # superellipse exponent above the centre: < 2 pointed, 2 round, > 2 squarish
    p_heel: float  # exponent below the centre
    a_in: float  # inner half-width
    b_in: float  # inner half-height
    c_in: float  # inner centre's shift towards the heels
    v_heel: float  # where the heels are cut
    heel_radius: float  # 0 for square heels
    notch: float  # toe-notch radius, 0 for none
    rough_amp: float  # amplitude of the edge ripples
    rough_phase: tuple[float, float, float]
    angle: float  # rotation in radians (0: open end down)
    scale: float  # canonical units -> frame units (frame is [-1, 1]^2)
    cx: float
    cy: float
    # 'rendered' style only
    metal: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    light: float


def _superellipse_width(v: np.ndarray | float, b: float, p: float) -> np.ndarray:
    """Half-width at height v of |u|^p + |v/b|^p = 1 (0 outside)."""
    return np.clip(1.0 - np.abs(np.asarray(v) / b) ** p, 0.0, None) ** (1.0 / p)


def draw_params(seed: int, index: int, rotation: str = "updown") -> ShoeParams:
    """Draw one shoe's parameters from PCG64 seeded with (seed, index), retrying until valid."""
    rng = np.random.default_rng([seed, index])
    while True:
        b = rng.uniform(1.0, 1.3)  # aspect: round to oval
        pointed = rng.random() < 0.25
        p_toe = rng.uniform(1.6, 1.85) if pointed else rng.uniform(1.95, 2.5)
        p_heel = rng.uniform(1.9, 2.6)
        side = rng.uniform(0.24, 0.4)  # band thickness at the sides
        toe = side * rng.uniform(1.05, 1.4)  # thicker at the toe
        c_in = rng.uniform(0.05, 0.25) * b
        a_in = 1.0 - side
        b_in = c_in + b - toe  # inner top sits `toe` below the outer top
        v_heel = rng.uniform(0.45, 0.8) * b  # lower cut: longer branches, more convergence
        opening = a_in * _superellipse_width(v_heel - c_in, b_in, p_heel)  # inner half-width at the cut
        heel = _superellipse_width(v_heel, b, p_heel) - opening
        # one open piece: the inner curve passes the cut, the heels keep some thickness, the opening shows
        if c_in + b_in > v_heel + 0.05 and 0.55 * side <= heel <= side and opening > 0.2:
            break
    heel_radius = 0.0 if rng.random() < 0.5 else rng.uniform(0.3, 0.5) * heel
    notch = rng.uniform(0.12, 0.22) * toe if rng.random() < 0.2 else 0.0
    rough_amp = rng.uniform(0.0, 0.05) * side if rng.random() < 0.5 else rng.uniform(0.05, 0.12) * side
    rough_phase = tuple(rng.uniform(0, 2 * np.pi, 3))
    if rotation == "full":
        angle = rng.uniform(-np.pi, np.pi)
    elif rotation == "four":
        angle = DIRECTION_ANGLES[DIRECTIONS[rng.integers(4)]] + np.deg2rad(rng.normal(0.0, 4.0))
    else:
        angle = (np.pi if rng.random() < 0.5 else 0.0) + np.deg2rad(rng.normal(0.0, 4.0))
    # Fill 55-95% of the frame with the rotated bounding box, then place it inside.
    fill = rng.uniform(0.55, 0.95)
    corners = np.array([[-1.0, -b], [1.0, -b], [-1.0, v_heel], [1.0, v_heel]])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = corners @ rot.T
    extent = xy.max(axis=0) - xy.min(axis=0)
    scale = 2.0 * fill / extent.max()
    mid = (xy.max(axis=0) + xy.min(axis=0)) / 2 * scale
    slack = np.maximum(2.0 * 0.97 - extent * scale, 0.0) / 2
    cx, cy = rng.uniform(-slack, slack) - mid
    grey = rng.uniform(0.55, 0.8)
    metal = tuple(np.clip(grey + rng.normal(0, 0.04, 3) + np.array([0.03, 0.0, -0.04]) * rng.random(), 0, 1))
    bg_a = tuple(rng.uniform(0.05, 0.45, 3))
    bg_b = bg_a if rng.random() < 0.5 else tuple(rng.uniform(0.05, 0.45, 3))
    return ShoeParams(
        b=b, p_toe=p_toe, p_heel=p_heel, a_in=a_in, b_in=b_in, c_in=c_in, v_heel=v_heel,
        heel_radius=heel_radius, notch=notch, rough_amp=rough_amp, rough_phase=rough_phase, angle=angle,
        scale=scale, cx=float(cx), cy=float(cy), metal=metal, background=(bg_a, bg_b), light=rng.uniform(-1, 1),
    )


def _stack(params: Sequence[ShoeParams], name: str) -> np.ndarray:
    return np.array([getattr(p, name) for p in params], dtype=np.float64)[:, None, None]


def _superellipse_distance(u, v, a, b, p_top, p_bottom):
    """First-order signed distance to |u/a|^p + |v/b|^p = 1, with p = p_top where v < 0."""
    p = np.where(v < 0, p_top, p_bottom)
    au, av = np.abs(u) / a + 1e-12, np.abs(v) / b + 1e-12
    g = au**p + av**p
    f = g ** (1 / p) - 1
    common = g ** (1 / p - 1)
    du, dv = common * au ** (p - 1) / a, common * av ** (p - 1) / b
    return f / np.sqrt(du * du + dv * dv)


def _round_intersection(d1, d2, r):
    """Intersection of two regions with the corner rounded by radius r (r = 0: plain max)."""
    return np.minimum(-r, np.maximum(d1, d2)) + np.sqrt(np.maximum(d1 + r, 0) ** 2 + np.maximum(d2 + r, 0) ** 2)


def shoe_distance(params: Sequence[ShoeParams], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance in pixels (N, size, size), negative inside, and pixel size in canonical units."""
    P = {name: _stack(params, name) for name in ("b", "p_toe", "p_heel", "a_in", "b_in", "c_in", "v_heel",
                                                 "heel_radius", "notch", "rough_amp", "angle", "scale", "cx", "cy")}
    phase = np.array([p.rough_phase for p in params])[:, :, None, None]
    coords = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    x, y = coords[None, None, :], coords[None, :, None]
    cos, sin = np.cos(P["angle"]), np.sin(P["angle"])
    dx, dy = (x - P["cx"]) / P["scale"], (y - P["cy"]) / P["scale"]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the frame back into the shoe's

    outer = _superellipse_distance(u, v, 1.0, P["b"], P["p_toe"], P["p_heel"])
    inner = _superellipse_distance(u, v - P["c_in"], P["a_in"], P["b_in"], P["p_toe"], P["p_heel"])
    theta = np.arctan2(v, u)
    ripple = sum(np.sin(k * theta + phase[:, i]) / k for i, k in enumerate((3, 5, 8)))
    band = np.maximum(outer, -inner) + P["rough_amp"] * ripple
    shoe = _round_intersection(band, v - P["v_heel"], P["heel_radius"])
    notch = np.hypot(u, v + P["b"]) - P["notch"]
    shoe = np.where(P["notch"] > 0, np.maximum(shoe, -notch), shoe)
    pixel = 2.0 / size / P["scale"]  # one pixel in canonical units
    return shoe / pixel, pixel


def _coverage(distance_px: np.ndarray) -> np.ndarray:
    """Fraction of each pixel inside the shape, from its centre's signed distance in pixels."""
    return np.clip(0.5 - distance_px, 0.0, 1.0)


def render_silhouettes(params: Sequence[ShoeParams], size: int) -> np.ndarray:
    """White shoes on black: uint8 (N, size, size)."""
    distance, _ = shoe_distance(params, size)
    return np.round(_coverage(distance) * 255).astype(np.uint8)


def render_metal(params: Sequence[ShoeParams], size: int) -> np.ndarray:
    """Shaded metal shoes with nail holes on a plain or gradient background: uint8 (N, size, size, 3)."""
    distance, _ = shoe_distance(params, size)
    alpha = _coverage(distance)
    # A bevelled height field from the distance inside the band; light from above, left or right.
    depth = np.clip(-distance / max(size / 24, 1.0), 0, 1)
    gy, gx = np.gradient(depth, axis=(1, 2))
    light = _stack(params, "light")
    shade = np.clip(0.75 + 1.6 * (-gy * 0.8 + gx * light * 0.6) + 0.15 * depth, 0.2, 1.25)
    metal = np.array([p.metal for p in params])[:, None, None, :]
    colour = np.clip(metal * shade[..., None], 0, 1)
    holes = _nail_holes(params, size)
    colour = colour * (1 - 0.75 * holes[..., None])
    t = np.linspace(0, 1, size)[None, :, None, None]
    bg_a = np.array([p.background[0] for p in params])[:, None, None, :]
    bg_b = np.array([p.background[1] for p in params])[:, None, None, :]
    background = bg_a * (1 - t) + bg_b * t
    image = background * (1 - alpha[..., None]) + colour * alpha[..., None]
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _nail_holes(params: Sequence[ShoeParams], size: int) -> np.ndarray:
    """Coverage (N, size, size) of three or four nail holes along the middle of each branch."""
    out = np.zeros((len(params), size, size))
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, coords)
    for n, p in enumerate(params):
        cos, sin = np.cos(p.angle), np.sin(p.angle)
        dx, dy = (x - p.cx) / p.scale, (y - p.cy) / p.scale
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        pixel = 2.0 / size / p.scale
        for vk in np.linspace(-0.45 * p.b, 0.85 * p.v_heel, 4):
            pk = p.p_toe if vk < 0 else p.p_heel
            w_out = _superellipse_width(vk, p.b, pk)
            w_in = p.a_in * _superellipse_width(vk - p.c_in, p.b_in, pk)
            radius = max(0.18 * (w_out - w_in), 0.6 * pixel)
            for side in (-1, 1):
                d = np.hypot(u - side * (w_out + w_in) / 2, (v - vk) * 0.7) - radius
                out[n] = np.maximum(out[n], _coverage(d / pixel))
    return out


def direction_of(angle: float) -> int:
    """The class (index into DIRECTIONS) of a shoe rotated by `angle`: the nearest quarter turn."""
    quarter = int(np.round(angle / (np.pi / 2))) % 4  # 0: down, 1: left, 2: up, 3: right
    return DIRECTIONS.index(("down", "left", "up", "right")[quarter])


def directions(seed: int, indices: Sequence[int], rotation: str = "four") -> np.ndarray:
    """The classes of shoes `indices` of set `seed` without drawing them (int64 indices into DIRECTIONS)."""
    return np.array([direction_of(draw_params(seed, int(i), rotation).angle) for i in indices], dtype=np.int64)


# Where a direction (dx, dy), y down, goes under each augmentation of data.transforms: a horizontal
# flip negates dx, a vertical one dy, and torch.rot90(k=1, dims=(H, W)) sends (x, y) to (y, W-1-x).
_VECTORS = {"down": (0, 1), "left": (-1, 0), "right": (1, 0), "up": (0, -1)}
_BY_VECTOR = {v: DIRECTIONS.index(name) for name, v in _VECTORS.items()}
HFLIP = np.array([_BY_VECTOR[(-dx, dy)] for dx, dy in map(_VECTORS.get, DIRECTIONS)])
VFLIP = np.array([_BY_VECTOR[(dx, -dy)] for dx, dy in map(_VECTORS.get, DIRECTIONS)])
TURN = np.array([_BY_VECTOR[(dy, -dx)] for dx, dy in map(_VECTORS.get, DIRECTIONS)])


def flipped_directions(labels: np.ndarray, hflip: np.ndarray, vflip: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Classes after flipping and turning the images as data.transforms.apply_augmentation does, in its order."""
    labels = np.where(hflip, HFLIP[labels], labels)
    labels = np.where(vflip, VFLIP[labels], labels)
    for k in range(3):  # the k-th of up to three quarter turns
        labels = np.where(turns > k, TURN[labels], labels)
    return labels


def render(seed: int, indices: Sequence[int], size: int = 32, style: str = "silhouette",
           rotation: str = "updown") -> np.ndarray:
    """Images `indices` of the horseshoe set `seed`: uint8 (N, size, size, 1) or (N, size, size, 3)."""
    return render_labelled(seed, indices, size, style, rotation)[0]


def render_labelled(seed: int, indices: Sequence[int], size: int = 32, style: str = "silhouette",
                    rotation: str = "updown") -> tuple[np.ndarray, np.ndarray]:
    """`render`'s images and each shoe's class: the direction its opening faces (int64 indices into DIRECTIONS)."""
    if style not in STYLES:
        raise ValueError(f"unknown horseshoe style {style!r}; choose one of {', '.join(STYLES)}")
    if rotation not in ROTATIONS:
        raise ValueError(f"unknown horseshoe rotation {rotation!r}; choose one of {', '.join(ROTATIONS)}")
    if not 16 <= size <= 256:
        raise ValueError(f"horseshoe image size must be between 16 and 256, got {size}")
    params = [draw_params(seed, int(i), rotation) for i in indices]
    labels = np.array([direction_of(p.angle) for p in params], dtype=np.int64)
    if style == "silhouette":
        return render_silhouettes(params, size)[..., None], labels
    return render_metal(params, size), labels
