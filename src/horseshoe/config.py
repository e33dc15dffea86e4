"""One frozen config for a run: model, diffusion, data, training and sampling sections.

Built from the defaults, then a TOML file, then `section.key=value` overrides; unknown keys and
values of the wrong type are errors that name the key. The whole config is saved with every
checkpoint, and the model is rebuilt from it alone.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from horseshoe.data.dataset import DataConfig
from horseshoe.diffusion.denoiser import PREDICTIONS
from horseshoe.diffusion.schedules import SCHEDULES, NoiseSchedule
from horseshoe.models.unet import UNetConfig
from horseshoe.runtime import DEVICES, PRECISIONS
from horseshoe.sampling.record import DDPM_VARIANCES, SPACINGS, SamplerConfig
from horseshoe.sampling.timesteps import usable_steps

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net's architecture; channels come from data.channels.

    attention_resolutions lists feature-map sizes (of the smaller image side) whose residual blocks
    get self-attention; the middle block always has it. The defaults are the demo's, measured on a
    2-core CPU (see README): 2x2 patch folding, widths 64-128-128, attention in the middle only.
    """

    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    norm_groups: int = 32
    head_channels: int = 64
    patch_size: int = 2


@dataclass(frozen=True)
class DiffusionConfig:
    """The noise schedule, its length T, and what the network predicts."""

    schedule: str = "cosine"
    num_steps: int = 1000
    prediction: str = "v"
    min_snr_gamma: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"diffusion.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.num_steps < 2:
            raise ValueError(f"diffusion.num_steps must be >= 2, got {self.num_steps}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"diffusion.prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0:
            raise ValueError(f"diffusion.min_snr_gamma must be > 0, got {self.min_snr_gamma}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation: budget, AdamW, schedule, EMA, precision, logging and checkpoints.

    steps or epochs is the budget; max_minutes, if set, also stops training (with a checkpoint) once
    that much wall time has passed, for jobs that must end in time on slower machines.
    """

    steps: int | None = 10_000
    epochs: float | None = None
    batch_size: int = 128
    grad_accum: int = 1
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    ema_half_life_images: float = 50_000.0
    ema_warmup_ratio: float = 0.05
    precision: str = "auto"
    device: str = "auto"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    log_every: int = 25
    sample_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    skip_nonfinite: bool = False
    eval_every: int = 0
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of train.steps and train.epochs")
        positive = {"train.batch_size": self.batch_size, "train.grad_accum": self.grad_accum, "train.lr": self.lr,
                    "train.ema_half_life_images": self.ema_half_life_images,
                    "train.keep_checkpoints": self.keep_checkpoints, "train.log_every": self.log_every}
        if self.steps is not None:
            positive["train.steps"] = self.steps
        if self.epochs is not None:
            positive["train.epochs"] = self.epochs
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("warmup_steps", "sample_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"train.device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"train.grad_clip must be > 0 (or omitted), got {self.grad_clip}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"train.max_minutes must be positive (or omitted), got {self.max_minutes}")
        if not 0 <= self.ema_warmup_ratio < 1:
            raise ValueError(f"train.ema_warmup_ratio must be in [0, 1), got {self.ema_warmup_ratio}")


@dataclass(frozen=True)
class SampleConfig:
    """How the run draws its sample grids (and the defaults of `horseshoe sample`)."""

    sampler: str = "dpmpp_2m_sde"
    steps: int = 20
    eta: float = 0.0
    spacing: str = "karras"
    clip_x0: bool = True
    count: int = 64
    seed: int = 0
    ddpm_variance: str = "posterior"
    lambda_min: float | None = -3.0  # start where the half log-SNR reaches this (see sampling.timesteps)
    rho: float = 3.0  # the karras spacing's exponent (see sampling.timesteps)

    def __post_init__(self) -> None:
        from horseshoe.sampling import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise ValueError(f"sample.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.steps <= 0 or self.count <= 0:
            raise ValueError(f"sample.steps and sample.count must be positive, got {self.steps} and {self.count}")
        if self.eta < 0:
            raise ValueError(f"sample.eta must be >= 0, got {self.eta}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"sample.spacing must be one of {', '.join(SPACINGS)}, got {self.spacing!r}")
        if self.ddpm_variance not in DDPM_VARIANCES:
            raise ValueError(f"sample.ddpm_variance must be one of {', '.join(DDPM_VARIANCES)}")
        if self.lambda_min is not None and not -1e3 < self.lambda_min < 1e3:
            raise ValueError(f"sample.lambda_min must be a finite number (or omitted), got {self.lambda_min}")
        if not 0 < self.rho < 1e3:
            raise ValueError(f"sample.rho must be a positive number, got {self.rho}")

    def sampler_config(self, schedule: NoiseSchedule, sampler: str, steps: int | None = None,
                       eta: float | None = None, spacing: str | None = None) -> SamplerConfig:
        """Options for `sampler`: the given ones over this section's. Without `steps` it takes sample.steps
        (fewer when the schedule has fewer), except ddpm asked for in place of the run's own sampler:
        ancestral sampling is meant to visit every usable timestep."""
        usable = usable_steps(schedule, self.lambda_min)
        if steps is None:
            steps = usable if sampler == "ddpm" != self.sampler else min(self.steps, usable)
        return SamplerConfig(num_steps=steps, spacing=spacing or self.spacing, eta=self.eta if eta is None else eta,
                             clip_x0=self.clip_x0, variance=self.ddpm_variance, lambda_min=self.lambda_min,
                             rho=self.rho)


@dataclass(frozen=True)
class Config:
    """Everything a run needs, saved with each checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        self.unet()  # architecture errors surface when the config is made, not mid-run

    def unet(self) -> UNetConfig:
        """The network's config: channels from the data, attention resolutions turned into levels."""
        m, d = self.model, self.data
        levels = []
        for res in m.attention_resolutions:
            side = min(d.height, d.width) // m.patch_size
            matches = [lvl for lvl in range(len(m.channel_mults)) if side // 2**lvl == res]
            if not matches:
                sizes = [side // 2**lvl for lvl in range(len(m.channel_mults))]
                raise ValueError(f"model.attention_resolutions: {res} is not a feature-map size of this U-Net "
                                 f"(sizes {sizes} for {d.height}x{d.width} images)")
            levels.append(matches[0])
        unet = UNetConfig(in_channels=d.channels, out_channels=d.channels, base_channels=m.base_channels,
                          channel_mults=tuple(m.channel_mults), num_res_blocks=m.num_res_blocks,
                          attention_levels=tuple(levels), dropout=m.dropout, norm_groups=m.norm_groups,
                          head_channels=m.head_channels, patch_size=m.patch_size)
        if d.height % unet.size_divisor or d.width % unet.size_divisor:
            raise ValueError(f"data.image_size {d.height}x{d.width} is not divisible by {unet.size_divisor} "
                             f"(model.patch_size x 2^(levels-1) for {len(m.channel_mults)} levels)")
        return unet

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


SECTIONS: dict[str, type] = {f.name: f.default_factory().__class__ for f in dataclasses.fields(Config)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check (and gently convert) a value against a field's type; errors name the key."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ValueError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        inner = args[0]
        if len(args) == 2 and args[1] is Ellipsis or len(args) == 1:
            return tuple(_coerce(v, inner, key) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{key} must have {len(args)} entries, got {list(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{key} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string, got {value!r}")
    raise ValueError(f"{key}: unsupported type {annotation!r}")  # pragma: no cover


def _section_from_dict(name: str, values: dict[str, Any], base: Any) -> Any:
    cls = SECTIONS[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key {name}.{unknown[0]}; {name} has: {', '.join(sorted(known))}")
    coerced = {k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()}
    if name == "train":  # the two budgets exclude each other: setting one clears the other
        for budget, other in (("epochs", "steps"), ("steps", "epochs")):
            if coerced.get(budget) is not None and other not in coerced:
                coerced[other] = None
    return dataclasses.replace(base, **coerced)


def merge(config: Config, values: dict[str, Any]) -> Config:
    """A new config with the given {section: {key: value}} replaced."""
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config section {unknown[0]!r}; sections are {', '.join(SECTIONS)}")
    sections = {}
    for name, section_values in values.items():
        if not isinstance(section_values, dict):
            raise ValueError(f"config section {name!r} must be a table of keys, got {section_values!r}")
        sections[name] = _section_from_dict(name, section_values, getattr(config, name))
    return dataclasses.replace(config, **sections)


def from_dict(values: dict[str, Any]) -> Config:
    """A config from a (saved) dict: defaults for anything missing, errors for anything unknown."""
    return merge(Config(), values)


def load_toml(path: str | Path, base: Config | None = None) -> Config:
    """Read a TOML file of [section] tables on top of base (the defaults)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    return merge(base or Config(), values)


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value); the value is read as TOML, else as a plain string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"--set expects section.key=value, got {text!r}")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    raw = raw.strip()
    if raw.lower() in ("none", "null"):
        return section, key, None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply --set overrides together (a later one wins over an earlier one for the same key)."""
    values: dict[str, dict[str, Any]] = {}
    for text in overrides:
        section, key, value = parse_override(text)
        values.setdefault(section, {})[key] = value
    return merge(config, values)


def build_config(config_file: str | None = None, overrides: list[str] | None = None,
                 base: Config | None = None) -> Config:
    """Defaults (or base), then the TOML file, then the overrides."""
    config = base or Config()
    if config_file:
        config = load_toml(config_file, config)
    return apply_overrides(config, overrides or [])
