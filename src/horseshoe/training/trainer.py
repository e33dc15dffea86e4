"""The training loop: AdamW steps with warm-up, EMA, mixed precision (fp16 with a gradient scaler), DDP,
a clean stop, and hooks.

The loop knows nothing of files, pictures or metrics: logging, checkpoints, sample grids and
evaluations are hooks (horseshoe.training.hooks, and those the CLI and the demo add). Planning a time
budget is horseshoe.training.budget; what a step and a fit report, horseshoe.training.results.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from horseshoe.config import Config
from horseshoe.data.augment import AugmentParams, augment_images
from horseshoe.data.loader import TrainingBatch
from horseshoe.diffusion import Denoiser
from horseshoe.diffusion.consistency import PairDraws
from horseshoe.diffusion.objectives import draw_noise, drop_labels, loss_from_noise
from horseshoe.runtime import autocast, pick_device, resolve_precision, setup_device
from horseshoe.sampling import generate
from horseshoe.training import checkpoint, distributed
from horseshoe.training.budget import TimeBudget, replan_step, timed_steps
from horseshoe.training.errors import NonFiniteLoss
from horseshoe.training.results import StepResult, StopReason, TrainResult
from horseshoe.training.state import TrainState
from horseshoe.training.students import Student


class Hook:
    """What Trainer.fit calls along the way; subclasses override what they need."""

    def on_start(self, trainer: Trainer) -> None:
        """Before the first step of this call (after any resume)."""

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        """After each optimizer step that was applied (skipped steps are not reported)."""

    def on_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After the last step, on budget, time or signal (not after an error)."""

    def close(self) -> None:
        """When fit returns or raises: release files and progress bars."""


def learning_rate(step: int, base: float, warmup: int, total: int, schedule: str) -> float:
    """Linear warm-up over `warmup` steps, then constant or cosine decay to 0 at `total`."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base


class Trainer:
    """Trains the config's U-Net on the config's data, calling `hooks` along the way.

    train.batch_size is the global batch per optimizer step: it is split over grad_accum
    micro-steps and over the processes of a torchrun launch, so all three give the same updates.
    """

    def __init__(self, config: Config, hooks: Sequence[Hook] = ()) -> None:
        self.config, self.hooks = config, list(hooks)
        tc = config.train
        self.world = distributed.init(pick_device(tc.device))
        self.device = distributed.process_device(self.world, pick_device(tc.device))
        self.precision = resolve_precision(tc.precision, self.device)
        self.device_settings = setup_device(self.device, tc.tf32, tc.cudnn_benchmark)
        per_step = tc.grad_accum * self.world.world_size
        if tc.batch_size % per_step:
            raise ValueError(f"train.batch_size {tc.batch_size} is not divisible by "
                             f"grad_accum x processes = {per_step}")
        self.micro_batch = tc.batch_size // tc.grad_accum  # global images per micro-step
        self.schedule = config.diffusion.make_schedule()
        self.state = TrainState(config, self.device, self.world, self.micro_batch, self.precision)
        self.config = self.state.config  # with the data's classes
        self.network = self.state.model
        if self.world.distributed:
            self.network = DistributedDataParallel(self.state.model, device_ids=[self.device.index]
                                                   if self.device.type == "cuda" else None)
        if tc.compile:
            self.network = torch.compile(self.network)
        # A distilled run (horseshoe.runs.distill): the teacher's weights to start from, its method's draws and loss.
        self.student = Student(self.config, self.state, self.schedule, self.precision) if config.distill.student \
            else None
        self._stop_signal: int | None = None
        self.first_step = 0  # the step the current fit began at
        self.clock = time.perf_counter  # what step times and budgets are measured with (a test sets its own)

    @property
    def step(self) -> int:
        return self.state.step

    def total_steps(self) -> int:
        """The step budget: train.steps, train.epochs passes over a dataset of fixed size, or the steps
        a time budget (train.minutes) was planned to take (see plan_time_budget and training.budget)."""
        tc = self.config.train
        if tc.steps is not None:
            return tc.steps
        if tc.minutes is not None:
            if self.state.planned_steps is None:
                raise RuntimeError("a time budget's step count is known once plan_time_budget has run")
            return self.state.planned_steps
        if self.state.loader.endless:
            raise ValueError("train.epochs needs a dataset of fixed size; the horseshoe stream (data.count=none) "
                             "has no epochs: use train.steps")
        return math.ceil(tc.epochs * self.state.loader.epoch_length / tc.batch_size)

    def plan_time_budget(self, budget: TimeBudget) -> int:
        """Train the first steps of a time budget, time them, and fix the step count that fits the rest
        (horseshoe.training.budget). The timed steps are trained but not logged one by one."""
        tc, st = self.config.train, self.state
        seconds = []
        for _ in range(timed_steps(tc.warmup_steps)):
            held = None if st.step < tc.warmup_steps else st.optimizer.param_groups[0]["lr"]
            seconds.append(self.train_step(total_steps=2**62, lr=held).seconds)
        return self._agree_steps(budget.first_plan(st.step, self.clock(), seconds))

    def _agree_steps(self, planned: int) -> int:
        """Set planned_steps to the mean of every process's plan, so that none waits for the others for ever."""
        mean = distributed.mean(torch.tensor(float(planned), device=self.device), self.world)
        self.state.planned_steps = round(float(mean))
        return self.state.planned_steps

    def resume(self, path: str | Path) -> Path:
        """Continue exactly where a checkpoint (or a run's latest) left off; its model must match this config's."""
        found = checkpoint.resolve(path, resume=True)
        self.state.load_state_dict(checkpoint.load(found, self.state.resume_parts(found)), str(found))
        return found

    def save(self, run_dir: str | Path) -> Path | None:
        """Write a checkpoint into run_dir from the main process (all processes must call it)."""
        path = None
        if self.world.is_main:
            path = checkpoint.save(run_dir, self.step, self.state.state_dict(), self.config.train.keep_checkpoints)
        distributed.barrier(self.world)
        return path

    # ---- one optimizer step ------------------------------------------------------------------

    def train_step(self, total_steps: int, lr: float | None = None) -> StepResult:
        """Accumulate gradients over the micro-batches, clip, step AdamW and the EMA.

        In fp16 the loss is multiplied by the gradient scaler's scale before backward (so that small
        gradients do not underflow) and the gradients are divided by it again before clipping; a step
        whose gradients overflowed is skipped and the scale halved (Micikevicius et al. 2018).
        """
        started, tc, st = self.clock(), self.config.train, self.state
        # Noise for the whole global batch, of which each micro-step and process takes its rows: the
        # same draws for any grad_accum and any number of processes. A run with classes draws one
        # more uniform per image, after t and eps, to drop labels; a run without draws nothing more.
        draws = self._draw(total_steps)
        u_all = torch.rand(tc.batch_size, generator=st.noise, device=st.noise.device) if self.conditional else None
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(tc.grad_accum):
            loss_sum += self._backward(micro, draws, u_all)
        loss_value = float(distributed.mean(loss_sum, self.world))
        st.scaler.unscale_(st.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(st.model.parameters(), tc.grad_clip or float("inf")))
        # With the scaler on, infinite gradients after a finite loss are its business (an overflow), not an error.
        if not math.isfinite(loss_value) or (not math.isfinite(grad_norm) and not st.scaler.is_enabled()):
            st.optimizer.zero_grad(set_to_none=True)
            if self.student is not None:
                self.student.drop_critic_gradients()
            st.scaler.update()  # forget this step's unscaling (and back off the scale)
            if not tc.skip_nonfinite:
                raise NonFiniteLoss(f"loss became {loss_value} at step {st.step + 1} "
                                    f"(--set train.skip_nonfinite=true skips such steps)")
            st.nonfinite_skipped += 1
            return StepResult(st.step, loss_value, self.clock() - started, skipped=True)
        if lr is None:
            lr = learning_rate(st.step, tc.lr, tc.warmup_steps, total_steps, tc.lr_schedule)
        for group in st.optimizer.param_groups:
            group["lr"] = lr
        scale = st.scaler.get_scale()
        st.scaler.step(st.optimizer)  # skips AdamW's update when unscale_ found inf or nan gradients
        st.scaler.update()
        st.optimizer.zero_grad(set_to_none=True)
        if self.student is not None:
            self.student.step_critic(self.world)
        if st.scaler.get_scale() < scale:  # the scale backs off exactly when the gradients overflowed
            st.scaler_skipped += 1
            return StepResult(st.step, loss_value, self.clock() - started, skipped=True)
        st.step += 1
        st.images_seen += tc.batch_size
        st.ema.update(st.model, tc.batch_size, st.images_seen)
        for profile in st.posthoc:
            profile.update(st.model, st.step)
        return StepResult(st.step, loss_value, self.clock() - started, lr, grad_norm)

    def _draw(self, total_steps: int) -> PairDraws:
        """The global batch's noise: t and eps for the diffusion loss, or a distilled run's draws."""
        shape = (self.config.train.batch_size, *self.config.data.shape)
        if self.student is not None:
            return self.student.draw(shape, self.state.noise, self.state.step, total_steps)
        t, eps = draw_noise(self.schedule, shape, self.state.noise, lognormal=self.config.diffusion.lognormal)
        return PairDraws(t=t, eps=eps)

    def _loss(self, x0: torch.Tensor, draws: PairDraws, labels: torch.Tensor | None,
              augment: torch.Tensor | None, params: AugmentParams | None = None) -> torch.Tensor:
        """The diffusion loss of one micro-batch, or a distilled run's loss (params: the batch's augmentation, which a
        student's critic applies to the student's images as to the training images)."""
        if self.student is not None:
            return self.student.loss(self.network, x0, draws, labels, augment, params)
        return loss_from_noise(self.network, self.schedule, x0, draws.t, draws.eps, self.config.diffusion.prediction,
                               self.config.diffusion.min_snr_gamma, labels, augment)

    def _backward(self, micro: int, draws: PairDraws, u_all: torch.Tensor | None) -> torch.Tensor:
        """Micro-step `micro`: this process's rows of the global batch's noise (and label-dropping draws u_all),
        forward and backward; returns its share of the step's loss, detached."""
        tc, st = self.config.train, self.state
        share = self.micro_batch // self.world.world_size
        batch = st.loader.next_training_batch()
        labels = batch.labels
        x0, augment = self._augmented(batch)
        if tc.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        rows = slice(micro * self.micro_batch + self.world.rank * share,
                     micro * self.micro_batch + (self.world.rank + 1) * share)
        if u_all is not None:
            labels = drop_labels(labels.to(self.device), tc.label_dropout, u_all[rows])
        sync = self.world.distributed and micro < tc.grad_accum - 1
        with (self.network.no_sync() if sync else contextlib.nullcontext()), autocast(self.device, self.precision):
            loss = self._loss(x0, draws.rows(rows), labels if u_all is not None else None, augment, batch.augment)
        st.scaler.scale(loss / tc.grad_accum).backward()  # a disabled scaler (not fp16) returns its input
        return loss.detach() / tc.grad_accum

    def _augmented(self, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's images on the training device, with its non-leaking augmentation applied there, and the
        augmentation vector for the network (zeros when none is drawn; None for a network without the input)."""
        x0 = batch.images.to(self.device, non_blocking=True)
        if not self.config.model.augment_dim:
            return x0, None
        if batch.augment is None:  # augmentation off (data.augment_p=0) in a network that has the input
            return x0, torch.zeros(len(x0), self.config.model.augment_dim, device=self.device)
        d = self.config.data
        _, height, width = d.shape
        return augment_images(x0, batch.augment, d.augment_border), batch.augment.vector(height, width).to(self.device)

    @property
    def conditional(self) -> bool:
        """Whether the run has classes (the model a class embedding, the batches labels)."""
        return self.config.model.num_classes > 0

    def ema_samples(self, count: int, labels: torch.Tensor | None = None, progress: str | None = None) -> torch.Tensor:
        """`count` samples from the EMA weights with the run's sampler settings and seed (of class `labels`)."""
        sc = self.config.sample
        denoiser = Denoiser(self.state.ema.model, self.schedule, self.config.diffusion.prediction)
        with autocast(self.device, self.precision):
            return generate(denoiser, count, self.config.data.shape, sc.for_sampler(self.schedule),
                            seed=sc.seed, device=self.device, labels=labels, progress=progress)

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

    @property
    def stop_signal(self) -> int | None:
        """The signal (SIGINT or SIGTERM) that stopped the last fit, if one did."""
        return self._stop_signal

    def fit(self) -> TrainResult:
        """Train to the step budget (or until SIGINT/SIGTERM, train.max_minutes or the end of train.minutes),
        calling the hooks."""
        started, first_step, tc = self.clock(), self.step, self.config.train
        self.first_step = first_step  # where this call began (a time budget's timed steps come before on_start)
        if self.student is not None:
            self.student.prepare()
        budget = None  # a time budget this call plans (a resume keeps its plan)
        if tc.minutes is not None and self.state.planned_steps is None:
            budget = TimeBudget(tc.minutes, started)
            self.state.model.train()
            self.plan_time_budget(budget)
        total = self.total_steps()
        if first_step >= total:
            return TrainResult(self.step, 0, math.nan, 0.0, 0.0, StopReason.NOTHING, self.state.nonfinite_skipped,
                               self.state.scaler_skipped)
        self.state.model.train()
        try:
            return self._loop(total, started, first_step, budget)
        finally:
            for hook in self.hooks:
                hook.close()

    def _loop(self, total: int, start: float, start_step: int, budget: TimeBudget | None = None) -> TrainResult:
        """budget: the time budget this call planned, planned again at budget.replan_step."""
        tc = self.config.train
        deadline = min([60 * m for m in (tc.max_minutes, tc.minutes) if m is not None], default=math.inf)
        last_loss, stop_reason = math.nan, StopReason.BUDGET
        loop_started, loop_first_step = self.clock(), self.step
        replan_at = replan_step(tc.warmup_steps, loop_first_step) if budget is not None else None
        for hook in self.hooks:
            hook.on_start(self)
        with self._signals():
            while self.step < total:
                if replan_at is not None and self.step >= replan_at:
                    total, replan_at = self._agree_steps(budget.replan(self.step, self.clock(), loop_started,
                                                                       loop_first_step)), None
                    if self.step >= total:
                        break
                step = self.train_step(total)
                last_loss = step.loss
                if step.skipped:
                    continue
                for hook in self.hooks:
                    hook.on_step(self, step)
                out_of_time = self.clock() - start > deadline
                if out_of_time and stop_reason == StopReason.BUDGET:
                    stop_reason = StopReason.TIME
                if distributed.any_true(self._stop_signal is not None or out_of_time, self.world, self.device):
                    break
            if self._stop_signal is not None:
                stop_reason = StopReason.SIGNAL
            seconds = self.clock() - start
            result = TrainResult(step=self.step, steps_trained=self.step - start_step, loss=last_loss,
                                 images_per_sec=(self.step - start_step) * tc.batch_size / max(seconds, 1e-9),
                                 seconds=seconds, stop_reason=stop_reason,
                                 nonfinite_skipped=self.state.nonfinite_skipped,
                                 scaler_skipped=self.state.scaler_skipped)
            for hook in self.hooks:  # inside the handler: a Ctrl-C while the last checkpoint is written waits
                hook.on_end(self, result)
        return result

    def close(self) -> None:
        distributed.shutdown(self.world)
