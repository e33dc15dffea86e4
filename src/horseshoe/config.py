"""One frozen config for a run, composed of the sections each package owns.

    model      horseshoe.models.UNetConfig          data    horseshoe.data.DataConfig
    diffusion  horseshoe.diffusion.DiffusionConfig  sample  horseshoe.sampling.SampleConfig
    train      horseshoe.train_config.TrainConfig (beside the packages: the training package sits above
               this module and reads it)
    distill    horseshoe.distill_config.DistillConfig (likewise; method 'none' but in a distilled run)

Built from the defaults, then a TOML file, then overrides (`section.key=value` text from --set, or
typed values from the CLI's own flags); unknown keys and values of the wrong type are errors that
name the key. The whole config is saved with every checkpoint, and the model is rebuilt from it alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from horseshoe.data.augment import AUGMENT_DIM
from horseshoe.data.config import DataConfig
from horseshoe.diffusion.config import DiffusionConfig
from horseshoe.distill_config import DistillConfig
from horseshoe.models.unet import UNetConfig
from horseshoe.runtime import check_seed
from horseshoe.sampling.config import SampleConfig
from horseshoe.train_config import MAX_SIGMA_REL as MAX_SIGMA_REL  # importable from here, as before
from horseshoe.train_config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Config:
    """Everything a run needs, saved with each checkpoint."""

    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        # Architecture errors surface when the config is made, not mid-run.
        d = self.data
        self.model.check_size(d.height, d.width)
        self.model.attention_levels(d.height, d.width)
        check_seed("data.seed", d.seed)
        check_seed("sample.seed", self.sample.seed)
        if self.model.augment_dim not in (0, AUGMENT_DIM):
            raise ValueError(f"model.augment_dim must be 0 or {AUGMENT_DIM} (the augmentation parameters' count), "
                             f"got {self.model.augment_dim}")
        if d.classes and len(d.classes) != self.model.num_classes:
            raise ValueError(f"data.classes names {len(d.classes)} classes but model.num_classes is "
                             f"{self.model.num_classes}")

    @property
    def classes(self) -> tuple[str, ...]:
        """The run's class names (() without classes; '0', '1', ... where a config gives only their number)."""
        return self.data.classes or tuple(str(i) for i in range(self.model.num_classes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        """The whole config as a TOML file that `--config` reads back into the same config.

        TOML has no null: an unset value whose default is set is written as "none"; one whose
        default is unset too is left as a comment.
        """
        lines = []
        for section in dataclasses.fields(self):
            values, defaults = getattr(self, section.name), section.default_factory()
            lines.append(f"[{section.name}]")
            for f in dataclasses.fields(values):
                value = getattr(values, f.name)
                if value is None:
                    unset = getattr(defaults, f.name) is None
                    lines.append(f"# {f.name} = (unset)" if unset else f'{f.name} = "none"')
                else:
                    lines.append(f"{f.name} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's


SECTIONS: dict[str, type] = {f.name: f.default_factory().__class__ for f in dataclasses.fields(Config)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check (and gently convert) a value against a field's type; errors name the key."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or value == "none" and str not in args):
            return None  # TOML files say "none" for an unset value (to_toml)
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
    if name == "train":  # the budgets exclude each other: setting one clears the others
        budgets = ("steps", "epochs", "minutes")
        for budget in budgets:
            if coerced.get(budget) is not None:
                coerced.update({other: None for other in budgets if other != budget and other not in coerced})
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


def incompatibility(saved: Config, current: Config) -> str | None:
    """Why weights trained under `saved` cannot continue under `current` (None when they can).

    The network and the process must be the same (model and diffusion sections), and so must the
    images' shape; everything else (budget, data source, sampling) may change on resume.
    """
    pairs = [(f"{name}.{f.name}", getattr(getattr(saved, name), f.name), getattr(getattr(current, name), f.name))
             for name in ("model", "diffusion") for f in dataclasses.fields(getattr(current, name))]
    pairs.append(("data.shape (channels, height, width)", saved.data.shape, current.data.shape))
    pairs.append(("data.classes", saved.data.classes, current.data.classes))
    for key, then, now in pairs:
        if then != now:
            return f"{key} is {then!r} there and {now!r} now"
    return None


# Keys added after runs were saved without them, and the value such a run was trained with where the
# default has changed since: without augmentation (augment_p 0, not auto), with the border mirrored,
# with class rows drawn N(0, 1).
SAVED_BEFORE: dict[str, dict[str, Any]] = {"data": {"augment_p": 0.0, "augment_border": "reflect"},
                                           "model": {"class_embed_std": 1.0}}


def from_dict(values: dict[str, Any]) -> Config:
    """A config from a (saved) dict: defaults for anything missing, errors for anything unknown.

    A key the dict lacks that SAVED_BEFORE lists reads as the run was trained, not as today's default,
    so that an old run resumes and reports as it began.
    """
    values = {**values, **{name: {**old, **values[name]} for name, old in SAVED_BEFORE.items()
                           if isinstance(values.get(name), dict)}}
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
