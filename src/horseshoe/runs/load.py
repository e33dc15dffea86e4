"""Open a trained run: rebuild the network from the config saved with a checkpoint, load its weights.

A LoadedRun samples (generate, records) and edits real images (inpaint, edit, invert), the images
and masks fitted like its training data (see horseshoe.sampling.edit for the maths).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from horseshoe import config as config_module
from horseshoe.config import Config
from horseshoe.data import DataConfig, load_like_training
from horseshoe.data.folder import load_image
from horseshoe.data.transforms import to_model_range
from horseshoe.diffusion import Denoiser
from horseshoe.models import UNet
from horseshoe.runtime import autocast, pick_device, resolve_precision, setup_device
from horseshoe.sampling import SampleConfig, StepRecord, generate, get_sampler, guided, initial_noise, iterate
from horseshoe.sampling.edit import MASKS, builtin_mask, repaint, round_trip, sdedit
from horseshoe.training import checkpoint, posthoc_ema

WEIGHTS = ("ema", "model")
# A class for every image, or one per image (names or indices); None: no class.
Labels = str | int | Sequence[str | int] | torch.Tensor | None
ImageInput = str | Path | torch.Tensor  # a file, or images (N, C, H, W) in [-1, 1] already at the run's shape


@dataclass(frozen=True)
class Inversion:
    """A DDIM inversion round trip: the images, the noise x_T they invert to, and the images made from it."""

    images: torch.Tensor
    noise: torch.Tensor
    regenerated: torch.Tensor

    @property
    def rmse(self) -> float:
        """Root mean square gap between the images and their regeneration, in model units ([-1, 1])."""
        return float((self.regenerated - self.images).float().pow(2).mean().sqrt())

    @property
    def max_error(self) -> float:
        """The largest gap of one pixel, in model units."""
        return float((self.regenerated - self.images).abs().max())

@dataclass
class LoadedRun:
    """A trained model ready to sample: config, network, denoiser (at the run's precision), its origin."""

    config: Config
    model: UNet
    denoiser: Denoiser
    checkpoint: Path
    step: int
    device: torch.device
    precision: str
    ema: posthoc_ema.Reconstruction | None = None  # the post-hoc EMA length in use (None: the run's EMA)

    @property
    def run_dir(self) -> Path:
        """Where the run's files are: the run directory, or the folder itself for an exported model."""
        return run_dir_of(self.checkpoint)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the run makes."""
        return self.config.data.shape

    @property
    def classes(self) -> tuple[str, ...]:
        """The run's class names, in label order (() for a run trained without classes)."""
        return self.config.classes

    def labels(self, classes: Labels, count: int) -> torch.Tensor | None:
        """`count` class indices from names or indices: one class for all, or one per image (None: None).

        One-line errors for a run without classes and for unknown names (listing the run's classes).
        """
        if classes is None:
            return None
        if torch.is_tensor(classes):
            classes = classes.tolist()
        if not self.classes:
            raise ValueError(f"run {str(self.checkpoint)!r} was trained without classes: it cannot be asked for one")
        items = [classes] if isinstance(classes, (str, int)) else list(classes)
        indices = [self._class_index(item) for item in items]
        if len(indices) == 1:
            indices *= count
        if len(indices) != count:
            raise ValueError(f"{len(indices)} classes given for {count} images (give one, or one per image)")
        return torch.tensor(indices, dtype=torch.int64)

    def _class_index(self, item: str | int) -> int:
        if isinstance(item, str) and item in self.classes:
            return self.classes.index(item)
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(self.classes):
            return item
        raise ValueError(f"unknown class {item!r}; this run's classes are {', '.join(self.classes)}")

    def sampler(self, name: str | None = None, steps: int | None = None, eta: float | None = None,
                spacing: str | None = None, guidance: float | None = None) -> SampleConfig:
        """The run's sample section with the given sampler and options over it (SampleConfig.for_sampler)."""
        if name is not None:
            get_sampler(name)  # a one-line error for unknown names
        if guidance is not None and not self.classes:
            raise ValueError(f"run {str(self.checkpoint)!r} was trained without classes: guidance needs them")
        return self.config.sample.for_sampler(self.denoiser.schedule, name, steps, eta, spacing, guidance)

    def generate(self, config: SampleConfig, count: int, seed: int = 0, batch_size: int = 64,
                 labels: Labels = None, guidance: float | None = None, progress: str | None = None) -> torch.Tensor:
        """`count` final samples, float32 on the CPU (see horseshoe.sampling.generate).

        labels: a class (name or index) for every image, or one per image; None: no class. guidance:
        the scale w over the config's sample.guidance.
        """
        if guidance is not None:
            self.sampler(guidance=guidance)  # the same one-line error for a run without classes
            config = dataclasses.replace(config, guidance=guidance)  # and SampleConfig's for w < 0
        return generate(self.denoiser, count, self.image_shape, config, seed, batch_size, self.device,
                        self.labels(labels, count), progress)

    def records(self, config: SampleConfig, count: int, seed: int = 0, x_T: torch.Tensor | None = None,
                labels: Labels = None) -> Iterator[StepRecord]:
        """The step records of sampling `count` images in one batch (the same noise as `generate`)."""
        if x_T is None:
            x_T = initial_noise((count, *self.image_shape), torch.Generator().manual_seed(seed))
        generator = torch.Generator(self.device).manual_seed(seed + 1)
        denoiser = guided(self.denoiser, self.labels(labels, x_T.shape[0]), config)
        return iterate(denoiser, x_T.to(self.device), config, generator)

    def load_image(self, image: ImageInput) -> torch.Tensor:
        """An image file fitted like the training data (size, channels, fit, background): (1, C, H, W) in [-1, 1]."""
        if isinstance(image, torch.Tensor):
            return _check_shape(image, self.image_shape).to(self.device)
        return fitted_image(image, self.config.data).to(self.device)

    def load_mask(self, mask: str | Path | torch.Tensor, image: ImageInput | None = None) -> torch.Tensor:
        """A mask (1, 1, H, W), 1 = to generate: a name in MASKS, or a file (white = generate) fitted like the data.

        A mask file must have the size of the image file it goes with, so that both fit the same way.
        """
        if isinstance(mask, torch.Tensor):
            return mask.to(self.device)
        image_file = None if isinstance(image, torch.Tensor) else image
        return fitted_mask(mask, image_file, self.config.data).to(self.device)

    def inpaint(self, image: ImageInput, mask: str | Path | torch.Tensor, config: SampleConfig | None = None,
                count: int = 8, seed: int = 0, resample: int = 5, labels: Labels = None) -> Iterator[StepRecord]:
        """`count` fillings of the masked region of one image (RePaint), as the step records of one batch.

        The last record's x_prev holds the results; the kept pixels are the image's exactly. resample:
        RePaint's U, each step taken U times (README, "Edit with a trained model", for why 5). labels:
        fill in as this class (one, or one per filling), guided by config.guidance; None: no class.
        """
        x0, m = self.load_image(image), self.load_mask(mask, image)
        config = config or self.sampler()
        denoiser = guided(self.denoiser, self.labels(labels, count), config)
        x_T = initial_noise((count, *self.image_shape), torch.Generator().manual_seed(seed)).to(self.device)
        generator = torch.Generator(self.device).manual_seed(seed + 1)
        return repaint(denoiser, x0, m, x_T, config, generator, resample)

    def edit(self, image: ImageInput, strength: float, config: SampleConfig | None = None, count: int = 8,
             seed: int = 0, labels: Labels = None) -> Iterator[StepRecord]:
        """`count` SDEdit variations of one image at strength in (0, 1], as the step records of one batch.

        Strength 1 is `records` with the same seed: the image is forgotten. labels: turn it into this
        class (one, or one per variation), guided by config.guidance; None: no class.
        """
        if not 0 < strength <= 1:
            raise ValueError(f"--strength must lie in (0, 1], got {strength} (0 keeps the image, 1 forgets it)")
        x0 = self.load_image(image)
        config = config or self.sampler()
        denoiser = guided(self.denoiser, self.labels(labels, count), config)
        eps = initial_noise((count, *self.image_shape), torch.Generator().manual_seed(seed)).to(self.device)
        generator = torch.Generator(self.device).manual_seed(seed + 1)
        return sdedit(denoiser, x0, eps, config, generator, strength)

    def invert(self, image: ImageInput, config: SampleConfig | None = None) -> Inversion:
        """DDIM inversion of images to noise and back, on config's timesteps (default: the run's, 50 steps)."""
        x0 = self.load_image(image)
        noise, regenerated = round_trip(self.denoiser, x0, config or self.sampler("ddim", 50))
        return Inversion(images=x0.float().cpu(), noise=noise.float().cpu(), regenerated=regenerated.float().cpu())


def _check_shape(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    if images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise ValueError(f"images must be (N, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
    return images


def _file(path: str | Path, flag: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {str(path)!r} does not exist")
    if not path.is_file():
        raise IsADirectoryError(f"{flag} {str(path)!r} is not a file")
    return path


def fitted_image(path: str | Path, data: DataConfig) -> torch.Tensor:
    """--image: one file, converted and fitted as training images are: (1, C, H, W) in [-1, 1]."""
    path = _file(path, "--image")
    try:
        array = load_like_training(path, data)
    except ValueError as error:
        raise ValueError(f"--image: {error}") from None
    return to_model_range(array[None].copy())  # PIL arrays are read-only


def _oriented_size(path: Path, flag: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).size
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{flag}: cannot read image {str(path)!r}: {error}") from None


def fitted_mask(mask: str | Path, image: str | Path | None, data: DataConfig) -> torch.Tensor:
    """--mask: a name in MASKS, or a file of the image's size (white = to generate) fitted like it: (1, 1, H, W)."""
    if str(mask) in MASKS:
        return builtin_mask(str(mask), data.height, data.width)
    if not Path(mask).exists():
        raise FileNotFoundError(f"--mask {str(mask)!r} is neither a file nor one of {', '.join(MASKS)}")
    path = _file(mask, "--mask")
    size = _oriented_size(path, "--mask")
    if image is not None and size != (expected := _oriented_size(Path(image), "--image")):
        raise ValueError(f"--mask {str(path)!r} is {size[0]}x{size[1]} pixels but --image {str(image)!r} is "
                         f"{expected[0]}x{expected[1]}: draw the mask at the image's size")
    try:  # greyscale, transparency as black (kept); fitted like the image, then cut at half grey
        array, _ = load_image(path, (data.height, data.width), 1, data.fit, (0, 0, 0))
    except ValueError as error:
        raise ValueError(f"--mask: {error}") from None
    bits = torch.from_numpy(array[..., 0] >= 128).float()[None, None]
    if not bits.any():
        raise ValueError(f"--mask {str(path)!r} marks no pixel to generate at the run's {data.height}x{data.width} "
                         "(white = generate, black = keep)")
    return bits


def run_dir_of(found: Path) -> Path:
    """The run directory of checkpoint folder `found` (RUN/checkpoints/step-*), or the folder itself for an
    exported model."""
    return found.parent.parent if found.parent.name == "checkpoints" else found


def with_precision(model: torch.nn.Module, device: torch.device, precision: str):
    """The network as a function that runs under the given precision (bf16 or fp16 autocast, or fp32)."""

    def network(x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with autocast(device, precision):
            return model(x_t, t, labels)

    return network


def load_run(path: str | Path, weights: str = "ema", device: str = "auto", precision: str = "auto",
             sample_overrides: Sequence[str] = (), ema_length: float | None = None) -> LoadedRun:
    """Load a run directory (its latest checkpoint) or a checkpoint directory for sampling.

    precision: auto, bf16, fp16 or fp32 (runtime.resolve_precision). sample_overrides
    ('sample.key=value', as `--set`) change how this run samples, nothing else. ema_length: a post-hoc
    EMA of this relative width sigma_rel instead of the run's EMA, reconstructed from the snapshots of
    a run trained with train.posthoc_ema (training.posthoc_ema).
    """
    for text in sample_overrides:
        if not text.strip().startswith("sample."):
            raise ValueError(f"--set {text!r}: only sample.* settings can change after training")
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
    if ema_length is not None and weights != "ema":
        raise ValueError("--ema-length reconstructs EMA weights: it cannot go with --weights model")
    found = checkpoint.resolve(path)
    data = checkpoint.load(found, parts=(weights,))
    try:
        config = config_module.from_dict(data.config)
    except ValueError as error:
        raise ValueError(f"checkpoint {str(found)!r} has an invalid config: {error}") from None
    config = config_module.apply_overrides(config, list(sample_overrides))
    model = UNet(config.model, config.data.shape)
    try:
        model.load_state_dict(data.tensors[weights])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"checkpoint {str(found)!r} does not match its config: {first}") from None
    ema = None
    if ema_length is not None:
        run_dir = run_dir_of(found)
        ema = posthoc_ema.reconstruct(run_dir, ema_length, int(data.state["step"]))
        differ = sorted(set(ema.parameters) ^ {name for name, _ in model.named_parameters()})
        try:
            if differ:
                raise RuntimeError(f"parameter {differ[0]} is in one and not the other")
            model.load_state_dict(ema.parameters, strict=False)  # parameters only: the checkpoint gave the rest
        except RuntimeError as error:
            first = str(error).strip().splitlines()[-1].strip()
            raise ValueError(f"post-hoc EMA snapshots in {str(run_dir)!r} do not match the model: {first}") from None
    dev = pick_device(device)
    setup_device(dev, config.train.tf32, config.train.cudnn_benchmark)
    model = model.to(dev).eval().requires_grad_(False)
    schedule = config.diffusion.make_schedule()
    precision = resolve_precision(precision, dev)
    denoiser = Denoiser(with_precision(model, dev, precision), schedule, config.diffusion.prediction)
    return LoadedRun(config=config, model=model, denoiser=denoiser, checkpoint=found,
                     step=int(data.state["step"]), device=dev, precision=precision, ema=ema)
