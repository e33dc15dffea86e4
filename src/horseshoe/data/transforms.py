"""Image preparation: PIL mode conversion, fitting to the training size, and batch augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageColor, ImageOps

FITS = ("pad", "crop", "stretch")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def parse_colour(colour: str) -> tuple[int, int, int]:
    """'black', 'white', '#rrggbb' or any PIL colour name -> RGB."""
    try:
        return ImageColor.getrgb(colour)[:3]
    except ValueError:
        raise ValueError(f"unknown colour {colour!r}; use a name like 'black' or a hex code like '#202020'") from None


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale to 8-bit by scaling, not clipping (PIL's convert('L') clips at 255)."""
    array = np.asarray(image)
    if image.mode == "F":
        top = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        return Image.fromarray(np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    top = 65535.0 if int(array.max(initial=0)) > 255 or image.mode.startswith("I;16") else 255.0
    return Image.fromarray(np.clip(array.astype(np.float64) / top * 255.0, 0, 255).round().astype(np.uint8), "L")


def convert_mode(image: Image.Image, channels: int, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL image -> 'L', 'RGB' or 'RGBA', EXIF orientation applied, alpha composited on background.

    Palette images keep their transparency; LA/RGBA/PA are composited on `background` unless RGBA is
    asked for; 16-bit and float images are rescaled; CMYK, YCbCr, LAB and HSV go through RGB.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La"):
        image = image.convert("RGBA")
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV, RGBX, RGBa ...
    target = MODES[channels]
    if image.mode == "RGBA" and target != "RGBA":
        flat = Image.new("RGB", image.size, background)
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    return image.convert(target)


def border_colour(image: Image.Image) -> tuple[int, ...]:
    """The median colour of the outermost pixels: what 'pad' extends the image with."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


def fit(image: Image.Image, size: tuple[int, int], mode: str) -> Image.Image:
    """Resize to (height, width): 'pad' keeps the whole image, 'crop' centre-crops, 'stretch' distorts."""
    height, width = size
    if mode == "stretch":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == "crop":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == "pad":
        fill = border_colour(image)
        fitted = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = Image.new(image.mode, (width, height), fill if len(fill) > 1 else fill[0])
        canvas.paste(fitted, ((width - fitted.width) // 2, (height - fitted.height) // 2))
        return canvas
    raise ValueError(f"unknown fit {mode!r}; choose one of {', '.join(FITS)}")


def to_model_range(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    batch = torch.as_tensor(batch)
    return batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), clipped."""
    x = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class Augmentation:
    """Per-image augmentation decisions: horizontal flip, vertical flip, quarter turns (0-3)."""

    hflip: torch.Tensor  # (N,) bool
    vflip: torch.Tensor  # (N,) bool
    turns: torch.Tensor  # (N,) int64


def augmentation_from_bits(bits: np.ndarray, hflip: bool, vflip: bool, rot90: bool) -> Augmentation:
    """Decisions from 64 random bits per image: bit 0 flips horizontally, bit 1 vertically, bits 2-3 turn."""
    bits = bits.astype(np.uint64)
    h = torch.from_numpy((bits & np.uint64(1)).astype(bool)) if hflip else torch.zeros(len(bits), dtype=torch.bool)
    v = torch.from_numpy((bits >> np.uint64(1) & np.uint64(1)).astype(bool)) if vflip \
        else torch.zeros(len(bits), dtype=torch.bool)
    turns = torch.from_numpy((bits >> np.uint64(2) & np.uint64(3)).astype(np.int64)) if rot90 \
        else torch.zeros(len(bits), dtype=torch.int64)
    return Augmentation(h, v, turns)


def apply_augmentation(batch: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Flip and turn each image of a (N, C, H, W) batch as decided."""
    batch = torch.where(aug.hflip[:, None, None, None], batch.flip(-1), batch)
    batch = torch.where(aug.vflip[:, None, None, None], batch.flip(-2), batch)
    if aug.turns.any():
        if batch.shape[-1] != batch.shape[-2]:
            raise ValueError(f"rot90 augmentation needs square images, got {batch.shape[-2]}x{batch.shape[-1]}")
        batch = torch.stack([torch.rot90(img, int(k), dims=(-2, -1)) for img, k in zip(batch, aug.turns, strict=True)])
    return batch
