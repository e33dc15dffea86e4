"""Train into a run directory the way `horseshoe train` and the demo do: the training loop plus the
hooks that write the log, checkpoints, sample grids and quick evaluations, then the end pictures.

    RUN/config.json  metrics.jsonl  checkpoints/  progress/step-*.png (train.sample_every)
    RUN/loss.png     samples.png    copies.png    index.html (when training ends)

copies.png shows the samples of samples.png closest to a training image beside it (runs.memorisation);
when too many are near-copies, the run says so.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from horseshoe.config import Config
from horseshoe.data import training_images
from horseshoe.data.dataset import Dataset
from horseshoe.data.transforms import to_uint8
from horseshoe.metrics.judge import judge_for, per_class_accuracy
from horseshoe.metrics.novelty import NEAR_COPY_RATIO, novelty
from horseshoe.metrics.swd import SWDReference
from horseshoe.runs import memorisation, page
from horseshoe.runs.memorisation import CopyCheck
from horseshoe.training import checkpoint, distributed
from horseshoe.training.hooks import CheckpointHook, LogHook, PostHocEMAHook
from horseshoe.training.results import StopReason
from horseshoe.training.runlog import read_metrics, tensorboard_writer
from horseshoe.training.trainer import Hook, NonFiniteLoss, StepResult, Trainer, TrainResult
from horseshoe.viz.grid import display_scale, make_grid, save_png
from horseshoe.viz.plots import plot_loss


def class_columns(classes: int, count: int = 256) -> int:
    """Samples drawn of each class for the end-of-training grid: about `count` in all, 2 to 8 a class (16
    classes: 8 each; 70: 3; 200: 2)."""
    return max(2, min(8, count // classes))


def sample_grid(trainer: Trainer, path: Path, count: int = 64, progress: str | None = None,
                per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A grid of samples from the EMA weights with the run's sampler settings, saved at `path`; with
    classes, a row per class (per_class each, by default up to 8 of about `count` in all, at the run's
    sample.guidance). Returns the samples and their class indices (None without classes)."""
    count, labels, columns = min(count, trainer.config.sample.count), None, None
    if trainer.conditional:
        classes = trainer.config.model.num_classes
        columns = per_class or max(1, min(8, count // classes))
        labels = torch.arange(classes).repeat_interleave(columns)
        count = len(labels)
    images = trainer.ema_samples(count, labels, progress)
    save_png(make_grid(to_uint8(images), columns, scale=display_scale(trainer.config.data.height)), path)
    return images, labels


def class_rows(out: Path, trainer: Trainer, samples: torch.Tensor, labels: torch.Tensor,
               found: CopyCheck) -> list[page.ClassRow]:
    """A labelled row per class for the run's page: its samples (RUN/classes/NNN.png), training images, the
    judge's reading where one exists (the built-in shapes) and its near-copies."""
    config = trainer.config
    names, asked = config.data.classes, labels.numpy()
    judge = judge_for(config.data, names)
    judged = None if judge is None else per_class_accuracy(judge.predict(samples), asked, len(names))
    counts = trainer.state.class_counts
    ratios = None if found.novelty is None else found.novelty.ratios
    rows = []
    for c, name in enumerate(names):
        mine = samples[labels == c]
        src = f"classes/{c:03d}.png"
        save_png(make_grid(to_uint8(mine), len(mine), scale=display_scale(config.data.height)), out / src)
        facts = [] if counts.get(name) is None else [f"{counts[name]} training images"]
        if judged is not None:
            facts.append(f"judged {judged[c]:.0%} (real images: {judge.real_accuracy[c]:.0%})")
        if ratios is not None:
            facts.append(f"near-copies {float((ratios[asked == c] < NEAR_COPY_RATIO).mean()):.0%}")
        rows.append(page.ClassRow(name, src, tuple(facts)))
    return rows


class SampleGridHook(Hook):
    """RUN/progress/step-N.png every train.sample_every steps (main process)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        every = trainer.config.train.sample_every
        if every and result.step % every == 0 and trainer.world.is_main:
            sample_grid(trainer, self.run_dir / "progress" / f"{checkpoint.checkpoint_name(result.step)}.png")


@dataclass(frozen=True)
class QuickEval:
    """One quick evaluation: SWD x1e3 of the EMA samples against the training images, their near-copy
    fraction and median nearest-neighbour ratio, and the seconds it took."""

    swd: float
    near_copy_fraction: float
    nn_ratio_median: float
    eval_seconds: float

    def as_dict(self) -> dict[str, float]:
        """The fields as the run's log writes them."""
        return asdict(self)


class QuickEvalHook(Hook):
    """Every train.eval_every steps, SWD and novelty of 64 EMA samples, written to the run's log.

    The reference (256 training images and their patch descriptors) is built at the first call and
    reused, so training pays only for the evaluations themselves.
    """

    def __init__(self, log: LogHook, count: int = 64) -> None:
        self.log, self.count = log, count
        self._reference: tuple[SWDReference, object] | None = None

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        every, main = trainer.config.train.eval_every, trainer.world.is_main
        if every and result.step % every == 0 and main and self.log.log is not None:
            self.log.log.write({"step": result.step, **self.evaluate(trainer).as_dict()})

    def evaluate(self, trainer: Trainer) -> QuickEval:
        started, config = time.perf_counter(), trainer.config
        if self._reference is None:
            images = training_images(config.data, 256, config.train.seed)
            self._reference = (SWDReference(images, seed=config.train.seed), images)
        reference, images = self._reference
        samples, d = trainer.ema_samples(self.count), config.data
        found = novelty(samples, images, d.hflip, d.vflip, d.rot90)
        return QuickEval(swd=reference.distance(samples).mean, near_copy_fraction=found.near_copy_fraction,
                         nn_ratio_median=found.ratio_median, eval_seconds=round(time.perf_counter() - started, 2))


@dataclass(frozen=True)
class RunResult:
    """A finished call of `train`: how training ended and what it left in the run directory."""

    run_dir: Path
    training: TrainResult
    checkpoint: Path | None
    resumed_from: Path | None
    stop_signal: int | None  # SIGINT or SIGTERM, when one stopped training
    classes: dict[str, int | None]  # images per class ({} without classes; None for the endless stream)
    copies: CopyCheck | None = None  # the end-of-training samples' near-copies (None: no end pictures)
    augment: str = ""  # one line: non-leaking augmentation on or off, and why (recipe.with_augmentation)
    balance: str = ""  # one line: how classes are drawn, and why ('' without classes; recipe.with_balance)
    device: str = ""
    precision: str = ""
    parameters: int = 0
    dataset: Dataset | None = None  # the training images it held, for callers that compare samples with them


def run_hooks(run_dir: Path, progress: bool) -> list[Hook]:
    """Log, quick evaluations, sample grids, post-hoc EMA snapshots, checkpoints: in that order at every step."""
    log = LogHook(run_dir, progress)
    return [log, QuickEvalHook(log), SampleGridHook(run_dir), PostHocEMAHook(run_dir), CheckpointHook(run_dir)]


def check_copies(trainer: Trainer, samples: torch.Tensor, out: Path) -> CopyCheck:
    """Near-copies among the end-of-training samples, against the training images already in memory."""
    config = trainer.config
    training = memorisation.training_reference(trainer.state.dataset, config.data, config.train.seed)
    return memorisation.check(samples, training, config.data, out / "copies.png", seed=config.train.seed)


def write_page(out: Path, trainer: Trainer, result: TrainResult, found: CopyCheck,
               classes: list[page.ClassRow] | None = None) -> Path:
    """RUN/index.html: samples (a labelled row per class for a run with classes), near-copies, loss curve and
    numbers, the config as TOML, the next commands."""
    config = trainer.config
    sc = config.sample.for_sampler(trainer.schedule)
    rows = {"steps": result.step, "steps trained by this call": result.steps_trained,
            "training seconds (this call)": round(result.seconds, 1),
            "training images/s (this call, with checkpoints and evaluations)": round(result.images_per_sec, 1),
            "stopped because": result.stop_reason, "device": str(trainer.device), "precision": trainer.precision,
            "parameters": page.millions(sum(p.numel() for p in trainer.state.model.parameters()))}
    commands = [f"horseshoe sample {out} --count 64 --out {out}/samples", f"horseshoe evaluate {out}",
                f"horseshoe train --out {out} --resume --steps {2 * result.step}"]
    page.add_section(out, "copies", "Near-copies of training images", found.section("copies.png"), order=15)
    how = f"from the EMA weights ({sc.sampler}, {sc.steps} steps"
    if classes:
        commands.insert(1, f"horseshoe sample {out} --class {classes[0].name} --guidance {sc.guidance:g} "
                        f"--out {out}/samples-{classes[0].name}")
        caption = f"{len(classes)} classes, samples {how}, guidance {sc.guidance:g}); the whole grid: samples.png"
        body = page.class_rows(classes, caption)
        return page.run_sections(out, "samples.png", "", rows, config.to_toml(), commands, samples_html=body)
    return page.run_sections(out, "samples.png", f"{min(64, sc.count)} samples {how})", rows, config.to_toml(),
                               commands)


def prepare_run_dir(out: Path, resume: str | Path | None, overwrite: bool, main: bool = True) -> Path | None:
    """The checkpoint to resume from (None: a fresh run); refuses to train over checkpoints without
    --resume or --overwrite, and (main process only) clears what a crashed save left behind. Every
    process checks, so that a refusal stops them all."""
    if resume is not None:
        found = checkpoint.resolve(resume, resume=True)
    elif checkpoint.has_checkpoints(out) and not overwrite:
        raise ValueError(f"run directory {str(out)!r} already has checkpoints; pass --resume to continue it, "
                         f"--overwrite to start it over, or choose another --out")
    else:
        found = None
    if main:
        checkpoint.clean_stale(out)
        if resume is None and overwrite and checkpoint.has_checkpoints(out):
            shutil.rmtree(out / "checkpoints")
            (out / "metrics.jsonl").unlink(missing_ok=True)
    return found


def train(config: Config, out: str | Path, resume: str | Path | None = None, progress: bool = True,
          overwrite: bool = False) -> RunResult:
    """Train `config` into run directory `out`, resuming from a run or checkpoint if given.

    Draws RUN/loss.png, RUN/samples.png and RUN/copies.png (its samples beside their nearest training
    images) and writes RUN/index.html at the end, unless a signal stopped it (the user is waiting).
    A resume that finds the run already at its budget trains nothing and writes nothing
    (RunResult.training.stop_reason says so).
    """
    out = Path(out)
    if config.train.tensorboard:
        tensorboard_writer()  # a missing package is said before anything is written
    trainer, found_copies = Trainer(config, run_hooks(out, progress)), None
    try:
        found = prepare_run_dir(out, resume, overwrite, trainer.world.is_main)
        distributed.barrier(trainer.world)  # the others start once the main process has cleared the directory
        if found is not None:
            trainer.resume(found)  # the checkpoint prepare_run_dir resolved: latest is read once
        try:
            result = trainer.fit()
        except NonFiniteLoss as error:
            last = checkpoint.latest(out)
            where = f"the last good checkpoint is {str(last)!r}" if last else "no checkpoint was saved yet"
            raise NonFiniteLoss(f"{error}; {where}") from None
        if trainer.world.is_main and result.steps_trained and result.stop_reason != StopReason.SIGNAL:
            plot_loss(read_metrics(out), out / "loss.png")
            per_class = class_columns(trainer.config.model.num_classes) if trainer.conditional else None
            samples, labels = sample_grid(trainer, out / "samples.png", progress="samples.png" if progress else None,
                                          per_class=per_class)
            found_copies = check_copies(trainer, samples, out)
            rows = None if labels is None else class_rows(out, trainer, samples, labels, found_copies)
            write_page(out, trainer, result, found_copies, rows)
    finally:
        trainer.close()
    return RunResult(run_dir=out, training=result, checkpoint=checkpoint.latest(out), resumed_from=found,
                     stop_signal=trainer.stop_signal, classes=trainer.state.class_counts,
                     copies=found_copies, augment=trainer.state.augment_line,
                     balance=trainer.state.classes_line, device=str(trainer.device), precision=trainer.precision,
                     parameters=sum(p.numel() for p in trainer.state.model.parameters()),
                     dataset=trainer.state.dataset)
