"""Everything a training run is at one step, and what a checkpoint saves of it to resume exactly."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from horseshoe.config import Config, from_dict, incompatibility
from horseshoe.data import BatchLoader, build_dataset, class_counts
from horseshoe.models import UNet
from horseshoe.models.critic import Critic
from horseshoe.recipe import with_augmentation, with_balance, with_class_recipe, with_classes
from horseshoe.training import checkpoint
from horseshoe.training.distributed import World
from horseshoe.training.ema import EMA
from horseshoe.training.posthoc_ema import PowerEMA, load_profile_tensors, profile_tensors

POSTHOC_PART = "posthoc_ema"  # a checkpoint's tensors of the power-function EMAs, for a run that keeps them
CRITIC_PART = "critic"  # a distilled run's critic and its Adam moments, for a student with distill.adversarial


class TrainState:
    """Model, EMA (and any post-hoc EMA profiles), AdamW, a student's critic and its Adam, gradient scaler, data
    position, random streams, counters; state_dict(), load_state_dict().

    The loader yields this process's share of each global batch of `micro_batch` images; `noise`
    draws t and eps (and which labels to drop) for the whole global batch, on the training device.
    `config` is the one given with the data's classes filled in (recipe.with_classes): the model
    has a class embedding exactly when the data has classes; and with data.augment_p resolved
    (recipe.with_augmentation, which `augment_line` reports), and data.balance_classes, train.label_dropout
    and model.class_embed_std (recipe.with_balance and with_class_recipe, which `classes_line` reports).
    The gradient scaler is on for fp16 only (bf16 has float32's range; a disabled scaler passes everything
    through unchanged).
    """

    def __init__(self, config: Config, device: torch.device, world: World, micro_batch: int,
                 precision: str = "fp32") -> None:
        tc = config.train
        self.dataset = build_dataset(config.data)  # first: its classes decide the model
        size = None if self.dataset.endless else len(self.dataset)
        if size == 1:
            where = f"folder {config.data.path!r}" if config.data.path else "the built-in set (data.count=1)"
            warnings.warn(f"{where} holds a single image: every sample will be a copy of it", stacklevel=2)
        config, recipe = with_class_recipe(with_classes(config, tuple(self.dataset.classes)))
        config, self.augment_line = with_augmentation(config, size)
        self.class_counts = class_counts(self.dataset)  # images per class name ({} without classes)
        config, balance = with_balance(config, self.class_counts)
        self.config, self.classes_line = config, "; ".join(line for line in (balance, recipe) if line)
        self.device = device
        config = self.config
        torch.manual_seed(tc.seed)  # the same initial weights in every process
        self.model = UNet(config.model, config.data.shape).to(device)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, tc.ema_half_life_images, tc.ema_warmup_ratio)
        self.posthoc = [PowerEMA(self.model, sigma_rel) for sigma_rel in tc.posthoc_ema]
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, betas=tc.betas,
                                           weight_decay=tc.weight_decay, fused=device.type in ("cpu", "cuda"))
        self.critic: Critic | None = None  # distill.adversarial's critic of the training images (training.students)
        self.critic_optimizer: torch.optim.Adam | None = None
        if config.distill.adversarial:
            self.critic = Critic(config.data.shape).to(device)
            self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.distill.critic_lr,
                                                     betas=(0.0, 0.99))  # StyleGAN2's: no momentum in a game
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.loader = BatchLoader(self.dataset, config.data, micro_batch, seed=tc.seed, rank=world.rank,
                                  world_size=world.world_size, pin_memory=device.type == "cuda")
        self.noise = torch.Generator(device).manual_seed(tc.seed + 1)
        self.world_size = world.world_size
        self.step, self.images_seen, self.nonfinite_skipped, self.scaler_skipped = 0, 0, 0, 0
        self.planned_steps: int | None = None  # a time budget's step count, once timed
        self.stopped: str | None = None  # why training ended (a StopReason), once it has; saved, never resumed

    def state_dict(self) -> checkpoint.Checkpoint:
        """A checkpoint of everything resume needs: tensors by part, JSON state, and the config."""
        opt_tensors, groups = checkpoint.optimizer_to_tensors(self.optimizer)
        rng = {"torch": torch.get_rng_state(), "noise": self.noise.get_state().cpu()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {"step": self.step, "images_seen": self.images_seen, "nonfinite_skipped": self.nonfinite_skipped,
                 "scaler_skipped": self.scaler_skipped, "loader": self.loader.state_dict(),
                 "optimizer_groups": groups, "world_size": self.world_size}
        if self.scaler.is_enabled():  # a few numbers (scale, growth tracker): JSON, exact for float32 values
            state["grad_scaler"] = self.scaler.state_dict()
        if self.planned_steps is not None:
            state["planned_steps"] = self.planned_steps
        if self.stopped is not None:
            state["stopped"] = self.stopped
        tensors = {"model": self.model.state_dict(), "ema": self.ema.model.state_dict(), "optimizer": opt_tensors,
                   "rng": rng}
        if self.posthoc:
            state["posthoc_ema"] = [p.sigma_rel for p in self.posthoc]
            tensors[POSTHOC_PART] = profile_tensors(self.posthoc)
        if self.critic is not None:
            moments, state["critic_optimizer_groups"] = checkpoint.optimizer_to_tensors(self.critic_optimizer)
            tensors[CRITIC_PART] = {**{f"critic.{k}": v for k, v in self.critic.state_dict().items()},
                                    **{f"adam.{k}": v for k, v in moments.items()}}
        return checkpoint.Checkpoint(config=self.config.to_dict(), state=state, tensors=tensors)

    def resume_parts(self, path: str | Path) -> tuple[str, ...]:
        """The tensor parts resume reads from checkpoint `path`: the power-function EMAs too when this run keeps
        them and the checkpoint has them (load_state_dict refuses a checkpoint that kept other widths or none); a
        student's critic likewise."""
        parts = checkpoint.TENSOR_PARTS
        for part, kept in ((POSTHOC_PART, bool(self.posthoc)), (CRITIC_PART, self.critic is not None)):
            if kept and (Path(path) / f"{part}.safetensors").is_file():
                parts = (*parts, part)
        return parts

    def load_state_dict(self, data: checkpoint.Checkpoint, source: str) -> None:
        """Continue exactly where `data` (read from `source`) left off; one-line errors name the source."""
        try:
            saved = from_dict(data.config)
        except ValueError as error:
            raise ValueError(f"checkpoint {source!r} has an invalid config: {error}") from None
        why = incompatibility(saved, self.config)
        if why:
            raise ValueError(f"checkpoint {source!r} was made with a different config: {why}")
        widths, kept = [p.sigma_rel for p in self.posthoc], data.state.get("posthoc_ema")
        if widths and kept != widths:  # a post-hoc EMA must run from the first step
            had = f"kept posthoc_ema={kept}" if kept else "kept no post-hoc EMA"
            raise ValueError(f"checkpoint {source!r} {had}, and train.posthoc_ema is {widths} now: a post-hoc "
                             f"EMA must run from the first step (resume with the same setting, or start anew)")
        if self.critic is not None and CRITIC_PART not in data.tensors:
            raise ValueError(f"checkpoint {source!r} has no critic (its student was tuned without one): resume it "
                             f"with --set distill.adversarial=0")
        rng = data.tensors["rng"]  # checkpoint.load checked its keys and dtypes
        try:
            self.model.load_state_dict(data.tensors["model"])
            self.ema.model.load_state_dict(data.tensors["ema"])
            if self.posthoc:
                load_profile_tensors(self.posthoc, data.tensors[POSTHOC_PART])
            self.optimizer.load_state_dict(checkpoint.optimizer_from_tensors(
                data.tensors["optimizer"], data.state["optimizer_groups"]))
            self.loader.load_state_dict(data.state["loader"])
            if self.critic is not None:
                self._load_critic(data.tensors[CRITIC_PART], data.state["critic_optimizer_groups"])
            if self.scaler.is_enabled() and "grad_scaler" in data.state:  # else (bf16 before): a fresh scale
                self.scaler.load_state_dict(data.state["grad_scaler"])
            torch.set_rng_state(rng["torch"])
            self.noise.set_state(rng["noise"].to(self.noise.get_state().device))
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise ValueError(f"checkpoint {source!r} cannot be resumed: {str(error).splitlines()[0]}") from None
        self.step, self.images_seen = int(data.state["step"]), int(data.state["images_seen"])
        self.nonfinite_skipped = int(data.state.get("nonfinite_skipped", 0))
        self.planned_steps = data.state.get("planned_steps")
        self.scaler_skipped = int(data.state.get("scaler_skipped", 0))

    def _load_critic(self, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
        """The critic's weights and Adam moments from a checkpoint's CRITIC_PART."""
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.critic.load_state_dict(part("critic."))
        self.critic_optimizer.load_state_dict(checkpoint.optimizer_from_tensors(part("adam."), groups))
