"""The training loop: AdamW, warm-up, EMA, mixed precision, exact resume, DDP, and a clean stop."""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from horseshoe.config import Config
from horseshoe.data import BatchLoader, build_dataset
from horseshoe.diffusion import Denoiser, make_schedule
from horseshoe.diffusion.objectives import draw_noise, loss_from_noise
from horseshoe.runs import build_model
from horseshoe.runtime import autocast, keep_memory_mapped, pick_device, resolve_precision
from horseshoe.sampling import generate
from horseshoe.training import checkpoint, distributed
from horseshoe.training.ema import EMA
from horseshoe.training.runlog import RunLog


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite and training was told not to skip such steps."""


@dataclass
class TrainResult:
    """How a call to Trainer.fit ended."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    loss: float
    images_per_sec: float
    seconds: float
    interrupted: bool
    nonfinite_skipped: int
    stop_reason: str  # 'budget', 'signal' or 'time'


def learning_rate(step: int, base: float, warmup: int, total: int, schedule: str) -> float:
    """Linear warm-up over `warmup` steps, then constant or cosine decay to 0 at `total`."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base


class Trainer:
    """Trains the config's U-Net on the config's data into run_dir.

    train.batch_size is the global batch per optimizer step: it is split over grad_accum
    micro-steps and over the processes of a torchrun launch, so all three give the same updates.
    """

    def __init__(self, config: Config, run_dir: str | Path, progress: bool = True) -> None:
        keep_memory_mapped()
        self.config, self.run_dir, self.progress = config, Path(run_dir), progress
        tc = config.train
        self.world = distributed.init(pick_device(tc.device))
        self.device = distributed.process_device(self.world, pick_device(tc.device))
        self.precision = resolve_precision(tc.precision, self.device)
        per_step = tc.grad_accum * self.world.world_size
        if tc.batch_size % per_step:
            raise ValueError(f"train.batch_size {tc.batch_size} is not divisible by "
                             f"grad_accum x processes = {per_step}")
        self.micro_batch = tc.batch_size // tc.grad_accum  # global images per micro-step
        self.schedule = make_schedule(config.diffusion.schedule, config.diffusion.num_steps)
        torch.manual_seed(tc.seed)  # the same initial weights in every process
        self.model = build_model(config).to(self.device)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, tc.ema_half_life_images, tc.ema_warmup_ratio)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, betas=tc.betas,
                                           weight_decay=tc.weight_decay, fused=self.device.type in ("cpu", "cuda"))
        self.dataset = build_dataset(config.data)
        self.loader = BatchLoader(self.dataset, config.data, self.micro_batch, seed=tc.seed,
                                  rank=self.world.rank, world_size=self.world.world_size)
        self.noise = torch.Generator(self.device).manual_seed(tc.seed + 1)
        self.step, self.images_seen, self.nonfinite_skipped = 0, 0, 0
        self.network = self.model
        if self.world.distributed:
            self.network = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                   if self.device.type == "cuda" else None)
        if tc.compile:
            self.network = torch.compile(self.network)
        self._stop_signal: int | None = None
        self._eval_reference = None

    # ---- budget ------------------------------------------------------------------------------

    def total_steps(self) -> int:
        tc = self.config.train
        if tc.steps is not None:
            return tc.steps
        if self.loader.endless:
            raise ValueError("train.epochs needs a dataset of fixed size; the horseshoe stream (data.count=none) "
                             "has no epochs: use train.steps")
        return math.ceil(tc.epochs * len(self.dataset) / tc.batch_size)

    # ---- one optimizer step ------------------------------------------------------------------

    def train_step(self, total_steps: int) -> dict:
        """Accumulate gradients over the micro-batches, clip, step AdamW and the EMA."""
        tc, share = self.config.train, self.micro_batch // self.world.world_size
        d = self.config.data
        # Noise for the whole global batch, of which each micro-step and process takes its rows: the
        # same draws for any grad_accum and any number of processes.
        t_all, eps_all = draw_noise(self.schedule, (tc.batch_size, d.channels, d.height, d.width), self.noise)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(tc.grad_accum):
            x0 = self.loader.next_batch().to(self.device, non_blocking=True)
            if tc.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            rows = slice(micro * self.micro_batch + self.world.rank * share,
                         micro * self.micro_batch + (self.world.rank + 1) * share)
            sync = self.world.distributed and micro < tc.grad_accum - 1
            with (self.network.no_sync() if sync else contextlib.nullcontext()), autocast(self.device, self.precision):
                loss = loss_from_noise(self.network, self.schedule, x0, t_all[rows], eps_all[rows],
                                       self.config.diffusion.prediction, self.config.diffusion.min_snr_gamma)
            (loss / tc.grad_accum).backward()
            loss_sum += loss.detach() / tc.grad_accum
        loss_mean = distributed.mean(loss_sum, self.world)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip or float("inf"))
        loss_value = float(loss_mean)
        if not math.isfinite(loss_value) or not math.isfinite(float(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            if not tc.skip_nonfinite:
                last = checkpoint.latest(self.run_dir)
                where = f"the last good checkpoint is {str(last)!r}" if last else "no checkpoint was saved yet"
                raise NonFiniteLoss(f"loss became {loss_value} at step {self.step + 1}; {where} "
                                    f"(--set train.skip_nonfinite=true skips such steps)")
            self.nonfinite_skipped += 1
            return {"loss": loss_value, "skipped": True}
        lr = learning_rate(self.step, tc.lr, tc.warmup_steps, total_steps, tc.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.images_seen += tc.batch_size
        self.ema.update(self.model, tc.batch_size, self.images_seen)
        return {"loss": loss_value, "lr": lr, "grad_norm": float(grad_norm)}

    # ---- checkpoints ---------------------------------------------------------------------------

    def save(self) -> Path:
        """Write a checkpoint of everything resume needs (main process only) and return its path."""
        opt_tensors, groups = checkpoint.optimizer_to_tensors(self.optimizer)
        rng = {"torch": torch.get_rng_state(), "noise": self.noise.get_state().cpu()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {"step": self.step, "images_seen": self.images_seen, "nonfinite_skipped": self.nonfinite_skipped,
                 "loader": self.loader.state_dict(), "optimizer_groups": groups,
                 "world_size": self.world.world_size}
        data = checkpoint.Checkpoint(
            config=self.config.to_dict(), state=state,
            tensors={"model": self.model.state_dict(), "ema": self.ema.model.state_dict(), "optimizer": opt_tensors,
                     "rng": rng})
        path = checkpoint.save(self.run_dir, self.step, data, self.config.train.keep_checkpoints) \
            if self.world.is_main else checkpoint.latest(self.run_dir)
        distributed.barrier(self.world)
        return path

    def resume(self, path: str | Path) -> Path:
        """Continue exactly where a checkpoint left off; its model must match this config's."""
        found = checkpoint.resolve(path)
        data = checkpoint.load(found)
        for section in ("model", "diffusion"):
            saved, current = data.config.get(section, {}), self.config.to_dict()[section]
            diff = [k for k in current if saved.get(k) != (list(current[k]) if isinstance(current[k], tuple)
                                                          else current[k])]
            if diff:
                raise ValueError(f"checkpoint {str(found)!r} was made with a different config: {section}.{diff[0]} "
                                 f"is {saved.get(diff[0])!r} there and {current[diff[0]]!r} now")
        for key in ("channels", "image_size"):
            saved_value, now = data.config.get("data", {}).get(key), self.config.to_dict()["data"][key]
            if saved_value != (list(now) if isinstance(now, tuple) else now):
                raise ValueError(f"checkpoint {str(found)!r} was made with data.{key}={saved_value!r}, not {now!r}")
        try:
            self.model.load_state_dict(data.tensors["model"])
            self.ema.model.load_state_dict(data.tensors["ema"])
            self.optimizer.load_state_dict(checkpoint.optimizer_from_tensors(
                data.tensors["optimizer"], data.state["optimizer_groups"]))
            self.loader.load_state_dict(data.state["loader"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ValueError(f"checkpoint {str(found)!r} cannot be resumed: {str(error).splitlines()[0]}") from None
        rng = data.tensors["rng"]
        torch.set_rng_state(rng["torch"])
        self.noise.set_state(rng["noise"].to(self.noise.get_state().device))
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step, self.images_seen = int(data.state["step"]), int(data.state["images_seen"])
        self.nonfinite_skipped = int(data.state.get("nonfinite_skipped", 0))
        return found

    # ---- pictures ------------------------------------------------------------------------------

    def sample_grid(self, path: Path, count: int = 64) -> Path:
        """A grid of samples from the EMA weights with the run's sampler settings."""
        from horseshoe.data.transforms import to_uint8
        from horseshoe.viz.grid import display_scale, make_grid, save_png

        images = self._ema_samples(min(count, self.config.sample.count))
        return save_png(make_grid(to_uint8(images), scale=display_scale(self.config.data.height)), path)

    def _ema_samples(self, count: int) -> torch.Tensor:
        """`count` samples from the EMA weights with the run's sampler settings and seed."""
        sc, d = self.config.sample, self.config.data
        denoiser = Denoiser(self.ema.model, self.schedule, self.config.diffusion.prediction)
        sampler_config = sc.sampler_config(self.schedule, sc.sampler)
        with autocast(self.device, self.precision):
            return generate(sc.sampler, denoiser, count, (d.channels, d.height, d.width), sampler_config,
                            seed=sc.seed, device=self.device)

    def quick_eval(self, count: int = 64) -> dict:
        """A small evaluation of the EMA weights (train.eval_every): SWD and novelty only.

        The reference (256 training images and their patch descriptors) is built at the first call and
        reused, so training pays only for the evaluations themselves.
        """
        from horseshoe.evaluate import training_images
        from horseshoe.metrics.novelty import novelty
        from horseshoe.metrics.swd import SWDReference

        started = time.perf_counter()
        if self._eval_reference is None:
            images = training_images(self.config, 256, self.config.train.seed)
            self._eval_reference = (SWDReference(images, seed=self.config.train.seed), images)
        reference, images = self._eval_reference
        samples, d = self._ema_samples(count), self.config.data
        found = novelty(samples, images, d.hflip, d.vflip, d.rot90).as_dict()
        return {"step": self.step, "swd": reference.distance(samples).mean,
                "near_copy_fraction": found["near_copy_fraction"], "nn_ratio_median": found["nn_ratio_median"],
                "eval_seconds": round(time.perf_counter() - started, 2)}

    # ---- the loop ------------------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: stop now, without saving
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self._stop_signal = signum

    @contextlib.contextmanager
    def _signals(self):
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._on_signal)
        except ValueError:  # not the main thread: leave signals alone
            previous = {}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def fit(self) -> TrainResult:
        """Train to the step budget (or until SIGINT/SIGTERM), checkpointing along the way."""
        from tqdm import tqdm

        tc, main = self.config.train, self.world.is_main
        total = self.total_steps()
        log = RunLog(self.run_dir) if main else None
        if main:
            (self.run_dir / "config.json").write_text(self.config.to_json())
            log.write({"event": "start" if self.step == 0 else "resume", "step": self.step,
                       "device": str(self.device), "precision": self.precision,
                       "processes": self.world.world_size})
        bar = tqdm(total=total, initial=self.step, disable=not (main and self.progress), unit="step",
                   dynamic_ncols=True)
        start, window_seconds, window_losses = time.perf_counter(), 0.0, []
        start_step, saved_at, last, stop_reason = self.step, None, {"loss": float("nan")}, "budget"
        self.model.train()
        try:
            with self._signals():
                while self.step < total:
                    step_started = time.perf_counter()
                    last = self.train_step(total)
                    window_seconds += time.perf_counter() - step_started  # steps only: logging, evals excluded
                    if last.get("skipped"):
                        continue
                    window_losses.append(last["loss"])
                    bar.update(1)
                    if self.step % tc.log_every == 0 or self.step == total:
                        rate = len(window_losses) * tc.batch_size / max(window_seconds, 1e-9)
                        record = {"step": self.step, "loss": sum(window_losses) / len(window_losses),
                                  "lr": last["lr"], "images_per_sec": rate, "grad_norm": last["grad_norm"],
                                  "epoch": self.loader.epochs_done()}
                        bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{rate:.0f}")
                        if log:
                            log.write(record)
                        window_seconds, window_losses = 0.0, []
                    if tc.eval_every and self.step % tc.eval_every == 0 and main:
                        log.write(self.quick_eval())
                    if tc.sample_every and self.step % tc.sample_every == 0 and main:
                        self.sample_grid(self.run_dir / "progress" / f"{checkpoint.checkpoint_name(self.step)}.png")
                    if tc.checkpoint_every and self.step % tc.checkpoint_every == 0:
                        self.save()
                        saved_at = self.step
                    out_of_time = tc.max_minutes is not None and time.perf_counter() - start > 60 * tc.max_minutes
                    if out_of_time and stop_reason == "budget":
                        stop_reason = "time"
                    if distributed.any_true(self._stop_signal is not None or out_of_time, self.world, self.device):
                        break
            path = self.save() if saved_at != self.step else checkpoint.latest(self.run_dir)
            if self._stop_signal is not None:
                stop_reason = "signal"
            if log:
                log.write({"event": "end", "reason": stop_reason, "step": self.step,
                           "nonfinite_skipped": self.nonfinite_skipped, "seconds": time.perf_counter() - start})
        finally:
            bar.close()
            if log:
                log.close()
        seconds = time.perf_counter() - start
        return TrainResult(run_dir=self.run_dir, step=self.step, checkpoint=path, loss=last["loss"],
                           images_per_sec=(self.step - start_step) * tc.batch_size / max(seconds, 1e-9),
                           seconds=seconds, interrupted=self._stop_signal is not None,
                           nonfinite_skipped=self.nonfinite_skipped, stop_reason=stop_reason)

    def close(self) -> None:
        distributed.shutdown(self.world)


def train(config: Config, out: str | Path, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train `config` into run directory `out` (resuming from a run or checkpoint if given)."""
    trainer = Trainer(config, out, progress=progress)
    try:
        if resume is not None:
            trainer.resume(resume)
        return trainer.fit()
    finally:
        trainer.close()
