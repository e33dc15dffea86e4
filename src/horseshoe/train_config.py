"""The train section of a run's config: budget, AdamW, schedule, EMA, precision, logging and checkpoints.

A module of its own beside data, models, diffusion and sampling, which own their sections, because the
training package sits above horseshoe.config and reads the whole config. horseshoe.config composes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from horseshoe.runtime import DEVICES, PRECISIONS, check_seed

# Post-hoc EMA's widest profile: sigma_rel at gamma = 0 (p flat over the run; training.posthoc_ema). Below gamma = 0
# the first, random weights would weigh most, and sigma_rel(gamma) is not monotonic there.
MAX_SIGMA_REL = 1 / (2 * math.sqrt(3))


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation: budget, AdamW, schedule, EMA, precision, logging and checkpoints.

    steps, epochs or minutes is the budget. With minutes, the first steps are timed and the step
    count fixed so that warm-up, decay and EMA fit the time, then fixed again from the loop's own
    speed at the end of the warm-up (and kept on resume). max_minutes, if
    set, also stops training (with a checkpoint) once that much wall time has passed, for jobs that
    must end in time on slower machines. precision: auto, bf16, fp16 (with a gradient scaler) or
    fp32 (runtime.resolve_precision). tf32 and cudnn_benchmark are CUDA kernel settings
    (runtime.setup_device); they change nothing elsewhere.
    label_dropout: the share of class labels replaced by "no class" during training (Ho & Salimans
    2022), so that a run with classes also learns the unconditional model guidance needs. None (auto):
    recipe.with_class_recipe sets it from the number of classes: 0.5 up to FEW_CLASSES classes (in a
    short run the "no class" output learns mostly from the dropped labels; on the four-direction
    horseshoes half of them took its SWD from 1.5-1.9 times an unconditional run's to 1.06-1.14 times,
    docs/measurements/classes.md), the paper's 0.1 above (every class then sees few images in a short
    run, and each dropped label is one fewer; docs/measurements/many-classes.md).
    posthoc_ema: the relative widths sigma_rel of power-function EMAs to keep beside the EMA (EDM2 keeps
    [0.05, 0.1]; empty: none), saved posthoc_snapshots times over the run into RUN/posthoc_ema, from
    which `sample --ema-length` reconstructs any length after training (training.posthoc_ema).
    """

    steps: int | None = 10_000
    epochs: float | None = None
    minutes: float | None = None  # a time budget: the step count is fixed after timing the first steps
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
    tf32: bool = True
    cudnn_benchmark: bool = True
    seed: int = 0
    log_every: int = 25
    sample_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    skip_nonfinite: bool = False
    eval_every: int = 0
    max_minutes: float | None = None
    tensorboard: bool = False  # also log to RUN/tensorboard/ (pip install 'horseshoe[tensorboard]')
    label_dropout: float | None = None
    posthoc_ema: tuple[float, ...] = ()
    posthoc_snapshots: int = 16

    def __post_init__(self) -> None:
        if sum(budget is not None for budget in (self.steps, self.epochs, self.minutes)) != 1:
            raise ValueError("set exactly one of train.steps, train.epochs and train.minutes")
        positive = {"train.batch_size": self.batch_size, "train.grad_accum": self.grad_accum, "train.lr": self.lr,
                    "train.ema_half_life_images": self.ema_half_life_images,
                    "train.keep_checkpoints": self.keep_checkpoints, "train.log_every": self.log_every}
        if self.steps is not None:
            positive["train.steps"] = self.steps
        if self.epochs is not None:
            positive["train.epochs"] = self.epochs
        if self.minutes is not None:
            positive["train.minutes"] = self.minutes
        for name, value in positive.items():
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value}")
        check_seed("train.seed", self.seed)
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must both be in [0, 1), got {list(self.betas)}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"train.weight_decay must be a number >= 0, got {self.weight_decay}")
        for name in ("warmup_steps", "sample_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"train.device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"train.grad_clip must be > 0 (or omitted), got {self.grad_clip}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise ValueError(f"train.max_minutes must be positive (or omitted), got {self.max_minutes}")
        if not 0 <= self.ema_warmup_ratio < 1:
            raise ValueError(f"train.ema_warmup_ratio must be in [0, 1), got {self.ema_warmup_ratio}")
        if self.label_dropout is not None and not 0 <= self.label_dropout <= 1:
            raise ValueError(f"train.label_dropout must be in [0, 1], got {self.label_dropout}")
        for sigma_rel in self.posthoc_ema:
            if not 0 < sigma_rel <= MAX_SIGMA_REL:
                raise ValueError(f"train.posthoc_ema: each sigma_rel must be in (0, {MAX_SIGMA_REL:.4f}], "
                                 f"got {sigma_rel}")
        if len(set(self.posthoc_ema)) != len(self.posthoc_ema):
            raise ValueError(f"train.posthoc_ema lists a width twice: {list(self.posthoc_ema)}")
        if self.posthoc_snapshots < 1:
            raise ValueError(f"train.posthoc_snapshots must be >= 1, got {self.posthoc_snapshots}")
