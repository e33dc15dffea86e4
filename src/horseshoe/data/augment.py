"""Non-leaking augmentation (Karras et al. 2022, EDM, Appendix C.4; the transforms of ADA, Karras et al. 2020).

Each enabled geometric transform is applied to each training image independently with probability
p, and the network is told its parameters as a small vector (`AugmentParams.vector`, AUGMENT_DIM
numbers, zero for "not applied"). Sampling passes the zero vector, so the model draws images as they
are, not as their augmentations: the transforms widen what a small set teaches without leaking into
the samples, even a transform the data never shows (a turned shoe).

The random numbers come in as uniforms per image (the loader derives them from the image's stream
position, so a resume and any number of processes draw the same ones); the transforms then run on
the training device on the whole batch: exact flips, quarter turns and integer shifts, and one
bilinear resampling (torch grid_sample) for the continuous ones, only for the images that have one.
What a move brings in from outside the frame is the border mirrored ('reflect', as EDM and ADA do:
right for photographs and textures) or the edge pixel repeated ('replicate': a plain background stays
plain, where a mirror shows bits of a shape that comes near the edge as stray pieces beside it).

Coordinates: x to the right, y down, about the image centre; angles turn counter-clockwise as the
image is shown, as torch.rot90 on the last two dimensions does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTATIONS = ("xflip", "yflip", "rotate90", "translate", "scale", "aniso", "rotate")
# The default: the four that keep the data's way up. With all seven, 5-7% of the samples of 20 upright
# silhouettes came out turned (docs/measurements/tiny-data.md).
DEFAULT_AUGMENT = ("xflip", "translate", "scale", "aniso")
AUGMENT_DIM = 11  # the vector's length, whichever transforms are enabled (VECTOR_LAYOUT)
UNIFORMS = 16  # random numbers per image (draw_params says which is which)
# What fills the frame where a move uncovers it (torch.nn.functional.pad's names), and grid_sample's name for each
_GRID_PADDING = {"reflect": "reflection", "replicate": "border"}
BORDERS = tuple(_GRID_PADDING)
# 20 silhouettes: 98-99% pass the shape check where the mirror gave 89% (docs/measurements/tiny-data.md)
DEFAULT_BORDER = "replicate"
TRANSLATE_MAX = 0.125  # integer shifts up to this fraction of the width and height (EDM's translate)
SCALE_STD = 0.2  # log2 of the isotropic scale ~ N(0, SCALE_STD^2) (EDM's scale_std)
ANISO_STD = 0.2  # log2 of the stretch along a random axis ~ N(0, ANISO_STD^2) (EDM's aniso_std)
VECTOR_LAYOUT = ("xflip", "yflip", "rotate90 cos-1", "rotate90 sin", "translate x/W", "translate y/H",
                 "log2 scale", "rotate cos-1", "rotate sin", "aniso a cos 2phi", "aniso a sin 2phi")
# Quarter turns k = 0..3 as cos(k pi/2) - 1 and sin(k pi/2), exactly.
_TURN_COS = torch.tensor([0.0, -1.0, -2.0, -1.0])
_TURN_SIN = torch.tensor([0.0, 1.0, 0.0, -1.0])


@dataclass(frozen=True)
class AugmentParams:
    """Per image (N rows, on the CPU): what was applied and with which parameters; identity where not applied.

    shift is (dx, dy) in pixels (content moves right and down); log2_scale enlarges the content by
    2^log2_scale; aniso stretches it by 2^aniso along the axis at aniso_angle (radians, [0, pi)) and
    shrinks it by as much across; angle turns it (radians). applied (N, 7) follows AUGMENTATIONS.
    """

    xflip: torch.Tensor  # (N,) bool
    yflip: torch.Tensor  # (N,) bool
    turns: torch.Tensor  # (N,) int64, 0..3
    shift: torch.Tensor  # (N, 2) int64
    log2_scale: torch.Tensor  # (N,) float64
    aniso: torch.Tensor  # (N,) float64
    aniso_angle: torch.Tensor  # (N,) float64
    angle: torch.Tensor  # (N,) float64
    applied: torch.Tensor  # (N, 7) bool

    def __len__(self) -> int:
        return len(self.turns)

    def vector(self, height: int, width: int) -> torch.Tensor:
        """(N, AUGMENT_DIM) float32: what the network is told (VECTOR_LAYOUT); all zero for an unchanged image."""
        a, phi = self.aniso, self.aniso_angle
        columns = [self.xflip.double(), self.yflip.double(), _TURN_COS[self.turns].double(),
                   _TURN_SIN[self.turns].double(), self.shift[:, 0] / width, self.shift[:, 1] / height,
                   self.log2_scale, torch.cos(self.angle) - 1.0, torch.sin(self.angle),
                   a * torch.cos(2 * phi), a * torch.sin(2 * phi)]
        return torch.stack(columns, dim=1).float()

    def select(self, rows: torch.Tensor) -> AugmentParams:
        """The parameters of these rows (a bool mask or indices)."""
        return AugmentParams(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def identity(count: int) -> AugmentParams:
    """Parameters that change nothing, for `count` images (the start of hand-made parameters)."""
    zeros = torch.zeros(count, dtype=torch.float64)
    return AugmentParams(torch.zeros(count, dtype=torch.bool), torch.zeros(count, dtype=torch.bool),
                         torch.zeros(count, dtype=torch.int64), torch.zeros(count, 2, dtype=torch.int64),
                         zeros, zeros, zeros, zeros, torch.zeros(count, len(AUGMENTATIONS), dtype=torch.bool))


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """N(0, 1) from two U[0, 1) by Box-Muller (1 - u1 is in (0, 1], so the log is finite)."""
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * math.pi * u2)


def draw_params(uniforms: np.ndarray, p: float, enabled: tuple[str, ...], height: int, width: int) -> AugmentParams:
    """Parameters from (N, UNIFORMS) uniforms in [0, 1): columns 0-6 decide each transform (applied when
    below p and enabled), 7 the quarter turns, 8-9 the shift, 10-15 scale, stretch and angle.

    Every column is read whatever is enabled, so turning one transform off leaves the others' draws
    as they were. An applied flip flips and an applied quarter turn turns (by 1-3 quarters; on a
    non-square image by two, which keeps its shape); shifts are uniform integers up to TRANSLATE_MAX
    of the size, scales log-normal, the stretch axis uniform, the rotation uniform on the full circle.
    """
    u = np.asarray(uniforms, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != UNIFORMS:
        raise ValueError(f"augmentation needs (N, {UNIFORMS}) uniforms, got {u.shape}")
    on = np.array([name in enabled for name in AUGMENTATIONS])
    applied = (u[:, :len(AUGMENTATIONS)] < p) & on
    xflip, yflip, turn, move, scale, aniso, rotate = applied.T
    turns = np.minimum(1 + np.floor(3 * u[:, 7]), 3).astype(np.int64) if height == width else np.full(len(u), 2)
    reach = np.array([round(TRANSLATE_MAX * width), round(TRANSLATE_MAX * height)])
    shift = np.floor(u[:, 8:10] * (2 * reach + 1)).astype(np.int64) - reach
    t = torch.from_numpy
    return AugmentParams(
        xflip=t(xflip), yflip=t(yflip), turns=t(np.where(turn, turns, 0)),
        shift=t(np.where(move[:, None], shift, 0)),
        log2_scale=t(np.where(scale, SCALE_STD * _normal(u[:, 10], u[:, 11]), 0.0)),
        aniso=t(np.where(aniso, ANISO_STD * _normal(u[:, 12], u[:, 13]), 0.0)),
        aniso_angle=t(np.where(aniso, math.pi * u[:, 14], 0.0)),
        angle=t(np.where(rotate, 2 * math.pi * u[:, 15] - math.pi, 0.0)),
        applied=t(applied))


def _rows(mask: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """Indices (on device) where a CPU mask is set, or None when it is nowhere set: decided on the host."""
    return mask.nonzero().squeeze(1).to(device) if bool(mask.any()) else None


def _inside(index: torch.Tensor, size: int, border: str) -> torch.Tensor:
    """Indices outside 0..size-1 brought back in: 'reflect' mirrors them, the border pixel repeated
    (...b a | a b c | c b...), as grid_sample's 'reflection' does with align_corners=False; 'replicate'
    clamps them to the nearest edge (...a a | a b c | c c...), as its 'border' does."""
    if border == "replicate":
        return index.clamp(0, size - 1)
    index = index.remainder(2 * size)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def shift_images(images: torch.Tensor, shift: torch.Tensor, border: str = DEFAULT_BORDER) -> torch.Tensor:
    """Move each image of (N, C, H, W) by its integer (dx, dy) (N, 2), the gap filled as `border` says."""
    n, c, h, w = images.shape
    shift = shift.to(images.device)
    rows = _inside(torch.arange(h, device=images.device) - shift[:, 1:2], h, border)  # (N, H): source row of each
    cols = _inside(torch.arange(w, device=images.device) - shift[:, 0:1], w, border)
    out = images.gather(2, rows[:, None, :, None].expand(n, c, h, w))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def content_matrix(params: AugmentParams) -> torch.Tensor:
    """(N, 2, 2) float64: where the continuous transforms move a point (x right, y down, pixels from the centre):
    the rotation after the stretch after the isotropic scale."""
    def turn(angle: torch.Tensor) -> torch.Tensor:  # counter-clockwise as shown, with y pointing down
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)

    scale = torch.exp2(params.log2_scale)[:, None, None] * torch.eye(2, dtype=torch.float64)
    stretch = torch.diag_embed(torch.stack([torch.exp2(params.aniso), torch.exp2(-params.aniso)], -1))
    axis = turn(-params.aniso_angle)  # columns: the stretch axis and the one across it
    return turn(params.angle) @ axis @ stretch @ axis.transpose(1, 2) @ scale


def warp_images(images: torch.Tensor, matrix: torch.Tensor, border: str = DEFAULT_BORDER) -> torch.Tensor:
    """Each image of (N, C, H, W) with its content moved by its (N, 2, 2) pixel matrix about the centre,
    bilinear, what comes in from outside the frame filled as `border` says.

    grid_sample's coordinates run from -1 to 1 across each side, so a pixel offset p is D n with
    D = diag(W/2, H/2); the output at n reads the input at D^-1 M^-1 D n.
    """
    n, _, h, w = images.shape
    d = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    theta = torch.linalg.inv(matrix) * d[None, None, :] / d[None, :, None]  # D^-1 M^-1 D, element-wise
    theta = torch.cat([theta, torch.zeros(n, 2, 1, dtype=torch.float64)], dim=2)
    grid = F.affine_grid(theta.to(images.device, torch.float32), [n, 1, h, w], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode=_GRID_PADDING[border],
                         align_corners=False)


def augment_images(images: torch.Tensor, params: AugmentParams, border: str = DEFAULT_BORDER) -> torch.Tensor:
    """The batch (N, C, H, W) with each image transformed as params say: x-flip, y-flip, quarter turns,
    shift, then the continuous transforms, what a move uncovers filled as `border` (BORDERS) says. Only
    the images a transform applies to are touched."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    out, device = images, images.device
    steps = [(params.xflip, lambda x, _: x.flip(-1)), (params.yflip, lambda x, _: x.flip(-2))]
    steps += [(params.turns == k, lambda x, _, k=k: torch.rot90(x, k, dims=(-2, -1))) for k in (1, 2, 3)]
    steps.append((params.shift.ne(0).any(1), lambda x, rows: shift_images(x, params.shift[rows], border)))
    continuous = params.applied[:, 4:].any(1)
    steps.append((continuous, lambda x, rows: warp_images(x, content_matrix(params.select(rows)), border)))
    for mask, transform in steps:
        rows = _rows(mask, device)
        if rows is None:
            continue
        if out is images:  # the caller's batch is left as it was
            out = images.clone()
        out.index_copy_(0, rows, transform(out.index_select(0, rows), mask.nonzero().squeeze(1)))
    return out
