"""Any folder of images: found recursively, converted, fitted, kept in memory when they fit."""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from horseshoe.data.transforms import convert_mode, fit

EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
log = logging.getLogger(__name__)


def find_images(folder: str | Path) -> list[Path]:
    """Image files under folder, recursively, sorted; a one-line error if there are none."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {str(root)!r} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"no image files in {str(root)!r} (looked for {', '.join(EXTENSIONS)}, recursively)")
    return files


def load_image(path: Path, size: tuple[int, int], channels: int, fit_mode: str,
               background: tuple[int, int, int]) -> tuple[np.ndarray, bool]:
    """One file -> uint8 (H, W, C) and whether it had to be upscaled; errors name the file."""
    try:
        with warnings.catch_warnings():
            # Over PIL's pixel limit is a decompression bomb or an absurd training image: an error, like
            # over twice the limit, rather than a warning printed with a source line.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                converted = convert_mode(image, channels, background)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        found = re.search(r"\((\d+) pixels\)", str(error))  # PIL names the pixel count only in its message
        pixels = f"{int(found.group(1))} pixels" if found else str(error)
        raise ValueError(f"cannot read image {str(path)!r}: too large ({pixels}; PIL's limit is "
                         f"{Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from None
    upscaled = converted.height < size[0] or converted.width < size[1]
    array = np.asarray(fit(converted, size, fit_mode))
    return (array[..., None] if array.ndim == 2 else array), upscaled


@dataclass
class FolderReport:
    """What loading a folder found: counts for the user, and which files were skipped."""

    files: int = 0
    upscaled: int = 0
    skipped: list[str] = field(default_factory=list)


class ImageFolder:
    """The images of a folder at one size and channel count, as uint8 (H, W, C) arrays.

    Decoded once and kept in memory when N * H * W * C bytes fit in memory_budget; otherwise each
    image is read again when asked for.
    """

    def __init__(self, folder: str | Path, size: tuple[int, int], channels: int, fit_mode: str = "pad",
                 background: tuple[int, int, int] = (0, 0, 0), skip_bad: bool = False,
                 memory_budget: int = 2 * 2**30) -> None:
        self.size, self.channels, self.fit_mode, self.background = size, channels, fit_mode, background
        self.report = FolderReport()
        files = find_images(folder)
        in_memory = len(files) * size[0] * size[1] * channels <= memory_budget
        good: list[Path] = []
        arrays: list[np.ndarray] = []
        for path in files:  # decode every file once: bad files are found now, not mid-training
            try:
                array, upscaled = load_image(path, size, channels, fit_mode, background)
            except ValueError:
                if not skip_bad:
                    raise
                self.report.skipped.append(str(path))
                continue
            good.append(path)
            self.report.upscaled += upscaled
            if in_memory:
                arrays.append(array)
        if not good:
            raise ValueError(f"no readable images in {str(folder)!r}: all {len(files)} files failed to load")
        self.files = good
        self.report.files = len(good)
        self.images = np.stack(arrays) if in_memory else None
        if self.report.skipped:
            log.warning("skipped %d unreadable files: %s", len(self.report.skipped), ", ".join(self.report.skipped))
        if self.report.upscaled:
            warnings.warn(f"{self.report.upscaled} of {len(good)} images in {str(folder)!r} are smaller than "
                          f"{size[0]}x{size[1]} and were upscaled", stacklevel=2)

    @property
    def endless(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.files)

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) for the given indices."""
        if self.images is not None:
            return self.images[indices]
        return np.stack([load_image(self.files[i], self.size, self.channels, self.fit_mode,
                                    self.background)[0] for i in indices])
