"""What a distilled run's training adds to the loop (horseshoe.runs.distill): the teacher it starts from, the draws and
the loss of its method (horseshoe.diffusion.consistency), and for trajectory distillation the teacher's paths."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from horseshoe import config as config_module
from horseshoe.config import Config
from horseshoe.data.augment import AugmentParams, augment_images
from horseshoe.diffusion import Denoiser
from horseshoe.diffusion.adversarial import critic_loss, generator_loss
from horseshoe.diffusion.consistency import PairDraws, consistency_loss, draw_pairs, huber_c, trajectory_loss, x0_of
from horseshoe.diffusion.schedules import NoiseSchedule
from horseshoe.runtime import autocast
from horseshoe.sampling.timesteps import usable_steps
from horseshoe.sampling.trajectories import TeacherPaths, level_visits, student_levels, teacher_paths
from horseshoe.training import checkpoint, distributed
from horseshoe.training.state import TrainState


class Student:
    """The teacher's EMA weights loaded into a fresh state's model and EMA (a resume overwrites them with the
    student's own); the frozen teacher for 'cd' and 'trajectory'; the method's draws and loss."""

    def __init__(self, config: Config, state: TrainState, schedule: NoiseSchedule, precision: str) -> None:
        self.config, self.schedule, self.device, self.precision = config, schedule, state.device, precision
        dc = config.distill
        found = checkpoint.resolve(dc.teacher)
        data = checkpoint.load(found, parts=("ema",))
        weights = data.tensors["ema"]
        try:
            self.teacher_sample = config_module.from_dict(data.config).sample
            state.model.load_state_dict(weights)
            state.ema.model.load_state_dict(weights)
        except (RuntimeError, ValueError) as error:
            first = str(error).strip().splitlines()[-1].strip()
            raise ValueError(f"teacher {str(found)!r} does not match the student's config: {first}") from None
        self.teacher: torch.nn.Module | None = None
        if dc.method != "ect":  # ect calls no teacher
            self.teacher = type(state.model)(config.model, config.data.shape).to(self.device)
            self.teacher.load_state_dict(weights)
            self.teacher.eval().requires_grad_(False)
        self.paths: TeacherPaths | None = None
        self.state = state  # whose critic (distill.adversarial's) it trains; the state saves and resumes it

    def prepare(self) -> None:
        """Make the teacher's paths (trajectory), before any step is timed: a time budget's clock includes them."""
        if self.config.distill.method == "trajectory":
            self.teacher_paths()

    def teacher_paths(self) -> TeacherPaths:
        """distill.paths ODE paths of the teacher through the student's levels, made once (again after a resume:
        the same seed gives the same paths)."""
        if self.paths is None:
            dc, config = self.config.distill, self.config
            with autocast(self.device, self.precision):
                self.paths = teacher_paths(
                    Denoiser(self.teacher, self.schedule, config.diffusion.prediction), dc.paths, config.data.shape,
                    self.teacher_sample, student_levels(self.schedule, config.sample), seed=config.train.seed,
                    classes=config.model.num_classes, steps=dc.path_steps, device=self.device)
            # level_weights 'visits': how often each level is drawn; the levels' timesteps, indexed by the draws
            self.visits = torch.tensor(level_visits(self.schedule, config.sample, self.paths.levels), dtype=torch.float)
            self.level_timesteps = torch.tensor(self.paths.levels)
        return self.paths

    def draw(self, shape: tuple[int, ...], noise: torch.Generator, step: int, total_steps: int) -> PairDraws:
        """The global batch's draws: a path and a level of it per example (trajectory), or t, r and eps at this
        step's stage (ect, cd)."""
        dc = self.config.distill
        if dc.method == "trajectory":
            paths = self.teacher_paths()
            index = torch.randint(0, len(paths.x0), shape[:1], generator=noise, device=noise.device)
            if dc.level_weights == "even":
                level = torch.randint(0, len(paths.levels), shape[:1], generator=noise, device=noise.device)
            else:
                level = torch.multinomial(self.visits.to(noise.device), shape[0], replacement=True, generator=noise)
            return PairDraws(t=self.level_timesteps.to(noise.device)[level], index=index, level=level)
        usable = usable_steps(self.schedule, self.config.sample.lambda_min)
        return draw_pairs(self.schedule, shape, noise, dc.stage(step, total_steps), dc.p_mean, dc.p_std, usable, dc.q)

    def loss(self, network, x0: torch.Tensor, draws: PairDraws, labels: torch.Tensor | None,
             augment: torch.Tensor | None, params: AugmentParams | None = None) -> torch.Tensor:
        """One micro-batch's loss. Trajectory distillation reads its inputs, targets and classes from the paths
        (the paths are of unaugmented images); the data batch (x0 and its augmentation params) is what
        distill.adversarial's critic sees as training images."""
        prediction = self.config.diffusion.prediction
        if self.config.distill.method != "trajectory":
            return consistency_loss(network, self.schedule, x0, draws, prediction, huber_c(tuple(x0.shape)),
                                    labels, augment, self.teacher)
        paths, index, level = self.paths, draws.index.cpu(), draws.level.cpu()
        x_t = paths.x[index, level].to(self.device, torch.float32)
        ends = paths.x0[index].to(self.device, torch.float32)
        classes = None if paths.labels is None else paths.labels[index].to(self.device)
        plain = None if augment is None else torch.zeros_like(augment)
        x0_hat = x0_of(network, self.schedule, prediction, x_t, draws.t, classes, plain).float()
        loss = trajectory_loss(x0_hat, ends, huber_c(tuple(x_t.shape)))
        if self.state.critic is None:
            return loss
        fake = x0_hat if params is None else augment_images(x0_hat, params, self.config.data.augment_border)
        return loss + self.config.distill.adversarial * self._adversarial(fake, x0)

    def _adversarial(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The student's hinge term against the critic, the student's images augmented as the training images
        (DiffAugment, Zhao et al. 2020: else the critic tells them apart by their augmentation alone). First the
        critic's own loss on this micro-batch (the student's images detached, in one pass with the real ones),
        whose gradients wait in the critic for step_critic. The critic runs at the student's precision, but in
        float32 under fp16, whose loss scaling is the student's."""
        critic, n = self.state.critic, len(real)
        with torch.autocast(self.device.type, enabled=False) if self.precision == "fp16" else nullcontext():
            scores = critic(torch.cat([real.to(fake.dtype), fake.detach()]))
            (critic_loss(scores[:n], scores[n:]) / self.config.train.grad_accum).backward()
            critic.requires_grad_(False)  # the student's term moves the student only
            try:
                return generator_loss(critic(fake))
            finally:
                critic.requires_grad_(True)

    def step_critic(self, world: distributed.World) -> None:
        """One Adam step of the critic on the gradients its micro-batches left (averaged over processes)."""
        if self.state.critic is None:
            return
        for p in self.state.critic.parameters():
            if p.grad is not None:
                p.grad = distributed.mean(p.grad, world)
        self.state.critic_optimizer.step()
        self.state.critic_optimizer.zero_grad(set_to_none=True)

    def drop_critic_gradients(self) -> None:
        """Forget a skipped step's critic gradients, as the student's are forgotten."""
        if self.state.critic is not None:
            self.state.critic_optimizer.zero_grad(set_to_none=True)
