"""Any folder of images: found recursively, converted, fitted, kept in memory when they fit.

Classes are read as torchvision's ImageFolder reads them: each first-level subfolder is a class, its
name the class name, sorted, and every image under it (at any depth) belongs to it. horseshoe does
so when there are two or more such folders (hidden ones, '.name', are not classes) and
data.labels is 'auto'; images beside the class folders, or a class folder without images, are errors.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from horseshoe.data.transforms import Augmentation, convert_mode, fit

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


def find_classes(folder: str | Path) -> tuple[tuple[str, ...], list[Path], np.ndarray | None]:
    """(class names, image files, labels): the first-level subfolders as classes when there are two or more,
    else no classes, every image and labels None."""
    root, files = Path(folder), find_images(folder)
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        return (), files, None
    parts = [f.relative_to(root).parts for f in files]
    top = [f.name for f, part in zip(files, parts, strict=True) if len(part) == 1]
    if top:
        shown = ", ".join(top[:3]) + (", ..." if len(top) > 3 else "")
        raise ValueError(f"{len(top)} images sit at the top level of {str(root)!r} ({shown}) beside the class folders "
                         f"{', '.join(classes)}: move them into a class folder, or --set data.labels=none to train "
                         f"on all {len(files)} images without classes")
    index = {name: i for i, name in enumerate(classes)}
    labelled = [(f, index[part[0]]) for f, part in zip(files, parts, strict=True) if part[0] in index]
    counts = np.bincount([label for _, label in labelled], minlength=len(classes))
    for name, count in zip(classes, counts, strict=True):
        if not count:
            raise ValueError(f"class folder {str(root / name)!r} has no images (looked for {', '.join(EXTENSIONS)}); "
                             f"remove it, or --set data.labels=none to train without classes")
    return classes, [f for f, _ in labelled], np.array([label for _, label in labelled], dtype=np.int64)


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
    per_class: dict[str, int] = field(default_factory=dict)  # images per class (empty without classes)


class ImageFolder:
    """The images of a folder at one size and channel count, as uint8 (H, W, C) arrays.

    Decoded once and kept in memory when N * H * W * C bytes fit in memory_budget; otherwise each
    image is read again when asked for. With labels 'auto' its subfolders may be classes (find_classes).
    """

    def __init__(self, folder: str | Path, size: tuple[int, int], channels: int, fit_mode: str = "pad",
                 background: tuple[int, int, int] = (0, 0, 0), skip_bad: bool = False,
                 memory_budget: int = 2 * 2**30, labels: str = "auto") -> None:
        self.size, self.channels, self.fit_mode, self.background = size, channels, fit_mode, background
        self.report = FolderReport()
        if labels == "auto":
            self.classes, files, found_labels = find_classes(folder)
        else:
            self.classes, files, found_labels = (), find_images(folder), None
        in_memory = len(files) * size[0] * size[1] * channels <= memory_budget
        good: list[Path] = []
        kept: list[int] = []
        arrays: list[np.ndarray] = []
        for i, path in enumerate(files):  # decode every file once: bad files are found now, not mid-training
            try:
                array, upscaled = load_image(path, size, channels, fit_mode, background)
            except ValueError:
                if not skip_bad:
                    raise
                self.report.skipped.append(str(path))
                continue
            good.append(path)
            kept.append(i)
            self.report.upscaled += upscaled
            if in_memory:
                arrays.append(array)
        if not good:
            raise ValueError(f"no readable images in {str(folder)!r}: all {len(files)} files failed to load")
        self.files = good
        self.labels = found_labels[kept] if found_labels is not None else None
        self.report.files = len(good)
        if self.labels is not None:
            counts = np.bincount(self.labels, minlength=len(self.classes))
            self.report.per_class = {name: int(n) for name, n in zip(self.classes, counts, strict=True)}
            lost = [name for name, n in self.report.per_class.items() if not n]
            if lost:
                raise ValueError(f"no readable images in class folder {str(Path(folder) / lost[0])!r}: every file "
                                 f"in it failed to load")
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

    def get_labels(self, indices: np.ndarray) -> np.ndarray:
        """Class indices (int64) of the given images; a flip or turn never changes a folder's class."""
        if self.labels is None:
            raise TypeError("this folder was read without classes")
        return self.labels[indices]

    def augmented_labels(self, labels: np.ndarray, augmentation: Augmentation) -> np.ndarray:
        return labels

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) for the given indices."""
        if self.images is not None:
            return self.images[indices]
        return np.stack([load_image(self.files[i], self.size, self.channels, self.fit_mode,
                                    self.background)[0] for i in indices])
