"""Images in requests and answers: decoded in memory under byte and pixel limits, answered as PNG.

A request carries images as data URLs (base64) in its JSON, never as paths: no request names a file
on the disk. Only a few formats are parsed at all (less decoder surface), and the pixel count is read
from the header and checked before any pixel is decoded, so a small file that claims a huge size (a
decompression bomb) is refused without being unpacked.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from horseshoe.data import DataConfig
from horseshoe.data.transforms import convert_mode, fit, parse_colour, to_model_range, to_uint8
from horseshoe.viz.grid import display_scale, to_pil

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")  # what a browser makes or a person uploads
DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: bytes and pixels of an upload, images per job, jobs waiting."""

    upload_bytes: int = 8 * 2**20
    pixels: int = 4096 * 4096  # 16.7 MP: a phone photo, not a bomb (PIL's own warning starts at 89 MP)
    count: int = 64
    resample: int = 10
    queued: int = 16
    kept: int = 64  # finished jobs whose results can still be fetched

    @property
    def body_bytes(self) -> int:
        """The largest request body: two uploads (inpaint's image and mask) in base64, and the JSON around them."""
        return 3 * self.upload_bytes + 65536


class RequestError(ValueError):
    """A request the server refuses: its message goes back to the page, with an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_image(text: object, field: str, limits: Limits) -> Image.Image:
    """A data URL (or bare base64) -> a decoded PIL image, upright (EXIF orientation applied)."""
    if not isinstance(text, str) or not text:
        raise RequestError(f"{field}: expected an image as a data URL (data:image/png;base64,...)")
    text = DATA_URL.sub("", text, count=1)
    if len(text) * 3 // 4 > limits.upload_bytes:  # refused before decoding: base64 is 4 characters per 3 bytes
        raise RequestError(f"{field}: the upload is {len(text) * 3 // 4:,} bytes, over the limit of "
                           f"{limits.upload_bytes:,}", 413)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field}: not valid base64") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=FORMATS)
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > limits.pixels:
                raise RequestError(f"{field}: the image is {width}x{height} = {width * height:,} pixels, over the "
                                   f"limit of {limits.pixels:,} (refused undecoded: a decompression bomb?)", 413)
            image.load()
            return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RequestError(f"{field}: too many pixels ({error})", 413) from None
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(f"{field}: not an image of a kind this server reads ({', '.join(FORMATS)})") from None
    except (OSError, SyntaxError, ValueError) as error:  # a truncated or broken file of a known kind
        raise RequestError(f"{field}: a broken image: {error}") from None


def fitted_image(image: Image.Image, data: DataConfig) -> torch.Tensor:
    """An upload converted and fitted as the run's training images were: (1, C, H, W) in [-1, 1]."""
    array = _fitted(convert_mode(image, data.channels, parse_colour(data.background)), data)
    return to_model_range(array[None].copy())  # PIL arrays are read-only


def fitted_mask(mask: Image.Image, image: Image.Image, data: DataConfig) -> torch.Tensor:
    """A brushed mask (white = generate) of the image's size, fitted like it and cut at half grey: (1, 1, H, W)."""
    if mask.size != image.size:
        raise RequestError(f"mask: {mask.width}x{mask.height} pixels but the image is {image.width}x{image.height}: "
                           "brush the mask at the image's size")
    bits = torch.from_numpy(_fitted(convert_mode(mask, 1, (0, 0, 0)), data)[..., 0] >= 128).float()[None, None]
    if not bits.any():
        raise RequestError(f"mask: no pixel is marked to fill at the run's {data.height}x{data.width} "
                           "(brush over the part to replace)")
    return bits


def _fitted(image: Image.Image, data: DataConfig) -> np.ndarray:
    array = np.asarray(fit(image, (data.height, data.width), data.fit))
    return array[..., None] if array.ndim == 2 else array  # (H, W, C)


def png_urls(images: torch.Tensor) -> list[str]:
    """Images (N, C, H, W) in [-1, 1] -> one PNG data URL each, enlarged with sharp pixels for display."""
    arrays = to_uint8(images)
    scale = display_scale(arrays.shape[1])
    urls = []
    for array in arrays:
        buffer = io.BytesIO()
        to_pil(array, scale).save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return urls
