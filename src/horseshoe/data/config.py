"""The data section: which images to train on, at what size, with which flips and augmentation, with which
classes."""

from __future__ import annotations

from dataclasses import dataclass

from horseshoe.data import horseshoes
from horseshoe.data.augment import AUGMENTATIONS, BORDERS, DEFAULT_AUGMENT, DEFAULT_BORDER
from horseshoe.data.transforms import FITS, parse_colour

LABELS = ("auto", "none")
BUILTINS = ("horseshoes", "shapes")  # the built-in sets, used when data.path is None


@dataclass(frozen=True)
class DataConfig:
    """The data section of the config.

    path: a folder of images, or None for the built-in set named by `builtin`: 'horseshoes' (data.horseshoes)
    or 'shapes', sixteen classes of everyday silhouettes (data.shapes; image i is of class i mod 16, so
    count=320 is 20 images a class, like a small folder). image_size: side of square
    images, or [height, width]. count: how many built-in images (None: an endless stream of new ones).
    labels: 'auto' reads classes from the data (a folder's first-level subfolders when there are two
    or more; the built-in horseshoes with rotation 'four', by the direction they open to), 'none'
    trains without classes. classes: the class names found, filled in when training starts and saved
    with the run (set it only to pin them). balance_classes: draw every class equally often (None, auto: when
    the largest class has at least twice the smallest's images; recipe.with_balance).

    hflip, vflip, rot90: flips and quarter turns the model is not told of, so they show in its
    samples (fit for data that looks the same mirrored). augment_p: non-leaking augmentation
    (horseshoe.data.augment; EDM, Karras et al. 2022): each transform named in `augment` (by default
    xflip, translate, scale and aniso, which keep the image's way up; also yflip, rotate90, rotate) is
    applied to each image with probability augment_p and the network is told which, so samples keep
    the data's orientation. None (auto): 0.25 for a folder of fewer than 100 images, else 0;
    training resolves it and saves the number with the run. augment_border: what a shift, shrink or turn
    brings into the frame: 'replicate' repeats the edge pixel, so a plain background stays plain (the
    default: silhouettes, sprites, logos, icons); 'reflect' mirrors the border (EDM's and ADA's choice,
    for photographs and textures), which puts bits of a shape near the edge beside it as stray pieces.
    """

    path: str | None = None
    builtin: str = "horseshoes"
    image_size: int | tuple[int, int] = 32
    channels: int = 1
    fit: str = "pad"
    background: str = "black"
    hflip: bool = True
    vflip: bool = False
    rot90: bool = False
    augment_p: float | None = None
    augment: tuple[str, ...] = DEFAULT_AUGMENT
    augment_border: str = DEFAULT_BORDER
    skip_bad: bool = False
    memory_budget_mb: int = 2048
    count: int | None = 10_000
    style: str = "silhouette"
    rotation: str = "updown"
    seed: int = 0
    labels: str = "auto"
    classes: tuple[str, ...] = ()
    balance_classes: bool | None = None

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, (list, tuple)):
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"data.image_size must be an integer or [height, width], got {list(size)}")
            object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        elif size < 1:
            raise ValueError(f"data.image_size must be positive, got {size}")
        if self.channels not in (1, 3, 4):
            raise ValueError(f"data.channels must be 1, 3 or 4, got {self.channels}")
        if self.fit not in FITS:
            raise ValueError(f"data.fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        parse_colour(self.background)
        if self.count is not None and self.count < 1:
            raise ValueError(f"data.count must be positive (or omitted for an endless stream), got {self.count}")
        if self.style not in horseshoes.STYLES:
            raise ValueError(f"data.style must be one of {', '.join(horseshoes.STYLES)}, got {self.style!r}")
        if self.rotation not in horseshoes.ROTATIONS:
            raise ValueError(f"data.rotation must be one of {', '.join(horseshoes.ROTATIONS)}, got {self.rotation!r}")
        if self.augment_p is not None and not 0 <= self.augment_p < 1:
            raise ValueError(f"data.augment_p must be in [0, 1) (none: auto), got {self.augment_p}")
        unknown = [name for name in self.augment if name not in AUGMENTATIONS]
        if unknown or len(set(self.augment)) != len(self.augment):
            raise ValueError(f"data.augment must list distinct names from {', '.join(AUGMENTATIONS)}, "
                             f"got {list(self.augment)}")
        if self.augment_border not in BORDERS:
            raise ValueError(f"data.augment_border must be one of {', '.join(BORDERS)}, got {self.augment_border!r}")
        if self.labels not in LABELS:
            raise ValueError(f"data.labels must be one of {', '.join(LABELS)}, got {self.labels!r}")
        if len(set(self.classes)) != len(self.classes) or "" in self.classes:
            raise ValueError(f"data.classes must be distinct non-empty names, got {list(self.classes)}")
        if self.builtin not in BUILTINS:
            raise ValueError(f"data.builtin must be one of {', '.join(BUILTINS)}, got {self.builtin!r}")
        if self.path is None and self.height != self.width:
            raise ValueError(f"built-in {self.builtin} are square; got data.image_size={list(self.image_size)}")
        if self.is_builtin_shapes and self.style != "silhouette":
            raise ValueError(f"the built-in shapes come as silhouettes only; got data.style={self.style!r}")

    @property
    def height(self) -> int:
        return self.image_size[0] if isinstance(self.image_size, tuple) else self.image_size

    @property
    def width(self) -> int:
        return self.image_size[1] if isinstance(self.image_size, tuple) else self.image_size

    @property
    def is_builtin_silhouette(self) -> bool:
        """The built-in one-channel horseshoe silhouettes: the data metrics.shape can check samples against."""
        return self.path is None and self.builtin == "horseshoes" and self.style == "silhouette" and self.channels == 1

    @property
    def is_builtin_shapes(self) -> bool:
        """The built-in many-class silhouettes (data.shapes)."""
        return self.path is None and self.builtin == "shapes"

    @property
    def has_directions(self) -> bool:
        """The built-in horseshoes labelled by the direction they open to (rotation 'four')."""
        return self.path is None and self.builtin == "horseshoes" and self.rotation == "four" and self.labels == "auto"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images as the network sees them."""
        return self.channels, self.height, self.width
