"""The three systems of benchmarks/quality.py, each trained the way its own documentation says.

A system is built from a recipe (a frozen dataclass whose fields cite where each value comes from) and
the shared image stream, and offers the timed loop three things: `train_step()` (one optimizer step,
returning the images it consumed), `done` (its recipe's schedule has run out) and
`sample(count, seed, sampler)` (images (N, C, H, W) in [-1, 1] from its EMA weights, with one of its
own samplers). Everything random in a system is seeded, and sampling never disturbs the random
streams training draws from.

What each recipe adapts, and only that: one channel and the stream's image size instead of the
documented 3 x 64 (diffusers) or 3 x 128 (lucidrains); the same images in the same order for all
(horseshoe.data.BatchLoader, with the package's flips) instead of each script's own data loading.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from horseshoe.config import Config
from horseshoe.data import BatchLoader, build_dataset
from horseshoe.runtime import autocast


def image_stream(config: Config, batch_size: int, device: torch.device) -> BatchLoader:
    """The images every system trains on: the config's data in the order horseshoe's own Trainer draws
    them (its dataset, its loader, train.seed), in batches of the recipe's size."""
    return BatchLoader(build_dataset(config.data), config.data, batch_size, seed=config.train.seed,
                       pin_memory=device.type == "cuda")


@contextlib.contextmanager
def own_random_streams(device: torch.device, seed: int):
    """Seed torch's global generators for sampling, and give training its streams back afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _to_model_range(unit: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (the peers' pipelines and samplers return those) -> [-1, 1], float32 on the CPU."""
    return unit.detach().float().cpu().mul(2).sub(1)


# ---- diffusers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiffusersRecipe:
    """diffusers' examples/unconditional_image_generation/train_unconditional.py, its argparse defaults
    (and its `--use_ema`, which its README's and train.sh's commands pass)."""

    batch_size: int = 16                      # --train_batch_size
    lr: float = 1e-4                          # --learning_rate
    lr_scheduler: str = "cosine"              # --lr_scheduler, over num_epochs x batches per epoch
    warmup_steps: int = 500                   # --lr_warmup_steps
    epochs: int = 100                         # --num_epochs
    betas: tuple[float, float] = (0.95, 0.999)  # --adam_beta1, --adam_beta2
    weight_decay: float = 1e-6                # --adam_weight_decay
    eps: float = 1e-8                         # --adam_epsilon
    grad_clip: float = 1.0                    # accelerator.clip_grad_norm_(..., 1.0)
    ema_max_decay: float = 0.9999             # --ema_max_decay (EMAModel with use_ema_warmup=True)
    ema_inv_gamma: float = 1.0                # --ema_inv_gamma
    ema_power: float = 0.75                   # --ema_power
    train_timesteps: int = 1000               # --ddpm_num_steps
    beta_schedule: str = "linear"             # --ddpm_beta_schedule
    prediction: str = "epsilon"               # --prediction_type
    pipeline_steps: int = 1000                # --ddpm_num_inference_steps: its DDPMPipeline
    ddim_steps: int = 50                      # the second sampler: DDIM from the trained scheduler's config
    precision: str = "fp32"                   # --mixed_precision no
    # The script's UNet2DModel (its other arguments at UNet2DModel's defaults).
    layers_per_block: int = 2
    block_out_channels: tuple[int, ...] = (128, 128, 256, 256, 512, 512)
    down_block_types: tuple[str, ...] = ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
    up_block_types: tuple[str, ...] = ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4


class DiffusersSystem:
    """UNet2DModel + DDPMScheduler trained as train_unconditional.py's loop does, sampled with its pipelines."""

    name = "diffusers"
    eval_sampler = "ddim-50"
    final_sampler = "ddpm-1000"  # its default pipeline: 1000 network calls per image, so only at the end

    def __init__(self, recipe: DiffusersRecipe, config: Config, device: torch.device, precision: str | None) -> None:
        from diffusers import DDPMScheduler, UNet2DModel
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        r, (channels, size, _) = recipe, config.data.shape
        self.recipe, self.device, self.precision = r, device, precision or r.precision
        torch.manual_seed(config.train.seed)
        self.unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                                layers_per_block=r.layers_per_block, block_out_channels=r.block_out_channels,
                                down_block_types=r.down_block_types, up_block_types=r.up_block_types).to(device)
        self.scheduler = DDPMScheduler(num_train_timesteps=r.train_timesteps, beta_schedule=r.beta_schedule,
                                       prediction_type=r.prediction)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=r.lr, betas=r.betas,
                                           weight_decay=r.weight_decay, eps=r.eps)
        self.loader = image_stream(config, r.batch_size, device)
        if self.loader.endless:
            raise ValueError("diffusers' recipe counts epochs: it needs a dataset of fixed size (data.count)")
        self.total_steps = math.ceil(self.loader.epoch_length / r.batch_size) * r.epochs
        self.lr_schedule = get_scheduler(r.lr_scheduler, optimizer=self.optimizer,
                                         num_warmup_steps=r.warmup_steps, num_training_steps=self.total_steps)
        self.ema = EMAModel(self.unet.parameters(), decay=r.ema_max_decay, use_ema_warmup=True,
                            inv_gamma=r.ema_inv_gamma, power=r.ema_power)
        self.step, self.batch_size = 0, r.batch_size
        self.parameters = sum(p.numel() for p in self.unet.parameters())

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def describe(self) -> dict:
        return {**dataclasses.asdict(self.recipe), "total_steps": self.total_steps}

    def train_step(self) -> int:
        x0 = self.loader.next_batch().to(self.device, non_blocking=True)
        noise = torch.randn(x0.shape, device=self.device)
        t = torch.randint(0, self.recipe.train_timesteps, (x0.shape[0],), device=self.device).long()
        noisy = self.scheduler.add_noise(x0, noise, t)
        with autocast(self.device, self.precision):
            predicted = self.unet(noisy, t).sample
        loss = F.mse_loss(predicted.float(), noise.float())  # epsilon prediction
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.step(self.unet.parameters())
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return x0.shape[0]

    def sample(self, count: int, seed: int, sampler: str) -> torch.Tensor:
        """Its DDPMPipeline (ddpm-1000) or DDIMPipeline (ddim-50) on the EMA weights, as the script samples."""
        from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

        if sampler == "ddpm-1000":
            pipe, steps = DDPMPipeline(self.unet, DDPMScheduler.from_config(self.scheduler.config)), \
                self.recipe.pipeline_steps
        elif sampler == "ddim-50":
            pipe, steps = DDIMPipeline(self.unet, DDIMScheduler.from_config(self.scheduler.config)), \
                self.recipe.ddim_steps
        else:
            raise ValueError(f"diffusers samples with ddpm-1000 or ddim-50, not {sampler!r}")
        pipe.set_progress_bar_config(disable=True)
        self.ema.store(self.unet.parameters())
        self.ema.copy_to(self.unet.parameters())
        try:
            generator = torch.Generator(self.device).manual_seed(seed)
            with autocast(self.device, self.precision):
                images = pipe(batch_size=count, generator=generator, num_inference_steps=steps,
                              output_type="np").images  # (N, H, W, C) in [0, 1]
        finally:
            self.ema.restore(self.unet.parameters())
        return _to_model_range(torch.from_numpy(images).permute(0, 3, 1, 2))


# ---- lucidrains ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LucidrainsRecipe:
    """denoising-diffusion-pytorch 2.3.4: its README's training example, and its Trainer's defaults for
    what the example leaves out (the Trainer itself needs torchvision, so a plain loop does its steps)."""

    dim: int = 64                             # README: Unet(dim = 64, ...
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)  # ... dim_mults = (1, 2, 4, 8),
    flash_attn: bool = True                   # ... flash_attn = True)
    timesteps: int = 1000                     # README: GaussianDiffusion(timesteps = 1000,
    sampling_timesteps: int = 250             # ... sampling_timesteps = 250): DDIM, 250 steps
    batch_size: int = 32                      # README: train_batch_size = 32
    grad_accum: int = 2                       # README: gradient_accumulate_every = 2
    lr: float = 8e-5                          # README: train_lr = 8e-5 (constant: the Trainer has no schedule)
    total_steps: int = 700_000                # README: train_num_steps = 700000
    ema_decay: float = 0.995                  # README: ema_decay = 0.995
    ema_update_every: int = 10                # Trainer default ema_update_every
    adam_betas: tuple[float, float] = (0.9, 0.99)  # Trainer default adam_betas (Adam, no weight decay)
    grad_clip: float = 1.0                    # Trainer default max_grad_norm
    amp: bool = True                          # README: amp = True: fp16 autocast (mixed_precision_type) on CUDA


class LucidrainsSystem:
    """lucidrains' Unet + GaussianDiffusion (its defaults: v prediction, sigmoid schedule), its Trainer's step."""

    name = "lucidrains"
    eval_sampler = "ddim-250"  # diffusion.sample(): DDIM because sampling_timesteps < timesteps
    final_sampler = None

    def __init__(self, recipe: LucidrainsRecipe, config: Config, device: torch.device, precision: str | None) -> None:
        from ema_pytorch import EMA
        from models import _import_lucidrains

        module, r, (channels, size, _) = _import_lucidrains(), recipe, config.data.shape
        # accelerate's fp16 autocast is for GPUs; elsewhere the README's amp=True trains in float32.
        self.recipe, self.device = r, device
        self.precision = precision or ("fp16" if r.amp and device.type == "cuda" else "fp32")
        torch.manual_seed(config.train.seed)
        unet = module.Unet(dim=r.dim, dim_mults=r.dim_mults, channels=channels, flash_attn=r.flash_attn)
        self.diffusion = module.GaussianDiffusion(unet, image_size=size, timesteps=r.timesteps,
                                                  sampling_timesteps=r.sampling_timesteps).to(device)
        self.optimizer = torch.optim.Adam(self.diffusion.parameters(), lr=r.lr, betas=r.adam_betas)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.ema = EMA(self.diffusion, beta=r.ema_decay, update_every=r.ema_update_every).to(device)
        self.loader = image_stream(config, r.batch_size, device)
        self.step, self.batch_size = 0, r.batch_size * r.grad_accum
        self.total_steps = r.total_steps
        self.parameters = sum(p.numel() for p in unet.parameters())

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def describe(self) -> dict:
        return dataclasses.asdict(self.recipe)

    def train_step(self) -> int:
        """Trainer.train's step: accumulate, clip, Adam, then the EMA (which acts every ema_update_every calls)."""
        r = self.recipe
        for _ in range(r.grad_accum):
            x0 = self.loader.next_batch().to(self.device, non_blocking=True)
            with autocast(self.device, self.precision):
                # Its Dataset yields [0, 1]; GaussianDiffusion (auto_normalize) maps them to [-1, 1].
                loss = self.diffusion((x0 + 1) / 2) / r.grad_accum
            self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.diffusion.parameters(), r.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.ema.update()
        return self.batch_size

    def sample(self, count: int, seed: int, sampler: str) -> torch.Tensor:
        """The EMA model's `sample` (its default sampler), as the Trainer draws its sample grids."""
        if sampler != self.eval_sampler:
            raise ValueError(f"lucidrains samples with {self.eval_sampler}, not {sampler!r}")
        model = self.ema.ema_model.eval()
        with own_random_streams(self.device, seed):  # it draws its noise from torch's global generator
            return _to_model_range(model.sample(batch_size=count))


# ---- horseshoe -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HorseshoeRecipe:
    """horseshoe's demo recipe: configs/demo.toml (`horseshoe config --demo`), with --set overrides on top."""

    overrides: tuple[str, ...] = ()


class HorseshoeSystem:
    """horseshoe's own Trainer, one train_step at a time, sampled with the config's sampler."""

    name = "horseshoe"
    final_sampler = None

    def __init__(self, recipe: HorseshoeRecipe, config: Config, device: torch.device, precision: str | None) -> None:
        from horseshoe.training.trainer import Trainer

        # train.max_minutes guards the demo on a slow machine; here the benchmark's budget does that.
        config = dataclasses.replace(config, train=dataclasses.replace(
            config.train, device=str(device), max_minutes=None, precision=precision or config.train.precision))
        self.recipe, self.trainer = recipe, Trainer(config)
        self.trainer.state.model.train()
        self.config, self.device, self.precision = self.trainer.config, device, self.trainer.precision
        self.total_steps = self.trainer.total_steps()
        self.batch_size = config.train.batch_size
        self.parameters = sum(p.numel() for p in self.trainer.state.model.parameters())
        # sample.sampler and sample.steps of the config (the demo's: dpmpp_2m_sde, 20 steps)
        self.eval_sampler = f"{config.sample.sampler}-{config.sample.steps}"

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def done(self) -> bool:
        return self.trainer.step >= self.total_steps

    def describe(self) -> dict:
        """The config trained (with any overrides, and the device and precision it ran with)."""
        return {"config": "configs/demo.toml", "overrides": list(self.recipe.overrides), **self.config.to_dict()}

    def train_step(self) -> int:
        return 0 if self.trainer.train_step(self.total_steps).skipped else self.batch_size

    def sample(self, count: int, seed: int, sampler: str) -> torch.Tensor:
        from horseshoe.diffusion import Denoiser
        from horseshoe.sampling import generate

        if sampler != self.eval_sampler:
            raise ValueError(f"horseshoe samples with its config's {self.eval_sampler} here, not {sampler!r}")
        t, sc = self.trainer, self.config.sample
        denoiser = Denoiser(t.state.ema.model, t.schedule, self.config.diffusion.prediction)
        with autocast(self.device, self.precision):
            return generate(denoiser, count, self.config.data.shape, sc.for_sampler(t.schedule), seed=seed,
                            device=self.device)
